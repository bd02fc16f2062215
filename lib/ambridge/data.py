"""Patterns to store and data to model — all generated, nothing downloaded.

Every sampler takes a ``torch.Generator`` so a chapter's seed fixes its data.
"""

from __future__ import annotations

import torch

from . import checks

__all__ = ["binary_patterns", "flip_signs", "sphere_points", "mixture_means", "sample_mixture"]


def _count(name: str, value: int, low: int = 1) -> int:
    return checks.count(name, value, low)


def binary_patterns(n: int, dim: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` random patterns of ±1, each entry independent and fair — the classical Hopfield setting. → (n, dim)."""
    _count("n", n), _count("dim", dim)
    return torch.randint(0, 2, (n, dim), generator=generator).to(torch.get_default_dtype()) * 2 - 1


def flip_signs(patterns: torch.Tensor, fraction: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Corrupt ±1 patterns by flipping exactly ``round(fraction · D)`` randomly chosen entries of each. → same shape."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"`fraction` must be in [0, 1], got {fraction!r}")
    d = patterns.shape[-1]
    n_flip = round(fraction * d)
    order = torch.rand(patterns.shape, generator=generator).argsort(dim=-1)
    flip = order < n_flip  # a uniformly random subset of n_flip positions per pattern
    return torch.where(flip, -patterns, patterns)


def sphere_points(
    n: int, dim: int, *, radius: float = 1.0, generator: torch.Generator | None = None, dtype=None
) -> torch.Tensor:
    """``n`` points uniform on the sphere of radius ``radius`` in ℝ^dim: Gaussians drawn in float64 on the
    generator's device (CPU without one), normalised, then rounded once to ``dtype`` (default: torch's default
    dtype). → (n, dim). The one sphere sampler of the library (chapters 5 and 6 use it)."""
    _count("n", n), _count("dim", dim)
    checks.positive("radius", radius)
    device = generator.device if generator is not None else torch.device("cpu")
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64, device=device)
    return (radius * x / x.norm(dim=-1, keepdim=True)).to(dtype or torch.get_default_dtype())


def mixture_means(
    n_components: int, dim: int, *, spread: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Component means drawn from N(0, spread² I) — the in-context EBM's data prior uses spread 5. → (K, dim)."""
    _count("n_components", n_components), _count("dim", dim)
    return spread * torch.randn(n_components, dim, generator=generator)


def sample_mixture(
    means: torch.Tensor,
    std: float,
    n: int,
    *,
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` draws from Σ_k π_k N(μ_k, std² I); returns (points (n, D), component labels (n,))."""
    _count("n", n)
    if means.ndim != 2:
        raise ValueError(f"`means` must have shape (K, D), got {tuple(means.shape)}")
    if not std > 0:
        raise ValueError(f"`std` must be > 0, got {std!r}")
    k = means.shape[0]
    probs = torch.full((k,), 1.0 / k) if weights is None else weights
    labels = torch.multinomial(probs, n, replacement=True, generator=generator)
    noise = torch.randn(n, means.shape[1], generator=generator, dtype=means.dtype)
    return means[labels] + std * noise, labels
