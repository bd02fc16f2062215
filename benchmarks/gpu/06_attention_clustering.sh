#!/usr/bin/env bash
# Chapter 6 at paper scale: the untied-attention experiment (standard vs untied concentration and mixing weight),
# 8 seeds per form, d_model 64, 2 blocks, 2000 steps. The models are tiny, so the work is spread over the
# machine's CPU cores (one process per run, one thread each); DEVICE=cuda puts every run on the GPU instead.
# Budget: about 1-2 minutes on the 16-core H100 machine (≈ 12 minutes on 2 CPU cores).
# Writes $OUT/untied_comparison.json (an ambridge.runtime.run_record) and $OUT/untied_comparison.log; the chapter
# loads chapters/artifacts/06_attention_clustering/untied_comparison.json — copy the JSON there.
# Test here with a tiny size:  OUT=/tmp/x DEVICE=cpu SMALL=1 bash benchmarks/gpu/06_attention_clustering.sh
export PYTHONPATH=$PWD/lib:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
set -euo pipefail
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
export DEVICE=${DEVICE:-cpu} SMALL=${SMALL:-0}
# (the code is passed with -c, not on stdin: the worker processes are spawned and must not re-read a main file)
CODE=$(cat <<'PY'
import json, os, time

import torch

from ambridge import attention as att
from ambridge.book.records import run_record

small = os.environ["SMALL"] == "1"
device = os.environ["DEVICE"]
workers = int(os.environ.get("WORKERS", min(16, os.cpu_count() or 1)))
params = dict(seeds=list(range(2 if small else 8)), d_model=16 if small else 64, n_layers=1 if small else 2,
              n_heads=2 if small else 4, steps=20 if small else 2000, batch_size=16 if small else 64,
              lr=1e-3, eval_size=64 if small else 1024, eval_every=10 if small else 50, data_seed=0)
task = att.RetrievalTask()
print(f"task {vars(task)}\nconfig {params}\ndevice {device}, {workers} worker processes", flush=True)
start = time.perf_counter()
result = att.compare_forms(task, device=device, workers=workers, **params)
wall = time.perf_counter() - start
for form, runs in result["loss"].items():
    finals = [round(r[-1], 4) for r in runs]
    print(f"{form:9s} final eval loss per seed: {finals}")
print(f"Bayes loss {result['bayes_loss']:.4f}; wall time {wall:.1f} s")
record = run_record({**params, "task": result["task"], "device": device, "workers": workers}, wall_time_s=wall,
                    device=device if device != "cpu" else "cpu", step=result["step"],
                    bayes_loss=result["bayes_loss"], loss=result["loss"])
with open(os.path.join(os.environ["OUT"], "untied_comparison.json"), "w") as fh:
    json.dump(record, fh)
PY
)
python3 -c "$CODE" 2>&1 | tee "$OUT/untied_comparison.log"
