"""Benchmark: one retrieval sweep — every stored pattern used as a query against all N (cost ~N²d).

One full mean-shift / modern-Hopfield step over the whole data set, x_i ← Σ_n softmax_n(−‖x_i − x_n‖²/(2σ²)) x_n
for every i, timed along two paths over the same query chunks (repeats interleaved across paths):

- ``naive``:   ``torch.cdist(chunk, x)**2``, softmax over −dist²/(2σ²), then ``weights @ x``, in float32;
- ``library``: ``ambridge.dynamics.mean_shift_step(chunk, x, sigma)`` — the points lie on the unit sphere, so it
  takes the mask-free ``scaled_dot_product_attention`` path — in float32, and with ``precision=`` float16 and
  bfloat16 where the device supports them;
- ``bare``: ``torch.nn.functional.scaled_dot_product_attention`` alone, in the same precisions and chunks, on
  tensors cast and shaped (1, 1, N, d) before the timing starts: what the fused kernel costs with none of the
  library's checks, casts and reshapes. ``bare-1call`` is the same with all N queries in one call (no chunking):
  the kernel spreads a call over blocks of queries, and a chunk too small to fill the GPU's multiprocessors
  several times over leaves them idle. The summary gives library ÷ bare, and on a GPU with a known dense
  half-precision peak (``--peak-tflops``) the fraction of that peak each half-precision path reaches.

Every timed path is checked: the table gives the largest |difference| from the naive float32 result over the
whole sweep, and from a float64 reference on the first 512 queries. Flops are counted as 4·N²·d (the two matmuls).

Only the standard library, torch, numpy and ambridge are used (the GPU machine has nothing else). If ``ambridge``
is not importable, ``lib/`` next to this folder is put on ``sys.path``.

    python benchmarks/retrieval.py                     # auto device; CPU: d=64, N=1024..8192 (under a minute)
    python benchmarks/retrieval.py --device cuda       # N=8192..131072, d=64 and 128
    python benchmarks/retrieval.py --dims 64 --sizes 4096 --repeats 3 --chunk 2048 --beta 10
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

try:
    import ambridge  # noqa: F401
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from ambridge.data import sphere_points
from ambridge.dynamics import mean_shift_step, norms_are_equal
from ambridge.runtime import ParameterError, Stopwatch, check_number, hardware_summary, select_device
from ambridge.book.records import run_record

DEFAULTS = {
    "cpu": {"dims": [64], "sizes": [1024, 2048, 4096, 8192], "chunk": 4096},
    # The flash kernel spreads a call over blocks of ~128 queries; 4096 queries are only 32 blocks for an H100's
    # 132 SMs, so the GPU default chunk is larger (it is shrunk automatically if memory is short).
    "cuda": {"dims": [64, 128], "sizes": [8192, 16384, 32768, 65536, 131072], "chunk": 16384},
}
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
N_REF = 512  # queries checked against the float64 reference


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--dims", type=int, nargs="+", help="pattern dimensions d (default: cpu 64; cuda 64 128)")
    p.add_argument("--sizes", type=int, nargs="+", help="numbers of patterns N (default: cpu 1024..8192; cuda 8192..131072)")
    p.add_argument("--repeats", type=int, default=5, help="timed sweeps per path; the median is reported (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed sweeps per path before timing (default 1)")
    p.add_argument("--chunk", type=int, help="queries per call, the same for every path (default: cpu 4096; cuda 16384)")
    p.add_argument("--beta", type=float, default=10.0, help="inverse temperature β = 1/σ² on the unit sphere (default 10)")
    p.add_argument(
        "--precisions", nargs="+", choices=sorted(PRECISIONS), default=["fp32", "fp16", "bf16"],
        help="library-path precisions to try; unsupported ones are skipped (default fp32 fp16 bf16)",
    )
    p.add_argument("--no-malloc-tuning", action="store_true",
                   help="CPU: leave glibc's allocator as it is (default: keep freed memory, see keep_freed_memory)")
    p.add_argument("--no-bare", action="store_true", help="skip the bare scaled_dot_product_attention paths")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's dense fp16/bf16 peak in TFLOP/s (default: known for H100/H200, else none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for the JSON result")
    args = p.parse_args(argv)
    for name in ("repeats", "seed"):
        check_number(name, getattr(args, name), low=1 if name == "repeats" else 0, integer=True)
    check_number("warmup", args.warmup, low=0, integer=True)
    check_number("beta", args.beta, low=0, low_open=True)
    for name in ("dims", "sizes"):
        for v in getattr(args, name) or []:
            check_number(name, v, low=1, integer=True)
    if args.chunk is not None:
        check_number("chunk", args.chunk, low=1, integer=True)
    return args


def slug(text: str) -> str:
    text = re.sub(r"\((R|TM|tm|r)\)|@.*|\bCPU\b|\bwith\b.*", " ", text)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "unknown"


def hardware_slug(device: torch.device) -> str:
    if device.type == "cuda":
        return slug(torch.cuda.get_device_name(device))
    cpu = hardware_summary("cpu").split(",")[0]
    return f"{slug(cpu)}-{torch.get_num_threads()}t"


# ---------------------------------------------------------------------------------------------------- the paths
def naive_sweep(x: torch.Tensor, sigma: float, chunk: int) -> torch.Tensor:
    two_sigma_sq = 2 * sigma**2
    return torch.cat([torch.softmax(-torch.cdist(q, x) ** 2 / two_sigma_sq, dim=-1) @ x for q in x.split(chunk)])


def library_sweep(x: torch.Tensor, sigma: float, chunk: int, precision: torch.dtype | None) -> torch.Tensor:
    return torch.cat([mean_shift_step(q, x, sigma, precision=precision) for q in x.split(chunk)])


def bare_sweep(x4: torch.Tensor, scale: float, chunk: int) -> torch.Tensor:
    """Fused attention alone: ``x4`` (1, 1, N, d) already in the path's dtype; queries ``chunk`` at a time."""
    out = torch.cat([F.scaled_dot_product_attention(q, x4, x4, scale=scale) for q in x4.split(chunk, dim=2)], dim=2)
    return out.reshape(x4.shape[2], x4.shape[3])


#: Dense (no sparsity) fp16/bf16 tensor-core peaks in TFLOP/s, from NVIDIA's data sheets (SXM parts).
DENSE_HALF_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}


def half_peak(device: torch.device, given: float | None) -> float | None:
    if given is not None or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in DENSE_HALF_PEAK_TFLOPS.items() if k in name), None)


def reference_fp64(x: torch.Tensor, sigma: float, n_ref: int) -> tuple[torch.Tensor, dict]:
    """Exact result for the first n_ref queries, plus how peaked the softmax is (so β can be judged)."""
    x64 = x.double()
    q = x64[:n_ref]
    d2 = (q.pow(2).sum(-1, keepdim=True) + x64.pow(2).sum(-1) - 2 * q @ x64.T).clamp_min(0)
    w = torch.softmax(-d2 / (2 * sigma**2), dim=-1)
    idx = torch.arange(q.shape[0], device=x.device)
    stats = {
        "mean_self_weight": round(float(w[idx, idx].mean()), 4),
        "mean_effective_neighbours": round(float((1 / w.pow(2).sum(-1)).mean()), 2),
    }
    return w @ x64, stats


def precision_supported(dtype: torch.dtype, device: torch.device) -> str | None:
    """None if mean_shift_step runs in ``dtype`` on ``device``, else the reason it does not."""
    try:
        x = sphere_points(64, 16, generator=torch.Generator().manual_seed(0)).to(device)
        y = mean_shift_step(x, x, 0.5, precision=dtype)
        if not bool(torch.isfinite(y).all()):
            return "non-finite result"
    except (RuntimeError, NotImplementedError, TypeError) as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    return None


def time_paths(paths: dict, device: torch.device, repeats: int, warmup: int) -> dict:
    """Time every path ``repeats`` times, **interleaved** (repeat r runs each path once in turn), so a slow
    stretch of a shared machine hits all paths alike. → {key: (times in s, last output) or the error text}."""
    outs, times, failed = {}, {k: [] for k in paths}, {}

    def call(key, timed):
        outs[key] = None  # free the previous result before the next sweep allocates its own
        try:
            with Stopwatch(device) as sw:
                outs[key] = paths[key]()
        except torch.cuda.OutOfMemoryError as e:
            failed[key] = "out of memory: " + str(e).splitlines()[0][:100]
            outs.pop(key, None)
            torch.cuda.empty_cache()
            return
        if timed:
            times[key].append(sw.seconds)

    for _ in range(warmup):
        for key in paths:
            if key not in failed:
                call(key, timed=False)
    for _ in range(repeats):
        for key in paths:
            if key not in failed:
                call(key, timed=True)
    return {k: failed[k] if k in failed else (times[k], outs[k]) for k in paths}


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the OS (large blocks are otherwise
    mmap'ed and unmapped on every call). Each naive sweep allocates several (chunk × N) buffers; on the 2-core VM
    where this was written the page faults of fresh memory made the naive N=4096 sweep 114 ms instead of 42 ms, and
    the timings erratic. CUDA's caching allocator does the same by itself. True if glibc accepted the settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return libc.mallopt(M_MMAP_THRESHOLD, 2**31 - 1) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def fit_chunk(chunk: int, n: int, device: torch.device) -> int:
    """Queries per call: at most ``chunk`` and N; on CUDA halved until ~4 (chunk × N) float32 buffers — the naive
    path's peak — fit in half the free memory."""
    chunk = min(chunk, n)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        while chunk > 128 and 4 * chunk * n * 4 > free / 2:
            chunk //= 2
    return chunk


# ---------------------------------------------------------------------------------------------------- the sweep
def main(argv=None) -> int:
    args = parse_args(argv)
    device = select_device(args.device)
    defaults = DEFAULTS[device.type]
    dims = args.dims or defaults["dims"]
    sizes = args.sizes or defaults["sizes"]
    chunk_arg = args.chunk or defaults["chunk"]
    sigma = 1 / math.sqrt(args.beta)

    malloc_tuned = device.type == "cpu" and not args.no_malloc_tuning and keep_freed_memory()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    precisions, skipped = [], {}
    for name in args.precisions:
        reason = precision_supported(PRECISIONS[name], device)
        if reason is None:
            precisions.append(name)
        else:
            skipped[name] = reason
    hardware = hardware_summary(device)
    print(f"retrieval sweep on {device}: {hardware}")
    print(f"β = 1/σ² = {args.beta:g} (σ = {sigma:.4f}), points on the unit sphere; median of {args.repeats} "
          f"sweeps (paths interleaved) after {args.warmup} warm-up; flops counted as 4·N²·d")
    if device.type == "cpu":
        print(f"glibc keeps freed memory (no page faults on reused buffers): {'yes' if malloc_tuned else 'no'}")
    if device.type == "cpu" and load_start is not None and load_start > 0.5:
        print(f"note: load average {load_start:.2f} at start: other processes share these "
              f"{os.cpu_count()} cores, so timings are noisy (paths are interleaved to keep the ratios fair)")
    for name, reason in skipped.items():
        print(f"  library path in {name} skipped on {device.type}: {reason}")

    header = (f"{'N':>7} {'d':>4} {'path':<10} {'prec':<5} {'median ms':>10} {'min ms':>8} {'patterns/s':>11} {'TFLOP/s':>8} "
              f"{'speed-up':>8} {'max|Δ| naive':>12} {'max|Δ| fp64':>11}")
    rows, summary, bare_ratios = [], [], []
    peak = half_peak(device, args.peak_tflops)
    t_start = time.perf_counter()
    for d in dims:
        for n in sizes:
            gen = torch.Generator().manual_seed(args.seed)
            x = sphere_points(n, d, radius=1.0, generator=gen).to(device)
            chunk = fit_chunk(chunk_arg, n, device)
            ref, softmax_stats = reference_fp64(x, sigma, min(n, N_REF))
            mask_free = norms_are_equal(x.pow(2).sum(-1))  # what mean_shift_step checks to drop the attention mask
            softmax_stats["library_mask_free"] = mask_free
            print(f"\nN={n}, d={d}, chunk={chunk}, library path {'mask-free' if mask_free else 'WITH a mask'}: "
                  f"weight of a pattern on itself {softmax_stats['mean_self_weight']:.3f} on average, "
                  f"effective neighbours 1/Σr² = {softmax_stats['mean_effective_neighbours']:.1f}")
            print(header)
            paths = {("naive", "fp32"): lambda: naive_sweep(x, sigma, chunk)}
            for name in precisions:
                dtype = None if name == "fp32" else PRECISIONS[name]
                paths[("library", name)] = lambda dtype=dtype: library_sweep(x, sigma, chunk, dtype)
            for name in ([] if args.no_bare else precisions):
                x4 = x.to(PRECISIONS[name])[None, None].contiguous()  # cast and shaped outside the timing
                paths[("bare", name)] = lambda x4=x4: bare_sweep(x4, 1 / sigma**2, chunk)
                if chunk < n:
                    paths[("bare-1call", name)] = lambda x4=x4: bare_sweep(x4, 1 / sigma**2, n)
            results = time_paths(paths, device, args.repeats, args.warmup)
            naive = results[("naive", "fp32")]
            naive_out, naive_ms = (None, None) if isinstance(naive, str) else (naive[1], statistics.median(naive[0]) * 1e3)
            speedups, ms_by_path = {}, {}
            for (path, prec), result in results.items():
                if isinstance(result, str):
                    print(f"{n:>7} {d:>4} {path:<10} {prec:<5}  {result}")
                    rows.append({"N": n, "d": d, "path": path, "precision": prec, "chunk": chunk, "error": result})
                    continue
                times, out = result
                ms, ms_min = statistics.median(times) * 1e3, min(times) * 1e3
                out = out.float()
                err_naive = float((out - naive_out).abs().max()) if naive_out is not None else None
                err_ref = float((out[: ref.shape[0]].double() - ref).abs().max())
                speedup = naive_ms / ms if naive_ms is not None else None
                tflops = 4 * n * n * d / (ms / 1e3) / 1e12
                row = {
                    "N": n, "d": d, "path": path, "precision": prec, "chunk": chunk,
                    "median_ms": round(ms, 4), "min_ms": round(ms_min, 4), "times_ms": [round(t * 1e3, 4) for t in times],
                    "patterns_per_s": round(n / (ms / 1e3), 1), "tflop_per_s": round(tflops, 4),
                    "speedup_vs_naive": None if speedup is None else round(speedup, 3),
                    "max_abs_err_vs_naive": err_naive, "max_abs_err_vs_fp64_first_queries": err_ref, **softmax_stats,
                }
                if peak and prec in ("fp16", "bf16"):
                    row["fraction_of_half_peak"] = round(tflops / peak, 4)
                if path == "bare-1call":
                    row["chunk"] = n
                rows.append(row)
                if path == "library" and speedup is not None:
                    speedups[prec] = speedup
                ms_by_path[(path, prec)] = ms
                sp = "n/a" if speedup is None else f"{speedup:.2f}x"
                en = "n/a" if err_naive is None else f"{err_naive:.2e}"
                print(f"{n:>7} {d:>4} {path:<10} {prec:<5} {ms:>10.2f} {ms_min:>8.2f} {n / (ms / 1e3):>11.3g} "
                      f"{tflops:>8.3f} {sp:>8} {en:>12} {err_ref:>11.2e}")
            del results, out, paths
            summary.append((n, d, speedups))
            for prec in precisions:
                lib, bare, one = (ms_by_path.get((p, prec)) for p in ("library", "bare", "bare-1call"))
                if lib and bare:
                    entry = {"N": n, "d": d, "precision": prec, "library_over_bare": round(lib / bare, 4)}
                    line = f"  {prec}: library {lib:.3f} ms = {bare / lib:.1%} of the bare call's speed"
                    if one:
                        entry["library_over_bare_1call"] = round(lib / one, 4)
                        line += f"; bare in one call {one:.3f} ms ({bare / one:.2f}x the chunked bare call)"
                    if peak and prec in ("fp16", "bf16"):
                        best = min(v for v in (lib, bare, one) if v)
                        entry["best_fraction_of_half_peak"] = round(4 * n * n * d / (best / 1e3) / 1e12 / peak, 4)
                        line += f"; best path at {entry['best_fraction_of_half_peak']:.0%} of the {peak:g} TFLOP/s peak"
                    bare_ratios.append(entry)
                    print(line)
            del x, ref, naive_out
            if device.type == "cuda":
                torch.cuda.empty_cache()
    wall = time.perf_counter() - t_start

    print()
    for n, d, speedups in summary:
        parts = ", ".join(f"{s:.2f}x ({p})" for p, s in speedups.items()) or "not measured"
        print(f"speed-up of the library path over naive fp32 at N={n}, d={d}: {parts}")

    parameters = {
        "device": str(device), "dims": dims, "sizes": sizes, "repeats": args.repeats, "warmup": args.warmup,
        "chunk": chunk_arg, "beta": args.beta, "sigma": sigma, "precisions": precisions,
        "skipped_precisions": skipped, "seed": args.seed, "flops_per_sweep": "4*N^2*d",
        "fp64_reference_queries": N_REF, "torch_threads": torch.get_num_threads(),
        "glibc_keeps_freed_memory": malloc_tuned, "bare_paths": not args.no_bare, "dense_half_peak_tflops": peak,
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
    }
    if device.type == "cuda":
        parameters["allow_tf32"] = {
            "matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32,
        }
    record = run_record(parameters, wall_time_s=wall, device=device, benchmark="retrieval", rows=rows,
                        library_vs_bare=bare_ratios)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"retrieval-{device.type}-{hardware_slug(device)}.json"
    out_file.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    print(f"\nwrote {out_file} ({wall:.1f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ParameterError as e:
        sys.exit(f"retrieval.py: {e}")
