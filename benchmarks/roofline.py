"""How close a step comes to the machine: its FLOPs, the matmul rate at its own shapes, and where the rest goes.

- :func:`count_matmuls` runs a function once under PyTorch's FLOP counter and returns its total FLOPs with the FLOPs
  of every matrix-product shape it executed (``mm``, ``addmm``, ``bmm``, …);
- :func:`matmul_rates` times bare fp32 products of those shapes on the same device and threads, in the same run;
- :func:`roofline` puts them together: the *roofline time* is the time the step's matrix products alone would take
  at the measured rate of each shape (Σ FLOPs_shape / rate_shape), and the *roofline fraction* is that time over the
  measured step time. 100 % would mean the step is nothing but matrix products running at full speed;
- :func:`profile_summary` lists the operators that take the step's time (torch.profiler), for the rest.
"""

from __future__ import annotations

import time
import types
from collections import Counter

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_matmuls", "matmul_rates", "roofline", "profile_summary"]

MATMULS = ("mm", "addmm", "bmm", "baddbmm")


class _ShapeRecorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Records (op, shapes) of every matrix product executed, forward and backward."""

    def __init__(self):
        super().__init__()
        self.calls = Counter()

    def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in MATMULS:
            mats = [a for a in args if isinstance(a, torch.Tensor) and a.ndim >= 2]
            self.calls[(name, tuple(tuple(m.shape) for m in mats[-2:]))] += 1
        return func(*args, **(kwargs or {}))


def _flops(name: str, shapes) -> int:
    (*batch, m, k), (*_, _k2, n) = shapes
    count = 1
    for b in batch:
        count *= b
    return 2 * count * m * k * n


def count_matmuls(fn) -> tuple[int, dict]:
    """Run ``fn()`` once; → (total FLOPs by torch's counter, {(op, shapes): FLOPs of all calls of that shape})."""
    counter = FlopCounterMode(display=False)
    # The counter's module tracker cannot follow torch.autograd.grad(inputs=…) (as in a Langevin step); the totals
    # do not need it.
    counter.mod_tracker = types.SimpleNamespace(__enter__=lambda: None, __exit__=lambda *a: None,
                                                parents={"Global"}, is_bw=False)
    recorder = _ShapeRecorder()
    with counter, recorder:
        fn()
    per_shape = {key: calls * _flops(key[0], key[1]) for key, calls in recorder.calls.items()}
    return counter.get_total_flops(), per_shape


def matmul_rates(per_shape: dict, *, device="cpu", coverage: float = 0.95, repeats: int = 5,
                 min_seconds: float = 0.05) -> dict:
    """FLOP/s of a bare fp32 product for the largest shapes covering ``coverage`` of the FLOPs → {key: FLOP/s}."""
    total = sum(per_shape.values())
    rates, covered = {}, 0
    for key, flops in sorted(per_shape.items(), key=lambda kv: -kv[1]):
        if covered >= coverage * total:
            break
        covered += flops
        (a_shape, b_shape) = key[1]
        a = torch.randn(a_shape, device=device)
        b = torch.randn(b_shape, device=device)
        op = torch.bmm if len(a_shape) == 3 else torch.mm
        op(a, b)
        times = []
        for _ in range(repeats):
            n, began = 0, time.perf_counter()
            while True:
                op(a, b)
                n += 1
                if device != "cpu":
                    torch.cuda.synchronize()
                if time.perf_counter() - began > min_seconds:
                    break
            times.append((time.perf_counter() - began) / n)
        rates[key] = _flops(key[0], key[1]) / min(times)
    return rates


def roofline(step_seconds: float, total_flops: int, per_shape: dict, rates: dict) -> dict:
    """The step against the matmul rates of its own shapes (the shapes without a measured rate take the rate of
    the whole measured set)."""
    measured = sum(per_shape[k] for k in rates)
    measured_time = sum(per_shape[k] / rates[k] for k in rates)
    rest = sum(v for k, v in per_shape.items() if k not in rates)
    roof_time = measured_time * (1 + rest / measured) if measured else float("nan")
    return {"gflop": total_flops / 1e9, "gflop_per_s": total_flops / step_seconds / 1e9,
            "matmul_gflop_per_s_at_step_shapes": measured / measured_time / 1e9 if measured else float("nan"),
            "roofline_time_s": roof_time, "roofline_fraction": roof_time / step_seconds,
            "matmul_rates": [{"op": k[0], "shapes": k[1], "gflop": per_shape[k] / 1e9, "gflop_per_s": r / 1e9}
                             for k, r in rates.items()]}


def profile_summary(fn, rows: int = 12) -> list[dict]:
    """Self CPU time per operator over one call of ``fn`` (torch.profiler), the largest ``rows``, as fractions."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]
    return [{"op": e.key, "calls": e.count, "self_ms": e.self_cpu_time_total / 1e3,
             "fraction": e.self_cpu_time_total / total} for e in top]
