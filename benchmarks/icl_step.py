"""One training step of the in-context energy model: the vectorised masked sampler vs the per-position loop.

A step = draw B sequences, run T Langevin steps for S negatives at each of the N positions, compute the
contrastive-divergence loss, backward, clip, Adam. The two paths share the model, the data, the starts and the noise:

- **loop**: the public code's structure (``benchmarks/icl_loop_sampler.py``): every (position, negative) chain is
  appended to its prefix and run through the transformer on its own, N·S·T sequential passes per micro-batch, and
  the negatives' energies for the loss are again N·S separate passes;
- **vectorised**: :func:`ambridge.icl.langevin_negatives` — all chains are extra tokens of one masked pass per
  Langevin step, and the loss takes the real sequence and the negatives in one more pass;
- **captured** (CUDA only, unless ``--no-graph``): the same arithmetic as the trainer computes it
  (:func:`ambridge.icl.train.step_gradients`), recorded once in a CUDA graph (:class:`ambridge.runtime.CapturedCall`)
  and replayed: on a GPU a small model's step is launch-bound, hundreds of kernels of microseconds each. The
  capture's one-time cost is reported apart; its negatives are compared with the vectorised path's.

Both paths are timed in the same run, alternately, after a warm-up; the median is reported with the speed-up, and
the largest difference between their negatives. Then the vectorised step against the machine (``roofline.py``): its
FLOPs (PyTorch's counter), the achieved GFLOP/s, the bare fp32 matmul rate at the step's own shapes measured in the
same run, the roofline fraction, and where the time goes (torch.profiler, CPU). The result is written as JSON with a
run record.

    python benchmarks/icl_step.py                        # the public and the book's config, CPU: a few minutes
    python benchmarks/icl_step.py --configs public --skip-loop
    python benchmarks/icl_step.py --device cuda --configs public small paper

Configs: ``public`` is the public code's (d_model 64, 3 layers, 8 heads, PyTorch's default feed-forward 2048,
batch 8, 7 Langevin steps); ``small`` is the book's CPU checkpoint (the same with feed-forward 4·d_model = 256);
``paper`` the paper scale (d_model 128, 6 layers, 15 Langevin steps, batch 32); ``tiny`` a smoke test.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import ambridge  # noqa: F401
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from icl_loop_sampler import loop_negatives  # noqa: E402
from roofline import count_matmuls, matmul_rates, profile_summary, roofline  # noqa: E402

from ambridge.icl import (EnergyTransformer, ModelConfig, MixtureStream, MixtureTask,  # noqa: E402
                          TrainConfig, contrastive_divergence_loss, langevin_negatives, negative_positions,
                          uniform_init)
from ambridge.icl.layers import prefix_blocked  # noqa: E402
from ambridge.icl.train import step_gradients  # noqa: E402
from ambridge.runtime import CapturedCall, Stopwatch, hardware_summary, select_device  # noqa: E402
from ambridge.book.records import run_record

CONFIGS = {
    "public": {"d_model": 64, "n_heads": 8, "n_layers": 3, "langevin_steps": 7, "step_size": 3.16, "batch": 8,
               "feedforward": 2048},
    "small": {"d_model": 64, "n_heads": 8, "n_layers": 3, "langevin_steps": 7, "step_size": 3.16, "batch": 8},
    "paper": {"d_model": 128, "n_heads": 8, "n_layers": 6, "langevin_steps": 15, "step_size": 3.16, "batch": 32},
    "tiny": {"d_model": 16, "n_heads": 2, "n_layers": 1, "langevin_steps": 2, "step_size": 3.16, "batch": 2},
}


def parse_args(argv=None):  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["public", "small"],
                   help="public (the public code's: feed-forward 2048), small (the book's CPU model), paper (d_model "
                        "128, 6 layers, batch 32), tiny (a smoke test)")
    p.add_argument("--feedforward", type=int, default=-1,
                   help="feed-forward width for every config (default: the config's; 0: 4·d_model)")
    p.add_argument("--skip-loop", action="store_true", help="time the vectorised step only (no loop reference)")
    p.add_argument("--no-roofline", action="store_true", help="skip the FLOP count, matmul rates and profile")
    p.add_argument("--no-graph", action="store_true", help="CUDA: skip the step replayed from a CUDA graph")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per path; the median is reported")
    p.add_argument("--loop-repeats", type=int, default=0, help="timed loop steps (default: --repeats)")
    p.add_argument("--negatives", type=int, default=3)
    p.add_argument("--noise", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for the JSON")
    return p.parse_args(argv)


def slug(text: str) -> str:
    text = re.sub(r"\((R|TM|tm|r)\)|@.*|\bCPU\b|\bwith\b.*", " ", text)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "unknown"


def make_step(path, model, optimizer, context, init, noise, cfg, args, autocast_dtype, captured=None):
    """One optimizer step along ``path`` ("loop" | "vectorised" | "captured"); returns the negatives."""
    b, n, s, d = init.shape
    ac = dict(device_type=context.device.type, dtype=autocast_dtype or torch.float32,
              enabled=autocast_dtype is not None)
    optimizer.zero_grad(set_to_none=True)
    if path == "captured":  # the graph's outputs are overwritten at the next replay: keep a copy of the negatives
        neg, _, grads = captured(context, init.reshape(b, n * s, d), noise.reshape(-1, b, n * s, d))
        for p, g in zip(model.parameters(), grads):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        return neg.reshape(b, n, s, d).clone()
    if path == "loop":
        neg = loop_negatives(model, context, init, noise, step_size=cfg["step_size"], noise_std=args.noise,
                             box=15.0, autocast_dtype=autocast_dtype)
        with torch.autocast(**ac):
            e_pos = model(context)
            e_neg = torch.stack([torch.stack([model(torch.cat([context[:, :i], neg[:, i, j, None]], 1))[:, -1]
                                              for j in range(s)], -1) for i in range(n)], 1)
    else:
        neg = langevin_negatives(model, context, n_negatives=s, n_steps=cfg["langevin_steps"],
                                 step_size=cfg["step_size"], noise_std=args.noise, box=15.0, init=init, noise=noise,
                                 autocast_dtype=autocast_dtype)
        with torch.autocast(**ac):
            e_pos, e_neg = model.candidate_energies(context, neg.reshape(b, n * s, d),
                                                    negative_positions(n, s))
    loss = contrastive_divergence_loss(e_pos.float(), e_neg.float(), 1e-3)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    optimizer.step()
    return neg


def bench_config(name, cfg, args, device, loop_warmup=True):
    autocast_dtype = torch.bfloat16 if device.type == "cuda" else None
    torch.manual_seed(args.seed)
    feedforward = args.feedforward if args.feedforward >= 0 else cfg.get("feedforward", 0)
    mcfg = ModelConfig(d_model=cfg["d_model"], n_heads=cfg["n_heads"], n_layers=cfg["n_layers"],
                       dim_feedforward=feedforward)
    model = EnergyTransformer(mcfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    stream = MixtureStream(MixtureTask(), seed=args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    context = stream.batch(cfg["batch"])[0].to(device)
    b, n, s, d = cfg["batch"], context.shape[1], args.negatives, 2
    init = uniform_init((b, n, s, d), 15.0, generator=g).to(device)
    noise = torch.randn((cfg["langevin_steps"], b, n, s, d), generator=g).to(device)
    # Fresh optimizers per path so both start from the same parameters each repeat.
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    times = {"vectorised": [], "loop": [], "captured": []}
    negs = {}
    repeats = {"vectorised": args.repeats, "loop": 0 if args.skip_loop else args.loop_repeats or args.repeats,
               "captured": args.repeats if device.type == "cuda" and not args.no_graph else 0}
    captured, capture_s = None, None
    if repeats["captured"]:
        train_config = TrainConfig(model=mcfg, batch_size=b, n_negatives=s, langevin_steps=cfg["langevin_steps"],
                                   step_size=cfg["step_size"], noise_std=args.noise)
        blocked = prefix_blocked(n, negative_positions(n, s, device=device))

        def pure_step(c, i, z):
            return step_gradients(model, train_config, blocked, c, i, z, autocast_dtype=autocast_dtype)

        with Stopwatch(device) as sw:  # two warm-up calls on a side stream, then the capture
            captured = CapturedCall(pure_step, context, init.reshape(b, n * s, d), noise.reshape(-1, b, n * s, d))
        capture_s = sw.seconds
    print(f"[{name}] d_model {mcfg.d_model}, {mcfg.n_layers} layers, {mcfg.n_heads} heads, feed-forward "
          f"{mcfg.feedforward}, {n_params:,} parameters; batch {b}, {n} points, {s} negatives/point, "
          f"{cfg['langevin_steps']} Langevin steps", flush=True)
    for rep in range(-1, max(repeats.values())):  # rep -1 is the warm-up
        for path in ("vectorised", "captured", "loop"):
            if not repeats[path] or rep >= repeats[path] or (rep < 0 and path == "loop" and not loop_warmup):
                continue
            model.load_state_dict(start_state)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
            with Stopwatch(device) as sw:
                negs[path] = make_step(path, model, opt, context, init, noise, cfg, args, autocast_dtype, captured)
            if rep >= 0:
                times[path].append(sw.seconds)
            print(f"  {path:10s} {'warm-up' if rep < 0 else f'repeat {rep}'}: {sw.seconds:.3f} s", flush=True)
    med = {p: statistics.median(t) if t else float("nan") for p, t in times.items()}
    diff = (negs["vectorised"] - negs["loop"]).abs().max().item() if "loop" in negs else float("nan")
    row = {"config": name, "n_parameters": n_params, "feedforward": mcfg.feedforward, "batch": b,
           "negatives": s, "langevin_steps": cfg["langevin_steps"], "precision": "bf16" if autocast_dtype else "fp32",
           "loop_s": med["loop"], "vectorised_s": med["vectorised"], "speedup": med["loop"] / med["vectorised"],
           "max_abs_negative_difference": diff, "times": times}
    if "captured" in negs:
        gap = (negs["captured"] - negs["vectorised"]).abs()
        row.update(captured_s=med["captured"], capture_once_s=capture_s,
                   graph_speedup=med["vectorised"] / med["captured"],
                   captured_vs_vectorised_max_abs=gap.max().item(),
                   captured_vs_vectorised_median_abs=gap.median().item())
        print(f"[{name}] captured {med['captured']:.4f} s per step (capture once {capture_s:.2f} s): "
              f"{row['graph_speedup']:.1f}x the eager vectorised step; negatives differ by at most "
              f"{row['captured_vs_vectorised_max_abs']:.2e} (median {row['captured_vs_vectorised_median_abs']:.1e})",
              flush=True)
    print(f"[{name}] loop {med['loop']:.3f} s, vectorised {med['vectorised']:.4f} s per step: "
          f"speed-up {row['speedup']:.1f}x; max |negatives difference| {diff:.2e}", flush=True)
    if not args.no_roofline:
        def step():
            model.load_state_dict(start_state)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
            make_step("vectorised", model, opt, context, init, noise, cfg, args, autocast_dtype)

        total, per_shape = count_matmuls(step)
        row["roofline"] = roofline(med["vectorised"], total, per_shape,
                                   matmul_rates(per_shape, device=device.type))
        if device.type == "cpu":
            row["profile"] = profile_summary(step)
        r = row["roofline"]
        print(f"[{name}] {r['gflop']:.2f} GFLOP per step: {r['gflop_per_s']:.1f} GFLOP/s; bare fp32 matmuls at the "
              f"step's shapes {r['matmul_gflop_per_s_at_step_shapes']:.1f} GFLOP/s; roofline time "
              f"{r['roofline_time_s']:.3f} s = {100 * r['roofline_fraction']:.0f} % of the step", flush=True)
        for p in row.get("profile", [])[:8]:
            print(f"    {p['op'][:48]:48s} {100 * p['fraction']:5.1f} %  ({p['calls']} calls)")
    return row


def main(argv=None):
    args = parse_args(argv)
    device = select_device(args.device)
    began = time.perf_counter()
    print(f"one training step, vectorised vs loop, on {device}: {hardware_summary(device)}")
    # The loop's kernels are warm after the first config: later configs skip its (slow) warm-up step.
    rows = [bench_config(name, CONFIGS[name], args, device, loop_warmup=i == 0) for i, name in enumerate(args.configs)]
    record = run_record(vars(args), wall_time_s=time.perf_counter() - began, device=device, rows=rows)
    hw = slug(torch.cuda.get_device_name(device)) if device.type == "cuda" else \
        f"{slug(hardware_summary('cpu').split(',')[0])}-{torch.get_num_threads()}t"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"icl_step-{device.type}-{hw}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main()
