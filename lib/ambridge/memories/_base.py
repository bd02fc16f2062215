"""What every clustering memory shares: the scikit-learn estimator interface and input checks.

The memories are torch models underneath, but they are fitted and queried like any scikit-learn clusterer
(``fit``, ``predict``, ``fit_predict``, fitted attributes ending in ``_``), so one benchmark loop runs them beside
``KMeans`` and ``GaussianMixture``.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import NotFittedError

from ..runtime import select_device


class MemoryEstimator(ClusterMixin, BaseEstimator):
    """Base class: input validation and the fitted check. Subclasses set ``memories_`` (K, D) in ``fit``."""

    def _as_tensor(self, X, *, fitting: bool) -> torch.Tensor:
        """``X`` (n, D) array-like of finite numbers  →  float64 tensor on the estimator's device."""
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"`X` must be a numeric array of shape (n_samples, n_features): {err}") from None
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"`X` must have shape (n_samples, n_features) with both >= 1, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("`X` contains NaN or infinity")
        if fitting:
            self.n_features_in_ = arr.shape[1]
        elif arr.shape[1] != self.n_features_in_:
            raise ValueError(f"`X` has {arr.shape[1]} features, but the memory was fitted with {self.n_features_in_}")
        return torch.from_numpy(arr).to(select_device(getattr(self, "device", "cpu")))

    def _check_fitted(self) -> None:
        if not hasattr(self, "memories_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")

    def _seed(self) -> int:
        """The integer seed behind ``random_state`` (None draws a fresh one)."""
        seed = self.random_state
        if seed is None:
            return int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"`random_state` must be None or a non-negative integer, got {seed!r}")
        return int(seed)
