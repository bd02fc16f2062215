"""Special functions of the sphere, shared by the vMF (chapter 6) and KDE-capacity (chapter 5) modules.

- :func:`log_bessel_iv` — log I_ν(x) without overflow or underflow (``scipy.special.ive`` where it has digits,
  the power series for small x, Debye's uniform expansion for large ν);
- :func:`log_vmf_normaliser` — log C_p(κ), the von Mises–Fisher normaliser on S^{p−1} ⊂ ℝ^p, differentiable in κ;
- :func:`vmf_mean_resultant_length` — A_p(κ) = I_{p/2}(κ)/I_{p/2−1}(κ), the mean cosine E[mᵀx] under vMF(m, κ);
- :func:`log_mean_exp_cosine` — log E[exp(κu)] for the cosine u between two independent uniform points of S^{p−1}
  (the KDE's cross-talk; equal to −log C_p(κ) − log|S^{p−1}|).

Used in chapter 5, § The typical-pattern theory, and chapter 6, § von Mises–Fisher distributions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import gammaln, ive

__all__ = ["log_bessel_iv", "log_vmf_normaliser", "vmf_mean_resultant_length", "log_sphere_area", "check_sphere_dim", "check_kappa",
           "log_mean_exp_cosine"]

_UNDERFLOW = 1e-280  # ive below this has lost its relative precision (or is about to): use an expansion instead


def _log_iv_series(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log I_ν(x) from the power series, for x² ≤ 0.04 (ν + 1): log((x/2)^ν/Γ(ν+1) Σ_k (x²/4)^k/(k!(ν+1)_k))."""
    y = x * x / 4
    term, total = np.ones_like(x), np.ones_like(x)
    for k in range(1, 9):  # ratio of terms ≤ 0.01/k: eight terms reach 1e-20
        term = term * y / (k * (nu + k))
        total = total + term
    with np.errstate(divide="ignore"):
        return nu * np.log(x / 2) - gammaln(nu + 1) + np.log(total)


def _log_iv_debye(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log I_ν(x) from Debye's uniform asymptotic expansion in ν (Abramowitz & Stegun 9.7.7), four correction
    terms: relative error O(ν⁻⁵), used only where ``ive`` underflows, i.e. for ν in the hundreds."""
    z = x / nu
    s = np.sqrt(1 + z * z)
    t = 1 / s
    eta = s + np.log(z / (1 + s))
    t2 = t * t
    u1 = t * (3 - 5 * t2) / 24
    u2 = t2 * (81 - 462 * t2 + 385 * t2**2) / 1152
    u3 = t * t2 * (30375 - 369603 * t2 + 765765 * t2**2 - 425425 * t2**3) / 414720
    u4 = t2 * t2 * (4465125 - 94121676 * t2 + 349922430 * t2**2 - 446185740 * t2**3 + 185910725 * t2**4) / 39813120
    series = 1 + u1 / nu + u2 / nu**2 + u3 / nu**3 + u4 / nu**4
    return nu * eta - 0.5 * np.log(2 * np.pi * nu) - 0.5 * np.log(s) + np.log(series)


def log_bessel_iv(order, x) -> np.ndarray:
    """log I_ν(x), the modified Bessel function of the first kind, for ν ≥ 0 and x ≥ 0, without overflow or underflow.

    ``scipy.special.ive(ν, x) = I_ν(x) e^{−x}`` gives log I_ν = log ive + x for large x; where ``ive`` underflows
    (large ν, small x) the power series (x² ≤ 0.04(ν+1)) or Debye's expansion takes over. log I_ν(0) = 0 for
    ν = 0 and −∞ otherwise. Arrays broadcast; returns float64.
    """
    nu, x = np.broadcast_arrays(np.asarray(order, dtype=np.float64), np.asarray(x, dtype=np.float64))
    if np.any(nu < 0) or np.any(x < 0) or not np.all(np.isfinite(x)):
        raise ValueError("log_bessel_iv needs order ≥ 0 and finite x ≥ 0")
    out = np.empty(nu.shape)
    small = (x * x <= 0.04 * (nu + 1)) & (x > 0)
    with np.errstate(divide="ignore", under="ignore"):
        scaled = ive(nu, x)
        out[...] = np.log(scaled) + x
    out[small] = _log_iv_series(nu[small], x[small])
    tail = ~small & ~(scaled > _UNDERFLOW) & (x > 0)
    out[tail] = _log_iv_debye(nu[tail], x[tail])
    zero = x == 0
    out[zero] = np.where(nu[zero] == 0, 0.0, -np.inf)
    return out


def _log_normaliser_numpy(kappa: np.ndarray, p: int) -> np.ndarray:
    nu = p / 2 - 1
    kappa = np.asarray(kappa, dtype=np.float64)
    out = np.empty(kappa.shape)
    zero = kappa == 0
    out[zero] = -log_sphere_area(p)
    k = kappa[~zero]
    out[~zero] = nu * np.log(k) - (p / 2) * math.log(2 * math.pi) - log_bessel_iv(nu, k)
    return out


def _mean_resultant_numpy(kappa: np.ndarray, p: int) -> np.ndarray:
    """A_p(κ) = I_{p/2}(κ)/I_{p/2−1}(κ) = E[mᵀx] under vMF(m, κ); A_p(0) = 0."""
    kappa = np.asarray(kappa, dtype=np.float64)
    out = np.zeros(kappa.shape)
    pos = kappa > 0
    k = kappa[pos]
    out[pos] = np.exp(log_bessel_iv(p / 2, k) - log_bessel_iv(p / 2 - 1, k))
    return out


def check_sphere_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ValueError(f"`dim` (p, the sphere S^(p-1) lies in R^p) must be an integer >= 2, got {dim!r}")
    return int(dim)


def check_kappa(kappa) -> None:
    k = kappa.detach().cpu().double().numpy() if isinstance(kappa, torch.Tensor) else np.asarray(kappa, dtype=float)
    if not np.all(np.isfinite(k)) or np.any(k < 0):
        raise ValueError("concentrations `kappa` must be finite and >= 0")


class _LogNormaliser(torch.autograd.Function):
    """log C_p(κ) on tensors; d/dκ log C_p(κ) = −A_p(κ) (from I_ν' = I_{ν+1} + (ν/κ) I_ν)."""

    @staticmethod
    def forward(ctx, kappa, p):
        ctx.p = p
        ctx.save_for_backward(kappa)
        value = _log_normaliser_numpy(kappa.detach().cpu().double().numpy(), p)
        return torch.as_tensor(value, dtype=kappa.dtype, device=kappa.device)

    @staticmethod
    def backward(ctx, grad):
        (kappa,) = ctx.saved_tensors
        a = _mean_resultant_numpy(kappa.detach().cpu().double().numpy(), ctx.p)
        return -grad * torch.as_tensor(a, dtype=kappa.dtype, device=kappa.device), None


def log_vmf_normaliser(kappa, dim: int):
    """log C_p(κ) = (p/2 − 1) log κ − (p/2) log 2π − log I_{p/2−1}(κ), the vMF normaliser on S^{p−1} ⊂ ℝ^p.

    ``kappa`` ≥ 0: a number, a NumPy array or a tensor (differentiable; computed in float64 through SciPy and
    returned in the tensor's dtype and device). ``dim`` = p ≥ 2. At κ = 0 it is minus the log of the area of
    S^{p−1} (the uniform law). Stable for κ up to 1e300 and p in the tens of thousands.
    """
    p = check_sphere_dim(dim)
    check_kappa(kappa)
    if isinstance(kappa, torch.Tensor):
        return _LogNormaliser.apply(kappa, p)
    out = _log_normaliser_numpy(np.asarray(kappa, dtype=np.float64), p)
    return float(out) if out.ndim == 0 else out


def vmf_mean_resultant_length(kappa, dim: int):
    """A_p(κ) = I_{p/2}(κ)/I_{p/2−1}(κ) = E[mᵀx] for x ~ vMF(m, κ) on S^{p−1}: 0 at κ = 0, → 1 as κ → ∞."""
    p = check_sphere_dim(dim)
    check_kappa(kappa)
    if isinstance(kappa, torch.Tensor):
        a = _mean_resultant_numpy(kappa.detach().cpu().double().numpy(), p)
        return torch.as_tensor(a, dtype=kappa.dtype, device=kappa.device)
    out = _mean_resultant_numpy(np.asarray(kappa, dtype=np.float64), p)
    return float(out) if out.ndim == 0 else out




def log_sphere_area(dim: int) -> float:
    """log area(S^{p−1}) = log(2 π^{p/2} / Γ(p/2)), the area of the unit sphere in ℝ^p (p = ``dim`` ≥ 2)."""
    p = check_sphere_dim(dim)
    return math.log(2) + (p / 2) * math.log(math.pi) - float(gammaln(p / 2))


def log_mean_exp_cosine(kappa, dim: int):
    """log E[exp(κu)], u the cosine between two independent uniform points of S^{p−1} (numpy, vectorised in κ).

    E[exp(κu)] = Γ(p/2) (2/κ)^{p/2−1} I_{p/2−1}(κ) = 1/(C_p(κ)·area(S^{p−1})): the mean pull one random pattern exerts on
    another in a KDE on the sphere (chapter 5's cross-talk). 0 at κ = 0.
    """
    return -(np.asarray(log_vmf_normaliser(np.asarray(kappa, dtype=np.float64), dim)) + log_sphere_area(dim))
