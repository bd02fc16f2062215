"""Run a chapter over a parameter grid on a Dask cluster: ``python -m ambridge.sweep CHAPTER GRID.yaml``.

This is what ``make sweep`` calls; ``book/reference/scale.md`` ("Running at scale") is the reader's guide. A sweep
is many reruns of one chapter, each exactly what ``python -m ambridge.run`` does (the same parameter checks, the
same executed notebook, the same JSON run record), submitted as tasks to a ``dask.distributed`` cluster: a local
one sized to the machine by default, or any running cluster (``--scheduler tcp://host:8786``), which is how the
same command scales from a laptop to a SLURM or PBS allocation.

The pieces: the grid file and the run ids (:mod:`ambridge.book.sweep_grid`), one run as a Dask task
(:mod:`ambridge.book.sweep_task`, in a child process :mod:`ambridge.book.worker`), the table and figure
(:mod:`ambridge.book.sweep_table`), and here the sweep itself and its command line.

Every run has a content address, its *run id* (:func:`~ambridge.book.sweep_grid.run_id`): a hash of the chapter's
source, the full parameter dict and the ``ambridge`` version. Each finished run's record is appended, flushed and
synced, to the sweep's record store ``records.jsonl`` (:class:`ambridge.store.RecordStore`, keyed by run id) by
this process, the one writer, as soon as its task returns. A run whose record there has status ``ok`` is not run
again, so an interrupted sweep (even one killed outright: a cut-off last line is dropped) resumes where it stopped,
and a grid that grows runs only the new points. A task whose worker dies is rescheduled by Dask; its result comes
back once, so the table (one row per run id) never has two rows for one run, nor a lost one. A run that fails (the
chapter refuses a value, or anything raises) is recorded with its error and the sweep goes on.

Output folder (default ``runs/sweeps/<name>/``, git-ignored)::

    records.jsonl             one run record per line (the runner's format plus key = run_id, sweep metadata)
    notebooks/<run id>.ipynb  the executed notebooks
    table.csv                 one row per run: run_id, status, every parameter, result.<name>..., wall_time_s,
                              hardware, commit, error
    summary.png               each numeric result against the first swept parameter, one line per value of the
                              second, mean and min-max over the others (e.g. seeds)
    sweep.json                the sweep's own record: grid, counts, failures, commit, hardware, wall time (of
                              this invocation), and over all the runs: total run time, first and last run's
                              creation time, their commits and hardware

Exit codes: 0 every run ok, 1 some runs failed (they are listed), 2 bad command line, grid file or record store.
``python -m ambridge.book.sweep`` is the same command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import ambridge

from ..store import CorruptStore, RecordStore
from .chapters import book_root, resolve_chapter
from .errors import UsageError
from .sweep_grid import Grid, Run, expand, load_grid
from .sweep_table import build_table, plot_summary, read_records, record_store
from .sweep_task import error_text, execute_run, failed_record

__all__ = ["SweepResult", "default_name", "run_sweep", "main"]

TABLE, FIGURE, RECORD = "table.csv", "summary.png", "sweep.json"


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
        return str(path.resolve().relative_to(book_root()))
    except (ValueError, FileNotFoundError):
        return str(path)


def _write_json_atomic(path: Path, record: dict) -> None:
    """Write ``record`` so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the record from the other users of a shared folder
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    did not start: :class:`~ambridge.book.sweep_task.TransientFailure`); a task whose worker died is rescheduled by
    dask on its own (``distributed.scheduler.allowed-failures``, default 3). ``gpu`` asks each task for one unit of
    the worker resource ``GPU`` (workers of an existing cluster must be started with ``--resources GPU=1``).
    ``force`` reruns runs already done (their new records supersede the old). ``publish``: a folder to copy the
    table, figure and sweep record to (for committing).
    """
    from .records import run_record

    start = time.perf_counter()
    md = resolve_chapter(chapter)
    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    runs = expand(md, grid, gpu=gpu)  # raises UsageError before anything is submitted
    out = Path(out) if out is not None else book_root() / "runs" / "sweeps" / default_name(md, grid)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(md.read_bytes()).hexdigest()

    store = record_store(out)
    done = {r.run_id for r in runs if (store.get(r.run_id) or {}).get("status") == "ok"}
    skipped = [] if force else [r.run_id for r in runs if r.run_id in done]
    todo = [r for r in runs if r.run_id not in set(skipped)]
    executed: list[str] = []
    cluster_info: dict[str, Any] = {"scheduler": scheduler or ("given client" if client else "local")}
    if todo:
        executed = _submit(md, todo, store, sha, cluster_info, scheduler=scheduler, client=client, workers=workers,
                           threads_per_worker=threads_per_worker, retries=retries, gpu=gpu, total=len(runs),
                           done_before=len(skipped), quiet=quiet)
    else:
        _say(f"{md.stem}: all {len(runs)} runs already done in {out}", quiet)
    shutil.rmtree(out / "tmp", ignore_errors=True)  # scratch of attempts whose worker was killed

    records = read_records(out, runs)
    table = build_table(runs, records)
    result = SweepResult(runs, executed, skipped, [], out)
    for r in runs:
        record = records.get(r.run_id)
        if record is None or record.get("status") != "ok":
            error = error_text(record.get("error")) if record else "no record (the sweep was interrupted)"
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
        chapter_sha256=sha, ambridge_version=ambridge.__version__, runs=len(runs), ok=n_ok, failed=result.failed,
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


def _submit(md: Path, todo: list[Run], store: RecordStore, sha: str, info: dict, *, scheduler, client, workers,
            threads_per_worker, retries, gpu, total, done_before, quiet) -> list[str]:
    """Submit the runs, file each record in the store as its task finishes, report progress on stderr."""
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
    out = store.path.parent
    try:
        nworkers = len(client.scheduler_info()["workers"])
        info.update(workers=nworkers, threads_per_worker=threads_per_worker if cluster else None, gpu=gpu)
        _say(f"{md.stem}: {total} runs, {len(todo)} to run ({done_before} already done) on {nworkers} "
             f"worker{'s' if nworkers != 1 else ''}; records in {store.path}", quiet)
        _say(f"Dask dashboard: {_dashboard(client)}", quiet)
        if gpu and not any((w.get("resources") or {}).get("GPU") for w in client.scheduler_info()["workers"].values()):
            _say("warning: no worker offers the GPU resource yet; GPU runs wait until one started with "
                 "`--resources GPU=1` joins", quiet)
        futures = {}
        for r in todo:
            future = client.submit(execute_run, str(md), r.run_id, r.parameters, r.chosen, str(out), sha,
                                   key=f"ambridge-run-{r.run_id}", retries=retries, pure=False,
                                   resources={"GPU": 1} if gpu else None)
            futures[future] = r
        executed, done = [], done_before
        for future in as_completed(futures):
            r = futures[future]
            try:
                record = future.result()
            except Exception as err:  # a TransientFailure out of retries, or its workers kept dying (KilledWorker)
                record = failed_record(r.parameters, r.chosen, md, type(err).__name__, str(err), 0.0)
                record.update(run_id=r.run_id, chapter_sha256=sha, ambridge_version=ambridge.__version__)
            store.append({**record, "key": r.run_id})
            executed.append(r.run_id)
            done += 1
            point = " ".join(f"{k}={v}" for k, v in r.point.items())
            status = record.get("status", "failed")
            line = f"[{done}/{total}] {status:6s} {point}  ({record.get('wall_time_s', 0):.0f} s)"
            if status != "ok":
                line += f"  {error_text(record.get('error'))}"
            _say(line, quiet)
        return executed
    except KeyboardInterrupt:
        _say(f"interrupted: finished runs are recorded in {store.path}; rerun the same command to resume", quiet)
        raise
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()


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
            md = resolve_chapter(args.chapter)
            for r in expand(md, load_grid(args.grid), gpu=args.gpu):
                print(r.run_id, " ".join(f"{k}={v}" for k, v in r.point.items()))
            return 0
        result = run_sweep(
            args.chapter, args.grid, out=args.out, scheduler=args.scheduler, workers=args.workers,
            threads_per_worker=args.threads_per_worker, retries=args.retries, gpu=args.gpu, force=args.force,
            publish=args.publish, quiet=args.quiet,
        )
    except (UsageError, CorruptStore) as err:
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
    raise SystemExit(main())
