#!/usr/bin/env bash
# Here, with network: the wheels (CPython 3.12, x86-64) of every package pinned in requirements.lock and
# requirements-nodeps.lock that the GPU machine's image lacks, into .whl/ (ignored by git; carried to the machine
# by `run(carry=[".whl"])`), leaving out the book-building, browser, grading, lab and mutation stacks: the GPU
# stages of benchmarks/gpu/issue16.sh run tests and chapters, never the site build, and the 64 MiB a call may carry
# would not hold them (playwright alone is 51 MB). benchmarks/gpu/image-packages.txt is the image's package list
# (from the device tool's KINDS.md, 2026-11-17).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
LEAVE_OUT='^(playwright|selenium|trio|trio-websocket|outcome|wsproto|pysocks|jupyterlab|jupyterlab-server|jupyterlab-widgets|jupyter-lsp|jupyter-server|jupyter-server-terminals|jupyter-builder|notebook-shim|ipylab|ipywidgets|widgetsnbextension|django-static-mathjax|babel|alabaster|sphinx|sphinx-.*|sphinxcontrib-.*|pydata-sphinx-theme|accessible-pygments|jupyter-book|myst-nb|myst-parser|jupyter-cache|sqlalchemy|greenlet|pybtex|pybtex-docutils|latexcodec|imagesize|snowballstemmer|mutmut|textual|libcst|otter-grader|python-on-whales|fica|terminado|send2trash|argon2-cffi|argon2-cffi-bindings|jupyter-events|async-lru|json5|nbstripout)$'
python3 - "$LEAVE_OUT" > /tmp/ambridge-gpu-wheels.txt <<'PY'
import re, sys
norm = lambda name: re.sub(r"[-_.]+", "-", name.strip().lower())
image = {norm(line) for line in open("benchmarks/gpu/image-packages.txt") if line.strip()}
leave_out = re.compile(sys.argv[1])
for lock in ("requirements.lock", "requirements-nodeps.lock"):
    for line in open(lock):
        pin = line.split("#")[0].split(";")[0].strip()
        if "==" in pin and norm(pin.split("==")[0]) not in image and not leave_out.match(norm(pin.split("==")[0])):
            print(pin)
PY
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl -r /tmp/ambridge-gpu-wheels.txt
echo "$(wc -l < /tmp/ambridge-gpu-wheels.txt) wheels in .whl/: $(du -sh .whl | cut -f1)"
