"""The library's one validation vocabulary: every bad argument or chapter parameter is a :class:`ParameterError`.

A chapter's validation cell checks its parameters with :func:`check_number` and :func:`check_choice`; library
functions check their tensors with :func:`points`, :func:`patterns`, :func:`positive`, :func:`count` and
:func:`per_pattern`. All raise :class:`ParameterError` (a ``ValueError``) whose message names the argument, what it
was and what is allowed — a wrong shape is a clear error, never a silent broadcast. A value of the wrong *type*
(not a tensor, not a floating-point tensor) stays a ``TypeError``.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable

import torch

__all__ = [
    "ParameterError",
    "check_number",
    "check_choice",
    "points",
    "patterns",
    "positive",
    "count",
    "per_pattern",
]


class ParameterError(ValueError):
    """A chapter or library parameter has a value outside what is allowed.

    The message has the form ``parameter `name` = value: <what is allowed>`` so the runner can show it as it is;
    ``shown`` replaces ``repr(value)`` where the value itself would not read well (a tensor: its shape).
    """

    def __init__(self, name: str, value: Any, allowed: str, *, shown: str | None = None):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"parameter `{name}` = {repr(value) if shown is None else shown}: {allowed}")


def _interval(low, high, low_open, high_open) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> float | int:
    """Return ``value`` if it is a finite number in the interval, else raise :class:`ParameterError`.

    ``integer=True`` also demands an integer (``True``/``False`` are refused: a flag is not a count).
    Bounds are inclusive unless ``low_open`` / ``high_open``.
    """
    kind = "an integer" if integer else "a number"
    allowed = f"must be {kind} in {_interval(low, high, low_open, high_open)}"
    if isinstance(value, bool) or not isinstance(value, Integral if integer else Real):
        raise ParameterError(name, value, allowed)
    if not math.isfinite(value):
        raise ParameterError(name, value, allowed)
    if low is not None and (value < low or (low_open and value == low)):
        raise ParameterError(name, value, allowed)
    if high is not None and (value > high or (high_open and value == high)):
        raise ParameterError(name, value, allowed)
    return int(value) if integer else value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ParameterError` listing them."""
    choices = list(choices)
    if not any(type(value) is type(c) and value == c for c in choices):  # 1 is not True, 1.0 is not 1
        raise ParameterError(name, value, "must be one of " + ", ".join(repr(c) for c in choices))
    return value


def _shape(x: torch.Tensor) -> str:
    return f"shape {tuple(x.shape)}"


def points(name: str, x, *, dim: int | None = None, min_ndim: int = 1) -> torch.Tensor:
    """Check that ``x`` is a floating tensor of points ``(..., D)``; return it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (..., D), got {type(x).__name__}")
    if x.ndim < min_ndim:
        raise ParameterError(name, x, f"`{name}` must have at least {min_ndim} dimension(s)", shown=_shape(x))
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got {x.dtype}")
    if dim is not None and x.shape[-1] != dim:
        raise ParameterError(name, x, f"`{name}` has last dimension {x.shape[-1]}, expected D = {dim}", shown=_shape(x))
    return x


def patterns(name: str, x, *, dim: int | None = None) -> torch.Tensor:
    """Check that ``x`` is a non-empty floating tensor of patterns ``(N, D)``; return it."""
    x = points(name, x, dim=dim)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ParameterError(name, x, f"`{name}` must have shape (N, D) with N at least 1", shown=_shape(x))
    return x


def positive(name: str, value) -> torch.Tensor | float:
    """Check that a scalar (or every entry of a tensor) is finite and > 0."""
    t = torch.as_tensor(value, dtype=torch.float64)
    if not bool(torch.isfinite(t).all()) or not bool((t > 0).all()):
        raise ParameterError(name, value, f"`{name}` must be finite and > 0")
    return value


def count(name: str, value, low: int = 0) -> int:
    """Check that ``value`` is an integer >= ``low`` (a bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ParameterError(name, value, f"`{name}` must be an integer >= {low}")
    return value


def per_pattern(name: str, value, n: int) -> torch.Tensor | None:
    """Check an optional per-pattern vector ``(N,)``."""
    if value is None:
        return None
    if not isinstance(value, torch.Tensor) or value.shape != (n,):
        shown = _shape(value) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ParameterError(name, value, f"`{name}` must be a tensor of shape ({n},)", shown=shown)
    return value
