"""Sweeps, ``python -m ambridge.sweep`` (:mod:`ambridge.book.sweep` and its parts): grid files and run ids without a
cluster, then end to end on a 2-worker ``LocalCluster`` on loopback (processes, one thread each) running the fixture
chapter ``tests/fixtures/chapters/99_fixture.md`` (total = scale * n(n+1)/2; n must lie in [1, 100]).

Each run starts one kernel (about 4 s, more on a busy machine), so the grids are tiny. The two kill tests kill
from here, with signals, as an operator or a batch system would: a worker in the middle of a run, and a whole sweep
after its first record; production code has no hook for them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

import ambridge
from ambridge.book import sweep, sweep_grid, sweep_table, sweep_task
from ambridge.book.errors import UsageError

FIXTURE = Path(__file__).parent / "fixtures" / "chapters" / "99_fixture.md"
FIXTURE_DEFAULTS = {"seed": 0, "n": 10, "scale": 1.5, "device": "auto", "pause": 0.0}


def _grid(tmp_path: Path, spec: dict, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _total(n: int, scale: float) -> float:
    return scale * n * (n + 1) / 2


def _stored(out: Path) -> list[dict]:
    """The lines of a sweep's record store, in file order."""
    return [json.loads(line) for line in (out / sweep_table.RECORDS).read_text().splitlines()]


# ------------------------------------------------------------------------------------------ no cluster needed


def test_expand_takes_the_product_with_the_runners_types(tmp_path):
    grid = sweep_grid.load_grid(_grid(tmp_path, {"fixed": {"device": "cpu"}, "grid": {"n": [2, 3, 4], "scale": [1, 2.5]}}))
    runs = sweep_grid.expand(FIXTURE, grid)
    assert [r.point for r in runs][:3] == [{"n": 2, "scale": 1.0}, {"n": 2, "scale": 2.5}, {"n": 3, "scale": 1.0}]
    assert len(runs) == 6 and len({r.run_id for r in runs}) == 6
    assert type(runs[0].point["scale"]) is float  # `1` given for a float parameter becomes 1.0, as with -p
    assert runs[0].parameters == {**FIXTURE_DEFAULTS, "n": 2, "scale": 1.0, "device": "cpu"}  # the full dict
    assert runs[0].chosen == {"device": "cpu", "n": 2, "scale": 1.0}


def test_run_id_is_content_addressed(tmp_path):
    grid = sweep_grid.load_grid(_grid(tmp_path, {"grid": {"n": [5]}}))
    (rid,) = [r.run_id for r in sweep_grid.expand(FIXTURE, grid)]
    same = sweep_grid.load_grid(_grid(tmp_path, {"fixed": {"scale": 1.5}, "grid": {"n": [5]}}, "same.yaml"))
    assert sweep_grid.expand(FIXTURE, same)[0].run_id == rid  # a value equal to the default: the same run
    edited = tmp_path / "99_fixture.md"
    edited.write_bytes(FIXTURE.read_bytes() + b"\n")
    assert sweep_grid.expand(edited, grid)[0].run_id != rid  # a changed chapter: a new run
    run_id = sweep_grid.run_id
    assert run_id(b"x", {"a": 1}) == run_id(b"x", {"a": 1}) != run_id(b"x", {"a": 2})


def test_runs_differing_only_in_seed_are_different_runs(tmp_path):
    """A resumed sweep must not take seed 1's run for seed 0's: the seed is part of the run id."""
    grid = sweep_grid.load_grid(_grid(tmp_path, {"fixed": {"n": 5}, "grid": {"seed": [0, 1, 2]}}))
    runs = sweep_grid.expand(FIXTURE, grid)
    assert [r.point for r in runs] == [{"seed": 0}, {"seed": 1}, {"seed": 2}]  # none merged into another
    assert len({r.run_id for r in runs}) == 3
    parameters = {**FIXTURE_DEFAULTS, "n": 5}
    source = FIXTURE.read_bytes()
    assert sweep_grid.run_id(source, parameters) != sweep_grid.run_id(source, {**parameters, "seed": 1})


def test_a_new_library_version_makes_new_runs(tmp_path, monkeypatch):
    """Runs done by another release of ``ambridge`` are not reused: the version, read when the id is computed, is
    part of the run id."""
    grid = sweep_grid.load_grid(_grid(tmp_path, {"grid": {"n": [5, 6]}}))
    before = [r.run_id for r in sweep_grid.expand(FIXTURE, grid)]
    direct = sweep_grid.run_id(b"x", {"a": 1})
    monkeypatch.setattr(ambridge, "__version__", ambridge.__version__ + ".post1")
    after = [r.run_id for r in sweep_grid.expand(FIXTURE, grid)]
    assert len(after) == 2 and not set(after) & set(before)
    assert sweep_grid.run_id(b"x", {"a": 1}) != direct


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
        sweep_grid.load_grid(_grid(tmp_path, spec))


def test_grid_file_must_be_a_yaml_mapping(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("- n\n- 3\n")
    with pytest.raises(UsageError, match=r"grid file .*grid.yaml must be a YAML mapping with a `grid:` entry"):
        sweep_grid.load_grid(path)


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
    assert not (tmp_path / "o").exists()  # nothing written, not even the output folder
    with pytest.raises(UsageError, match=r"unknown parameter 'sacle'"):
        sweep.run_sweep(FIXTURE, _grid(tmp_path, {"fixed": {"sacle": 2}, "grid": {"n": [1]}}, "g2.yaml"),
                        out=tmp_path / "o2", scheduler="tcp://127.0.0.1:9")


def test_a_corrupt_record_store_is_an_error_not_a_rerun(tmp_path, capsys, no_cluster):
    """A damaged line in the middle of records.jsonl stops the sweep (exit 2) instead of silently redoing runs."""
    out = tmp_path / "out"
    out.mkdir()
    (out / sweep_table.RECORDS).write_text('{"key": "a", "status": "ok"}\nnot json\n{"key": "b"}\n')
    grid = _grid(tmp_path, {"grid": {"n": [1]}})
    assert sweep.main([str(FIXTURE), str(grid), "--scheduler", "tcp://127.0.0.1:9", "--out", str(out)]) == 2
    assert "records.jsonl, line 2" in capsys.readouterr().err


def test_a_worker_with_another_source_records_a_failure(tmp_path):
    """A run is only recorded under its id if the worker runs the very source the id was computed from."""
    record = sweep_task.execute_run(str(FIXTURE), "0123456789abcdef", {"n": 2}, {"n": 2}, str(tmp_path), "0" * 64)
    assert record["status"] == "failed" and record["error"]["ename"] == "SourceMismatch"
    assert record["run_id"] == "0123456789abcdef" and record["ambridge_version"] == ambridge.__version__
    assert not (tmp_path / "notebooks").exists()  # nothing ran


def test_a_dead_kernel_is_raised_for_dask_to_retry(tmp_path, monkeypatch):
    """A failure outside the chapter's cells (the runner's record has no cell index) is raised, not recorded, so
    that dask's ``retries=`` attempts the run again; the last attempt's error is recorded by the sweep."""
    import hashlib

    launched = []

    def dead_kernel(argv, **kwargs):  # what the runner writes when the kernel dies before the first cell
        launched.append(argv)
        out = Path(argv[argv.index("-o") + 1])
        out.with_suffix(".json").write_text(json.dumps(
            {"status": "failed", "error": {"ename": "RuntimeError", "evalue": "Kernel died before replying"}}))
        return subprocess.CompletedProcess(argv, 1, "", "")

    monkeypatch.setattr(subprocess, "run", dead_kernel)
    sha = hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    with pytest.raises(sweep_task.TransientFailure, match="RuntimeError: Kernel died before replying"):
        sweep_task.execute_run(str(FIXTURE), "0123456789abcdef", {"n": 2}, {"n": 2}, str(tmp_path), sha)
    (argv,) = launched  # the run's own process: the worker module, told whose death must stop it
    assert argv[1:5] == ["-m", "ambridge.book.worker", str(os.getpid()), str(FIXTURE)]
    assert list((tmp_path / "tmp").iterdir()) == []  # the attempt's scratch is cleaned up


def test_the_run_process_does_not_start_when_its_parent_is_gone(tmp_path):
    """``python -m ambridge.book.worker PID ...`` whose parent is not PID (it died before the guard was set) runs
    nothing and exits 143, as if stopped by SIGTERM."""
    out = tmp_path / "out.ipynb"
    proc = subprocess.run([sys.executable, "-m", "ambridge.book.worker", "1", str(FIXTURE), "-q", "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 143, proc.stderr
    assert list(tmp_path.iterdir()) == []
    usage = subprocess.run([sys.executable, "-m", "ambridge.book.worker"], capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("usage:")


def test_summary_figure_from_a_table(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    rows = [{"run_id": f"{a}{b}{s}", "status": "ok", "a": a, "b": b, "seed": s,
             "result.y": a * (2 if b == "v" else 1) + s, "result.label": "text"}
            for a in (1, 2, 4) for b in ("u", "v") for s in (0, 1)]
    rows.append({"run_id": "bad", "status": "failed", "a": 8, "b": "u", "seed": 0})
    path = sweep_table.plot_summary(pd.DataFrame(rows), ["a", "b", "seed"], tmp_path / "s.png", title="t")
    assert path.stat().st_size > 10_000
    assert sweep_table.plot_summary(pd.DataFrame(rows[-1:]), ["a"], tmp_path / "none.png", title="t") is None


# ------------------------------------------------------------------------------------------ on a cluster


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes on loopback, one thread each."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as local:
        yield local


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
    assert list(table.columns[:7]) == ["run_id", "status", "seed", "n", "scale", "device", "pause"]
    assert list(table.columns[7:]) == ["result.n", "result.total", "wall_time_s", "hardware", "commit", "error"]
    for _, row in table.iterrows():
        assert row["result.n"] == row["n"] and row["result.total"] == pytest.approx(_total(row["n"], row["scale"]))
    assert sorted(zip(table["n"], table["scale"])) == [(3, 1.0), (3, 2.5), (5, 1.0), (5, 2.5)]
    record = json.loads((out / "sweep.json").read_text())
    assert record["runs"] == 4 and record["ok"] == 4 and record["failed"] == [] and record["executed"] == 4
    assert record["parameters"]["grid"] == {"n": [3, 5], "scale": [1.0, 2.5]} and record["commit"]
    assert (out / "summary.png").stat().st_size > 10_000
    stored = _stored(out)  # one line per run, keyed by its run id, with the runner's record in it
    assert sorted(r["key"] for r in stored) == sorted(table["run_id"]) and all(r["key"] == r["run_id"] for r in stored)
    assert all(r["status"] == "ok" and r["results"]["n"] == r["parameters"]["n"] for r in stored)
    assert sorted(p.stem for p in (out / "notebooks").glob("*.ipynb")) == sorted(table["run_id"])
    assert "[4/4] ok" in progress and "Dask dashboard: " in progress


def test_resume_runs_only_what_is_missing(small_sweep, cluster, tmp_path):
    out, grid, _ = small_sweep
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    store = copy / sweep_table.RECORDS
    lines = store.read_text().splitlines(keepends=True)
    lost = json.loads(lines[1])["key"]
    kept = "".join(lines[:1] + lines[2:])
    store.write_text(kept)  # as if the sweep had been interrupted before this run finished
    result = sweep.run_sweep(FIXTURE, grid, out=copy, scheduler=cluster.scheduler_address, quiet=True)
    assert result.executed == [lost] and len(result.skipped) == 3 and result.ok
    assert store.read_text().startswith(kept)  # the others were not rerun: their records are untouched
    (new,) = _stored(copy)[3:]
    assert new["key"] == lost and new["status"] == "ok"
    table = pd.read_csv(copy / "table.csv")
    assert len(table) == 4 and table["run_id"].is_unique and (table["status"] == "ok").all()

    again = sweep.run_sweep(FIXTURE, grid, out=copy, scheduler=cluster.scheduler_address, quiet=True)
    assert again.executed == [] and len(again.skipped) == 4  # nothing left to do: no cluster work at all
    assert len(_stored(copy)) == 4


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
    assert {r["key"]: r["status"] for r in _stored(tmp_path / "out")} == dict(zip(table["run_id"], table["status"]))


#: Seconds the runs of the worker-kill test wait in their last cell: long enough that a run that outlived its killed
#: worker is told apart from one that stopped with it.
PAUSE = 20.0


def _run_processes(root: psutil.Process) -> list[psutil.Process]:
    """The runs' own processes (``python -m ambridge.book.worker``) among the descendants of ``root``."""
    found = []
    for proc in root.children(recursive=True):
        try:
            if "ambridge.book.worker" in proc.cmdline():
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _check_every_run_once(out: Path, runs, scale: float = 1.5) -> None:
    table = pd.read_csv(out / "table.csv")
    assert sorted(table["run_id"]) == sorted(r.run_id for r in runs) and table["run_id"].is_unique
    assert (table["status"] == "ok").all()
    assert dict(zip(table["n"], table["result.total"])) == {r.point["n"]: pytest.approx(_total(r.point["n"], scale))
                                                            for r in runs}


def test_killed_worker_loses_and_duplicates_nothing(cluster, tmp_path):
    """A worker is killed (SIGKILL, from here) in the middle of a run: the run's own process and its kernel stop with
    it at once (the run would go on for PAUSE seconds otherwise), Dask reschedules the task, and the table holds every
    run exactly once, with the right result."""
    grid = _grid(tmp_path, {"fixed": {"device": "cpu", "pause": PAUSE}, "grid": {"n": [6, 7]}})
    runs = sweep_grid.expand(FIXTURE, sweep_grid.load_grid(grid))
    finished: dict = {}

    def sweep_in_background():
        finished["result"] = sweep.run_sweep(FIXTURE, grid, out=tmp_path / "out", scheduler=cluster.scheduler_address,
                                             retries=2, quiet=True)

    thread = threading.Thread(target=sweep_in_background)
    thread.start()
    try:
        child = _wait_for(lambda: _run_processes(psutil.Process()), 120, "a run to start")[0]
        kernel = _wait_for(lambda: child.children(recursive=True), 120, "the run's kernel to start")
        orphans = [child, *kernel]
        child.parent().kill()  # the Dask worker process
        gone, alive = psutil.wait_procs(orphans, timeout=PAUSE / 2)
        alive = [p for p in alive if _running(p)]  # a zombie has exited; it only waits for its parent to reap it
        assert not alive, f"the killed worker's run left processes behind: {[p.pid for p in alive]}"
    finally:
        thread.join(timeout=600)
    assert not thread.is_alive() and "result" in finished
    result = finished["result"]
    assert result.ok and sorted(result.executed) == sorted(r.run_id for r in runs)
    _check_every_run_once(tmp_path / "out", runs)
    assert sorted(r["key"] for r in _stored(tmp_path / "out")) == sorted(r.run_id for r in runs)
    assert not (tmp_path / "out" / "tmp").exists()  # the killed attempt's scratch is cleaned up


def test_killed_sweep_resumes_without_losing_or_repeating_a_run(cluster, tmp_path):
    """A whole sweep (its own local cluster) is killed with SIGKILL right after its first record is stored, as a
    batch system ending a job would: none of its processes survive it, and the same command then runs only the
    runs not stored, leaving every run in the table exactly once."""
    grid = _grid(tmp_path, {"fixed": {"device": "cpu"}, "grid": {"n": [6, 7, 8]}})
    runs = sweep_grid.expand(FIXTURE, sweep_grid.load_grid(grid))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ambridge.sweep", str(FIXTURE), str(grid), "--workers", "1", "--out", str(out),
               "--quiet"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        store = out / sweep_table.RECORDS
        _wait_for(lambda: driver.poll() is not None or (store.is_file() and store.read_text().count("\n") >= 1),
                  240, "the first record")
        assert driver.poll() is None, f"the sweep ended before it was killed: {driver.stderr.read()}"
        everything = psutil.Process(driver.pid).children(recursive=True)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        gone, alive = psutil.wait_procs(everything, timeout=60)
        alive = [p for p in alive if _running(p)]
        assert not alive, f"the killed sweep left processes behind: {[p.pid for p in alive]}"
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.stderr.close()
    stored = [r["key"] for r in _stored(out)]
    assert 1 <= len(stored) < len(runs) and all(r["status"] == "ok" for r in _stored(out))

    result = sweep.run_sweep(FIXTURE, grid, out=out, scheduler=cluster.scheduler_address, quiet=True)
    assert sorted(result.skipped) == sorted(stored)
    assert sorted(result.executed) == sorted(set(r.run_id for r in runs) - set(stored)) and result.ok
    _check_every_run_once(out, runs)
    assert sorted(r["key"] for r in _stored(out)) == sorted(r.run_id for r in runs)  # no run stored twice
