"""Seeds, devices, parameter checks and run records: what every chapter does before its first equation.

A chapter's second cell validates its parameters through :func:`check_number` and :func:`check_choice`, so a bad
value stops there with a message that names the parameter, its value and what is allowed, instead of dying deep
inside a computation (or, worse, running and printing something wrong).
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import re
import subprocess
import time
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

__all__ = [
    "ParameterError",
    "check_number",
    "check_choice",
    "seed_everything",
    "select_device",
    "repo_root",
    "hardware_summary",
    "run_record",
    "publish_results",
    "RESULTS_ENV",
    "Stopwatch",
]

#: Environment variable through which the runner tells a chapter's kernel where to write its headline numbers.
RESULTS_ENV = "AMBRIDGE_RESULTS_PATH"


class ParameterError(ValueError):
    """A chapter or library parameter has a value outside what is allowed.

    The message always has the form ``parameter `name` = value: <what is allowed>``, so the runner can show it
    to the user as it is.
    """

    def __init__(self, name: str, value: Any, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"parameter `{name}` = {value!r}: {allowed}")


def _interval(low, high, low_open, high_open) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> float | int:
    """Return ``value`` if it is a finite number in the interval, else raise :class:`ParameterError`.

    ``integer=True`` also demands an integer (``True``/``False`` are refused: a flag is not a count).
    Bounds are inclusive unless ``low_open`` / ``high_open``.
    """
    kind = "an integer" if integer else "a number"
    allowed = f"must be {kind} in {_interval(low, high, low_open, high_open)}"
    if isinstance(value, bool) or not isinstance(value, Integral if integer else Real):
        raise ParameterError(name, value, allowed)
    if not math.isfinite(value):
        raise ParameterError(name, value, allowed)
    if low is not None and (value < low or (low_open and value == low)):
        raise ParameterError(name, value, allowed)
    if high is not None and (value > high or (high_open and value == high)):
        raise ParameterError(name, value, allowed)
    return int(value) if integer else value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ParameterError` listing them."""
    choices = list(choices)
    if not any(type(value) is type(c) and value == c for c in choices):  # 1 is not True, 1.0 is not 1
        raise ParameterError(name, value, "must be one of " + ", ".join(repr(c) for c in choices))
    return value


def seed_everything(seed: int, *, deterministic: bool = True, threads: int | None = None) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh ``torch.Generator`` seeded with ``seed``.

    ``deterministic=True`` asks torch for deterministic kernels (so re-executed chapters print the same digits).
    ``threads`` fixes torch's intra-op thread count (the order of floating-point reductions depends on it).
    """
    seed = check_number("seed", seed, low=0, high=2**63 - 1, integer=True)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
    if threads is not None:
        torch.set_num_threads(check_number("threads", threads, low=1, integer=True))
    return torch.Generator().manual_seed(seed)


def select_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N"`` to a ``torch.device``.

    ``"auto"`` takes CUDA when present. Asking for CUDA on a machine without it is an error, never a silent CPU run.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not (device in ("auto", "cpu") or device.split(":")[0] == "cuda"):
        raise ParameterError("device", device, "must be one of 'auto', 'cpu', 'cuda' (or 'cuda:N')")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError("device", device, "CUDA is not available on this machine; use 'cpu' or 'auto'")
    return torch.device(device)


def repo_root() -> Path:
    """The book's root folder (the one holding ``_toc.yml``), whatever the current working directory.

    Chapters run from different folders under papermill, nbval and the book build; paths are resolved from here.
    """
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "_toc.yml").is_file() and (folder / "lib" / "ambridge").is_dir():
                return folder
    raise FileNotFoundError("cannot find the book's root (a folder with _toc.yml and lib/ambridge)")


def hardware_summary(device: str | torch.device = "cpu") -> str:
    """One line naming the processor or GPU a measurement was taken on."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
        sha = out.stdout.strip()
        return sha if re.fullmatch(r"[0-9a-f]{40}", sha) else "unknown"  # a copy without history prints "HEAD"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_record(parameters: dict, *, wall_time_s: float, device: str | torch.device = "cpu", **results) -> dict:
    """A JSON-ready record of a run: its parameters, the commit, the hardware, the wall time, and any results."""
    record = {
        "parameters": parameters,
        "commit": _git_commit(),
        "hardware": hardware_summary(device),
        "wall_time_s": round(float(wall_time_s), 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    record.update(results)
    json.dumps(record)  # fail here, not at write time, if something is not serialisable
    return record


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


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.seconds``; synchronises CUDA so GPU timings are honest."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def __enter__(self) -> "Stopwatch":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
