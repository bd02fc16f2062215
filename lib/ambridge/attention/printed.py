"""The RMSNorm panel of the workshop poster, read literally, held against the exact attention weights.

The poster (panel "Understanding Pre-Normalization + Self-Attention in Transformers") defines q_i = W_Q RMSNorm(x_i),
k_j = W_K RMSNorm(x_j) and prints

    exp(q_i · k_j) = exp( ‖k_j‖₂ · (k_j/‖k_j‖₂) · (q_i/‖q_i‖₂) ) · exp(‖q_i‖₂),

calling ‖k_j‖ = κ_j, k_j/‖k_j‖ = m_j and the last factor "= π_j (Constant over j)". A factor constant over j cancels
in the softmax, so the printed form says the attention weights are softmax_j(‖k_j‖ m_jᵀq̂_i): the query's length
drops out. Exactly, q_iᵀk_j = ‖q_i‖ ‖k_j‖ m_jᵀq̂_i, so the weights are softmax_j(‖q_i‖ ‖k_j‖ m_jᵀq̂_i)
(:func:`~ambridge.attention.estep.rmsnorm_attention_vmf`): the query's length is an inverse temperature, and the
two agree only when ‖q_i‖ = 1. RMSNorm puts x/RMS(x) on the sphere of radius √D, not 1.

- :func:`printed_rmsnorm_weights` — the weights the printed factorisation implies;
- :func:`total_variation` — the distance between two rows of attention weights;
- :func:`printed_form_error` — how far the printed weights are from the exact ones as the query length grows.

Shapes: queries ``(T, D)``, keys ``(S, D)``, weights ``(T, S)``. Used in chapter 6, § RMSNorm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import checks
from .vmf import normalise

__all__ = ["printed_rmsnorm_weights", "total_variation", "PrintedFormError", "printed_form_error"]


def printed_rmsnorm_weights(queries: torch.Tensor, keys: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """softmax_j(scale · ‖k_j‖ m_jᵀq̂_i): the attention weights the poster's RMSNorm factorisation implies, its factor
    exp(‖q_i‖) cancelled as "constant over j". ``scale`` is the logit scale of the head (1/√d_h in a transformer;
    the poster writes none — fold it into the keys). Equal to the true weights softmax_j(scale · q_iᵀk_j) exactly
    when every ‖q_i‖ = 1. ``queries``: (T, D); ``keys``: (S, D) → (T, S).

    Used in chapter 6, § RMSNorm."""
    q = checks.patterns("queries", queries)
    k = checks.patterns("keys", keys, dim=q.shape[1])
    checks.positive("scale", scale)
    return torch.softmax(scale * normalise(q) @ k.T, dim=-1)  # ‖k_j‖ m_jᵀq̂_i = k_jᵀq̂_i


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """½ Σ_j abs(p_j − q_j) along the last axis: the total-variation distance between two discrete laws (rows of
    attention weights), in [0, 1]. ``p``, ``q``: (..., S) → (...).

    Used in chapter 6, § RMSNorm."""
    p, q = torch.as_tensor(p), torch.as_tensor(q)
    if p.shape != q.shape:
        raise checks.ParameterError("q", q, f"must have the shape of p, {tuple(p.shape)}", shown=f"shape {tuple(q.shape)}")
    return 0.5 * (p - q).abs().sum(-1)


@dataclass
class PrintedFormError:
    """How far the printed RMSNorm weights are from the true ones, per query length (all arrays (R,)):
    ``query_norm`` ‖q‖; ``tv_mean``, ``tv_max``: mean and largest total variation over the query directions;
    ``abs_max``: the largest abs(printed − true) of any single weight.

    Used in chapter 6, § RMSNorm."""

    query_norm: np.ndarray
    tv_mean: np.ndarray
    tv_max: np.ndarray
    abs_max: np.ndarray


def printed_form_error(directions: torch.Tensor, keys: torch.Tensor, query_norms, *, scale: float = 1.0
                       ) -> PrintedFormError:
    """For each length r in ``query_norms``, queries q_i = r·u_i (``directions`` u_i, (T, D), normalised here) against
    ``keys`` (S, D): the true weights softmax_j(scale · q_iᵀk_j) beside :func:`printed_rmsnorm_weights`, summarised
    by :class:`PrintedFormError`. The printed weights do not depend on r; the true ones sharpen with it.

    Used in chapter 6, § RMSNorm."""
    u = normalise(checks.patterns("directions", directions))
    k = checks.patterns("keys", keys, dim=u.shape[1])
    norms = np.asarray(query_norms, dtype=float).reshape(-1)
    if norms.size == 0 or not np.all(norms > 0):
        raise checks.ParameterError("query_norms", query_norms, "must be a non-empty list of positive lengths")
    printed = printed_rmsnorm_weights(u, k, scale=scale)
    tv_mean, tv_max, abs_max = [], [], []
    for r in norms:
        exact = torch.softmax(scale * (r * u) @ k.T, dim=-1)
        tv = total_variation(printed, exact)
        tv_mean.append(tv.mean().item())
        tv_max.append(tv.max().item())
        abs_max.append((printed - exact).abs().max().item())
    return PrintedFormError(norms, np.array(tv_mean), np.array(tv_max), np.array(abs_max))
