"""Alias of the old ``ambridge.memories.nonparametric`` for one release: the priors and the energy now live in
:mod:`ambridge.memories.crp`, CLAM+CRP in :mod:`ambridge.memories.clamcrp`, DP-means in :mod:`ambridge.memories.dpmeans`.
"""

from .clamcrp import CLAMCRP, VARIANCE_GRID
from .crp import (
    CRPSeating,
    asymptotic_clusters,
    check_crp_parameters,
    cluster_log_marginal,
    crp_energy,
    crp_log_prior,
    crp_log_weights,
    crp_seating,
    expected_clusters,
    new_memory_log_weight,
    simulate_cluster_counts,
    small_variance_log_alpha,
)
from .dpmeans import DPMeans

__all__ = [
    "check_crp_parameters",
    "expected_clusters",
    "asymptotic_clusters",
    "simulate_cluster_counts",
    "CRPSeating",
    "crp_seating",
    "crp_log_weights",
    "crp_energy",
    "new_memory_log_weight",
    "small_variance_log_alpha",
    "crp_log_prior",
    "cluster_log_marginal",
    "VARIANCE_GRID",
    "CLAMCRP",
    "DPMeans",
]
