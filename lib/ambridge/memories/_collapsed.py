"""CLAM+CRP with diagonal memories: the collapsed pass (a private module of :mod:`ambridge.memories`).

Each memory has its own variance per coordinate, and both its location and its variances are integrated out under a
Normal–Gamma prior (:mod:`ambridge.memories.marginals`). The log joint of a point with memory k is then
log(n_k − d) + log p(x ∣ the memory's other points) — a product of Student t densities — and with a new memory
log(α + dK) + log p(x ∣ no points). These are, up to a constant shared by all options, log p(X, z) with the point
moved to each option, so seating every point at its argmax (iterated conditional modes) never lowers the evidence
log p(X, z) of the partition: it is coordinate ascent on the very quantity that chooses the hyperparameters.

The schedule is :class:`~ambridge.memories._sequential.SequentialMemory`'s "online" one: one seeded order, the first
point opens a memory, later passes re-seat every point (taken out of its memory first) until the partition stops
changing; empty memories are dropped and the rest renumbered in order of creation after each pass.
Used by :class:`~ambridge.memories.CLAMCRP` with ``covariance="diag"`` (chapter 4, § Why it over-splits, and what
stops it).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from ._sequential import Fit, canonical
from .marginals import NormalGamma, normal_gamma_log_predictive, statistics

__all__ = ["collapsed_partition", "collapsed_log_joint"]


class _StudentT:
    """The Student t predictive of every memory (:func:`~ambridge.memories.marginals.normal_gamma_log_predictive`),
    held as location, squared scale, degrees of freedom and the log normaliser summed over coordinates."""

    def __init__(self, size: int, d: int):
        self.loc, self.scale2 = np.zeros((size, d)), np.ones((size, d))
        self.dof, self.const = np.ones(size), np.zeros(size)

    def refresh(self, idx, cnt, sums, sumsq, prior: NormalGamma) -> None:
        kappa_n, shape_n, rate_n, mean_n = prior.posterior(cnt[idx], sums[idx], sumsq[idx])
        dof = 2 * shape_n[..., 0]
        scale2 = rate_n * (kappa_n + 1) / (shape_n * kappa_n)
        self.loc[idx], self.scale2[idx], self.dof[idx] = mean_n, scale2, dof
        self.const[idx] = (sums.shape[1] * (gammaln((dof + 1) / 2) - gammaln(dof / 2) - 0.5 * np.log(dof * math.pi))
                           - 0.5 * np.log(scale2).sum(-1))

    def log_pdf(self, xi: np.ndarray, idx: np.ndarray) -> np.ndarray:
        z2 = (xi - self.loc[idx]) ** 2 / self.scale2[idx]
        dof = self.dof[idx]
        return self.const[idx] - (dof + 1) / 2 * np.log1p(z2 / dof[:, None]).sum(-1)


def collapsed_partition(
    x: np.ndarray, order: np.ndarray, prior: NormalGamma, *, log_alpha: float, discount: float, max_iter: int,
    cap: int, labels: np.ndarray | None = None,
) -> Fit:
    """Seat ``x`` (n, D) in ``order`` by the collapsed posterior, ``max_iter`` passes at most, at most ``cap``
    memories alive; ``labels`` (n,) a partition to start from (memories 0…K−1, none empty), else none  →  Fit whose
    ``locations`` are the memories' posterior means."""
    n, d = x.shape
    x2 = x * x
    lab = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64).copy()
    k = 0 if labels is None else int(lab.max()) + 1
    cnt, sums, sumsq = (np.zeros(n + k), np.zeros((n + k, d)), np.zeros((n + k, d)))
    if k:
        cnt[:k], sums[:k], sumsq[:k] = statistics(x, lab, k)
    new_pred = normal_gamma_log_predictive(x, np.zeros(1), np.zeros((1, d)), np.zeros((1, d)), prior)[:, 0]  # (n,)
    t = _StudentT(n + k, d)  # each memory's predictive, cached and refreshed when its points change
    t.refresh(np.arange(k), cnt, sums, sumsq, prior)
    growth, previous, capped, converged, it = [], None, False, False, 0
    for it in range(1, max_iter + 1):
        for i in order:
            old = lab[i]
            if old >= 0:
                cnt[old] -= 1
                sums[old] -= x[i]
                sumsq[old] -= x2[i]
                if cnt[old] > 0:
                    t.refresh(old, cnt, sums, sumsq, prior)
            alive = np.flatnonzero(cnt[:k] > 0)
            a = np.log(cnt[alive] - discount) + t.log_pdf(x[i], alive)
            if alive.size < cap:
                log_open = log_alpha if discount == 0.0 or alive.size == 0 else float(
                    np.logaddexp(log_alpha, math.log(discount * alive.size)))
                a = np.append(a, log_open + new_pred[i])
            else:
                capped = True
            pick = int(np.argmax(a)) if a.size else 0
            if pick == alive.size:
                j, k = k, k + 1
            else:
                j = int(alive[pick])
            cnt[j] += 1
            sums[j] += x[i]
            sumsq[j] += x2[i]
            t.refresh(j, cnt, sums, sumsq, prior)
            lab[i] = j
            if it == 1 and labels is None:
                growth.append(int((cnt[:k] > 0).sum()))
        keep = np.flatnonzero(cnt[:k] > 0)
        renumber = np.full(k, -1, dtype=np.int64)
        renumber[keep] = np.arange(keep.size)
        lab = renumber[lab]
        k = keep.size
        cnt, sums, sumsq = (np.concatenate([a_[keep], np.zeros((n,) + a_.shape[1:])]) for a_ in (cnt, sums, sumsq))
        t = _StudentT(n + k, d)
        t.refresh(np.arange(k), cnt, sums, sumsq, prior)
        partition = canonical(lab)
        if previous is not None and np.array_equal(partition, previous):
            converged = True
            break
        previous = partition
    _, _, _, means = prior.posterior(cnt[:k], sums[:k], sumsq[:k])
    return Fit(means, cnt[:k].astype(np.int64), lab, it, converged, np.asarray(growth, dtype=np.int64), capped)


def collapsed_log_joint(x: np.ndarray, stats, prior: NormalGamma, *, log_alpha: float, discount: float) -> np.ndarray:
    """The K + 1 log joints of points ``x`` (n, D) with fitted memories of statistics ``stats`` = (counts (K,),
    sums (K, D), sumsq (K, D)): log(n_k − d) + log p(x ∣ memory k), then log(α + dK) + log p(x ∣ a new memory)
    →  (n, K + 1). Used by ``CLAMCRP(covariance="diag")``'s queries."""
    counts, sums, sumsq = stats
    d = sums.shape[1]
    pred = normal_gamma_log_predictive(x, np.append(counts, 0.0), np.vstack([sums, np.zeros((1, d))]),
                                       np.vstack([sumsq, np.zeros((1, d))]), prior)
    k = counts.size
    log_open = float(np.logaddexp(log_alpha, math.log(discount * k))) if discount and k else log_alpha
    return pred + np.append(np.log(counts - discount), log_open)
