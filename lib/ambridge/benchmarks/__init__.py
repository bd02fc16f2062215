"""Experiments that compare methods, above the results they compare.

- :mod:`ambridge.benchmarks.clustering` — the paper's clustering benchmark (digest §2d): its data sets, six methods
  and seven metrics;
- :mod:`ambridge.benchmarks.clustering_runs` — running it, resumably, in an :class:`ambridge.store.RecordStore`;
- :mod:`ambridge.benchmarks.report` — its tables and figures for the chapters (pandas and seaborn imported lazily);
- ``python -m ambridge.benchmarks`` — its command line (:mod:`ambridge.benchmarks.__main__`).

Used in chapter 3, § The clustering benchmark, and chapter 4, § On real data: choosing σ². The old module
``ambridge.cluster_benchmark`` is an alias of these for one release.
"""

from .clustering import (
    DATASET_SEED,
    DATASETS,
    EXTERNAL_METRICS,
    GMM_SETTINGS,
    HIGHER_IS_BETTER,
    INTERNAL_METRICS,
    METHODS,
    METRIC_LABELS,
    METRICS,
    SYNTHETIC,
    Dataset,
    dp_gmm_components,
    is_dataset_name,
    load_dataset,
    score_clustering,
)
from .clustering_runs import (
    COLUMNS,
    META_FILE,
    RUNS_FILE,
    benchmark_summary,
    data_digest,
    estimator_settings,
    load_results,
    read_meta,
    resolve_seeds,
    run_benchmark,
    run_key,
    runs_frame,
)
from .report import (
    Dominance,
    cluster_count_table,
    datasets_in,
    describe_run,
    dominance,
    long_format,
    median_scores,
    missing_runs,
    summary_table,
    violin_plot,
)

__all__ = [
    "Dataset", "DATASETS", "SYNTHETIC", "DATASET_SEED", "is_dataset_name", "load_dataset",
    "METHODS", "GMM_SETTINGS", "dp_gmm_components",
    "METRICS", "METRIC_LABELS", "HIGHER_IS_BETTER", "EXTERNAL_METRICS", "INTERNAL_METRICS", "score_clustering",
    "COLUMNS", "RUNS_FILE", "META_FILE", "resolve_seeds", "estimator_settings", "data_digest", "run_key", "run_benchmark",
    "runs_frame", "load_results", "read_meta", "benchmark_summary",
    "long_format", "missing_runs", "summary_table", "violin_plot", "datasets_in", "describe_run", "median_scores",
    "Dominance", "dominance", "cluster_count_table",
]
