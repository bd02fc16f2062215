"""benchmarks/retrieval.py beside the bare fused-attention call: every path computes the same sweep, and the record
holds the library ÷ bare ratios the GPU issue asks for (run here on the CPU at a tiny size)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import retrieval  # noqa: E402


def test_bare_paths_agree_with_the_library_and_are_summarised(tmp_path, capsys):
    assert retrieval.main(["--device", "cpu", "--dims", "8", "--sizes", "256", "--chunk", "64", "--repeats", "1",
                           "--warmup", "0", "--precisions", "fp32", "bf16", "--peak-tflops", "1",
                           "--out", str(tmp_path)]) == 0
    record = json.loads(next(tmp_path.glob("retrieval-cpu-*.json")).read_text())
    rows = {(r["path"], r["precision"]): r for r in record["rows"]}
    assert set(rows) == {("naive", "fp32"), *((p, q) for p in ("library", "bare", "bare-1call") for q in ("fp32", "bf16"))}
    assert rows[("bare", "fp32")]["max_abs_err_vs_naive"] < 1e-5  # the same sweep, not merely a fast one
    assert rows[("bare-1call", "fp32")]["chunk"] == 256 and rows[("bare", "fp32")]["chunk"] == 64
    assert rows[("bare", "bf16")]["max_abs_err_vs_fp64_first_queries"] < 3e-2
    assert "fraction_of_half_peak" in rows[("bare", "bf16")] and "fraction_of_half_peak" not in rows[("bare", "fp32")]
    ratios = {r["precision"]: r for r in record["library_vs_bare"]}
    assert set(ratios) == {"fp32", "bf16"} and all(r["library_over_bare"] > 0 for r in ratios.values())
    assert "best_fraction_of_half_peak" in ratios["bf16"]
    assert "of the bare call's speed" in capsys.readouterr().out


def test_known_peaks_are_only_used_on_their_gpu():
    import torch

    assert retrieval.half_peak(torch.device("cpu"), None) is None
    assert retrieval.half_peak(torch.device("cpu"), 500.0) == 500.0
