"""One run of a sweep, as a Dask task: the chapter through the runner in a child process, and its record.

:func:`execute_run` is what each task of :func:`ambridge.book.sweep.run_sweep` executes on a worker. The chapter
runs through the project's runner in a child process (:mod:`ambridge.book.worker`), so concurrent runs in one
worker do not share the runner's environment variables, a crashing kernel cannot take the worker down, and a killed
worker takes its run down with it. The task returns the run's record; the sweep, the one process that writes the
record store, files it. A failure inside the chapter's cells is the chapter's answer and is recorded; a failure
outside them (the kernel died or did not start) raises :class:`TransientFailure`, for Dask to retry
(``book/reference/scale.md``, "Resuming, skipping, retrying").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

import ambridge

from .records import RESULTS_ENV

__all__ = ["TransientFailure", "failed_record", "error_text", "execute_run"]


class TransientFailure(RuntimeError):
    """The run failed outside the chapter's code (its kernel died or did not start, a timeout): raised, so that dask
    retries the task (``retries=``); a failure inside a cell is the chapter's answer and is recorded instead."""


def failed_record(parameters: dict, chosen: dict, md: Path, ename: str, evalue: str, wall_time_s: float) -> dict:
    """The run record of a run that produced none of its own (the runner never got to write one)."""
    from .records import run_record

    return run_record(parameters, wall_time_s=wall_time_s, chapter=md.stem, overrides=chosen, results={},
                      status="failed", error={"ename": ename, "evalue": evalue})


def error_text(error: Any) -> str:
    """A record's ``error`` in one line, ``"ename: evalue"`` (the table's ``error`` column, the progress lines)."""
    if not error:
        return ""
    if isinstance(error, dict):
        return f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip()
    return str(error)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def execute_run(chapter: str, rid: str, parameters: dict, chosen: dict, out: str, source_sha256: str) -> dict:
    """Run one point of a sweep (this is the Dask task) and return its record.

    The child runs ``python -m ambridge.book.worker <this pid> CHAPTER -q -f <values.yaml> -o <notebook>``; the
    runner's record gets the run id, the chapter's hash, the library version and the host, and the notebook moves to
    ``out/notebooks/<run id>.ipynb``. If the chapter on this worker is not the source the sweep was expanded from
    (``source_sha256``), nothing runs and the record says ``SourceMismatch``. A failed run is returned as a record
    (``status: failed`` and why), not raised, unless it failed outside the chapter's cells (:class:`TransientFailure`).
    """
    md, out = Path(chapter), Path(out)
    start = time.perf_counter()
    scratch = out / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{rid}-", dir=scratch))
    try:
        if hashlib.sha256(md.read_bytes()).hexdigest() != source_sha256:
            record = failed_record(parameters, chosen, md, "SourceMismatch",
                                   f"{md} on {socket.gethostname()} is not the source the sweep was expanded from: "
                                   "it was edited since the sweep started, or this worker has another checkout; "
                                   "rerun the sweep",
                                   time.perf_counter() - start)
        else:
            record = _run_child(md, rid, parameters, chosen, out, work, start)
    except TransientFailure:
        raise
    except Exception as err:  # e.g. an unwritable output folder: still a record, and the sweep goes on
        record = failed_record(parameters, chosen, md, type(err).__name__, str(err), time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record.update(run_id=rid, chapter_sha256=source_sha256, ambridge_version=ambridge.__version__,
                  host=socket.gethostname())
    return record


def _run_child(md: Path, rid: str, parameters: dict, chosen: dict, out: Path, work: Path, start: float) -> dict:
    """Run the chapter in the child process; return the runner's record, or raise :class:`TransientFailure`."""
    values = work / "values.yaml"
    values.write_text(yaml.safe_dump(chosen, sort_keys=False))
    notebook = work / f"{rid}.ipynb"
    env = {k: v for k, v in os.environ.items() if k != RESULTS_ENV}
    child = subprocess.run(
        [sys.executable, "-m", "ambridge.book.worker", str(os.getpid()), str(md), "-q", "-f", str(values),
         "-o", str(notebook)],
        capture_output=True, text=True, env=env, cwd=md.parent,
    )
    record = _read_json(notebook.with_suffix(".json"))
    if record is None:  # the runner stopped before writing a record (exit 2, or it crashed)
        message = " ".join(child.stderr.strip().splitlines()[-3:]) or f"exit code {child.returncode}"
        record = failed_record(parameters, chosen, md, "RunnerError", message, time.perf_counter() - start)
    if notebook.is_file():
        final = out / "notebooks" / notebook.name
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(notebook, final)
        record["notebook"] = str(final)
    error = record.get("error") or {}
    if record.get("status") != "ok" and "cell_index" not in error and error.get("ename") != "RunnerError":
        raise TransientFailure(error_text(error))
    return record
