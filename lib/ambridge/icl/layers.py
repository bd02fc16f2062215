"""The transformer's two passes, written out: the real sequence (causal), and candidates that read its keys and values.

The model's parameters live in a ``torch.nn.TransformerEncoder`` (pre-LayerNorm, GELU, no dropout), so checkpoints
keep their names; these functions compute the same layers with the structure of the in-context sampler in view:

- the real tokens attend causally among themselves, so they never see a candidate. :func:`causal_pass` runs them
  with the fused causal attention kernel (no mask tensor) and returns every layer's keys and values;
- a candidate at position p attends to the real tokens before p and to itself. :func:`candidate_pass` runs the
  candidates alone against those cached keys and values: a (candidates × real) score matrix plus one score for
  itself, instead of one dense boolean-masked attention over real tokens and candidates together.

During Langevin sampling the context and the parameters are fixed, so the real tokens' keys and values are the same
at every step: the sampler computes them once, and each step runs (and differentiates) only the candidates. The
results equal the dense masked pass of :func:`ambridge.icl.model.candidate_mask` (a test compares them with PyTorch's
own ``TransformerEncoder``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KeysValues", "causal_pass", "candidate_pass", "prefix_blocked"]

KeysValues = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys and values, each (B, heads, N, head_dim)


def _split_heads(layer: nn.TransformerEncoderLayer, h: torch.Tensor):
    """LayerNorm, then the joint q/k/v projection split into heads: (B, L, E) → three (B, heads, L, head_dim)."""
    attn = layer.self_attn
    b, length, e = h.shape
    qkv = F.linear(layer.norm1(h), attn.in_proj_weight, attn.in_proj_bias)
    return qkv.view(b, length, 3, attn.num_heads, e // attn.num_heads).permute(2, 0, 3, 1, 4).unbind(0)


def _finish(layer: nn.TransformerEncoderLayer, h: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
    """Merge heads (B, heads, L, head_dim), output projection and residual, then the feed-forward block."""
    b, n_heads, length, head_dim = heads.shape
    h = h + layer.self_attn.out_proj(heads.transpose(1, 2).reshape(b, length, n_heads * head_dim))
    return h + layer.linear2(F.gelu(layer.linear1(layer.norm2(h))))


def causal_pass(encoder: nn.TransformerEncoder, h: torch.Tensor) -> tuple[torch.Tensor, KeysValues]:
    """The real tokens through every layer, causally. ``h``: embedded tokens (B, N, E) → (output (B, N, E), the
    keys and values each layer computed, for :func:`candidate_pass`)."""
    cache = []
    for layer in encoder.layers:
        q, k, v = _split_heads(layer, h)
        h = _finish(layer, h, F.scaled_dot_product_attention(q, k, v, is_causal=True))
        cache.append((k, v))
    return h, cache


def prefix_blocked(n_real: int, positions: torch.Tensor) -> torch.Tensor:
    """(M, n_real) boolean, True where real token j is *not* visible to a candidate at ``positions[m]`` (j ≥ p)."""
    return torch.arange(n_real, device=positions.device)[None, :] >= positions[:, None]


def candidate_pass(encoder: nn.TransformerEncoder, h: torch.Tensor, cache: KeysValues,
                   blocked: torch.Tensor) -> torch.Tensor:
    """Candidates through every layer; each attends to the real tokens its row of ``blocked`` leaves visible (keys
    and values from ``cache``) and to itself. ``h``: embedded candidates (B, M, E); ``blocked``: (M, N) from
    :func:`prefix_blocked` → (B, M, E). No candidate sees another, so each output row depends on its own input only."""
    for layer, (k_real, v_real) in zip(encoder.layers, cache):
        q, k, v = _split_heads(layer, h)
        scale = 1.0 / math.sqrt(q.shape[-1])
        to_real = (q @ k_real.transpose(-1, -2)).masked_fill(blocked, float("-inf"))  # (B, heads, M, N)
        to_self = (q * k).sum(-1, keepdim=True)  # (B, heads, M, 1)
        weights = torch.softmax(torch.cat([to_real, to_self], -1) * scale, dim=-1)
        heads = weights[..., :-1] @ v_real + weights[..., -1:] * v
        h = _finish(layer, h, heads)
    return h
