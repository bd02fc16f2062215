"""ambridge — the library of the executable book *Bridging Associative Memory and Probabilistic Modeling*.

Modules, in the order the book meets them:

- :mod:`ambridge.energies` — associative-memory energies and the negative log-likelihoods they equal;
- :mod:`ambridge.dynamics` — retrieval: gradient flow on any energy, and the closed-form update
  (mean shift = modern-Hopfield update = attention);
- :mod:`ambridge.sampling` — Langevin sampling (retrieval plus noise);
- :mod:`ambridge.data` — pattern and mixture samplers;
- :mod:`ambridge.memories` — associative memories that cluster: CLAM, CLAM+ELBO, CLAM+CRP, DP-means;
- :mod:`ambridge.cluster_benchmark` — the paper's clustering benchmark (six methods, bundled datasets, seven metrics);
- :mod:`ambridge.runtime` — seeds, devices, parameter checks, run records;
- :mod:`ambridge.plotting` — the book's one figure style;
- :mod:`ambridge.run` — the command line that reruns a chapter with new parameters.
"""

__version__ = "0.1.0"
