"""``python -m ambridge.icl --preset paper --steps 5000 --time-budget 240 --out DIR --name NAME``: train the
in-context energy transformer of chapter 2 (:func:`main`), with checkpoints, resume and a validated export.

``python -m ambridge.icl experiments --out DIR --work WORK``: the pool-size × seed grid of
:mod:`ambridge.icl.experiments` (:func:`experiments_main`), resumable, skipping the runs its manifest holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ..book.records import run_record
from ..runtime import hardware_summary, select_device
from .data import MixtureStream
from .evaluate import error_vs_context
from .experiments import QUICK_MODEL, Grid, run_grid
from .model import ModelConfig
from .train import TrainConfig, Trainer, TrainingDiverged

PRESETS = {
    # The earliest public defaults (feed-forward 4·d_model instead of PyTorch's 2048; one micro-batch per step).
    "small": dict(d_model=64, n_heads=8, n_layers=3, langevin_steps=7, step_size=3.16, batch_size=8),
    # The companion paper's scale: 6 layers, d_model 128, 15 Langevin steps; batch 32 on a GPU.
    "paper": dict(d_model=128, n_heads=8, n_layers=6, langevin_steps=15, step_size=3.16, batch_size=32),
    # A tiny run for tests of the command line and of the GPU script.
    "tiny": dict(d_model=16, n_heads=2, n_layers=1, langevin_steps=2, step_size=3.16, batch_size=2),
}


def config_from_args(args) -> TrainConfig:
    p = dict(PRESETS[args.preset])
    for key in ("d_model", "n_heads", "n_layers", "langevin_steps", "step_size", "batch_size"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    model = ModelConfig(d_model=p["d_model"], n_heads=p["n_heads"], n_layers=p["n_layers"],
                        dim_feedforward=args.dim_feedforward)
    return TrainConfig(model=model, batch_size=p["batch_size"], grad_accum=args.grad_accum,
                       langevin_steps=p["langevin_steps"], step_size=p["step_size"], noise_std=args.noise_std,
                       n_steps=args.steps, checkpoint_every=args.checkpoint_every, seed=args.seed,
                       pool_size=args.pool_size, lr=args.lr)


def experiments_main(argv=None) -> int:
    """``python -m ambridge.icl experiments --out DIR --work WORK [--steps 600] [--shard 0/2]``: train the grid of
    :class:`~ambridge.icl.experiments.Grid` (pool sizes × seeds, the chapter's quick model by default) with
    ``--threads`` torch threads (default 1, to share the machine). Used for chapter 2, § Task diversity."""
    ap = argparse.ArgumentParser(prog="python -m ambridge.icl experiments",
                                 description="Train the pool-size x seed grid of chapter 2.")
    ap.add_argument("--out", required=True, help="artifacts: models, validation logs, records, manifest.jsonl")
    ap.add_argument("--work", required=True, help="resumable state (not committed)")
    ap.add_argument("--pool-sizes", type=int, nargs="+", default=[10, 100, 1000, 0], help="0: fresh mixtures")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--validate-every", type=int, default=25)
    ap.add_argument("--val-sets", type=int, default=16, help="datasets per validation set")
    ap.add_argument("--val-chains", type=int, default=32)
    ap.add_argument("--smooth-window", type=int, default=3, help="validations in the export rule's centred mean (odd)")
    ap.add_argument("--d-model", type=int, default=QUICK_MODEL.d_model)
    ap.add_argument("--n-heads", type=int, default=QUICK_MODEL.n_heads)
    ap.add_argument("--n-layers", type=int, default=QUICK_MODEL.n_layers)
    ap.add_argument("--dim-feedforward", type=int, default=QUICK_MODEL.dim_feedforward)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--langevin-steps", type=int, default=7)
    ap.add_argument("--shard", default="0/1", help="i/n: train the runs whose index % n == i")
    ap.add_argument("--step-size", type=float, default=3.16)
    ap.add_argument("--patience", type=int, default=0,
                    help="end a run at its validation plateau: no better smoothed select error in this many "
                         "validations (0: train --steps)")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="seconds of training per run in this call; a run stopped by it resumes next time")
    ap.add_argument("--cuda-graph", action="store_true", help="replay each step from a CUDA graph (CUDA only)")
    ap.add_argument("--note", default=None, help="the conditions of the timing, kept in each run record")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = ModelConfig(d_model=args.d_model, n_heads=args.n_heads, n_layers=args.n_layers,
                        dim_feedforward=args.dim_feedforward)
    base = TrainConfig(model=model, batch_size=args.batch_size, langevin_steps=args.langevin_steps,
                       step_size=args.step_size)
    grid = Grid(base=base, pool_sizes=tuple(args.pool_sizes), seeds=tuple(args.seeds), n_steps=args.steps,
                validate_every=args.validate_every, n_val_sets=args.val_sets, n_val_chains=args.val_chains,
                smooth_window=args.smooth_window)
    i, n = (int(v) for v in args.shard.split("/"))
    command = "python -m ambridge.icl experiments " + " ".join(sys.argv[2:] if argv is None else argv)

    def make_record(parameters, **kw):
        return run_record(parameters, command=command, **kw)

    run_grid(grid, args.out, args.work, device=select_device(args.device), shard=(i, n), make_record=make_record,
             log=lambda line: print(time.strftime("%H:%M:%S"), line, flush=True), patience=args.patience,
             time_budget_s=args.time_budget, cuda_graph=args.cuda_graph, wall_time_note=args.note)
    return 0


def main(argv=None) -> int:
    """``python -m ambridge.icl --preset paper --steps 5000 --time-budget 240 --out DIR --name NAME``.

    Writes, and rewrites at every checkpoint (so a run killed by a time limit still leaves them):
    ``DIR/NAME.pt`` (weights only, with the config and the run record, of the checkpoint with the lowest validation
    error so far), ``DIR/NAME-log.csv``, ``DIR/NAME-record.json``; the full resumable state goes to ``--state`` (default ``DIR/NAME-state.pt``).
    ``--resume`` continues from ``--state``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["experiments"]:
        return experiments_main(argv[1:])
    ap = argparse.ArgumentParser(description="Train the in-context energy transformer (chapter 2).",
                                 epilog="python -m ambridge.icl experiments --help: the pool-size x seed grid")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--d-model", dest="d_model", type=int)
    ap.add_argument("--n-heads", dest="n_heads", type=int)
    ap.add_argument("--n-layers", dest="n_layers", type=int)
    ap.add_argument("--langevin-steps", dest="langevin_steps", type=int)
    ap.add_argument("--step-size", dest="step_size", type=float)
    ap.add_argument("--batch-size", dest="batch_size", type=int)
    ap.add_argument("--dim-feedforward", type=int, default=0, help="0: 4·d_model")
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--noise-std", type=float, default=0.01)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--pool-size", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--checkpoint-every", type=int, default=200)
    ap.add_argument("--time-budget", type=float, default=None, help="seconds of training, then stop cleanly")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="checkpoint")
    ap.add_argument("--state", default=None, help="the full training state (default OUT/NAME-state.pt)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--progress", action="store_true", help="a progress bar on stderr")
    ap.add_argument("--cuda-graph", action="store_true", help="replay each step from a CUDA graph (CUDA only)")
    ap.add_argument("--print-every", type=int, default=50)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = Path(args.state) if args.state else out / f"{args.name}-state.pt"
    if args.resume:  # the checkpoint's config, but train up to --steps (which does not change the trajectory)
        trainer = Trainer.resume(state, device, cuda_graph=args.cuda_graph)
        trainer.config = trainer.config.with_(n_steps=args.steps)
    else:
        trainer = Trainer(config_from_args(args), device, checkpoint_path=state, cuda_graph=args.cuda_graph)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    print(f"training on {device} ({hardware_summary(device)}): {n_params:,} parameters, "
          f"config {json.dumps(trainer.config.to_dict())}", flush=True)
    began = time.perf_counter()
    # Short-run contrastive divergence can collapse late in a run (E⁺ and E⁻ running apart while |E| stays finite),
    # so the exported weights are those of the checkpoint whose samples came closest to held-out mixtures.
    task = trainer.config.task
    val_points, val_means = MixtureStream(task, seed=10_000 + trainer.config.seed).batch(16)
    val_n = min(30, task.context_len)
    record_path = out / f"{args.name}-record.json"
    best = {"error": float("inf"), "step": None, "history": []}
    if args.resume and record_path.is_file():
        previous = json.loads(record_path.read_text())
        best.update(error=previous.get("validation_error", float("inf")), step=previous.get("best_step"),
                    history=previous.get("validation", []))

    def validate(tr: Trainer) -> float:
        c = tr.config
        return error_vs_context(tr.model, val_points.to(device), val_means.to(device), [val_n], n_chains=32,
                                box=c.task.box, n_steps=c.langevin_steps, step_size=c.step_size,
                                noise_std=c.noise_std, generator=torch.Generator().manual_seed(0))["error"][0]

    def export(tr: Trainer, status: str = "running") -> None:
        if best["history"] and best["history"][-1][0] == tr.step:  # already validated: only the status changes
            rec = json.loads(record_path.read_text())
            rec["status"] = status
            record_path.write_text(json.dumps(rec, indent=1) + "\n")
            print(f"step {tr.step}: {status}", flush=True)
            return
        error = validate(tr)
        best["history"].append([tr.step, round(error, 4)])
        improved = error < best["error"]
        if improved:
            best.update(error=error, step=tr.step)
        rec = run_record(tr.config.to_dict(), wall_time_s=tr.wall_s, device=device, status=status, step=tr.step,
                         best_step=best["step"], validation_error=round(best["error"], 4),
                         validation=best["history"], n_parameters=n_params,
                         validation_protocol=f"16 fresh mixtures, 32 chains each, n = {val_n}: mean distance of "
                                             "samples to the nearest true mean",
                         precision="bf16 autocast" if tr.autocast_dtype else "fp32",
                         command="python -m ambridge.icl " + " ".join(argv if argv is not None else sys.argv[1:]))
        if improved:
            tr.export_model(out / f"{args.name}.pt", **rec)
        tr.write_log(out / f"{args.name}-log.csv")
        record_path.write_text(json.dumps(rec, indent=1) + "\n")
        last = tr.log[-1] if tr.log else {}
        print(f"checkpoint at step {tr.step} ({status}): loss {last.get('loss', float('nan')):.4f}, "
              f"E+ {last.get('e_pos', float('nan')):.3f}, E- {last.get('e_neg', float('nan')):.3f}, "
              f"validation error {error:.3f} (best {best['error']:.3f} at step {best['step']}), "
              f"{tr.wall_s:.0f} s of training", flush=True)

    last_print = trainer.step
    try:
        while trainer.step < trainer.config.n_steps:
            chunk = min(trainer.config.n_steps, trainer.step + args.print_every)
            budget = None if args.time_budget is None else args.time_budget - (time.perf_counter() - began)
            if budget is not None and budget <= 0:
                break
            trainer.train(chunk, progress=args.progress, time_budget_s=budget, on_checkpoint=export)
            if trainer.step > last_print:
                row = trainer.log[-1]
                print(f"step {row['step']}: loss {row['loss']:.4f} E+ {row['e_pos']:.3f} E- {row['e_neg']:.3f} "
                      f"max|E| {row['max_abs_energy']:.2f} |grad| {row['grad_norm']:.2f} "
                      f"({row['wall_s']:.0f} s)", flush=True)
                last_print = trainer.step
    except TrainingDiverged as err:
        export_ok = trainer.last_checkpoint is not None
        print(f"DIVERGED: {err}", flush=True)
        if export_ok:  # the exported weights are those of the best good checkpoint already
            rec = json.loads(record_path.read_text())
            rec["status"] = f"diverged at step {err.step}: {err.reason}; weights are from step {rec['best_step']}"
            record_path.write_text(json.dumps(rec, indent=1) + "\n")
        return 3
    trainer.checkpoint()
    export(trainer, "finished" if trainer.step >= trainer.config.n_steps else "stopped at the time budget")
    return 0



if __name__ == "__main__":
    sys.exit(main())
