"""The clustering benchmark of the paper's experiments (digest §2d): its data sets, its six methods and its seven
metrics.

The paper compares K-means, a Gaussian mixture (GMM), a variational Dirichlet-process GMM and its new associative
memories (CLAM, CLAM+ELBO, CLAM+CRP) on real data sets, scoring each run with four external metrics (agreement with
the true classes) and three internal ones (geometry of the clusters alone), and shows per-data-set distributions over
seeds: no method dominates. Its data pipeline and seeds are not public; the choices made here are stated where they
are made (module constants and docstrings) so they can be varied.

Running it, resumably: :mod:`ambridge.benchmarks.clustering_runs`; tables and figures for the chapters:
:mod:`ambridge.benchmarks.report`; the command line: ``python -m ambridge.benchmarks`` (:mod:`.__main__`). Used in
chapter 3, § The clustering benchmark, and chapter 4, § On real data: choosing σ².
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .datasets import DATASET_SEED, DATASETS, REAL, SYNTHETIC, Dataset, is_dataset_name, load_dataset

__all__ = [
    "Dataset",
    "DATASETS",
    "SYNTHETIC",
    "REAL",
    "DATASET_SEED",
    "is_dataset_name",
    "load_dataset",
    "METHODS",
    "GMM_SETTINGS",
    "dp_gmm_components",
    "DP_GMM_DEFAULT",
    "METRICS",
    "METRIC_LABELS",
    "HIGHER_IS_BETTER",
    "EXTERNAL_METRICS",
    "INTERNAL_METRICS",
    "score_clustering",
]

# ------------------------------------------------------------------------------------------------------ methods

#: Settings shared by the two Gaussian mixtures. Full covariances (the model the paper's GMM names); ``reg_covar``
#: adds 1e-3 to the diagonal — small next to the unit variance of standardized features, and it keeps the
#: covariance of digits' constant pixels invertible (scikit-learn's 1e-6 happens to work too, less stably).
GMM_SETTINGS = {"covariance_type": "full", "reg_covar": 1e-3}


def _kmeans(n_classes: int, seed: int):
    """K-means with K = the true number of classes; best of 10 k-means++ starts (scikit-learn's classic default)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_classes, n_init=10, random_state=seed)


def _gmm(n_classes: int, seed: int):
    """EM for a K-component full-covariance Gaussian mixture, one k-means start (scikit-learn's default)."""
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components=n_classes, random_state=seed, **GMM_SETTINGS)


def dp_gmm_components(n_classes: int) -> int:
    """The default DP-GMM's truncation (an upper bound on its clusters): ``max(2K, 10)``, so it can find more than K.
    Used by the method "DP-GMM (sklearn default)" (chapter 3, § A fair DP-GMM).
    """
    return max(2 * n_classes, 10)


def _dp_gmm_default(n_classes: int, seed: int):
    """Variational DP-GMM as scikit-learn sets it up: stick-breaking, truncated at :func:`dp_gmm_components`,
    concentration 1/truncation (scikit-learn's default), full covariances. It is told only the upper bound."""
    from sklearn.mixture import BayesianGaussianMixture

    return BayesianGaussianMixture(
        n_components=dp_gmm_components(n_classes), weight_concentration_prior_type="dirichlet_process",
        max_iter=500, random_state=seed, **GMM_SETTINGS,
    )


def _dp_gmm(n_classes: int, seed: int):
    """Variational DP-GMM with its concentration and covariance chosen per data set by held-out log-likelihood, and
    a truncation that is reported when it binds (:class:`ambridge.benchmarks.dpgmm.SelectedDPGMM`)."""
    from .dpgmm import SelectedDPGMM

    return SelectedDPGMM(n_classes=n_classes, random_state=seed)


def _clam(n_classes: int, seed: int):
    """CLAM (Saha et al.): K memories trained by masked reconstruction; each point goes to its nearest memory."""
    from ..memories import CLAM

    return CLAM(n_memories=n_classes, random_state=seed)


def _clam_elbo(n_classes: int, seed: int):
    """CLAM+ELBO: K memories, assignments by the ELBO dynamics (digest §2b)."""
    from ..memories import CLAMELBO

    return CLAMELBO(n_memories=n_classes, random_state=seed)


def _clam_crp(n_classes: int, seed: int):
    """CLAM+CRP: memories created on demand under a CRP prior with alpha = 1; it is not told K (digest §2c)."""
    from ..memories import CLAMCRP

    return CLAMCRP(alpha=1.0, random_state=seed)


#: The display name of scikit-learn's DP-GMM as it comes (the book's own, tuned DP-GMM is "DP-GMM").
DP_GMM_DEFAULT = "DP-GMM (sklearn default)"

#: Display name -> factory ``(n_classes, seed) -> estimator`` with ``fit_predict(X) -> labels (n,)``. The CLAM
#: family is imported from :mod:`ambridge.memories` only when its factory is called.
METHODS: dict[str, Callable[[int, int], Any]] = {
    "K-means": _kmeans,
    "GMM": _gmm,
    "DP-GMM": _dp_gmm,
    DP_GMM_DEFAULT: _dp_gmm_default,
    "CLAM": _clam,
    "CLAM+ELBO": _clam_elbo,
    "CLAM+CRP": _clam_crp,
}

# ------------------------------------------------------------------------------------------------------ metrics

#: External metrics (compare with the true classes; invariant to renaming the clusters), then internal ones.
EXTERNAL_METRICS = ("rand", "adjusted_rand", "ami", "nmi")
INTERNAL_METRICS = ("calinski_harabasz", "davies_bouldin", "silhouette")
METRICS = EXTERNAL_METRICS + INTERNAL_METRICS

METRIC_LABELS = {
    "rand": "Rand", "adjusted_rand": "adjusted Rand", "ami": "AMI", "nmi": "NMI",
    "calinski_harabasz": "Calinski–Harabasz", "davies_bouldin": "Davies–Bouldin", "silhouette": "silhouette",
}
#: Davies–Bouldin is the one score where lower is better.
HIGHER_IS_BETTER = {m: m != "davies_bouldin" for m in METRICS}


def score_clustering(X: np.ndarray, y_true: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The seven metrics of one clustering, plus ``n_clusters_found`` and a ``note``.

    ``X`` (n, d), ``y_true`` (n,), ``labels`` (n,) any hashable cluster ids. Rand, adjusted Rand, AMI and NMI
    (arithmetic normalisation) compare ``labels`` with ``y_true``; Calinski–Harabasz, Davies–Bouldin and
    silhouette (Euclidean, exact) use ``X`` and ``labels`` only. The internal scores are undefined unless
    2 <= clusters <= n − 1: they are then NaN and ``note`` says why (never an exception). Used for every run of the
    benchmark (chapter 3, § The clustering benchmark).
    """
    from sklearn import metrics as skm

    X = np.asarray(X)
    y_true, labels = np.asarray(y_true).ravel(), np.asarray(labels).ravel()
    if X.ndim != 2:
        raise ValueError(f"`X` must have shape (n, d), got {X.shape}")
    n = X.shape[0]
    if y_true.shape != (n,) or labels.shape != (n,):
        raise ValueError(f"`y_true` and `labels` must have shape ({n},), got {y_true.shape} and {labels.shape}")
    k = int(np.unique(labels).size)
    scores: dict[str, Any] = {
        "rand": skm.rand_score(y_true, labels),
        "adjusted_rand": skm.adjusted_rand_score(y_true, labels),
        "ami": skm.adjusted_mutual_info_score(y_true, labels),
        "nmi": skm.normalized_mutual_info_score(y_true, labels),
    }
    if 2 <= k <= n - 1:
        scores.update(
            calinski_harabasz=skm.calinski_harabasz_score(X, labels),
            davies_bouldin=skm.davies_bouldin_score(X, labels),
            silhouette=skm.silhouette_score(X, labels),
        )
        note = ""
    else:
        scores.update({m: math.nan for m in INTERNAL_METRICS})
        note = f"internal scores undefined: {k} cluster{'s' if k != 1 else ''} for {n} points"
    scores = {m: float(v) for m, v in scores.items()}
    return {**scores, "n_clusters_found": k, "note": note}
