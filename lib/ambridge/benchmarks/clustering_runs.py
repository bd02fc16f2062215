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

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..store import RecordStore
from .clustering import METHODS, METRICS
from .datasets import Dataset, is_dataset_name, load_dataset
from .fitting import ThreadLimits, build_estimator, data_digest, estimator_settings, fit_and_score, run_key, run_task

__all__ = [
    "COLUMNS",
    "RUNS_FILE",
    "META_FILE",
    "resolve_seeds",
    "resolve_methods",
    "estimator_settings",
    "data_digest",
    "run_key",
    "run_benchmark",
    "runs_frame",
    "load_results",
]

RUNS_FILE = "runs.jsonl"
META_FILE = "benchmark.json"

#: The fields of a run, and the columns of the frames :func:`run_benchmark` and :func:`load_results` return, one row
#: per (dataset, method, seed): ``n_samples``, ``n_features``, ``n_classes`` describe the data; ``n_clusters_found``
#: the clustering (missing if the run failed); ``fit_time_s`` the wall time of ``fit_predict``; then the seven
#: metrics (NaN when undefined or failed); ``note`` (why internal scores are NaN), ``warnings`` (what the estimator
#: warned, e.g. non-convergence), ``error`` (``Type: message`` if the fit raised; else empty) and ``details`` (what
#: the estimator chose, e.g. the tuned DP-GMM's concentration, covariance and truncation; else empty).
COLUMNS: tuple[str, ...] = (
    "dataset", "method", "seed", "n_samples", "n_features", "n_classes", "n_clusters_found", "fit_time_s",
    *METRICS, "note", "warnings", "error", "details",
)
_INT_COLUMNS = ("seed", "n_samples", "n_features", "n_classes")
_TEXT_COLUMNS = ("dataset", "method", "note", "warnings", "error", "details")
_OPTIONAL = {"details": ""}  # columns that records made before they existed lack


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


def resolve_methods(methods) -> dict[str, Callable[[int, int], Any]]:
    """Method names (from :data:`~ambridge.benchmarks.clustering.METHODS`) or a mapping ``name -> factory``  →  the
    mapping; an unknown name is a ValueError. Used by :func:`run_benchmark` (chapter 3, § The clustering benchmark)."""
    if isinstance(methods, Mapping):
        return dict(methods)
    chosen = {}
    for name in methods:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
        chosen[name] = METHODS[name]
    return chosen


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
    workers: int = 1,
    max_samples: int | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
):
    """Fit every method on every data set with every seed; return one row per run (a DataFrame, :data:`COLUMNS`).

    ``datasets``: names for :func:`~ambridge.benchmarks.datasets.load_dataset` (or
    :class:`~ambridge.benchmarks.datasets.Dataset` objects); a named data set larger than ``max_samples`` points is
    replaced by its stratified subsample (:func:`~ambridge.benchmarks.datasets.stratified_subsample`). ``methods``:
    names from :data:`~ambridge.benchmarks.clustering.METHODS`, or a mapping ``name -> factory(n_classes, seed)``.
    ``seeds``: a count N (seeds 0..N−1) or a list. With ``out``, each finished run is appended to ``out/runs.jsonl``
    at once (see the module docstring); with ``resume`` (default) runs already there under the same key are read back
    instead of refitted (``resume=False`` starts the store afresh), and failed runs are kept unless
    ``retry_failed``. A fit that raises becomes a row with ``error`` set; the others go on. ``threads`` caps
    BLAS/OpenMP/torch threads during the fits (None: leave them); ``workers`` > 1 fits that many runs at once in
    separate processes (the factories and estimators must then pickle: the named methods do); ``progress(done,
    total, row)`` is called after each run. With several workers the runs are fitted seed by seed (every data set and
    method for the first seed, then the next), so a run stopped early holds whole seeds; rows come back in the order
    datasets × methods × seeds all the same.
    Used in chapter 3, § The clustering benchmark (the live run), and by the command line (the full run).
    """
    methods = resolve_methods(methods)
    seeds = resolve_seeds(seeds)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` = {workers!r}: must be an integer at least 1")
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

    total, rows, pending = len(names) * len(methods) * len(seeds), [], []
    limits = ThreadLimits(threads)

    def finish(i: int, row: dict, record: dict | None) -> None:
        rows[i] = row
        if record is not None and store is not None:
            store.append({**record, **row})
        if progress is not None:
            progress(sum(r is not None for r in rows), total, row)

    try:
        for source in datasets:
            data = source if isinstance(source, Dataset) else load_dataset(source, max_samples=max_samples)
            digest = data_digest(data)
            for method, factory in methods.items():
                for seed in seeds:
                    limits.apply()  # again: a method may have imported torch since
                    estimator, settings, build_error = build_estimator(factory, data.n_classes, seed)
                    key = run_key(data.name, method, seed, digest, settings)
                    stored = store.get(key) if store is not None else None
                    rows.append(None)
                    record = {"key": key, "settings": settings, "data": digest}
                    if stored is not None and not (retry_failed and stored["error"]):
                        finish(len(rows) - 1, {c: stored.get(c, _OPTIONAL.get(c)) for c in COLUMNS}, None)
                    elif workers == 1:
                        finish(len(rows) - 1, fit_and_score(data, method, seed, estimator, build_error), record)
                    else:
                        pending.append((len(rows) - 1, record, (data, method, seed, estimator, build_error)))
        if pending:  # seed by seed, so that a run stopped early holds whole seeds of every data set and method
            pending.sort(key=lambda task: (seeds.index(task[2][2]), task[0]))
            _run_pool(pending, workers, threads, finish)
    finally:
        limits.restore()
    return runs_frame(rows, "the benchmark's results")


def _run_pool(pending: list, workers: int, threads: int | None, finish: Callable) -> None:
    """Fit the pending runs in ``workers`` fresh processes (spawned: no thread pool or torch state is inherited)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_task, *args, threads): (i, record) for i, record, args in pending}
        for future in as_completed(futures):
            i, record = futures[future]
            finish(i, future.result(), record)


def _latest_records(store: RecordStore, path: Path) -> list[dict]:
    """The store's runs, the latest record per (dataset, method, seed) (a rerun under new settings supersedes)."""
    latest: dict[tuple, dict] = {}
    for i, record in enumerate(store, start=1):
        missing = [c for c in COLUMNS if c not in record and c not in _OPTIONAL]
        if missing:
            raise ValueError(f"{path}: record {i} ({record['key']}) is not a clustering-benchmark run: it lacks "
                             f"{', '.join(missing)}")
        latest[(record["dataset"], record["method"], str(record["seed"]))] = {c: record.get(c, _OPTIONAL.get(c))
                                                                            for c in COLUMNS}
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
