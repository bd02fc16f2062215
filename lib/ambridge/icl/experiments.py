"""The training grid of chapter 2: task diversity (pool size) × seed, with validation histories and an export rule.

The public code trains on ``n_unique_datasets`` mixtures (default 10): it draws that many mixtures from the prior
once, and every training sequence picks one of them uniformly at random (``src/data.py`` at 6acded1). A model
trained on a small pool can lower its error by memorising the pool's means instead of reading its context; one
trained on fresh mixtures (pool 0) can only read its context. The grid trains a CPU-scale model for every pool size
and seed (:class:`Grid`), and validates it every ``validate_every`` steps on three sets of datasets:

- ``select``: fresh mixtures, used only to choose the exported weights (the export rule);
- ``heldout``: other fresh mixtures, never used for a choice: the in-context axis;
- ``pool``: new points from mixtures of the run's own training pool: the memorisation axis (none for pool 0).

Each validation is the nearest-mean error of :func:`ambridge.icl.evaluate.error_vs_context` at one context size,
with fixed chain starts and noise (the same for every step, so the history moves with the weights only).

**Export rule** (:func:`choose_export`): the weights of the step whose ``select`` error, averaged with its neighbours
(a centred window of ``smooth_window`` validations, 3 by default: the step and one validation on each side), is
lowest. Picking the best of a handful of noisy single validations (the rule this replaces) selects noise; a
trailing mean (tried first) exports the *last* step of a good stretch, which in a run that collapses is the first
collapsed one. In a centred window the exported step is the middle of a good stretch, and its own error weighs as
much as each neighbour's. Because ``select`` is a separate set, the ``heldout`` error reported at the exported step
carries no selection bias. A run that diverges keeps its validation history up to the last good checkpoint, and the
rule is applied to it.

Every run resumes: the :class:`~ambridge.icl.train.Trainer` state, the weights at each validation and the validation
rows live in a work folder named by a hash of the run's settings; finished runs are rows of a
:class:`~ambridge.store.RecordStore` manifest (``manifest.jsonl``) and are skipped. :func:`read_manifest`,
:func:`load_run` and :func:`read_validation` are what chapter 2 reads. Used in chapter 2, § Task diversity.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import checks
from ..store import RecordStore
from .data import MixtureStream, sample_mixture_batch
from .evaluate import error_vs_context
from .model import EnergyTransformer, ModelConfig
from .train import TrainConfig, Trainer, TrainingDiverged, load_model

__all__ = ["QUICK_MODEL", "Grid", "run_id", "run_key", "validation_sets", "run_pool", "validation_errors",
           "choose_export", "smoothed", "plateau_step", "train_run", "run_grid", "read_manifest", "load_run",
           "read_validation", "pool_size_summary", "VALIDATION_FIELDS", "MANIFEST_FIELDS"]

#: The chapter's quick model: 2 layers, d_model 32, 4 heads, feed-forward 128 (25 537 parameters).
QUICK_MODEL = ModelConfig(d_model=32, n_heads=4, n_layers=2, dim_feedforward=128)
VALIDATION_FIELDS = ("step", "select_error", "heldout_error", "pool_error", "loss", "e_pos", "e_neg",
                     "max_abs_energy", "wall_s")
MANIFEST_FIELDS = ("key", "run_id", "pool_size", "seed", "model", "validation", "record", "export_step",
                   "export_rule", "final_step", "status")
SETS = ("select", "heldout", "pool")


@dataclass(frozen=True)
class Grid:
    """The grid: every ``pool_sizes`` × ``seeds`` run of ``base`` (its ``pool_size``, ``seed`` and ``n_steps`` are
    replaced), validated every ``validate_every`` steps on ``n_val_sets`` datasets per set, ``n_val_chains`` chains
    each, with the first ``val_n`` points in context; exported by :func:`choose_export` over ``smooth_window``."""

    base: TrainConfig = field(default_factory=lambda: TrainConfig(model=QUICK_MODEL))
    pool_sizes: tuple = (10, 100, 1000, 0)  # 0: a fresh mixture for every sequence
    seeds: tuple = (0, 1, 2)
    n_steps: int = 600
    validate_every: int = 25
    n_val_sets: int = 16
    n_val_chains: int = 32
    val_n: int = 30
    smooth_window: int = 3  # odd: validations in the export rule's centred mean

    def __post_init__(self):
        for name in ("n_steps", "validate_every", "n_val_sets", "n_val_chains", "val_n", "smooth_window"):
            checks.count(name, getattr(self, name), low=1)
        if self.smooth_window % 2 == 0:
            raise checks.ParameterError("smooth_window", self.smooth_window, "an odd integer (a centred window)")
        for p in self.pool_sizes:
            checks.count("pool_sizes", p)
        for s in self.seeds:
            checks.count("seeds", s)
        if self.val_n > self.base.task.context_len:
            raise checks.ParameterError("val_n", self.val_n, f"at most the context length {self.base.task.context_len}")

    def configs(self) -> list[TrainConfig]:
        """The runs in the order they are trained: seed-major, so a grid cut short has whole seeds."""
        return [self.base.with_(pool_size=p, seed=s, n_steps=self.n_steps, checkpoint_every=self.validate_every)
                for s in self.seeds for p in self.pool_sizes]

    def validation_spec(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("base", "pool_sizes", "seeds", "n_steps")}


def run_id(config: TrainConfig) -> str:
    """``pool10-seed0``, ``fresh-seed2``: the run's name in file names and the manifest."""
    pool = f"pool{config.pool_size}" if config.pool_size else "fresh"
    return f"{pool}-seed{config.seed}"


def run_key(config: TrainConfig, grid: Grid, *, with_steps: bool = True) -> str:
    """The identity of a run: every setting that changes its result (training and validation), as sorted JSON.
    ``with_steps=False`` leaves out ``n_steps`` and the export rule's window: the identity of the trajectory and
    its validations, which a longer run extends (its work folder is named by it, so raising ``n_steps`` resumes the
    shorter run instead of starting again, and another window re-exports without retraining)."""
    train, validation = config.to_dict(), grid.validation_spec()
    if not with_steps:
        del train["n_steps"], train["checkpoint_every"], validation["smooth_window"]
    return json.dumps({"train": train, "validation": validation}, sort_keys=True)


def validation_sets(config: TrainConfig, pool: torch.Tensor | None, n_sets: int) -> dict[str, dict | None]:
    """The three sets of datasets ``{"select", "heldout", "pool"}`` → {"points" (B, N, D), "means" (B, K, D)}.

    ``select`` and ``heldout`` are fresh mixtures from fixed seeds (the same for every run of a grid); ``pool`` holds
    new points from the first ``n_sets`` mixtures of the run's pool (all of them when the pool is smaller), None for
    pool 0."""
    task = config.task
    out: dict[str, dict | None] = {}
    for name, seed in (("select", 20_000), ("heldout", 30_000)):
        points, means = MixtureStream(task, seed=seed).batch(n_sets)
        out[name] = {"points": points, "means": means}
    if pool is None:
        out["pool"] = None
    else:
        means = pool[:n_sets]
        points, _ = sample_mixture_batch(means, task.component_std, task.context_len,
                                         generator=torch.Generator().manual_seed(40_000))
        out["pool"] = {"points": points, "means": means}
    return out


def smoothed(errors, window: int) -> np.ndarray:
    """Centred moving mean of ``errors`` over ``window`` validations (odd: entry i averages i − h … i + h,
    h = window // 2, fewer at the ends); a window holding a non-finite error is +inf."""
    if window < 1 or window % 2 == 0:
        raise checks.ParameterError("window", window, "an odd integer >= 1")
    e = np.asarray(errors, dtype=float)
    h, n = window // 2, len(e)
    finite = np.isfinite(e)
    csum = np.concatenate([[0.0], np.cumsum(np.where(finite, e, 0.0))])
    bad = np.concatenate([[0], np.cumsum(~finite)])
    lo, hi = np.clip(np.arange(n) - h, 0, n), np.clip(np.arange(n) + h + 1, 0, n)
    means = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)
    return np.where(bad[hi] - bad[lo] > 0, np.inf, means)


def choose_export(steps, errors, window: int) -> int:
    """The export rule: the step at the minimum of :func:`smoothed` ``errors`` (the ``select`` set's history); the
    earliest such step on ties; the last step when every window holds a non-finite error."""
    if not len(steps):
        raise ValueError("no validation history to choose an export from")
    s = smoothed(errors, window)
    if not np.isfinite(s).any():
        return int(steps[-1])
    return int(steps[int(np.argmin(s))])


def run_pool(config: TrainConfig) -> torch.Tensor | None:
    """The pool of mixture means (pool_size, K, D) a run of ``config`` trains on (None for pool 0): the
    :class:`~ambridge.icl.train.Trainer` draws it from a stream seeded ``config.seed + 1``. With
    :func:`validation_sets` it lets any model be scored on another run's pool (the control for the pool error)."""
    if not config.pool_size:
        return None
    return MixtureStream(config.task, seed=config.seed + 1, pool_size=config.pool_size).pool


def validation_errors(model: EnergyTransformer, config: TrainConfig, grid: Grid, sets: dict) -> dict:
    """``{"select_error", "heldout_error", "pool_error"}`` of ``model`` on :func:`validation_sets` ``sets``, sampled
    with ``config``'s Langevin settings: the grid's validation (NaN for a missing set)."""
    out = {}
    device = next(model.parameters()).device
    for name in SETS:
        s = sets[name]
        if s is None:
            out[f"{name}_error"] = float("nan")
            continue
        err = error_vs_context(model, s["points"].to(device), s["means"].to(device), [grid.val_n],
                               n_chains=grid.n_val_chains, box=config.task.box, n_steps=config.langevin_steps,
                               step_size=config.step_size, noise_std=config.noise_std,
                               generator=torch.Generator().manual_seed(50_000))["error"][0]
        out[f"{name}_error"] = round(float(err), 5)
    return out


def _interval_means(log: list[dict], after: int, upto: int) -> dict:
    rows = [r for r in log if after < r["step"] <= upto]
    if not rows:
        return {k: float("nan") for k in ("loss", "e_pos", "e_neg", "max_abs_energy")}
    out = {k: round(float(np.mean([r[k] for r in rows])), 5) for k in ("loss", "e_pos", "e_neg")}
    out["max_abs_energy"] = round(float(max(r["max_abs_energy"] for r in rows)), 4)
    return out


def _save_weights(model: EnergyTransformer, config: TrainConfig, step: int, path: Path, record: dict | None = None):
    """Weights only, in the format of :meth:`Trainer.export_model` (so :func:`~ambridge.icl.train.load_model`
    reads it); written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"kind": "icl-energy-model", "config": config.to_dict(), "model": weights, "step": step,
                "record": record or {}}, tmp)
    os.replace(tmp, path)


def _write_validation_csv(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(VALIDATION_FIELDS)
        for r in rows:
            writer.writerow([r[k] for k in VALIDATION_FIELDS])
    os.replace(tmp, path)


class _Stop(Exception):
    """Raised from a checkpoint callback to end a run early (a plateau); ``status`` says why."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def plateau_step(steps, errors, window: int, patience: int) -> int | None:
    """The step at which a run has reached its validation plateau: the last validation, once the lowest
    :func:`smoothed` ``errors`` lies more than ``patience`` validations before it; None while it does not."""
    if patience < 1 or len(steps) <= patience:
        return None
    best = int(np.argmin(smoothed(errors, window)))
    return int(steps[-1]) if len(steps) - 1 - best > patience else None


def train_run(config: TrainConfig, grid: Grid, out: str | os.PathLike, work: str | os.PathLike, *,
              device: str | torch.device = "cpu", make_record=None, log=print, patience: int = 0,
              time_budget_s: float | None = None, cuda_graph: bool = False, wall_time_note: str | None = None) -> dict:
    """Train (or resume) one run of the grid and write its artifacts to ``out``; returns its manifest row.

    ``work``: the folder for the resumable state (a subfolder per run, named by the run id and a hash of
    :func:`run_key`). ``make_record(parameters, wall_time_s=..., device=..., **results)`` builds the run record
    (the command line passes :func:`ambridge.book.records.run_record`); None writes the parameters and results only.
    ``patience`` > 0 ends the run at its validation plateau (:func:`plateau_step`) instead of at ``n_steps``;
    ``time_budget_s`` ends it after that much training in this call (status ``stopped at the time budget``: such
    a run is not finished, and :func:`run_grid` resumes it). Neither changes the trajectory, so neither is part of
    the run's key. ``cuda_graph``: replay each step from a CUDA graph (:class:`~ambridge.icl.train.Trainer`).
    ``wall_time_note``: a sentence on the conditions of the timing, kept in the record.
    """
    out, rid, key = Path(out), run_id(config), run_key(config, grid)
    trajectory = run_key(config, grid, with_steps=False)
    folder = Path(work) / f"{rid}-{hashlib.sha1(trajectory.encode()).hexdigest()[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    state = folder / "state.pt"
    if state.is_file():  # resume, possibly to a later n_steps (the trajectory does not depend on it)
        trainer = Trainer.resume(state, device, cuda_graph=cuda_graph)
        trainer.config = trainer.config.with_(n_steps=config.n_steps)
    else:
        trainer = Trainer(config, device, checkpoint_path=state, cuda_graph=cuda_graph)
    history = RecordStore(folder / "validation.jsonl")
    sets = validation_sets(config, trainer.stream.pool, grid.n_val_sets)
    began = time.perf_counter()

    def on_checkpoint(tr: Trainer) -> None:
        if f"step={tr.step}" in history:  # re-reached after a resume (training is deterministic on the CPU)
            return
        _save_weights(tr.model, tr.config, tr.step, folder / f"weights-{tr.step}.pt")
        previous = max((r["step"] for r in history if r["step"] < tr.step), default=0)
        row = {"key": f"step={tr.step}", "step": tr.step, **validation_errors(tr.model, tr.config, grid, sets),
               **_interval_means(tr.log, previous, tr.step), "wall_s": round(tr.wall_s, 2)}
        history.append(row)
        log(f"{rid} step {tr.step}: select {row['select_error']:.3f} heldout {row['heldout_error']:.3f} "
            f"pool {row['pool_error']:.3f} loss {row['loss']:.4f} max|E| {row['max_abs_energy']:.1f} "
            f"({tr.wall_s:.0f} s)")
        check_plateau(tr.step)

    def check_plateau(step: int) -> None:
        rows = sorted((r for r in history if r["step"] <= step), key=lambda r: r["step"])
        at = plateau_step([r["step"] for r in rows], [r["select_error"] for r in rows], grid.smooth_window, patience)
        if at is not None:
            raise _Stop(f"plateau at step {at}: the smoothed select error did not improve in the last {patience} "
                        f"validations")

    if f"step={trainer.step}" not in history:
        on_checkpoint(trainer)  # step 0 (the untrained model), or killed between a checkpoint and its validation
    status, diverged_at = "finished", None
    try:
        check_plateau(trainer.step)  # a resumed run may have reached it already
        trainer.train(progress=False, on_checkpoint=on_checkpoint, time_budget_s=time_budget_s)
        if trainer.step < config.n_steps:
            status = f"stopped at the time budget at step {trainer.step}"
    except TrainingDiverged as err:
        status, diverged_at = f"diverged at step {err.step + 1}: {err.reason}", err.step + 1
    except _Stop as stop:
        status = stop.status
    if status != "finished":
        log(f"{rid}: {status}")
    rows = sorted((r for r in history if r["step"] <= trainer.step), key=lambda r: r["step"])  # never empty
    steps = [r["step"] for r in rows]
    export_step = choose_export(steps, [r["select_error"] for r in rows], grid.smooth_window)
    at = rows[steps.index(export_step)]
    rule = (f"the step minimising the select-set error ({grid.n_val_sets} fresh mixtures, separate from the held-out "
            f"set) averaged over a centred window of {grid.smooth_window} validations (every "
            f"{grid.validate_every} steps)")
    results = dict(status=status, diverged_at=diverged_at, final_step=steps[-1], export_step=export_step,
                   export_rule=rule, heldout_error_at_export=at["heldout_error"],
                   pool_error_at_export=at["pool_error"], validation=grid.validation_spec(),
                   n_parameters=sum(p.numel() for p in trainer.model.parameters()),
                   **({"wall_time_note": wall_time_note} if wall_time_note else {}),
                   driver_wall_s_this_session=round(time.perf_counter() - began, 1))
    parameters = config.to_dict()
    record = (make_record(parameters, wall_time_s=trainer.wall_s, device=trainer.device, **results)
              if make_record else {"parameters": parameters, "wall_time_s": round(trainer.wall_s, 3), **results})
    weights = torch.load(folder / f"weights-{export_step}.pt", map_location="cpu", weights_only=False)
    model = EnergyTransformer(config.model)
    model.load_state_dict(weights["model"])
    paths = {"model": f"{rid}.pt", "validation": f"{rid}-validation.csv", "record": f"{rid}-record.json"}
    _save_weights(model, config, export_step, out / paths["model"], record)
    _write_validation_csv(rows, out / paths["validation"])
    (out / paths["record"]).write_text(json.dumps(record, indent=1) + "\n")
    return {"key": key, "run_id": rid, "pool_size": config.pool_size, "seed": config.seed, **paths,
            "export_step": export_step, "export_rule": rule, "final_step": steps[-1], "status": status,
            "diverged_at": diverged_at, "heldout_error_at_export": at["heldout_error"],
            "pool_error_at_export": at["pool_error"], "wall_time_s": round(trainer.wall_s, 1)}


def run_grid(grid: Grid, out: str | os.PathLike, work: str | os.PathLike, *, device: str | torch.device = "cpu",
             shard: tuple[int, int] = (0, 1), make_record=None, log=print, **run_options) -> list[dict]:
    """Train every run of ``grid`` not yet finished in ``out/manifest.jsonl`` (those of shard i of n: run index
    % n == i), appending each run's row; returns the rows written now. Two shards may share one manifest. A run
    whose newest row says it stopped at the time budget is resumed. ``run_options`` go to :func:`train_run`
    (``patience``, ``time_budget_s``, ``cuda_graph``, ``wall_time_note``)."""
    i, n = shard
    if not 0 <= i < n:
        raise checks.ParameterError("shard", shard, "(i, n) with 0 <= i < n")
    manifest = RecordStore(Path(out) / "manifest.jsonl")
    written = []
    for index, config in enumerate(grid.configs()):
        key = run_key(config, grid)
        if index % n != i:
            continue
        done = manifest.get(key)
        if done is not None and not str(done["status"]).startswith("stopped at the time budget"):
            log(f"{run_id(config)}: {done['status']} already, skipped")
            continue
        written.append(manifest.append(train_run(config, grid, out, work, device=device, make_record=make_record,
                                                 log=log, **run_options)))
    return written


def read_manifest(folder: str | os.PathLike) -> list[dict]:
    """The finished runs of ``folder/manifest.jsonl``, one row per run id (the newest: a run extended to more steps
    rewrites its files and appends a row), sorted by pool size (fresh last) and seed. A line that is not a JSON
    record raises :class:`~ambridge.store.CorruptStore` naming the file and line; a record missing a field raises
    ValueError naming the run and the field. Used in chapter 2, § Task diversity."""
    path = Path(folder) / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path}: run `python -m ambridge.icl experiments --out {folder}`")
    newest = {}
    for row in RecordStore(path):
        missing = [k for k in MANIFEST_FIELDS if k not in row]
        if missing:
            raise ValueError(f"{path}: the record of run {row.get('run_id', row['key'][:40])!r} lacks {missing}")
        newest.pop(row["run_id"], None)
        newest[row["run_id"]] = row
    return sorted(newest.values(), key=lambda r: (r["pool_size"] == 0, r["pool_size"], r["seed"]))


def load_run(row: dict, folder: str | os.PathLike, device: str | torch.device = "cpu"):
    """The exported model of a manifest row → (model in eval mode with θ frozen, its checkpoint dict)."""
    model, state = load_model(Path(folder) / row["model"], device)
    model.requires_grad_(False)
    return model, state


def read_validation(row: dict, folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """The validation history of a manifest row: one array per column of :data:`VALIDATION_FIELDS`."""
    with (Path(folder) / row["validation"]).open() as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([math.nan if r[k] in ("", "nan") else float(r[k]) for r in rows]) for k in VALIDATION_FIELDS}


def pool_size_summary(rows: list[dict]) -> list[dict]:
    """Per pool size (fresh last): the number of runs, how many diverged, and the mean and standard deviation over
    seeds (ddof 1; NaN for one run) of the held-out and pool errors at the exported steps. ``rows``: from
    :func:`read_manifest`. Used in chapter 2, § Task diversity."""
    out = []
    for pool in sorted({r["pool_size"] for r in rows}, key=lambda p: (p == 0, p)):
        group = [r for r in rows if r["pool_size"] == pool]
        entry = {"pool_size": pool, "n_runs": len(group), "n_diverged": sum(r["diverged_at"] is not None
                                                                             for r in group)}
        for name in ("heldout", "pool"):
            e = np.array([r[f"{name}_error_at_export"] for r in group], dtype=float)
            entry[f"{name}_mean"] = float(e.mean())
            entry[f"{name}_sd"] = float(e.std(ddof=1)) if len(e) > 1 else float("nan")
        out.append(entry)
    return out
