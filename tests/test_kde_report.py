"""ambridge.kde.report: the summaries chapter 5 prints, and the readers of its committed run records — which must
keep loading in the format they were written in."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from ambridge import kde

ARTIFACTS = Path(__file__).resolve().parents[1] / "chapters" / "artifacts" / "05_kde_capacity"


def _records(curves):
    """Sweep records from {(d, seed): [(N, fraction), …]}."""
    return [{"d": d, "seed": s, "N": n, "fraction": f} for (d, s), pts in curves.items() for n, f in pts]


CURVES = {(8, 0): [(4, 1.0), (8, 0.95), (16, 0.5), (32, 0.0)], (8, 1): [(4, 1.0), (8, 0.85), (16, 0.3), (32, 0.0)],
          (10, 0): [(4, 1.0), (8, 1.0), (16, 0.9), (32, 0.2)]}


def test_per_dimension_keeps_finite_values_only():
    caps = [{"d": 8, "n_half": 3.0}, {"d": 8, "n_half": None}, {"d": 8, "n_half": math.nan}, {"d": 9, "n_half": None},
            {"d": 10, "n_half": 5.0}, {"d": 10, "n_half": 7.0}]
    out = kde.per_dimension(caps, "n_half")
    assert list(out) == [8, 10] and out[8].tolist() == [3.0] and out[10].tolist() == [5.0, 7.0]


def test_summarise_dimensions_against_a_hand_computation():
    recs = _records(CURVES)
    caps = kde.capacities(recs, 0.05)
    (s8, s10) = kde.summarise_dimensions(recs, caps, lam=1.0, eps=0.1)
    halves = [c["n_half"] for c in caps if c["d"] == 8]
    assert s8.d == 8 and s8.n_half == pytest.approx(np.mean(halves)) and s8.n_half_sd == pytest.approx(np.std(halves))
    # the width is read off the seed-averaged curve of d = 8: 1.0, 0.9, 0.4, 0.0 at N = 4, 8, 16, 32
    n10 = math.exp(math.log(16) + (0.4 - 0.1) / 0.4 * math.log(2))
    n90 = 8.0  # exactly at the grid point
    assert s8.width == pytest.approx(math.log(n10 / n90))
    assert s8.n_half_theory == pytest.approx(math.exp(kde.mean_field_log_capacity(1.0, 8, eps=0.1)))
    assert s10.n_star == pytest.approx(caps[-1]["n_star"])
    (only,) = kde.summarise_dimensions(recs, [c for c in caps if c["d"] == 10], lam=1.0, eps=0.1, dims=[10])
    assert only.d == 10
    missing = kde.summarise_dimensions(recs, caps, lam=1.0, eps=0.1, dims=[12])[0]  # no records, no capacities
    assert math.isnan(missing.n_half) and math.isnan(missing.n_star) and math.isnan(missing.width)


def test_half_precision_check_and_ratios():
    recs = [{"fraction": 1.0, "check_queries": 10, "check_agree": 10},
            {"fraction": 0.5, "check_queries": 10, "check_agree": 6},
            {"fraction": 0.0, "check_queries": 5, "check_agree": 5}, {"fraction": 0.5}]
    check = kde.half_precision_check(recs)
    assert check == {"queries": 25, "agree": 21 / 25, "drop_queries": 10, "drop_agree": 0.6}
    assert kde.half_precision_check([{"fraction": 0.5}]) is None
    a = [{"d": 8, "n_half": 4.0}, {"d": 8, "n_half": 6.0}, {"d": 9, "n_half": 3.0}]
    b = [{"d": 8, "n_half": 2.0}, {"d": 10, "n_half": 1.0}]
    assert kde.n_half_ratios(a, b) == {8: 2.5}


@pytest.mark.parametrize("name, step_tol", [("capacity-gpu.json", 2e-3), ("capacity-cpu.json", 1e-5)])
def test_the_committed_run_records_still_load(name, step_tol):
    """The committed artifacts (written before the split of ambridge.kde) load, and the reader's summaries agree
    with the JSON read by hand."""
    art = kde.read_sweep_artifact(ARTIFACTS / name)
    raw = json.loads((ARTIFACTS / name).read_text())
    assert art.name == name and art.step_tol == step_tol and art.complete
    assert art.lam == pytest.approx(1 / raw["parameters"]["sweep"]["bandwidth_scale"] ** 2)
    assert art.largest_n == max(r["N"] for r in raw["records"]) and art.p_fail == raw["parameters"]["p_fail"]
    summary = kde.summarise_dimensions(art.records, art.capacities, lam=art.lam, eps=art.sweep["eps"])
    assert [s.d for s in summary] == raw["parameters"]["sweep"]["dims"]
    for s in summary:
        halves = [c["n_half"] for c in raw["capacities"] if c["d"] == s.d and c["n_half"] is not None]
        assert s.n_half == pytest.approx(sum(halves) / len(halves))
    # the capacities stored in the record are those its records give
    recomputed = kde.capacities(art.records, art.p_fail)
    assert [c["n_half"] for c in recomputed] == pytest.approx([c["n_half"] for c in raw["capacities"]])


def test_find_sweep_artifact_prefers_the_gpu_run(tmp_path):
    assert kde.find_sweep_artifact(tmp_path) is None
    assert kde.find_sweep_artifact(ARTIFACTS).name == "capacity-gpu.json"
    assert kde.find_sweep_artifact(ARTIFACTS, names=("missing.json", "capacity-cpu.json")).name == "capacity-cpu.json"
    (tmp_path / "capacity-gpu.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a capacity-sweep run record"):
        kde.find_sweep_artifact(tmp_path)


def test_benchmark_table_and_speedups():
    bench = kde.read_benchmark(ARTIFACTS / "benchmark-cpu.json")
    headers, rows = kde.benchmark_table(bench)
    assert len(headers) == len(rows[0]) and len(rows) == len([r for r in bench["rows"] if "error" not in r])
    synthetic = {"hardware": "x", "rows": [
        {"d": 4, "N": 8, "path": "naive/fp32", "queries_per_s": 10.0, "mean_iter": 2.0, "agree_with_naive": 1.0,
         "speedup_vs_naive": 1.0},
        {"d": 4, "N": 8, "path": "library/fp16", "queries_per_s": 30.0, "mean_iter": 2.0, "agree_with_naive": 0.5,
         "speedup_vs_naive": 3.0},
        {"d": 4, "N": 16, "path": "library/fp16", "queries_per_s": 50.0, "mean_iter": 2.0, "agree_with_naive": 1.0,
         "speedup_vs_naive": 5.0},
        {"d": 4, "N": 16, "path": "library/bf16", "error": "RuntimeError: no"}]}
    assert kde.benchmark_table(synthetic)[1][1] == (4, 8, "library/fp16", "30", "2.0", "50.0%", "3.0×")
    assert kde.speedup_ranges(synthetic) == {"fp16": (3.0, 5.0)}


def test_draw_success_curves_draws_the_seed_mean_and_band():
    ax = Figure().subplots()
    kde.draw_success_curves(ax, _records(CURVES), [8, 10], 0.95)
    lines = [line for line in ax.get_lines() if line.get_label().startswith("d = ")]
    assert [line.get_label() for line in lines] == ["d = 8", "d = 10"]
    assert lines[0].get_ydata().tolist() == pytest.approx([1.0, 0.9, 0.4, 0.0]) and lines[1].get_xdata().tolist() == [4, 8, 16, 32]
    assert len(ax.collections) == 2 and ax.get_xscale() == "log"


def test_fit_capacity_exponent_against_numpy():
    """The measured exponent is numpy's least-squares slope of ln N½; the theory's, that of the saddle-node values."""
    wiggle = {8: 0.01, 10: -0.02, 12: 0.015, 14: 0.0}
    summary = [kde.DimensionSummary(d=d, n_star=1.0, n_half=math.exp(0.5 * d + 1.0 + w), n_half_sd=0.0,
                                    n_half_theory=1.0, width=0.1) for d, w in wiggle.items()]
    fit = kde.fit_capacity_exponent(summary, lam=1.0, eps=0.1)
    dims = np.array([8, 10, 12, 14])
    assert fit.dims == (8, 10, 12, 14)
    assert fit.alpha == pytest.approx(np.polyfit(dims, [math.log(s.n_half) for s in summary], 1)[0], rel=1e-12)
    theory = [kde.mean_field_log_capacity(1.0, int(d), eps=0.1) for d in dims]
    assert fit.alpha_theory == pytest.approx(np.polyfit(dims, theory, 1)[0], rel=1e-12)
    assert 0.99 < fit.r2 < 1.0


def _run(sweep_settings):
    return kde.SweepArtifact(Path("capacity-gpu.json"), {"parameters": {"sweep": sweep_settings}})


def test_a_run_at_a_looser_step_tolerance_than_the_presets_is_stale():
    """A float16 run recorded before the record named its tolerance stopped its steps at 2e-3·M; a sweep built now
    runs at 1e-5·M in every precision, so such a run is stale until regenerated, and one at 1e-5·M is not."""
    now = kde.CapacitySweep(dims=(16,), precision="float16", device="cuda").step_tol
    assert now == 1e-5
    old = _run({"precision": "float16", "tol": None})
    assert old.step_tol == 2e-3 and old.stale_against(now)
    assert not old.stale_against(2e-3) and old.stale_against(1.9e-3)
    assert not _run({"precision": "float16", "tol": None, "step_tol": 1e-5}).stale_against(now)
    assert not _run({"precision": "float32", "tol": None}).stale_against(now)
