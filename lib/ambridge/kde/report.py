"""Reading and summarising capacity sweeps: the tables, fits and checks chapter 5 prints, from the records of
:func:`ambridge.kde.run_sweep` or from a committed run record (``python -m ambridge.kde``'s JSON file).

- :func:`per_dimension`, :func:`summarise_dimensions` (N*, N½, its spread, the saddle-node prediction and the
  width of the drop per dimension), :func:`fit_capacity_exponent` (the measured and predicted rates of ln N½ in d),
  :func:`n_half_ratios` (two runs compared);
- :func:`half_precision_check` — how often the float32 re-check agrees with a half-precision sweep;
- :class:`SweepArtifact`, :func:`read_sweep_artifact`, :func:`find_sweep_artifact` — a committed run record (the
  format written since chapter 5 was first committed: parameters with the sweep's settings, records, capacities),
  and whether it is stale (:meth:`SweepArtifact.stale_against`: run at a looser step tolerance than a sweep now uses);
- :func:`read_benchmark`, :func:`benchmark_table`, :func:`speedup_ranges` — ``benchmarks/capacity.py``'s output;
- :func:`draw_success_curves` — success against N per dimension, on a Matplotlib axis.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .sweep import crossing, fit_exponent, mean_success
from .theory import mean_field_log_capacity

__all__ = [
    "per_dimension", "DimensionSummary", "summarise_dimensions", "ExponentFit", "fit_capacity_exponent",
    "n_half_ratios", "half_precision_check",
    "SweepArtifact", "read_sweep_artifact", "find_sweep_artifact", "read_benchmark", "benchmark_table",
    "speedup_ranges", "draw_success_curves",
]

#: Step tolerances (units of M) of runs recorded before the run record named its ``step_tol``.
_OLD_STEP_TOL = {"float16": 2e-3, "bfloat16": 1e-2}


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def per_dimension(caps: Iterable[dict], key: str) -> dict[int, np.ndarray]:
    """The finite values of ``key`` (``"n_star"`` or ``"n_half"``) per dimension, from :func:`capacities` (or a run
    record's, where a missing value is null); a dimension without any finite value is left out.

    Used in chapter 5, § Measuring the capacity, and § At scale."""
    out: dict[int, list[float]] = {}
    for c in caps:
        if _finite(c[key]):
            out.setdefault(c["d"], []).append(c[key])
    return {d: np.array(v) for d, v in sorted(out.items())}


@dataclass(frozen=True)
class DimensionSummary:
    """One dimension of a sweep: mean N* and N½ over seeds (NaN where no seed has one), the spread of N½ over seeds,
    the saddle-node prediction of N½, and the width ln(N₁₀%/N₉₀%) of the drop of the mean success (NaN where the
    first grid point is already below 90%). Used in chapter 5, § Measuring the capacity, and § At scale."""

    d: int
    n_star: float
    n_half: float
    n_half_sd: float
    n_half_theory: float
    width: float


def summarise_dimensions(records: Sequence[dict], caps: Sequence[dict], *, lam: float, eps: float,
                         dims: Iterable[int] | None = None) -> list[DimensionSummary]:
    """A :class:`DimensionSummary` per dimension of ``dims`` (default: every dimension with an N½), from the sweep's
    records and :func:`capacities`; λ = βM²/d and ε as the sweep ran them.

    Used in chapter 5, § Measuring the capacity, and § At scale."""
    star, half = per_dimension(caps, "n_star"), per_dimension(caps, "n_half")
    out = []
    for d in (sorted(half) if dims is None else dims):
        sizes, mean = mean_success(records, d)
        h = half.get(d, np.array([math.nan]))
        out.append(DimensionSummary(
            d=int(d), n_star=float(np.mean(star[d])) if d in star else math.nan, n_half=float(np.mean(h)),
            n_half_sd=float(np.std(h)), n_half_theory=math.exp(mean_field_log_capacity(lam, int(d), eps=eps)),
            width=math.log(crossing(sizes, mean, 0.1) / crossing(sizes, mean, 0.9)),
        ))
    return out


@dataclass(frozen=True)
class ExponentFit:
    """ln N½ = α·d + c fitted over the ``dims`` of a sweep (``alpha``, ``r2``), and the slope ``alpha_theory`` of the
    saddle-node prediction over the same dimensions. Used in chapter 5, § Measuring the capacity, and § At scale."""

    dims: tuple[int, ...]
    alpha: float
    r2: float
    alpha_theory: float


def fit_capacity_exponent(summary: Sequence[DimensionSummary], *, lam: float, eps: float) -> ExponentFit:
    """Fit the exponent of the measured N½ (:func:`summarise_dimensions`) and of the saddle-node theory
    (:func:`ambridge.kde.mean_field_log_capacity`) over the same dimensions, with :func:`ambridge.kde.fit_exponent`.

    Used in chapter 5, § Measuring the capacity, and § At scale."""
    dims = tuple(s.d for s in summary)
    alpha, _, r2 = fit_exponent(dims, [math.log(s.n_half) if s.n_half > 0 else math.nan for s in summary])
    theory = fit_exponent(dims, [mean_field_log_capacity(lam, d, eps=eps) for d in dims])[0]
    return ExponentFit(dims, alpha, r2, theory)


def n_half_ratios(caps: Iterable[dict], reference: Iterable[dict]) -> dict[int, float]:
    """Mean N½ of one run over that of a ``reference`` run, per dimension both have.

    Used in chapter 5, § At scale (the GPU run against the float32 CPU run)."""
    a, b = per_dimension(caps, "n_half"), per_dimension(reference, "n_half")
    return {d: float(np.mean(a[d]) / np.mean(b[d])) for d in a if d in b}


def half_precision_check(records: Iterable[dict], *, drop: tuple[float, float] = (0.02, 0.98)) -> dict | None:
    """How the float32 re-check of a half-precision sweep agrees with it: ``queries`` re-checked and the fraction
    ``agree`` with the same verdict, overall and (``drop_queries``, ``drop_agree``) at the points whose success lies
    strictly inside ``drop`` — where the verdicts can differ. None if no record was re-checked.

    Used in chapter 5, § At scale."""
    checked = [r for r in records if r.get("check_queries")]
    if not checked:
        return None
    inside = [r for r in checked if drop[0] < r["fraction"] < drop[1]]
    n_all, n_inside = sum(r["check_queries"] for r in checked), sum(r["check_queries"] for r in inside)
    return {"queries": n_all, "agree": sum(r["check_agree"] for r in checked) / max(1, n_all),
            "drop_queries": n_inside, "drop_agree": sum(r["check_agree"] for r in inside) / max(1, n_inside)}


@dataclass(frozen=True)
class SweepArtifact:
    """A committed run record of ``python -m ambridge.kde`` (``run``, the JSON object) and where it came from.

    Used in chapter 5, § At scale."""

    path: Path
    run: dict

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sweep(self) -> dict:
        """The :class:`ambridge.kde.CapacitySweep` settings the run used (dims, bandwidth_scale, precision, …)."""
        return self.run["parameters"]["sweep"]

    @property
    def records(self) -> list[dict]:
        return self.run["records"]

    @property
    def capacities(self) -> list[dict]:
        return self.run["capacities"]

    @property
    def p_fail(self) -> float:
        return self.run["parameters"]["p_fail"]

    @property
    def lam(self) -> float:
        """λ = βM²/d = 1/s² of the run."""
        return 1 / self.sweep["bandwidth_scale"] ** 2

    @property
    def step_tol(self) -> float:
        """The convergence tolerance (units of M) the run used; runs recorded before it was named in the record
        used 2·10⁻³ in float16 and 10⁻⁵ in float32."""
        return self.sweep.get("step_tol") or _OLD_STEP_TOL.get(self.sweep["precision"], 1e-5)

    def stale_against(self, step_tol: float) -> bool:
        """True when the run stopped its steps at a looser tolerance than ``step_tol`` (units of M), the one a sweep
        of the same preset uses now (:attr:`ambridge.kde.CapacitySweep.step_tol`): its verdicts near the drop are
        biased toward retrieval (chapter 5, § At scale) until it is regenerated."""
        return self.step_tol > step_tol

    @property
    def complete(self) -> bool:
        """False when the run stopped at its time limit before every dimension reached its drop."""
        return bool(self.run.get("complete", True))

    @property
    def largest_n(self) -> int:
        return max(r["N"] for r in self.records)


def read_sweep_artifact(path: str | Path) -> SweepArtifact:
    """Read a run record written by ``python -m ambridge.kde`` (a JSON object with ``parameters`` holding the
    ``sweep`` settings and ``p_fail``, ``records`` and ``capacities``; null where a capacity was not reached).

    Used in chapter 5, § At scale."""
    path = Path(path)
    run = json.loads(path.read_text())
    missing = [k for k in ("parameters", "records", "capacities", "hardware", "commit") if k not in run]
    if not isinstance(run, dict) or missing or "sweep" not in run["parameters"]:
        raise ValueError(f"{path}: not a capacity-sweep run record (missing {missing or ['parameters.sweep']})")
    return SweepArtifact(path, run)


def find_sweep_artifact(directory: str | Path,
                        names: Sequence[str] = ("capacity-gpu.json", "capacity-cpu.json")) -> SweepArtifact | None:
    """The first of ``names`` present in ``directory``, read; None if there is none.

    Used in chapter 5, § At scale."""
    for name in names:
        if (Path(directory) / name).is_file():
            return read_sweep_artifact(Path(directory) / name)
    return None


def read_benchmark(path: str | Path) -> dict:
    """Read ``benchmarks/capacity.py``'s JSON output (a run record with ``hardware`` and ``rows``).

    Used in chapter 5, § At scale."""
    bench = json.loads(Path(path).read_text())
    if not isinstance(bench, dict) or "rows" not in bench or "hardware" not in bench:
        raise ValueError(f"{path}: not a capacity benchmark record (needs `rows` and `hardware`)")
    return bench


def benchmark_table(bench: dict) -> tuple[list[str], list[tuple]]:
    """Headers and rows of the benchmark's table (one row per (d, N, path) that ran; failed paths left out).

    Used in chapter 5, § At scale."""
    headers = ["d", "N", "path", "queries/s", "mean steps", "verdicts = naive", "speed-up"]
    rows = [(r["d"], r["N"], r["path"], f"{r['queries_per_s']:.3g}", f"{r['mean_iter']:.1f}",
             f"{r['agree_with_naive']:.1%}", f"{r['speedup_vs_naive']:.1f}×") for r in bench["rows"] if "error" not in r]
    return headers, rows


def speedup_ranges(bench: dict) -> dict[str, tuple[float, float]]:
    """Smallest and largest speed-up of the library's path over the naive float32 one, per precision.

    Used in chapter 5, § At scale."""
    by_precision: dict[str, list[float]] = {}
    for r in bench["rows"]:
        if "error" not in r and r["path"].startswith("library"):
            by_precision.setdefault(r["path"].split("/")[1], []).append(r["speedup_vs_naive"])
    return {k: (min(v), max(v)) for k, v in by_precision.items()}


def draw_success_curves(ax, records: Sequence[dict], dims: Iterable[int], level: float) -> None:
    """Mean success fraction against N for each dimension (colour: d, dark to light), with the band from the
    lowest to the highest seed, and a dotted line at ``level``, on the Matplotlib axis ``ax``.

    Used in chapter 5, § Measuring the capacity, and § At scale."""
    from matplotlib import colormaps

    dims = list(dims)
    for color, d in zip(colormaps["viridis"](np.linspace(0, 0.85, len(dims))), dims):
        sizes = sorted({r["N"] for r in records if r["d"] == d})
        frac = np.array([[r["fraction"] for r in records if r["d"] == d and r["N"] == n] for n in sizes])
        ax.fill_between(sizes, frac.min(1), frac.max(1), color=color, alpha=0.25, lw=0)
        ax.plot(sizes, frac.mean(1), "o-", color=color, ms=3, label=f"d = {d}")
    ax.axhline(level, ls=":", color="grey", lw=1)
    ax.set(xscale="log", xlabel="N, points stored", ylabel="fraction of cues retrieved", ylim=(-0.03, 1.03))
    ax.legend(fontsize=8, ncol=2, loc="lower left")
