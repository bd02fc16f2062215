"""The attention layer of the untied experiment, in its standard and untied forms, and the small pre-norm
transformer that carries it.

:class:`NormAttention` is pre-LayerNorm attention from every token to the memories; with ``form="untied"`` each key
token has its own learned concentration κ_s and mixing weight log π_s, separate from its direction — the layer the
paper proposes. :meth:`NormAttention.vmf_view` reads a head of either form as a vMF E-step.
:class:`RetrievalTransformer` stacks such layers for :class:`~ambridge.attention.experiment.RetrievalTask`.

Used in chapter 6, § Inside a trained transformer, and § The experiment the paper proposes: untie concentration
and mixing weight.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn

from .. import checks
from ..special import log_vmf_normaliser
from .estep import VMFAttention, layernorm_attention_vmf
from .vmf import vmf_responsibilities

__all__ = ["Form", "NormAttention", "RetrievalTransformer"]

Form = Literal["standard", "untied"]


class NormAttention(nn.Module):
    """Pre-LayerNorm multi-head attention from every token to the first S tokens (the memories).

    ``form="standard"``: logits_ts = q_tᵀk_s/√d_h with q = W_q LN(x) + b_q, k = W_k LN(x) + b_k — concentration
    and mixing weight both come from k_s (κ_s ∝ ‖…k_s‖, log π̃_s = k_sᵀ(W_qδ + b_q)/√d_h): tied.

    ``form="untied"``: logits_ts = κ_s q̂_tᵀk̂_s + log π_s with unit q̂, k̂ and, per key token and head,
    κ_s = exp(w_κᵀ LN(x_s) + b_κ) and log π_s = w_πᵀ LN(x_s) + b_π from their own linear maps: direction,
    concentration and mixing weight are three separate functions of the key token — exactly a vMF E-step with
    per-component κ_s and π_s.

    Used in chapter 6, § Inside a trained transformer, and § The experiment the paper proposes: untie
    concentration and mixing weight.
    """

    def __init__(self, d_model: int, n_heads: int = 1, form: Form = "standard", eps: float = 1e-5):
        super().__init__()
        checks.check_choice("form", form, ["standard", "untied"])
        checks.count("n_heads", n_heads, low=1)
        if checks.count("d_model", d_model, low=1) % n_heads:
            raise checks.ParameterError("d_model", d_model, f"must be divisible by n_heads = {n_heads}")
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
    has the same ``form``.

    Used in chapter 6, § Inside a trained transformer (trained by :func:`compare_forms`).
    """

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
