"""Experiments that compare methods, above the results they compare.

- :mod:`ambridge.benchmarks.datasets` (with :mod:`~ambridge.benchmarks.keel`) — the paper's data sets that can be had
  offline, and mixtures with known K; :mod:`ambridge.benchmarks.workshop` — all 15 of the paper's, and the values
  read off its figure;
- :mod:`ambridge.benchmarks.clustering` — the paper's clustering benchmark (digest §2d): its methods and seven
  metrics; :mod:`ambridge.benchmarks.dpgmm` — the tuned DP-GMM;
- :mod:`ambridge.benchmarks.clustering_runs` and :mod:`~ambridge.benchmarks.fitting` — running it, resumably (an
  :class:`ambridge.store.RecordStore`), in parallel processes; :mod:`~ambridge.benchmarks.summary` — its run record;
- :mod:`ambridge.benchmarks.ranks` — mean ranks, Friedman and Nemenyi tests, the critical-difference diagram and
  paired Wilcoxon tests with Holm's correction;
- :mod:`ambridge.benchmarks.report` — its tables and figures for the chapters (pandas and seaborn imported lazily);
- ``python -m ambridge.benchmarks`` — its command line (:mod:`ambridge.benchmarks.__main__`).

Used in chapter 3, § The clustering benchmark, and chapter 4, § On real data: choosing σ². The old module
``ambridge.cluster_benchmark`` is an alias of these for one release.
"""

from .clustering import (
    DATASET_SEED,
    DATASETS,
    DP_GMM_DEFAULT,
    EXTERNAL_METRICS,
    GMM_SETTINGS,
    HIGHER_IS_BETTER,
    INTERNAL_METRICS,
    METHODS,
    METRIC_LABELS,
    METRICS,
    REAL,
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
    data_digest,
    estimator_settings,
    load_results,
    resolve_seeds,
    run_benchmark,
    run_key,
    runs_frame,
)
from .datasets import stratified_subsample
from .dpgmm import SelectedDPGMM
from .ranks import (
    RankSummary,
    critical_difference_diagram,
    friedman_test,
    mean_ranks,
    nemenyi_test,
    paired_wilcoxon,
    rank_table,
    wilcoxon_table,
    score_matrix,
)
from .summary import benchmark_summary, read_meta
from .workshop import PAPER_DATASETS, WORKSHOP_VALUES, paper_datasets_table, side_by_side, workshop_gaps
from .report import (
    Dominance,
    cluster_count_table,
    datasets_in,
    dp_gmm_table,
    describe_run,
    dominance,
    long_format,
    median_scores,
    missing_runs,
    summary_table,
    violin_plot,
)

__all__ = [
    "Dataset", "DATASETS", "REAL", "SYNTHETIC", "DATASET_SEED", "is_dataset_name", "load_dataset",
    "stratified_subsample", "PAPER_DATASETS", "WORKSHOP_VALUES", "paper_datasets_table", "side_by_side", "workshop_gaps",
    "METHODS", "GMM_SETTINGS", "dp_gmm_components", "DP_GMM_DEFAULT", "SelectedDPGMM",
    "score_matrix", "mean_ranks", "friedman_test", "nemenyi_test", "critical_difference_diagram", "paired_wilcoxon",
    "wilcoxon_table", "RankSummary", "rank_table",
    "METRICS", "METRIC_LABELS", "HIGHER_IS_BETTER", "EXTERNAL_METRICS", "INTERNAL_METRICS", "score_clustering",
    "COLUMNS", "RUNS_FILE", "META_FILE", "resolve_seeds", "estimator_settings", "data_digest", "run_key", "run_benchmark",
    "runs_frame", "load_results", "read_meta", "benchmark_summary",
    "long_format", "missing_runs", "summary_table", "violin_plot", "datasets_in", "describe_run", "median_scores",
    "Dominance", "dominance", "cluster_count_table", "dp_gmm_table",
]
