"""ambridge — the library of the executable book *Bridging Associative Memory and Probabilistic Modeling*.

The package is layered; dependencies point one way (checked by import-linter, see ``pyproject.toml``):

- **core** — :mod:`~ambridge.energies` (energies and the negative log-likelihoods they equal),
  :mod:`~ambridge.dynamics` (retrieval: gradient flow, mean shift = modern-Hopfield update = attention, fixed points),
  :mod:`~ambridge.sampling` (Langevin: retrieval plus noise), :mod:`~ambridge.data` (patterns, spheres, mixtures),
  :mod:`~ambridge.special` (Bessel and von Mises–Fisher functions), :mod:`~ambridge.checks` (``ParameterError``),
  :mod:`~ambridge.runtime` (seeds, devices, hardware), :mod:`~ambridge.store` (resumable records);
- **one subpackage per result** — :mod:`~ambridge.icl` (chapter 2), :mod:`~ambridge.memories` (chapters 3–4),
  :mod:`~ambridge.kde` (chapter 5), :mod:`~ambridge.attention` (chapter 6);
- **experiments** — :mod:`~ambridge.benchmarks` (the clustering benchmark);
- **the book's machinery** — :mod:`~ambridge.book` (parameters, presets, runner, executor, sweeps, records),
  which the science never imports; :mod:`~ambridge.plotting` and :mod:`~ambridge.report` are leaves.
"""

__version__ = "0.1.0"
