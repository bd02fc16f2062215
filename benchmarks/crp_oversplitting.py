"""Study: what stops CLAM+CRP over-splitting real data (chapter 4, § Why it over-splits, and what stops it).

Every variant of :data:`ambridge.memories.oversplitting.VARIANTS` (default, merge, diag, diag+merge, held-out) on the
clustering benchmark's data sets (standardised, ``ambridge.benchmarks.load_dataset``) over streaming-order seeds.
Resumable: one record per (data set, variant, seed) in a JSON-lines store (``--store``); a rerun skips what is there.
One thread, run it under ``nice``. At the end the artifact JSON (records + run record: hardware, commit, wall time)
is written to ``--out``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/crp_oversplitting.py            # the committed artifact
    python benchmarks/crp_oversplitting.py --datasets iris wine --seeds 0 --out /tmp/crp.json
    python benchmarks/crp_oversplitting.py --write-only     # the artifact from what the store holds so far
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

try:
    import ambridge  # noqa: F401
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from ambridge.benchmarks import load_dataset
from ambridge.book.records import repo_root, run_record
from ambridge.memories.oversplitting import VARIANTS, run_variant
from ambridge.store import RecordStore

ARTIFACT = Path("chapters/artifacts/04_nonparametric_memory/crp-oversplitting.json")
DATASETS = ["iris", "wine", "blobs_k5_d2", "blobs_k10_d16", "breast_cancer", "digits"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--seeds-large", type=int, nargs="+", default=[0],
                   help="seeds for digits (its fits take minutes on a shared CPU; default: 0 only)")
    p.add_argument("--store", default="build/crp_oversplitting.jsonl")
    p.add_argument("--out", default=str(repo_root() / ARTIFACT))
    p.add_argument("--write-only", action="store_true", help="write the artifact from the store, fit nothing")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    Path(args.store).parent.mkdir(parents=True, exist_ok=True)
    store = RecordStore(args.store)
    start = time.perf_counter()
    for name in args.datasets:
        ds = load_dataset(name)
        for seed in args.seeds_large if name == "digits" else args.seeds:
            for variant in args.variants:
                key = f"{name}|{variant}|{seed}"
                if key in store or args.write_only:
                    continue
                rec = {"key": key, "dataset": name, "variant": variant, "seed": seed,
                       **run_variant(variant, ds.X, ds.y, seed)}
                store.append(rec)
                print(f"{key}: {rec['memories']} memories for {rec['classes']} classes, ARI {rec['ari']:.3f}, "
                      f"{rec['fit_s']:.0f} s", flush=True)
    records = [r for r in store if r["dataset"] in args.datasets and r["variant"] in args.variants]
    total = sum(r["fit_s"] for r in records)
    params = {"datasets": args.datasets, "variants": args.variants, "seeds": args.seeds, "seeds_large": args.seeds_large}
    out = run_record(params, wall_time_s=total, records=records,
                     note="wall time = sum of the fits (resumed runs included), one thread, shared machine under load")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out} ({len(records)} records, {total / 60:.1f} min of fits; this session "
          f"{(time.perf_counter() - start) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
