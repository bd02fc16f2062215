#!/usr/bin/env bash
# Chapter 6 at paper scale: the untied-attention experiment (standard vs untied concentration and mixing weight),
# 8 seeds per form, d_model 64, 2 blocks, 2000 steps. The models are tiny, so the work is spread over the
# machine's CPU cores (one process per run, one thread each); DEVICE=cuda puts every run on the GPU instead.
# Budget: about 1-2 minutes on the 16-core GPU machine (about 35 minutes on 2 CPU cores).
# Writes $OUT/untied_comparison.json (an ambridge.book.records.run_record) and $OUT/untied_comparison.log; the
# chapter loads chapters/artifacts/06_attention_clustering/untied_comparison.json — copy the JSON there.
# The work is done by `python -m ambridge.attention compare-forms` (lib/ambridge/attention/__main__.py).
# Test here with a tiny size:  OUT=/tmp/x DEVICE=cpu SMALL=1 bash benchmarks/gpu/06_attention_clustering.sh
export PYTHONPATH=$PWD/lib:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
set -euo pipefail
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
DEVICE=${DEVICE:-cpu}
ARGS=(--out "$OUT" --device "$DEVICE")
if [ "${SMALL:-0}" = 1 ]; then ARGS+=(--small); fi
if [ -n "${WORKERS:-}" ]; then ARGS+=(--workers "$WORKERS"); fi
python3 -m ambridge.attention compare-forms "${ARGS[@]}" 2>&1 | tee "$OUT/untied_comparison.log"
