"""Training the in-context energy model by contrastive divergence, with exact resume and divergence detection.

Loss per micro-batch (Du & Mordatch 2019):

    L = mean E_θ(x⁺ ∣ x_{<n}) − mean E_θ(x⁻ ∣ x_{<n}) + λ (mean E⁺² + mean E⁻²),

x⁺ the real points, x⁻ the detached Langevin negatives of :mod:`ambridge.icl.sampler`. Its θ-gradient is the
contrastive-divergence estimate of the NLL gradient; the λ term keeps the energies near zero.

:class:`Trainer` is a plain PyTorch loop (Adam, gradient clipping, bf16 autocast on CUDA only, float32 on CPU).
A checkpoint holds the model, the optimizer, every random state (torch, NumPy, Python, the data stream's and the
sampler's generators) and the step, so a run interrupted and resumed gives on CPU bit-for-bit the parameters of an
uninterrupted one. A non-finite loss or an energy beyond ``energy_limit`` stops training with
:class:`TrainingDiverged` before the bad update is applied; the last checkpoint on disk is the last good state.
"""

from __future__ import annotations

import csv
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from .. import checks
from ..runtime import CapturedCall
from .data import MixtureStream, MixtureTask
from .layers import prefix_blocked
from .model import EnergyTransformer, ModelConfig
from .sampler import mixed_precision, negative_positions, run_chains, uniform_init

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "contrastive_divergence_loss", "step_gradients",
           "load_model", "LOG_FIELDS", "STAT_FIELDS"]

LOG_FIELDS = ("step", "loss", "cd", "e_pos", "e_neg", "max_abs_energy", "grad_norm", "wall_s")
STAT_FIELDS = ("loss", "cd", "e_pos", "e_neg", "max_abs_energy")  # what step_gradients reports, in this order


class TrainingDiverged(RuntimeError):
    """Training stopped: a non-finite loss or an energy blow-up. ``step``, ``reason`` and ``checkpoint`` (the last
    good checkpoint on disk, or None) are attributes."""

    def __init__(self, step: int, reason: str, checkpoint: Path | None):
        self.step, self.reason, self.checkpoint = step, reason, checkpoint
        where = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written"
        super().__init__(f"training diverged at step {step}: {reason}; the update was not applied; {where}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on. Defaults: the small public configuration (one micro-batch per step)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    task: MixtureTask = field(default_factory=MixtureTask)
    pool_size: int = 0  # 0: a fresh mixture per sequence; else a fixed pool of this many mixtures
    batch_size: int = 8  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    n_negatives: int = 3  # S, Langevin negatives per real point
    langevin_steps: int = 7  # T
    step_size: float = 3.16  # α in x ← x − α∇E + ω (the paper-scale value; 0.1 lets the energies run away)
    noise_std: float = 0.01  # s, ω ~ N(0, s² I)
    reg: float = 1e-3  # λ of λ(E⁺² + E⁻²)
    lr: float = 1e-3
    weight_decay: float = 1e-5
    grad_clip: float = 0.1  # max gradient norm
    n_steps: int = 1000  # optimizer steps
    checkpoint_every: int = 200
    energy_limit: float = 200.0  # |E| above this is a blow-up (healthy runs stay below ~35; a collapse passes 200
    # within a few dozen steps)
    seed: int = 0

    def __post_init__(self):
        for name in ("batch_size", "grad_accum", "n_negatives", "langevin_steps", "checkpoint_every"):
            checks.count(name, getattr(self, name), low=1)
        checks.count("n_steps", self.n_steps)
        checks.count("pool_size", self.pool_size)
        checks.count("seed", self.seed)
        for name in ("step_size", "lr", "grad_clip", "energy_limit"):
            checks.positive(name, getattr(self, name))
        for name in ("noise_std", "reg", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["model"] = ModelConfig(**d["model"])
        d["task"] = MixtureTask(**d["task"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_(self, **changes) -> "TrainConfig":
        return replace(self, **changes)


def contrastive_divergence_loss(e_pos: torch.Tensor, e_neg: torch.Tensor, reg: float) -> torch.Tensor:
    """mean E⁺ − mean E⁻ + λ (mean E⁺² + mean E⁻²)."""
    return e_pos.mean() - e_neg.mean() + reg * (e_pos.pow(2).mean() + e_neg.pow(2).mean())


def step_gradients(model: EnergyTransformer, config: TrainConfig, blocked: torch.Tensor, context: torch.Tensor,
                   init: torch.Tensor, noise: torch.Tensor, *, accum: int = 1,
                   autocast_dtype: torch.dtype | None = None):
    """One micro-batch of contrastive divergence as a pure function of its random inputs.

    ``context`` (B, N, D) real points, ``init`` (B, N·S, D) chain starts, ``noise`` (T, B, N·S, D) standard normals,
    ``blocked`` = ``prefix_blocked(N, negative_positions(N, S))`` on the same device. Runs the Langevin negatives
    (:func:`~ambridge.icl.sampler.run_chains`), the loss, and the gradients of loss / ``accum`` w.r.t. the model's
    parameters → (negatives (B, N·S, D), stats (5,) in the order of :data:`STAT_FIELDS`, gradients (one per
    parameter)). It changes nothing (no ``.grad``, no optimizer), reads nothing back to the host and copies nothing
    to the device: the eager trainer calls it, and a :class:`~ambridge.runtime.CapturedCall` can replay it."""
    negatives = run_chains(model, context, init, blocked, noise, step_size=config.step_size,
                           noise_std=config.noise_std, box=config.task.box, autocast_dtype=autocast_dtype).final
    with mixed_precision(context.device, autocast_dtype):
        e_pos, cache = model.energies_and_cache(context)
        e_neg = model.cached_energies(cache, negatives, blocked)
    e_pos, e_neg = e_pos.float(), e_neg.float()
    loss = contrastive_divergence_loss(e_pos, e_neg, config.reg)
    grads = torch.autograd.grad(loss / accum, list(model.parameters()))  # as (loss / accum).backward() would
    stats = torch.stack([loss, e_pos.mean() - e_neg.mean(), e_pos.mean(), e_neg.mean(),
                         torch.maximum(e_pos.abs().max(), e_neg.abs().max())]).detach()
    return negatives, stats, grads


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Trainer:
    """``Trainer(config, device).train()``; ``Trainer.resume(path)`` continues an interrupted run exactly.

    ``checkpoint_path``: where checkpoints go (every ``config.checkpoint_every`` steps and at the end); None keeps
    them in memory only. ``autocast``: None → bf16 autocast on CUDA, float32 on CPU. ``cuda_graph``: replay each
    micro-batch's sampling, loss and gradients (:func:`step_gradients`) from a CUDA graph captured at the first step
    (CUDA only): the same arithmetic without hundreds of kernel launches from Python per Langevin step. The random
    inputs are drawn from the same generators in the same order either way.
    """

    def __init__(self, config: TrainConfig, device: str | torch.device = "cpu", *,
                 checkpoint_path: str | os.PathLike | None = None, autocast: bool | None = None,
                 cuda_graph: bool = False):
        self.config = config
        self.device = torch.device(device)
        if cuda_graph and self.device.type != "cuda":
            raise checks.ParameterError("cuda_graph", cuda_graph, f"needs a CUDA device (this trainer's is {device})")
        self.cuda_graph = bool(cuda_graph)
        self._captured: CapturedCall | None = None
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        use_autocast = self.device.type == "cuda" if autocast is None else autocast
        self.autocast_dtype = torch.bfloat16 if use_autocast else None
        torch.manual_seed(config.seed)  # the initial weights
        self.model = EnergyTransformer(config.model).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.stream = MixtureStream(config.task, seed=config.seed + 1, pool_size=config.pool_size)
        self.generator = torch.Generator().manual_seed(config.seed + 2)  # Langevin starts and noise
        self.step = 0
        self.log: list[dict] = []
        self.wall_s = 0.0
        self.last_checkpoint: Path | None = None
        self._blocked: torch.Tensor | None = None  # which real tokens each negative may not see, built once

    # ------------------------------------------------------------------------------------------------ one step
    def draw_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The random inputs of one micro-batch, on the CPU: context (B, N, D) from the data stream, then chain
        starts (B, N·S, D) and Langevin noise (T, B, N·S, D) from the sampler's generator, in that order."""
        c = self.config
        context, _ = self.stream.batch(c.batch_size)
        b, n, d = context.shape
        m = n * c.n_negatives
        init = uniform_init((b, n, c.n_negatives, d), c.task.box, generator=self.generator, dtype=context.dtype)
        noise = torch.randn((c.langevin_steps, b, m, d), generator=self.generator, dtype=context.dtype)
        return context, init.reshape(b, m, d), noise

    def _gradients(self, context: torch.Tensor, init: torch.Tensor, noise: torch.Tensor):
        """(stats, gradients) of :func:`step_gradients` on inputs already on the device: what the graph records."""
        return step_gradients(self.model, self.config, self._blocked, context, init, noise,
                              accum=self.config.grad_accum, autocast_dtype=self.autocast_dtype)[1:]

    def _micro_batch(self) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """(stats (5,), gradients of loss / ``grad_accum``) of one micro-batch, eager or from the captured graph."""
        inputs = self.draw_inputs()
        if self._blocked is None:  # the shapes never change within a run
            n = inputs[0].shape[1]
            self._blocked = prefix_blocked(n, negative_positions(n, self.config.n_negatives, device=self.device))
        if not self.cuda_graph:
            return self._gradients(*(t.to(self.device) for t in inputs))
        if self._captured is None:  # captured at the first step; later steps replay it
            self._captured = CapturedCall(self._gradients, *(t.to(self.device) for t in inputs))
        return self._captured(*inputs)

    def train_step(self) -> dict:
        """One optimizer step (``grad_accum`` micro-batches). Raises :class:`TrainingDiverged` instead of applying
        a non-finite or blown-up update."""
        c = self.config
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        params = list(self.model.parameters())
        for i in range(c.grad_accum):
            stats, grads = self._micro_batch()
            for p, g in zip(params, grads):  # what (loss / grad_accum).backward() would accumulate
                # a captured graph overwrites its outputs at the next replay: keep a copy
                p.grad = (g.clone() if self.cuda_graph else g) if i == 0 else p.grad + g
            values = stats.tolist()  # one device sync per micro-batch
            for k, v in zip(STAT_FIELDS, values):
                totals[k] = max(totals.get(k, 0.0), v) if k == "max_abs_energy" else totals.get(k, 0.0) + v / c.grad_accum
        if not all(np.isfinite(v) for v in totals.values()):
            raise TrainingDiverged(self.step, f"non-finite loss ({totals['loss']})", self.last_checkpoint)
        if totals["max_abs_energy"] > c.energy_limit:
            raise TrainingDiverged(self.step, f"|E| = {totals['max_abs_energy']:.3g} exceeds energy_limit "
                                   f"{c.energy_limit:g}", self.last_checkpoint)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip))
        if not np.isfinite(grad_norm):
            raise TrainingDiverged(self.step, "non-finite gradient", self.last_checkpoint)
        self.optimizer.step()
        self.step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.wall_s += time.perf_counter() - start
        row = {"step": self.step, **totals, "grad_norm": grad_norm, "wall_s": self.wall_s}
        self.log.append(row)
        return row

    # ------------------------------------------------------------------------------------------------ the loop
    def train(self, n_steps: int | None = None, *, progress: bool | None = None, time_budget_s: float | None = None,
              on_checkpoint=None) -> list[dict]:
        """Train until step ``n_steps`` (default ``config.n_steps``) or until ``time_budget_s`` has passed.

        ``progress``: a tqdm bar on stderr; None shows it only when stderr is a terminal (never in a notebook).
        ``on_checkpoint(trainer)`` is called after every checkpoint (e.g. to export weights as a run goes).
        Returns the log (one dict per step since the run began).
        """
        target = self.config.n_steps if n_steps is None else checks.count("n_steps", n_steps)
        if progress is None:
            progress = sys.stderr.isatty()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=target, initial=self.step, file=sys.stderr, desc="training", leave=False)
        began = time.perf_counter()
        try:
            while self.step < target:
                row = self.train_step()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", E_pos=f"{row['e_pos']:.2f}")
                out_of_time = time_budget_s is not None and time.perf_counter() - began > time_budget_s
                if self.step % self.config.checkpoint_every == 0 or self.step == self.config.n_steps or out_of_time:
                    self.checkpoint()
                    if on_checkpoint is not None:
                        on_checkpoint(self)
                if out_of_time:
                    break
        finally:
            if bar is not None:
                bar.close()
        return self.log

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "kind": "icl-energy-trainer",
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "stream": self.stream.state_dict(),
            "generator": self.generator.get_state(),
            "rng": _rng_states(),
            "step": self.step,
            "log": self.log,
            "wall_s": self.wall_s,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.stream.load_state_dict(state["stream"])
        self.generator.set_state(state["generator"])
        _set_rng_states(state["rng"])
        self.step = state["step"]
        self.log = list(state["log"])
        self.wall_s = state["wall_s"]

    def checkpoint(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the full training state (atomically: a crash mid-write never leaves a broken file)."""
        path = Path(path) if path else self.checkpoint_path
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        self.last_checkpoint = path
        return path

    @classmethod
    def resume(cls, path: str | os.PathLike, device: str | torch.device = "cpu", *,
               autocast: bool | None = None, cuda_graph: bool = False) -> "Trainer":
        """A trainer in exactly the state of the checkpoint at ``path``; later checkpoints go to the same path."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("kind") != "icl-energy-trainer":
            raise ValueError(f"{path} is not a training checkpoint of ambridge.icl")
        trainer = cls(TrainConfig.from_dict(state["config"]), device, checkpoint_path=path, autocast=autocast,
                      cuda_graph=cuda_graph)
        trainer.load_state_dict(state)
        trainer.last_checkpoint = Path(path)
        return trainer

    def export_model(self, path: str | os.PathLike, **record) -> Path:
        """Write the weights only (no optimizer: a third of the size), with the config, the log and ``record``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        torch.save({"kind": "icl-energy-model", "config": self.config.to_dict(), "model": weights,
                    "step": self.step, "record": record}, tmp)
        os.replace(tmp, path)
        return path

    def write_log(self, path: str | os.PathLike) -> Path:
        """The per-step log as CSV (columns :data:`LOG_FIELDS`)."""
        return write_log(self.log, path)


def write_log(log: list[dict], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LOG_FIELDS)
        for row in log:
            writer.writerow([row["step"]] + [f"{row[k]:.6g}" for k in LOG_FIELDS[1:]])
    return path


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[EnergyTransformer, dict]:
    """Load an exported model (or a full training checkpoint) → (model in eval mode, its checkpoint dict)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("kind") not in ("icl-energy-model", "icl-energy-trainer"):
        raise ValueError(f"{path} is not a checkpoint of ambridge.icl")
    config = TrainConfig.from_dict(state["config"])
    model = EnergyTransformer(config.model)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state
