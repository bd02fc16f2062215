"""The attention layer of the untied experiment, in the standard form, the untied form the paper proposes, and the
three forms of the ablation that separates untying from what the untied form adds; and the small pre-norm
transformer that carries it.

:class:`NormAttention` is pre-LayerNorm attention from every token to the memories; with ``form="untied"`` each key
token has its own learned concentration κ_s and mixing weight log π_s, separate from its direction — the layer the
paper proposes. That layer adds two things besides untying: QK normalisation (cosine logits) and two linear maps per
head (κ and π). The ablation forms take them one at a time (:data:`FORM_TRAITS`). :meth:`NormAttention.vmf_view`
reads a head of any form as a vMF E-step. :class:`RetrievalTransformer` stacks such layers for
:class:`~ambridge.attention.experiment.RetrievalTask`.

Used in chapter 6, § Inside a trained transformer, § The experiment the paper proposes: untie concentration
and mixing weight, and § Untying, unconfounded.
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

__all__ = ["Form", "FORMS", "FORM_TRAITS", "NormAttention", "RetrievalTransformer"]

Form = Literal["standard", "qknorm", "heads", "split", "untied"]
#: Every form of the layer: the standard one, the three ablation forms, the untied one.
FORMS: tuple[str, ...] = ("standard", "qknorm", "heads", "split", "untied")
#: What each form has: QK normalisation (cosine logits), its own linear maps for κ and π, and a mixing weight free of
#: the key's direction and length (untied). Used by the chapter's ablation table.
FORM_TRAITS: dict[str, dict[str, bool]] = {
    "standard": {"qk_norm": False, "maps": False, "untied": False},
    "qknorm": {"qk_norm": True, "maps": False, "untied": False},
    "heads": {"qk_norm": False, "maps": True, "untied": True},
    "split": {"qk_norm": False, "maps": False, "untied": True},
    "untied": {"qk_norm": True, "maps": True, "untied": True},
}


class NormAttention(nn.Module):
    """Pre-LayerNorm multi-head attention from every token to the first S tokens (the memories).

    ``form="standard"``: logits_ts = q_tᵀk_s/√d_h with q = W_q LN(x) + b_q, k = W_k LN(x) + b_k — concentration
    and mixing weight both come from k_s (κ_s ∝ ‖…k_s‖, log π̃_s = k_sᵀ(W_qδ + b_q)/√d_h): tied.

    ``form="untied"``: logits_ts = κ_s q̂_tᵀk̂_s + log π_s with unit q̂, k̂ and, per key token and head,
    κ_s = exp(w_κᵀ LN(x_s) + b_κ) and log π_s = w_πᵀ LN(x_s) + b_π from their own linear maps: direction,
    concentration and mixing weight are three separate functions of the key token — exactly a vMF E-step with
    per-component κ_s and π_s.

    The ablation forms (chapter 6, § Untying, unconfounded), each one ingredient of the untied form:

    - ``"qknorm"``: logits_ts = τ_h q̂_tᵀk̂_s with a learned temperature τ_h per head — QK normalisation alone
      (one κ for every component, no mixing weight: a *more* tied mixture than the standard one);
    - ``"heads"``: logits_ts = κ_s q_tᵀk_s/√d_h + log π_s with the untied form's two maps (κ_s = exp(w_κᵀ LN(x_s)
      + b_κ), initialised at 1) but no normalisation — the extra maps alone;
    - ``"split"``: logits_ts = q'_tᵀk'_s/√d_h + ℓ_s, where ' drops the head's last coordinate and ℓ_s is the key's
      last coordinate — the standard form with one query coordinate pinned to the constant √d_h. Untied (ℓ_s is
      free of the key's direction and length) with no normalisation, no new parameter and one query row unused.

    Used in chapter 6, § Inside a trained transformer, § The experiment the paper proposes: untie concentration
    and mixing weight, and § Untying, unconfounded.
    """

    def __init__(self, d_model: int, n_heads: int = 1, form: Form = "standard", eps: float = 1e-5):
        super().__init__()
        checks.check_choice("form", form, list(FORMS))
        checks.count("n_heads", n_heads, low=1)
        if checks.count("d_model", d_model, low=1) % n_heads:
            raise checks.ParameterError("d_model", d_model, f"must be divisible by n_heads = {n_heads}")
        if form == "split" and d_model // n_heads < 2:
            raise checks.ParameterError("d_model", d_model, "the split form needs heads of width at least 2")
        self.form, self.n_heads, self.head_dim = form, n_heads, d_model // n_heads
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        if FORM_TRAITS[form]["maps"]:
            self.log_kappa = nn.Linear(d_model, n_heads)
            self.log_prior = nn.Linear(d_model, n_heads)
            nn.init.zeros_(self.log_kappa.weight)  # κ_s starts at √d_h on cosines, at 1 on q·k/√d_h
            nn.init.constant_(self.log_kappa.bias, math.log(math.sqrt(self.head_dim)) if form == "untied" else 0.0)
            nn.init.zeros_(self.log_prior.weight)
            nn.init.zeros_(self.log_prior.bias)
        if form == "qknorm":
            self.log_temperature = nn.Parameter(torch.full((n_heads,), math.log(math.sqrt(self.head_dim))))
        self.last_weights: torch.Tensor | None = None

    def _heads(self, t: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, d_h)
        return t.unflatten(-1, (self.n_heads, self.head_dim)).transpose(-3, -2)

    def logits(self, x: torch.Tensor, n_memories: int) -> torch.Tensor:
        """(B, H, T, S): the attention logits from every token to the first ``n_memories`` tokens."""
        h = self.norm(x)
        q, k = self._heads(self.query(h)), self._heads(self.key(h[:, :n_memories]))
        if self.form == "standard":
            return q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        if self.form == "split":  # the last key coordinate is the log weight; the last query coordinate is unused
            return q[..., :-1] @ k[..., :-1].transpose(-1, -2) / math.sqrt(self.head_dim) + k[..., -1].unsqueeze(-2)
        if FORM_TRAITS[self.form]["qk_norm"]:
            sim = nn.functional.normalize(q, dim=-1) @ nn.functional.normalize(k, dim=-1).transpose(-1, -2)
        else:
            sim = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        if self.form == "qknorm":
            return self.log_temperature.exp()[:, None, None] * sim
        mem = h[:, :n_memories]
        kappa = self.log_kappa(mem).exp().transpose(-1, -2).unsqueeze(-2)  # (B, H, 1, S)
        log_prior = self.log_prior(mem).transpose(-1, -2).unsqueeze(-2)
        return kappa * sim + log_prior

    @torch.no_grad()
    def vmf_view(self, x: torch.Tensor, n_memories: int, head: int = 0) -> VMFAttention:
        """Read head ``head`` as a vMF E-step from the layer's own weights (its LayerNorm, W_q, b_q, W_k, b_k, and the
        κ, π maps or temperature of its form). The standard form goes through :func:`layernorm_attention_vmf` (the
        query on the LayerNorm sphere, p = D − 1); every other form is read in head space: unit head-space query
        and key as u_t and m_s (for ``split``, without the last coordinate), κ_ts the factor in front of their cosine,
        log π̃_s the additive term. ``x``: the residual stream entering the layer (B, T, D). The responsibilities equal
        the layer's attention weights (the chapter and the tests check it)."""
        rows = slice(head * self.head_dim, (head + 1) * self.head_dim)
        mem = self.norm(x[:, :n_memories])
        keys = mem @ self.key.weight[rows].T + self.key.bias[rows]
        if self.form == "standard":
            return layernorm_attention_vmf(
                x, keys, self.norm.weight, self.norm.bias, eps=self.norm.eps, scale=self.head_dim**-0.5,
                query_weight=self.query.weight[rows], query_bias=self.query.bias[rows],
            )
        q = self.norm(x) @ self.query.weight[rows].T + self.query.bias[rows]
        log_prior = torch.zeros(keys.shape[:-1], dtype=x.dtype, device=x.device)
        if self.form == "split":
            q, keys, log_prior = q[..., :-1], keys[..., :-1], keys[..., -1]
        u, m = nn.functional.normalize(q, dim=-1), nn.functional.normalize(keys, dim=-1)
        if FORM_TRAITS[self.form]["qk_norm"]:
            kappa = torch.ones(*q.shape[:-1], n_memories, dtype=x.dtype, device=x.device)
        else:  # the lengths of query and key carry the concentration, as in the RMSNorm reading
            kappa = q.norm(dim=-1).unsqueeze(-1) * keys.norm(dim=-1).unsqueeze(-2) / math.sqrt(self.head_dim)
        if self.form == "qknorm":
            kappa = kappa * self.log_temperature[head].exp()
        if FORM_TRAITS[self.form]["maps"]:
            kappa = kappa * self.log_kappa(mem)[..., head].exp().unsqueeze(-2)
            log_prior = self.log_prior(mem)[..., head]
        p = q.shape[-1]
        resp = vmf_responsibilities(u, m, kappa, log_prior.unsqueeze(-2) - log_vmf_normaliser(kappa, p), dim=p)
        return VMFAttention(u, m, kappa, log_prior, p, resp)

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
