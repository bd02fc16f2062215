"""Run records and headline numbers: what a run leaves behind so a number in the book can name its source.

A run record holds a run's parameters, the commit, the hardware and the wall time (:func:`run_record`); a chapter
hands its headline numbers to the runner with :func:`publish_results`; :func:`repo_root` finds the book's root from
wherever a notebook runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ..runtime import hardware_summary

__all__ = ["RESULTS_ENV", "repo_root", "git_commit", "run_record", "record_device", "publish_results"]

#: Environment variable through which the runner tells a chapter's kernel where to write its headline numbers.
RESULTS_ENV = "AMBRIDGE_RESULTS_PATH"


def repo_root() -> Path:
    """The book's root folder (the one holding ``_toc.yml``), whatever the current working directory.

    Chapters run from different folders under papermill, nbval and the book build; paths are resolved from here.
    """
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "_toc.yml").is_file() and (folder / "lib" / "ambridge").is_dir():
                return folder
    raise FileNotFoundError("cannot find the book's root (a folder with _toc.yml and lib/ambridge)")


#: The commit to record where the tree has no git history (a copy sent to a GPU machine): set by the sender.
COMMIT_ENV = "AMBRIDGE_COMMIT"


def git_commit() -> str:
    """The checkout's commit; else ``$AMBRIDGE_COMMIT`` (40 hex digits, marked "(given)"); else "unknown"."""
    given = os.environ.get(COMMIT_ENV, "").strip().lower()
    if given and not re.fullmatch(r"[0-9a-f]{40}", given):
        raise ValueError(f"${COMMIT_ENV} must be a full 40-hex-digit commit, got {given!r}")
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
        sha = out.stdout.strip()
        if re.fullmatch(r"[0-9a-f]{40}", sha):  # a copy without history prints "HEAD"
            return sha
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{given} (given)" if given else "unknown"


def run_record(parameters: dict, *, wall_time_s: float, device: str | torch.device = "cpu", **results) -> dict:
    """A JSON-ready record of a run: its parameters, the commit, the hardware, the wall time, and any results."""
    record = {
        "parameters": parameters,
        "commit": git_commit(),
        "hardware": hardware_summary(device),
        "wall_time_s": round(float(wall_time_s), 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    record.update(results)
    json.dumps(record)  # fail here, not at write time, if something is not serialisable
    return record


def record_device(parameters: dict) -> torch.device:
    """The device a run record names: what the run's ``device`` parameter resolves to here, or the CPU when it does
    not resolve (a chapter without one, or ``cuda`` asked for on a machine without CUDA, a run that then fails).

    Used by the runner's records (``make run``) and the timing records of ``make execute``.
    """
    from ..checks import ParameterError
    from ..runtime import select_device

    try:
        return select_device(parameters.get("device", "cpu"))
    except ParameterError:
        return torch.device("cpu")


def publish_results(**numbers) -> dict:
    """Record a chapter's headline numbers (floats, ints, strings, bools) for the run record.

    Under the runner (``python -m ambridge.run``, and so ``make run`` and the sweeps) they are merged into the JSON
    file named by ``$AMBRIDGE_RESULTS_PATH`` and end up in the run's record under ``"results"``; in a plain notebook
    session nothing is written. Returns the numbers, so a chapter's last cell can show them too.
    """
    for name, value in numbers.items():
        if isinstance(value, (np.floating, np.integer, np.bool_)):
            numbers[name] = value.item()
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            numbers[name] = value.item()
        if not isinstance(numbers[name], (bool, int, float, str)):
            raise TypeError(f"result `{name}` must be a number, a bool or a string, got {type(value).__name__}")
    path = os.environ.get(RESULTS_ENV)
    if path:
        target = Path(path)
        merged = json.loads(target.read_text()) if target.is_file() else {}
        merged.update(numbers)
        target.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return numbers


