"""Reading a frozen in-context energy model: landscapes after n points, samples, and their error against the truth.

The model's parameters never change here; only the context does. For a held-out dataset x_1, …, x_N and n ≤ N the
landscape is y ↦ E_θ(y ∣ x_1, …, x_n) (the query y is a candidate token at position n), and samples are Langevin
chains on it, run with the sampler the model was trained with.
"""

from __future__ import annotations

import torch

from ..dynamics import gradient_flow
from ..energies import gaussian_mixture_nll
from .model import EnergyTransformer
from .sampler import langevin_candidates, uniform_init

__all__ = ["energy_landscape", "sample_given", "nearest_mean_distance", "true_mixture_descent", "error_vs_context"]


def energy_landscape(model: EnergyTransformer, context: torch.Tensor, device: str | torch.device = "cpu"):
    """y ↦ E_θ(y ∣ context) as a function of a grid of points (..., D) → (...) on the CPU, for
    :func:`ambridge.plotting.plot_landscape`. ``context``: (n, D), n may be 0. Used in chapter 2,
    § Landscapes as the context grows."""
    context = context[None].to(device)

    def energy(grid: torch.Tensor) -> torch.Tensor:
        return model.energy_given(context, grid.reshape(-1, grid.shape[-1]).to(device)).reshape(grid.shape[:-1]).cpu()

    return energy


def sample_given(
    model: EnergyTransformer,
    context: torch.Tensor,
    init: torch.Tensor,
    *,
    n_steps: int,
    step_size: float,
    noise_std: float,
    generator: torch.Generator | None = None,
    record: bool = False,
    box: float | None = None,
):
    """Langevin chains on E_θ(· ∣ context): ``context`` (B, n, D) (n may be 0), ``init`` (B, M, D) → LangevinRun
    (final (B, M, D), path (T + 1, B, M, D) when ``record``). ``box`` clamps the chains as in training."""
    positions = torch.full((init.shape[1],), context.shape[1], dtype=torch.long)
    return langevin_candidates(model, context, init, positions, n_steps=n_steps, step_size=step_size,
                               noise_std=noise_std, generator=generator, record=record, box=box)


def nearest_mean_distance(points: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Distance from each point to the nearest true component mean: ``points`` (B, M, D), ``means`` (B, K, D) →
    (B, M)."""
    return torch.cdist(points, means).min(dim=-1).values


def true_mixture_descent(init: torch.Tensor, means: torch.Tensor, std: float, *, step_size: float,
                         n_steps: int) -> torch.Tensor:
    """Gradient descent on the true mixture energy −log p(x) = ``gaussian_mixture_nll`` (equal weights, σ = ``std``)
    from the same starts: the oracle a learned energy is compared with. ``init`` (B, M, D), ``means`` (B, K, D) →
    final points (B, M, D)."""
    return torch.stack([gradient_flow(lambda x, m=m: gaussian_mixture_nll(x, m, std**2), x0, step_size=step_size,
                                      n_steps=n_steps).final for x0, m in zip(init, means)])


def error_vs_context(
    model: EnergyTransformer,
    points: torch.Tensor,
    means: torch.Tensor,
    ns,
    *,
    n_chains: int,
    box: float,
    n_steps: int,
    step_size: float,
    noise_std: float,
    generator: torch.Generator,
) -> dict:
    """For each context size n in ``ns``: Langevin samples of E_θ(· ∣ x_{1:n}) from uniform starts over the prior
    box (clamped to it, as in training), and their mean distance to the nearest true mean (averaged over chains and datasets). The same starts are
    used for every n. ``points`` (B, N, D), ``means`` (B, K, D). Returns {"n": [...], "error": [...],
    "init": (B, M, D)}."""
    b, _, d = points.shape
    init = uniform_init((b, n_chains, d), box, generator=generator, dtype=points.dtype)
    errors = []
    for n in ns:
        samples = sample_given(model, points[:, :n], init, n_steps=n_steps, step_size=step_size,
                               noise_std=noise_std, generator=generator, box=box).final
        errors.append(nearest_mean_distance(samples, means).mean().item())
    return {"n": list(ns), "error": errors, "init": init}
