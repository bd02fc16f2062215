"""Pre-norm attention read as the E-step of a von Mises–Fisher mixture.

:func:`layernorm_attention_vmf` and :func:`rmsnorm_attention_vmf` take what an attention layer sees — the raw
tokens, the keys, the norm's gain γ and shift δ, and optionally the query projection W_q, b_q — and return the
mixture they implement (:class:`VMFAttention`): the unit query u_t, the mean directions m_s, the concentrations
κ_ts, the log mixing weights log π̃_s, and the responsibilities, computed from the vMF formula (not from the
attention logits, so comparing them with the attention weights is a real check). :func:`encoder_layer_vmf_view`
reads a head of PyTorch's own pre-LN encoder layer; :func:`additive_concentration_fit` tests an additive reading of
the RMSNorm concentration — the book's own straw man (no additive concentration is printed in the paper's material;
the poster's printed form is in :mod:`ambridge.attention.printed`).

Shapes: tokens ``(..., T, D)``, keys ``(..., S, D)``; concentrations and responsibilities ``(..., T, S)``.
Used in chapter 6, § Pre-norm attention is a vMF E-step, § Inside a trained transformer, and the exercise
"An additive concentration?".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .. import checks
from ..special import log_vmf_normaliser
from .vmf import normalise, vmf_responsibilities

__all__ = [
    "VMFAttention",
    "layernorm_attention_vmf",
    "rmsnorm_attention_vmf",
    "additive_concentration_fit",
    "encoder_layer_vmf_view",
]


@dataclass
class VMFAttention:
    """The vMF mixture that one pre-norm attention head computes the E-step of.

    ``query_directions`` u_t (..., T, D'): unit queries; ``directions`` m_s (..., S, D'): unit mean directions;
    ``kappa`` κ_ts (..., T, S); ``log_prior`` log π̃_s (..., S) or (..., T, S) (unnormalised); ``dim`` p, the
    dimension of the space the sphere spans (D − 1 for LayerNorm, D' for RMSNorm in head space);
    ``responsibilities`` r_ts (..., T, S), computed from the mixture (see :func:`vmf_responsibilities`).

    The attention weights equal r_ts = π̃_s e^{κ_ts m_sᵀu_t} / Σ_j π̃_j e^{κ_tj m_jᵀu_t}: a mixture of
    *unnormalised* vMF kernels, i.e. of vMF densities with mixing weights π_s ∝ π̃_s / C_p(κ_s)
    (:meth:`mixing_log_weights`).

    Used in chapter 6, § LayerNorm, § RMSNorm and § Inside a trained transformer.
    """

    query_directions: torch.Tensor
    directions: torch.Tensor
    kappa: torch.Tensor
    log_prior: torch.Tensor
    dim: int
    responsibilities: torch.Tensor = field(repr=False)

    def mixing_log_weights(self) -> torch.Tensor:
        """log π_ts = log π̃_s − log C_p(κ_ts), normalised over the keys: the weights of the proper vMF mixture.
        (Query-independent when κ is: LayerNorm with ε = 0.)"""
        raw = self.log_prior.unsqueeze(-2) if self.log_prior.ndim < self.kappa.ndim else self.log_prior
        raw = raw - log_vmf_normaliser(self.kappa, self.dim)
        return raw - torch.logsumexp(raw.masked_fill(self.responsibilities == 0, -math.inf), dim=-1, keepdim=True)


def _gain(name, value, d, like):
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim not in (0, 1) or (t.ndim == 1 and t.shape[0] != d):
        raise checks.ParameterError(name, value, f"must be a number or a vector of shape ({d},)",
                                    shown=f"shape {tuple(t.shape)}")
    return t


def _project_query(keys, query_weight, query_bias):
    """Effective keys a_s = W_qᵀ k_s in the norm's output space, and the bias term k_sᵀ b_q."""
    if query_weight is None:
        if query_bias is not None:
            raise checks.ParameterError("query_bias", query_bias, "needs `query_weight`", shown="a bias")
        return keys, None
    w = checks.points("query_weight", query_weight, dim=None, min_ndim=2)
    if w.shape[-2] != keys.shape[-1]:
        raise checks.ParameterError("query_weight", w, f"must have shape ({keys.shape[-1]}, D)",
                                    shown=f"shape {tuple(w.shape)}")
    bias = None if query_bias is None else keys @ torch.as_tensor(query_bias, dtype=keys.dtype)
    return keys @ w, bias


def layernorm_attention_vmf(
    x: torch.Tensor,
    keys: torch.Tensor,
    gamma,
    delta,
    *,
    eps: float = 0.0,
    scale: float = 1.0,
    query_weight: torch.Tensor | None = None,
    query_bias: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> VMFAttention:
    """Read the logits s_ts = scale · k_sᵀ (W_q LN(x_t) + b_q) of a pre-LayerNorm attention head as a vMF E-step.

    LN(x) = γ ⊙ x̃ + δ with x̃ = (x − mean x)/√(var x + ε). x̃ has mean zero and ‖x̃‖ = ρ = √(D var/(var + ε))
    (= √D exactly when ε = 0): it lives on a sphere of radius ρ inside the hyperplane ⊥ 1, a copy of S^{D−2} — so
    p = D − 1. With the effective key a_s = W_qᵀ k_s (a_s = k_s without a projection) and P = I − 11ᵀ/D,

        s_ts = scale · (γ⊙a_s)ᵀ x̃_t + scale · a_sᵀδ + scale · k_sᵀb_q
             = κ_ts m_sᵀu_t + log π̃_s,

    u_t = x̃_t/ρ_t,  m_s = P(γ⊙a_s)/‖P(γ⊙a_s)‖,  κ_ts = scale · ρ_t ‖P(γ⊙a_s)‖,  log π̃_s = scale · k_sᵀ(W_qδ + b_q).

    For a scalar γ and keys with zero mean this is κ_s = scale · γ √D ‖k_s‖ on the unit sphere — the paper's
    γ‖k_s‖ measured on the sphere of radius √D where x̃ actually lives.

    ``x``: (..., T, D) tokens before the norm; ``keys``: (..., S, D) (or (..., S, D_h) with ``query_weight``
    (D_h, D) and ``query_bias`` (D_h,)); ``gamma``, ``delta``: numbers or (D,); ``mask``: bool (..., T, S).

    Used in chapter 6, § LayerNorm (under § Pre-norm attention is a vMF E-step), and by
    :meth:`NormAttention.vmf_view` in § Inside a trained transformer.
    """
    x = checks.points("x", x, min_ndim=2)
    keys = checks.points("keys", keys, min_ndim=2)
    d = x.shape[-1]
    if d < 3:
        raise checks.ParameterError("x", x, "LayerNorm'd vectors span D − 1 dimensions: D must be at least 3",
                                    shown=f"shape {tuple(x.shape)}")
    checks.positive("scale", scale)
    checks.check_number("eps", eps, low=0)
    gamma, delta = _gain("gamma", gamma, d, x), _gain("delta", delta, d, x)
    eff, bias_term = _project_query(keys, query_weight, query_bias)
    if eff.shape[-1] != d:
        raise checks.ParameterError("keys", keys, f"have dimension {eff.shape[-1]} after W_q, the tokens {d}",
                                    shown=f"shape {tuple(keys.shape)}")
    centred = x - x.mean(-1, keepdim=True)
    standardised = centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + eps)  # x̃
    rho = standardised.norm(dim=-1)  # (..., T)
    u = standardised / rho.unsqueeze(-1)
    a = gamma * eff
    a_perp = a - a.mean(-1, keepdim=True)  # P(γ⊙a_s): only this part is seen by x̃ ⊥ 1
    length = a_perp.norm(dim=-1)  # (..., S)
    m = a_perp / length.unsqueeze(-1)
    kappa = scale * rho.unsqueeze(-1) * length.unsqueeze(-2)
    log_prior = scale * (eff * delta).sum(-1) if delta.ndim else scale * delta * eff.sum(-1)
    if bias_term is not None:
        log_prior = log_prior + scale * bias_term
    log_prior = log_prior.unsqueeze(-2)
    resp = vmf_responsibilities(u, m, kappa, log_prior - log_vmf_normaliser(kappa, d - 1), dim=d - 1, mask=mask)
    return VMFAttention(u, m, kappa, log_prior.squeeze(-2), d - 1, resp)


def rmsnorm_attention_vmf(
    x: torch.Tensor,
    keys: torch.Tensor,
    gamma,
    *,
    eps: float = 0.0,
    scale: float = 1.0,
    query_weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> VMFAttention:
    """Read the logits s_ij = scale · q_iᵀk_j, q_i = W_q RMSNorm(x_i), as a vMF E-step (no δ: uniform π̃).

    RMSNorm(x) = γ ⊙ x / √(mean(x²) + ε). Writing each vector as its length times its direction,

        s_ij = κ_ij m_jᵀ q̂_i,   κ_ij = scale · ‖q_i‖ ‖k_j‖,   q̂_i = q_i/‖q_i‖,   m_j = k_j/‖k_j‖:

    the concentration is a *product* — a query-specific inverse temperature ‖q_i‖ times a key-specific
    concentration ‖k_j‖ (the poster's printed form drops ‖q_i‖: :mod:`ambridge.attention.printed`). The sphere is
    the unit sphere of the head space, p = D_h. ``x``: (..., T, D); ``keys``: (..., S, D_h); ``gamma``: number or (D,);
    ``query_weight``: W_q (D_h, D) or None (D_h = D).

    Used in chapter 6, § RMSNorm.
    """
    x = checks.points("x", x, min_ndim=2)
    keys = checks.points("keys", keys, min_ndim=2)
    checks.positive("scale", scale)
    gamma = _gain("gamma", gamma, x.shape[-1], x)
    q = gamma * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    if query_weight is not None:
        q = q @ checks.points("query_weight", query_weight, dim=x.shape[-1], min_ndim=2).transpose(-1, -2)
    if q.shape[-1] != keys.shape[-1]:
        raise checks.ParameterError("keys", keys, f"must have the queries' dimension {q.shape[-1]}",
                                    shown=f"shape {tuple(keys.shape)}")
    q_len, k_len = q.norm(dim=-1), keys.norm(dim=-1)
    u, m = q / q_len.unsqueeze(-1), keys / k_len.unsqueeze(-1)
    kappa = scale * q_len.unsqueeze(-1) * k_len.unsqueeze(-2)
    p = q.shape[-1]
    log_prior = torch.zeros(keys.shape[:-1], dtype=x.dtype, device=x.device)
    resp = vmf_responsibilities(u, m, kappa, -log_vmf_normaliser(kappa, p), dim=p, mask=mask)
    return VMFAttention(u, m, kappa, log_prior, p, resp)


def additive_concentration_fit(queries: torch.Tensor, keys: torch.Tensor, *, scale: float = 1.0):
    """The best *additive* concentration κ_ij = a_i + b_j for the logits s_ij = scale · q_iᵀk_j.

    Softmax ignores a constant per query, so the fit is a least-squares solve of
    s_ij ≈ (a_i + b_j) cos_ij + c_i over (a, b, c), cos_ij = q̂_iᵀ m_j. Returns (attention weights of the fitted
    form (T, S), a (T,), b (S,)). If they differ from softmax(s) no additive form reproduces the attention.
    ``queries``: (T, D); ``keys``: (S, D). No additive concentration appears in the paper's material: this tests
    the book's own straw man.

    Used in chapter 6, the exercise "An additive concentration?".
    """
    q = checks.patterns("queries", queries)
    k = checks.patterns("keys", keys, dim=q.shape[1])
    t, s = q.shape[0], k.shape[0]
    logits = scale * q @ k.T
    cos = normalise(q) @ normalise(k).T
    eye_t = torch.eye(t, dtype=q.dtype)
    design = torch.cat(
        [
            (eye_t[:, None, :] * cos[:, :, None]).reshape(t * s, t),  # a_i cos_ij
            (torch.eye(s, dtype=q.dtype)[None] * cos[:, :, None]).reshape(t * s, s),  # b_j cos_ij
            eye_t[:, None, :].expand(t, s, t).reshape(t * s, t),  # c_i
        ],
        dim=1,
    )
    coef = torch.linalg.lstsq(design, logits.reshape(-1, 1), driver="gelsd").solution[:, 0]
    a, b, c = coef[:t], coef[t : t + s], coef[t + s :]
    fitted = (a[:, None] + b[None, :]) * cos + c[:, None]
    return torch.softmax(fitted, dim=-1), a, b


@torch.no_grad()
def encoder_layer_vmf_view(
    layer: nn.TransformerEncoderLayer, x: torch.Tensor, head: int = 0, *, mask: torch.Tensor | None = None
) -> VMFAttention:
    """Read one head of PyTorch's own pre-LN ``nn.TransformerEncoderLayer(norm_first=True)`` as a vMF E-step.

    ``x``: (B, T, D) the layer's input (batch_first); ``mask``: PyTorch's boolean attention mask (T, T), True where
    attention is *not* allowed (e.g. causal ``triu(1)``), or None. Keys are W_k LN(x) + b_k of the head; the
    query projection and its bias come from ``self_attn.in_proj_weight`` / ``in_proj_bias``. The responsibilities
    equal the head's attention weights (``need_weights=True, average_attn_weights=False``).

    Used in chapter 6, § Inside a trained transformer.
    """
    if not getattr(layer, "norm_first", False):
        raise checks.ParameterError("layer", layer, "the vMF reading needs the norm *before* attention: "
                                    "use norm_first=True", shown="a post-norm layer")
    attn = layer.self_attn
    if not attn.batch_first or attn.in_proj_weight is None:
        raise checks.ParameterError("layer", layer, "must be batch_first with packed in_proj weights",
                                    shown="another layout")
    d, n_heads = attn.embed_dim, attn.num_heads
    dh = d // n_heads
    checks.check_number("head", head, low=0, high=n_heads - 1, integer=True)
    w_q, w_k = attn.in_proj_weight[:d], attn.in_proj_weight[d : 2 * d]
    bias = attn.in_proj_bias if attn.in_proj_bias is not None else torch.zeros(3 * d, dtype=x.dtype)
    b_q, b_k = bias[:d], bias[d : 2 * d]
    rows = slice(head * dh, (head + 1) * dh)
    keys = layer.norm1(x) @ w_k[rows].T + b_k[rows]
    allowed = None if mask is None else ~mask.to(torch.bool)
    return layernorm_attention_vmf(
        x, keys, layer.norm1.weight, layer.norm1.bias, eps=layer.norm1.eps, scale=dh**-0.5,
        query_weight=w_q[rows], query_bias=b_q[rows], mask=allowed,
    )
