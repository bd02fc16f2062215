"""How well learned memories recover a mixture's true means. Used in chapter 3, § CLAM is generalised EM."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["matched_distances"]


def matched_distances(memories, truth) -> np.ndarray:
    """Distances ‖μ_k − m_σ(k)‖ between learned memories and true means, paired one to one by the Hungarian method
    (the pairing with the least total distance; Kuhn 1955).

    ``memories`` (K, D) and ``truth`` (K', D) array-likes  →  (min(K, K'),) distances, in the order of the memories
    paired. Its maximum is "the farthest memory from its true mean".
    Used in chapter 3, § CLAM is generalised EM.
    """
    memories, truth = np.asarray(memories, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if memories.ndim != 2 or truth.ndim != 2 or memories.shape[1] != truth.shape[1]:
        raise ValueError(f"`memories` and `truth` must be (K, D) and (K', D), got {memories.shape} and {truth.shape}")
    dist = np.linalg.norm(memories[:, None] - truth[None], axis=-1)
    return dist[linear_sum_assignment(dist)]
