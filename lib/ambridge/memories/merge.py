"""The merge step: join two memories whenever that raises the evidence of the partition.

CLAM+CRP re-seats one point at a time (iterated conditional modes). A point never leaves a memory of many points for
another one, so two memories that split one cluster between them stay split even when the evidence of the partition,
log p(X, z) = log p(z) + Σ_k log p(X_k), would rise if they were one: single-point moves cannot cross that valley.
The merge step moves whole memories. Joining memories j and l changes the prior (the EPPF of
:func:`ambridge.memories.crp.crp_log_prior`) by

    −log(α + (K − 1)d) + log Γ(n_j + n_l − d) − log Γ(n_j − d) − log Γ(n_l − d) + log Γ(1 − d)

and the likelihood by log p(X_j ∪ X_l) − log p(X_j) − log p(X_l) (any marginal that is a function of the memories'
sufficient statistics, :mod:`ambridge.memories.marginals`). :func:`greedy_merge` joins the pair with the largest gain
while a gain is positive, so the evidence rises at every merge and never falls.

[choice] Candidate pairs are each memory and its ``neighbours`` nearest memories (by the distance between their
points' means), recomputed after every merge — all pairs when K ≤ 2·``neighbours`` + 1.

Used in chapter 4, § Why it over-splits, and what stops it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import gammaln

from .marginals import statistics

__all__ = ["MergeResult", "merge_prior_gain", "greedy_merge"]

Marginal = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def merge_prior_gain(n_j, n_l, n_memories: int, *, log_alpha: float, discount: float = 0.0) -> np.ndarray:
    """The change of the CRP / Pitman–Yor log prior of a partition with ``n_memories`` tables when tables of sizes
    ``n_j`` and ``n_l`` (arrays, broadcast) are joined (module docstring). Used by :func:`greedy_merge`."""
    n_j, n_l = np.asarray(n_j, dtype=np.float64), np.asarray(n_l, dtype=np.float64)
    if discount > 0.0 and n_memories > 1:
        log_open = float(np.logaddexp(log_alpha, math.log((n_memories - 1) * discount)))
    else:
        log_open = log_alpha
    d = discount
    return -log_open + gammaln(n_j + n_l - d) - gammaln(n_j - d) - gammaln(n_l - d) + gammaln(1 - d)


@dataclass
class MergeResult:
    """Result of :func:`greedy_merge`: ``labels`` (n,) renumbered 0…K'−1 in order of first appearance, and the
    evidence ``gains`` of the merges made, in order (all positive). Used by CLAM+CRP (chapter 4)."""

    labels: np.ndarray
    gains: list[float] = field(default_factory=list)


def _candidate_pairs(centres: np.ndarray, neighbours: int) -> np.ndarray:
    k = centres.shape[0]
    if k <= 2 * neighbours + 1:
        j, l = np.triu_indices(k, 1)
        return np.stack([j, l], 1)
    sq = (centres**2).sum(1)
    dist = sq[:, None] + sq[None] - 2 * centres @ centres.T
    np.fill_diagonal(dist, np.inf)
    near = np.argpartition(dist, neighbours, axis=1)[:, :neighbours]  # (K, neighbours)
    pairs = np.stack([np.repeat(np.arange(k), neighbours), near.ravel()], 1)
    return np.unique(np.sort(pairs, 1), axis=0)


def greedy_merge(
    x: np.ndarray, labels: np.ndarray, log_marginal: Marginal, *, log_alpha: float, discount: float = 0.0,
    neighbours: int = 16,
) -> MergeResult:
    """Join memories, the best pair first, while the evidence log p(X, z) rises (module docstring).

    ``x`` (n, D); ``labels`` (n,) memories 0…K−1, none empty; ``log_marginal(counts, sums, sumsq)`` → (...) the log
    evidence of memories from their statistics (:mod:`ambridge.memories.marginals`); ``log_alpha`` log α;
    ``discount`` d. Used by CLAM+CRP's ``merge=True`` (chapter 4, § Why it over-splits, and what stops it).
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    k = int(labels.max()) + 1
    counts, sums, sumsq = statistics(x, labels, k)
    alive = np.arange(k)  # memory ids still present
    gains: list[float] = []
    while alive.size > 1:
        c, s, t = counts[alive], sums[alive], sumsq[alive]
        pairs = _candidate_pairs(s / c[:, None], neighbours)
        j, l = pairs[:, 0], pairs[:, 1]
        gain = (merge_prior_gain(c[j], c[l], alive.size, log_alpha=log_alpha, discount=discount)
                + log_marginal(c[j] + c[l], s[j] + s[l], t[j] + t[l])
                - log_marginal(c[j], s[j], t[j]) - log_marginal(c[l], s[l], t[l]))
        best = int(np.argmax(gain))
        if not gain[best] > 1e-9:
            break
        keep, gone = alive[j[best]], alive[l[best]]
        counts[keep] += counts[gone]
        sums[keep] += sums[gone]
        sumsq[keep] += sumsq[gone]
        labels[labels == gone] = keep
        alive = alive[alive != gone]
        gains.append(float(gain[best]))
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return MergeResult(rank[inverse], gains)
