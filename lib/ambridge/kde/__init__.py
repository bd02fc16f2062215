"""The memory capacity of Gaussian kernel density estimators (chapter 5).

A Gaussian KDE with bandwidth σ on data x_1, …, x_N on the sphere ‖x_n‖ = M *is* a modern Hopfield network with
inverse temperature β = 1/σ² (chapter 1): mean shift = the Hopfield update = attention. So the network's storage
results transfer to the estimator. The subpackage, by layer:

- :mod:`ambridge.kde.theory` — the transferred bound (Ramsauer et al.'s Theorems 3 and 5), the separation, and the
  typical-pattern theory (cross-talk, the random-energy threshold α₁(λ), the finite-d saddle-node capacity and
  its fixed-bandwidth ceiling);
- :mod:`ambridge.kde.retrieval` — the cue, mean shift to convergence, the verdict (ends within ε of its pattern
  *and* nearest to it);
- :mod:`ambridge.kde.sweep` — the capacity sweep (checkpointed per (d, N, seed)) and N*, N½ and their exponent;
- :mod:`ambridge.kde.report` — summaries, the float32 re-check, and readers of the committed run records;
- :mod:`ambridge.kde.modes` — modes that are not data points (1-D mode counts, Scott/Silverman, retained fraction);
- ``python -m ambridge.kde`` (:mod:`ambridge.kde.__main__`) — the sweep from a preset, without Jupyter.

Every public name is importable from ``ambridge.kde`` itself, as before the split.
"""

from .modes import kde_modes_1d, retained_fraction, scott_bandwidth, silverman_bandwidth
from .report import (
    DimensionSummary,
    ExponentFit,
    SweepArtifact,
    benchmark_table,
    draw_success_curves,
    find_sweep_artifact,
    fit_capacity_exponent,
    half_precision_check,
    n_half_ratios,
    per_dimension,
    read_benchmark,
    read_sweep_artifact,
    speedup_ranges,
    summarise_dimensions,
)
from .retrieval import RETRIEVAL_METHODS, Retrieval, nearest_index, perturb, retrieve, sphere_sample
from .sweep import (
    LIMITS,
    PRECISIONS,
    SWEEP_PARAMETERS,
    CapacitySweep,
    capacities,
    check_setting,
    crossing,
    finished_dimensions,
    fit_exponent,
    mean_success,
    run_sweep,
    sweep_point,
)
from .theory import (
    CapacityBound,
    alpha_one,
    fixed_bandwidth_log_ceiling,
    kde_bound,
    log_crosstalk,
    mean_cosine,
    mean_field_log_capacity,
    one_step_error,
    ramsauer_bound,
    retrieval_error_bound,
    scaled_bandwidth,
    separation,
)

__all__ = [
    # theory
    "CapacityBound", "ramsauer_bound", "kde_bound", "scaled_bandwidth", "separation", "retrieval_error_bound",
    "one_step_error", "log_crosstalk", "mean_cosine", "alpha_one", "mean_field_log_capacity",
    "fixed_bandwidth_log_ceiling",
    # retrieval
    "perturb", "sphere_sample", "nearest_index", "Retrieval", "retrieve", "RETRIEVAL_METHODS",
    # sweep
    "CapacitySweep", "SWEEP_PARAMETERS", "LIMITS", "PRECISIONS", "check_setting", "sweep_point", "run_sweep",
    "mean_success", "crossing", "capacities", "fit_exponent", "finished_dimensions",
    # report
    "per_dimension", "DimensionSummary", "summarise_dimensions", "ExponentFit", "fit_capacity_exponent",
    "n_half_ratios", "half_precision_check",
    "SweepArtifact", "read_sweep_artifact", "find_sweep_artifact", "read_benchmark", "benchmark_table",
    "speedup_ranges", "draw_success_curves",
    # modes
    "kde_modes_1d", "scott_bandwidth", "silverman_bandwidth", "retained_fraction",
]
