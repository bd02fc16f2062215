"""The clustering benchmark's command line (presets in ``chapters/presets/clustering_benchmark/``)::

    python -m ambridge.benchmarks --preset quick            # iris, wine, one mixture; 3 seeds
    python -m ambridge.benchmarks --preset paper            # everything x 10 seeds -> chapters/artifacts/...
    python -m ambridge.benchmarks --preset quick --methods K-means GMM --seeds 2 --out /tmp/bench

(``python -m ambridge.cluster_benchmark`` is the same command, for one release.) Finished runs go to
``OUT/runs.jsonl`` as they finish (:mod:`ambridge.benchmarks.clustering_runs`), and a rerun into the same OUT skips
them; when every run is done, ``OUT/benchmark.json`` gets the run record (:func:`ambridge.book.records.run_record`:
parameters, commit, hardware, wall time) with :func:`~ambridge.benchmarks.clustering_runs.benchmark_summary`. A
command line may use the book's machinery (presets, records); the benchmark itself does not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ..book.chapters import chapters_dir
from ..book.errors import UsageError
from ..book.presets import find_preset
from ..book.records import repo_root, run_record
from ..report import markdown_table
from .clustering import DATASETS, METHODS, is_dataset_name
from .clustering_runs import META_FILE, RUNS_FILE, resolve_seeds, run_benchmark
from .report import summary_table
from .summary import benchmark_summary

__all__ = ["presets_dir", "load_benchmark_preset", "main"]

_PRESET_KEYS = {"datasets", "methods", "seeds", "out", "max_samples", "workers"}


def presets_dir() -> Path:
    """``chapters/presets/clustering_benchmark/`` of the book."""
    return chapters_dir() / "presets" / "clustering_benchmark"


def load_benchmark_preset(preset: str) -> dict[str, Any]:
    """A preset by name (``quick``, ``paper``) or YAML path: keys ``datasets``, ``methods`` (lists), ``seeds``
    (a count or a list), ``out`` (a results directory, relative to the book's root), ``max_samples`` (larger data
    sets are subsampled, stratified) and ``workers`` (processes fitting at once). Errors are
    :class:`ambridge.book.errors.UsageError`. The ``paper`` preset makes chapter 3's full benchmark."""
    values = find_preset(preset, presets_dir(), "the benchmark", "of datasets, methods, seeds, out")
    unknown = sorted(set(values) - _PRESET_KEYS)
    if unknown:
        valid = ", ".join(sorted(_PRESET_KEYS))
        raise UsageError(f"preset {preset}: unknown key(s) {', '.join(unknown)}; valid: {valid}")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ambridge.benchmarks",
        description="The clustering benchmark (paper section 2d): methods x data sets x seeds, seven metrics. "
        f"Finished runs are kept in OUT/{RUNS_FILE}; a rerun into the same OUT skips them.",
    )
    parser.add_argument("--preset", default="quick", help="quick (default), paper, or a YAML file")
    parser.add_argument("--out", type=Path, help="results directory (default: the preset's `out`)")
    parser.add_argument("--datasets", nargs="+", metavar="NAME", help=f"subset of: {', '.join(DATASETS)}")
    parser.add_argument("--methods", nargs="+", metavar="NAME", help=f"subset of: {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1 (default: the preset's)")
    parser.add_argument("--fresh", action="store_true", help=f"start OUT/{RUNS_FILE} afresh instead of resuming")
    parser.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    parser.add_argument("--threads", type=int, default=1, help="native threads per fit (default 1)")
    parser.add_argument("--workers", type=int, help="processes fitting runs at once (default: the preset's, or 1)")
    parser.add_argument("--max-samples", type=int, metavar="N",
                        help="subsample larger data sets to N points, stratified (default: the preset's)")
    parser.add_argument("--quiet", action="store_true", help="no line per run")
    return parser


def _choices(args) -> tuple[list, list, list[int], Path, dict]:
    """The data sets, methods, seeds, results directory and run options the command line and its preset ask for."""
    preset = load_benchmark_preset(args.preset)
    datasets = args.datasets or preset.get("datasets") or list(DATASETS)
    methods = args.methods or preset.get("methods") or list(METHODS)
    for name in datasets:
        if not is_dataset_name(str(name)):
            raise UsageError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)} (or any blobs_k<K>_d<D>)")
    for name in methods:
        if name not in METHODS:
            raise UsageError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    try:
        seeds = resolve_seeds(args.seeds if args.seeds is not None else preset.get("seeds", 10))
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.threads < 1:
        raise UsageError(f"--threads {args.threads}: must be at least 1")
    workers = args.workers if args.workers is not None else preset.get("workers", 1)
    max_samples = args.max_samples if args.max_samples is not None else preset.get("max_samples")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers {workers!r}: must be an integer at least 1")
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, int)
                                    or max_samples < 2):
        raise UsageError(f"max_samples {max_samples!r}: must be an integer at least 2")
    out = args.out or (repo_root() / preset["out"] if "out" in preset else None)
    if out is None:
        raise UsageError("no --out given and the preset names no `out`")
    return datasets, methods, seeds, Path(out), {"workers": workers, "max_samples": max_samples}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return 0 (done), 1 (some runs failed) or 2 (bad command line).
    Used by ``python -m ambridge.benchmarks`` (and ``ambridge.cluster_benchmark``), which makes chapter 3's full benchmark.
    """
    args = _parser().parse_args(argv)
    try:
        datasets, methods, seeds, out, options = _choices(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    def report(done: int, total: int, row: dict) -> None:
        if args.quiet:
            return
        what = (f"error {row['error']}" if row["error"] else
                f"ARI {row['adjusted_rand']:.3f}, {row['n_clusters_found']} clusters, {row['fit_time_s']:.2f} s")
        print(f"[{done}/{total}] {row['dataset']} {row['method']} seed {row['seed']}: {what}", flush=True)

    start = time.perf_counter()
    result = run_benchmark(datasets, methods, seeds, out=out, resume=not args.fresh, retry_failed=args.retry_failed,
                           threads=args.threads, progress=report, **options)
    parameters = {"datasets": list(datasets), "methods": list(methods), "seeds": seeds, "threads": args.threads,
                  "preset": args.preset, **options}
    record = run_record(parameters, wall_time_s=time.perf_counter() - start,
                        **benchmark_summary(result, methods, max_samples=options["max_samples"]))
    (out / META_FILE).write_text(json.dumps(record, indent=2) + "\n")
    table = markdown_table(*summary_table(result))
    print(getattr(table, "data", table))
    failed = int((result["error"] != "").sum())
    print(f"{len(result)} runs, {failed} failed; results in {out / RUNS_FILE}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
