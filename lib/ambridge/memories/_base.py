"""What every clustering memory shares: scikit-learn's estimator interface, its parameter validation and input checks.

The memories are torch models underneath, but they are fitted and queried like any scikit-learn clusterer
(``fit``, ``predict``, ``fit_predict``, fitted attributes ending in ``_``), so one benchmark loop runs them beside
``KMeans`` and ``GaussianMixture``, and scikit-learn's own estimator checks run on them
(``tests/test_memories_sklearn.py``). The conventions are scikit-learn's: each estimator declares
``_parameter_constraints`` (validated at the start of ``fit``), data go through
:func:`sklearn.utils.validation.validate_data`, queries through :func:`sklearn.utils.validation.check_is_fitted`, and
``random_state`` through :func:`sklearn.utils.check_random_state`.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted, validate_data

from ..checks import ParameterError
from ..runtime import select_device

__all__ = ["EstimatorParameterError", "MemoryEstimator"]


class EstimatorParameterError(ParameterError, InvalidParameterError):
    """A memory's constructor parameter has a value scikit-learn's constraints refuse.

    It is both the library's :class:`~ambridge.checks.ParameterError` (``parameter `name` = value: …``) and
    scikit-learn's ``InvalidParameterError`` (a ``ValueError`` and ``TypeError``), whose message it carries after
    the colon, so the book's runner and scikit-learn's estimator checks both read it.
    Raised by every memory's ``fit`` (chapters 3 and 4).
    """


class MemoryEstimator(ClusterMixin, BaseEstimator):
    """Base class of the memories: parameter validation, input conversion, the fitted check and the torch seed.

    Subclasses declare ``_parameter_constraints`` and set ``memories_`` (K, D) in ``fit``. Used by
    :class:`~ambridge.memories.CLAM`, :class:`~ambridge.memories.CLAMELBO`, :class:`~ambridge.memories.CLAMCRP` and
    :class:`~ambridge.memories.DPMeans` (chapters 3 and 4).
    """

    _parameter_constraints: dict = {}

    def _validate_params(self) -> None:
        """scikit-learn's validation, one parameter at a time, so a refusal names its parameter as a ParameterError."""
        params = self.get_params(deep=False)
        for name, constraints in self._parameter_constraints.items():
            try:
                validate_parameter_constraints({name: constraints}, {name: params[name]}, type(self).__name__)
            except InvalidParameterError as err:
                raise EstimatorParameterError(name, params[name], str(err)) from None

    def _check_n_memories(self, n_samples: int) -> None:
        """K ≤ n: the one parameter limit that depends on the data."""
        if self.n_memories > n_samples:
            allowed = f"must be an integer in [1, n_samples = {n_samples}] (one point per memory at least)"
            raise ParameterError("n_memories", self.n_memories, allowed)

    def _validated(self, X, *, reset: bool) -> np.ndarray:
        """``X`` (n, D) array-like (or a torch tensor) of finite numbers  →  float64 array; ``reset`` in ``fit``."""
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        return validate_data(self, X, reset=reset, dtype=np.float64)

    def _as_tensor(self, X, *, fitting: bool) -> torch.Tensor:
        """``X`` validated (:meth:`_validated`)  →  float64 tensor on the estimator's device."""
        if not fitting:
            self._check_fitted()
        arr = self._validated(X, reset=fitting)
        arr = np.require(arr, requirements=["C_CONTIGUOUS", "WRITEABLE"])  # torch will not wrap a read-only array
        return torch.from_numpy(arr).to(select_device(self.device))

    def _check_fitted(self) -> None:
        check_is_fitted(self, "memories_")

    def _seed(self) -> int:
        """The integer seed of the estimator's torch generator.

        An integer ``random_state`` is the seed itself (the memories a seed gave before stay the same); None or a
        ``RandomState`` goes through :func:`sklearn.utils.check_random_state` and draws one.
        """
        if isinstance(self.random_state, Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
