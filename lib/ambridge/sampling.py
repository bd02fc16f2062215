"""Langevin sampling: retrieval with noise.

Gradient flow on E finds the minima of E (the memories, the modes of p ∝ exp(−E)); adding Gaussian noise of the
right size turns the same dynamics into a sampler of p. The unadjusted Langevin algorithm (Roberts & Tweedie 1996):

    x_{t+1} = x_t − ε ∇E(x_t) + √(2εT) ξ_t,   ξ_t ~ N(0, I),

targets p_T(x) ∝ exp(−E(x)/T) as ε → 0. At finite ε it has a bias: on E = ‖x − m‖²/(2s²) its stationary law is
N(m, s²/(1 − ε/(2s²)) I) (exactly; the tests check it).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from . import checks
from .dynamics import Trajectory, energy_gradient

__all__ = ["langevin_sample", "langevin_step"]


def langevin_step(
    energy: Callable[[torch.Tensor], torch.Tensor],
    state: torch.Tensor,
    *,
    step_size: float,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One unadjusted Langevin step; returns (new state (..., D), energy at the old state (...))."""
    grad, value = energy_gradient(energy, state)
    # A CPU generator serves a CUDA state too: the noise is drawn where the generator lives, then moved.
    source = state.device if generator is None else generator.device
    noise = torch.randn(state.shape, generator=generator, dtype=state.dtype, device=source).to(state.device)
    return state - step_size * grad + math.sqrt(2 * step_size * temperature) * noise, value


def langevin_sample(
    energy: Callable[[torch.Tensor], torch.Tensor],
    init: torch.Tensor,
    *,
    step_size: float,
    n_steps: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    record_every: int = 0,
) -> Trajectory:
    """Run ``n_steps`` unadjusted Langevin steps from ``init`` (..., D), one chain per state.

    ``energy`` maps (..., D) → (...), e.g. ``lambda x: beta * clam_energy(x, memories, beta)`` (a negative
    log-likelihood up to a constant). ``temperature`` T = 0 is plain gradient flow. ``record_every`` = k > 0 keeps
    every k-th state in the returned trajectory (the first and last always); 0 keeps only those two (one state when
    ``n_steps`` = 0).
    The noise comes from ``generator`` (a CPU generator works for any device), so runs are reproducible.
    """
    checks.positive("step_size", step_size)
    checks.count("n_steps", n_steps)
    if isinstance(temperature, bool) or not (
        isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0
    ):
        raise ValueError(f"`temperature` must be a finite number >= 0, got {temperature!r}")
    checks.count("record_every", record_every)
    x = checks.points("init", init).detach()
    states = [x]
    for t in range(1, n_steps + 1):
        x, _ = langevin_step(energy, x, step_size=step_size, temperature=temperature, generator=generator)
        if (record_every and t % record_every == 0) or t == n_steps:
            states.append(x)
    with torch.no_grad():
        energies = torch.stack([energy(s) for s in states])
    return Trajectory(torch.stack(states), energies)
