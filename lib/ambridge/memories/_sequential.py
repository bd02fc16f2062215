"""The schedule CLAM+CRP and DP-means share — stream, create, re-seat, update — so that one is the other's limit.

A private module of :mod:`ambridge.memories`: :class:`SequentialMemory` is the base of
:class:`~ambridge.memories.CLAMCRP` (:mod:`.clamcrp`) and :class:`~ambridge.memories.DPMeans` (:mod:`.dpmeans`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from ..energies import squared_distances_by_inner_products
from ..runtime import select_device
from ._base import MemoryEstimator

__all__ = ["SequentialMemory", "Fit", "canonical"]


def canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel a partition by order of first appearance, so two equal partitions compare equal (used by both passes)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse]


def _frozen_sq_dists(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """‖x_i − c_k‖² for all pairs  →  (n, K), by the matrix-product form
    (:func:`ambridge.energies.squared_distances_by_inner_products`): one product for the whole pass of the batch
    schedule, where the exact form would hold n·K·D numbers at once."""
    if centres.shape[0] == 0:
        return np.zeros((x.shape[0], 0))
    return squared_distances_by_inner_products(torch.from_numpy(x), torch.from_numpy(centres)).numpy()


def _sums(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    sums = np.zeros((k, x.shape[1]))
    seated = labels >= 0
    np.add.at(sums, labels[seated], x[seated])
    return sums


@dataclass
class Fit:
    """One partition found by :meth:`SequentialMemory._partition`, with its memories and how the passes went.
    Used by CLAM+CRP and DP-means (chapter 4).
    """

    locations: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    n_iter: int
    converged: bool
    growth: np.ndarray
    capped: bool


class SequentialMemory(MemoryEstimator):
    """The schedule CLAM+CRP and DP-means share, so that one is the other's limit step by step.

    [choice] Points are visited in one seeded random order (the same in every pass). The first pass starts with no
    memories: the first point always opens one, like the CRP's first customer (Kulis & Jordan's Algorithm 1 starts
    instead from one cluster at the global mean). Later passes re-seat every point, its own memory's count reduced by
    one first — a memory left with no points is not an option for it, as a CRP table that the point alone occupied
    has weight 0 — and stop when the partition no longer changes (``converged_``) or after ``max_iter`` passes.
    ``max_iter=1`` is the pure streaming memory: one pass, no re-seating.

    ``update="online"`` (default) [choice]: a memory's location follows its points live — the point being re-seated
    is taken out first, and a point that joins moves the memory at once — so in the first pass the memory learns as
    the stream arrives. ``update="batch"`` (Kulis & Jordan's schedule): locations stay fixed during a pass, a memory
    created in the pass sits where it was created, and the M-step after the pass moves every memory to the location
    its points give; starting every memory at a single point, it opens more memories in the first pass, which the
    later passes cannot merge (on isotropic test mixtures it over-splits where "online" does not). Counts are always
    live. After every pass memories left without points are removed and the rest renumbered in
    order of creation.

    The pass is inherently serial (each point sees the memories the previous ones left), so it runs point by point
    in NumPy float64 on the CPU; the queries (``predict``, energies) are batched torch computations on ``device``.

    Subclasses define ``_location(sums, counts)`` (a memory's location from its points' sum and number) and
    ``_choose(i, sq_dist, counts, can_open)`` (given point i's squared distances and the counts of the memories it
    may join, the index of the chosen one, or ``len(counts)`` for a new memory).

    Used by :class:`~ambridge.memories.CLAMCRP` and :class:`~ambridge.memories.DPMeans` (chapter 4, § The memory:
    ELBO dynamics over K + 1 memories, and § The small-variance limit: DP-means).
    """

    #: The constraints of the schedule's parameters, merged into each subclass's ``_parameter_constraints``.
    _schedule_constraints: dict = {
        "update": [StrOptions({"batch", "online"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "max_memories": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "device": [str, torch.device],
    }

    def _order(self, n: int) -> np.ndarray:
        return torch.randperm(n, generator=torch.Generator().manual_seed(self._seed())).numpy()

    def _partition(self, x: np.ndarray, order: np.ndarray, start: np.ndarray | None = None) -> Fit:
        """The passes, from no memories or from the partition ``start`` (n,) (memories 0…K−1, none empty)."""
        n, d = x.shape
        cap = n if self.max_memories is None else min(n, self.max_memories)
        online = self.update == "online"
        labels = np.full(n, -1, dtype=np.int64) if start is None else np.asarray(start, dtype=np.int64).copy()
        counts = np.zeros(0, dtype=np.int64) if start is None else np.bincount(labels)
        locations = np.zeros((0, d)) if start is None else self._location(_sums(x, labels, counts.size), counts[:, None])
        growth, previous, capped, converged, it = [], None, False, False, 0
        for it in range(1, self.max_iter + 1):
            k0 = locations.shape[0]
            loc = np.concatenate([locations, np.zeros((n, d))])  # room for one new memory per point
            cnt = np.concatenate([counts, np.zeros(n, dtype=np.int64)])
            sums = np.concatenate([_sums(x, labels, k0), np.zeros((n, d))]) if online else None
            frozen = None if online else _frozen_sq_dists(x, locations)  # (n, k0)
            k = k0
            for i in order:
                xi, old = x[i], labels[i]
                if old >= 0:
                    cnt[old] -= 1
                    if online:
                        sums[old] -= xi
                        if cnt[old] > 0:
                            loc[old] = self._location(sums[old], cnt[old])
                if online:
                    sq = ((loc[:k] - xi) ** 2).sum(-1)
                else:
                    sq = np.concatenate([frozen[i], ((loc[k0:k] - xi) ** 2).sum(-1)])
                alive = np.flatnonzero(cnt[:k] > 0)
                can_open = alive.size < cap
                capped |= not can_open
                pick = self._choose(i, sq[alive], cnt[alive], can_open) if alive.size else 0
                if pick == alive.size:  # a new memory
                    j, k = k, k + 1
                    loc[j] = self._location(xi, 1)
                    if online:
                        sums[j] = xi
                else:
                    j = int(alive[pick])
                    if online:
                        sums[j] += xi
                        loc[j] = self._location(sums[j], cnt[j] + 1)
                cnt[j] += 1
                labels[i] = j
                if it == 1 and start is None:
                    growth.append(k)
            # M-step: drop empty memories, renumber in order of creation, move every memory to its points' location
            keep = np.flatnonzero(cnt[:k] > 0)
            renumber = np.full(k, -1, dtype=np.int64)
            renumber[keep] = np.arange(keep.size)
            labels = renumber[labels]
            counts = np.bincount(labels, minlength=keep.size)
            sums_k = _sums(x, labels, keep.size)
            locations = self._location(sums_k, counts[:, None])
            if self._after_pass(x, labels, locations):  # the model changed (a learned variance): locations follow
                locations = self._location(sums_k, counts[:, None])
            partition = canonical(labels)
            if previous is not None and np.array_equal(partition, previous):
                converged = True
                break
            previous = partition
        return Fit(locations, counts, labels, it, converged, np.asarray(growth, dtype=np.int64), capped)

    def _after_pass(self, x, labels, locations) -> bool:
        return False

    def _store(self, fit: Fit, order: np.ndarray) -> None:
        self.memories_ = fit.locations
        self.n_memories_ = int(fit.locations.shape[0])
        self.counts_ = fit.counts
        self.labels_ = fit.labels
        self.n_iter_ = fit.n_iter
        self.converged_ = fit.converged
        self.memory_growth_ = fit.growth
        self.order_ = order
        self.capped_ = fit.capped
        if fit.capped:
            warnings.warn(
                f"{type(self).__name__} reached max_memories = {self.max_memories}: the new-memory option was "
                "withheld from some points", ConvergenceWarning, stacklevel=3,
            )
        elif not fit.converged and self.max_iter > 1:
            warnings.warn(
                f"{type(self).__name__}: the partition still changed after max_iter = {self.max_iter} passes",
                ConvergenceWarning, stacklevel=3,
            )

    def _data(self, X) -> np.ndarray:
        """Validate the parameters and ``X`` at the start of ``fit``  →  (n, D) float64 array (the pass runs on it)."""
        self._validate_params()
        select_device(self.device)  # an unavailable device is refused at fit, not at the first query
        return np.ascontiguousarray(self._validated(X, reset=True))

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, and return ``labels_`` — the partition the fit ends with (the training points' memories)."""
        return self.fit(X).labels_
