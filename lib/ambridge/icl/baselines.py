"""What a statistician would fit to the same n points: a Gaussian KDE and EM for a K-component mixture, as densities
that are sampled and scored like the learned energy.

Both fits, and the true mixture itself, are Gaussian mixtures p(x) = Σ_j w_j N(x; m_j, C_j) — the KDE with one
component per point, weight 1/n and the bandwidth matrix C = Scott's factor² × the sample covariance
(``scipy.stats.gaussian_kde``), EM with K full-covariance components (``sklearn.mixture.GaussianMixture``). So one
class, :class:`MixtureDensity`, gives each of them an energy −log p, exact samples (ancestral sampling), and the
mode-seeking descent :meth:`MixtureDensity.descend` that stands in for the model's near-zero-temperature sampler:

    x ← (Σ_j r_j(x) C_j⁻¹)⁻¹ Σ_j r_j(x) C_j⁻¹ m_j,    r_j(x) = p(z = j ∣ x),

the generalised mean-shift step (for the KDE exactly mean shift; for isotropic components the gradient step of size
σ² on −log p). It is a preconditioned gradient step on −log p that lands on the mean of a lone Gaussian in one step
and never increases −log p, so — unlike a fixed step — it is stable for any component width.

Used in chapter 2, § What a statistician would fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import checks

__all__ = ["MixtureDensity", "true_mixture", "fit_kde", "fit_em"]


@dataclass(frozen=True)
class MixtureDensity:
    """A Gaussian mixture with full covariances: ``weights`` (J,), ``means`` (J, D), ``covariances`` (J, D, D),
    float64. Used in chapter 2, § What a statistician would fit."""

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor

    def __post_init__(self):
        j, d = self.means.shape
        if self.weights.shape != (j,) or self.covariances.shape != (j, d, d):
            raise checks.ParameterError("covariances", self.covariances, f"must be (J, D, D) = {(j, d, d)} with "
                                        f"weights (J,)", shown=f"shape {tuple(self.covariances.shape)}")

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log w_j + log N(x; m_j, C_j): (..., D) → (..., J)."""
        chol = torch.linalg.cholesky(self.covariances)  # (J, D, D)
        diff = x.double()[..., None, :] - self.means  # (..., J, D)
        flat = diff.reshape(-1, *self.means.shape).transpose(0, 1)  # (J, P, D)
        z = torch.linalg.solve_triangular(chol, flat.transpose(1, 2), upper=False)  # (J, D, P)
        maha = z.pow(2).sum(1).T.reshape(diff.shape[:-1])  # (..., J)
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        d = self.means.shape[1]
        return self.weights.log() - 0.5 * (maha + logdet + d * math.log(2 * math.pi))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x): (..., D) → (...)."""
        return torch.logsumexp(self._log_joint(x), dim=-1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """−log p(x): (..., D) → (...)."""
        return -self.log_prob(x)

    def mode_step(self, x: torch.Tensor) -> torch.Tensor:
        """One generalised mean-shift step (module docstring): (..., D) → (..., D)."""
        r = torch.softmax(self._log_joint(x), dim=-1)  # (..., J)
        prec = torch.linalg.inv(self.covariances)  # (J, D, D)
        a = torch.einsum("...j,jde->...de", r, prec)
        b = torch.einsum("...j,jde,je->...d", r, prec, self.means)
        return torch.linalg.solve(a, b[..., None])[..., 0]

    def descend(self, init: torch.Tensor, n_steps: int) -> torch.Tensor:
        """``n_steps`` mode steps from ``init`` (..., D): the near-zero-temperature counterpart of the model's
        sampler (same starts, same number of steps)."""
        checks.count("n_steps", n_steps)
        x = init.detach().double()
        for _ in range(n_steps):
            x = self.mode_step(x)
        return x

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """``n`` exact samples (ancestral: a component by its weight, then its Gaussian): → (n, D)."""
        checks.count("n", n, low=1)
        j = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covariances)
        return self.means[j] + torch.einsum("nde,ne->nd", chol[j], z)


def true_mixture(means: torch.Tensor, std: float, weights: torch.Tensor | None = None) -> MixtureDensity:
    """The mixture that made a held-out dataset: ``means`` (K, D), σ = ``std``, equal weights unless given.
    Used in chapter 2, § What a statistician would fit."""
    checks.positive("std", std)
    means = checks.patterns("means", means).double()
    k, d = means.shape
    w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights).double()
    return MixtureDensity(w, means, (std**2 * torch.eye(d, dtype=torch.float64)).expand(k, d, d).clone())


def fit_kde(points: torch.Tensor) -> MixtureDensity:
    """The Gaussian KDE of ``points`` (n, D) with Scott's bandwidth, as ``scipy.stats.gaussian_kde(points.T)`` builds
    it: one component per point, weight 1/n, covariance ``kde.covariance`` = n^(−2/(D+4)) × the sample covariance
    (divisor n − 1). Needs n > D points not on a line. Used in chapter 2, § What a statistician would fit."""
    from scipy.stats import gaussian_kde

    x = checks.patterns("points", points).detach().cpu().double()
    n, d = x.shape
    if n <= d:
        raise checks.ParameterError("points", points, f"a KDE in {d}-D needs more than {d} points",
                                    shown=f"{n} points")
    kde = gaussian_kde(x.numpy().T, bw_method="scott")
    cov = torch.as_tensor(np.atleast_2d(kde.covariance), dtype=torch.float64)
    return MixtureDensity(torch.full((n,), 1.0 / n, dtype=torch.float64), x.clone(), cov.expand(n, d, d).clone())


def fit_em(points: torch.Tensor, n_components: int, *, seed: int = 0) -> MixtureDensity:
    """EM for a ``n_components``-component full-covariance Gaussian mixture with K known:
    ``sklearn.mixture.GaussianMixture(n_components, covariance_type="full", random_state=seed)`` with its defaults
    (k-means initialisation, one start, ``reg_covar`` 1e-6 added to the diagonals). ``points`` (n, D), n ≥ K.
    Used in chapter 2, § What a statistician would fit."""
    from sklearn.mixture import GaussianMixture

    x = checks.patterns("points", points).detach().cpu().double()
    checks.count("n_components", n_components, low=1)
    if x.shape[0] < n_components:
        raise checks.ParameterError("points", points, f"EM with K = {n_components} needs at least K points",
                                    shown=f"{x.shape[0]} points")
    gm = GaussianMixture(n_components, covariance_type="full", random_state=seed).fit(x.numpy())
    return MixtureDensity(torch.as_tensor(gm.weights_, dtype=torch.float64),
                          torch.as_tensor(gm.means_, dtype=torch.float64),
                          torch.as_tensor(gm.covariances_, dtype=torch.float64))
