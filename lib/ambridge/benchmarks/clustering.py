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
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = [
    "Dataset",
    "DATASETS",
    "SYNTHETIC",
    "DATASET_SEED",
    "is_dataset_name",
    "load_dataset",
    "METHODS",
    "GMM_SETTINGS",
    "dp_gmm_components",
    "METRICS",
    "METRIC_LABELS",
    "HIGHER_IS_BETTER",
    "EXTERNAL_METRICS",
    "INTERNAL_METRICS",
    "score_clustering",
]

# ----------------------------------------------------------------------------------------------------- datasets

#: Seed of the synthetic mixtures' generator. Fixed, and independent of the methods' seeds: every method and seed
#: sees the same data, so the spread over seeds is the methods' own randomness.
DATASET_SEED = 2402

#: Synthetic Gaussian mixtures with known K: ``name -> settings`` of :func:`sklearn.datasets.make_blobs`.
#: ``n_per_cluster`` points per component (equal weights), centres uniform in ``center_box`` per coordinate,
#: isotropic standard deviation ``cluster_std``. The 16-dimensional mixture gets a wider spread so that its
#: components overlap about as much as the 2-dimensional one's (K-means reaches an adjusted Rand index of about
#: 0.85 on both, not 1); any ``blobs_k<K>_d<D>`` name not listed here uses ``cluster_std = 1``.
SYNTHETIC: dict[str, dict[str, Any]] = {
    "blobs_k5_d2": {"n_clusters": 5, "n_features": 2, "n_per_cluster": 100, "cluster_std": 1.0,
                    "center_box": (-10.0, 10.0)},
    "blobs_k10_d16": {"n_clusters": 10, "n_features": 16, "n_per_cluster": 100, "cluster_std": 6.0,
                      "center_box": (-10.0, 10.0)},
}

_BUNDLED = ("iris", "wine", "breast_cancer", "digits")  # sklearn.datasets.load_<name>: files inside scikit-learn

#: The benchmark's data sets, in the order tables and plots show them.
DATASETS: tuple[str, ...] = (*_BUNDLED, *SYNTHETIC)

_BLOBS = re.compile(r"^blobs_k(\d+)_d(\d+)$")


def is_dataset_name(name) -> bool:
    """Whether :func:`load_dataset` knows ``name``: one of the bundled data sets or any ``blobs_k<K>_d<D>``.
    Used by the runs and the command line to refuse a typo before any fit (chapter 3, § The clustering benchmark).
    """
    return isinstance(name, str) and (name in _BUNDLED or _BLOBS.match(name) is not None)


@dataclass(frozen=True)
class Dataset:
    """A data set ready to cluster: ``X`` (n, d) float64, standardized; ``y`` (n,) int true classes; ``n_classes``.
    Used in chapter 3, § The clustering benchmark, and chapter 4, § On real data: choosing σ².
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    n_classes: int


def _standardize(X: np.ndarray) -> np.ndarray:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(np.asarray(X, dtype=np.float64))


def _synthetic(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_blobs

    match = _BLOBS.match(name)
    k, d = int(match.group(1)), int(match.group(2))
    spec = SYNTHETIC.get(name, {"n_per_cluster": 100, "cluster_std": 1.0, "center_box": (-10.0, 10.0)})
    if k < 1 or d < 1:
        raise ValueError(f"data set `{name}`: K and D must be at least 1")
    return make_blobs(
        n_samples=k * spec["n_per_cluster"], n_features=d, centers=k, cluster_std=spec["cluster_std"],
        center_box=spec["center_box"], random_state=seed,
    )


def load_dataset(name: str, *, seed: int | None = None) -> Dataset:
    """Load one of :data:`DATASETS` (or any ``blobs_k<K>_d<D>``), standardized: every feature has mean 0 and
    variance 1 (constant features, such as digits' blank border pixels, stay 0).

    - ``iris`` (150, 4) K=3, ``wine`` (178, 13) K=3, ``breast_cancer`` (569, 30) K=2, ``digits`` (1797, 64) K=10
      (8x8 images; the paper's "USPS-like digits"): :func:`sklearn.datasets.load_iris` etc., which read files
      shipped inside scikit-learn — nothing is downloaded.
    - ``blobs_k<K>_d<D>``: a mixture of K isotropic Gaussians in D dimensions (settings in :data:`SYNTHETIC`),
      drawn with ``seed`` (default :data:`DATASET_SEED`, so the data do not change with the methods' seeds).

    Standardization is this book's choice (the paper's preprocessing is not public): the features of wine and
    breast cancer differ in scale by orders of magnitude, and every method here measures Euclidean distance.
    Real data sets ignore ``seed``. Used in chapter 3 (the exercise "The cold limit is k-means") and chapter 4,
    § On real data: choosing σ².
    """
    if not is_dataset_name(name):
        valid = ", ".join(DATASETS)
        raise ValueError(f"unknown data set {name!r}; valid: {valid} (or any blobs_k<K>_d<D>)")
    if name in _BUNDLED:
        import sklearn.datasets

        X, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    else:
        X, y = _synthetic(name, DATASET_SEED if seed is None else seed)
    y = np.asarray(y, dtype=np.int64)
    return Dataset(name=name, X=_standardize(X), y=y, n_classes=int(np.unique(y).size))


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
    """The DP-GMM's truncation (an upper bound on its clusters): ``max(2K, 10)``, so it can find more than K.
    Used by the DP-GMM method (chapter 3, § The clustering benchmark).
    """
    return max(2 * n_classes, 10)


def _dp_gmm(n_classes: int, seed: int):
    """Variational DP-GMM (stick-breaking, truncated at :func:`dp_gmm_components`); the concentration keeps
    scikit-learn's default 1/truncation. It is told only the upper bound: its number of clusters is data-driven."""
    from sklearn.mixture import BayesianGaussianMixture

    return BayesianGaussianMixture(
        n_components=dp_gmm_components(n_classes), weight_concentration_prior_type="dirichlet_process",
        max_iter=500, random_state=seed, **GMM_SETTINGS,
    )


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


#: Display name -> factory ``(n_classes, seed) -> estimator`` with ``fit_predict(X) -> labels (n,)``. The CLAM
#: family is imported from :mod:`ambridge.memories` only when its factory is called.
METHODS: dict[str, Callable[[int, int], Any]] = {
    "K-means": _kmeans,
    "GMM": _gmm,
    "DP-GMM": _dp_gmm,
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
