"""CLAM+CRP: an associative memory that creates its memories on demand (paper, section 2c).

Each point is streamed through the ELBO dynamics of CLAM+ELBO (:func:`ambridge.memories.elbo_dynamics`) over K + 1
logits — the K memories and "a new memory" — whose log joint is the CRP energy's log weights
(:func:`ambridge.memories.crp.crp_log_weights`). When "new" wins, a memory is made; then counts and memories are
updated. The schedule (stream, create, re-seat, update) is the one DP-means runs (:mod:`._sequential`), so that
DP-means is CLAM+CRP's small-variance limit step by step. Used in chapter 4 and in the clustering benchmark
(chapter 3, § The clustering benchmark).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ..checks import ParameterError, check_number
from ._collapsed import collapsed_log_joint, collapsed_partition
from ._sequential import Fit, SequentialMemory
from .crp import crp_log_prior, crp_log_weights, small_variance_log_alpha
from .elbo import elbo_dynamics
from .marginals import NormalGamma, isotropic_log_marginal, normal_gamma_log_marginal, normal_gamma_variance, statistics
from .merge import greedy_merge

__all__ = ["VARIANCE_GRID", "DIAG_PRIOR_SHAPE", "CLAMCRP"]

#: The coarse grid of σ²/σ₀² searched when ``variance=None``: 2^(−j), j = 0…6, from 1 down to 1/64.
VARIANCE_GRID = tuple(2.0**-j for j in range(7))

#: a₀ of the Normal–Gamma prior of ``covariance="diag"``: the weakest shape with E[τ] = a₀/b₀ finite and a posterior
#: mean of the variance for every memory (a_n = a₀ + n/2 > 1 from n = 1).
DIAG_PRIOR_SHAPE = 1.0

_POSITIVE = Interval(Real, 0, None, closed="neither")


class CLAMCRP(SequentialMemory):
    """CLAM+CRP: an associative memory that creates memories as the data demand (paper, section 2c).

    The model is a CRP (or Pitman–Yor) mixture of isotropic Gaussians N(x; μ_k, σ² I) with memories drawn from
    N(m₀, σ₀² I). Points are streamed in one seeded order; for each, the ELBO dynamics run over the K + 1 logits whose
    log joint is :func:`~ambridge.memories.crp.crp_log_weights` — the K memories with their counts excluding the
    point, and "a new memory". The point joins the winner, argmax q. Later passes re-seat every point until the
    partition stops changing (iterated conditional modes, not a Gibbs draw: deterministic given ``random_state``).

    [choice] ``flow="natural"`` by default: its first Euler step of size 1 lands exactly on the posterior
    q = softmax(a) (see :mod:`ambridge.memories.elbo`), so with ``step_size=1`` the decision is argmax_k a_k and the
    estimator takes it without running the loop (identical decisions; tested). ``"gradient"`` (the paper's flow), or
    any other step size, runs the dynamics for every point, ``dynamics_steps`` steps at most. It reaches the same
    argmax: two logits can never cross in continuous time, since where they meet they move apart at rate
    q(a_k − a_j). It is ~100× slower.

    [choice] A new memory is placed at the posterior mean of a memory given the one point x,
    m₀ + (x − m₀) σ₀²/(σ₀² + σ²), and every memory moves to the posterior mean of its points,
    (Σx + r m₀)/(n_k + r) with r = σ²/σ₀² — both tend to DP-means' x and cluster mean as σ² → 0.

    Used in chapter 4, § The memory: ELBO dynamics over K + 1 memories (and every section after it), and in the
    clustering benchmark (chapter 3, § The clustering benchmark).

    Parameters
    ----------
    alpha : float, default=1.0
        The concentration α > 0 (α = 1: a new memory weighs as much as a memory holding one point).
    discount : float, default=0.0
        The Pitman–Yor discount d ∈ [0, 1) (0: the CRP).
    variance : float or None, default=None
        σ² > 0 of every memory; β = 1/(2σ²). None [choice]: chosen by the evidence of the partition found,
        log p(X, ẑ ∣ σ²) = log p(ẑ) + Σ_k log p(X_k ∣ σ²) (:func:`~ambridge.memories.crp.crp_log_prior`,
        :func:`~ambridge.memories.crp.cluster_log_marginal`: memories integrated out). The CRP prior and each
        memory's Occam factor penalise splitting; the within-memory scatter penalises merging. The memory is fitted at
        σ² = g σ₀² for g = 1, 1/2, 1/4, … (:data:`VARIANCE_GRID`) until the evidence falls, then at the two points a
        factor √2 either side of the best; it keeps the best fit. The memories are isotropic, so on real classes that
        are elongated the evidence prefers several memories per class.
    prior_variance : float or None, default=None
        σ₀² > 0 of the prior on memory locations; ρ = 1/(2σ₀²). None [choice]: the data's mean per-feature variance
        (1 on standardised data). The prior mean m₀ is always the data mean (empirical Bayes).
    normaliser : bool, default=True
        Keep c_D = (σ²/(σ² + σ₀²))^{D/2} in the new-memory weight (the Bayesian predictive), or drop it as the
        workshop's eq. 12 prints.
    log_alpha : float or None, default=None
        log α, replacing ``alpha`` when α is too small for a float (the small-variance limit,
        :meth:`small_variance`); None: use ``alpha``.
    update : {"online", "batch"}, default="online"
        "online": a memory follows its points live; "batch": Kulis & Jordan's schedule, locations fixed during a pass
        and moved after it (see :class:`~ambridge.memories._sequential.SequentialMemory`).
    max_iter : int, default=100
        Passes at most (1: the streaming memory, no re-seating).
    flow : {"natural", "gradient"}, default="natural"
        The ELBO dynamics' flow for each point's decision.
    step_size : float, default=1.0
        Their Euler step Δt/τ > 0.
    dynamics_steps : int, default=200
        Their steps at most, per point.
    max_memories : int or None, default=1000
        Cap on memories alive at once (None: no cap); reaching it warns and sets ``capped_``.
    random_state : int, RandomState instance or None, default=None
        Seed of the streaming order (an int is the torch seed itself).
    device : str or torch.device, default="cpu"
        Where the queries (``predict``, energies) run; the pass itself is serial NumPy on the CPU.
    covariance : {"spherical", "diag"}, default="spherical"
        "spherical": every memory is N(μ_k, σ² I) with one shared σ² (the paper's). "diag": every memory has its own
        variance per coordinate, and its location and variances are integrated out under a Normal–Gamma prior
        (:mod:`~ambridge.memories.marginals`: τ ~ Gamma(a₀ = :data:`DIAG_PRIOR_SHAPE`, b₀ = a₀σ²), μ ∣ τ ~
        N(m₀, 1/(κ₀τ)) with κ₀ = σ²/σ₀², so E[τ] = 1/σ² and the prior spread of μ is σ₀² as before); a point joins
        the memory whose Student t predictive times n_k − d is largest (:mod:`._collapsed`). ``variance`` is then
        the prior guess of a memory's variance, chosen by the evidence in the same way; ``update`` must be "online"
        and the decision is the argmax the dynamics reach (``flow``, ``step_size``, ``dynamics_steps`` unused).
    merge : bool, default=False
        After the passes, join memories while that raises the evidence log p(X, ẑ ∣ σ²)
        (:func:`~ambridge.memories.merge.greedy_merge`), re-seat from the merged partition, and repeat; the fit with
        the highest evidence is kept, so merging never lowers it.

    Attributes
    ----------
    memories_ : ndarray of shape (K, D)
        The memories μ_k (posterior means of their points).
    n_memories_ : int
        K, the memories made (and kept).
    counts_ : ndarray of shape (K,)
        Points per memory.
    labels_ : ndarray of shape (n,)
        Each training point's memory.
    n_iter_ : int
        Passes run.
    converged_ : bool
        Whether the partition stopped changing.
    memory_growth_ : ndarray of shape (n,)
        K after each point of the first pass, in streaming order ``order_``.
    order_ : ndarray of shape (n,)
        The streaming order.
    variance_, prior_variance_ : float
        σ² and σ₀² used.
    prior_mean_ : ndarray of shape (D,)
        m₀, the data mean.
    log_alpha_ : float
        log α used.
    log_evidence_ : float
        log p(X, ẑ ∣ σ²) of the partition kept (−inf where α underflowed).
    variance_evidence_ : list of (float, float, int) or None
        (σ², log evidence, K) for every σ² tried when the variance was chosen; None when it was given.
    capped_ : bool
        Whether ``max_memories`` withheld the new-memory option from some point.
    variances_ : ndarray of shape (K, D)
        Each memory's variance per coordinate: σ² everywhere ("spherical"), the posterior mean b_n/(a_n − 1) ("diag").
    n_merges_ : int
        Merges made in the fit kept (0 without ``merge``).
    n_features_in_ : int
        D.
    """

    _parameter_constraints: dict = {
        **SequentialMemory._schedule_constraints,
        "alpha": [_POSITIVE],
        "discount": [Interval(Real, 0, 1, closed="left")],
        "variance": [_POSITIVE, None],
        "prior_variance": [_POSITIVE, None],
        "normaliser": ["boolean"],
        "log_alpha": [Interval(Real, None, None, closed="neither"), None],
        "flow": [StrOptions({"natural", "gradient"})],
        "step_size": [_POSITIVE],
        "dynamics_steps": [Interval(Integral, 1, None, closed="left")],
        "covariance": [StrOptions({"spherical", "diag"})],
        "merge": ["boolean"],
    }

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
        covariance: str = "spherical",
        merge: bool = False,
    ):
        self.covariance = covariance
        self.merge = merge
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
        Used in chapter 4, § The small-variance limit: DP-means.
        """
        if normaliser and dim is None:
            raise ValueError("`dim` (the data's number of features) is needed when normaliser=True")
        check_number("prior_variance", prior_variance, low=0, low_open=True)
        log_alpha = small_variance_log_alpha(lam, beta, 1 / (2 * prior_variance), dim or 1, normaliser)
        return cls(variance=1 / (2 * beta), prior_variance=prior_variance, normaliser=normaliser, log_alpha=log_alpha,
                   **kwargs)

    # the model's pieces -------------------------------------------------------------------------------------------
    def _set_variance(self, variance: float) -> None:
        self.variance_ = float(variance)
        self._beta = 1 / (2 * self.variance_)
        self._rho = 1 / (2 * self.prior_variance_)
        self._shrink = self.variance_ / self.prior_variance_  # r = σ²/σ₀²
        self._gamma = 1 / (1 / self._beta + 1 / self._rho)  # (β⁻¹ + ρ⁻¹)⁻¹
        self._log_norm = 0.5 * self.n_features_in_ * math.log(self._rho / (self._beta + self._rho)) if self.normaliser else 0.0
        self._log_alpha_norm = self.log_alpha_ + self._log_norm  # log(α c_D)
        self._prior = NormalGamma(self.prior_mean_, self.variance_ / self.prior_variance_, DIAG_PRIOR_SHAPE,
                                  DIAG_PRIOR_SHAPE * self.variance_)

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

    def _log_evidence(self, x: np.ndarray, fit: Fit) -> float:
        alpha = self.alpha if self.log_alpha is None else math.exp(self.log_alpha)
        if alpha <= 0:
            return -math.inf  # α underflowed (the small-variance limit): the evidence is not defined there
        prior = crp_log_prior(fit.counts, alpha, self.discount)
        return prior + float(self._marginal(*statistics(x, fit.labels, fit.counts.size)).sum())

    def _marginal(self, counts, sums, sumsq):
        """log p(points of a memory) from its statistics (:mod:`.marginals`)."""
        if self.covariance == "diag":
            return normal_gamma_log_marginal(counts, sums, sumsq, self._prior)
        return isotropic_log_marginal(counts, sums, sumsq, variance=self.variance_,
                                      prior_variance=self.prior_variance_, prior_mean=self.prior_mean_)

    def _seat(self, x, order, start=None) -> Fit:
        if self.covariance == "spherical":
            return self._partition(x, order, start)
        cap = x.shape[0] if self.max_memories is None else min(x.shape[0], self.max_memories)
        return collapsed_partition(x, order, self._prior, log_alpha=self.log_alpha_, discount=self.discount,
                                   max_iter=self.max_iter, cap=cap, labels=start)

    def _fit_at(self, x, order) -> tuple[float, Fit, int]:
        """Seat (and merge) at the current σ²  →  (log evidence, fit, merges made)."""
        best = self._seat(x, order)
        best_ev, merges = self._log_evidence(x, best), 0
        for _ in range(self.max_iter if self.merge and math.isfinite(best_ev) else 0):
            merged = greedy_merge(x, best.labels, self._marginal, log_alpha=self.log_alpha_, discount=self.discount)
            if not merged.gains:
                break
            counts = np.bincount(merged.labels)
            means = self._location(statistics(x, merged.labels, counts.size)[1], counts[:, None])
            fits = [Fit(means, counts, merged.labels, best.n_iter, best.converged, best.growth, best.capped),
                    self._seat(x, order, merged.labels)]
            evs = [self._log_evidence(x, f) for f in fits]
            pick = int(np.argmax(evs))
            if not evs[pick] > best_ev + 1e-9 * abs(best_ev):
                break
            merges += len(merged.gains)
            best, best_ev = fits[pick], evs[pick]
            best.growth = fits[0].growth
        return best_ev, best, merges

    def fit(self, X, y=None) -> "CLAMCRP":
        x = self._data(X)
        if self.covariance == "diag" and self.update != "online":
            raise ParameterError("update", self.update, "must be 'online' when covariance='diag' (the collapsed pass)")
        self.prior_mean_ = x.mean(0)
        spread = float(x.var(0).mean()) if x.shape[0] > 1 else 1.0
        self.prior_variance_ = float(self.prior_variance) if self.prior_variance is not None else max(spread, 1e-12)
        self.log_alpha_ = float(self.log_alpha) if self.log_alpha is not None else math.log(self.alpha)
        self._sq_norm = ((x - self.prior_mean_) ** 2).sum(-1)
        order = self._order(x.shape[0])
        tried: dict[float, tuple[float, Fit, int]] = {}

        def attempt(g: float) -> float:
            self._set_variance(g * self.prior_variance_ if self.variance is None else self.variance)
            tried[g] = self._fit_at(x, order)
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
        self.log_evidence_, fit, self.n_merges_ = tried[g_best]
        self.variance_evidence_ = (
            None if self.variance is not None else
            [(g * self.prior_variance_, tried[g][0], int(tried[g][1].counts.size)) for g in sorted(tried, reverse=True)]
        )
        self._store(fit, order)
        self._stats = statistics(x, fit.labels, fit.counts.size)
        self.variances_ = (normal_gamma_variance(*self._stats, self._prior) if self.covariance == "diag"
                           else np.full(fit.locations.shape, self.variance_))
        return self

    # queries --------------------------------------------------------------------------------------------------------
    def _fitted_tensors(self, X):
        x = self._as_tensor(X, fitting=False)
        m0 = torch.as_tensor(self.prior_mean_, dtype=x.dtype, device=x.device)
        mem = torch.as_tensor(self.memories_, dtype=x.dtype, device=x.device)
        cnt = torch.as_tensor(self.counts_, dtype=x.dtype, device=x.device)
        return x - m0, mem - m0, cnt

    def log_joint(self, X) -> torch.Tensor:
        """The K + 1 log weights (:func:`crp_log_weights`) of each point under the fitted memory, "new" last.

        Softmax of a row is the posterior over the memories and a new one, as if the point arrived next.
        →  (n, K + 1) float64 tensor. Used in chapter 4, § The memory: ELBO dynamics over K + 1 memories.
        """
        return self._log_joint(X, self.normaliser)

    def _log_joint(self, X, normaliser: bool) -> torch.Tensor:
        v, mem, cnt = self._fitted_tensors(X)
        if self.covariance == "diag":
            x = (v + torch.as_tensor(self.prior_mean_, dtype=v.dtype, device=v.device)).cpu().numpy()
            return torch.from_numpy(collapsed_log_joint(x, self._stats, self._prior, log_alpha=self.log_alpha_,
                                                        discount=self.discount)).to(v.device)
        return crp_log_weights(
            v, mem, cnt, alpha=self.alpha, discount=self.discount, beta=1 / (2 * self.variance_),
            prior_precision=1 / (2 * self.prior_variance_), normaliser=normaliser, log_alpha=self.log_alpha_,
        )

    def score_samples(self, X) -> np.ndarray:
        """log p(x ∣ the training points), the fitted CRP mixture's predictive density at each point  →  (n,).

        Σ_k (n_k − d)/(α + n) p(x ∣ memory k) + (α + dK)/(α + n) p(x ∣ a new memory), with the normaliser always kept
        (the predictive, whatever ``normaliser`` says) and the memory's own p(x ∣ k) (Gaussian with the memory at its
        posterior mean for "spherical", Student t for "diag"). Used to choose α and σ² by held-out likelihood
        (chapter 4, § Why it over-splits, and what stops it).
        """
        a = self._log_joint(X, True)
        if self.covariance == "spherical":
            a = a - 0.5 * self.n_features_in_ * math.log(2 * math.pi * self.variance_)
        log_total = float(np.logaddexp(self.log_alpha_, math.log(self.counts_.sum())))
        return (torch.logsumexp(a, -1) - log_total).cpu().numpy()

    def energy(self, X) -> np.ndarray:
        """The fitted memory's CRP energy E(x) (:func:`~ambridge.memories.crp.crp_energy`) at each point  →  (n,)."""
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
