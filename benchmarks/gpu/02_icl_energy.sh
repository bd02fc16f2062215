#!/usr/bin/env bash
# Chapter 2 on one GPU (about 5 minutes of wall time): train the in-context energy transformer at the paper's scale
# for a fixed time budget, then time one training step, vectorised vs loop sampler. Run from the repo root:
#     OUT=/some/folder bash benchmarks/gpu/02_icl_energy.sh
# CPU test at a tiny size: OUT=/tmp/x DEVICE=cpu SMALL=1 bash benchmarks/gpu/02_icl_energy.sh
# Writes under $OUT (each file rewritten at every checkpoint, so a timeout still leaves a usable set):
#   checkpoint-gpu.pt (weights + config + run record, ~5 MB), checkpoint-gpu-log.csv, checkpoint-gpu-record.json,
#   train.log, icl_step-<device>-<card>.json, bench.log.
# Copy the first three into chapters/artifacts/02_icl_energy/ (the chapter prefers them to the CPU checkpoint),
# and the icl_step JSON into benchmarks/results/.
export PYTHONPATH=$PWD/lib:$PYTHONPATH
export PYTHONUNBUFFERED=1
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
TRAIN_BUDGET=${TRAIN_BUDGET:-190}   # seconds of training (the script's total is about this + 80 s)
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
start=$(date +%s)

echo "== training (budget ${TRAIN_BUDGET} s) =="
if [ "$SMALL" = "1" ]; then
  TRAIN_ARGS=(--preset tiny --steps 40 --checkpoint-every 10 --print-every 10)
else
  # The paper's scale: 6 layers, d_model 128, 8 heads, 15 Langevin steps; batch 32; step size: see STEP_SIZE.
  TRAIN_ARGS=(--preset paper --step-size "${STEP_SIZE:-3.16}" --steps 100000 --checkpoint-every 250 --print-every 100)
fi
python3 -m ambridge.icl "${TRAIN_ARGS[@]}" --device "$DEVICE" --time-budget "$TRAIN_BUDGET" \
  --out "$OUT" --name checkpoint-gpu --state /tmp/icl-checkpoint-gpu-state.pt 2>&1 | tee "$OUT/train.log"
echo "training exit code ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"

echo "== one training step: vectorised vs loop =="
if [ "$SMALL" = "1" ]; then
  BENCH_ARGS=(--configs tiny --repeats 1 --loop-repeats 1)
else
  BENCH_ARGS=(--configs small paper --repeats 5 --loop-repeats 1)
fi
python3 benchmarks/icl_step.py --device "$DEVICE" "${BENCH_ARGS[@]}" --out "$OUT" 2>&1 | tee "$OUT/bench.log"
echo "benchmark exit code ${PIPESTATUS[0]}; total $(( $(date +%s) - start )) s"
ls -la "$OUT"
