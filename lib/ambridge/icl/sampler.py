"""The vectorised Langevin sampler of the in-context energy model: one masked pass per Langevin step.

Negatives for contrastive divergence are drawn at every position n of every sequence: with the prefix x_{<n} held at
the real data, S chains start from uniform noise over the prior box and follow

    x ← clamp_box(x − α ∇_x E_θ(x ∣ x_{<n}) + ω),    ω ~ N(0, s² I)

for T steps (α = ``step_size``, s = ``noise_std``; this is the convention of the digest, not the public code's, which
halved the noise and ignored the step-size setting); after each step the chains are clamped to the prior box, the
sampler's domain (Du & Mordatch 2019 clamp to the data range likewise). The chains are then detached.

The public code loops over negatives × positions × steps, re-running the prefix every time. Here all B·N·S chains
are extra tokens of one sequence per dataset (:meth:`EnergyTransformer.candidate_energies`): each candidate attends
to the real tokens before its position and to itself, so its energy is exactly E_θ(candidate ∣ x_{<n}), and one
forward and one backward pass per step move every chain at once. Each candidate's energy depends on no other
candidate, so the gradient of the summed energies w.r.t. a candidate is the gradient of its own energy. The real
tokens never see a candidate and are the same at every step, so their keys and values are computed once per call
(:meth:`EnergyTransformer.context_cache`) and each step runs only the candidates.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch

from .. import checks
from .layers import prefix_blocked
from .model import EnergyTransformer

__all__ = ["LangevinRun", "uniform_init", "langevin_candidates", "run_chains", "negative_positions",
           "langevin_negatives", "mixed_precision"]


class LangevinRun(NamedTuple):
    final: torch.Tensor  # (B, M, D), detached
    path: torch.Tensor | None  # (T + 1, B, M, D) when recorded, else None


def uniform_init(shape, box: float, *, generator: torch.Generator | None = None, dtype=None) -> torch.Tensor:
    """Uniform noise over the box [−box, box]^D, drawn on the generator's device (CPU by default)."""
    checks.positive("box", box)
    return (2 * torch.rand(shape, generator=generator, dtype=dtype) - 1) * box


def mixed_precision(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device`` (e.g. bfloat16 on a GPU), or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    # No cast cache: a CUDA graph capture must not keep cast weights alive across calls (same values either way).
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=False)


def langevin_candidates(
    model: EnergyTransformer,
    context: torch.Tensor,
    init: torch.Tensor,
    positions: torch.Tensor,
    *,
    n_steps: int,
    step_size: float,
    noise_std: float,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    autocast_dtype: torch.dtype | None = None,
    record: bool = False,
    box: float | None = None,
) -> LangevinRun:
    """Langevin chains on E_θ(· ∣ x_{<p_m}): candidate m lives at position ``positions[m]`` of its sequence.

    ``context``: (B, N, D) real points (held fixed); ``init``: (B, M, D) starting points; ``positions``: (M,) in
    [0, N]. ``noise`` (n_steps, B, M, D), if given, is used as ω/s (standard normal) — so two samplers can be fed the
    same noise; otherwise it is drawn from ``generator`` (all steps at once, on the generator's device) and moved.
    ``autocast_dtype`` (e.g. torch.bfloat16 on a GPU) runs the passes under autocast; the chains stay in the
    context's dtype. ``box``: if given, every step ends by clamping the chains to [−box, box]^D, the prior box
    they start in (without it, a steep learned energy can throw chains far out, where no data ever push back, and
    contrastive divergence then raises the energy there without bound).
    """
    checks.count("n_steps", n_steps)
    checks.positive("step_size", step_size)
    if not noise_std >= 0:
        raise ValueError(f"`noise_std` must be >= 0, got {noise_std!r}")
    device = context.device
    context = context.detach()
    x = init.detach().to(device=device, dtype=context.dtype)
    if noise is None:
        source = generator.device if generator is not None else device
        noise = torch.randn((n_steps, *x.shape), generator=generator, dtype=x.dtype, device=source)
    elif noise.shape != (n_steps, *x.shape):
        raise ValueError(f"`noise` must have shape {(n_steps, *x.shape)}, got {tuple(noise.shape)}")
    noise = noise.to(device=device, dtype=x.dtype)
    n = context.shape[1]
    if positions.shape != (x.shape[1],) or bool((positions < 0).any()) or bool((positions > n).any()):
        raise ValueError(f"`positions` must have shape ({x.shape[1]},) and lie in [0, {n}]")
    blocked = prefix_blocked(n, positions.to(device))  # built once for all steps
    return run_chains(model, context, x, blocked, noise, step_size=step_size, noise_std=noise_std, box=box,
                      autocast_dtype=autocast_dtype, record=record)


def run_chains(model: EnergyTransformer, context: torch.Tensor, x: torch.Tensor, blocked: torch.Tensor,
               noise: torch.Tensor, *, step_size: float, noise_std: float, box: float | None = None,
               autocast_dtype: torch.dtype | None = None, record: bool = False) -> LangevinRun:
    """The Langevin loop of :func:`langevin_candidates` without its checks: ``context`` (B, N, D), chains ``x``
    (B, M, D), ``blocked`` (M, N) from :func:`~ambridge.icl.layers.prefix_blocked` and standard-normal ``noise``
    (T, B, M, D), all on one device. It reads no tensor back to the host and copies nothing to the device, so it
    can be captured in a CUDA graph (:class:`ambridge.runtime.CapturedCall`)."""
    device = context.device
    with torch.no_grad(), mixed_precision(device, autocast_dtype):
        cache = model.context_cache(context.detach())  # the real tokens: fixed while the chains move
    x = x.detach()
    path = [x] if record else None
    for t in range(noise.shape[0]):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad(), mixed_precision(device, autocast_dtype):
            energy = model.cached_energies(cache, x, blocked)
        (grad,) = torch.autograd.grad(energy.float().sum(), x)
        x = (x - step_size * grad + noise_std * noise[t]).detach()
        if box is not None:
            x = x.clamp(-box, box)
        if record:
            path.append(x)
    return LangevinRun(x, torch.stack(path) if record else None)


def negative_positions(n_points: int, n_negatives: int, device=None) -> torch.Tensor:
    """Positions of the flattened negatives: candidate n·S + s sits at position n. → (N·S,)."""
    return torch.arange(n_points, device=device).repeat_interleave(n_negatives)


def langevin_negatives(
    model: EnergyTransformer,
    context: torch.Tensor,
    *,
    n_negatives: int,
    n_steps: int,
    step_size: float,
    noise_std: float,
    box: float,
    generator: torch.Generator | None = None,
    init: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """S negatives at every position of every sequence, all chains in one masked pass per step.

    ``context``: (B, N, D). ``init`` (B, N, S, D) defaults to uniform noise over [−box, box]^D from ``generator``;
    ``noise`` (n_steps, B, N, S, D) defaults to standard normals from ``generator``. → negatives (B, N, S, D),
    detached; negative [b, n, s] is a sample of E_θ(· ∣ x_{b, <n}). Chains are clamped to the box after every step.
    """
    checks.count("n_negatives", n_negatives, low=1)
    b, n, d = context.shape
    s = n_negatives
    if init is None:
        init = uniform_init((b, n, s, d), box, generator=generator, dtype=context.dtype)
    if init.shape != (b, n, s, d):
        raise ValueError(f"`init` must have shape {(b, n, s, d)}, got {tuple(init.shape)}")
    if noise is not None:
        if noise.shape != (n_steps, b, n, s, d):
            raise ValueError(f"`noise` must have shape {(n_steps, b, n, s, d)}, got {tuple(noise.shape)}")
        noise = noise.reshape(n_steps, b, n * s, d)
    run = langevin_candidates(model, context, init.reshape(b, n * s, d), negative_positions(n, s), n_steps=n_steps,
                              step_size=step_size, noise_std=noise_std, noise=noise, generator=generator,
                              autocast_dtype=autocast_dtype, box=box)
    return run.final.reshape(b, n, s, d)
