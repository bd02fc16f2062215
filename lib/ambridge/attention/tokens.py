"""Tokens moved by normalised self-attention, and how to count the clusters they form.

:func:`token_dynamics` follows n tokens under self-attention with Q = K = V = I — on the sphere (Geshkovski et al.
2023), post-LN and pre-LN (after Karagodin et al. 2025); :func:`count_clusters` counts the clusters at each
recorded step; :func:`longest_plateau` and :func:`first_time_at_most` read the metastable staircase and the speed
of clustering off those counts.

Used in chapter 6, § What repeated normalised attention does to tokens, and § Pre-LN against post-LN.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch

from .. import checks
from .vmf import normalise

__all__ = ["Scheme", "token_dynamics", "count_clusters", "longest_plateau", "first_time_at_most"]

Scheme = Literal["sphere", "post_ln", "pre_ln"]  # where the norm sits (see token_dynamics)


def _self_attention(y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """A(y)_i = Σ_j softmax_j(β⟨y_i, y_j⟩) y_j for tokens y (..., n, d), β broadcastable to (...)."""
    return torch.softmax(beta[..., None, None] * (y @ y.transpose(-1, -2)), dim=-1) @ y


def token_dynamics(
    init: torch.Tensor,
    beta,
    *,
    scheme: Scheme = "sphere",
    step_size: float = 0.05,
    record_steps: Sequence[int] = (0,),
    raw: bool = False,
) -> torch.Tensor:
    """Move n tokens by self-attention with Q = K = V = I, and return the *normalised* tokens at ``record_steps``
    (``raw=True``: the states themselves — for ``"pre_ln"`` the residual stream, whose norm grows).

    With A(y)_i = Σ_j softmax_j(β⟨y_i, y_j⟩) y_j, Norm(x) = x/‖x‖ and h = ``step_size``:

    - ``"sphere"``: Geshkovski et al.'s flow ẋ_i = P⊥_{x_i} A(x)_i on S^{d−1}, by a projected Euler step and
      renormalisation: x ← Norm(x + h P⊥_x A(x));
    - ``"post_ln"``: x ← Norm(x + h A(x)) — normalise after the residual update (tokens stay on the sphere);
    - ``"pre_ln"``: x ← x + h A(Norm(x)) — normalise the input of attention only; the residual stream grows, and
      what is measured is Norm(x).

    ``init``: (..., n, d) (normalised before the first step); ``beta``: number or tensor broadcastable to the batch
    shape (...). Returns (R, ..., n, d) for the R recorded steps (sorted, step 0 = the initial tokens).

    Used in chapter 6, § What repeated normalised attention does to tokens, and § Pre-LN against post-LN.
    """
    x = normalise(checks.points("init", init, min_ndim=2).clone())
    checks.positive("step_size", step_size)
    checks.check_choice("scheme", scheme, ["sphere", "post_ln", "pre_ln"])
    beta = torch.as_tensor(beta, dtype=x.dtype, device=x.device)
    checks.positive("beta", beta)
    beta = beta.expand(x.shape[:-2])
    steps = sorted({checks.count("record step", int(s)) for s in record_steps})
    out, step = [], 0
    for target in steps:
        while step < target:
            if scheme == "pre_ln":
                x = x + step_size * _self_attention(normalise(x), beta)
            else:
                a = _self_attention(x, beta)
                if scheme == "sphere":
                    a = a - (a * x).sum(-1, keepdim=True) * x
                x = normalise(x + step_size * a)
            step += 1
        out.append(x.clone() if raw else normalise(x))
    return torch.stack(out)


def count_clusters(points: torch.Tensor, threshold: float = 0.05) -> np.ndarray:
    """Number of clusters among points (..., n, d): connected components of the graph joining two points closer
    than ``threshold`` (Euclidean; on the unit sphere 0.05 is about 3 degrees). → integer array of shape (...).

    Used in chapter 6, § What repeated normalised attention does to tokens, and § Pre-LN against post-LN.
    """
    from scipy.sparse.csgraph import connected_components

    pts = checks.points("points", points, min_ndim=2).detach().cpu().double()
    checks.positive("threshold", threshold)
    close = (torch.cdist(pts, pts) < threshold).numpy()
    flat = close.reshape(-1, *close.shape[-2:])
    counts = np.array([connected_components(a, directed=False)[0] for a in flat])
    return counts.reshape(close.shape[:-2])


def longest_plateau(counts, times) -> np.ndarray:
    """The longest stretch of time over which a run's cluster count stays constant *and above 1* (not collapsed).

    ``counts``: (R, ...) cluster counts at R recorded times (axis 0), any number of runs/settings after it;
    ``times``: (R,) increasing (pass log10 of the times to measure in decades). A plateau starting at record s
    lasts until the next change of count, or until the last record. → (...) float array (0 where the count
    never stays above 1).

    Used in chapter 6, § What repeated normalised attention does to tokens.
    """
    c = np.asarray(counts)
    t = np.asarray(times, dtype=np.float64)
    if c.ndim < 1 or t.shape != c.shape[:1]:
        raise checks.ParameterError("times", times, f"must have shape ({c.shape[0] if c.ndim else 0},), one per record",
                                    shown=f"shape {t.shape}")
    flat = c.reshape(len(t), -1)
    out = np.empty(flat.shape[1])
    for col in range(flat.shape[1]):
        run = flat[:, col]
        edges = np.r_[0, np.flatnonzero(np.diff(run)) + 1, len(run)]
        spans = [t[min(e, len(t) - 1)] - t[s] for s, e in zip(edges[:-1], edges[1:]) if run[s] > 1]
        out[col] = max(spans, default=0.0)
    return out.reshape(c.shape[1:])


def first_time_at_most(values, times, level: float) -> list:
    """For each column of ``values`` (R, K), the first of ``times`` (R,) at which the value is ≤ ``level``, or
    None if it never is. → a list of K entries (elements of ``times``, or None).

    Used in chapter 6, § Pre-LN against post-LN (the first layer with at most n/2 clusters).
    """
    v = np.asarray(values)
    if v.ndim != 2 or len(times) != v.shape[0]:
        raise checks.ParameterError("values", values, f"must have shape (R, K) with R = len(times) = {len(times)}",
                                    shown=f"shape {v.shape}")
    below = v <= level
    return [times[int(np.argmax(below[:, j]))] if below[:, j].any() else None for j in range(v.shape[1])]
