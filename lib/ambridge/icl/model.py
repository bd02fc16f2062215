"""The in-context energy transformer: points in, one scalar energy per position out.

A causal pre-LayerNorm transformer reads x_1, …, x_N ∈ ℝ^D and outputs, at position n, the energy
E_θ(x_n ∣ x_{<n}) of the n-th point given the points before it — so one pass scores every prefix of the dataset
(Schaeffer, Khona & Koyejo 2024). There is no positional embedding: the points of a dataset are exchangeable, and
the causal mask alone tells a position how many points came before it.

:meth:`EnergyTransformer.candidate_energies` is the workhorse of the fast sampler: besides the real sequence it
scores any number of *candidate* tokens, each placed at a chosen position p and allowed by the attention mask to see
only the real tokens before p and itself. Its energy is then exactly E_θ(candidate ∣ x_{<p}), and thousands of
candidates share one pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import checks

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
    0 … positions[m] − 1 and to itself. → (n_real + M, n_real + M)."""
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

    def _run(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(tokens), mask=mask)
        return self.readout(h).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, N, D) → energies (B, N), entry n being E_θ(x_n ∣ x_{<n}) (causal)."""
        x = checks.points("x", x, dim=self.config.dim, min_ndim=3)
        n = x.shape[1]
        mask = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
        return self._run(x, mask)

    def candidate_energies(
        self, context: torch.Tensor, candidates: torch.Tensor, positions: torch.Tensor, *,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies of the real sequence and of candidates placed at given positions, in one pass.

        ``context``: (B, N, D) real points; ``candidates``: (B, M, D); ``positions``: (M,) integers in [0, N],
        candidate m being scored as the point at position positions[m], i.e. given x_{<positions[m]}.
        Returns (E_θ(x_n ∣ x_{<n}) (B, N), E_θ(candidate_m ∣ x_{<p_m}) (B, M)). ``mask``: the
        :func:`candidate_mask` for these positions, if already built (a sampler builds it once for all its steps;
        keep ``positions`` on the CPU otherwise, so that checking them does not wait for the GPU).
        """
        context = checks.points("context", context, dim=self.config.dim, min_ndim=3)
        candidates = checks.points("candidates", candidates, dim=self.config.dim, min_ndim=3)
        n = context.shape[1]
        if positions.ndim != 1 or positions.numel() != candidates.shape[1]:
            raise ValueError(f"`positions` must have shape ({candidates.shape[1]},), got {tuple(positions.shape)}")
        if mask is None:
            if bool((positions < 0).any()) or bool((positions > n).any()):
                raise ValueError(f"`positions` must lie in [0, {n}]")
            mask = candidate_mask(n, positions.to(context.device))
        energies = self._run(torch.cat([context, candidates], dim=1), mask)
        return energies[:, :n], energies[:, n:]

    @torch.no_grad()
    def energy_given(self, context: torch.Tensor, points: torch.Tensor, *, chunk: int = 1024) -> torch.Tensor:
        """E_θ(y ∣ x_1, …, x_n) for many query points y given a whole context (the landscape after n points).

        ``context``: (B, n, D) with n possibly 0; ``points``: (B, M, D) or (M, D) (shared) → (B, M). Queries are
        scored ``chunk`` at a time as candidates at position n.
        """
        b, n, _ = context.shape
        if points.ndim == 2:
            points = points.expand(b, *points.shape)
        out = []
        for start in range(0, points.shape[1], chunk):
            part = points[:, start:start + chunk]
            pos = torch.full((part.shape[1],), n, dtype=torch.long)
            out.append(self.candidate_energies(context, part, pos)[1])
        return torch.cat(out, dim=1)
