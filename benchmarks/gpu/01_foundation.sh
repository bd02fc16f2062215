#!/usr/bin/env bash
# GPU checks of the foundation (issue: foundation): the retrieval benchmark on CUDA, and Chapter 1 run by the
# project's runner with --device cuda at its paper preset. Run on the lent GPU machine from the repo root, with the
# jupyter wheels carried in .whl (../shared/tools/device-wheels.sh); everything it writes goes to $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/lib PATH=/tmp/site/bin:$PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
mkdir -p "$OUT"
echo "== retrieval benchmark (cuda) =="
python3 benchmarks/retrieval.py --device cuda --out "$OUT" 2>&1 | tee "$OUT/retrieval-cuda.log"
echo "== chapter 01, paper preset, on cuda, through the runner =="
start=$(date +%s)
python3 -m ambridge.run 01 -f paper --device cuda --quiet --output "$OUT/01_energy_is_nll-paper-cuda.ipynb"
echo "runner exit code $? after $(( $(date +%s) - start )) s"
