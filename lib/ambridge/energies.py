"""Energies of associative memories, and the negative log-likelihoods they are.

Every energy takes states of shape ``(..., D)`` and returns one value per state, shape ``(...)``, so a whole grid
or batch of states is evaluated at once. Memories (stored patterns, mixture means, KDE centres) have shape
``(N, D)``. Symbols follow the book: ``beta`` is the inverse temperature β, ``memories`` are the μ_k (or ξ_k),
``bandwidth`` is the KDE's σ and ``variance`` a mixture component's σ².

The bridge in one line: with π_k = 1/K and Σ_k = I/(2β),

    −log p(x) = β · clam_energy(x) + log K + (D/2) log(π/β),

and on a sphere ‖x_n‖ = M the KDE with σ² = 1/β is the modern Hopfield network up to a constant:
σ² · kde_nll(x) = modern_hopfield_energy(x) + (Dσ²/2) log(2πσ²)   (chapter 1 derives both).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from . import checks

__all__ = [
    "hebbian_weights",
    "hopfield_energy",
    "dense_energy",
    "clam_energy",
    "modern_hopfield_energy",
    "squared_distances",
    "squared_distances_by_inner_products",
    "gaussian_mixture_log_joint",
    "gaussian_mixture_nll",
    "mixture_responsibilities",
    "kde_nll",
    "clam_nll_constant",
]


# --- classical and dense associative memories (binary or real states) -----------------------------------------


def hebbian_weights(patterns: torch.Tensor) -> torch.Tensor:
    """Hebbian couplings of the classical Hopfield network (Hopfield 1982).

    W = (1/D) Σ_μ ξ^μ ξ^μᵀ with zero diagonal.  ``patterns``: (N, D) of ±1  →  W: (D, D).
    """
    patterns = checks.patterns("patterns", patterns)
    d = patterns.shape[1]
    weights = patterns.T @ patterns / d
    weights.fill_diagonal_(0.0)
    return weights


def hopfield_energy(state: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Classical Hopfield energy E(s) = −½ sᵀ W s.   ``state``: (..., D), ``weights``: (D, D)  →  (...)."""
    state = checks.points("state", state)
    d = state.shape[-1]
    weights = checks.points("weights", weights)
    if weights.shape != (d, d):
        raise ValueError(f"`weights` must have shape ({d}, {d}) to match the state, got {tuple(weights.shape)}")
    return -0.5 * torch.einsum("...i,ij,...j->...", state, weights, state)


def dense_energy(
    state: torch.Tensor,
    memories: torch.Tensor,
    *,
    interaction: Literal["polynomial", "exponential"] = "polynomial",
    degree: int = 3,
) -> torch.Tensor:
    """Dense associative memory energy E(s) = −Σ_k F(μ_kᵀ s) (Krotov & Hopfield 2016).

    ``interaction="polynomial"``: F(z) = zⁿ with n = ``degree`` (n = 2 is the classical network up to the
    diagonal); ``"exponential"``: F(z) = exp(z), the exponential-capacity model of Demircigil et al. (2017),
    computed as −exp(logsumexp_k μ_kᵀ s) so it does not overflow before it has to.

    ``state``: (..., D); ``memories``: (K, D)  →  (...).
    """
    memories = checks.patterns("memories", memories)
    state = checks.points("state", state, dim=memories.shape[1])
    overlaps = state @ memories.T  # (..., K)
    if interaction == "polynomial":
        return -(overlaps ** checks.count("degree", degree, low=1)).sum(-1)
    if interaction == "exponential":
        return -torch.logsumexp(overlaps, dim=-1).exp()
    raise ValueError(f"`interaction` must be 'polynomial' or 'exponential', got {interaction!r}")


# --- continuous memories: log-sum-exp energies ----------------------------------------------------------------


def squared_distances(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """‖x − c_k‖² for every state and centre, computed from differences (exact, no ‖x‖² − 2xᵀc + ‖c‖² cancellation).

    ``x``: (..., D); ``centres``: (K, D)  →  (..., K).
    """
    centres = checks.patterns("centres", centres)
    x = checks.points("x", x, dim=centres.shape[1])
    return (x.unsqueeze(-2) - centres).pow(2).sum(-1)


def squared_distances_by_inner_products(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """‖x‖² − 2xᵀc_k + ‖c_k‖², clamped at 0: the fast form (one matrix product, memory O(Q·K) for Q states instead of
    O(Q·K·D)), for ranking and for large D. It loses digits when ‖x − c‖ ≪ ‖x‖ (cancellation): where a distance
    near zero matters, use :func:`squared_distances`. ``x``: (..., D); ``centres``: (K, D)  →  (..., K).
    """
    centres = checks.patterns("centres", centres)
    x = checks.points("x", x, dim=centres.shape[1])
    out = x.pow(2).sum(-1, keepdim=True) - 2 * x @ centres.T + centres.pow(2).sum(-1)
    return out.clamp_min(0)


def clam_energy(state: torch.Tensor, memories: torch.Tensor, beta: float) -> torch.Tensor:
    """CLAM energy (Saha et al. 2023): E(v) = −(1/β) log Σ_k exp(−β ‖μ_k − v‖²).

    Its gradient flow τ dv/dt = −½∇E = Σ_k r_k(v) (μ_k − v), r = softmax(−β‖μ − v‖²), never increases E.
    ``state``: (..., D); ``memories``: (K, D); ``beta`` > 0  →  (...).
    """
    checks.positive("beta", beta)
    memories = checks.patterns("memories", memories)
    state = checks.points("state", state, dim=memories.shape[1])
    return -torch.logsumexp(-beta * squared_distances(state, memories), dim=-1) / beta


def modern_hopfield_energy(state: torch.Tensor, memories: torch.Tensor, beta: float) -> torch.Tensor:
    """Modern Hopfield energy (Ramsauer et al. 2021), with the patterns ξ_k as the rows of ``memories``:

        E(ξ) = −lse(β, Xᵀξ) + ½ ξᵀξ + β⁻¹ log N + ½ M²,   lse(β, z) = β⁻¹ log Σ_k exp(β z_k),  M = max_k ‖x_k‖.

    Its update ξ ← Xᵀ softmax(β X ξ) is softmax attention (:func:`ambridge.dynamics.hopfield_update`).
    ``state``: (..., D); ``memories``: (N, D); ``beta`` > 0  →  (...).
    """
    checks.positive("beta", beta)
    memories = checks.patterns("memories", memories)
    state = checks.points("state", state, dim=memories.shape[1])
    n = memories.shape[0]
    big_m = memories.norm(dim=-1).max()
    lse = torch.logsumexp(beta * (state @ memories.T), dim=-1) / beta
    return -lse + 0.5 * state.pow(2).sum(-1) + math.log(n) / beta + 0.5 * big_m**2


# --- probabilistic side: Gaussian mixtures and kernel density estimates -------------------------------------------


def _mixture_terms(x, means, variance, weights):
    """Shared checks for the mixture functions; returns (means, variances (K,), log π (K,))."""
    means = checks.patterns("means", means)
    k = means.shape[0]
    variance = torch.as_tensor(variance, dtype=means.dtype, device=means.device)
    if variance.ndim == 0:
        variance = variance.expand(k)
    if variance.shape != (k,):
        raise ValueError(f"`variance` must be a scalar or have shape ({k},), got {tuple(variance.shape)}")
    checks.positive("variance", variance)
    if weights is None:
        log_weights = torch.full((k,), -math.log(k), dtype=means.dtype, device=means.device)
    else:
        weights = checks.per_pattern("weights", weights, k)
        if bool((weights < 0).any()) or not math.isclose(float(weights.sum()), 1.0, rel_tol=1e-5, abs_tol=1e-5):
            raise ValueError("`weights` must be non-negative and sum to 1")
        log_weights = weights.to(means.dtype).log()
    return means, variance, log_weights


def gaussian_mixture_log_joint(x, means, variance, weights=None) -> torch.Tensor:
    """log p(x, z = k) = log π_k + log N(x; μ_k, σ_k² I) for an isotropic Gaussian mixture.

    ``x``: (..., D); ``means``: (K, D); ``variance``: σ² scalar or (K,); ``weights``: π (K,) or None (uniform)
    →  (..., K).
    """
    means, variance, log_weights = _mixture_terms(x, means, variance, weights)
    d = means.shape[1]
    sq = squared_distances(x, means)
    return log_weights - 0.5 * sq / variance - 0.5 * d * torch.log(2 * math.pi * variance)


def gaussian_mixture_nll(x, means, variance, weights=None) -> torch.Tensor:
    """−log p(x) of an isotropic Gaussian mixture Σ_k π_k N(x; μ_k, σ_k² I).   →  (...)."""
    return -torch.logsumexp(gaussian_mixture_log_joint(x, means, variance, weights), dim=-1)


def mixture_responsibilities(x, means, variance, weights=None) -> torch.Tensor:
    """Posterior p(z = k ∣ x) — the softmax weights an associative memory puts on its memories.   →  (..., K)."""
    return torch.softmax(gaussian_mixture_log_joint(x, means, variance, weights), dim=-1)


def kde_nll(x: torch.Tensor, data: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """−log p̂(x) of the Gaussian kernel density estimate p̂(x) = (1/N) Σ_n N(x; x_n, σ² I), σ = ``bandwidth``.

    Equals −log Σ_n exp(−‖x − x_n‖²/(2σ²)) + log N + (D/2) log(2πσ²).  ``x``: (..., D); ``data``: (N, D)  →  (...).
    """
    checks.positive("bandwidth", bandwidth)
    if isinstance(bandwidth, torch.Tensor) and bandwidth.ndim > 0:
        raise ValueError(f"`bandwidth` must be a scalar, got shape {tuple(bandwidth.shape)}")
    data = checks.patterns("data", data)
    x = checks.points("x", x, dim=data.shape[1])
    return gaussian_mixture_nll(x, data, bandwidth**2)


def clam_nll_constant(n_memories: int, dim: int, beta: float) -> float:
    """The constant C in −log p(x) = β·E_CLAM(x) + C for the mixture with π_k = 1/K, Σ = I/(2β):
    C = log K + (D/2) log(π/β)."""
    checks.positive("beta", beta)
    checks.count("n_memories", n_memories, low=1), checks.count("dim", dim, low=1)
    return math.log(n_memories) + 0.5 * dim * math.log(math.pi / beta)
