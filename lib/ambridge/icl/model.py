"""The in-context energy transformer: points in, one scalar energy per position out.

A causal pre-LayerNorm transformer reads x_1, …, x_N ∈ ℝ^D and outputs, at position n, the energy
E_θ(x_n ∣ x_{<n}) of the n-th point given the points before it — so one pass scores every prefix of the dataset
(Schaeffer, Khona & Koyejo 2024). There is no positional embedding: the points of a dataset are exchangeable, and
the causal mask alone tells a position how many points came before it.

:meth:`EnergyTransformer.candidate_energies` is the workhorse of the fast sampler: besides the real sequence it
scores any number of *candidate* tokens, each placed at a chosen position p and allowed to see only the real tokens
before p and itself. Its energy is then exactly E_θ(candidate ∣ x_{<p}), and thousands of candidates share one pass.
The layers are computed in :mod:`ambridge.icl.layers`: the real tokens once, causally, and the candidates against
their cached keys and values (:meth:`EnergyTransformer.context_cache`, :meth:`EnergyTransformer.cached_energies`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import checks
from .layers import KeysValues, candidate_pass, causal_pass, prefix_blocked

__all__ = ["ModelConfig", "EnergyTransformer", "candidate_mask"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. ``dim_feedforward`` 0 means 4·d_model (the public code left PyTorch's default 2048)."""

    dim: int = 2  # D, the data dimension
    d_model: int = 64  # transformer width
    n_heads: int = 8
    n_layers: int = 3
    dim_feedforward: int = 0  # 0 → 4·d_model

    def __post_init__(self):
        for name in ("dim", "d_model", "n_heads", "n_layers"):
            checks.count(name, getattr(self, name), low=1)
        checks.count("dim_feedforward", self.dim_feedforward)
        if self.d_model % self.n_heads:
            raise ValueError(f"`d_model` ({self.d_model}) must be divisible by `n_heads` ({self.n_heads})")

    @property
    def feedforward(self) -> int:
        return self.dim_feedforward or 4 * self.d_model

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_mask(n_real: int, positions: torch.Tensor) -> torch.Tensor:
    """Boolean attention mask (True = blocked) for ``n_real`` real tokens followed by one candidate per entry of
    ``positions`` (M,): real tokens attend causally among themselves; candidate m attends to the real tokens
    0 … positions[m] − 1 and to itself. → (n_real + M, n_real + M). The dense statement of what
    :meth:`EnergyTransformer.candidate_energies` computes (with PyTorch's ``TransformerEncoder`` it gives the same
    energies, more slowly: the tests use it as the reference)."""
    m = positions.numel()
    total = n_real + m
    idx = torch.arange(total, device=positions.device)
    allowed = torch.zeros(total, total, dtype=torch.bool, device=positions.device)
    allowed[:n_real, :n_real] = idx[:n_real, None] >= idx[None, :n_real]  # causal
    allowed[n_real:, :n_real] = idx[None, :n_real] < positions[:, None]  # a candidate sees the prefix before it
    own = n_real + torch.arange(m, device=positions.device)
    allowed[own, own] = True  # and itself
    return ~allowed


class EnergyTransformer(nn.Module):
    """E_θ(x_n ∣ x_{<n}) for every position of a batch of sequences. Linear(D → d_model) → pre-LN causal
    transformer encoder (GELU, dropout 0, no positional embedding) → Linear(d_model → 1)."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Linear(c.dim, c.d_model)
        layer = nn.TransformerEncoderLayer(c.d_model, c.n_heads, dim_feedforward=c.feedforward, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.n_layers, enable_nested_tensor=False)
        self.readout = nn.Linear(c.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, N, D) → energies (B, N), entry n being E_θ(x_n ∣ x_{<n}) (causal)."""
        x = checks.points("x", x, dim=self.config.dim, min_ndim=3)
        return self.readout(causal_pass(self.encoder, self.embed(x))[0]).squeeze(-1)

    def energies_and_cache(self, context: torch.Tensor) -> tuple[torch.Tensor, KeysValues]:
        """One causal pass of the real sequence ``context`` (B, N, D) (unchecked) → (its energies (B, N), the
        :meth:`context_cache`): what :meth:`candidate_energies` does before it scores the candidates."""
        h, cache = causal_pass(self.encoder, self.embed(context))
        return self.readout(h).squeeze(-1), cache

    def context_cache(self, context: torch.Tensor) -> KeysValues:
        """Every layer's keys and values of the real sequence ``context`` (B, N, D), for :meth:`cached_energies`.
        A sampler computes them once: they do not change while only the candidates move."""
        return causal_pass(self.encoder, self.embed(context))[1]

    def cached_energies(self, cache: KeysValues, candidates: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        """E_θ(candidate_m ∣ x_{<p_m}) (B, M) from a :meth:`context_cache`; ``blocked`` (M, N) is
        :func:`ambridge.icl.layers.prefix_blocked` of the positions."""
        return self.readout(candidate_pass(self.encoder, self.embed(candidates), cache, blocked)).squeeze(-1)

    def candidate_energies(
        self, context: torch.Tensor, candidates: torch.Tensor, positions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies of the real sequence and of candidates placed at given positions, in one pass.

        ``context``: (B, N, D) real points; ``candidates``: (B, M, D); ``positions``: (M,) integers in [0, N],
        candidate m being scored as the point at position positions[m], i.e. given x_{<positions[m]}.
        Returns (E_θ(x_n ∣ x_{<n}) (B, N), E_θ(candidate_m ∣ x_{<p_m}) (B, M)).
        """
        context = checks.points("context", context, dim=self.config.dim, min_ndim=3)
        candidates = checks.points("candidates", candidates, dim=self.config.dim, min_ndim=3)
        n = context.shape[1]
        if positions.ndim != 1 or positions.numel() != candidates.shape[1]:
            raise ValueError(f"`positions` must have shape ({candidates.shape[1]},), got {tuple(positions.shape)}")
        if bool((positions < 0).any()) or bool((positions > n).any()):
            raise ValueError(f"`positions` must lie in [0, {n}]")
        energies, cache = self.energies_and_cache(context)
        blocked = prefix_blocked(n, positions.to(context.device))
        return energies, self.cached_energies(cache, candidates, blocked)

    @torch.no_grad()
    def energy_given(self, context: torch.Tensor, points: torch.Tensor, *, chunk: int = 1024) -> torch.Tensor:
        """E_θ(y ∣ x_1, …, x_n) for many query points y given a whole context (the landscape after n points).

        ``context``: (B, n, D) with n possibly 0; ``points``: (B, M, D) or (M, D) (shared) → (B, M). Queries are
        scored ``chunk`` at a time as candidates at position n.
        """
        context = checks.points("context", context, dim=self.config.dim, min_ndim=3)
        b, n, _ = context.shape
        if points.ndim == 2:
            points = points.expand(b, *points.shape)
        points = checks.points("points", points, dim=self.config.dim, min_ndim=3)
        cache = self.context_cache(context)
        out = []
        for start in range(0, points.shape[1], chunk):
            part = points[:, start:start + chunk]
            blocked = torch.zeros(part.shape[1], n, dtype=torch.bool, device=context.device)  # sees all n points
            out.append(self.cached_energies(cache, part, blocked))
        return torch.cat(out, dim=1)
