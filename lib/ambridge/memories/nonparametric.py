"""CLAM+CRP: an associative memory that creates its memories on demand (paper, section 2c), and DP-means, its limit.

**The prior.** A Chinese restaurant process (CRP) with concentration α seats the (n+1)-th point at an existing table
k with probability n_k/(α + n) and at a new one with probability α/(α + n); the Pitman–Yor process (PYP) with
discount d ∈ [0, 1) uses (n_k − d)/(α + n) and (α + dK)/(α + n). The expected number of tables after n points is

    CRP:  E[K_n] = α (ψ(α + n) − ψ(α))                                  ≈ α (log n − ψ(α))          (logarithmic)
    PYP:  E[K_n] = [Γ(α + 1) Γ(α + d + n) / (Γ(α + d) Γ(α + n)) − α] / d  ≈ Γ(α+1)/(d Γ(α+d)) nᵈ − α/d  (a power law)

(:func:`expected_clusters`; the PYP form follows from E[K_{n+1}] = E[K_n] + (α + d E[K_n])/(α + n)).

**The memory.** Each table is a memory μ_k with the likelihood N(x; μ_k, σ² I); a table not yet opened has the
prior predictive N(x; m₀, (σ² + σ₀²) I) of a memory drawn from the prior N(m₀, σ₀² I). In CLAM's convention
β = 1/(2σ²) and ρ = 1/(2σ₀²), so 1/(2(σ² + σ₀²)) = (β⁻¹ + ρ⁻¹)⁻¹, and dividing every term by the shared
normaliser (2πσ²)^{−D/2} gives the energy of the workshop paper (its eq. 12), with states measured from m₀:

    E(v) = −(1/β) log[ (α + dK) c_D exp(−(β⁻¹ + ρ⁻¹)⁻¹ ‖v‖²) + Σ_k (n_k − d) exp(−β ‖μ_k − v‖²) ],

where c_D = (σ²/(σ² + σ₀²))^{D/2} = (ρ/(β + ρ))^{D/2} is the ratio of the two Gaussians' normalisers. The printed
equation has c_D = 1 (``normaliser=False``); the Bayesian predictive has it (``normaliser=True``). In D dimensions
c_D is exponentially small, and whether it is kept decides how eagerly memories are created (chapter 4).

**Creating memories.** :class:`CLAMCRP` streams the points; for each it runs the ELBO dynamics of CLAM+ELBO
(:func:`ambridge.memories.elbo_dynamics`) over K + 1 logits — the K memories and "a new memory" — with the log
weights above as the log joint. When "new" wins, a memory is instantiated; then counts and memories are updated.

**The small-variance limit** (Kulis & Jordan 2012). With α = e^{−βλ}/c_D (:func:`small_variance_log_alpha`) the
new-memory log weight is −βλ − (β⁻¹ + ρ⁻¹)⁻¹‖v‖², so as β → ∞ (σ² → 0) the decision, divided by β, becomes
"open a memory iff min_k ‖x − μ_k‖² > λ, else join the nearest": DP-means (:class:`DPMeans`). Both estimators share
one schedule (:class:`_SequentialMemory`), so the limit compares like with like.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import digamma, gammaln
from sklearn.exceptions import ConvergenceWarning

from .. import checks
from ..checks import check_choice, check_number
from ._base import MemoryEstimator
from .elbo import elbo_dynamics

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
    "VARIANCE_GRID",
    "CLAMCRP",
    "DPMeans",
]


# --- the prior: Chinese restaurant and Pitman–Yor processes --------------------------------------------------------


def check_crp_parameters(alpha: float, discount: float = 0.0) -> tuple[float, float]:
    """Check a CRP / Pitman–Yor pair: discount d ∈ [0, 1) and concentration α > −d (α > 0 for the CRP)."""
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
    Γ(α+1)/(d Γ(α+d)) nᵈ − α/d (PYP, error O(n^{d−1})). ``n`` ≥ 1."""
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
    ``counts`` (K,) points per table, ``n_tables`` (n,) K after each point."""

    labels: torch.Tensor
    counts: torch.Tensor
    n_tables: torch.Tensor


def crp_seating(n: int, alpha: float, discount: float = 0.0, *, generator: torch.Generator | None = None) -> CRPSeating:
    """Seat ``n`` points one by one by the CRP (``discount`` = 0) or the Pitman–Yor process (``discount`` = d > 0).

    Point i + 1 (with i seated at K tables) opens a table with probability (α + dK)/(α + i) and joins table k with
    probability (n_k − d)/(α + i). One uniform draw per point from ``generator`` decides it (inverse CDF).
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
    """log[(α + dK) c_D] − (β⁻¹ + ρ⁻¹)⁻¹ ‖v − m₀‖², the new-memory term of the energy; ``sq_norm`` = ‖v − m₀‖² (...)."""
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
    """
    state, memories, counts = _check_energy_args(state, memories, counts, alpha, discount, beta, prior_precision, log_alpha)
    sq = (state.unsqueeze(-2) - memories).pow(2).sum(-1)  # (..., K)
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

    ``points``: (n, D) with n ≥ 1; ``prior_mean``: (D,).
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


# --- the shared schedule: stream, create, re-seat, update --------------------------------------------------------------


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel a partition by order of first appearance, so two equal partitions compare equal."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse]


def _sq_dists(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """‖x_i − c_k‖² for all pairs  →  (n, K), through ‖x‖² − 2xᵀc + ‖c‖² (one matrix product), clipped at 0."""
    out = (x**2).sum(-1)[:, None] - 2 * x @ centres.T + (centres**2).sum(-1)[None]
    return np.maximum(out, 0.0)


def _sums(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    sums = np.zeros((k, x.shape[1]))
    seated = labels >= 0
    np.add.at(sums, labels[seated], x[seated])
    return sums


@dataclass
class _Fit:
    locations: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    n_iter: int
    converged: bool
    growth: np.ndarray
    capped: bool


class _SequentialMemory(MemoryEstimator):
    """The schedule CLAM+CRP and DP-means share, so that one is the other's limit step by step.

    [choice] Points are visited in one seeded random order (the same in every pass). The first pass starts with no
    memories: the first point always opens one, like the CRP's first customer (Kulis & Jordan's Algorithm 1 starts
    instead from one cluster at the global mean). Later passes re-seat every point, its own memory's count reduced by
    one first — a memory left with no points is not an option for it, as a CRP table that the point alone occupied
    has weight 0 — and stop when the partition no longer changes (``converged_``) or after ``max_iter`` passes.
    ``max_iter=1`` is the pure streaming memory: one pass, no re-seating.

    ``update="online"`` (default) [choice]: a memory's location follows its points live — the point being re-seated
    is taken out first, and a point that joins moves the memory at once — so in the first pass the memory learns as
    the stream arrives. ``update="batch"`` (Kulis & Jordan's schedule): locations stay fixed during a pass, a memory
    created in the pass sits where it was created, and the M-step after the pass moves every memory to the location
    its points give; starting every memory at a single point, it opens more memories in the first pass, which the
    later passes cannot merge (on isotropic test mixtures it over-splits where "online" does not). Counts are always
    live. After every pass memories left without points are removed and the rest renumbered in
    order of creation.

    The pass is inherently serial (each point sees the memories the previous ones left), so it runs point by point
    in NumPy float64 on the CPU; the queries (``predict``, energies) are batched torch computations on ``device``.

    Subclasses define ``_location(sums, counts)`` (a memory's location from its points' sum and number) and
    ``_choose(i, sq_dist, counts, can_open)`` (given point i's squared distances and the counts of the memories it
    may join, the index of the chosen one, or ``len(counts)`` for a new memory).
    """

    def _check_schedule(self) -> None:
        check_choice("update", self.update, ("batch", "online"))
        check_number("max_iter", self.max_iter, low=1, integer=True)
        if self.max_memories is not None:
            check_number("max_memories", self.max_memories, low=1, integer=True)

    def _order(self, n: int) -> np.ndarray:
        return torch.randperm(n, generator=torch.Generator().manual_seed(self._seed())).numpy()

    def _partition(self, x: np.ndarray, order: np.ndarray) -> _Fit:
        n, d = x.shape
        cap = n if self.max_memories is None else min(n, self.max_memories)
        online = self.update == "online"
        labels = np.full(n, -1, dtype=np.int64)
        locations, counts = np.zeros((0, d)), np.zeros(0, dtype=np.int64)
        growth, previous, capped, converged, it = [], None, False, False, 0
        for it in range(1, self.max_iter + 1):
            k0 = locations.shape[0]
            loc = np.concatenate([locations, np.zeros((n, d))])  # room for one new memory per point
            cnt = np.concatenate([counts, np.zeros(n, dtype=np.int64)])
            sums = np.concatenate([_sums(x, labels, k0), np.zeros((n, d))]) if online else None
            frozen = None if online else _sq_dists(x, locations)  # (n, k0)
            k = k0
            for i in order:
                xi, old = x[i], labels[i]
                if old >= 0:
                    cnt[old] -= 1
                    if online:
                        sums[old] -= xi
                        if cnt[old] > 0:
                            loc[old] = self._location(sums[old], cnt[old])
                if online:
                    sq = ((loc[:k] - xi) ** 2).sum(-1)
                else:
                    sq = np.concatenate([frozen[i], ((loc[k0:k] - xi) ** 2).sum(-1)])
                alive = np.flatnonzero(cnt[:k] > 0)
                can_open = alive.size < cap
                capped |= not can_open
                pick = self._choose(i, sq[alive], cnt[alive], can_open) if alive.size else 0
                if pick == alive.size:  # a new memory
                    j, k = k, k + 1
                    loc[j] = self._location(xi, 1)
                    if online:
                        sums[j] = xi
                else:
                    j = int(alive[pick])
                    if online:
                        sums[j] += xi
                        loc[j] = self._location(sums[j], cnt[j] + 1)
                cnt[j] += 1
                labels[i] = j
                if it == 1:
                    growth.append(k)
            # M-step: drop empty memories, renumber in order of creation, move every memory to its points' location
            keep = np.flatnonzero(cnt[:k] > 0)
            renumber = np.full(k, -1, dtype=np.int64)
            renumber[keep] = np.arange(keep.size)
            labels = renumber[labels]
            counts = np.bincount(labels, minlength=keep.size)
            sums_k = _sums(x, labels, keep.size)
            locations = self._location(sums_k, counts[:, None])
            if self._after_pass(x, labels, locations):  # the model changed (a learned variance): locations follow
                locations = self._location(sums_k, counts[:, None])
            partition = _canonical(labels)
            if previous is not None and np.array_equal(partition, previous):
                converged = True
                break
            previous = partition
        return _Fit(locations, counts, labels, it, converged, np.asarray(growth, dtype=np.int64), capped)

    def _after_pass(self, x, labels, locations) -> bool:
        return False

    def _store(self, fit: _Fit, order: np.ndarray) -> None:
        self.memories_ = fit.locations
        self.n_memories_ = int(fit.locations.shape[0])
        self.counts_ = fit.counts
        self.labels_ = fit.labels
        self.n_iter_ = fit.n_iter
        self.converged_ = fit.converged
        self.memory_growth_ = fit.growth
        self.order_ = order
        self.capped_ = fit.capped
        if fit.capped:
            warnings.warn(
                f"{type(self).__name__} reached max_memories = {self.max_memories}: the new-memory option was "
                "withheld from some points", ConvergenceWarning, stacklevel=3,
            )
        elif not fit.converged and self.max_iter > 1:
            warnings.warn(
                f"{type(self).__name__}: the partition still changed after max_iter = {self.max_iter} passes",
                ConvergenceWarning, stacklevel=3,
            )

    def _data(self, X) -> np.ndarray:
        return self._as_tensor(X, fitting=True).cpu().numpy()

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, and return ``labels_`` — the partition the fit ends with (the training points' memories)."""
        return self.fit(X).labels_


# --- CLAM+CRP ------------------------------------------------------------------------------------------------------------

#: The coarse grid of σ²/σ₀² searched when ``variance=None``: 2^(−j), j = 0…6, from 1 down to 1/64.
VARIANCE_GRID = tuple(2.0**-j for j in range(7))


class CLAMCRP(_SequentialMemory):
    """CLAM+CRP: an associative memory that creates memories as the data demand (paper, section 2c).

    The model is a CRP (or Pitman–Yor) mixture of isotropic Gaussians N(x; μ_k, σ² I) with memories drawn from
    N(m₀, σ₀² I). Points are streamed (see :class:`_SequentialMemory` for the schedule); for each, the ELBO dynamics
    (:func:`ambridge.memories.elbo_dynamics`) run over the K + 1 logits whose log joint is :func:`crp_log_weights`
    — the K memories with their counts excluding the point, and "a new memory". The point joins the winner, argmax q.

    [choice] ``flow="natural"`` by default: its first Euler step of size 1 lands exactly on the posterior
    q = softmax(a) (see :mod:`ambridge.memories.elbo`), so with ``step_size=1`` the decision is argmax_k a_k and the
    estimator takes it without running the loop (identical decisions; tested). ``"gradient"`` (the paper's flow), or
    any other step size, runs :func:`elbo_dynamics` for every point, ``dynamics_steps`` steps at most. It reaches
    the same argmax: two logits can never cross in continuous time, since where they meet they move apart at rate
    q(a_k − a_j). It is ~100× slower.

    [choice] A new memory is placed at the posterior mean of a memory given the one point x,
    m₀ + (x − m₀) σ₀²/(σ₀² + σ²), and every memory moves, at the M-step, to the posterior mean of its points,
    (Σx + r m₀)/(n_k + r) with r = σ²/σ₀² — both tend to DP-means' x and cluster mean as σ² → 0.

    [choice] The decision is the posterior's mode (iterated conditional modes), not a Gibbs draw: the memory is
    deterministic given ``random_state``.

    Parameters:

    - ``alpha`` α > 0, the concentration (α = 1: a new memory weighs as much as a memory holding one point);
      ``discount`` d ∈ [0, 1), the Pitman–Yor discount (0: the CRP).
    - ``variance`` σ² > 0 of every memory; β = 1/(2σ²). None (default) [choice]: chosen by the evidence of the
      partition found, log p(X, ẑ ∣ σ²) = log p(ẑ) + Σ_k log p(X_k ∣ σ²) (:func:`crp_log_prior`,
      :func:`cluster_log_marginal`: memories integrated out). The CRP prior and each memory's Occam factor penalise
      splitting; the within-memory scatter penalises merging. The memory is fitted at σ² = g σ₀² for g = 1, 1/2,
      1/4, … (:data:`VARIANCE_GRID`) until the evidence falls, then at the two points a factor √2 either side of the
      best; it keeps the best fit. ``variance_evidence_`` lists every σ² tried with its evidence and K. The memories
      are isotropic, so on real classes that are elongated the evidence prefers several memories per class.
    - ``prior_variance`` σ₀² > 0 of the prior on memory locations; ρ = 1/(2σ₀²). None [choice]: the data's mean
      per-feature variance (1 on standardised data); the prior mean m₀ is always the data mean (empirical Bayes).
    - ``normaliser``: keep c_D = (σ²/(σ² + σ₀²))^{D/2} in the new-memory weight (the Bayesian predictive; default)
      or drop it as the workshop's eq. 12 prints.
    - ``log_alpha``: log α, replacing ``alpha`` when α is too small for a float (the small-variance limit,
      :meth:`small_variance`); None: use ``alpha``.
    - ``update`` "online" or "batch" and ``max_iter`` passes at most (1: streaming only), see
      :class:`_SequentialMemory`.
    - ``flow``, ``step_size``, ``dynamics_steps``: the ELBO dynamics per point (flow "natural" or "gradient",
      Euler step Δt/τ, steps at most).
    - ``max_memories``: cap on memories alive at once (None: no cap); reaching it warns and sets ``capped_``.
    - ``random_state``: seed of the streaming order; ``device``: where queries run.

    Fitted: ``memories_`` (K, D), ``n_memories_`` K, ``counts_`` (K,), ``labels_`` (n,), ``n_iter_`` passes,
    ``converged_``, ``memory_growth_`` (n,) K after each point of the first pass (in streaming order ``order_``),
    ``variance_``, ``prior_variance_``, ``prior_mean_`` (D,), ``log_alpha_``, ``log_evidence_`` log p(X, ẑ ∣ σ²),
    ``variance_evidence_`` (σ², log evidence, K) per σ² tried when the variance was chosen, ``capped_``.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        discount: float = 0.0,
        variance: float | None = None,
        prior_variance: float | None = None,
        normaliser: bool = True,
        log_alpha: float | None = None,
        update: str = "online",
        max_iter: int = 100,
        flow: str = "natural",
        step_size: float = 1.0,
        dynamics_steps: int = 200,
        max_memories: int | None = 1000,
        random_state: int | None = None,
        device: str = "cpu",
    ):
        self.alpha = alpha
        self.discount = discount
        self.variance = variance
        self.prior_variance = prior_variance
        self.normaliser = normaliser
        self.log_alpha = log_alpha
        self.update = update
        self.max_iter = max_iter
        self.flow = flow
        self.step_size = step_size
        self.dynamics_steps = dynamics_steps
        self.max_memories = max_memories
        self.random_state = random_state
        self.device = device

    @classmethod
    def small_variance(cls, lam: float, beta: float, *, prior_variance: float = 1.0, normaliser: bool = True,
                       dim: int | None = None, **kwargs) -> "CLAMCRP":
        """CLAM+CRP at inverse temperature β with α = e^{−βλ}/c_D: DP-means with penalty λ as β → ∞.

        ``dim`` (the data's D) is needed only with the normaliser; ``kwargs`` go to the constructor.
        """
        if normaliser and dim is None:
            raise ValueError("`dim` (the data's number of features) is needed when normaliser=True")
        check_number("prior_variance", prior_variance, low=0, low_open=True)
        log_alpha = small_variance_log_alpha(lam, beta, 1 / (2 * prior_variance), dim or 1, normaliser)
        return cls(variance=1 / (2 * beta), prior_variance=prior_variance, normaliser=normaliser, log_alpha=log_alpha,
                   **kwargs)

    def _check_params(self) -> None:
        if self.log_alpha is None:
            check_number("alpha", self.alpha, low=0, low_open=True)
        else:
            check_number("log_alpha", self.log_alpha)
        check_number("discount", self.discount, low=0, high=1, high_open=True)
        if self.variance is not None:
            check_number("variance", self.variance, low=0, low_open=True)
        if self.prior_variance is not None:
            check_number("prior_variance", self.prior_variance, low=0, low_open=True)
        check_choice("normaliser", self.normaliser, (True, False))
        check_choice("flow", self.flow, ("natural", "gradient"))
        check_number("step_size", self.step_size, low=0, low_open=True)
        check_number("dynamics_steps", self.dynamics_steps, low=1, integer=True)
        self._check_schedule()

    # the model's pieces -------------------------------------------------------------------------------------------
    def _set_variance(self, variance: float) -> None:
        self.variance_ = float(variance)
        self._beta = 1 / (2 * self.variance_)
        self._rho = 1 / (2 * self.prior_variance_)
        self._shrink = self.variance_ / self.prior_variance_  # r = σ²/σ₀²
        self._gamma = 1 / (1 / self._beta + 1 / self._rho)  # (β⁻¹ + ρ⁻¹)⁻¹
        self._log_norm = 0.5 * self.n_features_in_ * math.log(self._rho / (self._beta + self._rho)) if self.normaliser else 0.0
        self._log_alpha_norm = self.log_alpha_ + self._log_norm  # log(α c_D)

    def _location(self, sums, counts):
        """Posterior mean of a memory given ``counts`` points summing to ``sums``: (Σx + r m₀)/(n + r)."""
        return (sums + self._shrink * self.prior_mean_) / (counts + self._shrink)

    def _choose(self, i, sq_dist, counts, can_open) -> int:
        m = counts.size
        a = np.empty(m + 1 if can_open else m)
        a[:m] = np.log(counts - self.discount) - self._beta * sq_dist
        if can_open:
            log_conc = self._log_alpha_norm if self.discount == 0.0 else float(
                np.logaddexp(self._log_alpha_norm, self._log_norm + math.log(self.discount * m)))
            a[m] = log_conc - self._gamma * self._sq_norm[i]
        if a.size == 1:
            return 0
        if self.flow == "natural" and self.step_size == 1.0:
            return int(np.argmax(a))  # the dynamics' first step lands on softmax(a)
        traj = elbo_dynamics(torch.from_numpy(a), flow=self.flow, step_size=self.step_size,
                             max_steps=self.dynamics_steps, tol=1e-9)
        return int(traj.q.argmax())

    def _log_evidence(self, x: np.ndarray, fit: _Fit) -> float:
        alpha = self.alpha if self.log_alpha is None else math.exp(self.log_alpha)
        if alpha <= 0:
            return -math.inf  # α underflowed (the small-variance limit): the evidence is not defined there
        prior = crp_log_prior(fit.counts, alpha, self.discount)
        return prior + sum(
            cluster_log_marginal(x[fit.labels == k], self.variance_, self.prior_variance_, self.prior_mean_)
            for k in range(fit.counts.size)
        )

    def fit(self, X, y=None) -> "CLAMCRP":
        x = self._data(X)
        self._check_params()
        self.prior_mean_ = x.mean(0)
        spread = float(x.var(0).mean()) if x.shape[0] > 1 else 1.0
        self.prior_variance_ = float(self.prior_variance) if self.prior_variance is not None else max(spread, 1e-12)
        self.log_alpha_ = float(self.log_alpha) if self.log_alpha is not None else math.log(self.alpha)
        self._sq_norm = ((x - self.prior_mean_) ** 2).sum(-1)
        order = self._order(x.shape[0])
        tried: dict[float, tuple[float, _Fit]] = {}

        def attempt(g: float) -> float:
            self._set_variance(g * self.prior_variance_ if self.variance is None else self.variance)
            fit = self._partition(x, order)
            tried[g] = (self._log_evidence(x, fit), fit)
            return tried[g][0]

        if self.variance is not None:
            attempt(1.0)
        else:
            best = -math.inf
            for g in VARIANCE_GRID:
                if attempt(g) < best:
                    break
                best = max(best, tried[g][0])
            g_best = max(tried, key=lambda g: tried[g][0])
            for g in (g_best * math.sqrt(2), g_best / math.sqrt(2)):
                if VARIANCE_GRID[-1] / 2 < g < 1.0 + 1e-12 and g not in tried:
                    attempt(g)
        g_best = max(tried, key=lambda g: tried[g][0])
        self._set_variance(g_best * self.prior_variance_ if self.variance is None else self.variance)
        self.log_evidence_, fit = tried[g_best]
        self.variance_evidence_ = (
            None if self.variance is not None else
            [(g * self.prior_variance_, tried[g][0], int(tried[g][1].counts.size)) for g in sorted(tried, reverse=True)]
        )
        self._store(fit, order)
        return self

    # queries --------------------------------------------------------------------------------------------------------
    def _fitted_tensors(self, X):
        self._check_fitted()
        x = self._as_tensor(X, fitting=False)
        m0 = torch.as_tensor(self.prior_mean_, dtype=x.dtype, device=x.device)
        mem = torch.as_tensor(self.memories_, dtype=x.dtype, device=x.device)
        cnt = torch.as_tensor(self.counts_, dtype=x.dtype, device=x.device)
        return x - m0, mem - m0, cnt

    def log_joint(self, X) -> torch.Tensor:
        """The K + 1 log weights (:func:`crp_log_weights`) of each point under the fitted memory, "new" last.

        Softmax of a row is the posterior over the memories and a new one, as if the point arrived next.
        →  (n, K + 1) float64 tensor.
        """
        v, mem, cnt = self._fitted_tensors(X)
        return crp_log_weights(
            v, mem, cnt, alpha=self.alpha, discount=self.discount, beta=1 / (2 * self.variance_),
            prior_precision=1 / (2 * self.prior_variance_), normaliser=self.normaliser, log_alpha=self.log_alpha_,
        )

    def energy(self, X) -> np.ndarray:
        """The fitted memory's CRP energy E(x) (:func:`crp_energy`) at each point  →  (n,)."""
        return (-torch.logsumexp(self.log_joint(X), dim=-1) * 2 * self.variance_).cpu().numpy()

    def _retrieve(self, a: torch.Tensor):
        return elbo_dynamics(a, flow=self.flow, step_size=self.step_size, max_steps=self.dynamics_steps, tol=1e-9)

    def new_memory_proba(self, X) -> np.ndarray:
        """q_new after the ELBO dynamics over K + 1 logits: how strongly each point would ask for a new memory  →  (n,)."""
        return self._retrieve(self.log_joint(X)).q[..., -1].cpu().numpy()

    def predict_proba(self, X) -> np.ndarray:
        """Assignment probabilities over the K existing memories (no creation) after the ELBO dynamics  →  (n, K)."""
        return self._retrieve(self.log_joint(X)[..., :-1]).q.cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """The existing memory each point is assigned to, argmax_k q_k over the K memories  →  (n,) ints.

        [choice] Prediction never creates memories (a query does not change the fitted memory); a point that would
        open one goes to the memory with the largest posterior weight among the existing ones. ``new_memory_proba``
        tells which points would have asked for a new memory.
        """
        return self.predict_proba(X).argmax(-1)


# --- DP-means --------------------------------------------------------------------------------------------------------------


class DPMeans(_SequentialMemory):
    """DP-means (Kulis & Jordan 2012): K-means with a penalty λ per cluster, so K is found from the data.

    A point joins its nearest mean unless every mean is farther than λ in squared distance, in which case it opens a
    cluster at itself; means are cluster means. This is the β → ∞ limit of :class:`CLAMCRP` with
    α = e^{−βλ}/c_D, and it runs the same schedule (:class:`_SequentialMemory`: the same streaming order for the same
    ``random_state``, the first point opening the first cluster, counts excluding the point being re-seated, and the
    same ``update``). ``update="batch"`` is Kulis & Jordan's Algorithm 1 (but for its start from one cluster at the
    global mean), and with it no pass increases the objective Σ_i ‖x_i − μ_{z_i}‖² + λK (``objective_``).

    Parameters: ``lam`` λ > 0; ``update``, ``max_iter``, ``max_memories``, ``random_state``, ``device`` as in
    :class:`CLAMCRP`. Fitted: ``memories_`` = ``cluster_centers_`` (K, D), ``n_memories_``, ``counts_``,
    ``labels_``, ``n_iter_``, ``converged_``, ``memory_growth_``, ``order_``, ``objective_`` (after each pass).
    """

    def __init__(
        self,
        lam: float = 1.0,
        *,
        update: str = "online",
        max_iter: int = 100,
        max_memories: int | None = None,
        random_state: int | None = None,
        device: str = "cpu",
    ):
        self.lam = lam
        self.update = update
        self.max_iter = max_iter
        self.max_memories = max_memories
        self.random_state = random_state
        self.device = device

    @staticmethod
    def _location(sums, counts):
        return sums / counts

    def _choose(self, i, sq_dist, counts, can_open) -> int:
        nearest = int(np.argmin(sq_dist))
        return counts.size if can_open and sq_dist[nearest] > self.lam else nearest

    def _after_pass(self, x, labels, locations) -> bool:
        self.objective_.append(float(((x - locations[labels]) ** 2).sum()) + self.lam * locations.shape[0])
        return False

    def fit(self, X, y=None) -> "DPMeans":
        x = self._data(X)
        check_number("lam", self.lam, low=0, low_open=True)
        self._check_schedule()
        self.objective_ = []
        order = self._order(x.shape[0])
        self._store(self._partition(x, order), order)
        self.cluster_centers_ = self.memories_
        return self

    def predict(self, X) -> np.ndarray:
        """The nearest mean to each point (no new clusters at prediction)  →  (n,) ints."""
        self._check_fitted()
        x = self._as_tensor(X, fitting=False)
        mem = torch.as_tensor(self.memories_, dtype=x.dtype, device=x.device)
        return (x.unsqueeze(-2) - mem).pow(2).sum(-1).argmin(-1).cpu().numpy()
