"""In-context learning of energy functions (Schaeffer, Khona & Koyejo 2024; book chapter 2).

A transformer with frozen weights reads a dataset x_1, …, x_N and outputs the energy E_θ(x ∣ x_{<n}) of a point given
the points before it: the landscape adapts to the data in its context.

- :mod:`ambridge.icl.data` — the distribution over datasets (2-D Gaussian mixtures) and held-out sets;
- :mod:`ambridge.icl.model` — the causal energy transformer and its candidate pass;
- :mod:`ambridge.icl.layers` — its layers written out: the real tokens once, causally; candidates against their
  cached keys and values;
- :mod:`ambridge.icl.sampler` — the vectorised Langevin sampler (one pass of the candidates per step);
- :mod:`ambridge.icl.train` — contrastive-divergence training with exact resume and divergence detection;
- :mod:`ambridge.icl.experiments` — the task-diversity (pool size) × seed training grid and its readers;
- :mod:`ambridge.icl.evaluate` — landscapes, samples and errors of a frozen model given a context;
- :mod:`ambridge.icl.metrics`, :mod:`ambridge.icl.baselines` — the metrics of chapter 2 and the in-context
  baselines (KDE, EM) they are compared with;
- :mod:`ambridge.icl.checkpoints` — the committed checkpoints chapter 2 evaluates;
- ``python -m ambridge.icl`` — the training command line (:mod:`ambridge.icl.__main__`).
"""

from .checkpoints import CHECKPOINT_CHOICES, Checkpoint, describe_checkpoint, find_checkpoint, load_checkpoint
from .data import HELD_OUT_NAMES, MixtureStream, MixtureTask, held_out_sets, sample_mixture_batch
from .model import EnergyTransformer, ModelConfig, candidate_mask
from .sampler import LangevinRun, langevin_candidates, langevin_negatives, negative_positions, uniform_init
from .train import LOG_FIELDS, TrainConfig, Trainer, TrainingDiverged, contrastive_divergence_loss, load_model

__all__ = [
    "MixtureTask", "MixtureStream", "sample_mixture_batch", "held_out_sets", "HELD_OUT_NAMES",
    "ModelConfig", "EnergyTransformer", "candidate_mask",
    "LangevinRun", "uniform_init", "langevin_candidates", "negative_positions", "langevin_negatives",
    "Checkpoint", "CHECKPOINT_CHOICES", "find_checkpoint", "load_checkpoint", "describe_checkpoint",
    "TrainConfig", "Trainer", "TrainingDiverged", "contrastive_divergence_loss", "load_model", "LOG_FIELDS",
]
