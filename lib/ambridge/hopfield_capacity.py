"""How many patterns a binary associative memory recalls: the capacity experiment of chapter 1.

The experiment, stated once so the chapter and the tests mean the same thing:

1. For each load α = P/D and each seed, draw P random ±1 patterns of D units (:func:`ambridge.data.binary_patterns`).
2. Take ``n_probes`` of them (all, when P is smaller) and flip exactly round(``cue_noise``·D) bits of each
   (:func:`ambridge.data.flip_signs`): the cues.
3. Run asynchronous zero-temperature dynamics of the energy E(s) = −Σ_k F(ξ_kᵀ s) from every cue — a random order of
   units per sweep, each unit takes the sign of lower energy, at most ``max_sweeps`` sweeps, stopping at a fixed point
   (:func:`ambridge.dynamics.batched_dense_retrieve`).
4. A pattern is **retrieved** when the final state's overlap m = ξᵀs/D with it is at least ``min_overlap``.
5. Per seed, the success fraction against α falls from 1 to 0; the **capacity** is where it crosses ``level``
   (½: a typical pattern), interpolated linearly in α between grid points (:func:`crossing_load`).

Used in chapter 1, § From Hopfield to dense associative memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

from . import checks
from .data import binary_patterns, flip_signs
from .dynamics import batched_dense_retrieve

__all__ = ["batched_dense_retrieve", "RecallSweep", "recall_sweep", "crossing_load", "largest_load_above",
           "mean_and_sem"]


@dataclass(frozen=True)
class RecallSweep:
    """The final overlaps of a recall experiment: ``overlaps[l]`` is an (n_seeds, n_probes_l) array for the load
    ``loads[l]`` (n_probes_l = min(P, n_probes)).

    Used in chapter 1, § From Hopfield to dense associative memory."""

    loads: np.ndarray
    overlaps: tuple[np.ndarray, ...]

    @property
    def n_seeds(self) -> int:
        return self.overlaps[0].shape[0]

    def success(self, min_overlap: float) -> np.ndarray:
        """(n_loads, n_seeds): the fraction of probed patterns retrieved (final overlap ≥ ``min_overlap``)."""
        return np.stack([(m >= min_overlap).mean(axis=1) for m in self.overlaps])

    def capacity(self, min_overlap: float, level: float = 0.5) -> np.ndarray:
        """(n_seeds,): per seed, the load where the success fraction first falls below ``level``
        (:func:`crossing_load`; NaN where it never does on the grid)."""
        frac = self.success(min_overlap)
        return np.array([crossing_load(self.loads, frac[:, j], level) for j in range(self.n_seeds)])


def recall_sweep(
    loads: Sequence[float],
    *,
    n_units: int,
    n_seeds: int,
    cue_noise: float,
    n_probes: int = 64,
    interaction: Literal["polynomial", "exponential"] = "polynomial",
    degree: int = 2,
    max_sweeps: int = 10,
    generator: torch.Generator | None = None,
) -> RecallSweep:
    """Steps 1–4 of the module's experiment at every load (P = max(1, round(αD)) patterns), ``n_seeds`` independent
    pattern sets per load, batched over the seeds. Patterns are drawn in torch's default dtype. It runs on one CPU
    thread (restored afterwards): the dynamics visit one unit at a time on small tensors, where the cost is in the
    number of operations and extra threads only add synchronisation (measured several times slower with two).

    Used in chapter 1, § From Hopfield to dense associative memory."""
    checks.count("n_units", n_units, low=1)
    checks.count("n_seeds", n_seeds, low=1)
    checks.count("n_probes", n_probes, low=1)
    checks.check_number("cue_noise", cue_noise, low=0, high=1)
    loads = np.asarray(loads, dtype=float)
    if loads.ndim != 1 or loads.size == 0 or not np.all(loads > 0) or np.any(np.diff(loads) <= 0):
        raise checks.ParameterError("loads", loads.tolist(), "must be a non-empty increasing list of positive loads")
    out, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for load in loads:
            n_patterns = max(1, round(load * n_units))
            patterns = torch.stack([binary_patterns(n_patterns, n_units, generator=generator) for _ in range(n_seeds)])
            probes = patterns[:, : min(n_patterns, n_probes)]
            cues = flip_signs(probes, cue_noise, generator=generator)
            final, _ = batched_dense_retrieve(cues, patterns, interaction=interaction, degree=degree,
                                              max_sweeps=max_sweeps, generator=generator)
            out.append(((final * probes).sum(-1) / n_units).cpu().numpy())
    finally:
        torch.set_num_threads(threads)
    return RecallSweep(loads, tuple(out))


def crossing_load(loads: Sequence[float], fractions: Sequence[float], level: float) -> float:
    """The load where ``fractions`` (success against increasing ``loads``) first falls below ``level``, linear in
    the load between the last grid point at or above it and the next; the first load if it starts below; NaN if it
    never falls below.

    Used in chapter 1, § From Hopfield to dense associative memory."""
    x, y = np.asarray(loads, dtype=float), np.asarray(fractions, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise checks.ParameterError("fractions", y.tolist(), f"must match the loads' shape {x.shape}")
    below = np.flatnonzero(y < level)
    if below.size == 0:
        return math.nan
    k = int(below[0])
    if k == 0:
        return float(x[0])
    t = (y[k - 1] - level) / (y[k - 1] - y[k])
    return float(x[k - 1] + t * (x[k] - x[k - 1]))


def largest_load_above(loads: Sequence[float], fractions: Sequence[float], level: float) -> float:
    """The largest grid load up to which every ``fractions`` value is at least ``level`` (NaN if the first is not):
    a lower bound on the capacity at that level, without interpolation.

    Used in chapter 1, § From Hopfield to dense associative memory."""
    x, y = np.asarray(loads, dtype=float), np.asarray(fractions, dtype=float)
    ok = np.cumprod(y >= level).astype(bool)
    return float(x[ok][-1]) if ok.any() else math.nan


def mean_and_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / √n; 0 for one value) of finite values.

    Used in chapter 1, § From Hopfield to dense associative memory (capacity over seeds)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
