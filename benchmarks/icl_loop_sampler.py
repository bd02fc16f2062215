"""The reference (slow) Langevin sampler of the in-context energy model: one chain, one position, one step at a time.

This is the public code's loop structure, written cleanly: for every position n and every negative s, the chain at
position n is appended to the real prefix x_{<n}, the whole sequence (x_{<n}, x) goes through the causal transformer,
the energy at its last position is differentiated with respect to x, and x takes one Langevin step

    x ← clamp_box(x − α ∇_x E_θ(x ∣ x_{<n}) + s ω),   ω ~ N(0, I).

The batch dimension is kept (B sequences move together). It is the yardstick for the vectorised sampler
(:func:`ambridge.icl.langevin_negatives`): fed the same starts and the same noise, both give the same negatives
(``tests/test_icl.py``), and ``benchmarks/icl_step.py`` times one against the other.
"""

from __future__ import annotations

import torch

from ambridge.icl import EnergyTransformer

__all__ = ["loop_negatives"]


def loop_negatives(
    model: EnergyTransformer,
    context: torch.Tensor,
    init: torch.Tensor,
    noise: torch.Tensor,
    *,
    step_size: float,
    noise_std: float,
    box: float | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``context`` (B, N, D), ``init`` (B, N, S, D), ``noise`` (T, B, N, S, D) standard normals → negatives
    (B, N, S, D), detached. ``box``: clamp the chains to [−box, box]^D after every step."""
    b, n, s, d = init.shape
    context = context.detach()
    out = torch.empty_like(init)
    for pos in range(n):
        prefix = context[:, :pos]
        for neg in range(s):
            x = init[:, pos, neg].to(context.dtype)
            for t in range(noise.shape[0]):
                x = x.detach().requires_grad_(True)
                with torch.enable_grad(), torch.autocast(context.device.type, dtype=autocast_dtype or torch.float32,
                                                         enabled=autocast_dtype is not None):
                    energy = model(torch.cat([prefix, x[:, None]], dim=1))[:, -1]
                (grad,) = torch.autograd.grad(energy.float().sum(), x)
                x = x - step_size * grad + noise_std * noise[t, :, pos, neg].to(x)
                if box is not None:
                    x = x.clamp(-box, box)  # the prior box, as in the vectorised sampler
            out[:, pos, neg] = x.detach()
    return out
