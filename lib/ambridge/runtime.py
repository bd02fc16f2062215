"""Seeds, devices and timing: what every chapter and experiment does before its first equation.

The validation vocabulary (:class:`ParameterError`, :func:`check_number`, :func:`check_choice`) lives in
:mod:`ambridge.checks` and is re-exported here. Run records and headline numbers (``run_record``,
``publish_results``, ``repo_root``) belong to the book's machinery, :mod:`ambridge.book.records`; importing them from
here still works for one release and warns.
"""

from __future__ import annotations

import os
import platform
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .checks import ParameterError, check_choice, check_number

__all__ = [
    "ParameterError",
    "check_number",
    "check_choice",
    "seed_everything",
    "select_device",
    "hardware_summary",
    "Stopwatch",
    "CapturedCall",
]

#: Names that moved to :mod:`ambridge.book.records`; kept importable from here for one release.
_MOVED = ("run_record", "publish_results", "repo_root", "RESULTS_ENV")


def __getattr__(name: str):
    if name in _MOVED:
        warnings.warn(f"ambridge.runtime.{name} moved to ambridge.book.records; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        from .book import records  # an alias for one release: the one import of the book from the core

        return getattr(records, name)
    raise AttributeError(f"module 'ambridge.runtime' has no attribute {name!r}")


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


class CapturedCall:
    """A tensor function replayed from a CUDA graph: ``step = CapturedCall(fn, *example_inputs)``, then
    ``outputs = step(*inputs)``.

    A small model's step on a GPU is launch-bound: hundreds of kernels of microseconds each, with Python between
    them. A CUDA graph records those launches once and replays them with one call. ``fn`` must be a pure function of
    its tensor inputs and of state that lives in place (a model's parameters, updated in place by an optimizer): it
    may not read a tensor back to the host, copy from the host, draw from a device random generator or branch on
    values. It is run ``warmup`` times on a side stream first (as PyTorch's recipe asks: lazy initialisation must not
    happen under capture), then captured once.

    Each call copies ``inputs`` into the graph's fixed input buffers (same shapes and dtypes as the examples; a
    mismatch is an error, never a silent reshape), replays the graph and returns its fixed output tensors, which the
    next call overwrites: clone what must outlive it.
    """

    def __init__(self, fn, *example_inputs: torch.Tensor, warmup: int = 2):
        if not example_inputs or not all(isinstance(t, torch.Tensor) for t in example_inputs):
            raise TypeError("CapturedCall needs at least one example input, every one a torch.Tensor")
        device = example_inputs[0].device
        if device.type != "cuda" or any(t.device != device for t in example_inputs):
            raise ParameterError("example_inputs", [str(t.device) for t in example_inputs],
                                 "must all be on one CUDA device: a CUDA graph records GPU work only")
        self.static_inputs = tuple(t.detach().clone() for t in example_inputs)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(check_number("warmup", warmup, low=1, integer=True)):
                fn(*self.static_inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_outputs = fn(*self.static_inputs)

    def __call__(self, *inputs: torch.Tensor):
        if len(inputs) != len(self.static_inputs):
            raise TypeError(f"expected {len(self.static_inputs)} inputs, got {len(inputs)}")
        for i, (static, x) in enumerate(zip(self.static_inputs, inputs)):
            if x.shape != static.shape or x.dtype != static.dtype:
                raise ValueError(f"input {i} must have shape {tuple(static.shape)} and dtype {static.dtype} "
                                 f"(those it was captured with), got {tuple(x.shape)} {x.dtype}")
            static.copy_(x, non_blocking=True)
        self.graph.replay()
        return self.static_outputs
