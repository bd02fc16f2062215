"""Synthetic mixture streams, and how many memories CLAM+CRP makes on them.

Chapter 4 (§ The memory: ELBO dynamics over K + 1 memories, and § How many memories?) streams mixtures of K
unit-variance Gaussians in D dimensions through the memory, with its σ² and σ₀² set to the mixtures' true values so
that the model is right in every respect but the number of clusters.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ..data import sample_mixture
from .clamcrp import CLAMCRP

__all__ = ["mixture_stream", "StreamCounts", "memories_made"]


def mixture_stream(
    k: int, d: int, n: int, *, spread: float, seed: int, stream: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stream number ``stream`` of ``seed``: ``n`` points of a mixture of ``k`` unit-variance Gaussians in ``d``
    dimensions, equal weights, means drawn from N(0, spread² I), all from one generator seeded with
    1000·seed + stream  →  (points (n, d), components (n,)). Used in chapter 4, § How many memories?"""
    g = torch.Generator().manual_seed(1000 * seed + stream)
    means = spread * torch.randn(k, d, generator=g, dtype=dtype)
    return sample_mixture(means, 1.0, n, generator=g)


@dataclass
class StreamCounts:
    """Result of :func:`memories_made`: ``counts`` (streams,) memories made on each stream; ``converged`` (streams,)
    whether its partition stopped changing within the passes.
    Used in chapter 4, § How many memories?
    """

    counts: np.ndarray
    converged: np.ndarray


def memories_made(
    k: int,
    d: int,
    *,
    alpha: float,
    normaliser: bool,
    n: int,
    n_streams: int,
    spread: float,
    seed: int,
    max_iter: int = 100,
    device: str | torch.device = "cpu",
) -> StreamCounts:
    """How many memories CLAM+CRP makes on ``n_streams`` streams (:func:`mixture_stream` numbers 0, 1, …): each fitted
    with concentration ``alpha``, σ² = 1 and σ₀² = ``spread``² (the mixtures' true values), the normaliser kept or
    dropped, ``max_iter`` passes, ``random_state`` = seed + stream. A fit still changing after its passes is counted
    from its last pass and flagged in ``converged`` (its ConvergenceWarning is silenced: the flag says it).
    Used in chapter 4, § How many memories?"""
    counts, converged = [], []
    for s in range(n_streams):
        memory = CLAMCRP(alpha=alpha, variance=1.0, prior_variance=spread**2, normaliser=normaliser,
                         max_iter=max_iter, random_state=seed + s, device=device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            memory.fit(mixture_stream(k, d, n, spread=spread, seed=seed, stream=s)[0])
        counts.append(memory.n_memories_)
        converged.append(memory.converged_)
    return StreamCounts(np.array(counts), np.array(converged))
