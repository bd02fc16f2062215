"""What a finished clustering benchmark says about itself: its ``benchmark.json`` beside the runs.

Used in chapter 3, § The full benchmark, and by the command line (``python -m ambridge.benchmarks``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .clustering import INTERNAL_METRICS
from .clustering_runs import META_FILE, RUNS_FILE, resolve_methods
from .datasets import DATASET_SEED, SYNTHETIC
from .fitting import one_line

__all__ = ["read_meta", "benchmark_summary"]


def read_meta(directory: str | Path) -> dict | None:
    """The run record ``benchmark.json`` of a results directory, or None if the run never completed.
    Used in chapter 3, § The full benchmark."""
    path = Path(directory) / META_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _estimator_settings(methods: Mapping[str, Callable], k: int) -> dict[str, str]:
    settings = {}
    for name, factory in methods.items():
        try:
            settings[name] = one_line(repr(factory(k, 0)), 1000)
        except Exception as err:  # noqa: BLE001 - e.g. ambridge.memories not importable: say so in the record
            settings[name] = f"unavailable ({type(err).__name__}: {one_line(err)})"
    return settings


def benchmark_summary(result, methods: Sequence[str] | Mapping[str, Callable], *,
                      max_samples: int | None = None) -> dict[str, Any]:
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
        "estimators": _estimator_settings(resolve_methods(methods), 3),
        "synthetic": SYNTHETIC,
        "dataset_seed": DATASET_SEED,
        "preprocessing": "StandardScaler (zero mean, unit variance per feature)",
        "max_samples": max_samples,
        "subsampling": (f"data sets over {max_samples} points: a stratified subsample of {max_samples} "
                        f"(seed {DATASET_SEED}), the same for every method and seed") if max_samples else "none",
        "scikit_learn": sklearn.__version__,
        "note": f"wall_time_s is this invocation's; runs read back from {RUNS_FILE} took no time in it",
    }
