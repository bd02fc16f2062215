"""The Chinese restaurant and Pitman–Yor priors, and the CLAM+CRP energy with its new-memory basin (paper, section 2c).

**The prior.** A Chinese restaurant process (CRP) with concentration α seats the (n+1)-th point at an existing table
k with probability n_k/(α + n) and at a new one with probability α/(α + n); the Pitman–Yor process (PYP) with
discount d ∈ [0, 1) uses (n_k − d)/(α + n) and (α + dK)/(α + n). The expected number of tables after n points is

    CRP:  E[K_n] = α (ψ(α + n) − ψ(α))                                  ≈ α (log n − ψ(α))          (logarithmic)
    PYP:  E[K_n] = [Γ(α + 1) Γ(α + d + n) / (Γ(α + d) Γ(α + n)) − α] / d  ≈ Γ(α+1)/(d Γ(α+d)) nᵈ − α/d  (a power law)

(:func:`expected_clusters`; the PYP form follows from E[K_{n+1}] = E[K_n] + (α + d E[K_n])/(α + n)).

**The energy.** Each table is a memory μ_k with the likelihood N(x; μ_k, σ² I); a table not yet opened has the
prior predictive N(x; m₀, (σ² + σ₀²) I) of a memory drawn from the prior N(m₀, σ₀² I). In CLAM's convention
β = 1/(2σ²) and ρ = 1/(2σ₀²), so 1/(2(σ² + σ₀²)) = (β⁻¹ + ρ⁻¹)⁻¹, and dividing every term by the shared
normaliser (2πσ²)^{−D/2} gives the energy of the workshop paper (its eq. 12), with states measured from m₀:

    E(v) = −(1/β) log[ (α + dK) c_D exp(−(β⁻¹ + ρ⁻¹)⁻¹ ‖v‖²) + Σ_k (n_k − d) exp(−β ‖μ_k − v‖²) ],

where c_D = (σ²/(σ² + σ₀²))^{D/2} = (ρ/(β + ρ))^{D/2} is the ratio of the two Gaussians' normalisers. The printed
equation has c_D = 1 (``normaliser=False``); the Bayesian predictive has it (``normaliser=True``). In D dimensions
c_D is exponentially small, and whether it is kept decides how eagerly memories are created (chapter 4).

**The small-variance limit** (Kulis & Jordan 2012). With α = e^{−βλ}/c_D (:func:`small_variance_log_alpha`) the
new-memory log weight is −βλ − (β⁻¹ + ρ⁻¹)⁻¹‖v‖², so as β → ∞ (σ² → 0) the decision, divided by β, becomes
"open a memory iff min_k ‖x − μ_k‖² > λ, else join the nearest": DP-means (:class:`ambridge.memories.DPMeans`).

**The evidence of a partition**: the prior's EPPF (:func:`crp_log_prior`) and one memory's points with the memory
integrated out (:func:`cluster_log_marginal`), with which :class:`ambridge.memories.CLAMCRP` chooses σ².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import digamma, gammaln

from .. import checks
from ..checks import check_number
from ..energies import squared_distances

__all__ = [
    "check_crp_parameters",
    "expected_clusters",
    "asymptotic_clusters",
    "simulate_cluster_counts",
    "CRPSeating",
    "crp_seating",
    "crp_log_weights",
    "crp_energy",
    "new_memory_log_weight",
    "small_variance_log_alpha",
    "crp_log_prior",
    "cluster_log_marginal",
]


# --- the prior: Chinese restaurant and Pitman–Yor processes --------------------------------------------------------


def check_crp_parameters(alpha: float, discount: float = 0.0) -> tuple[float, float]:
    """Check a CRP / Pitman–Yor pair: discount d ∈ [0, 1) and concentration α > −d (α > 0 for the CRP).

    Used by every function of the prior here (chapter 4, § The prior: a restaurant that keeps opening tables).
    """
    discount = check_number("discount", discount, low=0, high=1, high_open=True)
    alpha = check_number("alpha", alpha, low=-discount, low_open=True)
    return float(alpha), float(discount)


def _counts_n(n) -> np.ndarray:
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu" or (arr < 0).any():
        raise ValueError(f"`n` must be a non-negative integer or an array of them, got {n!r}")
    return arr.astype(np.float64)


def expected_clusters(n, alpha: float, discount: float = 0.0):
    """E[K_n], the expected number of tables after ``n`` points (closed forms in the module docstring).

    ``n``: an int or an integer array (≥ 0); returns a float or an array of the same shape. The PYP form is computed
    through log-gamma functions, so it holds for n up to ~1e15 without overflow.

    Used in chapter 4, § The prior: a restaurant that keeps opening tables (and its first exercise).
    """
    alpha, discount = check_crp_parameters(alpha, discount)
    nn = _counts_n(n)
    if discount == 0.0:
        out = alpha * (digamma(alpha + nn) - digamma(alpha))
    else:
        safe = np.maximum(nn, 1.0)  # Γ(α) < 0 for α ∈ (−d, 0); n = 0 is handled below
        ratio = np.exp(gammaln(alpha + 1) + gammaln(alpha + discount + safe) - gammaln(alpha + discount) - gammaln(alpha + safe))
        out = np.where(nn == 0, 0.0, (ratio - alpha) / discount)
    return float(out) if np.ndim(out) == 0 else out


def asymptotic_clusters(n, alpha: float, discount: float = 0.0):
    """The large-n form of :func:`expected_clusters`: α (log n − ψ(α)) (CRP, error O(1/n)) or
    Γ(α+1)/(d Γ(α+d)) nᵈ − α/d (PYP, error O(n^{d−1})). ``n`` ≥ 1.

    Used in chapter 4, § The prior: a restaurant that keeps opening tables.
    """
    alpha, discount = check_crp_parameters(alpha, discount)
    nn = _counts_n(n)
    if (nn < 1).any():
        raise ValueError(f"`n` must be at least 1 for the asymptotic form, got {n!r}")
    if discount == 0.0:
        out = alpha * (np.log(nn) - digamma(alpha))
    else:
        out = np.exp(gammaln(alpha + 1) - gammaln(alpha + discount)) / discount * nn**discount - alpha / discount
    return float(out) if np.ndim(out) == 0 else out


def simulate_cluster_counts(
    n: int, alpha: float, discount: float = 0.0, *, n_runs: int = 1, at=None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Simulate the number of tables K_1, …, K_n of ``n_runs`` independent restaurants.

    K alone is a Markov chain — the (i+1)-th point opens a table with probability (α + dK_i)/(α + i) — so the
    table sizes need not be tracked: every run advances in one vectorised step per point. ``at``: the numbers of
    points (1…n, increasing) at which to record K (default: every one)  →  (n_runs, len(at)) int64.

    Used in chapter 4, § The prior: a restaurant that keeps opening tables.
    """
    alpha, discount = check_crp_parameters(alpha, discount)
    checks.count("n", n, low=1)
    checks.count("n_runs", n_runs, low=1)
    at = np.arange(1, n + 1) if at is None else np.asarray(at)
    if at.ndim != 1 or at.size == 0 or at.dtype.kind not in "iu" or at[0] < 1 or at[-1] > n or (np.diff(at) <= 0).any():
        raise ValueError(f"`at` must be increasing integers in [1, {n}], got {at!r}")
    k = np.ones(n_runs)
    out = np.empty((n_runs, at.size), dtype=np.int64)
    slot, block = 0, max(1, min(n, 2**20 // n_runs))  # uniforms are drawn a block of points at a time
    for i in range(1, n + 1):  # i points seated
        if i > 1:
            if (i - 2) % block == 0:
                u = torch.rand(min(block, n - i + 1), n_runs, generator=generator, dtype=torch.float64).numpy()
            k += u[(i - 2) % block] < (alpha + discount * k) / (alpha + i - 1)
        if i == at[slot]:
            out[:, slot] = k
            slot += 1
            if slot == at.size:
                break
    return torch.from_numpy(out)


@dataclass
class CRPSeating:
    """One draw of :func:`crp_seating`: ``labels`` (n,) table of each point (tables numbered by opening order),
    ``counts`` (K,) points per table, ``n_tables`` (n,) K after each point. Used in chapter 4's last exercise."""

    labels: torch.Tensor
    counts: torch.Tensor
    n_tables: torch.Tensor


def crp_seating(n: int, alpha: float, discount: float = 0.0, *, generator: torch.Generator | None = None) -> CRPSeating:
    """Seat ``n`` points one by one by the CRP (``discount`` = 0) or the Pitman–Yor process (``discount`` = d > 0).

    Point i + 1 (with i seated at K tables) opens a table with probability (α + dK)/(α + i) and joins table k with
    probability (n_k − d)/(α + i). One uniform draw per point from ``generator`` decides it (inverse CDF).

    Used in chapter 4, exercise "A memory with a discount" (a stream whose cluster sizes follow the prior).
    """
    alpha, discount = check_crp_parameters(alpha, discount)
    checks.count("n", n, low=1)
    u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
    labels = np.empty(n, dtype=np.int64)
    counts = np.zeros(n, dtype=np.float64)
    n_tables = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        new_weight = alpha + discount * k
        target = u[i] * (alpha + i)
        if i == 0 or target < new_weight:
            table = k
            k += 1
        else:
            cumulative = np.cumsum(counts[:k] - discount)
            table = min(int(np.searchsorted(cumulative, target - new_weight, side="right")), k - 1)
        counts[table] += 1
        labels[i] = table
        n_tables[i] = k
    return CRPSeating(torch.from_numpy(labels), torch.from_numpy(counts[:k].astype(np.int64)), torch.from_numpy(n_tables))


# --- the energy with a new-memory attraction -------------------------------------------------------------------------


def _log_concentration(alpha, log_alpha, discount, n_memories: int) -> float:
    """log(α + dK), from α or from log α (which stays finite where α = e^{−βλ} underflows)."""
    la = math.log(alpha) if log_alpha is None else float(log_alpha)
    if discount == 0.0 or n_memories == 0:
        return la
    return float(np.logaddexp(la, math.log(discount * n_memories)))


def new_memory_log_weight(
    sq_norm: torch.Tensor, *, n_memories: int, alpha: float, discount: float, beta: float, prior_precision: float,
    dim: int, normaliser: bool, log_alpha: float | None = None,
) -> torch.Tensor:
    """log[(α + dK) c_D] − (β⁻¹ + ρ⁻¹)⁻¹ ‖v − m₀‖², the new-memory term of the energy; ``sq_norm`` = ‖v − m₀‖² (...).

    Used by :func:`crp_log_weights` (chapter 4, § The energy: one basin per memory, and one for a memory not yet made).
    """
    log_w = _log_concentration(alpha, log_alpha, discount, n_memories)
    if normaliser:
        log_w += 0.5 * dim * math.log(prior_precision / (beta + prior_precision))
    return log_w - sq_norm / (1.0 / beta + 1.0 / prior_precision)


def _existing_log_weights(sq_dist: torch.Tensor, counts: torch.Tensor, discount: float, beta: float) -> torch.Tensor:
    return torch.log(counts - discount) - beta * sq_dist


def _check_energy_args(state, memories, counts, alpha, discount, beta, prior_precision, log_alpha):
    state = checks.points("state", state)
    d = state.shape[-1]
    memories = checks.points("memories", memories, dim=d)
    if memories.ndim != 2:
        raise ValueError(f"`memories` must have shape (K, D) with K >= 0, got {tuple(memories.shape)}")
    k = memories.shape[0]
    counts = torch.as_tensor(counts, dtype=state.dtype, device=state.device)
    if counts.shape != (k,):
        raise ValueError(f"`counts` must have shape ({k},) to match the memories, got {tuple(counts.shape)}")
    if log_alpha is None:
        check_number("alpha", alpha, low=0, low_open=True)
    else:
        check_number("log_alpha", log_alpha)
    check_number("discount", discount, low=0, high=1, high_open=True)
    if bool((counts <= discount).any()):
        raise ValueError(f"every count n_k must exceed the discount d = {discount} (an occupied table), got {counts.tolist()}")
    check_number("beta", beta, low=0, low_open=True)
    check_number("prior_precision", prior_precision, low=0, low_open=True)
    return state, memories, counts


def crp_log_weights(
    state: torch.Tensor,
    memories: torch.Tensor,
    counts,
    *,
    alpha: float = 1.0,
    discount: float = 0.0,
    beta: float,
    prior_precision: float,
    normaliser: bool = False,
    log_alpha: float | None = None,
) -> torch.Tensor:
    """The K + 1 terms inside the energy's logarithm, as logs: [log(n_k − d) − β‖μ_k − v‖²]_k, then the new memory.

    ``state`` v: (..., D), measured from the prior mean m₀; ``memories`` μ: (K, D), K ≥ 0; ``counts`` n: (K,) with
    n_k > d; ``beta`` β = 1/(2σ²); ``prior_precision`` ρ = 1/(2σ₀²); ``normaliser`` keeps c_D; ``log_alpha``
    replaces ``alpha`` when α is too small for a float.  →  (..., K + 1), the new memory last.

    Up to the constant −(D/2) log(2πσ²) shared by all terms these are log p(x, z = k) of the CRP mixture with
    ``normaliser=True``: softmax of them is the posterior over "which memory, or a new one".

    Used in chapter 4, § The energy: one basin per memory, and one for a memory not yet made (q_new of the landscape).
    """
    state, memories, counts = _check_energy_args(state, memories, counts, alpha, discount, beta, prior_precision, log_alpha)
    if memories.shape[0]:
        sq = squared_distances(state, memories)  # (..., K), the exact form: a state near a memory keeps its digits
    else:
        sq = state.new_zeros(state.shape[:-1] + (0,))
    new = new_memory_log_weight(
        state.pow(2).sum(-1), n_memories=memories.shape[0], alpha=alpha, discount=discount, beta=beta,
        prior_precision=prior_precision, dim=state.shape[-1], normaliser=normaliser, log_alpha=log_alpha,
    )
    return torch.cat([_existing_log_weights(sq, counts, discount, beta), new.unsqueeze(-1)], dim=-1)


def crp_energy(
    state: torch.Tensor,
    memories: torch.Tensor,
    counts,
    *,
    alpha: float = 1.0,
    discount: float = 0.0,
    beta: float,
    prior_precision: float,
    normaliser: bool = False,
    log_alpha: float | None = None,
) -> torch.Tensor:
    """The CLAM+CRP energy E(v) = −(1/β) log[(α + dK) c_D e^{−(β⁻¹+ρ⁻¹)⁻¹‖v‖²} + Σ_k (n_k − d) e^{−β‖μ_k − v‖²}].

    Arguments as in :func:`crp_log_weights`  →  (...). With ``normaliser=True``,
    E(v) = −(1/β)[log p(v) + (D/2) log(2πσ²) + log(α + n)] for the CRP mixture's predictive density p (chapter 4).
    Its gradient is 2 Σ_k q_k (v − μ_k) + 2 q_new v/(1 + β/ρ), q = softmax of the log weights: each memory pulls v to
    itself, the new-memory term pulls it towards the prior mean, with a strength that vanishes as β/ρ grows.

    Used in chapter 4, § The energy: one basin per memory, and one for a memory not yet made.
    """
    logs = crp_log_weights(
        state, memories, counts, alpha=alpha, discount=discount, beta=beta, prior_precision=prior_precision,
        normaliser=normaliser, log_alpha=log_alpha,
    )
    return -torch.logsumexp(logs, dim=-1) / beta


def small_variance_log_alpha(lam: float, beta: float, prior_precision: float, dim: int, normaliser: bool = True) -> float:
    """log α that makes CLAM+CRP tend to DP-means with penalty λ as β → ∞ (Kulis & Jordan 2012).

    α = e^{−βλ} / c_D, i.e. log α = −βλ + (D/2) log(1 + β/ρ) with the normaliser, −βλ without: then the new-memory
    log weight is −βλ − (β⁻¹ + ρ⁻¹)⁻¹‖v‖², an existing memory's is log n_k − β‖μ_k − v‖², and after dividing by β
    the choice is the DP-means rule up to terms O(log n / β).

    Used by :meth:`ambridge.memories.CLAMCRP.small_variance` (chapter 4, § The small-variance limit: DP-means).
    """
    check_number("lam", lam, low=0, low_open=True)
    check_number("beta", beta, low=0, low_open=True)
    check_number("prior_precision", prior_precision, low=0, low_open=True)
    check_number("dim", dim, low=1, integer=True)
    log_alpha = -beta * lam
    if normaliser:
        log_alpha += 0.5 * dim * math.log1p(beta / prior_precision)
    return log_alpha


# --- the evidence of a partition ----------------------------------------------------------------------------------------


def crp_log_prior(counts, alpha: float, discount: float = 0.0) -> float:
    """log p(z) of a partition with table sizes ``counts`` (K,) under the CRP / Pitman–Yor process (its EPPF):

        Σ_{j<K} log(α + jd) − log[Γ(α + n)/Γ(α)] + Σ_k log[Γ(n_k − d)/Γ(1 − d)].

    Used by :class:`ambridge.memories.CLAMCRP` to choose σ² (chapter 4, § On real data: choosing σ²).
    """
    alpha, discount = check_crp_parameters(alpha, discount)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 1).any() or (counts != np.round(counts)).any():
        raise ValueError(f"`counts` must be a non-empty 1-D array of positive integers, got {counts!r}")
    k, n = counts.size, counts.sum()
    opening = np.log(alpha + discount * np.arange(k)).sum()
    return float(opening - (gammaln(alpha + n) - gammaln(alpha)) + (gammaln(counts - discount) - gammaln(1 - discount)).sum())


def cluster_log_marginal(points: np.ndarray, variance: float, prior_variance: float, prior_mean) -> float:
    """log p(x_1, …, x_n) of one memory's points with the memory integrated out: x_i = μ + ε_i, ε_i ~ N(0, σ² I),
    μ ~ N(m₀, σ₀² I). Per coordinate the points are jointly Gaussian with covariance σ² I + σ₀² 11ᵀ, which gives

        −(nD/2) log(2πσ²) − (D/2) log(1 + nσ₀²/σ²) − Σ‖x_i − x̄‖²/(2σ²) − n‖x̄ − m₀‖²/(2(σ² + nσ₀²)).

    ``points``: (n, D) with n ≥ 1; ``prior_mean``: (D,). Used by :class:`ambridge.memories.CLAMCRP` to choose σ²
    (chapter 4, § On real data: choosing σ²).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 1:
        raise ValueError(f"`points` must have shape (n, D) with n >= 1, got {points.shape}")
    check_number("variance", variance, low=0, low_open=True)
    check_number("prior_variance", prior_variance, low=0, low_open=True)
    n, d = points.shape
    mean = points.mean(0)
    scatter = ((points - mean) ** 2).sum()
    offset = ((mean - np.asarray(prior_mean, dtype=np.float64)) ** 2).sum()
    return float(
        -0.5 * n * d * math.log(2 * math.pi * variance) - 0.5 * d * math.log1p(n * prior_variance / variance)
        - scatter / (2 * variance) - n * offset / (2 * (variance + n * prior_variance))
    )
