"""One run of the clustering benchmark: its identity (the store key), its fit and scores, and the same in a worker
process.

A run is (data set, method, seed). :func:`run_key` names it by everything that can change its result; :func:`fit_and_score`
fits the method and scores the labels, turning any failure into a row; :func:`run_task` does both in a process of
:func:`ambridge.benchmarks.clustering_runs.run_benchmark`'s pool, with native threads capped by :class:`ThreadLimits`.
Used in chapter 3, § The clustering benchmark and § The full benchmark.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from .clustering import METRICS, score_clustering
from .datasets import Dataset

__all__ = ["one_line", "estimator_settings", "data_digest", "run_key", "build_estimator", "fit_and_score",
           "ThreadLimits", "run_task"]


def one_line(text, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters with an ellipsis.
    Used for the error and warning fields of every run (chapter 3, § The full benchmark)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    Used by :func:`~ambridge.benchmarks.clustering_runs.run_benchmark` to resume (chapter 3, § The full benchmark).
    """
    blob = json.dumps({"data": data_digest, "settings": settings}, sort_keys=True)
    return f"{dataset}/{method}/seed={seed}/{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def build_estimator(factory: Callable[[int, int], Any], n_classes: int, seed: int):
    """``(estimator, its settings, None)``, or ``(None, why not, the error)`` when the factory raises.
    Used by :func:`~ambridge.benchmarks.clustering_runs.run_benchmark` (chapter 3, § The clustering benchmark)."""
    try:
        estimator = factory(n_classes, seed)
        return estimator, estimator_settings(estimator), None
    except Exception as err:  # noqa: BLE001 - the run is recorded as failed
        return None, {"unavailable": one_line(f"{type(err).__name__}: {err}")}, err


def _fit_labels(estimator, X: np.ndarray) -> np.ndarray:
    labels = estimator.fit_predict(X) if hasattr(estimator, "fit_predict") else estimator.fit(X).labels_
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"the estimator returned labels of shape {labels.shape}, expected ({X.shape[0]},)")
    return labels


def fit_and_score(data: Dataset, method: str, seed: int, estimator, build_error: Exception | None) -> dict[str, Any]:
    """Fit one estimator and score its labels (or record why it could not be built): a row of the benchmark.
    Never raises an ``Exception`` (a failure is a row with ``error`` set). ``details`` is the estimator's
    ``details_`` after the fit when it has one (the tuned DP-GMM's choices).
    Used by :func:`~ambridge.benchmarks.clustering_runs.run_benchmark` (chapter 3, § The clustering benchmark)."""
    row: dict[str, Any] = {
        "dataset": data.name, "method": method, "seed": seed, "n_samples": data.X.shape[0],
        "n_features": data.X.shape[1], "n_classes": data.n_classes, "n_clusters_found": None,
        "fit_time_s": math.nan, **{m: math.nan for m in METRICS}, "note": "", "warnings": "", "error": "",
        "details": "",
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
            row["details"] = one_line(getattr(estimator, "details_", ""))
        except Exception as err:  # noqa: BLE001 - one failed fit must not lose the benchmark
            row["error"] = one_line(f"{type(err).__name__}: {err}")
    row["warnings"] = one_line("; ".join(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)))
    return row


class ThreadLimits:
    """Cap native thread pools during the fits (one thread by default: the data are small, and the machines are
    shared); :meth:`restore` puts them back. torch is capped once something has imported it.
    Used by the benchmark's runs, in the main process and in each worker (chapter 3, § The full benchmark)."""

    def __init__(self, threads: int | None):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"`threads` = {threads!r}: must be an integer at least 1, or None")
        self.threads, self._torch_before, self._limiter = threads, None, None
        self.apply()

    def apply(self) -> None:
        """Cap the pools now (again after a method imported torch)."""
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
        """Put the pools back as they were."""
        if self._limiter is not None:
            self._limiter.restore_original_limits()
        if self._torch_before is not None:
            sys.modules["torch"].set_num_threads(self._torch_before)
        self._limiter = self._torch_before = None


_WORKER_LIMITS: ThreadLimits | None = None


def run_task(data: Dataset, method: str, seed: int, estimator, build_error, threads: int | None) -> dict[str, Any]:
    """:func:`fit_and_score` in a worker process, its native threads capped at ``threads`` for the worker's life.
    Used by :func:`~ambridge.benchmarks.clustering_runs.run_benchmark` with ``workers`` > 1 (chapter 3, § The full
    benchmark)."""
    global _WORKER_LIMITS
    if _WORKER_LIMITS is None:
        _WORKER_LIMITS = ThreadLimits(threads)
    _WORKER_LIMITS.apply()
    return fit_and_score(data, method, seed, estimator, build_error)
