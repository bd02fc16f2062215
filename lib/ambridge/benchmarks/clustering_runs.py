"""Running the clustering benchmark: every method on every data set with every seed, resumably.

A results directory holds

- ``runs.jsonl`` — an :class:`ambridge.store.RecordStore`: one record per finished (dataset, method, seed), appended
  and synced as each fit finishes, so a killed run loses at most the fit in progress; a rerun into the same directory
  skips what is there. A record's ``key`` (:func:`run_key`) is the identity of the run: the data set (by a digest of
  its values), the method, the seed and the estimator's settings, so a record made under other settings is never
  reused. Its fields are :data:`COLUMNS`, plus ``settings`` (the estimator's, as the key saw them) and ``data``
  (the digest).
- ``benchmark.json`` — written by the command line (``python -m ambridge.benchmarks``) when a run completes: the run
  record (parameters, commit, hardware, wall time) with :func:`benchmark_summary`.

Used in chapter 3, § The clustering benchmark (the live run and the committed full run) and chapter 4, § On real
data: choosing σ² (the committed run's cluster counts).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..store import RecordStore
from .clustering import (
    DATASET_SEED,
    INTERNAL_METRICS,
    METHODS,
    METRICS,
    SYNTHETIC,
    Dataset,
    is_dataset_name,
    load_dataset,
    score_clustering,
)

__all__ = [
    "COLUMNS",
    "RUNS_FILE",
    "META_FILE",
    "resolve_seeds",
    "estimator_settings",
    "data_digest",
    "run_key",
    "run_benchmark",
    "runs_frame",
    "load_results",
    "read_meta",
    "benchmark_summary",
]

RUNS_FILE = "runs.jsonl"
META_FILE = "benchmark.json"

#: The fields of a run, and the columns of the frames :func:`run_benchmark` and :func:`load_results` return, one row
#: per (dataset, method, seed): ``n_samples``, ``n_features``, ``n_classes`` describe the data; ``n_clusters_found``
#: the clustering (missing if the run failed); ``fit_time_s`` the wall time of ``fit_predict``; then the seven
#: metrics (NaN when undefined or failed); ``note`` (why internal scores are NaN), ``warnings`` (what the estimator
#: warned, e.g. non-convergence) and ``error`` (``Type: message`` if the fit raised; else empty).
COLUMNS: tuple[str, ...] = (
    "dataset", "method", "seed", "n_samples", "n_features", "n_classes", "n_clusters_found", "fit_time_s",
    *METRICS, "note", "warnings", "error",
)
_INT_COLUMNS = ("seed", "n_samples", "n_features", "n_classes")
_TEXT_COLUMNS = ("dataset", "method", "note", "warnings", "error")


def resolve_seeds(seeds) -> list[int]:
    """A count N (seeds 0..N−1) or a list of distinct integers ≥ 0  →  the list; anything else is a ValueError.
    Used by :func:`run_benchmark` and the command line (chapter 3, § The clustering benchmark).
    """
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


def _resolve_methods(methods) -> dict[str, Callable[[int, int], Any]]:
    if isinstance(methods, Mapping):
        return dict(methods)
    chosen = {}
    for name in methods:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
        chosen[name] = METHODS[name]
    return chosen


def _one_line(text, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------- identity of a run


def estimator_settings(estimator) -> dict[str, Any]:
    """What a run's result depends on besides data and seed: the estimator's class and its parameters (each as its
    ``repr``): ``get_params(deep=False)`` for a scikit-learn estimator, its attributes otherwise.
    Used in every store key (:func:`run_key`; chapter 3, § The full benchmark).
    """
    params = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else vars(estimator)
    return {"estimator": type(estimator).__qualname__, "params": {k: repr(v) for k, v in sorted(params.items())}}


def data_digest(data: Dataset) -> str:
    """A digest of a data set's values (X, y and shape): the data's part of :func:`run_key`.
    Used in every store key (:func:`run_key`; chapter 3, § The full benchmark).
    """
    digest = hashlib.sha256(repr(data.X.shape).encode())
    digest.update(np.ascontiguousarray(data.X, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(data.y, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def run_key(dataset: str, method: str, seed: int, data_digest: str, settings: Mapping[str, Any]) -> str:
    """``<dataset>/<method>/seed=<seed>/<hash>``: the store key of one run, the hash over the data's digest and the
    estimator's :func:`estimator_settings`, so two runs share a key only if every input that can change the result
    is the same.
    Used by :func:`run_benchmark` to resume (chapter 3, § The full benchmark).
    """
    blob = json.dumps({"data": data_digest, "settings": settings}, sort_keys=True)
    return f"{dataset}/{method}/seed={seed}/{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


# ------------------------------------------------------------------------------------------------------ one run


def _fit_labels(estimator, X: np.ndarray) -> np.ndarray:
    labels = estimator.fit_predict(X) if hasattr(estimator, "fit_predict") else estimator.fit(X).labels_
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"the estimator returned labels of shape {labels.shape}, expected ({X.shape[0]},)")
    return labels


def _run_one(data: Dataset, method: str, seed: int, estimator, build_error: Exception | None) -> dict[str, Any]:
    """Fit one estimator (or record why it could not be built); never raises an ``Exception`` (a failure is a row)."""
    row: dict[str, Any] = {
        "dataset": data.name, "method": method, "seed": seed, "n_samples": data.X.shape[0],
        "n_features": data.X.shape[1], "n_classes": data.n_classes, "n_clusters_found": None,
        "fit_time_s": math.nan, **{m: math.nan for m in METRICS}, "note": "", "warnings": "", "error": "",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if build_error is not None:
                raise build_error
            start = time.perf_counter()
            labels = _fit_labels(estimator, data.X)
            row["fit_time_s"] = time.perf_counter() - start
            row.update(score_clustering(data.X, data.y, labels))
        except Exception as err:  # noqa: BLE001 - one failed fit must not lose the benchmark
            row["error"] = _one_line(f"{type(err).__name__}: {err}")
    row["warnings"] = _one_line("; ".join(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)))
    return row


def _build(factory: Callable[[int, int], Any], n_classes: int, seed: int):
    """(estimator, its settings, None), or (None, why not, the error) when the factory raises."""
    try:
        estimator = factory(n_classes, seed)
        return estimator, estimator_settings(estimator), None
    except Exception as err:  # noqa: BLE001 - the run is recorded as failed
        return None, {"unavailable": _one_line(f"{type(err).__name__}: {err}")}, err


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


# ------------------------------------------------------------------------------------------------------ the runs


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
):
    """Fit every method on every data set with every seed; return one row per run (a DataFrame, :data:`COLUMNS`).

    ``datasets``: names for :func:`~ambridge.benchmarks.clustering.load_dataset` (or
    :class:`~ambridge.benchmarks.clustering.Dataset` objects). ``methods``: names from
    :data:`~ambridge.benchmarks.clustering.METHODS`, or a mapping ``name -> factory(n_classes, seed)``. ``seeds``:
    a count N (seeds 0..N−1) or a list. With ``out``, each finished run is appended to ``out/runs.jsonl`` at once
    (see the module docstring); with ``resume`` (default) runs already there under the same key are read back
    instead of refitted (``resume=False`` starts the store afresh), and failed runs are kept unless
    ``retry_failed``. A fit that raises becomes a row with ``error`` set; the others go on. ``threads`` caps
    BLAS/OpenMP/torch threads during the fits (None: leave them); ``progress(done, total, row)`` is called after each
    run. Rows come back in the order datasets × methods × seeds.
    Used in chapter 3, § The clustering benchmark (the live run), and by the command line (the full run).
    """
    methods = _resolve_methods(methods)
    seeds = resolve_seeds(seeds)
    names = [d.name if isinstance(d, Dataset) else d for d in datasets]
    if not names:
        raise ValueError("`datasets` is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"`datasets` = {names}: repeated names")
    for source in datasets:  # fail on a typo before any fit, not after an hour
        if not isinstance(source, Dataset) and not is_dataset_name(source):
            load_dataset(source)
    store = None
    if out is not None:
        path = Path(out) / RUNS_FILE
        if not resume and path.is_file():
            path.unlink()
        store = RecordStore(path)
        runs_frame(_latest_records(store, path), str(path))  # a foreign or corrupt store stops here, before any fit

    total, rows = len(names) * len(methods) * len(seeds), []
    limits = _ThreadLimits(threads)
    try:
        for source in datasets:
            data = source if isinstance(source, Dataset) else load_dataset(source)
            digest = data_digest(data)
            for method, factory in methods.items():
                for seed in seeds:
                    limits.apply()  # again: a method may have imported torch since
                    estimator, settings, build_error = _build(factory, data.n_classes, seed)
                    key = run_key(data.name, method, seed, digest, settings)
                    stored = store.get(key) if store is not None else None
                    if stored is not None and not (retry_failed and stored["error"]):
                        row = {c: stored[c] for c in COLUMNS}
                    else:
                        row = _run_one(data, method, seed, estimator, build_error)
                        if store is not None:
                            store.append({"key": key, "settings": settings, "data": digest, **row})
                    rows.append(row)
                    if progress is not None:
                        progress(len(rows), total, row)
    finally:
        limits.restore()
    return runs_frame(rows, "the benchmark's results")


def _latest_records(store: RecordStore, path: Path) -> list[dict]:
    """The store's runs, the latest record per (dataset, method, seed) (a rerun under new settings supersedes)."""
    latest: dict[tuple, dict] = {}
    for i, record in enumerate(store, start=1):
        missing = [c for c in COLUMNS if c not in record]
        if missing:
            raise ValueError(f"{path}: record {i} ({record['key']}) is not a clustering-benchmark run: it lacks "
                             f"{', '.join(missing)}")
        latest[(record["dataset"], record["method"], str(record["seed"]))] = {c: record[c] for c in COLUMNS}
    return list(latest.values())


def load_results(directory: str | Path):
    """Read a results directory's ``runs.jsonl`` into a validated DataFrame (columns :data:`COLUMNS`, one row per
    (dataset, method, seed): the latest record of each, in the order they were first run).

    Raises ``FileNotFoundError`` if it is missing and ``ValueError`` naming the file, record and column if it is not a
    store of this benchmark. Used in chapter 3, § The full benchmark, and chapter 4, § On real data: choosing σ².
    """
    path = Path(directory) / RUNS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no clustering-benchmark results at {path}")
    return runs_frame(_latest_records(RecordStore(path), path), str(path))


def runs_frame(rows: Sequence[Mapping[str, Any]], source: str):
    """Runs (dicts with the :data:`COLUMNS`)  →  a DataFrame with clean dtypes: int64 counts, nullable Int64
    ``n_clusters_found``, float64 scores, text columns as str. ``source`` names the runs in errors (a ValueError naming
    the row and column of the first bad cell, or a repeated (dataset, method, seed)).
    Used by :func:`run_benchmark` and :func:`load_results` (chapter 3, § The clustering benchmark).
    """
    import pandas as pd

    df = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=list(COLUMNS), dtype=object)
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


# ------------------------------------------------------------------------------------------------- the run record


def read_meta(directory: str | Path) -> dict | None:
    """The run record ``benchmark.json`` of a results directory, or None if the run never completed.
    Used in chapter 3, § The full benchmark."""
    path = Path(directory) / META_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _estimator_settings(methods: Mapping[str, Callable], k: int) -> dict[str, str]:
    settings = {}
    for name, factory in methods.items():
        try:
            settings[name] = _one_line(repr(factory(k, 0)), 1000)
        except Exception as err:  # noqa: BLE001 - e.g. ambridge.memories not importable: say so in the record
            settings[name] = f"unavailable ({type(err).__name__}: {_one_line(err)})"
    return settings


def benchmark_summary(result, methods: Sequence[str] | Mapping[str, Callable]) -> dict[str, Any]:
    """What ``benchmark.json`` says beside the run record: runs, failed runs, runs with undefined internal scores,
    total fit time, each method's estimator (as built for K = 3, seed 0), the synthetic data's settings and seed, the
    preprocessing and scikit-learn's version. ``result``: a frame of :func:`run_benchmark`.
    Used by the command line for ``benchmark.json`` (chapter 3, § The full benchmark).
    """
    import sklearn

    internal_nan = result[list(INTERNAL_METRICS)].isna().any(axis=1) & (result["error"] == "")
    return {
        "runs": int(len(result)),
        "failed_runs": int((result["error"] != "").sum()),
        "runs_with_undefined_internal_scores": int(internal_nan.sum()),
        "fit_time_total_s": round(float(result["fit_time_s"].sum()), 3),
        "estimators": _estimator_settings(_resolve_methods(methods), 3),
        "synthetic": SYNTHETIC,
        "dataset_seed": DATASET_SEED,
        "preprocessing": "StandardScaler (zero mean, unit variance per feature)",
        "scikit_learn": sklearn.__version__,
        "note": f"wall_time_s is this invocation's; runs read back from {RUNS_FILE} took no time in it",
    }
