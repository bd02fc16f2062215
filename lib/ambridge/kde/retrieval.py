"""Retrieval from a KDE read as an associative memory: a cue, mean shift to convergence, and the verdict.

- :func:`perturb` — the cue: a pattern moved by an exact distance in a random direction;
- :func:`retrieve` — mean shift over all N data points from every cue, to convergence
  (:func:`ambridge.dynamics.iterate_to_fixed_point`, which steps only the states still moving, in chunks);
  a cue succeeds when it ends within ε of its pattern *and* nearest to it;
- :func:`nearest_index` — the nearest data point of every end point, scanning the data in blocks.

The step is the mean-shift step on fused attention (:func:`ambridge.dynamics.mean_shift_step`, or its mask-free form
for data on a sphere), with an optional half ``precision``, in query chunks, so its memory is at most O(N · chunk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import checks
from ..data import sphere_points
from ..dynamics import attention_update, hopfield_update, iterate_to_fixed_point, mean_shift_step
from ..energies import squared_distances_by_inner_products

__all__ = ["perturb", "sphere_sample", "nearest_index", "Retrieval", "retrieve", "RETRIEVAL_METHODS"]

#: The forms of the mean-shift step :func:`retrieve` offers (see its docstring).
RETRIEVAL_METHODS = ("fused", "sphere", "explicit")


def perturb(points: torch.Tensor, distance: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``points`` moved by exactly ``distance`` in a uniformly random direction each (the basin test's cue).
    The directions are drawn on the generator's device (the CPU without one). ``points``: (..., D) → (..., D).

    Used in chapter 5, § Separation, and the retrieval error (and by every point of the capacity sweep)."""
    x = checks.points("points", points)
    checks.check_number("distance", distance, low=0)
    if distance == 0:
        return x.clone()
    device = generator.device if generator is not None else "cpu"
    direction = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
    return x + distance * direction / direction.norm(dim=-1, keepdim=True)


def sphere_sample(n: int, dim: int, *, radius: float = 1.0, generator: torch.Generator) -> torch.Tensor:
    """``n`` float32 points uniform on the sphere of radius M in ℝ^d, on the generator's device — kept for one
    release as an alias of :func:`ambridge.data.sphere_points` (..., ``dtype=torch.float32``), which it calls.

    Used by ``benchmarks/capacity.py`` (chapter 5, § At scale); new code calls ``sphere_points`` directly."""
    return sphere_points(n, dim, radius=radius, generator=generator, dtype=torch.float32)


def nearest_index(points: torch.Tensor, data: torch.Tensor, *, chunk: int | None = None) -> torch.Tensor:
    """Index of the nearest data point (Euclidean) for every point: (Q, D), (N, D) → (Q,). Keys are scanned
    ``chunk`` at a time (default: 2²⁹ distances per block on a GPU, 2²⁴ on a CPU), so memory is O(Q · chunk);
    computed in at least float32, by the matrix-product form
    (:func:`ambridge.energies.squared_distances_by_inner_products`), whose rounding is about one ulp of ‖x‖²: two
    data points whose squared distances from a point agree to that precision may be ranked either way.

    Used in chapter 5, § Measuring the capacity (step 4 of the protocol: the end point must be nearest its own
    pattern) and § Where memories stop being data points (:func:`ambridge.kde.retained_fraction`)."""
    data = checks.patterns("data", data)
    q = checks.points("points", points, dim=data.shape[1])
    budget = 2**29 if q.device.type == "cuda" else 2**24  # distances held at once: 2 GB on a GPU, 64 MB on a CPU
    chunk = max(1024, budget // max(1, q.shape[0])) if chunk is None else checks.count("chunk", chunk, low=1)
    dtype = torch.promote_types(q.dtype, torch.float32)
    q = q.to(dtype)
    best_val = torch.full((q.shape[0],), math.inf, dtype=dtype, device=q.device)
    best_idx = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    for start in range(0, data.shape[0], chunk):
        val, idx = squared_distances_by_inner_products(q, data[start : start + chunk].to(dtype)).min(dim=-1)
        better = val < best_val
        best_val = torch.where(better, val, best_val)
        best_idx = torch.where(better, idx + start, best_idx)
    return best_idx


@dataclass
class Retrieval:
    """Per-query outcome of :func:`retrieve`: ``success``, ``distance`` ‖end − x_i‖, ``nearest`` data index,
    ``n_iter`` (steps taken), ``converged`` — all (Q,).

    Used in chapter 5, § Measuring the capacity."""

    success: torch.Tensor
    distance: torch.Tensor
    nearest: torch.Tensor
    n_iter: torch.Tensor
    converged: torch.Tensor


def retrieve(
    data: torch.Tensor,
    bandwidth: float,
    targets: torch.Tensor,
    starts: torch.Tensor,
    *,
    eps: float,
    max_iter: int = 100,
    tol: float = 1e-5,
    precision: torch.dtype | None = None,
    chunk: int = 4096,
    method: str = "fused",
) -> Retrieval:
    """Mean shift on the KDE of ``data`` (N, D) from ``starts`` (Q, D) to convergence; query q succeeds when its end
    point is within ``eps`` (absolute) of ``data[targets[q]]`` and that data point is its nearest.

    Convergence is :func:`ambridge.dynamics.iterate_to_fixed_point` (a state that moves less than ``tol`` takes
    that step and is frozen; only the states still moving are stepped), ``chunk`` queries at a time; every query
    sees all N keys. The step, in ``precision``:

    - ``"fused"``: :func:`ambridge.dynamics.mean_shift_step` — fused attention, mask-free when it finds all
      ‖x_n‖ equal, with the bias −‖x_n‖²/(2σ²) as an attention mask otherwise;
    - ``"sphere"``: for data that lie on a sphere by construction, the same step in its mask-free form
      x ← softmax(xXᵀ/σ²)X (:func:`ambridge.dynamics.hopfield_update` with β = 1/σ², chapter 1's identity) without
      the norm check: at N ~ 10⁶ float32 rounding of the norms can exceed that check's tolerance and send the step
      to the masked kernel (the same result, much slower, and a (chunk × N) mask);
    - ``"explicit"``: the logits x_nᵀx/σ² − ‖x_n‖²/(2σ²) formed by a plain matrix product
      (``attention_update(method="exact")``, memory O(chunk · N), fast for few queries on a GPU): an independent
      reference.

    Used in chapter 5, § Measuring the capacity (each point of the sweep), and by ``benchmarks/capacity.py``.
    """
    data = checks.patterns("data", data)
    checks.positive("bandwidth", bandwidth)
    checks.positive("eps", eps)
    checks.check_choice("method", method, RETRIEVAL_METHODS)
    if method == "fused":
        step = lambda v: mean_shift_step(v, data, bandwidth, precision=precision)  # noqa: E731
    elif method == "sphere":
        step = lambda v: hopfield_update(v, data, bandwidth**-2, precision=precision)  # noqa: E731
    else:
        bias = -data.pow(2).sum(-1) / (2 * bandwidth**2)
        step = lambda v: attention_update(v, data, data, scale=bandwidth**-2, bias=bias,  # noqa: E731
                                          method="exact", precision=precision)
    starts = checks.patterns("starts", starts, dim=data.shape[1])
    run = iterate_to_fixed_point(step, starts, max_iter=max_iter, tol=tol, chunk=chunk)
    distance = (run.state - data[targets].to(run.state.dtype)).norm(dim=-1)
    nearest = nearest_index(run.state, data)
    success = (distance <= eps) & (nearest == targets)
    return Retrieval(success, distance, nearest, run.steps, run.converged)
