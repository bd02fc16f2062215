"""The memory capacity of Gaussian kernel density estimators (Chapter 5).

A Gaussian KDE with bandwidth σ on data x_1, …, x_N on the sphere ‖x_n‖ = M *is* a modern Hopfield network with
inverse temperature β = 1/σ² (chapter 1): mean shift = the Hopfield update = attention. So the network's storage
results transfer to the estimator. This module holds the pieces the chapter measures that transfer with:

- **The bound** — :func:`ramsauer_bound` (Ramsauer et al. 2021, Theorem 3: a, b, c with the principal Lambert W,
  valid when c ≥ (2/√p)^{4/(d−1)}, then N ≥ √p·c^{(d−1)/4} patterns are storable with probability 1 − p) and
  :func:`kde_bound`, the same for a KDE (β = 1/σ², M = K√(d−1), so βK² = M²/(σ²(d−1)));
  :func:`separation` Δ_i and :func:`retrieval_error_bound` 2e(N−1)M exp(−βΔ_i) (their Theorem 5).
- **Typical-pattern theory** — :func:`log_crosstalk` ln E[exp(κ(u − 1))] for the cosine u of two random points on
  the sphere (a ratio of Bessel functions), :func:`alpha_one` the asymptotic random-energy threshold
  lim ln N/d, and :func:`mean_field_log_capacity`, its finite-d version (a saddle-node of the fixed-point
  equation along the pattern).
- **The experiment** — :func:`converge` (mean-shift iteration that only steps the states still moving),
  :func:`retrieve` (success = ends within ε of its pattern *and* nearest to it), :class:`CapacitySweep` with
  :func:`run_sweep` (checkpointed per (d, N, seed)) and :func:`capacities` (N* and N½ per dimension and seed).
- **Modes that are not data points** — :func:`kde_modes_1d` (all modes of a 1-D KDE on a fine grid),
  :func:`scott_bandwidth`, :func:`silverman_bandwidth`, :func:`retained_fraction` (how many data points still own a
  mode).

Symbols: ``dim`` d, ``radius`` M, ``bandwidth`` σ, ``beta`` β = 1/σ², ``bandwidth_scale`` s in σ = s·M/√d, and
λ = βM²/d = 1/s² the inverse temperature per dimension. Retrieval is the mean-shift step on fused attention
(:func:`ambridge.dynamics.mean_shift_step`, or its mask-free form for data on a sphere), with an optional half
``precision``, in query chunks, so its memory is at most O(N · chunk). ``python -m ambridge.kde`` runs the
chapter's sweep from a preset file without Jupyter (the GPU machine's way).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from scipy.special import expit, gammaln, ive, lambertw

from . import checks
from .data import sphere_points
from .dynamics import attention_update, hopfield_update, mean_shift_step
from .checks import ParameterError, check_choice, check_number

__all__ = [
    "CapacityBound",
    "ramsauer_bound",
    "kde_bound",
    "scaled_bandwidth",
    "separation",
    "retrieval_error_bound",
    "one_step_error",
    "perturb",
    "sphere_sample",
    "log_crosstalk",
    "mean_cosine",
    "alpha_one",
    "mean_field_log_capacity",
    "Convergence",
    "converge",
    "nearest_index",
    "Retrieval",
    "retrieve",
    "CapacitySweep",
    "SWEEP_PARAMETERS",
    "sweep_point",
    "run_sweep",
    "crossing",
    "capacities",
    "fit_exponent",
    "kde_modes_1d",
    "scott_bandwidth",
    "silverman_bandwidth",
    "retained_fraction",
]

PRECISIONS = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------------------------------------- the bound
@dataclass(frozen=True)
class CapacityBound:
    """Ramsauer et al.'s Theorem 3 for one setting. ``valid`` says whether its condition c ≥ c_min holds; only
    then does it promise ``n_patterns`` = √p·c^{(d−1)/4} storable patterns (with probability 1 − p)."""

    beta: float
    K: float
    dim: int
    p: float
    a: float
    b: float
    c: float
    c_min: float  # (2/√p)^{4/(d−1)}

    @property
    def valid(self) -> bool:
        return self.c >= self.c_min

    @property
    def log_n(self) -> float:
        """ln of the promised number of patterns, ½ ln p + ((d−1)/4) ln c (finite where the count overflows)."""
        return 0.5 * math.log(self.p) + (self.dim - 1) / 4 * math.log(self.c)

    @property
    def log10_n(self) -> float:
        return self.log_n / math.log(10)

    @property
    def n_patterns(self) -> float:
        return math.exp(self.log_n) if self.log_n < 700 else math.inf


def ramsauer_bound(beta: float, K: float, dim: int, p: float) -> CapacityBound:
    """Theorem 3 of Ramsauer et al. (2021) for patterns uniform on the sphere of radius M = K√(d−1):

        a = (2/(d−1)) (1 + ln(2βK²p(d−1))),   b = 2K²β/5,   c = b / W₀(exp(a + ln b)),

    W₀ the principal branch of Lambert's W. If c ≥ (2/√p)^{4/(d−1)}, then with probability 1 − p at least
    N = √p · c^{(d−1)/4} random patterns are stored (each a well-separated fixed point). Their worked values:
    c = 3.1546 for (β=1, K=3, d=20, p=0.001) and c = 1.3718 for (β=1, K=1, d=75, p=0.001).
    """
    beta = check_number("beta", beta, low=0, low_open=True)
    K = check_number("K", K, low=0, low_open=True)
    dim = check_number("dim", dim, low=2, integer=True)
    p = check_number("p", p, low=0, high=1, low_open=True)
    a = 2 / (dim - 1) * (1 + math.log(2 * beta * K**2 * p * (dim - 1)))
    b = 2 * K**2 * beta / 5
    w = lambertw(b * math.exp(a)).real  # = W0(exp(a + ln b)); the argument is positive, so W0 is real
    c = b / w
    c_min = (2 / math.sqrt(p)) ** (4 / (dim - 1))
    return CapacityBound(float(beta), float(K), dim, float(p), float(a), float(b), float(c), float(c_min))


def kde_bound(bandwidth: float, radius: float, dim: int, p: float) -> CapacityBound:
    """:func:`ramsauer_bound` for a Gaussian KDE on the sphere of radius M: β = 1/σ², K = M/√(d−1), so that
    βK² = M²/(σ²(d−1)) — the bound only sees this product (and d, p)."""
    bandwidth = check_number("bandwidth", bandwidth, low=0, low_open=True)
    radius = check_number("radius", radius, low=0, low_open=True)
    dim = check_number("dim", dim, low=2, integer=True)
    return ramsauer_bound(1 / bandwidth**2, radius / math.sqrt(dim - 1), dim, p)


def scaled_bandwidth(scale: float, radius: float, dim: int) -> float:
    """σ = s·M/√d: the kernel's reach σ√d stays a fixed fraction s of the radius, and λ = βM²/d = 1/s²."""
    check_number("bandwidth_scale", scale, low=0, low_open=True)
    check_number("radius", radius, low=0, low_open=True)
    check_number("dim", dim, low=1, integer=True)
    return scale * radius / math.sqrt(dim)


def separation(patterns: torch.Tensor, *, chunk: int = 4096) -> torch.Tensor:
    """Δ_i = x_iᵀx_i − max_{j≠i} x_iᵀx_j for every pattern (Ramsauer et al.'s separation; on a sphere it is
    ½ min_{j≠i} ‖x_i − x_j‖²). ``patterns``: (N, D) with N ≥ 2  →  (N,). Memory O(chunk · N)."""
    x = checks.patterns("patterns", patterns)
    if x.shape[0] < 2:
        raise ValueError(f"`patterns` needs at least two rows to have a separation, got {tuple(x.shape)}")
    checks.count("chunk", chunk, low=1)
    out = []
    for start in range(0, x.shape[0], chunk):
        rows = x[start : start + chunk]
        gram = rows @ x.T  # (c, N)
        idx = torch.arange(rows.shape[0], device=x.device)
        self_overlap = gram[idx, start + idx].clone()
        gram[idx, start + idx] = -math.inf
        out.append(self_overlap - gram.max(dim=-1).values)
    return torch.cat(out)


def retrieval_error_bound(patterns: torch.Tensor, beta: float, separations: torch.Tensor | None = None) -> torch.Tensor:
    """Ramsauer et al.'s Theorem 5 bound on the retrieval error of every pattern, 2e(N−1)·M·exp(−βΔ_i), M = max‖x_n‖.

    It bounds ‖f(ξ) − x_i‖ for one Hopfield / mean-shift step f from any start ξ with ‖ξ − x_i‖ ≤ 1/(2βM): the
    weight of x_j relative to x_i is exp(β(x_j − x_i)ᵀξ) ≤ exp(−βΔ_i + 2βM‖ξ − x_i‖) ≤ e·exp(−βΔ_i), and each
    ‖x_j − x_i‖ ≤ 2M. ``patterns``: (N, D)  →  (N,).
    """
    checks.positive("beta", beta)
    x = checks.patterns("patterns", patterns)
    delta = separation(x) if separations is None else checks.per_pattern("separations", separations, x.shape[0])
    big_m = x.norm(dim=-1).max()
    return 2 * math.e * (x.shape[0] - 1) * big_m * torch.exp(-beta * delta)


def one_step_error(starts: torch.Tensor, patterns: torch.Tensor, beta: float) -> torch.Tensor:
    """‖f(ξ_i) − x_i‖ for one Hopfield step f(ξ) = Σ_j r_j(ξ) x_j from each start ξ_i (row i of ``starts``) toward its
    pattern x_i, summed as Σ_j r_j (x_j − x_i) so that errors far below float rounding of x_i stay exact.
    ``starts``, ``patterns``: (N, D)  →  (N,). Memory O(N² D): for checks on small sets."""
    x = checks.patterns("patterns", patterns)
    xi = checks.points("starts", starts, dim=x.shape[1])
    if xi.shape != x.shape:
        raise ValueError(f"`starts` must have the shape of `patterns` {tuple(x.shape)}, got {tuple(xi.shape)}")
    checks.positive("beta", beta)
    r = torch.softmax(beta * xi @ x.T, dim=-1)  # (N, N)
    return torch.einsum("ij,ijd->id", r, x.unsqueeze(0) - x.unsqueeze(1)).norm(dim=-1)


def perturb(points: torch.Tensor, distance: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``points`` moved by exactly ``distance`` in a uniformly random direction each (the basin test's cue)."""
    x = checks.points("points", points)
    if not distance >= 0:
        raise ValueError(f"`distance` must be >= 0, got {distance!r}")
    if distance == 0:
        return x.clone()
    direction = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=_gen_device(generator)).to(x.device)
    return x + distance * direction / direction.norm(dim=-1, keepdim=True)


def _gen_device(generator):
    return generator.device if generator is not None else "cpu"


# ------------------------------------------------------------------------------------- typical-pattern theory
def _log_ive(nu: float, kappa):
    """ln(I_ν(κ) e^{−κ}); where scipy's ``ive`` underflows (order large against κ) the uniform (Debye) expansion
    ln I_ν(νz) ≈ νη − ½ln(2πν) − ¼ln(1 + z²) + ln(1 + u₁(t)/ν + u₂(t)/ν²), η = √(1 + z²) + ln(z/(1 + √(1 + z²))),
    t = 1/√(1 + z²), takes over (relative error O(ν⁻³))."""
    kappa = np.asarray(kappa, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = ive(nu, kappa)
        direct = np.log(v)
    ok = np.isfinite(direct) & (v > 1e-280)
    if np.all(ok):
        return direct
    z = kappa / nu
    root = np.sqrt(1 + z**2)
    t = 1 / root
    series = 1 + (3 * t - 5 * t**3) / (24 * nu) + (81 * t**2 - 462 * t**4 + 385 * t**6) / (1152 * nu**2)
    debye = (nu * (root + np.log(z / (1 + root))) - 0.5 * np.log(2 * np.pi * nu) - 0.5 * np.log(root)
             + np.log(series) - kappa)
    return np.where(ok, direct, debye)


def log_crosstalk(kappa, dim: int):
    """ln E[exp(κ(u − 1))], u = cosine between two independent uniform points of S^{d−1} (numpy, vectorised in κ).

    E[exp(κu)] = Γ(d/2) (2/κ)^{d/2−1} I_{d/2−1}(κ), the von Mises–Fisher normaliser. Starting at x_i, the other
    N − 1 patterns pull with total weight Z = Σ_j exp(β(x_iᵀx_j − M²)), whose mean is
    (N − 1)·exp(log_crosstalk(βM², d)).
    """
    kappa = np.asarray(kappa, dtype=float)
    nu = dim / 2 - 1
    if nu == 0:  # d = 2: E[exp(κu)] = I_0(κ)
        return _log_ive(0.0, kappa)
    return gammaln(dim / 2) + nu * np.log(2 / kappa) + _log_ive(nu, kappa)


def mean_cosine(kappa, dim: int):
    """E_w[u] under weights ∝ exp(κu): A_d(κ) = I_{d/2}(κ)/I_{d/2−1}(κ) (numpy, vectorised in κ)."""
    kappa = np.asarray(kappa, dtype=float)
    if dim == 2:
        return np.exp(_log_ive(1.0, kappa) - _log_ive(0.0, kappa))
    return np.exp(_log_ive(dim / 2, kappa) - _log_ive(dim / 2 - 1, kappa))


def alpha_one(lam) -> np.ndarray:
    """Asymptotic typical-pattern threshold lim ln N/d for patterns uniform on a sphere, λ = βM²/d (numpy).

    Random-energy argument: the cross-talk (1/d) ln Σ_j exp(λd u_j) → max_u [α + ½ln(1 − u²) + λu] at
    u* = (√(1 + 4λ²) − 1)/(2λ) (uncondensed), and retrieval needs it below the self term λ:

        α₁(λ) = λ(1 − u*) − ½ ln(1 − u*²).

    (At α = α₁ the sum is never condensed: α₁ exceeds the condensation load −½ln(1 − u*²) by λ(1 − u*) > 0.)
    """
    lam = np.asarray(lam, dtype=float)
    if np.any(~(lam > 0)):
        raise ValueError(f"`lam` must be > 0, got {lam!r}")
    u = (np.sqrt(1 + 4 * lam**2) - 1) / (2 * lam)
    return lam * (1 - u) - 0.5 * np.log1p(-(u**2))


def mean_field_log_capacity(lam: float, dim: int, *, eps: float = 0.1) -> float:
    """Finite-d estimate of ln N½, the load at which a typical pattern stops being retrieved (numpy/scipy).

    Along the pattern, x = a·x_i (a ≤ 1; the orthogonal part averages out over many weak pulls), the mean-shift
    fixed point solves a = F(a) = A + (1 − A)/(1 + Z(a)), with Z(a) = (N − 1)·E[exp(κa(u − 1))], κ = λd,
    A = :func:`mean_cosine` (κa, d). Retrieval survives while a root exists with a ≥ 1 − ε; the largest such N
    is a saddle-node, found by bisection in ln N. As d → ∞, ln N½/d → :func:`alpha_one` (λ).
    """
    check_number("lam", lam, low=0, low_open=True)
    check_number("dim", dim, low=2, integer=True)
    check_number("eps", eps, low=0, high=1, low_open=True, high_open=True)
    a = np.linspace(1 - eps, 1, 401)
    kappa = lam * dim * a
    lc, mc = log_crosstalk(kappa, dim), mean_cosine(kappa, dim)

    def retrieves(log_n):
        log_z = log_n + lc  # ln(N − 1) ≈ ln N at the loads that matter
        return np.max(mc + (1 - mc) * expit(-log_z) - a) >= 0

    lo, hi = 0.0, 10.0 + 2 * dim * (lam + 1)
    if not retrieves(lo):
        return 0.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if retrieves(mid) else (lo, mid)
    return lo


# -------------------------------------------------------------------------------------------------- retrieval
@dataclass
class Convergence:
    """Result of :func:`converge`: ``state`` (Q, D), ``n_iter`` (Q,) steps taken by each state, ``converged`` (Q,)."""

    state: torch.Tensor
    n_iter: torch.Tensor
    converged: torch.Tensor


def converge(
    step: Callable[[torch.Tensor], torch.Tensor],
    starts: torch.Tensor,
    *,
    max_iter: int = 100,
    tol: float = 1e-5,
    chunk: int | None = None,
) -> Convergence:
    """Iterate ``step`` from ``starts`` (Q, D) until each state moves less than ``tol`` in one step.

    The rule is :func:`ambridge.dynamics.iterate_to_fixed_point`'s (a state that moved less than ``tol`` takes that
    last step and is frozen), but only the states still moving are passed to ``step``: in a capacity sweep most
    states settle in a few steps and a few wander for many, and the cost follows the wanderers only. States are
    processed ``chunk`` at a time (memory O(N · chunk) for a mean-shift step over N points).
    """
    x = checks.points("starts", starts)
    if x.ndim != 2:
        raise ValueError(f"`starts` must have shape (Q, D), got {tuple(x.shape)}")
    checks.count("max_iter", max_iter, low=1)
    checks.positive("tol", tol)
    chunk = x.shape[0] if chunk is None else checks.count("chunk", chunk, low=1)
    states, iters, done = [], [], []
    for block in x.split(max(chunk, 1)):
        state = block.clone()
        n_iter = torch.zeros(len(block), dtype=torch.long, device=block.device)
        active = torch.arange(len(block), device=block.device)
        for _ in range(max_iter):
            new = step(state[active])
            moved = (new - state[active]).norm(dim=-1)
            state[active] = new
            n_iter[active] += 1
            active = active[moved >= tol]
            if active.numel() == 0:
                break
        converged = torch.ones(len(block), dtype=torch.bool, device=block.device)
        converged[active] = False
        states.append(state), iters.append(n_iter), done.append(converged)
    return Convergence(torch.cat(states), torch.cat(iters), torch.cat(done))


def nearest_index(points: torch.Tensor, data: torch.Tensor, *, chunk: int | None = None) -> torch.Tensor:
    """Index of the nearest data point (Euclidean) for every point: (Q, D), (N, D) → (Q,). Keys are scanned
    ``chunk`` at a time (default: 2²⁹ distances per block on a GPU, 2²⁴ on a CPU), so memory is O(Q · chunk);
    computed in at least float32."""
    data = checks.patterns("data", data)
    q = checks.points("points", points, dim=data.shape[1])
    budget = 2**29 if q.device.type == "cuda" else 2**24  # distances held at once: 2 GB on a GPU, 64 MB on a CPU
    chunk = max(1024, budget // max(1, q.shape[0])) if chunk is None else checks.count("chunk", chunk, low=1)
    dtype = torch.promote_types(q.dtype, torch.float32)
    q = q.to(dtype)
    best_val = torch.full((q.shape[0],), math.inf, dtype=dtype, device=q.device)
    best_idx = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    for start in range(0, data.shape[0], chunk):
        keys = data[start : start + chunk].to(dtype)
        d2 = keys.pow(2).sum(-1) - 2 * q @ keys.T  # ‖q − x‖² − ‖q‖²: the same ranking
        val, idx = d2.min(dim=-1)
        better = val < best_val
        best_val = torch.where(better, val, best_val)
        best_idx = torch.where(better, idx + start, best_idx)
    return best_idx


@dataclass
class Retrieval:
    """Per-query outcome of :func:`retrieve`: ``success``, ``distance`` ‖end − x_i‖, ``nearest`` data index,
    ``n_iter``, ``converged`` — all (Q,)."""

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

    Every query sees all N keys, ``chunk`` queries at a time. The step, in ``precision``:

    - ``"fused"``: :func:`ambridge.dynamics.mean_shift_step` — fused attention, mask-free when it finds all
      ‖x_n‖ equal, with the bias −‖x_n‖²/(2σ²) as an attention mask otherwise;
    - ``"sphere"``: for data that lie on a sphere by construction, the same step in its mask-free form
      x ← softmax(xXᵀ/σ²)X (:func:`ambridge.dynamics.hopfield_update` with β = 1/σ², chapter 1's identity) without
      the norm check: at N ~ 10⁶ float32 rounding of the norms can exceed that check's tolerance and send the step
      to the masked kernel (the same result, much slower, and a (chunk × N) mask);
    - ``"explicit"``: the logits x_nᵀx/σ² − ‖x_n‖²/(2σ²) formed by a plain matrix product
      (``attention_update(method="exact")``, memory O(chunk · N), fast for few queries on a GPU): an independent
      reference.
    """
    data = checks.patterns("data", data)
    checks.positive("bandwidth", bandwidth)
    checks.positive("eps", eps)
    if method == "fused":
        step = lambda v: mean_shift_step(v, data, bandwidth, precision=precision)  # noqa: E731
    elif method == "sphere":
        step = lambda v: hopfield_update(v, data, bandwidth**-2, precision=precision)  # noqa: E731
    elif method == "explicit":
        bias = -data.pow(2).sum(-1) / (2 * bandwidth**2)
        step = lambda v: attention_update(v, data, data, scale=bandwidth**-2, bias=bias,  # noqa: E731
                                          method="exact", precision=precision)
    else:
        raise ValueError(f"`method` must be 'fused', 'sphere' or 'explicit', got {method!r}")
    run = converge(step, starts, max_iter=max_iter, tol=tol, chunk=chunk)
    distance = (run.state - data[targets].to(run.state.dtype)).norm(dim=-1)
    nearest = nearest_index(run.state, data)
    success = (distance <= eps) & (nearest == targets)
    return Retrieval(success, distance, nearest, run.n_iter, run.converged)


# ------------------------------------------------------------------------------------------ the capacity sweep
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
        self.dims = tuple(int(d) for d in self.dims)
        if not self.dims:
            raise ParameterError("dims", self.dims, "must list at least one dimension")
        for d in self.dims:
            check_number("dims", d, low=2, high=100_000, integer=True)
        check_number("bandwidth_scale", self.bandwidth_scale, low=0, low_open=True)
        if self.bandwidth is not None:
            check_number("bandwidth", self.bandwidth, low=0, low_open=True)
        check_number("radius", self.radius, low=0, low_open=True)
        check_number("n_seeds", self.n_seeds, low=1, high=1000, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        check_number("n_min", self.n_min, low=2, integer=True)
        check_number("n_max", self.n_max, low=self.n_min, integer=True)
        check_number("growth", self.growth, low=1, low_open=True)
        check_number("n_queries", self.n_queries, low=1, integer=True)
        check_number("noise", self.noise, low=0)
        check_number("eps", self.eps, low=0, low_open=True)
        check_number("max_iter", self.max_iter, low=1, integer=True)
        if self.tol is not None:
            check_number("tol", self.tol, low=0, low_open=True)
        check_number("stop_below", self.stop_below, low=0, high=1)
        check_number("refine_above", self.refine_above, low=0, high=1)
        check_choice("precision", self.precision, list(PRECISIONS))
        check_number("chunk", self.chunk, low=1, integer=True)
        check_number("check_queries", self.check_queries, low=0, integer=True)

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
        if self.bandwidth is not None:
            return self.bandwidth * self.radius
        return scaled_bandwidth(self.bandwidth_scale, self.radius, dim)

    def sizes(self) -> list[int]:
        out, k = [], 0
        while True:
            n = round(self.n_min * self.growth**k)
            if n > self.n_max:
                return out
            if not out or n > out[-1]:
                out.append(n)
            k += 1

    def key(self) -> str:
        """A hash of everything that changes a result (not the device, chunk, dims or stopping rule), so that a
        checkpoint is only reused by the same experiment."""
        skip = {"device", "chunk", "dims", "n_max", "stop_below", "refine_above", "n_seeds"}
        body = {k: v for k, v in asdict(self).items() if k not in skip}
        body["step_tol"] = self.step_tol
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_parameters(cls, parameters: dict, device: str | torch.device = "cpu") -> "CapacitySweep":
        """Build from a chapter's parameters (the names in :data:`SWEEP_PARAMETERS`); ``precision="auto"`` is
        float16 on CUDA and float32 elsewhere."""
        p = parameters
        device = str(device)
        precision = p["precision"]
        if precision == "auto":
            precision = "float16" if device.startswith("cuda") else "float32"
        return cls(
            dims=tuple(range(p["sweep_d_min"], p["sweep_d_max"] + 1, p["sweep_d_step"])),
            bandwidth_scale=p["bandwidth_scale"],
            n_seeds=p["sweep_seeds"],
            seed=p["seed"],
            n_max=p["sweep_n_max"],
            growth=p["sweep_growth"],
            n_queries=p["sweep_queries"],
            noise=p["noise"],
            eps=p["eps"],
            max_iter=p["max_iter"],
            precision=precision,
            chunk=p["chunk"],
            check_queries=p["check_queries"],
            device=device,
        )


#: The chapter parameters a sweep is built from (and that a preset must set for ``python -m ambridge.kde``).
SWEEP_PARAMETERS = ("seed", "bandwidth_scale", "sweep_d_min", "sweep_d_max", "sweep_d_step", "sweep_seeds",
                    "sweep_n_max", "sweep_growth", "sweep_queries", "noise", "eps", "max_iter", "p_fail", "precision", "chunk",
                    "check_queries")


def _point_seed(seed: int, dim: int, n: int) -> int:
    """One seed per (seed, d, N), so any point of the sweep is reproducible on its own (and resumable)."""
    return int(hashlib.sha256(f"{seed}/{dim}/{n}".encode()).hexdigest()[:15], 16)


def sphere_sample(n: int, dim: int, *, radius: float = 1.0, generator: torch.Generator) -> torch.Tensor:
    """``n`` float32 points uniform on the sphere of radius M in ℝ^d, on the generator's device: normalised in
    float64 and rounded once (:func:`ambridge.data.sphere_points` on a CPU; drawn on the GPU itself there)."""
    if generator.device.type == "cpu":
        return sphere_points(n, dim, radius=radius, generator=generator, dtype=torch.float32)
    raw = torch.randn(n, dim, generator=generator, device=generator.device, dtype=torch.float64)
    return (radius * raw / raw.norm(dim=-1, keepdim=True)).float()


def sweep_point(sweep: CapacitySweep, dim: int, n: int, seed: int) -> dict:
    """Run one (d, N, seed) point of ``sweep``; returns a JSON-ready record (success counts, iterations, and the
    float32 re-check when asked). The data lie on the sphere by construction, so the step is the mask-free
    attention form (``retrieve(method="sphere")``)."""
    device = torch.device(sweep.device)
    gen = torch.Generator(device=device).manual_seed(_point_seed(seed, dim, n))
    data = sphere_sample(n, dim, radius=sweep.radius, generator=gen)
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


def _read_checkpoint(path: Path, key: str) -> dict:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by an interrupted write
                continue
            if rec.get("sweep_key") == key:
                done[(rec["d"], rec["N"], rec["seed"])] = rec
    return done


def run_sweep(
    sweep: CapacitySweep,
    *,
    checkpoint: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    time_limit: float | None = None,
) -> list[dict]:
    """Run every dimension of ``sweep`` up its N grid; returns the records (one per (d, N, seed)).

    With ``checkpoint`` (a JSON-lines file) every record is appended as soon as it is computed, and records
    already there for the same experiment (same :meth:`CapacitySweep.key`) are reused: an interrupted run
    resumes where it stopped. With ``time_limit`` (seconds) no new N is started once it has passed; the records
    so far are returned (compare their grid with :meth:`CapacitySweep.sizes` to see what is missing).
    """
    key = sweep.key()
    path = Path(checkpoint) if checkpoint is not None else None
    done = _read_checkpoint(path, key) if path is not None else {}
    records, t0 = [], time.perf_counter()
    fine, step = sweep.sizes(), sweep.coarse_step

    class _OutOfTime(Exception):
        pass

    def point(dim, n):  # all seeds at one (d, N); returns the mean success
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            if progress is not None:
                progress(f"time limit of {time_limit:.0f} s reached: stopping before d={dim}, N={n}")
            raise _OutOfTime
        batch = []
        for seed in range(sweep.seed, sweep.seed + sweep.n_seeds):
            rec = done.get((dim, n, seed))
            if rec is None:
                rec = {**sweep_point(sweep, dim, n, seed), "sweep_key": key}
                if path is not None:
                    with path.open("a") as fh:
                        fh.write(json.dumps(rec) + "\n")
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


def crossing(sizes: Sequence[float], fractions: Sequence[float], level: float) -> float:
    """The largest N at which the success fraction is at or above ``level``, interpolated linearly in ln N toward
    the next grid point (where it is below). NaN if no point reaches ``level``; the last size if the last point
    does (the grid did not reach the drop). Taking the *largest* such N, not the first dip, keeps the estimate
    from being set by a small-N grid point where one unlucky pair of close points already costs 1/N."""
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
    sweep records; ``bracketed`` says whether the grid saw the success fall below ½."""
    check_number("p_fail", p_fail, low=0, high=1, low_open=True, high_open=True)
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
    """Least-squares line ln N = α·d + c through the points; returns (α, c, R²)."""
    x, y = np.asarray(dims, dtype=float), np.asarray(log_n, dtype=float)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 2:
        raise ValueError("need at least two distinct dimensions to fit an exponent")
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    r2 = 1 - resid.var() / y.var() if y.var() > 0 else 1.0
    return float(slope), float(intercept), float(r2)


# ------------------------------------------------------------------------------------------------------- modes
def kde_modes_1d(samples, bandwidth: float, *, resolution: int = 20, window: float = 12.0, chunk: int = 1024) -> np.ndarray:
    """Every mode (local maximum) of the 1-D Gaussian KDE of ``samples`` with bandwidth h, located on a grid of
    step h/``resolution`` over the data's range ± 5h and refined by linear interpolation of p̂′.

    p̂′(t) ∝ Σ_i (x_i − t) exp(−(t − x_i)²/(2h²)); only samples within ``window``·h of a grid block enter its sum
    (the rest weigh less than e^{−window²/2}). A mode is a change of sign of p̂′ from + to − (exact zeros are
    skipped, so a flat stretch far from all data is not counted). Float64 throughout.
    """
    x = np.sort(np.asarray(samples, dtype=float).ravel())
    if x.size == 0:
        raise ValueError("`samples` is empty")
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
    """Scott's rule for a Gaussian kernel in d dimensions: h = σ̂·N^{−1/(d+4)} (σ̂: mean per-coordinate std)."""
    data = checks.patterns("data", data)
    n, d = data.shape
    return _spread(data) * n ** (-1 / (d + 4))


def silverman_bandwidth(data: torch.Tensor) -> float:
    """Silverman's normal-reference rule in d dimensions: h = σ̂·(4/((d + 2)N))^{1/(d+4)}."""
    data = checks.patterns("data", data)
    n, d = data.shape
    return _spread(data) * (4 / ((d + 2) * n)) ** (1 / (d + 4))


def retained_fraction(data: torch.Tensor, bandwidth: float, *, max_iter: int = 500, tol: float = 1e-4) -> float:
    """Fraction of the data points that are still memories of their KDE: mean shift started at x_i ends at a
    point whose nearest data point is x_i (x_i owns a mode). ``tol`` is in units of the bandwidth.

    1 when the bandwidth is small against the spacing of the data (the estimator memorises); it falls toward
    (number of modes)/N as the kernels merge (it generalises).
    """
    data = checks.patterns("data", data)
    checks.positive("bandwidth", bandwidth)
    run = converge(lambda v: mean_shift_step(v, data, bandwidth), data, max_iter=max_iter, tol=tol * bandwidth)
    owner = nearest_index(run.state, data)
    return float((owner == torch.arange(data.shape[0], device=data.device)).float().mean())


# ------------------------------------------------------------------------------------------ the command line
def _scalar(text: str):
    """A flat-YAML scalar: int, float, true/false, null, or text (quotes stripped)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", "~"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_preset(path: str | Path) -> dict:
    """Read a flat ``name: value`` preset file without PyYAML (the GPU machine has only torch, numpy, scipy)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or line[0].isspace():
            raise ValueError(f"{path}: not a flat `name: value` line: {line!r}")
        out[name.strip()] = _scalar(value)
    return out


def _json_safe(obj):
    """NaN and infinities become null, so the file is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ambridge.kde --preset chapters/presets/05_kde_capacity/paper.yaml --device cuda --out X.json``

    Runs the chapter's capacity sweep outside the notebook (the GPU machine has no Jupyter) and writes one JSON
    file: a run record (parameters, commit, hardware, wall time) with every (d, N, seed) record and the
    capacities. ``--checkpoint`` makes it resumable; ``--set name=value`` overrides a preset value.
    """
    import argparse

    from .runtime import hardware_summary, select_device

    from .book.records import run_record

    ap = argparse.ArgumentParser(prog="python -m ambridge.kde", description=main.__doc__.split("\n\n")[0])
    ap.add_argument("--preset", required=True, help="a chapter preset (chapters/presets/05_kde_capacity/*.yaml)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a preset value")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--checkpoint", help="JSON-lines file: results appended per (d, N, seed); reused on rerun")
    ap.add_argument("--label", default="", help="a note stored in the record (e.g. 'CPU-scale')")
    ap.add_argument("--time-limit", type=float, help="seconds: start no new N after this; write what is done")
    args = ap.parse_args(argv)

    params = read_preset(args.preset)
    for item in args.set:
        name, _, value = item.partition("=")
        params[name.strip()] = _scalar(value)
    missing = [k for k in SWEEP_PARAMETERS if k not in params]
    if missing:
        raise ParameterError("preset", args.preset, "must set " + ", ".join(missing))
    device = select_device(args.device)
    params["device"] = str(device)
    sweep = CapacitySweep.from_parameters(params, device)
    print(f"capacity sweep on {hardware_summary(device)}: d = {list(sweep.dims)}, s = {sweep.bandwidth_scale}, "
          f"precision {sweep.precision}, {sweep.n_queries} queries, {sweep.n_seeds} seeds", flush=True)
    t0 = time.perf_counter()
    records = run_sweep(sweep, checkpoint=args.checkpoint, progress=lambda m: print(m, flush=True),
                        time_limit=args.time_limit)
    wall = time.perf_counter() - t0
    means = {}
    for r in records:
        means.setdefault((r["d"], r["N"]), []).append(r["fraction"])
    finished = {d: any(k[0] == d and np.mean(v) < sweep.stop_below for k, v in means.items()) for d in sweep.dims}
    caps = capacities(records, params["p_fail"])
    sweep_params = {f.name: getattr(sweep, f.name) for f in fields(sweep)}
    sweep_params["step_tol"] = sweep.step_tol
    record = run_record({**params, "sweep": sweep_params}, wall_time_s=wall, device=device,
                        label=args.label, complete=all(finished.values()),
                        dims_finished=[d for d, ok in finished.items() if ok], records=records, capacities=caps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe(record), indent=1, allow_nan=False) + "\n")
    print(f"wrote {out} after {wall:.1f} s", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    try:
        sys.exit(main())
    except ParameterError as e:
        sys.exit(f"ambridge.kde: {e}")
