"""The committed checkpoints of chapter 2: which one to read, reading it, and saying where it came from.

Chapter 2 evaluates a model trained outside the notebook (on a GPU at paper scale, or on a CPU) when one is committed
under ``chapters/artifacts/02_icl_energy/``, and the model it trains itself otherwise. Used in chapter 2,
§ The committed checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checks import check_choice
from .model import EnergyTransformer
from .train import TrainConfig, load_model

__all__ = ["CHECKPOINT_CHOICES", "Checkpoint", "find_checkpoint", "load_checkpoint", "describe_checkpoint"]

#: The ``checkpoint`` parameter's values: ``auto`` takes the GPU checkpoint, else the CPU one, else the quick model.
CHECKPOINT_CHOICES = ("auto", "gpu", "cpu", "quick")
_ORDER = {"auto": ("gpu", "cpu", "quick"), "gpu": ("gpu",), "cpu": ("cpu",), "quick": ("quick",)}


@dataclass
class Checkpoint:
    """A model to evaluate: ``source`` ("gpu", "cpu" or "quick"), the ``model`` (eval mode, θ frozen), its training
    ``config``, and for a committed checkpoint its run ``record`` and the ``step`` its weights come from."""

    source: str
    model: EnergyTransformer
    config: TrainConfig
    record: dict | None = None
    step: int | None = None


def find_checkpoint(choice: str, folder: str | Path) -> tuple[str, Path | None]:
    """(source, path) of the checkpoint ``choice`` asks for in ``folder``: ``checkpoint-<source>.pt`` files; the
    quick model has no path. A named checkpoint that is missing is an error naming the command that makes it."""
    check_choice("checkpoint", choice, CHECKPOINT_CHOICES)
    folder = Path(folder)
    for source in _ORDER[choice]:
        path = folder / f"checkpoint-{source}.pt"
        if source == "quick":
            return source, None
        if path.is_file():
            return source, path
    raise FileNotFoundError(f"no {choice} checkpoint in {folder}: run benchmarks/gpu/02_icl_energy.sh")


def load_checkpoint(choice: str, folder: str | Path, device: str | torch.device, *,
                    quick: tuple[EnergyTransformer, TrainConfig]) -> Checkpoint:
    """The model chapter 2 evaluates: the committed checkpoint ``choice`` selects, or ``quick`` = (model, config)
    trained in the notebook. The run record is the final one written beside the weights (``<name>-record.json``),
    else the one stored in the checkpoint. Every parameter is frozen."""
    source, path = find_checkpoint(choice, folder)
    if path is None:
        model, config = quick
        found = Checkpoint(source, model.eval(), config)
    else:
        model, state = load_model(path, device)
        record_file = path.with_name(path.stem + "-record.json")
        record = json.loads(record_file.read_text()) if record_file.is_file() else state["record"]
        found = Checkpoint(source, model, TrainConfig.from_dict(state["config"]), record, state["step"])
    found.model.requires_grad_(False)
    return found


def describe_checkpoint(ckpt: Checkpoint) -> str:
    """What was loaded, in a few lines: the architecture, the sampler, and for a committed checkpoint its hardware,
    training time, status, the step its weights come from and the command that regenerates it."""
    mc, c = ckpt.config.model, ckpt.config
    n_params = sum(p.numel() for p in ckpt.model.parameters())
    lines = [f"evaluating the {ckpt.source.upper()} checkpoint: {mc.n_layers} layers, d_model {mc.d_model}, "
             f"{mc.n_heads} heads, {n_params:,} parameters; batch {c.batch_size}, T = {c.langevin_steps}, "
             f"alpha = {c.step_size}, s = {c.noise_std}"]
    r = ckpt.record
    if r:
        lines += [f"hardware: {r['hardware'].split(' (')[0]}; precision {r['precision']}; "
                  f"{r['wall_time_s'] / 60:.1f} min of training; status: {r['status']}",
                  f"weights of step {ckpt.step} of {r['step']}, the checkpoint whose samples came closest to "
                  f"16 validation mixtures (error {r['validation_error']:.2f})",
                  f"regenerate: {r['command']}"]
    return "\n".join(lines)
