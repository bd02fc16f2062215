"""A fair variational DP-GMM for the clustering benchmark: hyperparameters chosen without labels, a truncation that
does not bind.

scikit-learn's :class:`~sklearn.mixture.BayesianGaussianMixture` with its defaults (concentration 1/truncation, full
covariances) fills every component it is given on wine, breast cancer and digits: with full covariances in 13–64
dimensions and a few hundred points, many small components fit better than a few large ones, whatever the
concentration. :class:`SelectedDPGMM` chooses the concentration γ *and* the covariance family on a grid, by the
log-likelihood of a held-out fifth of the data (no labels are used), refits on all the data, and doubles the
truncation while every component is in use. Used in chapter 3, § A fair DP-GMM.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

__all__ = ["SelectedDPGMM", "CONCENTRATIONS", "COVARIANCE_TYPES"]

#: The concentration grid (γ of the stick-breaking prior; scikit-learn's default is 1/truncation).
CONCENTRATIONS = (0.01, 1.0, 100.0)
#: The covariance families tried, from the most to the least flexible.
COVARIANCE_TYPES = ("full", "diag", "spherical")


_PARAMS = ("n_classes", "concentrations", "covariance_types", "holdout", "truncation", "max_truncation", "reg_covar",
           "max_iter", "random_state")


class SelectedDPGMM:
    """Variational DP-GMM (stick-breaking, truncated) with (γ, covariance family) chosen by held-out log-likelihood.

    ``n_classes`` is used only for the starting truncation ``max(2K, 20)`` (``truncation`` overrides it); the number
    of clusters is the model's. ``fit``: split off ``holdout`` of the points (seeded by ``random_state``), fit every
    (γ, covariance) of the grid on the rest, keep the pair whose fit gives the held-out points the highest mean
    log-likelihood, refit it on all points, and while the refit uses every component double the truncation (up to
    ``max_truncation``). After ``fit``: ``labels_``, ``concentration_``, ``covariance_type_``, ``truncation_``,
    ``n_clusters_`` (components that received points), ``truncation_binds_`` (all components used even at the
    last truncation), ``heldout_scores_`` {(γ, covariance): mean held-out log-likelihood} and ``details_`` (one line
    for the benchmark's records). ``get_params`` as scikit-learn's estimators have it (scikit-learn is imported only
    when it fits, so that importing the benchmark stays light). Used in chapter 3, § A fair DP-GMM.
    """

    def __init__(self, n_classes: int = 2, *, concentrations: Sequence[float] = CONCENTRATIONS,
                 covariance_types: Sequence[str] = COVARIANCE_TYPES, holdout: float = 0.2,
                 truncation: int | None = None, max_truncation: int = 40, reg_covar: float = 1e-3,
                 max_iter: int = 500, random_state: int | None = None):
        self.n_classes = n_classes
        self.concentrations = concentrations
        self.covariance_types = covariance_types
        self.holdout = holdout
        self.truncation = truncation
        self.max_truncation = max_truncation
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.random_state = random_state

    def get_params(self, deep: bool = False) -> dict:
        """The constructor's parameters, by name (what the benchmark's store key records)."""
        return {name: getattr(self, name) for name in _PARAMS}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"SelectedDPGMM({shown})"

    def _mixture(self, truncation: int, concentration: float, covariance_type: str):
        from sklearn.mixture import BayesianGaussianMixture

        return BayesianGaussianMixture(
            n_components=truncation, weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=concentration, covariance_type=covariance_type, reg_covar=self.reg_covar,
            max_iter=self.max_iter, random_state=self.random_state)

    def fit(self, X, y=None):
        from sklearn.model_selection import train_test_split

        X = np.asarray(X, dtype=np.float64)
        if not 0 < self.holdout < 1:
            raise ValueError(f"`holdout` = {self.holdout!r}: must lie in (0, 1)")
        start = self.truncation or max(2 * int(self.n_classes), 20)
        truncation = max(1, min(start, len(X) - 1))
        fit_part, held = train_test_split(X, test_size=self.holdout, random_state=self.random_state)
        scores = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-convergence of a grid point is judged by its held-out score
            for cov in self.covariance_types:
                for gamma in self.concentrations:
                    fitted = self._mixture(min(truncation, len(fit_part) - 1), gamma, cov).fit(fit_part)
                    scores[(float(gamma), cov)] = float(fitted.score(held))
        (gamma, cov) = max(scores, key=scores.get)
        while True:
            model = self._mixture(truncation, gamma, cov).fit(X)
            labels = model.predict(X)
            used = int(np.unique(labels).size)
            if used < truncation or 2 * truncation > min(self.max_truncation, len(X) - 1):
                break
            truncation *= 2
        self.concentration_, self.covariance_type_, self.truncation_ = gamma, cov, truncation
        self.heldout_scores_, self.labels_, self.n_clusters_ = scores, labels, used
        self.truncation_binds_ = used >= truncation
        self.converged_ = bool(model.converged_)
        self.details_ = (f"concentration={gamma:g}; covariance={cov}; truncation={truncation}; "
                         f"clusters={used}; binds={'yes' if self.truncation_binds_ else 'no'}")
        return self

    def fit_predict(self, X, y=None):
        return self.fit(X).labels_
