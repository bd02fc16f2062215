"""Alias of :mod:`ambridge.benchmarks` for one release: the clustering benchmark moved there — data sets, methods and
metrics to :mod:`ambridge.benchmarks.clustering`, running to :mod:`ambridge.benchmarks.clustering_runs`, tables and
figures to :mod:`ambridge.benchmarks.report`, the command line to ``python -m ambridge.benchmarks``.
``python -m ambridge.cluster_benchmark --preset quick|paper`` still runs it.
"""

import sys

from .benchmarks import (
    COLUMNS,
    DATASET_SEED,
    DATASETS,
    EXTERNAL_METRICS,
    GMM_SETTINGS,
    HIGHER_IS_BETTER,
    INTERNAL_METRICS,
    META_FILE,
    METHODS,
    METRIC_LABELS,
    METRICS,
    RUNS_FILE,
    SYNTHETIC,
    Dataset,
    dp_gmm_components,
    load_dataset,
    load_results,
    long_format,
    missing_runs,
    read_meta,
    run_benchmark,
    score_clustering,
    summary_table,
    violin_plot,
)
from .benchmarks.__main__ import load_benchmark_preset, main, presets_dir

__all__ = [
    "Dataset", "DATASETS", "SYNTHETIC", "DATASET_SEED", "load_dataset", "METHODS", "GMM_SETTINGS",
    "dp_gmm_components", "METRICS", "METRIC_LABELS", "HIGHER_IS_BETTER", "EXTERNAL_METRICS", "INTERNAL_METRICS",
    "COLUMNS", "RUNS_FILE", "META_FILE", "score_clustering", "run_benchmark", "load_results", "read_meta",
    "long_format", "missing_runs", "summary_table", "violin_plot", "presets_dir", "load_benchmark_preset", "main",
]

if __name__ == "__main__":
    sys.exit(main())
