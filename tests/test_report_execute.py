"""The chapter helpers not covered elsewhere: markdown tables, in-place re-execution, hardware summaries."""

import hashlib
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from ambridge.book.execute import execute_chapter
from ambridge.report import markdown_table
from ambridge.runtime import hardware_summary

FIXTURE = Path(__file__).parent / "fixtures" / "chapters" / "99_fixture.md"


def test_markdown_table_renders_rows_and_escapes_pipes():
    table = markdown_table(["claim", "verdict"], [("a | b", "holds"), ("c\nd", 3)])
    assert table.data.splitlines() == [
        "| claim | verdict |",
        "|---|---|",
        "| a \\| b | holds |",
        "| c d | 3 |",
    ]


def test_markdown_table_refuses_ragged_rows():
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        markdown_table(["a", "b"], [(1, 2), (3,)])


def test_hardware_summary_names_the_cpu_and_torch():
    text = hardware_summary("cpu")
    assert "cores" in text and "torch" in text


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_execute_writes_a_byte_stable_executed_notebook(tmp_path):
    md = tmp_path / "99_fixture.md"
    shutil.copy(FIXTURE, md)
    execute_chapter(md)
    first = _sha(md.with_suffix(".ipynb"))
    execute_chapter(md)
    assert _sha(md.with_suffix(".ipynb")) == first, "re-executing an unchanged chapter changed its .ipynb"
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "result: n=10 scale=1.5 total=82.50 on cpu" in printed
    assert all("execution" not in c.metadata for c in nb.cells)


def test_execute_keeps_the_old_notebook_when_a_cell_fails(tmp_path):
    md = tmp_path / "99_fixture.md"
    shutil.copy(FIXTURE, md)
    execute_chapter(md)
    before = _sha(md.with_suffix(".ipynb"))
    md.write_text(md.read_text().replace("n = 10 ", "n = 1000 "))  # out of range: the validation cell raises
    with pytest.raises(CellExecutionError, match="parameter `n` = 1000"):
        execute_chapter(md)
    assert _sha(md.with_suffix(".ipynb")) == before


def test_consecutive_prints_become_one_output_per_stream():
    import nbformat

    from ambridge.book.execute import merge_streams

    out = nbformat.v4.new_output
    outputs = [
        out("stream", name="stdout", text="a\n"),
        out("stream", name="stdout", text="b\n"),
        out("display_data", data={"text/plain": "fig"}),
        out("stream", name="stdout", text="c\n"),
        out("stream", name="stderr", text="w\n"),
    ]
    merged = merge_streams(outputs)
    assert [(o.output_type, o.get("name"), o.get("text")) for o in merged] == [
        ("stream", "stdout", "a\nb\n"),
        ("display_data", None, None),
        ("stream", "stdout", "c\n"),
        ("stream", "stderr", "w\n"),
    ]
