"""Associative memories that cluster (paper, section 2; chapters 3 and 4).

- :mod:`ambridge.memories.elbo` — the ELBO dynamics: the state is the assignment distribution q, the energy is −ELBO.
- :mod:`ambridge.memories.clamelbo` — CLAM+ELBO: generalised EM whose E-step is the ELBO dynamics.
- :mod:`ambridge.memories.clam` — CLAM (Saha et al. 2023): a point state, memories learned through unrolled dynamics.
- :mod:`ambridge.memories.crp` — the Chinese restaurant and Pitman–Yor priors (growth laws, seating, the EPPF) and
  the CLAM+CRP energy with its new-memory basin.
- :mod:`ambridge.memories.clamcrp` — CLAM+CRP: memories created on demand by the ELBO dynamics over K + 1 logits.
- :mod:`ambridge.memories.dpmeans` — DP-means, CLAM+CRP's small-variance limit, on the same schedule.
- :mod:`ambridge.memories.marginals` — a memory's evidence from its sufficient statistics (isotropic; diagonal
  Normal–Gamma, with its Student t predictive), for CLAM+CRP's diagonal memories and merge step (chapter 4);
- :mod:`ambridge.memories.merge` — the merge step: join memories while the evidence of the partition rises;
- :mod:`ambridge.memories.oversplitting` — the remedies for over-splitting as named variants, run and summarised;
- :mod:`ambridge.memories.cost` — retrieval timed: a D-dimensional point state against K logits (chapter 3);
- :mod:`ambridge.memories.evaluation` — learned memories against the true means (chapter 3);
- :mod:`ambridge.memories.streams` — synthetic mixture streams and the memories CLAM+CRP makes on them (chapter 4).

Each memory is a scikit-learn estimator (``fit``, ``predict``, ``fit_predict``, ``memories_``) that passes
scikit-learn's own estimator checks. ``ambridge.memories.nonparametric`` is an alias of ``crp``/``clamcrp``/``dpmeans``
for one release.
"""

from .clam import CLAM
from .clamcrp import CLAMCRP
from .clamelbo import CLAMELBO
from .dpmeans import DPMeans
from .elbo import ELBOTrajectory, elbo_dynamics, elbo_velocity, negative_elbo

__all__ = ["CLAM", "CLAMELBO", "CLAMCRP", "DPMeans", "ELBOTrajectory", "elbo_dynamics", "elbo_velocity", "negative_elbo"]
