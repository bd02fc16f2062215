"""Benchmark: the capacity sweep's retrieval — queries per second, fused attention vs a naive fp32 path.

One point of the Chapter 5 sweep: N patterns uniform on the unit sphere in ℝ^d, bandwidth σ = s/√d, Q of them
(moved by 0.1 in a random direction) iterated by mean shift to convergence over all N keys, then judged (end
within ε = 0.1 of its pattern and nearest to it). Two implementations of the same loop
(ambridge.dynamics.iterate_to_fixed_point, which only steps the states still moving):

- ``naive``:   x ← softmax(−torch.cdist(x, X)²/(2σ²)) X in float32, nearest point by ``cdist(...).argmin``;
- ``library``: ``ambridge.kde.retrieve(method="sphere")``, the sweep's path — the mean-shift step in its mask-free
  attention form on fused ``scaled_dot_product_attention``, in float32 and, on a GPU, float16 and bfloat16.

Reported per (d, N, path): median wall time over the repeats (paths interleaved), queries per second, mean
iterations, success fraction, the fraction of queries whose verdict agrees with the naive path, and the speed-up.
Only torch, numpy, scipy and ambridge are needed (``lib/`` is put on ``sys.path`` if ambridge is not installed).

    python benchmarks/capacity.py                      # CPU: d=48, N=4096..65536, 256 queries (a few minutes)
    python benchmarks/capacity.py --device cuda        # d=64, N=65536..1048576, 4096 queries
    python benchmarks/capacity.py --dims 32 --sizes 2048 --queries 64 --repeats 1 --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

try:
    import ambridge  # noqa: F401
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from ambridge import kde
from ambridge.checks import ParameterError, check_number
from ambridge.data import sphere_points
from ambridge.dynamics import iterate_to_fixed_point
from ambridge.runtime import Stopwatch, hardware_summary, select_device
from ambridge.book.records import run_record

DEFAULTS = {
    "cpu": {"dims": [48], "sizes": [4096, 16384, 65536], "queries": 256, "chunk": 4096, "naive_chunk": 256},
    "cuda": {"dims": [64], "sizes": [65536, 262144, 1048576], "queries": 4096, "chunk": 16384, "naive_chunk": 1024},
}
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--dims", type=int, nargs="+", help="dimensions d (default: cpu 48; cuda 64)")
    p.add_argument("--sizes", type=int, nargs="+", help="numbers of patterns N")
    p.add_argument("--queries", type=int, help="queries Q per point (default: cpu 256; cuda 4096)")
    p.add_argument("--scale", type=float, default=1.8, help="bandwidth scale s, σ = s/√d (default 1.8, the paper preset)")
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per path; the median is reported (default 3)")
    p.add_argument("--precisions", nargs="+", choices=sorted(PRECISIONS), help="library precisions (default: cpu fp32; cuda all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON file (default benchmarks/results/capacity-<device>.json)")
    args = p.parse_args(argv)
    check_number("repeats", args.repeats, low=1, integer=True)
    check_number("scale", args.scale, low=0, low_open=True)
    check_number("max_iter", args.max_iter, low=1, integer=True)
    for name in ("dims", "sizes"):
        for v in getattr(args, name) or []:
            check_number(name, v, low=2, integer=True)
    if args.queries is not None:
        check_number("queries", args.queries, low=1, integer=True)
    return args


def naive_retrieve(data, sigma, targets, starts, *, eps, max_iter, tol, chunk):
    """The same experiment with the textbook step: squared distances by cdist, softmax, weighted sum (float32)."""

    def step(v):
        w = torch.softmax(-torch.cdist(v, data).pow(2) / (2 * sigma**2), dim=-1)
        return w @ data

    run = iterate_to_fixed_point(step, starts, max_iter=max_iter, tol=tol, chunk=chunk)
    nearest = torch.cat([torch.cdist(q, data).argmin(dim=-1) for q in run.state.split(chunk)])
    distance = (run.state - data[targets]).norm(dim=-1)
    return (distance <= eps) & (nearest == targets), run.steps


def main(argv=None) -> int:
    args = parse_args(argv)
    device = select_device(args.device)
    cfg = DEFAULTS[device.type]
    dims, sizes = args.dims or cfg["dims"], args.sizes or cfg["sizes"]
    queries = args.queries or cfg["queries"]
    names = args.precisions or (["fp32", "fp16", "bf16"] if device.type == "cuda" else ["fp32"])
    hardware = hardware_summary(device)
    print(f"capacity-sweep retrieval on {device}: {hardware}", flush=True)
    print(f"s = {args.scale} (σ = s/√d), {queries} queries per point, noise 0.1, ε = 0.1, at most {args.max_iter} "
          f"iterations; median of {args.repeats} runs, paths interleaved", flush=True)
    rows, t_start = [], time.perf_counter()
    for d in dims:
        sigma = kde.scaled_bandwidth(args.scale, 1.0, d)
        for n in sizes:
            gen = torch.Generator(device=device).manual_seed(args.seed)
            data = sphere_points(n, d, generator=gen, dtype=torch.float32)
            targets = torch.randperm(n, generator=gen, device=device)[: min(n, queries)]
            starts = kde.perturb(data[targets], 0.1, generator=gen)
            paths = {"naive/fp32": lambda: naive_retrieve(data, sigma, targets, starts, eps=0.1, max_iter=args.max_iter,
                                                          tol=1e-5, chunk=cfg["naive_chunk"])}
            for name in names:
                dtype = PRECISIONS[name]
                tol = 1e-5  # every precision: a half-precision step lands exactly on its fixed point (see kde)

                def lib(dtype=dtype, tol=tol):
                    out = kde.retrieve(data, sigma, targets, starts, eps=0.1, max_iter=args.max_iter, tol=tol,
                                       precision=dtype, chunk=cfg["chunk"], method="sphere")
                    return out.success, out.n_iter

                paths[f"library/{name}"] = lib
            times, outs, errors = {k: [] for k in paths}, {}, {}
            for r in range(args.repeats):
                for key, fn in paths.items():
                    if key in errors:
                        continue
                    try:
                        with Stopwatch(device) as sw:
                            outs[key] = fn()
                    except (RuntimeError, torch.cuda.OutOfMemoryError) as e:  # e.g. a precision the device lacks
                        errors[key] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                        continue
                    times[key].append(sw.seconds)
            naive_ok = outs.get("naive/fp32", (None,))[0]
            naive_s = statistics.median(times["naive/fp32"]) if times["naive/fp32"] else None
            print(f"\nd={d} N={n} Q={len(targets)}", flush=True)
            print(f"{'path':<14} {'median s':>9} {'queries/s':>10} {'iters':>6} {'success':>8} {'agree':>6} {'speed-up':>8}")
            for key in paths:
                if key in errors:
                    print(f"{key:<14} {errors[key]}")
                    rows.append({"d": d, "N": n, "path": key, "error": errors[key]})
                    continue
                med = statistics.median(times[key])
                ok, iters = outs[key]
                agree = float((ok == naive_ok).float().mean()) if naive_ok is not None else None
                speed = naive_s / med if naive_s else None
                row = {"d": d, "N": n, "queries": len(targets), "path": key, "median_s": round(med, 5),
                       "times_s": [round(t, 5) for t in times[key]], "queries_per_s": round(len(targets) / med, 2),
                       "mean_iter": round(float(iters.float().mean()), 2), "success": round(float(ok.float().mean()), 4),
                       "agree_with_naive": agree, "speedup_vs_naive": None if speed is None else round(speed, 3)}
                rows.append(row)
                print(f"{key:<14} {med:>9.3f} {len(targets) / med:>10.4g} {row['mean_iter']:>6.1f} "
                      f"{row['success']:>8.3f} {agree if agree is None else round(agree, 3)!s:>6} "
                      f"{'n/a' if speed is None else f'{speed:.2f}x':>8}", flush=True)
            del data, outs, paths
            if device.type == "cuda":
                torch.cuda.empty_cache()
    wall = time.perf_counter() - t_start
    params = {"device": str(device), "dims": dims, "sizes": sizes, "queries": queries, "scale": args.scale,
              "noise": 0.1, "eps": 0.1, "max_iter": args.max_iter, "repeats": args.repeats, "precisions": names,
              "chunk": cfg["chunk"], "naive_chunk": cfg["naive_chunk"], "seed": args.seed,
              "torch_threads": torch.get_num_threads()}
    record = run_record(params, wall_time_s=wall, device=device, benchmark="capacity", rows=rows)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"capacity-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    best = [r for r in rows if r.get("speedup_vs_naive") and r["path"].startswith("library")]
    for r in best:
        print(f"speed-up of {r['path']} over naive fp32 at d={r['d']}, N={r['N']}: {r['speedup_vs_naive']:.2f}x "
              f"(verdicts agree on {r['agree_with_naive']:.1%} of queries)")
    print(f"\nwrote {out} ({wall:.1f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ParameterError as e:
        sys.exit(f"capacity.py: {e}")
