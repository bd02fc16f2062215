"""The von Mises–Fisher (vMF) distribution on the unit sphere S^{p−1} ⊂ ℝ^p, and the E-step of a vMF mixture.

    p(x; m, κ) = C_p(κ) exp(κ mᵀx),   C_p(κ) = κ^{p/2−1} / ((2π)^{p/2} I_{p/2−1}(κ)),

with the normaliser from :mod:`ambridge.special` (finite for large κ *and* large p, where SciPy's is not).

- :func:`vmf_log_density` — log p(x; m, κ);
- :func:`vmf_cosine_density` — the density of the cosine t = mᵀx (what integrating over the sphere reduces to);
- :func:`scipy_log_vmf_normaliser` — SciPy's own log C_p(κ), kept to show where it fails;
- :func:`sample_vmf` — draws through ``scipy.stats.vonmises_fisher``, rotated to each mean direction;
- :func:`vmf_responsibilities` — the E-step r_k(x) of a vMF mixture;
- :func:`normalise` — the projection x ↦ x/‖x‖ onto the unit sphere, the one copy the subpackage uses.

Used in chapter 6, § The von Mises–Fisher distribution.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .. import checks
from ..data import sphere_points
from ..special import check_kappa, check_sphere_dim, log_sphere_area, log_vmf_normaliser

__all__ = [
    "normalise",
    "vmf_log_density",
    "vmf_cosine_density",
    "scipy_log_vmf_normaliser",
    "sample_vmf",
    "vmf_responsibilities",
]


def normalise(x: torch.Tensor) -> torch.Tensor:
    """x/‖x‖ along the last axis: project points (..., D) onto the unit sphere (no guard against x = 0).

    Used in chapter 6, § What repeated normalised attention does to tokens, and § RMSNorm."""
    return x / x.norm(dim=-1, keepdim=True)


def vmf_log_density(x: torch.Tensor, mean_direction: torch.Tensor, kappa) -> torch.Tensor:
    """log p(x; m, κ) = log C_p(κ) + κ mᵀx for unit vectors ``x`` (..., p), ``mean_direction`` (p,) or (..., p),
    ``kappa`` a number or a tensor broadcastable to (...).

    Used in chapter 6, § The von Mises–Fisher distribution."""
    x = checks.points("x", x)
    m = checks.points("mean_direction", mean_direction, dim=x.shape[-1])
    kappa = torch.as_tensor(kappa, dtype=x.dtype, device=x.device)
    return log_vmf_normaliser(kappa, x.shape[-1]) + kappa * (x * m).sum(-1)


def vmf_cosine_density(t, kappa: float, dim: int):
    """The density of the cosine t = mᵀx for x ~ vMF(m, κ) on S^{p−1}, t ∈ [−1, 1] (numpy, vectorised in t):

        f(t) = area(S^{p−2}) C_p(κ) e^{κt} (1 − t²)^{(p−3)/2},

    the vMF density integrated over each slice {x : mᵀx = t} (a sphere S^{p−2} of radius √(1 − t²)). Its integral
    over [−1, 1] is 1 exactly when C_p(κ) is right — the chapter's quadrature check of the normaliser. ``dim`` = p ≥ 2.

    Used in chapter 6, § The von Mises–Fisher distribution.
    """
    p = check_sphere_dim(dim)
    check_kappa(kappa)
    log_slice = math.log(2) if p == 2 else log_sphere_area(p - 1)  # |S^{p−2}|; S^0 is two points
    log_c = log_vmf_normaliser(float(kappa), p) + log_slice
    t = np.asarray(t, dtype=np.float64)
    return np.exp(log_c + kappa * t) * (1 - t * t) ** ((p - 3) / 2)


def scipy_log_vmf_normaliser(kappa, dim: int) -> np.ndarray:
    """SciPy's log C_p(κ), read off ``scipy.stats.vonmises_fisher(e₁, κ).logpdf(e₁) − κ`` for each κ — with its
    failures kept: where SciPy's Bessel function under- or overflows the value is not finite (no warning shown).
    A reference for :func:`ambridge.special.log_vmf_normaliser`, which stays finite there. → float64 array.

    Used in chapter 6, § The von Mises–Fisher distribution.
    """
    from scipy.stats import vonmises_fisher

    p = check_sphere_dim(dim)
    kappa = np.atleast_1d(np.asarray(kappa, dtype=np.float64))
    check_kappa(kappa)
    north = np.eye(p)[0]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return np.array([vonmises_fisher(north, k).logpdf(north) - k for k in kappa])


def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    seed = torch.randint(0, 2**62, (1,), generator=generator).item()
    return np.random.default_rng(seed)


def sample_vmf(
    mean_directions: torch.Tensor, kappa, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One draw from vMF(m_n, κ_n) for every row: ``mean_directions`` (N, p) unit, ``kappa`` a number or (N,) → (N, p).

    The draws come from ``scipy.stats.vonmises_fisher`` (Wood's algorithm), one SciPy call per *distinct* κ at the
    north pole e₁, then each draw is carried to its own mean direction by the Householder reflection that swaps e₁
    and m_n (an orthogonal map sending e₁ to m_n carries vMF(e₁, κ) to vMF(m_n, κ)). So a batch whose κ take a few
    values costs a few SciPy calls. κ = 0 gives the uniform law (drawn by :func:`ambridge.data.sphere_points`).
    The NumPy seed is drawn from ``generator`` first.

    Used in chapter 6, § The von Mises–Fisher distribution, and by :func:`vmf_retrieval_batch`.
    """
    from scipy.stats import vonmises_fisher

    m = checks.patterns("mean_directions", mean_directions)
    n, p = m.shape
    check_sphere_dim(p)
    k = torch.as_tensor(kappa, dtype=torch.float64).cpu()
    k = k.expand(n) if k.ndim == 0 else k
    if k.shape != (n,):
        raise checks.ParameterError("kappa", kappa, f"must be a number or have shape ({n},)",
                                    shown=f"shape {tuple(k.shape)}")
    check_kappa(k)
    rng = _numpy_rng(generator)
    kn = k.numpy()
    draws = np.empty((n, p))
    north = np.zeros(p)
    north[0] = 1.0
    for value in np.unique(kn):
        rows = np.flatnonzero(kn == value)
        if value == 0:
            draws[rows] = sphere_points(len(rows), p, generator=generator, dtype=torch.float64).cpu().numpy()
        else:
            draws[rows] = vonmises_fisher(north, value).rvs(len(rows), random_state=rng).reshape(len(rows), p)
    mm = m.detach().cpu().double().numpy()
    mm = mm / np.linalg.norm(mm, axis=1, keepdims=True)
    v = north - mm  # Householder H = I − 2vvᵀ/‖v‖² maps e₁ to m
    vv = (v * v).sum(1, keepdims=True)
    safe = vv[:, 0] > 1e-30  # m = e₁: identity
    proj = (draws * v).sum(1, keepdims=True)
    draws[safe] = draws[safe] - 2 * v[safe] * proj[safe] / vv[safe]
    return torch.as_tensor(draws, dtype=m.dtype, device=m.device)


def vmf_responsibilities(
    x: torch.Tensor,
    directions: torch.Tensor,
    kappa,
    log_weights=None,
    *,
    dim: int | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The E-step of a vMF mixture: r_k(x) = π_k C_p(κ_k) e^{κ_k m_kᵀx} / Σ_j π_j C_p(κ_j) e^{κ_j m_jᵀx}.

    ``x``: unit points (..., Q, D) (or (D,)); ``directions``: unit m_k, (K, D) or batched (..., K, D);
    ``kappa``: κ broadcastable to (..., Q, K) (a concentration per component, or per query and component);
    ``log_weights``: log π (unnormalised is fine), broadcastable likewise, or None (uniform); ``dim``: p, the
    dimension of the space the sphere spans (default D; it is D − 1 for LayerNorm'd vectors, which live in the
    hyperplane ⊥ 1); ``mask``: bool, True where a component is allowed.  →  (..., Q, K).

    Used in chapter 6, § Pre-norm attention is a vMF E-step, and for the Bayes posterior of the retrieval task.
    """
    x = checks.points("x", x)
    directions = checks.points("directions", directions, dim=x.shape[-1], min_ndim=2)
    p = check_sphere_dim(x.shape[-1] if dim is None else dim)
    cos = x @ directions.transpose(-1, -2)
    kappa = torch.as_tensor(kappa, dtype=x.dtype, device=x.device)
    kappa = kappa.expand(torch.broadcast_shapes(kappa.shape, cos.shape))
    logits = log_vmf_normaliser(kappa, p) + kappa * cos
    if log_weights is not None:
        logits = logits + torch.as_tensor(log_weights, dtype=x.dtype, device=x.device)
    if mask is not None:
        logits = logits.masked_fill(~mask, -math.inf)
    return torch.softmax(logits, dim=-1)
