#!/usr/bin/env bash
# Chapter 6 at paper scale: the untied-attention experiment (standard vs untied concentration and mixing weight),
# 8 seeds per form, d_model 64, 2 blocks, 2000 steps. The models are tiny, so the work is spread over the
# machine's CPU cores (one process per run, one thread each); DEVICE=cuda puts every run on the GPU instead.
# Budget: about 1-2 minutes on the 16-core GPU machine (about 35 minutes on 2 CPU cores).
# ABLATION=1 trains all five forms instead (standard, qknorm, heads, split, untied: the ablation that separates
# untying from QK normalisation and the extra maps), 40 runs: about 5 minutes on 16 cores (most of two hours on 2).
# Writes $OUT/untied_comparison.json (or $OUT/form_ablation.json with ABLATION=1), an
# ambridge.book.records.run_record, and its .log; the chapter loads them from chapters/artifacts/06_attention_clustering/
# — copy the JSON there.
# The work is done by `python -m ambridge.attention compare-forms` (lib/ambridge/attention/__main__.py).
# Test here with a tiny size:  OUT=/tmp/x DEVICE=cpu SMALL=1 [ABLATION=1] bash benchmarks/gpu/06_attention_clustering.sh
export PYTHONPATH=$PWD/lib:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
set -euo pipefail
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
DEVICE=${DEVICE:-cpu}
ARGS=(--out "$OUT" --device "$DEVICE")
NAME=untied_comparison
if [ "${SMALL:-0}" = 1 ]; then ARGS+=(--small); fi
if [ -n "${WORKERS:-}" ]; then ARGS+=(--workers "$WORKERS"); fi
if [ "${ABLATION:-0}" = 1 ]; then ARGS+=(--forms all); NAME=form_ablation; fi
python3 -m ambridge.attention compare-forms "${ARGS[@]}" 2>&1 | tee "$OUT/$NAME.log"
