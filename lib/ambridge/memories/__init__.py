"""Associative memories that cluster (paper, section 2).

- :mod:`ambridge.memories.elbo` — CLAM+ELBO: the state is the assignment distribution q, the energy is −ELBO.
- :mod:`ambridge.memories.clam` — CLAM (Saha et al. 2023): a point state, memories learned through unrolled dynamics.
- :mod:`ambridge.memories.nonparametric` — CLAM+CRP: memories created on demand under a Chinese restaurant or
  Pitman–Yor prior; DP-means, its small-variance limit; the priors' cluster-growth laws.

Each memory is a scikit-learn-style estimator (``fit``, ``predict``, ``fit_predict``, ``memories_``).
"""

from .clam import CLAM
from .elbo import CLAMELBO, ELBOTrajectory, elbo_dynamics, elbo_velocity, negative_elbo
from .nonparametric import CLAMCRP, DPMeans

__all__ = ["CLAM", "CLAMELBO", "CLAMCRP", "DPMeans", "ELBOTrajectory", "elbo_dynamics", "elbo_velocity", "negative_elbo"]
