"""The resumable record store (ambridge.store): what an interruption can and cannot do to finished work."""

from __future__ import annotations

import json

import pytest

from ambridge.store import CorruptStore, RecordStore


def test_records_survive_a_reopen_in_order_and_the_last_record_of_a_key_wins(tmp_path):
    path = tmp_path / "runs.jsonl"
    store = RecordStore(path)
    assert len(store) == 0 and "a" not in store and store.get("a") is None
    store.append({"key": "a", "value": 1.5})
    store.append({"key": "b", "value": float("nan")})
    store.append({"key": "a", "value": 2.5})  # a rerun of the same work replaces it
    again = RecordStore(path)
    assert [r["key"] for r in again] == ["a", "b"] and again.get("a")["value"] == 2.5
    assert "b" in again and len(again) == 2


def test_a_line_cut_off_by_a_kill_is_dropped_and_the_file_repaired(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"key": "a", "x": 1}) + "\n" + '{"key": "b", "x"')  # killed mid-write
    store = RecordStore(path)
    assert [r["key"] for r in store] == ["a"]
    assert path.read_text() == json.dumps({"key": "a", "x": 1}) + "\n"  # truncated to the last whole record
    store.append({"key": "b", "x": 2})
    assert [r["key"] for r in RecordStore(path)] == ["a", "b"]


@pytest.mark.parametrize("bad", ['{"key": "b", "x"', "[1, 2]", '{"x": 1}', '{"key": 3}'])
def test_corruption_before_the_last_line_is_an_error_naming_the_line(tmp_path, bad):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"key": "a"}) + "\n" + bad + "\n" + json.dumps({"key": "c"}) + "\n")
    with pytest.raises(CorruptStore, match="line 2"):
        RecordStore(path)


def test_a_complete_last_line_that_is_not_a_record_is_corruption_not_a_cut(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"key": "a"}) + "\n" + "[1, 2]\n")
    with pytest.raises(CorruptStore, match="line 2"):
        RecordStore(path)


def test_a_record_needs_a_string_key(tmp_path):
    store = RecordStore(tmp_path / "r.jsonl")
    for bad in ({"x": 1}, {"key": 1}, ["key"]):
        with pytest.raises(TypeError, match="key"):
            store.append(bad)
    assert not (tmp_path / "r.jsonl").exists()
