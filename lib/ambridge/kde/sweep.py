"""The capacity sweep: how many points a KDE on a sphere retrieves, as the load N grows, per dimension and seed.

- :class:`CapacitySweep` — one experiment's settings, checked against :data:`LIMITS` (the one table of allowed values,
  which the chapter's parameters are checked against too, through :meth:`CapacitySweep.from_parameters` and
  :func:`check_setting`); :meth:`CapacitySweep.key` names everything that changes a result;
- :func:`sweep_point` — one (d, N, seed): sample, cue, retrieve, count;
- :func:`run_sweep` — every dimension up its N grid, coarse then fine across the drop, resumable through an
  :class:`ambridge.store.RecordStore` (a record per (d, N, seed), keyed by the sweep's key and the point);
- :func:`mean_success`, :func:`crossing`, :func:`capacities`, :func:`fit_exponent`, :func:`finished_dimensions` —
  from the records to N* and N½ per (d, seed) and the exponent of their growth.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ..checks import ParameterError, check_choice, check_number
from ..data import sphere_points
from ..store import RecordStore
from .retrieval import perturb, retrieve
from .theory import scaled_bandwidth

__all__ = [
    "PRECISIONS", "LIMITS", "SWEEP_PARAMETERS", "check_setting", "CapacitySweep", "sweep_point", "run_sweep",
    "mean_success", "crossing", "capacities", "fit_exponent", "finished_dimensions",
]

#: The precisions a sweep's retrieval may run in (float16 on a GPU, with a float32 re-check; bfloat16's 8-bit mantissa
#: freezes drifting states while they are still within ε, so it is not offered — see :attr:`CapacitySweep.step_tol`).
PRECISIONS = {"float32": torch.float32, "float16": torch.float16}

#: Allowed values of every setting of a capacity sweep (keyword arguments of :func:`ambridge.checks.check_number`):
#: the one table behind :class:`CapacitySweep`'s checks and chapter 5's validation cell.
LIMITS: dict[str, dict] = {
    "dims": dict(low=4, high=4096, integer=True),
    "d_step": dict(low=1, high=1024, integer=True),
    "bandwidth_scale": dict(low=0, high=10, low_open=True),
    "bandwidth": dict(low=0, high=2, low_open=True),
    "radius": dict(low=0, low_open=True),
    "n_seeds": dict(low=1, high=100, integer=True),
    "seed": dict(low=0, integer=True),
    "n_min": dict(low=2, integer=True),
    "n_max": dict(low=16, high=100_000_000, integer=True),
    "growth": dict(low=1, high=4, low_open=True),
    "n_queries": dict(low=16, high=1_000_000, integer=True),
    "noise": dict(low=0, high=2),
    "eps": dict(low=0, high=1, low_open=True),
    "max_iter": dict(low=1, high=10_000, integer=True),
    "tol": dict(low=0, low_open=True),
    "stop_below": dict(low=0, high=1),
    "refine_above": dict(low=0, high=1),
    "chunk": dict(low=1, integer=True),
    "check_queries": dict(low=0, integer=True),
    "p_fail": dict(low=0, high=0.5, low_open=True, high_open=True),
}

#: Chapter 5's sweep parameters (a preset for ``python -m ambridge.kde`` must set them all) and the setting of
#: :data:`LIMITS` each is checked against.
SWEEP_PARAMETERS = {
    "seed": "seed", "bandwidth_scale": "bandwidth_scale", "sweep_d_min": "dims", "sweep_d_max": "dims",
    "sweep_d_step": "d_step", "sweep_seeds": "n_seeds", "sweep_n_max": "n_max", "sweep_growth": "growth",
    "sweep_queries": "n_queries", "noise": "noise", "eps": "eps", "max_iter": "max_iter", "p_fail": "p_fail",
    "precision": "precision", "chunk": "chunk", "check_queries": "check_queries",
}


def check_setting(name: str, value, setting: str | None = None, **tighter):
    """Check ``value`` against the limits of ``setting`` (default: ``name``) in :data:`LIMITS`, naming ``name`` in
    the :class:`ambridge.checks.ParameterError`; ``tighter`` overrides a bound (``low=sweep_d_min``). Returns it.

    Used in chapter 5, § Parameters (the validation cell), and by :class:`CapacitySweep`."""
    return check_number(name, value, **{**LIMITS[setting or name], **tighter})


@dataclass
class CapacitySweep:
    """One capacity experiment [a reconstruction: the paper's protocol is not public].

    For each dimension d, seed and N on a geometric grid: N points uniform on S^{d−1}(M); bandwidth σ = s·M/√d
    (or a fixed ``bandwidth`` σ, in units of M); ``n_queries`` of them (all when N is smaller) are the starting
    patterns, each moved by ``noise``·M in a random direction; mean shift runs to convergence over all N keys;
    a query succeeds if it ends within ``eps``·M of its pattern and nearest to it. N grows by ``growth`` from
    ``n_min`` until the mean success over seeds falls below ``stop_below`` (or N passes ``n_max``): first on every
    ``coarse_step``-th grid point (factors of about 2), then on every grid point between the last coarse point with
    success ≥ ``refine_above`` and the first below ``stop_below`` — fine where the drop is, cheap where it is not.
    ``check_queries`` > 0 re-runs that many queries of each point in float32 to check a half-``precision`` sweep.

    Used in chapter 5, § Measuring the capacity, and § At scale (``python -m ambridge.kde``).
    """

    dims: tuple[int, ...] = (6, 8, 10, 12, 14, 16)
    bandwidth_scale: float = 1.25
    bandwidth: float | None = None
    radius: float = 1.0
    n_seeds: int = 3
    seed: int = 0
    n_min: int = 4
    n_max: int = 2**21
    growth: float = 2**0.5
    n_queries: int = 256
    noise: float = 0.1
    eps: float = 0.1
    max_iter: int = 100
    tol: float | None = None
    stop_below: float = 0.02
    refine_above: float = 0.99
    precision: str = "float32"
    chunk: int = 4096
    check_queries: int = 0
    device: str = "cpu"

    def __post_init__(self):
        self.dims = tuple(int(d) if isinstance(d, (int, np.integer)) else d for d in self.dims)
        if not self.dims:
            raise ParameterError("dims", self.dims, "must list at least one dimension")
        for d in self.dims:
            check_setting("dims", d)
        for name in ("bandwidth_scale", "radius", "n_seeds", "seed", "n_min", "growth", "n_queries", "noise", "eps",
                     "max_iter", "stop_below", "refine_above", "chunk", "check_queries"):
            check_setting(name, getattr(self, name))
        check_setting("n_max", self.n_max, low=max(LIMITS["n_max"]["low"], self.n_min))
        for name in ("bandwidth", "tol"):
            if getattr(self, name) is not None:
                check_setting(name, getattr(self, name))
        check_choice("precision", self.precision, list(PRECISIONS))

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    @property
    def step_tol(self) -> float:
        """Convergence tolerance in units of M: 1e-5 in every precision.

        A half-precision step lands exactly on a fixed point of its rounded map (steps of size 0), so it needs no
        looser tolerance — and must not have one: near the drop the states that are losing their pattern drift
        away slowly, in steps far below 10⁻³·M, and a loose tolerance freezes them while they are still within ε
        (measured at d = 48, N = 16 379: float16 with tolerance 2·10⁻³ retrieved 57% of the queries, float32 25%;
        with 10⁻⁵, 27%, agreeing on 99% of queries). bfloat16's 8-bit mantissa freezes them anyway (39% there,
        whatever the tolerance): use float16."""
        return self.tol if self.tol is not None else 1e-5

    @property
    def coarse_step(self) -> int:
        """Grid points per coarse step: about a factor 2 in N."""
        return max(1, round(math.log(2) / math.log(self.growth)))

    def sigma(self, dim: int) -> float:
        """The bandwidth σ at dimension d: ``bandwidth``·M when fixed, else s·M/√d."""
        if self.bandwidth is not None:
            return self.bandwidth * self.radius
        return scaled_bandwidth(self.bandwidth_scale, self.radius, dim)

    def sizes(self) -> list[int]:
        """The N grid: n_min·growth^k rounded, increasing, up to n_max."""
        out, k = [], 0
        while True:
            n = round(self.n_min * self.growth**k)
            if n > self.n_max:
                return out
            if not out or n > out[-1]:
                out.append(n)
            k += 1

    def key(self) -> str:
        """A hash of every setting that changes a point's result — noise, eps, bandwidth (s or σ), radius, precision,
        step tolerance, max_iter, the float32 re-check, seed and grid — but not the device, chunk, dims, seeds or
        stopping rule (a point's record names its d, N and seed): a checkpoint is reused only by the same experiment."""
        skip = {"device", "chunk", "dims", "n_max", "stop_below", "refine_above", "n_seeds"}
        body = {k: v for k, v in asdict(self).items() if k not in skip}
        body["step_tol"] = self.step_tol
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]

    def point_key(self, dim: int, n: int, seed: int) -> str:
        """The record key of one point: the sweep's :meth:`key` with d, N and seed."""
        return f"{self.key()}/d={dim}/N={n}/seed={seed}"

    @classmethod
    def from_parameters(cls, parameters: Mapping, device: str | torch.device = "cpu") -> "CapacitySweep":
        """Check chapter 5's sweep parameters (the names in :data:`SWEEP_PARAMETERS`, against :data:`LIMITS`, each
        error naming the chapter's parameter) and build the sweep; ``precision="auto"`` is float16 on CUDA and
        float32 elsewhere. Used in chapter 5, § Parameters, and by ``python -m ambridge.kde``."""
        p = parameters
        missing = [name for name in SWEEP_PARAMETERS if name not in p]
        if missing:
            raise ParameterError("parameters", sorted(p), "must set " + ", ".join(missing))
        for name, setting in SWEEP_PARAMETERS.items():
            if setting != "precision":
                check_setting(name, p[name], setting)
        check_setting("sweep_d_max", p["sweep_d_max"], "dims", low=p["sweep_d_min"])
        device = str(device)
        precision = check_choice("precision", p["precision"], ["auto", *PRECISIONS])
        if precision == "auto":
            precision = "float16" if device.startswith("cuda") else "float32"
        return cls(
            dims=tuple(range(p["sweep_d_min"], p["sweep_d_max"] + 1, p["sweep_d_step"])),
            bandwidth_scale=p["bandwidth_scale"], n_seeds=p["sweep_seeds"], seed=p["seed"], n_max=p["sweep_n_max"],
            growth=p["sweep_growth"], n_queries=p["sweep_queries"], noise=p["noise"], eps=p["eps"],
            max_iter=p["max_iter"], precision=precision, chunk=p["chunk"], check_queries=p["check_queries"],
            device=device,
        )


def _point_seed(seed: int, dim: int, n: int) -> int:
    """One seed per (seed, d, N), so any point of the sweep is reproducible on its own (and resumable)."""
    return int(hashlib.sha256(f"{seed}/{dim}/{n}".encode()).hexdigest()[:15], 16)


def sweep_point(sweep: CapacitySweep, dim: int, n: int, seed: int) -> dict:
    """Run one (d, N, seed) point of ``sweep``; returns a JSON-ready record (success counts, iterations, and the
    float32 re-check when asked). The data lie on the sphere by construction, so the step is the mask-free
    attention form (``retrieve(method="sphere")``).

    Used in chapter 5, § Measuring the capacity, and § Basins."""
    device = torch.device(sweep.device)
    gen = torch.Generator(device=device).manual_seed(_point_seed(seed, dim, n))
    data = sphere_points(n, dim, radius=sweep.radius, generator=gen, dtype=torch.float32)
    targets = torch.randperm(n, generator=gen, device=device)[: min(n, sweep.n_queries)]
    starts = perturb(data[targets], sweep.noise * sweep.radius, generator=gen)
    sigma = sweep.sigma(dim)
    precision = None if sweep.dtype == torch.float32 else sweep.dtype
    kwargs = dict(eps=sweep.eps * sweep.radius, max_iter=sweep.max_iter, chunk=sweep.chunk)
    t0 = time.perf_counter()
    out = retrieve(data, sigma, targets, starts, tol=sweep.step_tol * sweep.radius, precision=precision,
                   method="sphere", **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    record = {
        "d": dim, "N": n, "seed": seed, "sigma": sigma, "queries": len(targets),
        "successes": int(out.success.sum()), "fraction": float(out.success.float().mean()),
        "mean_iter": float(out.n_iter.float().mean()), "max_iter_hit": int((~out.converged).sum()),
        "median_distance": float(out.distance.cpu().median()), "seconds": round(time.perf_counter() - t0, 4),
    }
    if sweep.check_queries and precision is not None:  # float32, explicit logits: another kernel and precision
        m = min(sweep.check_queries, len(targets))
        ref = retrieve(data, sigma, targets[:m], starts[:m], tol=1e-5 * sweep.radius, precision=None,
                       method="explicit", **kwargs)
        record["check_queries"] = m
        record["check_agree"] = int((ref.success == out.success[:m]).sum())
        record["check_successes_fp32"] = int(ref.success.sum())
        record["check_successes_half"] = int(out.success[:m].sum())
    return record


class _OutOfTime(Exception):
    """Raised inside :func:`run_sweep` when its time limit has passed (caught there)."""


def run_sweep(
    sweep: CapacitySweep,
    *,
    checkpoint: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    time_limit: float | None = None,
) -> list[dict]:
    """Run every dimension of ``sweep`` up its N grid; returns the records (one per (d, N, seed)).

    With ``checkpoint`` (a JSON-lines :class:`ambridge.store.RecordStore`) every record is stored as soon as it is
    computed, under :meth:`CapacitySweep.point_key`, and records already there for the same experiment are reused:
    an interrupted run resumes where it stopped, and a run with other settings computes its own. With
    ``time_limit`` (seconds) no new N is started once it has passed; the records so far are returned (compare their
    grid with :meth:`CapacitySweep.sizes` to see what is missing).

    Used in chapter 5, § Measuring the capacity, § The bandwidth, § Robustness of the protocol, and § At scale.
    """
    store = RecordStore(checkpoint) if checkpoint is not None else None
    key = sweep.key()
    records, t0 = [], time.perf_counter()
    fine, step = sweep.sizes(), sweep.coarse_step

    def point(dim, n):  # all seeds at one (d, N); returns the mean success
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            if progress is not None:
                progress(f"time limit of {time_limit:.0f} s reached: stopping before d={dim}, N={n}")
            raise _OutOfTime
        batch = []
        for seed in range(sweep.seed, sweep.seed + sweep.n_seeds):
            point_key = sweep.point_key(dim, n, seed)
            rec = store.get(point_key) if store is not None else None
            if rec is None:
                rec = {**sweep_point(sweep, dim, n, seed), "sweep_key": key, "key": point_key}
                if store is not None:
                    store.append(rec)
            batch.append(rec)
        records.extend(batch)
        mean = float(np.mean([r["fraction"] for r in batch]))
        if progress is not None:
            progress(f"d={dim:4d} N={n:9d} success {mean:.3f} ({sum(r['seconds'] for r in batch):.2f} s, "
                     f"mean iterations {np.mean([r['mean_iter'] for r in batch]):.1f})")
        return mean

    try:
        for dim in sweep.dims:
            last_high, first_low = None, None
            for i in range(0, len(fine), step):  # coarse pass
                mean = point(dim, fine[i])
                if mean < sweep.stop_below:
                    first_low = i
                    break
                if mean >= sweep.refine_above:
                    last_high = i
            lo = 0 if last_high is None else last_high + 1
            hi = len(fine) if first_low is None else first_low
            for i in range(lo, hi):  # fine pass over the drop
                if i % step:
                    point(dim, fine[i])
    except _OutOfTime:
        pass
    return records


def mean_success(records: Iterable[dict], dim: int) -> tuple[list[int], list[float]]:
    """The sizes N swept at dimension ``dim`` (increasing) and the success fraction at each, averaged over seeds.

    Used in chapter 5, § Measuring the capacity, and § At scale."""
    by_n: dict[int, list[float]] = {}
    for r in records:
        if r["d"] == dim:
            by_n.setdefault(r["N"], []).append(r["fraction"])
    sizes = sorted(by_n)
    return sizes, [float(np.mean(by_n[n])) for n in sizes]


def crossing(sizes: Sequence[float], fractions: Sequence[float], level: float) -> float:
    """The largest N at which the success fraction is at or above ``level``, interpolated linearly in ln N toward
    the next grid point (where it is below). NaN if no point reaches ``level``; the last size if the last point
    does (the grid did not reach the drop). Taking the *largest* such N, not the first dip, keeps the estimate
    from being set by a small-N grid point where one unlucky pair of close points already costs 1/N.

    Used in chapter 5, § Measuring the capacity (N*, N½ and the width of the drop)."""
    n = np.asarray(sizes, dtype=float)
    f = np.asarray(fractions, dtype=float)
    above = np.nonzero(f >= level)[0]
    if len(above) == 0:
        return math.nan
    k = above[-1]
    if k == len(f) - 1:
        return float(n[-1])
    t = (f[k] - level) / (f[k] - f[k + 1])
    return float(math.exp(math.log(n[k]) + t * (math.log(n[k + 1]) - math.log(n[k]))))


def capacities(records: Iterable[dict], p_fail: float) -> list[dict]:
    """N* (largest N with success ≥ 1 − p_fail) and N½ (success ½, the typical pattern) per (d, seed), from the
    sweep records; ``bracketed`` says whether the grid saw the success fall below ½.

    Used in chapter 5, § Measuring the capacity, § The bandwidth, and § Robustness of the protocol."""
    check_setting("p_fail", p_fail)
    groups: dict[tuple[int, int], list[dict]] = {}
    for r in records:
        groups.setdefault((r["d"], r["seed"]), []).append(r)
    out = []
    for (dim, seed), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["N"])
        sizes, fr = [r["N"] for r in rs], [r["fraction"] for r in rs]
        out.append({"d": dim, "seed": seed, "n_star": crossing(sizes, fr, 1 - p_fail),
                    "n_half": crossing(sizes, fr, 0.5), "bracketed": bool(min(fr) < 0.5)})
    return out


def fit_exponent(dims: Sequence[float], log_n: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares line ln N = α·d + c through the points (non-finite ln N left out); returns (α, c, R²).

    Used in chapter 5, § Measuring the capacity, and § At scale."""
    x, y = np.asarray(dims, dtype=float), np.asarray(log_n, dtype=float)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 2:
        raise ParameterError("dims", list(x), "need at least two distinct dimensions to fit an exponent")
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    r2 = 1 - resid.var() / y.var() if y.var() > 0 else 1.0
    return float(slope), float(intercept), float(r2)


def finished_dimensions(sweep: CapacitySweep, records: Iterable[dict]) -> list[int]:
    """The dimensions of ``sweep`` whose mean success fell below its ``stop_below`` (their drop was reached).

    Used by ``python -m ambridge.kde`` (chapter 5, § At scale: the run record says whether it is complete)."""
    records = list(records)
    return [d for d in sweep.dims if any(f < sweep.stop_below for f in mean_success(records, d)[1])]
