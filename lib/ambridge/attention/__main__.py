"""Command line of :mod:`ambridge.attention`: the untied-attention comparison, and its ablation, at paper scale.

    python -m ambridge.attention compare-forms --out DIR [--forms FORM ...] [--small] [--device cpu|cuda]
                                               [--workers N]

trains 8 seeds per form of a d_model 64, 2-block model for 2 000 steps — the configuration of the chapter's
``paper`` preset, evaluated every 50 steps — spread over ``--workers`` processes (one thread each; default: the CPU
count, at most 16). With the default forms (standard and untied concentration and mixing weight) it writes
``DIR/untied_comparison.json``; with ``--forms all`` (or any other list of
:data:`~ambridge.attention.model.FORMS`) the ablation that separates untying from QK normalisation and the extra
maps, ``DIR/form_ablation.json``. Both are run records (:func:`ambridge.book.records.run_record`) that
:func:`ambridge.attention.read_comparison` reads. ``--small`` runs a two-seed, twenty-step version in seconds, to
check the pipeline. ``benchmarks/gpu/06_attention_clustering.sh`` calls this; chapter 6, § The experiment the paper
proposes: untie concentration and mixing weight, and § Untying, unconfounded, show the results.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ..book.records import run_record
from .experiment import RetrievalTask, compare_forms
from .model import FORMS

#: The paper-scale comparison (chapters/presets/06_attention_clustering/paper.yaml, evaluated every 50 steps).
PAPER = dict(seeds=list(range(8)), d_model=64, n_layers=2, n_heads=4, steps=2000, batch_size=64, lr=1e-3,
             eval_size=1024, eval_every=50, data_seed=0)
#: A check of the pipeline in seconds.
SMALL = dict(seeds=[0, 1], d_model=16, n_layers=1, n_heads=2, steps=20, batch_size=16, lr=1e-3, eval_size=64,
             eval_every=10, data_seed=0)


#: The forms of the untied comparison; any other list is the ablation.
DEFAULT_FORMS = ("standard", "untied")


def artifact_name(forms) -> str:
    """``untied_comparison.json`` for the two forms of the untied comparison, ``form_ablation.json`` otherwise."""
    return "untied_comparison.json" if tuple(forms) == DEFAULT_FORMS else "form_ablation.json"


def compare_forms_command(out: Path, *, small: bool, device: str, workers: int, forms=DEFAULT_FORMS) -> dict:
    """Run the comparison, print the final losses, write ``out/`` :func:`artifact_name`; return the record."""
    params = SMALL if small else PAPER
    task = RetrievalTask()
    print(f"task {vars(task)}\nconfig {params}\nforms {list(forms)}\ndevice {device}, {workers} worker processes",
          flush=True)
    start = time.perf_counter()
    result = compare_forms(task, forms=tuple(forms), device=device, workers=workers, **params)
    wall = time.perf_counter() - start
    for form, runs in result["loss"].items():
        print(f"{form:9s} final eval loss per seed: {[round(r[-1], 4) for r in runs]}")
    print(f"Bayes loss {result['bayes_loss']:.4f}; wall time {wall:.1f} s")
    record = run_record({**params, "task": result["task"], "device": device, "workers": workers}, wall_time_s=wall,
                        device=device, step=result["step"], bayes_loss=result["bayes_loss"], loss=result["loss"],
                        n_parameters=result["n_parameters"])
    out.mkdir(parents=True, exist_ok=True)
    (out / artifact_name(forms)).write_text(json.dumps(record))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ambridge.attention", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("compare-forms", help="train both attention forms over seeds and compare")
    cmd.add_argument("--out", type=Path, required=True, help="folder for untied_comparison.json")
    cmd.add_argument("--small", action="store_true", help="two seeds, twenty steps: a check of the pipeline")
    cmd.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where every run trains")
    cmd.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1), help="training processes")
    cmd.add_argument("--forms", nargs="+", choices=[*FORMS, "all"], default=list(DEFAULT_FORMS),
                     help="attention forms to train ('all': the ablation, every form)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    forms = FORMS if "all" in args.forms else tuple(dict.fromkeys(args.forms))
    compare_forms_command(args.out, small=args.small, device=args.device, workers=args.workers, forms=forms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
