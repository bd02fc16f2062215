"""The chapter runner, ``python -m ambridge.run`` (:mod:`ambridge.book.run`, with :mod:`ambridge.book.chapters`,
:mod:`ambridge.book.params` and :mod:`ambridge.book.presets`): argument handling without a kernel, then end to end.

The end-to-end tests execute ``tests/fixtures/chapters/99_fixture.md`` (a tiny chapter outside the book) through
:func:`ambridge.book.run.main`; each starts one kernel (~5 s). Outputs go to ``tmp_path`` via ``--output``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import papermill
import pytest
import torch

from ambridge.book import chapters, params, presets, run
from ambridge.book.errors import UsageError

FIXTURE = Path(__file__).parent / "fixtures" / "chapters" / "99_fixture.md"
FIXTURE_DEFAULTS = {"seed": 0, "n": 10, "scale": 1.5, "device": "auto", "pause": 0.0}


def _run(tmp_path: Path, *args: str) -> tuple[int, Path]:
    """Run the fixture chapter quietly into tmp_path; return the exit code and the output notebook path."""
    out = tmp_path / "out.ipynb"
    return run.main([str(FIXTURE), "-q", "--output", str(out), *args]), out


def _printed(notebook: Path) -> str:
    """All stdout the executed notebook's cells printed."""
    cells = json.loads(notebook.read_text())["cells"]
    return "".join(
        "".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"]
        if o.get("name") == "stdout"
    )


@pytest.fixture
def no_kernel(monkeypatch):
    """Make any attempt to execute a notebook fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a notebook was executed")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)


# ------------------------------------------------------------------------------------------ no kernel needed


def test_resolve_chapter_spellings():
    md = chapters.resolve_chapter("01")
    assert md.name == "01_energy_is_nll.md" and md.parent.name == "chapters"
    assert chapters.resolve_chapter("1") == md
    assert chapters.resolve_chapter("01_energy_is_nll") == md
    assert chapters.resolve_chapter(str(md)) == md
    assert chapters.resolve_chapter(md.with_suffix(".ipynb")) == md
    assert chapters.resolve_chapter(FIXTURE) == FIXTURE.resolve()


def test_unknown_chapter_lists_the_available_ones():
    with pytest.raises(UsageError, match=r"unknown chapter '77'.*01_energy_is_nll"):
        chapters.resolve_chapter("77")


def test_chapter_parameters_reads_defaults_in_order():
    assert params.chapter_parameters(FIXTURE) == FIXTURE_DEFAULTS
    assert list(params.chapter_parameters(FIXTURE)) == list(FIXTURE_DEFAULTS)


def test_parse_parameters_keeps_non_literals_as_text():
    parsed = params.parse_parameters('a = 1  # one\nb: float = 2.5\nc = 2 ** 10\nd = e = "x"\nprint(a)\n')
    assert parsed == {"a": 1, "b": 2.5, "c": "2 ** 10", "d": "x", "e": "x"}
    assert isinstance(parsed["c"], params.Unevaluated)
    plain = params.jsonable_parameters(parsed)  # what papermill and the run record get: plain text, not the wrapper
    assert plain == parsed and type(plain["c"]) is str and type(plain["a"]) is int


@pytest.mark.parametrize(
    "text, default, expected",
    [
        ("8", 4.0, 8),  # int here; merge_parameters makes it 8.0 for a float parameter
        ("8.0", 4, 8.0),
        ("1e-3", 0.5, 1e-3),  # YAML 1.1 reads 1e-3 as text
        ("true", False, True),
        ("cuda", "auto", "cuda"),
        ("no", "yes", "no"),  # a text parameter keeps the text: YAML would say False
        ("[1, 2]", None, [1, 2]),
        ("[1,", None, "[1,"),  # not YAML: passed on as text for the chapter to refuse
    ],
)
def test_parse_value(text, default, expected):
    value = params.parse_value(text, default)
    assert value == expected and type(value) is type(expected)


def test_merge_order_and_float_coercion():
    chosen = params.merge_parameters(
        FIXTURE_DEFAULTS, [("a", {"n": 3, "scale": 2}), ("b", {"n": 4})], [("seed", "7")], device="cpu"
    )
    assert chosen == {"n": 4, "scale": 2.0, "seed": 7, "device": "cpu"}
    assert type(chosen["scale"]) is float


def test_unknown_name_in_preset_is_an_error():
    with pytest.raises(UsageError, match=r"unknown parameter 'nope' \(in preset p.yaml\)"):
        params.merge_parameters(FIXTURE_DEFAULTS, [("p.yaml", {"nope": 1})])


def test_device_needs_a_device_parameter():
    with pytest.raises(UsageError, match="no `device` parameter"):
        params.merge_parameters({"n": 1}, device="cpu")


def test_parameters_hash_ignores_order():
    assert params.parameters_hash({"a": 1, "b": 2.0}) == params.parameters_hash({"b": 2.0, "a": 1})
    assert params.parameters_hash({"a": 1}) != params.parameters_hash({"a": 2})
    assert len(params.parameters_hash({"a": 1})) == 8


def test_unknown_parameter_exits_2_and_runs_nothing(tmp_path, capsys, no_kernel):
    code, out = _run(tmp_path, "-p", "nope", "1")
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'nope'" in err
    for line in ("seed = 0", "n = 10", "scale = 1.5", "device = 'auto'", "pause = 0.0"):
        assert line in err
    assert list(tmp_path.iterdir()) == []


def test_unknown_preset_lists_the_presets(tmp_path, capsys, no_kernel):
    code, _ = _run(tmp_path, "-f", "huge")
    assert code == 2
    assert "presets of 99_fixture: paper, quick" in capsys.readouterr().err


def test_list_prints_the_parameters_cell(capsys, no_kernel):
    assert run.main([str(FIXTURE), "--list"]) == 0
    printed = capsys.readouterr().out
    assert "n = 10           # how many terms to sum" in printed and "presets: paper, quick" in printed


def test_failure_message_for_other_errors():
    from papermill.exceptions import PapermillExecutionError

    err = PapermillExecutionError(3, 4, "\nx = 1 / 0\n", "ZeroDivisionError", "division by zero", ["..."])
    message = run.describe_failure(err, Path("/x/out.ipynb"))
    assert message.splitlines() == [
        "error: ZeroDivisionError: division by zero",
        "in cell 4 (In [4]) starting `x = 1 / 0`",
        "partially executed notebook: /x/out.ipynb",
    ]


@pytest.mark.parametrize("module", ["ambridge.run", "ambridge.book.run"])
def test_module_entry_point_exit_code(module):
    """``python -m ambridge.run`` (the old path, ``make run``) and ``python -m ambridge.book.run`` return main's exit
    code to the shell."""
    proc = subprocess.run([sys.executable, "-m", module, str(FIXTURE), "-p", "nope", "1"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: unknown parameter 'nope'")


def test_module_entry_point_lists_a_book_chapter():
    proc = subprocess.run([sys.executable, "-m", "ambridge.run", "01", "--list"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("01_energy_is_nll: parameters") and "presets: paper, quick" in proc.stdout


def test_old_paths_are_aliases_of_the_book_package():
    """``ambridge.run``, ``ambridge.execute`` and ``ambridge.sweep`` re-export the very objects, for one release."""
    import ambridge.execute
    import ambridge.run
    import ambridge.sweep
    from ambridge.book import execute, sweep, sweep_grid, sweep_table, sweep_task

    for alias in (ambridge.run, ambridge.execute, ambridge.sweep):
        assert alias.__all__ and all(hasattr(alias, name) for name in alias.__all__)
    assert ambridge.run.UsageError is UsageError and ambridge.run.main is run.main
    assert ambridge.run.find_preset is presets.find_preset and ambridge.run.read_yaml_mapping is presets.read_yaml_mapping
    assert ambridge.run.merge_parameters is params.merge_parameters and ambridge.run.CHAPTER_PATTERN is chapters.CHAPTER_PATTERN
    assert ambridge.execute.record_timing is execute.record_timing and ambridge.execute.main is execute.main
    assert ambridge.sweep.run_sweep is sweep.run_sweep and ambridge.sweep.main is sweep.main
    assert ambridge.sweep.run_id is sweep_grid.run_id and ambridge.sweep.build_table is sweep_table.build_table
    assert ambridge.sweep.execute_run is sweep_task.execute_run


def test_preset_files_must_be_yaml_mappings(tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "good.yaml").write_text("n: 3\n")
    (folder / "list.yaml").write_text("- n\n- 3\n")
    (folder / "broken.yaml").write_text("n: [3\n")
    (folder / "empty.yaml").write_text("")
    assert presets.find_preset("good", folder, "mine", "of n: value") == {"n": 3}
    assert presets.find_preset(str(folder / "empty.yaml"), folder, "mine", "") == {}
    with pytest.raises(UsageError, match=r"preset .*list.yaml must be a YAML mapping of n: value"):
        presets.find_preset("list", folder, "mine", "of n: value")
    with pytest.raises(UsageError, match=r"preset .*broken.yaml is not valid YAML"):
        presets.find_preset("broken", folder, "mine", "of n: value")
    with pytest.raises(UsageError, match=r"no preset 'huge' .*presets of mine: broken, empty, good, list"):
        presets.find_preset("huge", folder, "mine", "of n: value")


# ------------------------------------------------------------------------------------------ end to end


def test_good_run_writes_notebook_and_record(tmp_path, capsys):
    code, out = _run(tmp_path, "-p", "n", "5")
    assert code == 0
    assert capsys.readouterr().out.split() == [str(out), str(out.with_suffix(".html"))]  # notebook, HTML copy
    assert "result: n=5 scale=1.5 total=22.50 on " in _printed(out)
    assert "result: n=5 scale=1.5 total=22.50 on " in out.with_suffix(".html").read_text()
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["status"] == "ok"
    assert record["parameters"] == {**FIXTURE_DEFAULTS, "n": 5}
    assert record["overrides"] == {"n": 5}
    assert record["chapter"] == "99_fixture" and record["wall_time_s"] > 0
    assert record["results"] == {"total": 22.5, "n": 5}  # published by the chapter's kernel
    assert not out.with_suffix(".results.json").exists()


def test_out_of_range_value_names_parameter_value_and_range(tmp_path, capsys):
    code, out = _run(tmp_path, "-p", "n", "1000")
    assert code == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: parameter `n` = 1000: must be an integer in [1, 100]"
    assert str(out) in err and "Traceback" not in err
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["status"] == "failed" and record["error"]["ename"] == "ParameterError"


def test_presets_merge_in_order(tmp_path):
    """A bare preset name, then a preset file; an int in a preset becomes a float for a float parameter."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("n: 7\n")
    code, out = _run(tmp_path, "-f", "paper", "-f", str(mine))
    assert code == 0
    assert "result: n=7 scale=2.0 total=56.00" in _printed(out)


def test_float_parameter_given_an_int(tmp_path):
    code, out = _run(tmp_path, "-p", "scale", "2")
    assert code == 0
    assert "result: n=10 scale=2.0 total=110.00" in _printed(out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_cuda_fails_clearly(tmp_path, capsys):
    code, _ = _run(tmp_path, "--device", "cuda")
    assert code == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: parameter `device` = 'cuda': CUDA is not available on this machine; use 'cpu' or 'auto'"
    )


def test_real_chapter_01_wiring(tmp_path, monkeypatch):
    """The book's first chapter reaches papermill as intended (not executed here: nbval runs it in full)."""
    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, **kw: calls.append((nb, out, kw)))
    out = tmp_path / "01.ipynb"
    assert run.main(["01", "-q", "-p", "beta", "8", "--output", str(out)]) == 0
    nb, path, kwargs = calls[0]
    assert path == str(out) and kwargs["parameters"] == {"beta": 8.0} and kwargs["kernel_name"] == "python3"
    assert Path(kwargs["cwd"]) == chapters.chapters_dir()
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["status"] == "ok" and record["parameters"]["beta"] == 8.0
