"""Normalisation followed by attention, read as clustering on the sphere (Chapter 6).

Three parts, in the order of the chapter:

1. **von Mises–Fisher (vMF) distributions** on the unit sphere S^{p−1} ⊂ ℝ^p,

       p(x; m, κ) = C_p(κ) exp(κ mᵀx),   C_p(κ) = κ^{p/2−1} / ((2π)^{p/2} I_{p/2−1}(κ)),

   with a normaliser that stays finite for large κ *and* large p (:func:`log_bessel_iv` works in log space on
   ``scipy.special.ive`` and falls back to a small-argument series or Debye's uniform expansion where ``ive``
   underflows), sampling through ``scipy.stats.vonmises_fisher`` (:func:`sample_vmf`) and mixture
   responsibilities (:func:`vmf_responsibilities`).

2. **Pre-norm attention as a vMF E-step.** :func:`layernorm_attention_vmf` and :func:`rmsnorm_attention_vmf`
   take what an attention layer sees — the raw tokens, the keys, the norm's gain γ and shift δ, and optionally the
   query projection W_q, b_q — and return the mixture they implement: the unit query u_t, the mean directions m_s,
   the concentrations κ_ts, the log mixing weights log π̃_s, and the responsibilities, computed from the vMF
   formula (not from the attention logits, so comparing them with the attention weights is a real check).

3. **Token dynamics** (:func:`token_dynamics`, :func:`count_clusters`): tokens moved by normalised self-attention
   (Geshkovski et al. 2023; pre-LN vs post-LN after Karagodin et al. 2025), and the experiment the paper proposes:
   attention whose concentration and mixing weight are learned separately (:class:`NormAttention` with
   ``form="untied"``), trained against the standard form on in-context vMF retrieval
   (:func:`vmf_retrieval_batch`, :class:`RetrievalTransformer`, :func:`train_retrieval`).

Shapes: tokens ``(..., T, D)``, keys ``(..., S, D)``; concentrations and responsibilities ``(..., T, S)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn as nn

from . import checks
from .special import check_kappa, check_sphere_dim, log_bessel_iv, log_vmf_normaliser, vmf_mean_resultant_length

__all__ = [
    "log_bessel_iv",
    "log_vmf_normaliser",
    "vmf_mean_resultant_length",
    "vmf_log_density",
    "sample_vmf",
    "vmf_responsibilities",
    "VMFAttention",
    "layernorm_attention_vmf",
    "rmsnorm_attention_vmf",
    "additive_concentration_fit",
    "encoder_layer_vmf_view",
    "token_dynamics",
    "count_clusters",
    "RetrievalTask",
    "vmf_retrieval_batch",
    "NormAttention",
    "RetrievalTransformer",
    "train_retrieval",
    "compare_forms",
]


# --- 1. von Mises–Fisher distributions ------------------------------------------------------------------------

def vmf_log_density(x: torch.Tensor, mean_direction: torch.Tensor, kappa) -> torch.Tensor:
    """log p(x; m, κ) = log C_p(κ) + κ mᵀx for unit vectors ``x`` (..., p), ``mean_direction`` (p,) or (..., p),
    ``kappa`` a number or a tensor broadcastable to (...)."""
    x = checks.points("x", x)
    m = checks.points("mean_direction", mean_direction, dim=x.shape[-1])
    kappa = torch.as_tensor(kappa, dtype=x.dtype, device=x.device)
    return log_vmf_normaliser(kappa, x.shape[-1]) + kappa * (x * m).sum(-1)


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
    values costs a few SciPy calls. κ = 0 gives the uniform law. The NumPy seed is drawn from ``generator``.
    """
    from scipy.stats import vonmises_fisher

    m = checks.patterns("mean_directions", mean_directions)
    n, p = m.shape
    check_sphere_dim(p)
    k = torch.as_tensor(kappa, dtype=torch.float64).cpu()
    k = k.expand(n) if k.ndim == 0 else k
    if k.shape != (n,):
        raise ValueError(f"`kappa` must be a number or have shape ({n},), got {tuple(k.shape)}")
    check_kappa(k)
    rng = _numpy_rng(generator)
    kn = k.numpy()
    draws = np.empty((n, p))
    north = np.zeros(p)
    north[0] = 1.0
    for value in np.unique(kn):
        rows = np.flatnonzero(kn == value)
        if value == 0:
            g = rng.standard_normal((len(rows), p))
            draws[rows] = g / np.linalg.norm(g, axis=1, keepdims=True)
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


# --- 2. pre-norm attention as a vMF E-step -------------------------------------------------------------------


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
        raise ValueError(f"`{name}` must be a number or a vector of shape ({d},), got shape {tuple(t.shape)}")
    return t


def _project_query(keys, query_weight, query_bias):
    """Effective keys a_s = W_qᵀ k_s in the norm's output space, and the bias term k_sᵀ b_q."""
    if query_weight is None:
        if query_bias is not None:
            raise ValueError("`query_bias` needs `query_weight`")
        return keys, None
    w = checks.points("query_weight", query_weight, dim=None, min_ndim=2)
    if w.shape[-2] != keys.shape[-1]:
        raise ValueError(f"`query_weight` must have shape ({keys.shape[-1]}, D), got {tuple(w.shape)}")
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
    """
    x = checks.points("x", x, min_ndim=2)
    keys = checks.points("keys", keys, min_ndim=2)
    d = x.shape[-1]
    if d < 3:
        raise ValueError("LayerNorm'd vectors span D − 1 dimensions: need D >= 3")
    checks.positive("scale", scale)
    if eps < 0:
        raise ValueError(f"`eps` must be >= 0, got {eps!r}")
    gamma, delta = _gain("gamma", gamma, d, x), _gain("delta", delta, d, x)
    eff, bias_term = _project_query(keys, query_weight, query_bias)
    if eff.shape[-1] != d:
        raise ValueError(f"keys (after W_q) have dimension {eff.shape[-1]}, the tokens {d}")
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
    concentration ‖k_j‖ — not a sum ‖q_i‖ + ‖k_j‖ (see :func:`additive_concentration_fit`). The sphere is the unit
    sphere of the head space, p = D_h. ``x``: (..., T, D); ``keys``: (..., S, D_h); ``gamma``: number or (D,);
    ``query_weight``: W_q (D_h, D) or None (D_h = D).
    """
    x = checks.points("x", x, min_ndim=2)
    keys = checks.points("keys", keys, min_ndim=2)
    checks.positive("scale", scale)
    gamma = _gain("gamma", gamma, x.shape[-1], x)
    q = gamma * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    if query_weight is not None:
        q = q @ checks.points("query_weight", query_weight, dim=x.shape[-1], min_ndim=2).transpose(-1, -2)
    if q.shape[-1] != keys.shape[-1]:
        raise ValueError(f"queries have dimension {q.shape[-1]}, keys {keys.shape[-1]}")
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
    ``queries``: (T, D); ``keys``: (S, D).
    """
    q = checks.patterns("queries", queries)
    k = checks.patterns("keys", keys, dim=q.shape[1])
    t, s = q.shape[0], k.shape[0]
    logits = scale * q @ k.T
    cos = (q / q.norm(dim=-1, keepdim=True)) @ (k / k.norm(dim=-1, keepdim=True)).T
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
    """
    if not getattr(layer, "norm_first", False):
        raise ValueError("the vMF reading needs the norm *before* attention: use norm_first=True")
    attn = layer.self_attn
    if not attn.batch_first or attn.in_proj_weight is None:
        raise ValueError("expected a batch_first layer with packed in_proj weights")
    d, n_heads = attn.embed_dim, attn.num_heads
    dh = d // n_heads
    if not 0 <= head < n_heads:
        raise ValueError(f"`head` must be in [0, {n_heads}), got {head!r}")
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


# --- 3a. token dynamics on the sphere -------------------------------------------------------------------------

Scheme = Literal["sphere", "post_ln", "pre_ln"]


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def _self_attention(y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """A(y)_i = Σ_j softmax_j(β⟨y_i, y_j⟩) y_j for tokens y (..., n, d), β broadcastable to (...)."""
    return torch.softmax(beta[..., None, None] * (y @ y.transpose(-1, -2)), dim=-1) @ y


def token_dynamics(
    init: torch.Tensor,
    beta,
    *,
    scheme: Scheme = "sphere",
    step_size: float = 0.05,
    record_steps: Sequence[int] = (0,),
    raw: bool = False,
) -> torch.Tensor:
    """Move n tokens by self-attention with Q = K = V = I, and return the *normalised* tokens at ``record_steps``
    (``raw=True``: the states themselves — for ``"pre_ln"`` the residual stream, whose norm grows).

    With A(y)_i = Σ_j softmax_j(β⟨y_i, y_j⟩) y_j, Norm(x) = x/‖x‖ and h = ``step_size``:

    - ``"sphere"``: Geshkovski et al.'s flow ẋ_i = P⊥_{x_i} A(x)_i on S^{d−1}, by a projected Euler step and
      renormalisation: x ← Norm(x + h P⊥_x A(x));
    - ``"post_ln"``: x ← Norm(x + h A(x)) — normalise after the residual update (tokens stay on the sphere);
    - ``"pre_ln"``: x ← x + h A(Norm(x)) — normalise the input of attention only; the residual stream grows, and
      what is measured is Norm(x).

    ``init``: (..., n, d) (normalised before the first step); ``beta``: number or tensor broadcastable to the batch
    shape (...). Returns (R, ..., n, d) for the R recorded steps (sorted, step 0 = the initial tokens).
    """
    x = _normalise(checks.points("init", init, min_ndim=2).clone())
    checks.positive("step_size", step_size)
    if scheme not in ("sphere", "post_ln", "pre_ln"):
        raise ValueError(f"`scheme` must be 'sphere', 'post_ln' or 'pre_ln', got {scheme!r}")
    beta = torch.as_tensor(beta, dtype=x.dtype, device=x.device)
    checks.positive("beta", beta)
    beta = beta.expand(x.shape[:-2])
    steps = sorted({checks.count("record step", int(s)) for s in record_steps})
    out, step = [], 0
    for target in steps:
        while step < target:
            if scheme == "pre_ln":
                x = x + step_size * _self_attention(_normalise(x), beta)
            else:
                a = _self_attention(x, beta)
                if scheme == "sphere":
                    a = a - (a * x).sum(-1, keepdim=True) * x
                x = _normalise(x + step_size * a)
            step += 1
        out.append(x.clone() if raw else _normalise(x))
    return torch.stack(out)


def count_clusters(points: torch.Tensor, threshold: float = 0.05) -> np.ndarray:
    """Number of clusters among points (..., n, d): connected components of the graph joining two points closer
    than ``threshold`` (Euclidean; on the unit sphere 0.05 is about 3 degrees). → integer array of shape (...)."""
    from scipy.sparse.csgraph import connected_components

    pts = checks.points("points", points, min_ndim=2).detach().cpu().double()
    checks.positive("threshold", threshold)
    close = (torch.cdist(pts, pts) < threshold).numpy()
    flat = close.reshape(-1, *close.shape[-2:])
    counts = np.array([connected_components(a, directed=False)[0] for a in flat])
    return counts.reshape(close.shape[:-2])


# --- 3b. the proposed experiment: untie concentration and mixing weight ---------------------------------------


@dataclass
class RetrievalTask:
    """In-context vMF retrieval — the generative model the vMF reading of attention assumes.

    Each sequence holds ``n_memories`` memory tokens, one per mixture component s: a direction m_s uniform on
    S^{p−1}, a concentration κ_s drawn from ``kappas`` and a log weight log π_s ~ N(0, ``log_weight_std``²)
    (normalised). The token carries [m_s, log κ_s / log κ_max, log π_s, 1]. Then ``n_queries`` query tokens
    [x, 0, 0, 0], each drawn z ~ π, x ~ vMF(m_z, κ_z). The target for a query is z; the Bayes posterior is the vMF
    E-step r_s ∝ π_s C_p(κ_s) e^{κ_s m_sᵀx}, so the best achievable loss is its mean entropy.
    """

    dim: int = 8  # p: data on S^{p−1}
    n_memories: int = 8  # S: mixture components in context
    n_queries: int = 8  # queries per sequence
    kappas: tuple = (2.0, 5.0, 12.0, 30.0, 75.0)  # grid of concentrations (a grid keeps SciPy sampling batched)
    log_weight_std: float = 1.0

    @property
    def token_dim(self) -> int:
        return self.dim + 3


def vmf_retrieval_batch(
    task: RetrievalTask, batch_size: int, *, generator: torch.Generator | None = None, posterior: bool = True
) -> dict:
    """A batch of the task: ``tokens`` (B, S + Q, p + 3), memories first; ``target`` z (B, Q); ``posterior`` the
    Bayes E-step (B, Q, S) (None if ``posterior=False``, which saves time in training); ``kappa`` and
    ``log_weight`` (B, S) (log π normalised); ``directions`` (B, S, p)."""
    checks.count("batch_size", batch_size, low=1)
    b, s, q, p = batch_size, task.n_memories, task.n_queries, task.dim
    dtype = torch.float32
    g = torch.randn(b, s, p, generator=generator, dtype=torch.float64)
    m = g / g.norm(dim=-1, keepdim=True)
    grid = torch.tensor(task.kappas, dtype=torch.float64)
    kappa = grid[torch.randint(0, len(grid), (b, s), generator=generator)]
    raw = task.log_weight_std * torch.randn(b, s, generator=generator, dtype=torch.float64)
    log_w = raw - torch.logsumexp(raw, dim=-1, keepdim=True)
    z = torch.multinomial(log_w.exp(), q, replacement=True, generator=generator)  # (B, Q)
    chosen = torch.gather(m, 1, z.unsqueeze(-1).expand(b, q, p))
    x = sample_vmf(chosen.reshape(-1, p), torch.gather(kappa, 1, z).reshape(-1), generator=generator)
    x = x.reshape(b, q, p)
    bayes = vmf_responsibilities(x, m, kappa.unsqueeze(1), log_w.unsqueeze(1)) if posterior else None
    log_kmax = math.log(max(task.kappas))
    memory = torch.cat([m, (kappa.log() / log_kmax).unsqueeze(-1), log_w.unsqueeze(-1), torch.ones(b, s, 1, dtype=torch.float64)], -1)
    query = torch.cat([x, torch.zeros(b, q, 3, dtype=torch.float64)], -1)
    return {
        "tokens": torch.cat([memory, query], 1).to(dtype),
        "target": z,
        "posterior": bayes,
        "kappa": kappa,
        "log_weight": log_w,
        "directions": m,
    }


Form = Literal["standard", "untied"]


class NormAttention(nn.Module):
    """Pre-LayerNorm multi-head attention from every token to the first S tokens (the memories).

    ``form="standard"``: logits_ts = q_tᵀk_s/√d_h with q = W_q LN(x) + b_q, k = W_k LN(x) + b_k — concentration
    and mixing weight both come from k_s (κ_s ∝ ‖…k_s‖, log π̃_s = k_sᵀ(W_qδ + b_q)/√d_h): tied.

    ``form="untied"``: logits_ts = κ_s q̂_tᵀk̂_s + log π_s with unit q̂, k̂ and, per key token and head,
    κ_s = exp(w_κᵀ LN(x_s) + b_κ) and log π_s = w_πᵀ LN(x_s) + b_π from their own linear maps: direction,
    concentration and mixing weight are three separate functions of the key token — exactly a vMF E-step with
    per-component κ_s and π_s.
    """

    def __init__(self, d_model: int, n_heads: int = 1, form: Form = "standard", eps: float = 1e-5):
        super().__init__()
        if form not in ("standard", "untied"):
            raise ValueError(f"`form` must be 'standard' or 'untied', got {form!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model = {d_model} is not divisible by n_heads = {n_heads}")
        self.form, self.n_heads, self.head_dim = form, n_heads, d_model // n_heads
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        if form == "untied":
            self.log_kappa = nn.Linear(d_model, n_heads)
            self.log_prior = nn.Linear(d_model, n_heads)
            nn.init.zeros_(self.log_kappa.weight)
            nn.init.constant_(self.log_kappa.bias, math.log(math.sqrt(self.head_dim)))
            nn.init.zeros_(self.log_prior.weight)
            nn.init.zeros_(self.log_prior.bias)
        self.last_weights: torch.Tensor | None = None

    def _heads(self, t: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, d_h)
        return t.unflatten(-1, (self.n_heads, self.head_dim)).transpose(-3, -2)

    def logits(self, x: torch.Tensor, n_memories: int) -> torch.Tensor:
        """(B, H, T, S): the attention logits from every token to the first ``n_memories`` tokens."""
        h = self.norm(x)
        q, k = self._heads(self.query(h)), self._heads(self.key(h[:, :n_memories]))
        if self.form == "standard":
            return q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        cos = nn.functional.normalize(q, dim=-1) @ nn.functional.normalize(k, dim=-1).transpose(-1, -2)
        mem = h[:, :n_memories]
        kappa = self.log_kappa(mem).exp().transpose(-1, -2).unsqueeze(-2)  # (B, H, 1, S)
        log_prior = self.log_prior(mem).transpose(-1, -2).unsqueeze(-2)
        return kappa * cos + log_prior

    @torch.no_grad()
    def vmf_view(self, x: torch.Tensor, n_memories: int, head: int = 0) -> VMFAttention:
        """Read head ``head`` as a vMF E-step from the layer's own weights (its LayerNorm, W_q, b_q, W_k, b_k):
        :func:`layernorm_attention_vmf` for the standard form; for the untied form the directions are the unit
        head-space query and key, κ_s and log π_s its two heads. ``x``: the residual stream entering the layer
        (B, T, D). The responsibilities equal the layer's attention weights (the chapter and the tests check it)."""
        rows = slice(head * self.head_dim, (head + 1) * self.head_dim)
        mem = self.norm(x[:, :n_memories])
        keys = mem @ self.key.weight[rows].T + self.key.bias[rows]
        if self.form == "standard":
            return layernorm_attention_vmf(
                x, keys, self.norm.weight, self.norm.bias, eps=self.norm.eps, scale=self.head_dim**-0.5,
                query_weight=self.query.weight[rows], query_bias=self.query.bias[rows],
            )
        q = self.norm(x) @ self.query.weight[rows].T + self.query.bias[rows]
        u, m = nn.functional.normalize(q, dim=-1), nn.functional.normalize(keys, dim=-1)
        kappa = self.log_kappa(mem)[..., head].exp().unsqueeze(-2).expand(*q.shape[:-1], n_memories)
        log_prior = self.log_prior(mem)[..., head]
        log_w = log_prior.unsqueeze(-2) - log_vmf_normaliser(kappa, self.head_dim)
        resp = vmf_responsibilities(u, m, kappa, log_w)
        return VMFAttention(u, m, kappa, log_prior, self.head_dim, resp)

    def forward(self, x: torch.Tensor, n_memories: int) -> torch.Tensor:
        weights = torch.softmax(self.logits(x, n_memories), dim=-1)
        self.last_weights = weights.detach()
        v = self._heads(self.value(self.norm(x[:, :n_memories])))
        return self.out((weights @ v).transpose(-3, -2).flatten(-2))


class RetrievalTransformer(nn.Module):
    """A small pre-norm transformer for :class:`RetrievalTask`: a linear embedding, ``n_layers`` blocks
    x ← x + Attn(LN(x)); x ← x + MLP(LN(x)), and a one-head pre-norm attention read-out whose weights over the
    memories *are* the prediction of z (log-probabilities (B, T, S) from :meth:`forward`). Every attention layer
    has the same ``form``."""

    def __init__(self, token_dim: int, d_model: int = 32, n_layers: int = 1, n_heads: int = 2, form: Form = "standard"):
        super().__init__()
        self.embed = nn.Linear(token_dim, d_model)
        self.attn = nn.ModuleList(NormAttention(d_model, n_heads, form) for _ in range(n_layers))
        self.mlp = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
            for _ in range(n_layers)
        )
        self.readout = NormAttention(d_model, 1, form)
        self.residuals: list[torch.Tensor] = []

    def forward(self, tokens: torch.Tensor, n_memories: int) -> torch.Tensor:
        x = self.embed(tokens)
        self.residuals = []
        for attn, mlp in zip(self.attn, self.mlp):
            self.residuals.append(x.detach())
            x = x + attn(x, n_memories)
            x = x + mlp(x)
        self.residuals.append(x.detach())
        return torch.log_softmax(self.readout.logits(x, n_memories)[:, 0], dim=-1)


def train_retrieval(
    model: RetrievalTransformer,
    task: RetrievalTask,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    eval_batch: dict,
    eval_every: int = 25,
    generator: torch.Generator | None = None,
) -> dict:
    """Train on fresh batches with AdamW (cosine-decayed learning rate) on the cross-entropy of z at the queries.

    Returns ``{"step": [...], "loss": [...]}``: the mean cross-entropy on ``eval_batch`` (a fixed batch from
    :func:`vmf_retrieval_batch`) every ``eval_every`` steps, including step 0 and the last.
    """
    checks.count("steps", steps, low=1)
    s = task.n_memories
    device = next(model.parameters()).device
    eval_tokens, eval_target = eval_batch["tokens"].to(device), eval_batch["target"].to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    history = {"step": [], "loss": []}

    def evaluate(step):
        model.eval()
        with torch.no_grad():
            logp = model(eval_tokens, s)[:, s:]
            loss = -torch.gather(logp, -1, eval_target.unsqueeze(-1)).mean().item()
        model.train()
        history["step"].append(step)
        history["loss"].append(loss)

    for step in range(steps):
        if step % eval_every == 0:
            evaluate(step)
        batch = vmf_retrieval_batch(task, batch_size, generator=generator, posterior=False)
        logp = model(batch["tokens"].to(device), s)[:, s:]
        loss = -torch.gather(logp, -1, batch["target"].to(device).unsqueeze(-1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    evaluate(steps)
    return history


def _train_one(job: dict) -> tuple[dict, RetrievalTransformer]:
    task, cfg = job["task"], job["config"]
    torch.manual_seed(job["seed"])
    model = RetrievalTransformer(task.token_dim, cfg["d_model"], cfg["n_layers"], cfg["n_heads"], job["form"])
    model = model.to(device=job["device"], dtype=torch.float32)  # whatever torch's default dtype is
    history = train_retrieval(
        model, task, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"], eval_batch=job["eval_batch"],
        eval_every=cfg["eval_every"], generator=torch.Generator().manual_seed(10_000 + job["seed"]),
    )
    return history, model.cpu()


def _train_one_history(job: dict) -> dict:  # in a worker process: one thread, and only the history goes back
    torch.set_num_threads(1)
    return _train_one(job)[0]


def compare_forms(
    task: RetrievalTask,
    *,
    seeds: Sequence[int],
    forms: Sequence[Form] = ("standard", "untied"),
    d_model: int = 32,
    n_layers: int = 1,
    n_heads: int = 2,
    steps: int = 200,
    batch_size: int = 32,
    lr: float = 3e-3,
    eval_size: int = 256,
    eval_every: int = 20,
    data_seed: int = 0,
    device: str | torch.device = "cpu",
    workers: int = 1,
) -> dict:
    """Train every (form, seed) on the same task and compare: the paper's proposed experiment.

    Runs with the same seed share the initialisation seed *and* the stream of training batches, so the forms are
    compared in pairs; every run is evaluated on one fixed batch of ``eval_size`` sequences (drawn from
    ``data_seed``), whose Bayes loss (mean −log of the exact vMF posterior at the true component) is the floor.
    ``workers`` > 1 trains in that many processes (one thread each; the models are then not returned).

    Returns ``{"step": [...], "bayes_loss": float, "loss": {form: [[loss per step] per seed]}, "config": {...},
    "models": {form: [model per seed]}}`` (``models`` only when ``workers == 1``).
    """
    eval_batch = vmf_retrieval_batch(task, eval_size, generator=torch.Generator().manual_seed(data_seed))
    post = eval_batch["posterior"]
    bayes = -torch.gather(post, -1, eval_batch["target"].unsqueeze(-1)).clamp_min(1e-300).log().mean().item()
    eval_batch = {"tokens": eval_batch["tokens"], "target": eval_batch["target"]}
    config = dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads, steps=steps, batch_size=batch_size, lr=lr,
                  eval_every=eval_every)
    jobs = [dict(task=task, config=config, form=f, seed=int(s), eval_batch=eval_batch, device=str(device))
            for f in forms for s in seeds]
    models = None
    if workers > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            histories = list(pool.map(_train_one_history, jobs))
    else:
        results = [_train_one(job) for job in jobs]
        histories = [h for h, _ in results]
        models = {f: [m for job, (_, m) in zip(jobs, results) if job["form"] == f] for f in forms}
    loss = {f: [h["loss"] for job, h in zip(jobs, histories) if job["form"] == f] for f in forms}
    out = {"step": histories[0]["step"], "bayes_loss": bayes, "loss": loss, "seeds": [int(s) for s in seeds],
           "config": config, "task": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(task).items()}}
    if models is not None:
        out["models"] = models
    return out
