"""``tests/nbval_sanitize.cfg`` makes run-to-run noise (kernel cell paths in warnings, memory addresses, timings)
compare equal under nbval, while leaving numbers alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbval.plugin import get_sanitize_patterns

CFG = Path(__file__).parent / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    for regex, replace in get_sanitize_patterns(CFG.read_text()):
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/tmp/ipykernel_1234/3456789.py:5: UserWarning: x", "<cell>:5: UserWarning: x"),
        ("<object object at 0x7f3a2b1c4d50>", "<object object at 0xADDR>"),
        ("fitted in 12.3 s", "fitted in <time>"),
        ("took 0.45 s, wall time 3 s, wall: 120 ms", "took <time>, wall time <time>, wall: <time>"),
        ("sampled in 5 seconds.", "sampled in <time>."),
        # left alone: short hex, scientific values, counts that merely start with an s
        ("flag 0x1F", "flag 0x1F"),
        ("converged in 12 steps, in 3 samples", "converged in 12 steps, in 3 samples"),
        ("error 1.5e-3 s.d., beta 4", "error 1.5e-3 s.d., beta 4"),
    ],
)
def test_patterns(text, expected):
    assert sanitize(text) == expected


NOISY = """\
import random, time, warnings
warnings.warn("a warning naming the kernel's temporary cell file")
print(object())
print(f"took {random.uniform(1, 9):.2f} s")
"""


def test_nbval_passes_only_with_the_sanitizer(tmp_path):
    """Execute a notebook whose outputs change on every run; nbval passes with the cfg and fails without it."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOISY)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    path = tmp_path / "noisy.ipynb"
    nbformat.write(nb, path)

    def nbval(*extra: str) -> int:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", str(path), *extra]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True).returncode

    assert nbval("--nbval-sanitize-with", str(CFG)) == 0
    assert nbval() != 0
