"""Re-execute chapters in place from their MyST sources: ``python -m ambridge.execute [CHAPTER ...]``.

This is what ``make execute CHAPTER=NN`` calls after a chapter's ``.md`` was edited (``book/reference/rerunning.md``,
"After editing a chapter"; ``python -m ambridge.book.execute`` is the same command). Each ``chapters/NN_slug.md``
is executed with nbclient at its default parameters and written to its paired ``chapters/NN_slug.ipynb``.
The result is byte-stable, so re-executing an unchanged chapter changes nothing in git:

- no execution timestamps (``record_timing=False``, and any ``execution`` cell metadata is dropped);
- cell ids are kept from the existing ``.ipynb`` (jupytext draws random ids on every read of a ``.md``), and a new
  cell gets an id derived from its position and source, not a random one;
- ``language_info.version`` is dropped: it is the Python patch version, which differs between machines;
- the notebook is written by jupytext, so its ``jupytext`` metadata is what ``jupytext --to ipynb`` writes.

A chapter that fails keeps its previous ``.ipynb``; the exit code is 1 and the failing chapters are named.

Each chapter that ran also gets its wall time recorded, as a run record of its quick preset (the defaults), in
``chapters/artifacts/<slug>/timing-<cpu|cuda>.json`` (:func:`record_timing`; ``--no-timing`` skips it). The book's
runtime badge (``book/_ext/runtime_badge.py``) is built from these files and the other run records there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import jupytext
import nbformat
from jupytext.combine import combine_inputs_with_outputs
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .chapters import available_chapters, resolve_chapter
from .errors import UsageError
from .params import chapter_parameters, jsonable_parameters

__all__ = ["execute_chapter", "results_path", "merge_streams", "record_timing", "main"]

TIMEOUT_S = 1800  # per cell; the quick presets run in about a minute, this only catches a hung kernel


def _stable_id(index: int, source: str, taken: set[str]) -> str:
    """An 8-hex cell id from the cell's position and source, unique within the notebook."""
    salt = 0
    while True:
        cell_id = hashlib.sha256(f"{index}:{salt}:{source}".encode()).hexdigest()[:8]
        if cell_id not in taken:
            return cell_id
        salt += 1


def _with_previous_ids(nb, ipynb: Path):
    """Take cell ids (and nbformat minor version) from the existing ``.ipynb``, as ``jupytext --sync`` would;
    give cells it does not have a deterministic id."""
    previous_ids: set[str] = set()
    if ipynb.is_file():
        previous = nbformat.read(ipynb, as_version=4)
        previous_ids = {cell.get("id") for cell in previous.cells}
        nb = combine_inputs_with_outputs(nb, previous, fmt="md:myst")
    taken = set(previous_ids)
    for index, cell in enumerate(nb.cells):
        if cell.get("id") not in previous_ids:
            cell.id = _stable_id(index, cell.source, taken)
        taken.add(cell.id)
    return nb


def _make_stable(nb) -> None:
    """Strip what changes from run to run or machine to machine but says nothing about the chapter."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
    nb.metadata.get("language_info", {}).pop("version", None)


def merge_streams(outputs: list) -> list:
    """Join consecutive outputs of one stream: where the kernel happened to flush varies from run to run.
    (nbval joins them the same way before it compares, so a committed notebook stays byte-stable.)"""
    merged: list = []
    for out in outputs:
        same_stream = bool(merged) and out.get("output_type") == "stream" == merged[-1].get("output_type")
        if same_stream and merged[-1].get("name") == out.get("name"):
            merged[-1]["text"] = merged[-1]["text"] + out["text"]
        else:
            merged.append(out)
    return merged


def execute_chapter(md: Path) -> float:
    """Execute one chapter's ``.md`` and write its paired ``.ipynb``; return the wall time in seconds.

    Raises :class:`nbclient.exceptions.CellExecutionError` (and writes nothing) when a cell fails.
    """
    ipynb = md.with_suffix(".ipynb")
    nb = _with_previous_ids(jupytext.read(md), ipynb)
    for cell in nb.cells:  # outputs carried over from the old notebook must not survive a cell that now prints less
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # the chapter's headline numbers (publish_results) go beside its artifacts, where the reproduction ledger reads
    # them; written to a scratch file first, so a failed run leaves the committed numbers as they were
    from .records import RESULTS_ENV

    results = results_path(md)
    scratch = results.with_name(results.name + ".running")
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.unlink(missing_ok=True)
    previous = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(scratch)
    start = time.perf_counter()
    try:
        NotebookClient(
            nb, kernel_name="python3", timeout=TIMEOUT_S, resources={"metadata": {"path": str(md.parent)}},
            record_timing=False,
        ).execute()
    finally:
        if previous is None:
            os.environ.pop(RESULTS_ENV, None)
        else:
            os.environ[RESULTS_ENV] = previous
    seconds = time.perf_counter() - start
    _make_stable(nb)
    jupytext.write(nb, ipynb, fmt="ipynb")
    if scratch.is_file():
        scratch.replace(results)
    return seconds


def results_path(md: Path) -> Path:
    """Where executing chapter ``md`` at its defaults leaves its published headline numbers:
    ``<chapters>/artifacts/<slug>/results.json`` (committed; the reproduction ledger reads it)."""
    return md.parent / "artifacts" / md.stem / "results.json"


def record_timing(md: Path, seconds: float) -> Path:
    """Write the wall time of executing ``md`` at its defaults as a run record; return the file's path.

    The file is ``<chapters>/artifacts/<slug>/timing-<device>.json``, ``<device>`` being where the chapter's
    ``device = "auto"`` resolves on this machine (``cpu`` or ``cuda``), so a CPU and a GPU measurement sit side by
    side. The record names the quick preset, its parameters, the hardware, the commit and the date; the time
    includes the kernel's start.
    """
    from .records import record_device, run_record  # torch: only when a timing is recorded

    parameters = jsonable_parameters(chapter_parameters(md))
    device = record_device(parameters)
    record = run_record(
        parameters, wall_time_s=seconds, device=device, chapter=md.stem, preset="quick",
        command=f"python -m ambridge.execute {md.stem}", status="ok",
    )
    target = md.parent / "artifacts" / md.stem / f"timing-{device.type}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2) + "\n")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Re-execute the named chapters (all when none); return 0, 1 if any chapter failed, 2 on a bad name."""
    parser = argparse.ArgumentParser(
        prog="python -m ambridge.execute",
        description="Re-execute chapters in place from their .md sources (at their default parameters), "
        "writing byte-stable paired .ipynb files.",
    )
    parser.add_argument("chapters", nargs="*", metavar="CHAPTER", help='"01", "01_energy_is_nll" or a path; default: all')
    parser.add_argument(
        "--no-timing", action="store_true",
        help="do not record the wall time in chapters/artifacts/<slug>/timing-<device>.json",
    )
    args = parser.parse_args(argv)
    try:
        chapters = [resolve_chapter(c) for c in args.chapters] or available_chapters()
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if os.environ.pop("MPLBACKEND", None) is not None:  # with it set the kernel emits no figures at all, silently
        print("note: ignoring MPLBACKEND for the chapters' kernels", file=sys.stderr)

    failed = []
    for md in chapters:
        try:
            seconds = execute_chapter(md)
        except CellExecutionError as err:
            failed.append(md.stem)
            print(f"{md.stem}: FAILED: {err.ename}: {err.evalue} (its .ipynb is unchanged)", file=sys.stderr)
            continue
        timing = "" if args.no_timing else f" (recorded in {record_timing(md, seconds)})"
        print(f"{md.stem}: {seconds:.1f} s{timing}")
    if failed:
        print(f"error: {len(failed)} chapter(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
