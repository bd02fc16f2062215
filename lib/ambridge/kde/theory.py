"""The theory of a KDE's memory capacity: the bound transferred from the modern Hopfield network, and the
typical-pattern theory that predicts where retrieval fails.

- **The bound** — :func:`ramsauer_bound` (Ramsauer et al. 2021, Theorem 3: a, b, c with the principal Lambert W,
  valid when c ≥ (2/√p)^{4/(d−1)}, then N ≥ √p·c^{(d−1)/4} patterns are storable with probability 1 − p) and
  :func:`kde_bound`, the same for a KDE (β = 1/σ², M = K√(d−1), so βK² = M²/(σ²(d−1)));
  :func:`separation` Δ_i and :func:`retrieval_error_bound` 2e(N−1)M exp(−βΔ_i) (their Theorem 5), checked on
  :func:`one_step_error`.
- **Typical-pattern theory** — :func:`log_crosstalk` ln E[exp(κ(u − 1))] for the cosine u of two random points on
  the sphere and :func:`mean_cosine`, the weighted mean cosine (both from :mod:`ambridge.special`);
  :func:`alpha_one`, the asymptotic random-energy threshold lim ln N/d; :func:`mean_field_log_capacity`, its
  finite-d version (a saddle-node of the fixed-point equation along the pattern); :func:`fixed_bandwidth_log_ceiling`,
  the limit of that capacity as d → ∞ at a fixed bandwidth.

Symbols: ``dim`` d, ``radius`` M, ``bandwidth`` σ, ``beta`` β = 1/σ², ``bandwidth_scale`` s in σ = s·M/√d, and
λ = βM²/d = 1/s² the inverse temperature per dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit, lambertw

from .. import checks
from ..checks import check_number
from ..special import log_mean_exp_cosine, vmf_mean_resultant_length

__all__ = [
    "CapacityBound",
    "ramsauer_bound",
    "kde_bound",
    "scaled_bandwidth",
    "separation",
    "retrieval_error_bound",
    "one_step_error",
    "log_crosstalk",
    "mean_cosine",
    "alpha_one",
    "mean_field_log_capacity",
    "fixed_bandwidth_log_ceiling",
]


# ---------------------------------------------------------------------------------------------------- the bound
@dataclass(frozen=True)
class CapacityBound:
    """Ramsauer et al.'s Theorem 3 for one setting. ``valid`` says whether its condition c ≥ c_min holds; only
    then does it promise ``n_patterns`` = √p·c^{(d−1)/4} storable patterns (with probability 1 − p).

    Used in chapter 5, § The transferred bound."""

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

    Used in chapter 5, § The transferred bound.
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
    βK² = M²/(σ²(d−1)) — the bound only sees this product (and d, p).

    Used in chapter 5, § The transferred bound, and § Measuring the capacity."""
    bandwidth = check_number("bandwidth", bandwidth, low=0, low_open=True)
    radius = check_number("radius", radius, low=0, low_open=True)
    dim = check_number("dim", dim, low=2, integer=True)
    return ramsauer_bound(1 / bandwidth**2, radius / math.sqrt(dim - 1), dim, p)


def scaled_bandwidth(scale: float, radius: float, dim: int) -> float:
    """σ = s·M/√d: the kernel's reach σ√d stays a fixed fraction s of the radius, and λ = βM²/d = 1/s².

    Used in chapter 5, § The transferred bound (and by the capacity sweep)."""
    check_number("bandwidth_scale", scale, low=0, low_open=True)
    check_number("radius", radius, low=0, low_open=True)
    check_number("dim", dim, low=1, integer=True)
    return scale * radius / math.sqrt(dim)


def separation(patterns: torch.Tensor, *, chunk: int = 4096) -> torch.Tensor:
    """Δ_i = x_iᵀx_i − max_{j≠i} x_iᵀx_j for every pattern (Ramsauer et al.'s separation; on a sphere it is
    ½ min_{j≠i} ‖x_i − x_j‖²). ``patterns``: (N, D) with N ≥ 2  →  (N,). Memory O(chunk · N).

    Used in chapter 5, § Separation, and the retrieval error."""
    x = checks.patterns("patterns", patterns)
    if x.shape[0] < 2:
        raise checks.ParameterError("patterns", x, "needs at least two rows to have a separation",
                                    shown=f"shape {tuple(x.shape)}")
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

    Used in chapter 5, § Separation, and the retrieval error.
    """
    checks.positive("beta", beta)
    x = checks.patterns("patterns", patterns)
    delta = separation(x) if separations is None else checks.per_pattern("separations", separations, x.shape[0])
    big_m = x.norm(dim=-1).max()
    return 2 * math.e * (x.shape[0] - 1) * big_m * torch.exp(-beta * delta)


def one_step_error(starts: torch.Tensor, patterns: torch.Tensor, beta: float) -> torch.Tensor:
    """‖f(ξ_i) − x_i‖ for one Hopfield step f(ξ) = Σ_j r_j(ξ) x_j from each start ξ_i (row i of ``starts``) toward its
    pattern x_i, summed as Σ_j r_j (x_j − x_i) so that errors far below float rounding of x_i stay exact.
    ``starts``, ``patterns``: (N, D)  →  (N,). Memory O(N² D): for checks on small sets.

    Used in chapter 5, § Separation, and the retrieval error."""
    x = checks.patterns("patterns", patterns)
    xi = checks.points("starts", starts, dim=x.shape[1])
    if xi.shape != x.shape:
        raise checks.ParameterError("starts", xi, f"must have the shape of `patterns` {tuple(x.shape)}",
                                    shown=f"shape {tuple(xi.shape)}")
    checks.positive("beta", beta)
    r = torch.softmax(beta * xi @ x.T, dim=-1)  # (N, N)
    return torch.einsum("ij,ijd->id", r, x.unsqueeze(0) - x.unsqueeze(1)).norm(dim=-1)


# ------------------------------------------------------------------------------------- typical-pattern theory
def log_crosstalk(kappa, dim: int):
    """ln E[exp(κ(u − 1))], u = cosine between two independent uniform points of S^{d−1} (numpy, vectorised in κ).

    E[exp(κu)] = Γ(d/2) (2/κ)^{d/2−1} I_{d/2−1}(κ), the von Mises–Fisher normaliser
    (:func:`ambridge.special.log_mean_exp_cosine`). Starting at x_i, the other N − 1 patterns pull with total
    weight Z = Σ_j exp(β(x_iᵀx_j − M²)), whose mean is (N − 1)·exp(log_crosstalk(βM², d)).

    Used in chapter 5, § Why the bandwidth must shrink with d.
    """
    kappa = np.asarray(kappa, dtype=float)
    return log_mean_exp_cosine(kappa, dim) - kappa


def mean_cosine(kappa, dim: int):
    """E_w[u] under weights ∝ exp(κu): A_d(κ) = I_{d/2}(κ)/I_{d/2−1}(κ) (numpy, vectorised in κ), the vMF mean
    resultant length (:func:`ambridge.special.vmf_mean_resultant_length`).

    Used in chapter 5, § Why the bandwidth must shrink with d (inside :func:`mean_field_log_capacity`)."""
    return np.asarray(vmf_mean_resultant_length(np.asarray(kappa, dtype=float), dim))


def alpha_one(lam) -> np.ndarray:
    """Asymptotic typical-pattern threshold lim ln N/d for patterns uniform on a sphere, λ = βM²/d (numpy).

    Random-energy argument: the cross-talk (1/d) ln Σ_j exp(λd u_j) → max_u [α + ½ln(1 − u²) + λu] at
    u* = (√(1 + 4λ²) − 1)/(2λ) (uncondensed), and retrieval needs it below the self term λ:

        α₁(λ) = λ(1 − u*) − ½ ln(1 − u*²).

    (At α = α₁ the sum is never condensed: α₁ exceeds the condensation load −½ln(1 − u*²) by λ(1 − u*) > 0.)

    Used in chapter 5, § Why the bandwidth must shrink with d.
    """
    lam = np.asarray(lam, dtype=float)
    if np.any(~(lam > 0)):
        raise checks.ParameterError("lam", lam, "must be > 0")
    u = (np.sqrt(1 + 4 * lam**2) - 1) / (2 * lam)
    return lam * (1 - u) - 0.5 * np.log1p(-(u**2))


def mean_field_log_capacity(lam: float, dim: int, *, eps: float = 0.1) -> float:
    """Finite-d estimate of ln N½, the load at which a typical pattern stops being retrieved (numpy/scipy).

    Along the pattern, x = a·x_i (a ≤ 1; the orthogonal part averages out over many weak pulls), the mean-shift
    fixed point solves a = F(a) = A + (1 − A)/(1 + Z(a)), with Z(a) = (N − 1)·E[exp(κa(u − 1))], κ = λd,
    A = :func:`mean_cosine` (κa, d). Retrieval survives while a root exists with a ≥ 1 − ε; the largest such N
    is a saddle-node, found by bisection in ln N. As d → ∞, ln N½/d → :func:`alpha_one` (λ).

    Used in chapter 5, § Why the bandwidth must shrink with d, and § Measuring the capacity.
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


def fixed_bandwidth_log_ceiling(kappa, *, eps: float = 0.1) -> float:
    """lim_{d→∞} ln N½ at a *fixed* κ = M²/σ² (numpy/scipy-free closed form): the level at which the fixed-bandwidth
    capacity of :func:`mean_field_log_capacity` saturates.

    At fixed κ, as d grows, the weighted mean cosine A(κa, d) ≈ κa/d → 0 and ln E[e^{κa(u−1)}] → −κa (the exponent
    of the cross-talk, κ²a²/(2d), vanishes), so the fixed-point equation along the pattern becomes
    a = 1/(1 + N e^{−κa}). A fixed point with a ≥ 1 − ε survives while N ≤ e^{κa}(1 − a)/a for some a ∈ [1 − ε, 1):

        ln N½(∞) = max_{a ∈ [1−ε, 1)} [κa + ln((1 − a)/a)].

    The bracket's derivative κ − 1/(1 − a) − 1/a vanishes at a₊ = (1 + √(1 − 4/κ))/2 (κ > 4), its maximum; so the
    ceiling is κ(1 − ε) + ln(ε/(1 − ε)) when a₊ ≤ 1 − ε (or κ ≤ 4), else the larger of that and the value at a₊.
    It is e^{−εκ}·ε/(1 − ε) times e^κ, not e^κ itself: e^κ is where the cross-talk at the pattern equals its own
    weight, but retrieval judged within ε needs the fixed point to stay within ε, where the self-weight is
    e^{−εκ} smaller and the cross-talk may be at most ε/(1 − ε) of it.

    Used in chapter 5, § Why the bandwidth must shrink with d.
    """
    kappa = check_number("kappa", kappa, low=0, low_open=True)
    eps = check_number("eps", eps, low=0, high=1, low_open=True, high_open=True)

    def bracket(a):
        return kappa * a + math.log((1 - a) / a)

    best = bracket(1 - eps)
    if kappa > 4:
        a_plus = (1 + math.sqrt(1 - 4 / kappa)) / 2
        if a_plus > 1 - eps:
            best = max(best, bracket(a_plus))
    return best
