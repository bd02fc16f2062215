#!/usr/bin/env bash
# The GPU runs the book still owes (issue 16), as stages of one script for the lent GPU machine. Each stage has its
# own time limit, writes into $OUT/work/<stage>/ and re-packs $OUT/issue16-results.tgz when it ends, so a call cut
# short still brings back what finished (the device tool returns at most 8 files: hence one archive).
#
#   here:   git rev-parse HEAD                     # the commit, passed in: the copy sent there has no history
#           bash benchmarks/gpu/wheels.sh          # the test stack as cp312 wheels in .whl/ (~35 MB; network)
#   there:  COMMIT=<sha> STAGES="capacity step retrieval" bash benchmarks/gpu/issue16.sh    # call 1, ~6.5 min
#           COMMIT=<sha> STAGES="test-gpu make-test" bash benchmarks/gpu/issue16.sh          # call 2, ~8 min
#           COMMIT=<sha> STAGES="seeds" bash benchmarks/gpu/issue16.sh                       # ~5 min
#           COMMIT=<sha> STAGES="paper-02 paper-05 paper-06" bash benchmarks/gpu/issue16.sh  # ~9 min
#   (carry .whl in every call: `run(command=..., carry=[".whl"])`); then here: bash benchmarks/gpu/collect.sh DIR
#
# Stages (a device session has 15 minutes, a call 10: two calls per session, issued back to back):
#   capacity   chapter 5's paper preset (step tolerance 1e-5·M, d 16..72, N to ~1.7e7, float16 + float32 re-check)
#              and the capacity benchmark: benchmarks/gpu/05_kde_capacity.sh (sweep stops starting new N at 240 s)
#   step       one training step, eager vs replayed from a CUDA graph (small, paper configs): benchmarks/icl_step.py
#   retrieval  the library beside bare fused attention at d = 64 and 128 (chunked and in one call), fp16/bf16
#   test-gpu   make test-gpu: pytest tests/gpu (fused kernels, half precision, CUDA graphs, chapters' CUDA paths)
#   make-test  make test's device-dependent part: the library tests and nbval on every chapter with the GPU hidden
#              (8 workers); the site, PDF, assignment, lab and browser tests need the book stack and are not run
#   seeds      chapter 2 at paper scale: 3 seeds of the paper model on fresh mixtures, trained in parallel on the one
#              GPU until a validation plateau (patience 8 validations of 100 steps) or 270 s each, from a CUDA graph
#   paper-0N   chapter N's paper preset through the runner on CUDA (python -m ambridge.run 0N -f paper)
# A test of the script itself on a CPU, at tiny sizes (seconds to a few minutes a stage):
#   PATH=$PWD/.venv/bin:$PATH OUT=/tmp/x COMMIT=$(git rev-parse HEAD) DEVICE=cpu SMALL=1 SKIP_WHEELS=1 \
#     STAGES="capacity step retrieval seeds" bash benchmarks/gpu/issue16.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?set OUT to the folder that comes back}"
: "${COMMIT:?set COMMIT to the 40-hex commit of the tree (git rev-parse HEAD here)}"
export AMBRIDGE_COMMIT=$COMMIT
STAGES=${STAGES:-"capacity step retrieval"}
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
if [ "$SMALL" = 1 ]; then
  STEP_ARGS=(--configs tiny --repeats 2)
  RETRIEVAL_ARGS=(--dims 16 --sizes 1024 --chunk 256 --precisions fp32 bf16 --repeats 2)
  SEED_ARGS=(--steps 8 --d-model 16 --n-heads 2 --n-layers 1 --batch-size 2 --langevin-steps 2 --validate-every 2
             --val-sets 2 --val-chains 4 --patience 2 --time-budget 60)
else
  STEP_ARGS=(--configs small paper --repeats 10)
  RETRIEVAL_ARGS=(--dims 64 128 --sizes 32768 131072 --precisions fp16 bf16 --repeats 5)
  SEED_ARGS=(--steps 20000 --d-model 128 --n-heads 8 --n-layers 6 --batch-size 32 --langevin-steps 15
             --validate-every 100 --val-sets 32 --val-chains 32 --patience 8 --time-budget 270 --cuda-graph)
fi
ROOT=$PWD
WORK=$OUT/work
ARCHIVE=$OUT/issue16-results.tgz  # named once: a stage may run with its own OUT in its environment
mkdir -p "$WORK"
began=$(date +%s)

if [ "${SKIP_WHEELS:-0}" != 1 ] && ls .whl/*.whl >/dev/null 2>&1; then  # SKIP_WHEELS=1: python3 has them all
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$ROOT/lib PATH=/tmp/site/bin:$PATH
else
  export PYTHONPATH=$ROOT/lib
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
  echo "commit $COMMIT; stages: $STAGES"; } 2>&1 | tee "$WORK/machine.txt"

pack() { tar czf "$ARCHIVE" -C "$WORK" . 2>/dev/null; }
stage() {  # stage NAME LIMIT_S COMMAND...: run with a time limit, log to work/NAME/log.txt, then re-pack
  local name=$1 limit=$2; shift 2
  mkdir -p "$WORK/$name"
  echo "== $name (limit $limit s; $(( $(date +%s) - began )) s elapsed) =="
  local t0=$(date +%s)
  timeout "$limit" "$@" > >(tee "$WORK/$name/log.txt") 2>&1
  local rc=$?
  echo "== $name: exit $rc after $(( $(date +%s) - t0 )) s ==" | tee -a "$WORK/$name/log.txt"
  pack
}

for s in $STAGES; do
  case $s in
    capacity)
      SWEEP_LIMIT=240 OUT=$WORK/capacity DEVICE=$DEVICE SMALL=$SMALL stage capacity 330 \
        bash benchmarks/gpu/05_kde_capacity.sh ;;
    step)
      stage step 120 python3 benchmarks/icl_step.py --device "$DEVICE" "${STEP_ARGS[@]}" --skip-loop --no-roofline \
        --out "$WORK/step" ;;
    retrieval)
      stage retrieval 150 python3 benchmarks/retrieval.py --device "$DEVICE" "${RETRIEVAL_ARGS[@]}" \
        --out "$WORK/retrieval" ;;
    test-gpu)
      stage test-gpu 330 python3 -m pytest tests/gpu -v -rs -p no:cacheprovider ;;
    make-test)
      # the same command as make test's first line, with the GPU hidden there too; 8 workers, one file per worker
      stage make-test 420 env CUDA_VISIBLE_DEVICES= python3 -m pytest tests chapters --nbval \
        --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900 -p no:cacheprovider \
        -n 8 --dist loadfile -q -rfs \
        --ignore=tests/test_site_extensions.py --ignore=tests/test_pdf_site.py --ignore=tests/test_publish.py \
        --ignore=tests/test_assignments.py --ignore=tests/test_lab.py --ignore=tests/test_portability.py \
        --ignore=tests/browser --ignore=tests/pdf --ignore=tests/gpu ;;
    seeds)
      mkdir -p "$WORK/seeds"
      for i in 0 1 2; do  # three processes share the GPU: each is launch-bound, so they overlap well
        timeout 300 python3 -m ambridge.icl experiments --out "$WORK/seeds/paper-scale" --work /tmp/icl-seeds \
          --pool-sizes 0 --seeds 0 1 2 --shard "$i/3" --device "$DEVICE" --dim-feedforward 0 "${SEED_ARGS[@]}" \
          --note "one H200 shared by the three seeds' processes (run in parallel)" \
          > "$WORK/seeds/seed$i.log" 2>&1 &
      done
      wait
      cat "$WORK/seeds"/seed*.log | tail -30
      pack ;;
    paper-0[256])
      n=${s#paper-}
      stage "$s" 540 python3 -m ambridge.run "$n" -f paper --device "$DEVICE" --quiet --output "$WORK/$s/chapter.ipynb" ;;
    *) echo "unknown stage $s"; exit 2 ;;
  esac
done
pack
echo "== all stages done in $(( $(date +%s) - began )) s; $ARCHIVE: =="
tar tzf "$ARCHIVE" | head -60
