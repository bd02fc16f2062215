"""Sweeps, ``python -m ambridge.sweep``: grid files and run ids without a cluster, then end to end on a 2-worker
``LocalCluster`` on loopback (processes, one thread each) running the fixture chapter ``tests/fixtures/chapters/
99_fixture.md`` (total = scale * n(n+1)/2; n must lie in [1, 100]).

Each run starts one kernel (about 4 s, more on a busy machine), so the grids are tiny: 10 kernel runs in the
whole file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ambridge import sweep
from ambridge.run import UsageError

FIXTURE = Path(__file__).parent / "fixtures" / "chapters" / "99_fixture.md"


def _grid(tmp_path: Path, spec: dict, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _total(n: int, scale: float) -> float:
    return scale * n * (n + 1) / 2


# ------------------------------------------------------------------------------------------ no cluster needed


def test_expand_takes_the_product_with_the_runners_types(tmp_path):
    grid = sweep.load_grid(_grid(tmp_path, {"fixed": {"device": "cpu"}, "grid": {"n": [2, 3, 4], "scale": [1, 2.5]}}))
    runs = sweep.expand(FIXTURE, grid)
    assert [r.point for r in runs][:3] == [{"n": 2, "scale": 1.0}, {"n": 2, "scale": 2.5}, {"n": 3, "scale": 1.0}]
    assert len(runs) == 6 and len({r.run_id for r in runs}) == 6
    assert type(runs[0].point["scale"]) is float  # `1` given for a float parameter becomes 1.0, as with -p
    assert runs[0].parameters == {"seed": 0, "n": 2, "scale": 1.0, "device": "cpu"}  # the full parameter dict
    assert runs[0].chosen == {"device": "cpu", "n": 2, "scale": 1.0}


def test_run_id_is_content_addressed(tmp_path):
    grid = sweep.load_grid(_grid(tmp_path, {"grid": {"n": [5]}}))
    (rid,) = [r.run_id for r in sweep.expand(FIXTURE, grid)]
    same = sweep.load_grid(_grid(tmp_path, {"fixed": {"scale": 1.5}, "grid": {"n": [5]}}, "same.yaml"))
    assert sweep.expand(FIXTURE, same)[0].run_id == rid  # a value equal to the default: the same run
    edited = tmp_path / "99_fixture.md"
    edited.write_bytes(FIXTURE.read_bytes() + b"\n")
    assert sweep.expand(edited, grid)[0].run_id != rid  # a changed chapter: a new run
    assert sweep.run_id(b"x", {"a": 1}) == sweep.run_id(b"x", {"a": 1}) != sweep.run_id(b"x", {"a": 2})


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"grid": {"n": 3}}, r"`grid: n` must be a non-empty list"),
        ({"grid": {"n": [3]}, "fixed": {"n": 4}}, "both swept and fixed"),
        ({"grid": {"n": [3]}, "n": 5}, r"unknown entry 'n'"),
        ({"fixed": {"n": 3}}, r"`grid:` must map parameter names to lists"),
        ({"grid": {"n": [3]}, "figure": {"x": "seed"}}, r"`figure:` may set"),
    ],
)
def test_grid_file_shape_errors(tmp_path, spec, message):
    with pytest.raises(UsageError, match=message):
        sweep.load_grid(_grid(tmp_path, spec))


@pytest.fixture
def no_cluster(monkeypatch):
    """Make any attempt to reach or start a cluster fail the test."""
    import distributed

    def refuse(*args, **kwargs):
        raise AssertionError("a cluster was contacted")

    monkeypatch.setattr(distributed, "Client", refuse)
    monkeypatch.setattr(distributed, "LocalCluster", refuse)


def test_unknown_parameter_is_an_error_before_submission(tmp_path, capsys, no_cluster):
    grid = _grid(tmp_path, {"fixed": {"scale": 2.0}, "grid": {"n": [1, 2], "nn": [3]}})
    code = sweep.main([str(FIXTURE), str(grid), "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown parameter 'nn' (in preset grid.yaml, `grid:`)" in err and "n = 10" in err  # lists valid names
    assert not (tmp_path / "o" / "records").exists() or not any((tmp_path / "o" / "records").iterdir())
    with pytest.raises(UsageError, match=r"unknown parameter 'sacle'"):
        sweep.run_sweep(FIXTURE, _grid(tmp_path, {"fixed": {"sacle": 2}, "grid": {"n": [1]}}, "g2.yaml"),
                        out=tmp_path / "o2", scheduler="tcp://127.0.0.1:9")


def test_a_worker_with_another_source_records_a_failure(tmp_path):
    """A run is only recorded under its id if the worker runs the very source the id was computed from."""
    record = sweep.execute_run(str(FIXTURE), "0123456789abcdef", {"n": 2}, {"n": 2}, str(tmp_path), "0" * 64)
    assert record["status"] == "failed" and record["error"]["ename"] == "SourceMismatch"
    assert json.loads((tmp_path / "records" / "0123456789abcdef.json").read_text()) == record


def test_a_dead_kernel_is_raised_for_dask_to_retry(tmp_path, monkeypatch):
    """A failure outside the chapter's cells (the runner's record has no cell index) is raised, not recorded, so
    that dask's ``retries=`` attempts the run again; the last attempt's error is recorded by the sweep."""
    import hashlib
    import subprocess

    def dead_kernel(argv, **kwargs):  # what the runner writes when the kernel dies before the first cell
        out = Path(argv[argv.index("-o") + 1])
        out.with_suffix(".json").write_text(json.dumps(
            {"status": "failed", "error": {"ename": "RuntimeError", "evalue": "Kernel died before replying"}}))
        return subprocess.CompletedProcess(argv, 1, "", "")

    monkeypatch.setattr(subprocess, "run", dead_kernel)
    sha = hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    with pytest.raises(sweep.TransientFailure, match="RuntimeError: Kernel died before replying"):
        sweep.execute_run(str(FIXTURE), "0123456789abcdef", {"n": 2}, {"n": 2}, str(tmp_path), sha)
    assert not (tmp_path / "records" / "0123456789abcdef.json").exists()


def test_summary_figure_from_a_table(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    rows = [{"run_id": f"{a}{b}{s}", "status": "ok", "a": a, "b": b, "seed": s,
             "result.y": a * (2 if b == "v" else 1) + s, "result.label": "text"}
            for a in (1, 2, 4) for b in ("u", "v") for s in (0, 1)]
    rows.append({"run_id": "bad", "status": "failed", "a": 8, "b": "u", "seed": 0})
    path = sweep.plot_summary(pd.DataFrame(rows), ["a", "b", "seed"], tmp_path / "s.png", title="t")
    assert path.stat().st_size > 10_000
    assert sweep.plot_summary(pd.DataFrame(rows[-1:]), ["a"], tmp_path / "none.png", title="t") is None


# ------------------------------------------------------------------------------------------ on a cluster


@pytest.fixture(scope="module")
def kill_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("kill")


@pytest.fixture(scope="module")
def cluster(kill_dir):
    """Two worker processes on loopback, one thread each; they inherit the (test-only) kill hook's folder."""
    from distributed import LocalCluster

    os.environ[sweep.KILL_ENV] = str(kill_dir)
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=":0") as local:
            yield local
    finally:
        os.environ.pop(sweep.KILL_ENV, None)


@pytest.fixture(scope="module")
def small_sweep(cluster, tmp_path_factory):
    """n in {3, 5} x scale in {1.0, 2.5} through the command line: 4 runs. Returns (out folder, grid, stderr)."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("small")
    grid = _grid(folder, {"fixed": {"device": "cpu"}, "grid": {"n": [3, 5], "scale": [1.0, 2.5]}})
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = sweep.main([str(FIXTURE), str(grid), "--scheduler", cluster.scheduler_address,
                           "--out", str(folder / "out")])
    assert code == 0, err.getvalue()
    return folder / "out", grid, err.getvalue()


def test_small_grid_end_to_end(small_sweep):
    out, grid, progress = small_sweep
    table = pd.read_csv(out / "table.csv")
    assert len(table) == 4 and table["run_id"].is_unique and (table["status"] == "ok").all()
    assert list(table.columns[:6]) == ["run_id", "status", "seed", "n", "scale", "device"]
    assert list(table.columns[6:]) == ["result.n", "result.total", "wall_time_s", "hardware", "commit", "error"]
    for _, row in table.iterrows():
        assert row["result.n"] == row["n"] and row["result.total"] == pytest.approx(_total(row["n"], row["scale"]))
    assert sorted(zip(table["n"], table["scale"])) == [(3, 1.0), (3, 2.5), (5, 1.0), (5, 2.5)]
    record = json.loads((out / "sweep.json").read_text())
    assert record["runs"] == 4 and record["ok"] == 4 and record["failed"] == [] and record["executed"] == 4
    assert record["parameters"]["grid"] == {"n": [3, 5], "scale": [1.0, 2.5]} and record["commit"]
    assert (out / "summary.png").stat().st_size > 10_000
    assert len(list((out / "records").glob("*.json"))) == 4 and len(list((out / "notebooks").glob("*.ipynb"))) == 4
    assert "[4/4] ok" in progress and "Dask dashboard: " in progress


def test_resume_runs_only_what_is_missing(small_sweep, cluster, tmp_path):
    out, grid, _ = small_sweep
    copy = tmp_path / "out"
    shutil.copytree(out, copy)  # keeps mtimes
    records = sorted((copy / "records").glob("*.json"))
    lost = records[1]
    lost.unlink()  # as if the sweep had been interrupted before this run finished
    before = {p.name: p.stat().st_mtime_ns for p in records if p != lost}
    result = sweep.run_sweep(FIXTURE, grid, out=copy, scheduler=cluster.scheduler_address, quiet=True)
    assert result.executed == [lost.stem] and len(result.skipped) == 3 and result.ok
    assert {p.name: p.stat().st_mtime_ns for p in records if p != lost} == before  # the others were not rerun
    assert json.loads(lost.read_text())["status"] == "ok"
    table = pd.read_csv(copy / "table.csv")
    assert len(table) == 4 and table["run_id"].is_unique and (table["status"] == "ok").all()

    again = sweep.run_sweep(FIXTURE, grid, out=copy, scheduler=cluster.scheduler_address, quiet=True)
    assert again.executed == [] and len(again.skipped) == 4  # nothing left to do: no cluster work at all


def test_failing_run_is_recorded_and_the_sweep_goes_on(cluster, tmp_path, capsys):
    grid = _grid(tmp_path, {"fixed": {"device": "cpu", "scale": 2.0}, "grid": {"n": [4, 1000]}})
    code = sweep.main([str(FIXTURE), str(grid), "--scheduler", cluster.scheduler_address, "--out",
                       str(tmp_path / "out"), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 1  # some runs failed
    table = pd.read_csv(tmp_path / "out" / "table.csv")
    ok, bad = table[table["n"] == 4].iloc[0], table[table["n"] == 1000].iloc[0]
    assert ok["status"] == "ok" and ok["result.total"] == pytest.approx(_total(4, 2.0)) and pd.isna(ok["error"])
    assert bad["status"] == "failed" and pd.isna(bad["result.total"])
    assert bad["error"] == "ParameterError: parameter `n` = 1000: must be an integer in [1, 100]"
    assert "2 runs: 1 ok, 1 failed" in printed and "n=1000: ParameterError: parameter `n` = 1000" in printed
    record = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [f["point"] for f in record["failed"]] == [{"n": 1000}]


def test_killed_worker_loses_and_duplicates_nothing(cluster, kill_dir, tmp_path):
    """Two runs kill their worker on their first attempt: one before its record is written (the result would be
    lost without a retry), one just after (a retry could write a second record). The table must still hold every
    run exactly once, with the right result."""
    grid = _grid(tmp_path, {"fixed": {"device": "cpu"}, "grid": {"n": [6, 7]}})
    runs = sweep.expand(FIXTURE, sweep.load_grid(grid))
    markers = [kill_dir / f"{runs[0].run_id}.unrecorded", kill_dir / f"{runs[1].run_id}.recorded"]
    for marker in markers:
        marker.touch()
    result = sweep.run_sweep(FIXTURE, grid, out=tmp_path / "out", scheduler=cluster.scheduler_address,
                             retries=2, quiet=True)
    assert not any(m.exists() for m in markers), "the kill hook never fired"
    assert result.ok and sorted(result.executed) == sorted(r.run_id for r in runs)
    table = pd.read_csv(tmp_path / "out" / "table.csv")
    assert sorted(table["run_id"]) == sorted(r.run_id for r in runs) and table["run_id"].is_unique
    assert (table["status"] == "ok").all()
    assert dict(zip(table["n"], table["result.total"])) == {n: pytest.approx(_total(n, 1.5)) for n in (6, 7)}
    assert sorted(p.stem for p in (tmp_path / "out" / "records").glob("*.json")) == sorted(r.run_id for r in runs)
    assert not (tmp_path / "out" / "tmp").exists()  # the killed attempts' scratch is cleaned up
