"""Modes that are not data points: where a KDE stops memorising its data and starts generalising.

- :func:`kde_modes_1d` — every mode of a 1-D Gaussian KDE, on a fine grid (Geshkovski et al.'s Θ(√(β log β)) count);
- :func:`scott_bandwidth`, :func:`silverman_bandwidth` — the data-driven bandwidth rules;
- :func:`retained_fraction` — the fraction of data points that still own a mode (mean shift from x_i stays nearest
  x_i).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import checks
from ..checks import check_number
from ..dynamics import iterate_to_fixed_point, mean_shift_step
from .retrieval import nearest_index

__all__ = ["kde_modes_1d", "scott_bandwidth", "silverman_bandwidth", "retained_fraction"]


def kde_modes_1d(samples, bandwidth: float, *, resolution: int = 20, window: float = 12.0, chunk: int = 1024) -> np.ndarray:
    """Every mode (local maximum) of the 1-D Gaussian KDE of ``samples`` with bandwidth h, located on a grid of
    step h/``resolution`` over the data's range ± 5h and refined by linear interpolation of p̂′.

    p̂′(t) ∝ Σ_i (x_i − t) exp(−(t − x_i)²/(2h²)); only samples within ``window``·h of a grid block enter its sum
    (the rest weigh less than e^{−window²/2}). A mode is a change of sign of p̂′ from + to − (exact zeros are
    skipped, so a flat stretch far from all data is not counted). Float64 throughout.

    Used in chapter 5, § Where memories stop being data points.
    """
    x = np.sort(np.asarray(samples, dtype=float).ravel())
    if x.size == 0:
        raise checks.ParameterError("samples", samples, "must not be empty")
    check_number("bandwidth", bandwidth, low=0, low_open=True)
    check_number("resolution", resolution, low=2, integer=True)
    h = float(bandwidth)
    grid = np.arange(x[0] - 5 * h, x[-1] + 5 * h + h / resolution, h / resolution)
    deriv = np.empty_like(grid)
    for start in range(0, grid.size, chunk):
        t = grid[start : start + chunk]
        lo, hi = np.searchsorted(x, [t[0] - window * h, t[-1] + window * h])
        near = x[lo:hi]
        u = (near[None, :] - t[:, None]) / h
        deriv[start : start + chunk] = (u * np.exp(-0.5 * u**2)).sum(-1)
    sign = np.sign(deriv)
    keep = np.nonzero(sign)[0]
    s, g, dv = sign[keep], grid[keep], deriv[keep]
    k = np.nonzero((s[:-1] > 0) & (s[1:] < 0))[0]
    return g[k] + (g[k + 1] - g[k]) * dv[k] / (dv[k] - dv[k + 1])


def _spread(data: torch.Tensor) -> float:
    return float(data.std(dim=0, unbiased=True).mean())


def scott_bandwidth(data: torch.Tensor) -> float:
    """Scott's rule for a Gaussian kernel in d dimensions: h = σ̂·N^{−1/(d+4)} (σ̂: mean per-coordinate std).

    Used in chapter 5, § Where memories stop being data points."""
    data = checks.patterns("data", data)
    n, d = data.shape
    return _spread(data) * n ** (-1 / (d + 4))


def silverman_bandwidth(data: torch.Tensor) -> float:
    """Silverman's normal-reference rule in d dimensions: h = σ̂·(4/((d + 2)N))^{1/(d+4)}.

    Used in chapter 5, § Where memories stop being data points."""
    data = checks.patterns("data", data)
    n, d = data.shape
    return _spread(data) * (4 / ((d + 2) * n)) ** (1 / (d + 4))


def retained_fraction(data: torch.Tensor, bandwidth: float, *, max_iter: int = 500, tol: float = 1e-4) -> float:
    """Fraction of the data points that are still memories of their KDE: mean shift started at x_i ends at a
    point whose nearest data point is x_i (x_i owns a mode). ``tol`` is in units of the bandwidth.

    1 when the bandwidth is small against the spacing of the data (the estimator memorises); it falls toward
    (number of modes)/N as the kernels merge (it generalises).

    Used in chapter 5, § Where memories stop being data points.
    """
    data = checks.patterns("data", data)
    checks.positive("bandwidth", bandwidth)
    run = iterate_to_fixed_point(lambda v: mean_shift_step(v, data, bandwidth), data, max_iter=max_iter,
                                 tol=tol * bandwidth)
    owner = nearest_index(run.state, data)
    return float((owner == torch.arange(data.shape[0], device=data.device)).float().mean())
