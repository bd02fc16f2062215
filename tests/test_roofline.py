"""benchmarks/roofline.py: the FLOP and shape bookkeeping behind the in-context step's roofline, on products whose
FLOPs are known by hand, and the step benchmark's smoke run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from roofline import count_matmuls, matmul_rates, roofline  # noqa: E402


def test_count_matmuls_by_hand():
    a, b = torch.randn(6, 4, requires_grad=True), torch.randn(4, 5)
    w = torch.randn(3, 7, 2)

    def fn():
        (a @ b).sum().backward()  # forward 2·6·4·5; backward d/da = grad (6×5) · bᵀ (5×4): 2·6·5·4
        torch.bmm(w, torch.randn(3, 2, 9))  # 2·3·7·2·9

    total, per_shape = count_matmuls(fn)
    assert total == 2 * 6 * 4 * 5 * 2 + 2 * 3 * 7 * 2 * 9
    assert sum(per_shape.values()) == total
    assert per_shape[("mm", ((6, 4), (4, 5)))] == 240
    assert per_shape[("bmm", ((3, 7, 2), (3, 2, 9)))] == 756


def test_roofline_arithmetic():
    per_shape = {("mm", ((10, 10), (10, 10))): 2000, ("mm", ((1, 10), (10, 10))): 200}
    rates = {("mm", ((10, 10), (10, 10))): 1000.0}  # 2 s for the measured shape
    r = roofline(4.0, 2200, per_shape, rates)
    assert r["roofline_time_s"] == pytest.approx(2.0 * 1.1)  # the unmeasured 10 % at the same rate
    assert r["roofline_fraction"] == pytest.approx(0.55)
    assert r["gflop_per_s"] == pytest.approx(2200 / 4.0 / 1e9)
    measured = matmul_rates(per_shape, coverage=0.5, repeats=1, min_seconds=0.001)
    assert list(measured) == [("mm", ((10, 10), (10, 10)))] and measured[("mm", ((10, 10), (10, 10)))] > 0


def test_icl_step_benchmark_smoke(tmp_path):
    import icl_step

    record = icl_step.main(["--device", "cpu", "--configs", "tiny", "--repeats", "1", "--loop-repeats", "1",
                            "--out", str(tmp_path)])
    row = record["rows"][0]
    assert row["max_abs_negative_difference"] < 1e-4  # the vectorised negatives equal the loop's
    assert row["roofline"]["gflop"] > 0 and 0 < row["roofline"]["roofline_fraction"]
    assert row["profile"] and json.loads(next(tmp_path.glob("icl_step-*.json")).read_text())["rows"]
