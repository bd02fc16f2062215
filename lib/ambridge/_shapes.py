"""Shape checks shared by the library: a wrong shape is a clear error naming the argument, never a broadcast."""

from __future__ import annotations

import torch


def points(name: str, x, *, dim: int | None = None, min_ndim: int = 1) -> torch.Tensor:
    """Check that ``x`` is a floating tensor of points ``(..., D)``; return it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (..., D), got {type(x).__name__}")
    if x.ndim < min_ndim:
        raise ValueError(f"`{name}` must have at least {min_ndim} dimension(s), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got {x.dtype}")
    if dim is not None and x.shape[-1] != dim:
        raise ValueError(f"`{name}` has last dimension {x.shape[-1]}, expected D = {dim} (shape {tuple(x.shape)})")
    return x


def patterns(name: str, x, *, dim: int | None = None) -> torch.Tensor:
    """Check that ``x`` is a non-empty floating tensor of patterns ``(N, D)``; return it."""
    x = points(name, x, dim=dim)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"`{name}` must have shape (N, D) with N >= 1, got {tuple(x.shape)}")
    return x


def positive(name: str, value) -> torch.Tensor | float:
    """Check that a scalar (or every entry of a tensor) is finite and > 0."""
    t = torch.as_tensor(value, dtype=torch.float64)
    if not bool(torch.isfinite(t).all()) or not bool((t > 0).all()):
        raise ValueError(f"`{name}` must be finite and > 0, got {value!r}")
    return value


def count(name: str, value, low: int = 0) -> int:
    """Check that ``value`` is an integer >= ``low`` (a bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}")
    return value


def per_pattern(name: str, value, n: int) -> torch.Tensor | None:
    """Check an optional per-pattern vector ``(N,)``."""
    if value is None:
        return None
    if not isinstance(value, torch.Tensor) or value.shape != (n,):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"`{name}` must be a tensor of shape ({n},), got {shape}")
    return value
