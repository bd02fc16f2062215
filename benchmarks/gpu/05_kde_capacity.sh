#!/usr/bin/env bash
export PYTHONPATH=$PWD/lib:$PYTHONPATH
# Chapter 5 on one GPU: the paper-scale capacity sweep (chapters/presets/05_kde_capacity/paper.yaml: d = 16..72,
# N up to ~7 million, 16384 starting patterns per point, float16 with a float32 re-check of 256 queries per point)
# and the capacity benchmark (fused attention vs naive cdist+softmax). Designed for ~3 minutes on one H100; hard
# limits keep it under 5: the sweep starts no new N after 210 s and writes what it has (its JSON says whether it is
# complete), and it resumes from its checkpoint if run again with the same $OUT.
#
#   OUT=/some/folder bash benchmarks/gpu/05_kde_capacity.sh                  # on the GPU machine, from the repo root
#   OUT=/tmp/x DEVICE=cpu SMALL=1 bash benchmarks/gpu/05_kde_capacity.sh     # a tiny CPU test of the script
#
# Writes to $OUT (5 files): capacity-<gpu|cpu>.json (the run record the chapter loads: parameters, commit,
# hardware, wall time, every (d, N, seed) record and the capacities), capacity-<tag>.jsonl (the checkpoint),
# capacity-<tag>.log, benchmark-<tag>.json, benchmark-<tag>.log. Copy the two JSON files to
# chapters/artifacts/05_kde_capacity/ and re-execute the chapter (python -m ambridge.execute 05).
# Needs only python3 with torch (CUDA), numpy, scipy and PyYAML (the preset's reader): no Jupyter, no network. Where
# PyYAML is missing it is installed from a wheel carried in .whl/ (see /work/shared/tools/device-wheels.sh; e.g.
# `python3 -m pip download --only-binary=:all: -d .whl pyyaml` on a machine with network), or the script stops.
set -uo pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?set OUT to the folder for the results}"
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
TAG=$([ "$DEVICE" = cpu ] && echo cpu || echo gpu)
mkdir -p "$OUT"
start=$(date +%s)

echo "== machine =="
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader) || true
python3 -c "import torch, numpy, scipy; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| numpy', numpy.__version__, '| scipy', scipy.__version__)" || exit 1
if ! python3 -c "import yaml" 2>/dev/null; then  # python -m ambridge.kde reads the preset with PyYAML
  for wheel in .whl/[Pp]y[Yy][Aa][Mm][Ll]-*.whl; do
    [ -f "$wheel" ] && python3 -m pip install -q --no-index --no-deps --target /tmp/pyyaml-site "$wheel" \
      && export PYTHONPATH=/tmp/pyyaml-site:$PYTHONPATH && break
  done
  python3 -c "import yaml" 2>/dev/null || { echo "PyYAML is missing and no wheel of it is in .whl/: carry one (python3 -m pip download --only-binary=:all: -d .whl pyyaml) or pip install pyyaml"; exit 1; }
fi

PRESET=chapters/presets/05_kde_capacity/paper.yaml
if [ "$SMALL" = 1 ]; then  # seconds on a CPU: the same code paths, tiny sizes, float16 with its float32 re-check
  SWEEP_SET=(--set sweep_d_min=8 --set sweep_d_max=12 --set sweep_d_step=4 --set sweep_seeds=2 --set sweep_queries=64
             --set chunk=64 --set check_queries=16 --set bandwidth_scale=1.0 --set precision=float16)
  BENCH_ARGS=(--dims 16 --sizes 1024 4096 --queries 64 --repeats 1 --precisions fp32 fp16)
  SWEEP_LIMIT=60
else
  SWEEP_SET=()
  BENCH_ARGS=()
  SWEEP_LIMIT=${SWEEP_LIMIT:-210}
fi

echo "== capacity sweep, paper preset, on $DEVICE (elapsed $(( $(date +%s) - start )) s) =="
timeout 290 python3 -m ambridge.kde --preset "$PRESET" --device "$DEVICE" "${SWEEP_SET[@]}" \
    --label "paper preset ($DEVICE)" --time-limit "$SWEEP_LIMIT" \
    --checkpoint "$OUT/capacity-$TAG.jsonl" --out "$OUT/capacity-$TAG.json" 2>&1 | tee "$OUT/capacity-$TAG.log"
echo "sweep exit code ${PIPESTATUS[0]}"

echo "== capacity benchmark on $DEVICE (elapsed $(( $(date +%s) - start )) s) =="
remaining=$(( 285 - ($(date +%s) - start) ))
[ "$remaining" -lt 20 ] && remaining=20
timeout "$remaining" python3 benchmarks/capacity.py --device "$DEVICE" "${BENCH_ARGS[@]}" \
    --out "$OUT/benchmark-$TAG.json" 2>&1 | tee "$OUT/benchmark-$TAG.log"
echo "benchmark exit code ${PIPESTATUS[0]}"
echo "== done in $(( $(date +%s) - start )) s; files in $OUT: =="
ls -l "$OUT"
