"""The clustering benchmark of the paper's experiments (digest §2d): six methods, bundled and synthetic data, seven
metrics, many seeds.

The paper compares K-means, a Gaussian mixture (GMM), a variational Dirichlet-process GMM and its new associative
memories (CLAM, CLAM+ELBO, CLAM+CRP) on real data sets, scoring each run with four external metrics (agreement with
the true classes) and three internal ones (geometry of the clusters alone), and shows per-data-set distributions over
seeds: no method dominates. Its data pipeline and seeds are not public; the choices made here are stated where they
are made (module constants and docstrings) so they can be varied.

Command line (presets in ``chapters/presets/clustering_benchmark/``)::

    python -m ambridge.cluster_benchmark --preset quick            # iris, wine, one mixture; 3 seeds
    python -m ambridge.cluster_benchmark --preset paper            # everything x 10 seeds -> chapters/artifacts/...
    python -m ambridge.cluster_benchmark --preset quick --methods K-means GMM --seeds 2 --out /tmp/bench

Results (one directory):

- ``runs.csv`` — one row per finished (dataset, method, seed), appended and flushed as each fit finishes, so a killed
  run loses at most the fit in progress; a rerun into the same directory skips what is there. Columns:
  :data:`COLUMNS` (see :data:`COLUMNS` for their meaning).
- ``benchmark.json`` — written when a run completes: :func:`ambridge.runtime.run_record` (parameters, commit,
  hardware, wall time) plus the estimators' settings and counts of failed runs and undefined scores.

For the chapters: :func:`load_results` (validated runs table), :func:`long_format` (one row per metric value, for
plotting), :func:`violin_plot` (one data set, one panel per metric), :func:`summary_table` (medians over seeds, best
marked, for :func:`ambridge.report.markdown_table`) and :func:`missing_runs` (what an artifact lacks).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "Dataset",
    "DATASETS",
    "SYNTHETIC",
    "DATASET_SEED",
    "load_dataset",
    "METHODS",
    "GMM_SETTINGS",
    "dp_gmm_components",
    "METRICS",
    "METRIC_LABELS",
    "HIGHER_IS_BETTER",
    "EXTERNAL_METRICS",
    "INTERNAL_METRICS",
    "COLUMNS",
    "RUNS_FILE",
    "META_FILE",
    "score_clustering",
    "run_benchmark",
    "load_results",
    "read_meta",
    "long_format",
    "missing_runs",
    "summary_table",
    "violin_plot",
    "load_benchmark_preset",
    "main",
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


@dataclass(frozen=True)
class Dataset:
    """A data set ready to cluster: ``X`` (n, d) float64, standardized; ``y`` (n,) int true classes; ``n_classes``."""

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
    Real data sets ignore ``seed``.
    """
    if not isinstance(name, str) or not (name in _BUNDLED or _BLOBS.match(name)):
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
    """The DP-GMM's truncation (an upper bound on its clusters): ``max(2K, 10)``, so it can find more than K."""
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
    from ambridge.memories import CLAM

    return CLAM(n_memories=n_classes, random_state=seed)


def _clam_elbo(n_classes: int, seed: int):
    """CLAM+ELBO: K memories, assignments by the ELBO dynamics (digest §2b)."""
    from ambridge.memories import CLAMELBO

    return CLAMELBO(n_memories=n_classes, random_state=seed)


def _clam_crp(n_classes: int, seed: int):
    """CLAM+CRP: memories created on demand under a CRP prior with alpha = 1; it is not told K (digest §2c)."""
    from ambridge.memories import CLAMCRP

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
    2 <= clusters <= n − 1: they are then NaN and ``note`` says why (never an exception).
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


# ------------------------------------------------------------------------------------------------------- runner

RUNS_FILE = "runs.csv"
META_FILE = "benchmark.json"

#: The columns of ``runs.csv`` and of the frames :func:`run_benchmark` and :func:`load_results` return, one row
#: per (dataset, method, seed): ``n_samples``, ``n_features``, ``n_classes`` describe the data; ``n_clusters_found``
#: the clustering (missing if the run failed); ``fit_time_s`` the wall time of ``fit_predict``; then the seven
#: :data:`METRICS` (NaN when undefined or failed); ``note`` (why internal scores are NaN), ``warnings`` (what
#: the estimator warned, e.g. non-convergence) and ``error`` (``Type: message`` if the fit raised; else empty).
COLUMNS: tuple[str, ...] = (
    "dataset", "method", "seed", "n_samples", "n_features", "n_classes", "n_clusters_found", "fit_time_s",
    *METRICS, "note", "warnings", "error",
)
_INT_COLUMNS = ("seed", "n_samples", "n_features", "n_classes")
_TEXT_COLUMNS = ("dataset", "method", "note", "warnings", "error")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fit_labels(estimator, X: np.ndarray) -> np.ndarray:
    if hasattr(estimator, "fit_predict"):
        labels = estimator.fit_predict(X)
    else:
        labels = estimator.fit(X).labels_
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"the estimator returned labels of shape {labels.shape}, expected ({X.shape[0]},)")
    return labels


def _run_one(data: Dataset, method: str, factory: Callable[[int, int], Any], seed: int) -> dict[str, Any]:
    """Fit one method on one data set with one seed; never raises an ``Exception`` (a failure is a row)."""
    row: dict[str, Any] = {
        "dataset": data.name, "method": method, "seed": seed, "n_samples": data.X.shape[0],
        "n_features": data.X.shape[1], "n_classes": data.n_classes, "n_clusters_found": None,
        "fit_time_s": math.nan, **{m: math.nan for m in METRICS}, "note": "", "warnings": "", "error": "",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator = factory(data.n_classes, seed)
            start = time.perf_counter()
            labels = _fit_labels(estimator, data.X)
            row["fit_time_s"] = time.perf_counter() - start
            row.update(score_clustering(data.X, data.y, labels))
        except Exception as err:  # noqa: BLE001 - one failed fit must not lose the benchmark
            row["error"] = _one_line(f"{type(err).__name__}: {err}")
    seen = dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)  # unique, in order
    row["warnings"] = _one_line("; ".join(seen))
    return row


def _resolve_methods(methods) -> dict[str, Callable[[int, int], Any]]:
    if isinstance(methods, Mapping):
        return dict(methods)
    chosen = {}
    for name in methods:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
        chosen[name] = METHODS[name]
    return chosen


def _resolve_seeds(seeds) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"`seeds` = {seeds!r}: a count must be at least 1")
        return list(range(int(seeds)))
    values = list(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in values):
        raise ValueError(f"`seeds` = {seeds!r}: must be a count, or a non-empty list of integers at least 0")
    if len(set(values)) != len(values):
        raise ValueError(f"`seeds` = {seeds!r}: repeated seeds")
    return [int(s) for s in values]


def _check_frame(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Validate a runs table's columns and cell types; return it with clean dtypes. ``source`` names it in errors."""
    if tuple(df.columns) != COLUMNS:
        raise ValueError(
            f"{source} is not a clustering-benchmark runs table: its columns are {list(df.columns)}, "
            f"expected {list(COLUMNS)}"
        )
    df = df.copy()
    for col in _TEXT_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    for col in _INT_COLUMNS + ("n_clusters_found",):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() if col != "n_clusters_found" else values.isna() & df[col].notna()
        bad |= values.notna() & (values != values.round())
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{source}: row {i + 1}: column `{col}` must be an integer, got {df[col].iloc[i]!r}")
        df[col] = values.astype("int64" if col != "n_clusters_found" else "Int64")
    for col in ("fit_time_s", *METRICS):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna() & (df[col].astype(str).str.lower() != "nan")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{source}: row {i + 1}: column `{col}` must be a number, got {df[col].iloc[i]!r}")
        df[col] = values.astype("float64")
    if (df["dataset"] == "").any() or (df["method"] == "").any():
        raise ValueError(f"{source}: every row needs a dataset and a method")
    keys = df.duplicated(["dataset", "method", "seed"])
    if keys.any():
        i = int(np.flatnonzero(keys.to_numpy())[0])
        raise ValueError(f"{source}: row {i + 1}: (dataset, method, seed) = "
                         f"{tuple(df.loc[df.index[i], ['dataset', 'method', 'seed']])} appears twice")
    return df.reset_index(drop=True)


def _read_runs(path: Path) -> pd.DataFrame:
    """Read ``runs.csv``; a last line cut off mid-write (no newline: the run was killed) is dropped from the file."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a clustering-benchmark runs table: not UTF-8 text") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # the torn row is redone
        path.write_text(text)
    if not text.strip():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS}).pipe(_check_frame, str(path))
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.ParserError as err:
        raise ValueError(f"{path} is not a clustering-benchmark runs table: {_one_line(err)}") from None
    return _check_frame(df, str(path))


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "" if value is None else "nan"
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


class _Checkpoint:
    """Append-only ``runs.csv``: each row written, flushed and synced as soon as its fit finishes."""

    def __init__(self, path: Path, fresh: bool):
        path.parent.mkdir(parents=True, exist_ok=True)
        new = fresh or not path.is_file() or path.stat().st_size == 0
        self._file = path.open("w" if new else "a", newline="")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(COLUMNS)
            self._file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow([_format(row[c]) for c in COLUMNS])
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _estimator_settings(methods: Mapping[str, Callable], k: int) -> dict[str, str]:
    settings = {}
    for name, factory in methods.items():
        try:
            settings[name] = _one_line(repr(factory(k, 0)), 1000)
        except Exception as err:  # noqa: BLE001 - e.g. ambridge.memories not importable: say so in the record
            settings[name] = f"unavailable ({type(err).__name__}: {_one_line(err)})"
    return settings


def run_benchmark(
    datasets: Sequence[str | Dataset],
    methods: Sequence[str] | Mapping[str, Callable[[int, int], Any]],
    seeds: int | Iterable[int],
    *,
    out: str | Path | None = None,
    resume: bool = True,
    retry_failed: bool = False,
    threads: int | None = 1,
    progress: Callable[[int, int, dict], None] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Fit every method on every data set with every seed; return one row per run (columns :data:`COLUMNS`).

    ``datasets``: names for :func:`load_dataset` (or :class:`Dataset` objects). ``methods``: names from
    :data:`METHODS`, or a mapping ``name -> factory(n_classes, seed)``. ``seeds``: a count ``N`` (seeds
    0..N−1) or a list. With ``out``, each finished run is appended to ``out/runs.csv`` at once; with ``resume``
    (default) runs already there are skipped and read back (``resume=False`` starts the file afresh), and failed
    runs are kept unless ``retry_failed``. When every run is done, ``out/benchmark.json`` gets the run record
    (``parameters`` are added to it). A fit that raises becomes a row with ``error`` set; the others go on.
    ``threads`` caps BLAS/OpenMP/torch threads during the fits (None: leave them); ``progress(done, total, row)``
    is called after each run. Rows come back in the order datasets x methods x seeds.
    """
    start = time.perf_counter()
    methods = _resolve_methods(methods)
    seeds = _resolve_seeds(seeds)
    names = [d.name if isinstance(d, Dataset) else d for d in datasets]
    if not names:
        raise ValueError("`datasets` is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"`datasets` = {names}: repeated names")
    for source in datasets:  # fail on a typo before any fit, not after an hour
        if not isinstance(source, Dataset) and not (isinstance(source, str) and (source in _BUNDLED
                                                                                 or _BLOBS.match(source))):
            load_dataset(source)

    done: dict[tuple, dict] = {}
    checkpoint = None
    if out is not None:
        path = Path(out) / RUNS_FILE
        if resume and path.is_file():
            previous = _read_runs(path)
            if retry_failed and (previous["error"] != "").any():
                previous = previous[previous["error"] == ""]
                _rewrite(path, previous)
            done = {(r["dataset"], r["method"], int(r["seed"])): r for r in previous.to_dict("records")}
        checkpoint = _Checkpoint(path, fresh=not resume)

    total = len(names) * len(methods) * len(seeds)
    rows, count = [], 0
    limits = _ThreadLimits(threads)
    try:
        for source in datasets:
            data = None
            for method, factory in methods.items():
                for seed in seeds:
                    key = (source.name if isinstance(source, Dataset) else source, method, seed)
                    if key in done:
                        row = done[key]
                    else:
                        if data is None:
                            data = source if isinstance(source, Dataset) else load_dataset(source)
                        limits.apply()  # again: a method may have imported torch since
                        row = _run_one(data, method, factory, seed)
                        if checkpoint is not None:
                            checkpoint.write(row)
                    rows.append(row)
                    count += 1
                    if progress is not None:
                        progress(count, total, row)
    finally:
        limits.restore()
        if checkpoint is not None:
            checkpoint.close()

    result = _check_frame(pd.DataFrame(rows, columns=list(COLUMNS)), "the benchmark's results")
    if out is not None:
        _write_meta(Path(out), result, names, methods, seeds, time.perf_counter() - start, threads, parameters)
    return result


def _rewrite(path: Path, df: pd.DataFrame) -> None:
    checkpoint = _Checkpoint(path, fresh=True)
    try:
        for row in df.to_dict("records"):
            checkpoint.write({k: (None if v is pd.NA else v) for k, v in row.items()})
    finally:
        checkpoint.close()


class _ThreadLimits:
    """Cap native thread pools during the fits (one thread by default: the data are small, and the machines are
    shared); :meth:`restore` puts them back. torch is capped once something has imported it."""

    def __init__(self, threads: int | None):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"`threads` = {threads!r}: must be an integer at least 1, or None")
        self.threads, self._torch_before, self._limiter = threads, None, None
        self.apply()

    def apply(self) -> None:
        if self.threads is None:
            return
        torch = sys.modules.get("torch")
        if torch is not None and self._torch_before is None:  # before threadpoolctl, which also caps torch's OpenMP
            self._torch_before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        if self._limiter is None:
            from threadpoolctl import threadpool_limits

            self._limiter = threadpool_limits(limits=self.threads)

    def restore(self) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()
        if self._torch_before is not None:
            sys.modules["torch"].set_num_threads(self._torch_before)
        self._limiter = self._torch_before = None


def _write_meta(out: Path, result: pd.DataFrame, names, methods, seeds, wall, threads, parameters) -> None:
    import sklearn

    from ambridge.book.records import run_record

    internal_nan = result[list(INTERNAL_METRICS)].isna().any(axis=1) & (result["error"] == "")
    record = run_record(
        {"datasets": names, "methods": list(methods), "seeds": seeds, "threads": threads, **(parameters or {})},
        wall_time_s=wall,
        runs=int(len(result)),
        failed_runs=int((result["error"] != "").sum()),
        runs_with_undefined_internal_scores=int(internal_nan.sum()),
        fit_time_total_s=round(float(result["fit_time_s"].sum()), 3),
        estimators=_estimator_settings(methods, 3),
        synthetic=SYNTHETIC,
        dataset_seed=DATASET_SEED,
        preprocessing="StandardScaler (zero mean, unit variance per feature)",
        scikit_learn=sklearn.__version__,
        note="wall_time_s is this invocation's; runs read back from runs.csv took no time in it",
    )
    (out / META_FILE).write_text(json.dumps(record, indent=2) + "\n")


# ------------------------------------------------------------------------------------------------- for chapters


def load_results(directory: str | Path) -> pd.DataFrame:
    """Read and validate a results directory's ``runs.csv`` (columns :data:`COLUMNS`, one row per run).

    Raises ``FileNotFoundError`` if it is missing and ``ValueError`` naming the file, row and column if it is not a
    runs table of this benchmark. Rows keep the file's order; see :func:`missing_runs` for coverage.
    """
    path = Path(directory) / RUNS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no clustering-benchmark results at {path}")
    text = path.read_text()
    if text and not text.endswith("\n"):
        raise ValueError(f"{path}: the last row is cut off (a killed run); rerun the benchmark into "
                         f"{path.parent} to complete it")
    return _read_runs(path)


def read_meta(directory: str | Path) -> dict | None:
    """The run record ``benchmark.json`` of a results directory, or None if the run never completed."""
    path = Path(directory) / META_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def long_format(df: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """One row per (dataset, method, seed, metric) with its ``value``; failed runs and NaN scores left out."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRICS)}")
    ok = df[df["error"] == ""]
    tidy = ok.melt(id_vars=["dataset", "method", "seed"], value_vars=list(metrics), var_name="metric",
                   value_name="value")
    return tidy.dropna(subset=["value"]).reset_index(drop=True)


def missing_runs(
    df: pd.DataFrame,
    datasets: Sequence[str] = DATASETS,
    methods: Sequence[str] = tuple(METHODS),
    seeds: int | Iterable[int] = 10,
    *,
    count_failed: bool = True,
) -> list[tuple[str, str, int]]:
    """The (dataset, method, seed) runs the table lacks (failed runs count as missing when ``count_failed``)."""
    have = df if not count_failed else df[df["error"] == ""]
    present = set(zip(have["dataset"], have["method"], have["seed"].astype(int)))
    return [(d, m, s) for d in datasets for m in methods for s in _resolve_seeds(seeds) if (d, m, s) not in present]


def _ordered(values, order) -> list:
    values = list(dict.fromkeys(values))
    return [v for v in order if v in values] + [v for v in values if v not in order]


def summary_table(
    df: pd.DataFrame, metrics: Sequence[str] = METRICS, *, digits: int = 3
) -> tuple[list[str], list[list[str]]]:
    """Median over seeds of each metric per (dataset, method); the best method per data set and metric in bold.

    Returns ``(header, rows)`` for :func:`ambridge.report.markdown_table`. Medians are over the seeds where a score
    is defined; best is the highest (lowest for Davies–Bouldin) median after rounding to ``digits`` significant
    digits, ties all marked. The last columns: median clusters found (``K found``, true K in the ``K`` column),
    runs counted, and a note when runs failed or had undefined internal scores.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRICS)}")
    header = ["dataset", "method", *[METRIC_LABELS[m] for m in metrics], "K", "K found", "runs", "notes"]
    rows = []
    for dataset in _ordered(df["dataset"], DATASETS):
        part = df[df["dataset"] == dataset]
        ok = part[part["error"] == ""]
        methods = _ordered(part["method"], tuple(METHODS))
        medians = {m: ok[ok["method"] == m][list(metrics)].median(skipna=True) for m in methods}
        shown = {m: {c: _significant(medians[m][c], digits) for c in metrics} for m in methods}
        best = {}
        for c in metrics:
            values = [float(shown[m][c]) for m in methods if shown[m][c] != "–"]
            if values:
                best[c] = max(values) if HIGHER_IS_BETTER[c] else min(values)
        for m in methods:
            runs = part[part["method"] == m]
            good = runs[runs["error"] == ""]
            cells = [f"**{shown[m][c]}**" if shown[m][c] != "–" and float(shown[m][c]) == best.get(c) else shown[m][c]
                     for c in metrics]
            found = good["n_clusters_found"].dropna()
            notes = []
            if len(good) < len(runs):
                notes.append(f"{len(runs) - len(good)} failed")
            undefined = int(good[list(INTERNAL_METRICS)].isna().any(axis=1).sum())
            if undefined:
                notes.append(f"{undefined} with internal scores undefined")
            rows.append([
                dataset, m, *cells, str(int(runs["n_classes"].iloc[0])),
                _significant(float(found.median()), 3) if len(found) else "–", str(len(runs)), "; ".join(notes),
            ])
    return header, rows


def _significant(value: float, digits: int) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{float(f'{value:.{digits}g}'):g}" if abs(value) < 10**digits else f"{value:.0f}"


def violin_plot(
    df: pd.DataFrame,
    dataset: str,
    metrics: Sequence[str] = METRICS,
    *,
    methods: Sequence[str] | None = None,
    fig=None,
    ncols: int | None = None,
):
    """Per-seed score distributions of every method on one data set: one panel per metric, methods on the x axis,
    a violin (cut at the data) with the individual seeds as dots. Returns the matplotlib figure (``fig`` if given,
    its axes replaced). Failed runs and undefined scores are left out; a method without values shows no violin.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ambridge.plotting import PALETTE

    if dataset not in set(df["dataset"]):
        have = ", ".join(_ordered(df["dataset"], DATASETS))
        raise ValueError(f"no results for data set {dataset!r}; the table has {have}")
    part = long_format(df[df["dataset"] == dataset], metrics)
    order = list(methods) if methods is not None else _ordered(df.loc[df["dataset"] == dataset, "method"],
                                                               tuple(METHODS))
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(order)}
    ncols = ncols or min(len(metrics), 4)
    nrows = math.ceil(len(metrics) / ncols)
    if fig is None:
        fig = plt.figure(figsize=(3.2 * ncols, 2.9 * nrows), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seaborn's notices (e.g. a constant sample) would reach a notebook's stderr
        for ax, metric in zip(axes, metrics):
            values = part[part["metric"] == metric]
            if len(values):
                sns.violinplot(data=values, x="method", y="value", hue="method", order=order, hue_order=order,
                               palette=colours, cut=0, inner=None, density_norm="width", linewidth=0.8,
                               legend=False, ax=ax)
                sns.stripplot(data=values, x="method", y="value", order=order, color="black", size=2.5, jitter=0.15,
                              ax=ax)
            ax.set_title(METRIC_LABELS[metric] + ("" if HIGHER_IS_BETTER[metric] else " (lower is better)"))
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"{dataset}: scores over seeds")
    return fig


# --------------------------------------------------------------------------------------------------- command line


def presets_dir() -> Path:
    """``chapters/presets/clustering_benchmark/`` of the book."""
    from ambridge.run import chapters_dir

    return chapters_dir() / "presets" / "clustering_benchmark"


_PRESET_KEYS = {"datasets", "methods", "seeds", "out"}


def load_benchmark_preset(preset: str) -> dict[str, Any]:
    """A preset by name (``quick``, ``paper``) or YAML path: keys ``datasets``, ``methods`` (lists), ``seeds``
    (a count or a list) and ``out`` (a results directory, relative to the book's root). Errors are
    :class:`ambridge.run.UsageError`."""
    from ambridge.run import UsageError, find_preset

    values = find_preset(preset, presets_dir(), "the benchmark", "of datasets, methods, seeds, out")
    unknown = sorted(set(values) - _PRESET_KEYS)
    if unknown:
        valid = ", ".join(sorted(_PRESET_KEYS))
        raise UsageError(f"preset {preset}: unknown key(s) {', '.join(unknown)}; valid: {valid}")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ambridge.cluster_benchmark",
        description="The clustering benchmark (paper section 2d): methods x data sets x seeds, seven metrics. "
        "Finished runs are kept in OUT/runs.csv; a rerun into the same OUT skips them.",
    )
    parser.add_argument("--preset", default="quick", help="quick (default), paper, or a YAML file")
    parser.add_argument("--out", type=Path, help="results directory (default: the preset's `out`)")
    parser.add_argument("--datasets", nargs="+", metavar="NAME", help=f"subset of: {', '.join(DATASETS)}")
    parser.add_argument("--methods", nargs="+", metavar="NAME", help=f"subset of: {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1 (default: the preset's)")
    parser.add_argument("--fresh", action="store_true", help="start OUT/runs.csv afresh instead of resuming")
    parser.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    parser.add_argument("--threads", type=int, default=1, help="native threads per fit (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no line per run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return 0 (done), 1 (some runs failed) or 2 (bad command line)."""
    from ambridge.run import UsageError
    from ambridge.book.records import repo_root

    args = _parser().parse_args(argv)
    try:
        preset = load_benchmark_preset(args.preset)
        datasets = args.datasets or preset.get("datasets") or list(DATASETS)
        methods = args.methods or preset.get("methods") or list(METHODS)
        seeds = args.seeds if args.seeds is not None else preset.get("seeds", 10)
        for name in datasets:
            if name not in DATASETS and not _BLOBS.match(str(name)):
                raise UsageError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)} (or any blobs_k<K>_d<D>)")
        for name in methods:
            if name not in METHODS:
                raise UsageError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
        try:
            seeds = _resolve_seeds(seeds)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if args.threads < 1:
            raise UsageError(f"--threads {args.threads}: must be at least 1")
        out = args.out or (repo_root() / preset["out"] if "out" in preset else None)
        if out is None:
            raise UsageError("no --out given and the preset names no `out`")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    def report(done: int, total: int, row: dict) -> None:
        if args.quiet:
            return
        what = (f"error {row['error']}" if row["error"] else
                f"ARI {row['adjusted_rand']:.3f}, {row['n_clusters_found']} clusters, {row['fit_time_s']:.2f} s")
        print(f"[{done}/{total}] {row['dataset']} {row['method']} seed {row['seed']}: {what}", flush=True)

    result = run_benchmark(
        datasets, methods, seeds, out=out, resume=not args.fresh, retry_failed=args.retry_failed,
        threads=args.threads, progress=report, parameters={"preset": args.preset},
    )
    from ambridge.report import markdown_table

    table = markdown_table(*summary_table(result))
    print(getattr(table, "data", table))
    failed = int((result["error"] != "").sum())
    print(f"{len(result)} runs, {failed} failed; results in {Path(out) / RUNS_FILE}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
