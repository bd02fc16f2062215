"""The evidence of one memory's points, from their sufficient statistics: the memory (and its variance) integrated out.

A memory holding n points is summarised by (n, s, t) = (n, Σ x_i, Σ x_i²) per coordinate. Two models of a memory:

- **isotropic, shared σ²** (CLAM+CRP's default): x_i = μ + ε_i, ε_i ~ N(0, σ² I), μ ~ N(m₀, σ₀² I). This is
  :func:`ambridge.memories.crp.cluster_log_marginal` written on the statistics, so that all pairs of memories can be
  scored for a merge at once (:func:`isotropic_log_marginal`).
- **diagonal, its own variance per memory and coordinate** (``CLAMCRP(covariance="diag")``): per coordinate a
  Normal–Gamma prior, precision τ ~ Gamma(a₀, rate b₀) and μ ∣ τ ~ N(m₀, 1/(κ₀τ)). Integrating μ and τ out
  (Murphy 2007, "Conjugate Bayesian analysis of the Gaussian distribution", §3):

      log p(x_1..n) = Σ_d [ log Γ(a_n) − log Γ(a₀) + a₀ log b₀ − a_n log b_n + ½ log(κ₀/κ_n) − (n/2) log 2π ],
      κ_n = κ₀ + n,  a_n = a₀ + n/2,  b_n = b₀ + ½ Σ(x − x̄)² + κ₀ n (x̄ − m₀)² / (2κ_n)

  (:func:`normal_gamma_log_marginal`). The predictive of one more point is the ratio of two marginals, a product of
  Student t densities with 2a_n degrees of freedom, location m_n = (κ₀m₀ + s)/κ_n and squared scale
  b_n(κ_n + 1)/(a_n κ_n) (:func:`normal_gamma_log_predictive`). The posterior mean of a memory's variance per
  coordinate is b_n/(a_n − 1) (:func:`normal_gamma_variance`).

Used in chapter 4, § Why it over-splits, and what stops it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from ..checks import check_number

__all__ = [
    "NormalGamma",
    "isotropic_log_marginal",
    "normal_gamma_log_marginal",
    "normal_gamma_log_predictive",
    "normal_gamma_variance",
    "statistics",
]


def statistics(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_k, Σ x, Σ x²) of each of ``k`` memories: ``x`` (n, D), ``labels`` (n,) in 0…k−1  →  (k,), (k, D), (k, D).

    Used by :func:`ambridge.memories.merge.greedy_merge` and CLAM+CRP (chapter 4, § Why it over-splits, and what stops it).
    """
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros((k, x.shape[1]))
    sumsq = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    np.add.at(sumsq, labels, x * x)
    return counts, sums, sumsq


def isotropic_log_marginal(counts, sums, sumsq, *, variance: float, prior_variance: float, prior_mean) -> np.ndarray:
    """log p(points of a memory ∣ σ²) for the isotropic memory, from (n, Σx, Σx²): ``counts`` (...), ``sums`` and
    ``sumsq`` (..., D), n ≥ 1  →  (...). Equals :func:`ambridge.memories.crp.cluster_log_marginal` of the points.

    Used by CLAM+CRP's merge step (chapter 4, § Why it over-splits, and what stops it).
    """
    n = np.asarray(counts, dtype=np.float64)
    sums, sumsq = np.asarray(sums, dtype=np.float64), np.asarray(sumsq, dtype=np.float64)
    d = sums.shape[-1]
    mean = sums / n[..., None]
    scatter = sumsq.sum(-1) - (sums * mean).sum(-1)
    offset = ((mean - np.asarray(prior_mean, dtype=np.float64)) ** 2).sum(-1)
    return (-0.5 * n * d * math.log(2 * math.pi * variance) - 0.5 * d * np.log1p(n * prior_variance / variance)
            - scatter / (2 * variance) - n * offset / (2 * (variance + n * prior_variance)))


@dataclass(frozen=True)
class NormalGamma:
    """The Normal–Gamma prior of a diagonal memory, per coordinate: τ ~ Gamma(``shape`` a₀, rate ``rate`` b₀),
    μ ∣ τ ~ N(``mean`` m₀, 1/(``kappa`` κ₀ τ)); ``mean`` (D,). Used by ``CLAMCRP(covariance="diag")`` (chapter 4,
    § Why it over-splits, and what stops it)."""

    mean: np.ndarray
    kappa: float
    shape: float
    rate: float

    def __post_init__(self):
        check_number("kappa", self.kappa, low=0, low_open=True)
        check_number("shape", self.shape, low=0, low_open=True)
        check_number("rate", self.rate, low=0, low_open=True)

    def posterior(self, counts, sums, sumsq):
        """(κ_n, a_n, b_n, m_n) from the statistics: (...), (...), (..., D), (..., D); n = 0 gives the prior."""
        n = np.asarray(counts, dtype=np.float64)[..., None]
        sums, sumsq = np.asarray(sums, dtype=np.float64), np.asarray(sumsq, dtype=np.float64)
        kappa_n = self.kappa + n
        mean = np.divide(sums, n, out=np.zeros_like(sums), where=n > 0)
        scatter = np.maximum(sumsq - sums * mean, 0.0)  # Σ(x − x̄)², clamped against rounding
        rate_n = self.rate + 0.5 * scatter + self.kappa * n * (mean - self.mean) ** 2 / (2 * kappa_n)
        return kappa_n, self.shape + 0.5 * n, rate_n, (self.kappa * self.mean + sums) / kappa_n


def normal_gamma_log_marginal(counts, sums, sumsq, prior: NormalGamma) -> np.ndarray:
    """log p(points of a memory) with its mean and diagonal variance integrated out under ``prior``: statistics
    (...), (..., D), (..., D)  →  (...) (0 for an empty memory). Used by ``CLAMCRP(covariance="diag")`` (chapter 4,
    § Why it over-splits, and what stops it)."""
    kappa_n, shape_n, rate_n, _ = prior.posterior(counts, sums, sumsq)
    n = np.asarray(counts, dtype=np.float64)[..., None]
    per_coord = (gammaln(shape_n) - gammaln(prior.shape) + prior.shape * math.log(prior.rate) - shape_n * np.log(rate_n)
                 + 0.5 * np.log(prior.kappa / kappa_n) - 0.5 * n * math.log(2 * math.pi))
    return per_coord.sum(-1)


def normal_gamma_log_predictive(x, counts, sums, sumsq, prior: NormalGamma) -> np.ndarray:
    """log p(x ∣ a memory's points): the product over coordinates of Student t densities (module docstring).
    ``x`` (..., D) against K memories' statistics (K,), (K, D), (K, D)  →  (..., K).

    Used by ``CLAMCRP(covariance="diag")``'s queries (chapter 4, § Why it over-splits, and what stops it).
    """
    kappa_n, shape_n, rate_n, mean_n = prior.posterior(counts, sums, sumsq)
    dof = 2 * shape_n  # (K, 1)
    scale2 = rate_n * (kappa_n + 1) / (shape_n * kappa_n)  # (K, D)
    z2 = (np.asarray(x, dtype=np.float64)[..., None, :] - mean_n) ** 2 / scale2  # (..., K, D)
    log_t = (gammaln((dof + 1) / 2) - gammaln(dof / 2) - 0.5 * np.log(dof * math.pi * scale2)
             - (dof + 1) / 2 * np.log1p(z2 / dof))
    return log_t.sum(-1)


def normal_gamma_variance(counts, sums, sumsq, prior: NormalGamma) -> np.ndarray:
    """The posterior mean of each memory's variance per coordinate, E[1/τ] = b_n/(a_n − 1)  →  (..., D).
    Needs a_n > 1. Used by ``CLAMCRP(covariance="diag")`` for ``variances_`` (chapter 4, § Why it over-splits, and
    what stops it)."""
    _, shape_n, rate_n, _ = prior.posterior(counts, sums, sumsq)
    if (shape_n <= 1).any():
        raise ValueError("the posterior mean of the variance needs a_n = a0 + n/2 > 1 for every memory")
    return rate_n / (shape_n - 1)
