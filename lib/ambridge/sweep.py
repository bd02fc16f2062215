"""Run a chapter over a parameter grid on a Dask cluster: ``python -m ambridge.sweep CHAPTER GRID.yaml``.

A sweep is many reruns of one chapter, each one exactly what ``python -m ambridge.run`` does (the same parameter
checks, the same executed notebook, the same JSON run record), submitted as tasks to a ``dask.distributed`` cluster:
a local one sized to the machine by default, or any running cluster (``--scheduler tcp://host:8786``), which is how
the same command scales from a laptop to a SLURM or PBS allocation (see the book's page "Running at scale").

The grid file (YAML)::

    preset: quick               # optional: preset name(s) or file(s), applied first, as with `ambridge.run -f`
    fixed:                      # optional: values shared by every run
      n_chains: 4000
    grid:                       # the product of these lists is the set of runs
      beta: [0.5, 1.0, 2.0, 4.0]
      n_units: [100, 200, 400]
      seed: [0, 1]
    figure:                     # optional: which swept parameters the summary figure puts on x / as lines
      x: beta
      hue: n_units
    name: beta-x-units          # optional: the sweep's folder, runs/sweeps/<name>/

Every run has a content address, its *run id*: a hash of the chapter's source bytes, the full parameter dict (the
chapter's defaults with the sweep's values merged in) and the ``ambridge`` version. A run whose record exists with
status ``ok`` is not run again, so an interrupted sweep resumes where it stopped, and a grid that grows reruns only
the new points. Each record is written atomically (temporary file, then ``os.replace``), so a worker killed
mid-write leaves no half record; dask reschedules the killed worker's task, and the table is built from the records,
one row per run id — never two rows for one run, never a lost one. A run that fails (the chapter refuses a value,
or anything raises) is recorded with its error and the sweep goes on.

Output folder (default ``runs/sweeps/<name>/``, git-ignored)::

    records/<run id>.json     one run record per run (the runner's format plus run_id, sweep metadata)
    notebooks/<run id>.ipynb  the executed notebooks
    table.csv                 one row per run: run_id, status, every parameter, result.<name>..., wall_time_s,
                              hardware, commit, error
    summary.png               each numeric result against the first swept parameter, one line per value of the
                              second, mean and min-max over the others (e.g. seeds)
    sweep.json                the sweep's own record: grid, counts, failures, commit, hardware, wall time (of
                              this invocation), and over all the runs: total run time, first and last run's
                              creation time, their commits and hardware

Exit codes: 0 every run ok, 1 some runs failed (they are listed), 2 bad command line or grid file.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from ambridge import __version__
from ambridge import run as runner
from ambridge.run import UsageError, read_yaml_mapping

__all__ = [
    "Grid",
    "Run",
    "load_grid",
    "expand",
    "run_id",
    "execute_run",
    "TransientFailure",
    "read_records",
    "build_table",
    "plot_summary",
    "run_sweep",
    "main",
]

GRID_KEYS = ("name", "description", "preset", "fixed", "grid", "figure")
#: Test hook: a folder; a file ``<run id>.unrecorded`` (or ``.recorded``) in it makes the first attempt of that run
#: kill its worker process just before (or just after) its record is written. Only the tests set it.
KILL_ENV = "AMBRIDGE_SWEEP_TEST_KILL"
TABLE, FIGURE, RECORD = "table.csv", "summary.png", "sweep.json"


# --------------------------------------------------------------------------------------------------- grid


@dataclass
class Grid:
    """A parsed grid file: the lists to take the product of, the fixed values, the presets under them."""

    path: Path
    grid: dict[str, list]
    fixed: dict[str, Any] = field(default_factory=dict)
    presets: list[str] = field(default_factory=list)
    figure: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None

    @property
    def swept(self) -> list[str]:
        return list(self.grid)


@dataclass(frozen=True)
class Run:
    """One point of the grid: its id, the full parameter dict, the values the runner injects, the swept values."""

    run_id: str
    parameters: dict
    chosen: dict
    point: dict


def load_grid(path: str | os.PathLike) -> Grid:
    """Read and check the shape of a grid file (names are checked against the chapter by :func:`expand`)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no grid file {path}")
    spec = read_yaml_mapping(path, "grid file", "with a `grid:` entry")
    extra = [key for key in spec if key not in GRID_KEYS]
    if extra:
        entries = f"entr{'ies' if len(extra) > 1 else 'y'} {', '.join(map(repr, extra))}"
        raise UsageError(f"grid file {path}: unknown {entries} (allowed: {', '.join(GRID_KEYS)}; parameters go "
                         "under `grid:` or `fixed:`)")
    grid, fixed = spec.get("grid") or {}, spec.get("fixed") or {}
    if not isinstance(grid, dict) or not grid:
        raise UsageError(f"grid file {path}: `grid:` must map parameter names to lists of values")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UsageError(f"grid file {path}: `grid: {name}` must be a non-empty list (a single value goes under "
                             "`fixed:`)")
    if not isinstance(fixed, dict):
        raise UsageError(f"grid file {path}: `fixed:` must map parameter names to values")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise UsageError(f"grid file {path}: {', '.join(both)} both swept and fixed")
    presets = spec.get("preset") or []
    presets = [presets] if isinstance(presets, str) else presets
    if not isinstance(presets, list) or not all(isinstance(p, str) for p in presets):
        raise UsageError(f"grid file {path}: `preset:` must be a preset name or file, or a list of them")
    figure = spec.get("figure") or {}
    if not isinstance(figure, dict) or any(figure.get(k) not in (None, *grid) for k in ("x", "hue")):
        raise UsageError(f"grid file {path}: `figure:` may set `x:` and `hue:` to swept parameters ({', '.join(grid)})")
    return Grid(path, grid, fixed, presets, figure, spec.get("name"), spec.get("description"))


def run_id(source: bytes, parameters: dict) -> str:
    """The content address of a run: 16 hex digits of a hash of the chapter source, its full parameter dict and the
    ``ambridge`` version. Same chapter, same values, same library: same id, wherever and whenever it runs."""
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(source).digest())
    digest.update(json.dumps(runner._jsonable(parameters), sort_keys=True, default=repr).encode())
    digest.update(__version__.encode())
    return digest.hexdigest()[:16]


def expand(md: Path, grid: Grid, *, gpu: bool = False) -> list[Run]:
    """The runs of a grid, in grid order (the first swept parameter varies slowest). Names and presets are checked
    with the runner's own :func:`~ambridge.run.merge_parameters`: an unknown name raises :class:`UsageError` here,
    before anything is submitted. With ``gpu``, a chapter's ``device`` parameter defaults to ``"cuda"``."""
    defaults = runner.parse_parameters(runner.parameters_cell(runner.read_chapter(md)).source)
    presets = [(preset, runner.load_preset(preset, md)) for preset in grid.presets]
    where = grid.path.name
    device = "cuda" if gpu and "device" in defaults and "device" not in {**grid.grid, **grid.fixed} else None
    source = md.read_bytes()
    runs: dict[str, Run] = {}
    for values in itertools.product(*grid.grid.values()):
        point = dict(zip(grid.grid, values))
        layers = [*presets, (f"{where}, `fixed:`", grid.fixed), (f"{where}, `grid:`", point)]
        chosen = runner.merge_parameters(defaults, layers, device=device)
        parameters = runner._jsonable({**defaults, **chosen})
        rid = run_id(source, parameters)
        runs.setdefault(rid, Run(rid, parameters, runner._jsonable(chosen), {k: chosen[k] for k in point}))
    return list(runs.values())


# --------------------------------------------------------------------------------------------------- one run


def _write_json_atomic(path: Path, record: dict) -> None:
    """Write ``record`` so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the records from the other users of a shared folder
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(record, indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _test_kill(rid: str, stage: str) -> None:
    """The tests' way to kill a worker mid-sweep, once: claim the marker file (unlink is atomic), then die."""
    folder = os.environ.get(KILL_ENV)
    if folder:
        try:
            (Path(folder) / f"{rid}.{stage}").unlink()
        except FileNotFoundError:
            return
        os._exit(1)


class TransientFailure(RuntimeError):
    """The run failed outside the chapter's code (its kernel died or did not start, a timeout): raised, so that dask
    retries the task (``retries=``); a failure inside a cell is the chapter's answer and is recorded instead."""


def _failed_record(parameters: dict, chosen: dict, md: Path, ename: str, evalue: str, wall_time_s: float) -> dict:
    from ambridge.book.records import run_record

    return run_record(parameters, wall_time_s=wall_time_s, chapter=md.stem, overrides=chosen, results={},
                      status="failed", error={"ename": ename, "evalue": evalue})


#: The child process of a run: ``ambridge.run.main`` with two guards, so that a killed worker leaves no run behind.
#: On Linux the kernel sends it SIGTERM when the worker dies (PR_SET_PDEATHSIG); SIGTERM unwinds ``main``, so
#: papermill shuts its kernel down. argv: the worker's pid, then the runner's arguments.
_RUNNER = """
import os, signal, sys
if sys.platform.startswith("linux"):
    import ctypes
    ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
if os.getppid() != int(sys.argv[1]):  # the worker died before the guard was set
    sys.exit(143)
from ambridge.run import main
sys.exit(main(sys.argv[2:]))
"""


def execute_run(chapter: str, rid: str, parameters: dict, chosen: dict, out: str, source_sha256: str,
                force: bool = False) -> dict:
    """Run one point of a sweep (this is the Dask task) and return its record.

    The chapter runs through the project's runner, ``ambridge.run.main([CHAPTER, "-f", <values.yaml>, "-o", ...])``,
    in a child process: concurrent runs in one worker cannot share the runner's environment variables, a crashing
    kernel cannot take the worker down, and a killed worker takes its run down with it. The record gets the run id
    and is moved into ``out/records/<run id>.json`` atomically; the notebook into ``out/notebooks/``. A failed run
    is recorded (``status: failed`` and why), not raised, unless it failed outside the chapter's cells
    (:class:`TransientFailure`, for dask to retry).
    """
    md, out = Path(chapter), Path(out)
    target = out / "records" / f"{rid}.json"
    if not force:  # a retry of a task whose first attempt finished (worker killed after writing): nothing to do
        done = _read_record(target)
        if done and done.get("status") == "ok" and done.get("run_id") == rid:
            return done
    start = time.perf_counter()
    scratch = out / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{rid}-", dir=scratch))
    try:
        if hashlib.sha256(md.read_bytes()).hexdigest() != source_sha256:
            record = _failed_record(parameters, chosen, md, "SourceMismatch",
                                    f"{md} on {socket.gethostname()} is not the source the sweep was expanded from: "
                                    "it was edited since the sweep started, or this worker has another checkout; "
                                    "rerun the sweep",
                                    time.perf_counter() - start)
        else:
            values = work / "values.yaml"
            values.write_text(yaml.safe_dump(chosen, sort_keys=False))
            notebook = work / f"{rid}.ipynb"
            env = {k: v for k, v in os.environ.items() if k not in (KILL_ENV, "AMBRIDGE_RESULTS_PATH")}
            child = subprocess.run(
                [sys.executable, "-c", _RUNNER, str(os.getpid()), str(md), "-q", "-f", str(values), "-o",
                 str(notebook)],
                capture_output=True, text=True, env=env, cwd=md.parent,
            )
            record = _read_record(notebook.with_suffix(".json"))
            if record is None:  # the runner stopped before writing a record (exit 2, or it crashed)
                message = " ".join(child.stderr.strip().splitlines()[-3:]) or f"exit code {child.returncode}"
                record = _failed_record(parameters, chosen, md, "RunnerError", message, time.perf_counter() - start)
            if notebook.is_file():
                final = out / "notebooks" / notebook.name
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(notebook, final)
                record["notebook"] = str(final)
            error = record.get("error") or {}
            if record.get("status") != "ok" and "cell_index" not in error and error.get("ename") != "RunnerError":
                raise TransientFailure(_error_text(error))
    except TransientFailure:
        raise
    except Exception as err:  # e.g. an unwritable output folder: still a record, and the sweep goes on
        record = _failed_record(parameters, chosen, md, type(err).__name__, str(err), time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record.update(run_id=rid, chapter_sha256=source_sha256, ambridge_version=__version__, host=socket.gethostname())
    _test_kill(rid, "unrecorded")
    _write_json_atomic(target, record)
    _test_kill(rid, "recorded")
    return record


# --------------------------------------------------------------------------------------------------- table, figure


def read_records(out: Path, runs: Sequence[Run]) -> dict[str, dict]:
    """The records of these runs found in ``out/records/`` (one per run id, by construction)."""
    found = {}
    for r in runs:
        record = _read_record(Path(out) / "records" / f"{r.run_id}.json")
        if record is not None:
            found[r.run_id] = record
    return found


def _error_text(error: Any) -> str:
    if not error:
        return ""
    if isinstance(error, dict):
        return f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip()
    return str(error)


def build_table(runs: Sequence[Run], records: dict[str, dict]):
    """The tidy table (a pandas DataFrame): one row per run that has a record, in grid order; columns run_id,
    status, every parameter, ``result.<name>`` for every published result, wall_time_s, hardware, commit, error."""
    import pandas as pd

    names = list(runs[0].parameters) if runs else []
    results: list[str] = []
    rows = []
    for r in runs:
        record = records.get(r.run_id)
        if record is None:
            continue
        published = record.get("results") or {}
        results += [k for k in published if k not in results]
        rows.append({"run_id": r.run_id, "status": record.get("status", "failed"),
                     **{name: record.get("parameters", r.parameters).get(name) for name in names},
                     **{f"result.{k}": v for k, v in published.items()},
                     "wall_time_s": record.get("wall_time_s"), "hardware": record.get("hardware", ""),
                     "commit": record.get("commit", ""), "error": _error_text(record.get("error"))})
    columns = ["run_id", "status", *names, *(f"result.{k}" for k in results), "wall_time_s", "hardware", "commit",
               "error"]
    table = pd.DataFrame(rows, columns=columns)
    for column in [*names, *(f"result.{k}" for k in results)]:  # integers stay integers beside failed (empty) rows
        values = [row.get(column) for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            table[column] = table[column].astype("Int64")
    return table


def _numeric(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and series.notna().any()


def plot_summary(table, swept: Sequence[str], path: Path, *, title: str, x: str | None = None,
                 hue: str | None = None) -> Path | None:
    """The generic summary figure: for each numeric result, its mean against ``x`` (default: the first swept
    parameter), one line per value of ``hue`` (default: the second), the band spanning min to max over the other
    swept parameters (e.g. seeds). Only runs with status ok are drawn. Returns the path, or None if nothing to draw."""
    import numpy as np
    from matplotlib.figure import Figure

    from ambridge.plotting import PALETTE, use_book_style

    use_book_style()
    ok = table[table["status"] == "ok"]
    results = [c for c in table.columns if c.startswith("result.") and _numeric(ok[c])]
    if ok.empty or not results:
        return None
    x = x or swept[0]
    hue = hue if hue is not None else next((s for s in swept if s != x), None)
    rest = [s for s in swept if s not in (x, hue)]
    xs = list(dict.fromkeys(sorted(ok[x].unique(), key=_sort_key)))
    numeric_x = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
    log_x = numeric_x and len(xs) >= 3 and min(xs) > 0 and max(xs) / min(xs) >= 4
    position = {v: (v if numeric_x else i) for i, v in enumerate(xs)}
    hues = sorted(ok[hue].unique(), key=_sort_key) if hue else [None]

    ncols = min(3, len(results))
    nrows = math.ceil(len(results) / ncols)
    fig = Figure(figsize=(max(6.0, 4.3 * ncols), 3.1 * nrows + 1.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, column in zip(axes, results):
        for i, h in enumerate(hues):
            rows = ok if h is None else ok[ok[hue] == h]
            stats = rows.groupby(x)[column].agg(["mean", "min", "max", "count"]).reindex(xs).dropna(subset=["mean"])
            px = [position[v] for v in stats.index]
            colour = PALETTE[i % len(PALETTE)]
            label = f"{hue} = {h}" if hue else None
            ax.plot(px, stats["mean"], "o-", color=colour, label=label, markersize=4)
            if (stats["count"] > 1).any():
                ax.fill_between(px, stats["min"], stats["max"], color=colour, alpha=0.18, linewidth=0)
        if log_x:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks([position[v] for v in xs], [f"{v:g}" if numeric_x else str(v) for v in xs])
        ax.set(xlabel=x, title=column.removeprefix("result."))
    for ax in axes[len(results):]:
        ax.set_visible(False)
    if hue:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(hues), 6))
    spread = f"line: mean, band: min to max over {', '.join(rest)}" if rest else "one run per point"
    failed = len(table) - len(ok)
    note = f"; {failed} failed run{'s' if failed > 1 else ''} not shown" if failed else ""
    fig.suptitle(f"{title}: {len(ok)} runs\n{spread}{note}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


# --------------------------------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    """What a sweep did: the runs, how many it executed or skipped, the failures, and where its outputs are."""

    runs: list[Run]
    executed: list[str]
    skipped: list[str]
    failed: list[dict]
    out: Path
    table: Path | None = None
    figure: Path | None = None
    record: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and len(self.executed) + len(self.skipped) == len(self.runs)


def default_name(md: Path, grid: Grid) -> str:
    """``name:`` from the grid file, else the chapter's slug (plus the grid file's stem unless it is ``sweep``)."""
    if grid.name:
        return str(grid.name)
    return md.stem if grid.path.stem in ("sweep", md.stem) else f"{md.stem}-{grid.path.stem}"


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _dashboard(client) -> str:
    """The dashboard's address, or why there is none (the interactive dashboard needs bokeh on the scheduler)."""

    def has_bokeh() -> bool:  # nested, so it is pickled by value: the scheduler need not import ambridge
        import importlib.util

        return importlib.util.find_spec("bokeh") is not None

    try:
        if not client.run_on_scheduler(has_bokeh):
            return "unavailable (bokeh is not installed where the scheduler runs)"
    except Exception:
        pass
    return client.dashboard_link or "unavailable"


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(runner._book_root()))
    except (ValueError, FileNotFoundError):
        return str(path)


def run_sweep(
    chapter: str | os.PathLike,
    grid: str | os.PathLike | Grid,
    *,
    out: str | os.PathLike | None = None,
    scheduler: str | None = None,
    client=None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    retries: int = 2,
    gpu: bool = False,
    force: bool = False,
    publish: str | os.PathLike | None = None,
    quiet: bool = False,
) -> SweepResult:
    """Expand the grid, run every missing point on a Dask cluster, gather the records into the table and figure.

    The cluster is ``client`` if given, else the scheduler at ``scheduler``, else a new ``LocalCluster`` of
    ``workers`` processes (default: one per CPU core, or one with ``gpu``) with ``threads_per_worker`` threads each.
    ``retries`` is dask's count of re-attempts of a run that failed outside the chapter's code (its kernel died or
    did not start: :class:`TransientFailure`); a task whose worker died is rescheduled by dask on its own
    (``distributed.scheduler.allowed-failures``, default 3). ``gpu`` asks each task for one unit of
    the worker resource ``GPU`` (workers of an existing cluster must be started with ``--resources GPU=1``).
    ``publish``: a folder to copy the table, figure and sweep record to (for committing).
    """
    from ambridge.book.records import run_record

    start = time.perf_counter()
    md = runner.resolve_chapter(chapter)
    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    runs = expand(md, grid, gpu=gpu)  # raises UsageError before anything is submitted
    out = Path(out) if out is not None else runner._book_root() / "runs" / "sweeps" / default_name(md, grid)
    out = out.resolve()
    (out / "records").mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(md.read_bytes()).hexdigest()

    existing = read_records(out, runs)
    skipped = [] if force else [r.run_id for r in runs if existing.get(r.run_id, {}).get("status") == "ok"]
    todo = [r for r in runs if r.run_id not in set(skipped)]
    executed: list[str] = []
    cluster_info: dict[str, Any] = {"scheduler": scheduler or ("given client" if client else "local")}
    if todo:
        executed = _submit(md, todo, out, sha, cluster_info, scheduler=scheduler, client=client, workers=workers,
                           threads_per_worker=threads_per_worker, retries=retries, gpu=gpu, force=force,
                           total=len(runs), done_before=len(skipped), quiet=quiet)
    else:
        _say(f"{md.stem}: all {len(runs)} runs already done in {out}", quiet)
    shutil.rmtree(out / "tmp", ignore_errors=True)  # scratch of attempts whose worker was killed

    records = read_records(out, runs)
    table = build_table(runs, records)
    result = SweepResult(runs, executed, skipped, [], out)
    for r in runs:
        record = records.get(r.run_id)
        if record is None or record.get("status") != "ok":
            error = _error_text(record.get("error")) if record else "no record (the sweep was interrupted)"
            result.failed.append({"run_id": r.run_id, "point": r.point, "error": error})
    result.table = out / TABLE
    table.to_csv(result.table, index=False)
    result.figure = plot_summary(table, grid.swept, out / FIGURE, title=md.stem, x=grid.figure.get("x"),
                                 hue=grid.figure.get("hue"))
    n_ok = int((table["status"] == "ok").sum()) if len(table) else 0
    spec = {"grid": grid.grid, "fixed": grid.fixed, "preset": grid.presets}
    created = sorted(rec["created"] for rec in records.values() if rec.get("created"))
    record = run_record(
        spec, wall_time_s=time.perf_counter() - start, chapter=md.stem, grid_file=_relative(grid.path),
        chapter_sha256=sha, ambridge_version=__version__, runs=len(runs), ok=n_ok, failed=result.failed,
        executed=len(executed), skipped=len(skipped),
        run_time_s=round(float(table["wall_time_s"].fillna(0).sum()), 1) if len(table) else 0.0,
        runs_created=[min(created), max(created)] if created else None,
        run_commits=sorted({rec["commit"] for rec in records.values() if rec.get("commit")}),
        run_hardware=sorted({rec["hardware"] for rec in records.values() if rec.get("hardware")}),
        cluster=cluster_info, table=TABLE, figure=FIGURE if result.figure else None,
        run_ids=[r.run_id for r in runs],
    )
    if grid.description:
        record["description"] = grid.description
    result.record = out / RECORD
    _write_json_atomic(result.record, record)
    if publish is not None:
        target = Path(publish)
        target.mkdir(parents=True, exist_ok=True)
        for path in (result.table, result.figure, result.record):
            if path is not None:
                shutil.copyfile(path, target / path.name)
    return result


def _submit(md: Path, todo: list[Run], out: Path, sha: str, info: dict, *, scheduler, client, workers,
            threads_per_worker, retries, gpu, force, total, done_before, quiet) -> list[str]:
    """Submit the runs, report progress on stderr as they finish, make sure every finished run has its record."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    own_client = client is None
    if own_client:
        if scheduler:
            client = Client(scheduler)
        else:
            n = workers or (1 if gpu else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else os.cpu_count() or 1)
            cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                                   resources={"GPU": 1} if gpu else None, dashboard_address=":8787")
            client = Client(cluster)
    try:
        nworkers = len(client.scheduler_info()["workers"])
        info.update(workers=nworkers, threads_per_worker=threads_per_worker if cluster else None, gpu=gpu)
        _say(f"{md.stem}: {total} runs, {len(todo)} to run ({done_before} already done) on {nworkers} "
             f"worker{'s' if nworkers != 1 else ''}; records in {out}", quiet)
        _say(f"Dask dashboard: {_dashboard(client)}", quiet)
        if gpu and not any((w.get("resources") or {}).get("GPU") for w in client.scheduler_info()["workers"].values()):
            _say("warning: no worker offers the GPU resource yet; GPU runs wait until one started with "
                 "`--resources GPU=1` joins", quiet)
        futures = {}
        for r in todo:
            future = client.submit(execute_run, str(md), r.run_id, r.parameters, r.chosen, str(out), sha, force,
                                   key=f"ambridge-run-{r.run_id}", retries=retries, pure=False,
                                   resources={"GPU": 1} if gpu else None)
            futures[future] = r
        executed, done = [], done_before
        for future in as_completed(futures):
            r = futures[future]
            target = out / "records" / f"{r.run_id}.json"
            try:
                record = future.result()
            except Exception as err:  # a TransientFailure out of retries, or its workers kept dying (KilledWorker)
                record = _failed_record(r.parameters, r.chosen, md, type(err).__name__, str(err), 0.0)
                record.update(run_id=r.run_id, chapter_sha256=sha, ambridge_version=__version__)
            if _read_record(target) is None:  # a worker without our filesystem: keep its record here
                _write_json_atomic(target, record)
            executed.append(r.run_id)
            done += 1
            point = " ".join(f"{k}={v}" for k, v in r.point.items())
            status = record.get("status", "failed")
            line = f"[{done}/{total}] {status:6s} {point}  ({record.get('wall_time_s', 0):.0f} s)"
            if status != "ok":
                line += f"  {_error_text(record.get('error'))}"
            _say(line, quiet)
        return executed
    except KeyboardInterrupt:
        _say(f"interrupted: finished runs are recorded in {out}; rerun the same command to resume", quiet)
        raise
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()


# --------------------------------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ambridge.sweep",
        description="Run a chapter over a parameter grid on a Dask cluster; gather a table and a summary figure.",
        epilog=(
            "examples:\n"
            "  python -m ambridge.sweep 01 chapters/sweeps/01_energy_is_nll.yaml\n"
            "  python -m ambridge.sweep 01 grid.yaml --workers 4 --out runs/sweeps/mine\n"
            "  python -m ambridge.sweep 05 grid.yaml --scheduler tcp://head:8786 --gpu\n\n"
            "Runs whose record exists with status ok are skipped: rerun the same command to resume.\n"
            "Exit codes: 0 every run ok, 1 some runs failed, 2 bad command line or grid file."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("chapter", help='chapter number ("01"), name ("01_energy_is_nll") or path to its .md')
    parser.add_argument("grid", type=Path, help="grid file (YAML with `grid:`, optional `fixed:`, `preset:`)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="use a running cluster, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, metavar="N", help="workers of the local cluster (default: one per core)")
    parser.add_argument("--threads-per-worker", type=int, default=1, metavar="T",
                        help="runs at a time per local worker (default 1)")
    parser.add_argument("--out", type=Path, help="output folder (default runs/sweeps/<name>)")
    parser.add_argument("--retries", type=int, default=2,
                        help="re-attempts of a run whose kernel died or did not start (default 2)")
    parser.add_argument("--gpu", action="store_true",
                        help="each run takes one GPU worker resource (workers need --resources GPU=1); "
                        "the chapter's `device` defaults to cuda")
    parser.add_argument("--force", action="store_true", help="rerun every point, even those already done")
    parser.add_argument("--publish", type=Path, metavar="DIR",
                        help="also copy the table, figure and sweep record to DIR (e.g. chapters/artifacts/...)")
    parser.add_argument("--dry-run", action="store_true", help="check the grid and list the runs; submit nothing")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 all ok, 1 some runs failed, 2 bad command line)."""
    args = _parser().parse_args(argv)
    try:
        if args.workers is not None and args.workers < 1:
            raise UsageError("--workers must be at least 1")
        if args.threads_per_worker < 1 or args.retries < 0:
            raise UsageError("--threads-per-worker must be at least 1 and --retries at least 0")
        if args.dry_run:
            md = runner.resolve_chapter(args.chapter)
            for r in expand(md, load_grid(args.grid), gpu=args.gpu):
                print(r.run_id, " ".join(f"{k}={v}" for k, v in r.point.items()))
            return 0
        result = run_sweep(
            args.chapter, args.grid, out=args.out, scheduler=args.scheduler, workers=args.workers,
            threads_per_worker=args.threads_per_worker, retries=args.retries, gpu=args.gpu, force=args.force,
            publish=args.publish, quiet=args.quiet,
        )
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    n_ok = len(result.runs) - len(result.failed)
    print(f"{len(result.runs)} runs: {n_ok} ok, {len(result.failed)} failed "
          f"({len(result.executed)} executed now, {len(result.skipped)} already done)")
    for failure in result.failed:
        point = " ".join(f"{k}={v}" for k, v in failure["point"].items())
        print(f"  failed {failure['run_id']} {point}: {failure['error']}")
    print(f"table:  {result.table}")
    if result.figure:
        print(f"figure: {result.figure}")
    print(f"record: {result.record}")
    return 0 if not result.failed else 1


if __name__ == "__main__":
    sys.exit(main())
