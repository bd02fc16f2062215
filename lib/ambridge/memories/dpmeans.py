"""DP-means (Kulis & Jordan 2012): K-means with a penalty λ per cluster — CLAM+CRP's small-variance limit.

With α = e^{−βλ}/c_D (:func:`ambridge.memories.crp.small_variance_log_alpha`) CLAM+CRP's decision, divided by β,
becomes as β → ∞ "open a memory iff min_k ‖x − μ_k‖² > λ, else join the nearest". :class:`DPMeans` runs that rule on
the schedule CLAM+CRP runs (:mod:`._sequential`), so the limit can be checked partition by partition (chapter 4,
§ The small-variance limit: DP-means).
"""

from __future__ import annotations

from numbers import Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from ..energies import squared_distances
from ._sequential import SequentialMemory

__all__ = ["DPMeans"]


class DPMeans(SequentialMemory):
    """DP-means (Kulis & Jordan 2012): K-means with a penalty λ per cluster, so K is found from the data.

    A point joins its nearest mean unless every mean is farther than λ in *squared* distance, in which case it opens
    a cluster at itself; means are cluster means. This is the β → ∞ limit of :class:`~ambridge.memories.CLAMCRP`
    with α = e^{−βλ}/c_D, and it runs the same schedule (the same streaming order for the same ``random_state``, the
    first point opening the first cluster, counts excluding the point being re-seated, and the same ``update``).
    ``update="batch"`` is Kulis & Jordan's Algorithm 1 (but for its start from one cluster at the global mean), and
    with it no pass increases the objective Σ_i ‖x_i − μ_{z_i}‖² + λK (``objective_``).

    Used in chapter 4, § The small-variance limit: DP-means (and its exercise "Why α must shrink").

    Parameters
    ----------
    lam : float, default=1.0
        The penalty λ > 0 per cluster, compared with squared distances.
    update : {"online", "batch"}, default="online"
        "online": a mean follows its points live; "batch": means fixed during a pass and moved after it.
    max_iter : int, default=100
        Passes at most (1: one streaming pass, no re-seating).
    max_memories : int or None, default=None
        Cap on clusters alive at once (None: no cap); reaching it warns and sets ``capped_``.
    random_state : int, RandomState instance or None, default=None
        Seed of the streaming order (an int is the torch seed itself, as in CLAM+CRP).
    device : str or torch.device, default="cpu"
        Where ``predict`` runs.

    Attributes
    ----------
    memories_, cluster_centers_ : ndarray of shape (K, D)
        The cluster means (the same array).
    n_memories_ : int
        K, the clusters found.
    counts_ : ndarray of shape (K,)
        Points per cluster.
    labels_ : ndarray of shape (n,)
        Each training point's cluster.
    n_iter_ : int
        Passes run.
    converged_ : bool
        Whether the partition stopped changing.
    memory_growth_ : ndarray of shape (n,)
        K after each point of the first pass, in streaming order ``order_``.
    order_ : ndarray of shape (n,)
        The streaming order.
    objective_ : list of float
        Σ_i ‖x_i − μ_{z_i}‖² + λK after each pass.
    capped_ : bool
        Whether ``max_memories`` withheld a new cluster from some point.
    n_features_in_ : int
        D.
    """

    _parameter_constraints: dict = {
        **SequentialMemory._schedule_constraints,
        "lam": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        lam: float = 1.0,
        *,
        update: str = "online",
        max_iter: int = 100,
        max_memories: int | None = None,
        random_state: int | None = None,
        device: str = "cpu",
    ):
        self.lam = lam
        self.update = update
        self.max_iter = max_iter
        self.max_memories = max_memories
        self.random_state = random_state
        self.device = device

    @staticmethod
    def _location(sums, counts):
        return sums / counts

    def _choose(self, i, sq_dist, counts, can_open) -> int:
        nearest = int(np.argmin(sq_dist))
        return counts.size if can_open and sq_dist[nearest] > self.lam else nearest

    def _after_pass(self, x, labels, locations) -> bool:
        self.objective_.append(float(((x - locations[labels]) ** 2).sum()) + self.lam * locations.shape[0])
        return False

    def fit(self, X, y=None) -> "DPMeans":
        """Stream, re-seat and update until the partition stops changing (or ``max_iter`` passes); returns self."""
        x = self._data(X)
        self.objective_ = []
        order = self._order(x.shape[0])
        self._store(self._partition(x, order), order)
        self.cluster_centers_ = self.memories_
        return self

    def predict(self, X) -> np.ndarray:
        """The nearest mean to each point (no new clusters at prediction)  →  (n,) ints."""
        x = self._as_tensor(X, fitting=False)
        mem = torch.as_tensor(self.memories_, dtype=x.dtype, device=x.device)
        return squared_distances(x, mem).argmin(-1).cpu().numpy()
