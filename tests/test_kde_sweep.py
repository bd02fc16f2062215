"""ambridge.kde.sweep and ``python -m ambridge.kde``: the capacity sweep (monotone in N, coarse then fine across the
drop, resumable only by the same experiment, half precision re-checked), its key, its one table of limits, and
the analysis of its records."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from ambridge import data as amdata
from ambridge import kde
from ambridge.checks import ParameterError
from ambridge.kde.__main__ import main as kde_main
from ambridge.store import RecordStore

QUICK = dict(seed=0, bandwidth_scale=1.0, sweep_d_min=8, sweep_d_max=16, sweep_d_step=2, sweep_seeds=3,
             sweep_n_max=65536, sweep_growth=1.4142, sweep_queries=256, noise=0.1, eps=0.1, max_iter=100, p_fail=0.05,
             precision="auto", chunk=4096, check_queries=256)


# ----------------------------------------------------------------------------------- settings, limits, the key
@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: kde.CapacitySweep(dims=(8,), precision="float8"), "precision"),
        (lambda: kde.CapacitySweep(dims=(8,), precision="bfloat16"), "precision"),
        (lambda: kde.CapacitySweep(dims=(1,)), "dims"),
        (lambda: kde.CapacitySweep(dims=()), "dims"),
        (lambda: kde.CapacitySweep(n_min=16, n_max=8), "n_max"),
        (lambda: kde.CapacitySweep(noise=2.5), "noise"),
        (lambda: kde.CapacitySweep(tol=0.0), "tol"),
        (lambda: kde.CapacitySweep.from_parameters({**QUICK, "sweep_queries": 8}), "sweep_queries"),
        (lambda: kde.CapacitySweep.from_parameters({**QUICK, "sweep_d_max": 6}), "sweep_d_max"),
        (lambda: kde.CapacitySweep.from_parameters({**QUICK, "precision": "float64"}), "precision"),
        (lambda: kde.CapacitySweep.from_parameters({k: v for k, v in QUICK.items() if k != "eps"}), "parameters"),
        (lambda: kde.capacities([], 0.7), "p_fail"),
    ],
)
def test_bad_settings_raise_a_clear_error(call, name):
    with pytest.raises(ParameterError, match=rf"parameter `{name}` ="):
        call()


@pytest.mark.parametrize("parameter, setting", [(k, v) for k, v in kde.SWEEP_PARAMETERS.items() if v != "precision"])
def test_the_chapter_and_the_sweep_share_one_table_of_limits(parameter, setting):
    """Each chapter parameter is refused by from_parameters exactly where the sweep's own setting is refused by
    CapacitySweep (one table, kde.LIMITS): just outside a bound both fail, on the bound both pass."""
    limits = kde.LIMITS[setting]
    for bound, side, is_open in (("low", -1, limits.get("low_open")), ("high", 1, limits.get("high_open"))):
        if limits.get(bound) is None:
            continue
        edge = limits[bound]
        step = 1 if limits.get("integer") else 1e-9 * max(1.0, abs(edge))
        outside = edge + side * (0 if is_open else step)
        with pytest.raises(ParameterError, match=rf"`{parameter}`"):
            kde.check_setting(parameter, outside, setting)
        if setting in {f.name for f in dataclasses.fields(kde.CapacitySweep)} and setting != "dims":
            with pytest.raises(ParameterError, match=rf"`{setting}`"):
                kde.CapacitySweep(**{setting: outside})
        if not is_open:
            kde.check_setting(parameter, edge, setting)


def test_from_parameters_builds_the_chapters_sweep():
    sweep = kde.CapacitySweep.from_parameters(QUICK, "cpu")
    assert sweep.dims == (8, 10, 12, 14, 16) and sweep.precision == "float32" and sweep.n_queries == 256
    assert kde.CapacitySweep.from_parameters(QUICK, "cuda:0").precision == "float16"
    assert list(kde.SWEEP_PARAMETERS) == list(QUICK)


@pytest.mark.parametrize("change", [
    dict(noise=0.2), dict(tol=1e-4), dict(precision="float16"), dict(eps=0.2), dict(max_iter=50),
    dict(bandwidth_scale=1.1), dict(bandwidth=0.35), dict(radius=2.0), dict(seed=1), dict(check_queries=8),
    dict(growth=1.5), dict(n_min=8), dict(n_queries=128),
])
def test_every_setting_that_changes_a_result_changes_the_key(change):
    base = kde.CapacitySweep(dims=(8,))
    assert kde.CapacitySweep(dims=(8,), **change).key() != base.key()
    assert kde.CapacitySweep(dims=(8,), **change).point_key(8, 16, 0) != base.point_key(8, 16, 0)


def test_settings_that_do_not_change_a_point_keep_the_key():
    base = kde.CapacitySweep(dims=(8,))
    for change in (dict(dims=(8, 12)), dict(chunk=64), dict(n_seeds=1), dict(n_max=4096), dict(device="cuda"),
                   dict(stop_below=0.1), dict(refine_above=0.9)):
        assert kde.CapacitySweep(**{"dims": (8,), **change}).key() == base.key(), change
    assert base.point_key(8, 16, 0) != base.point_key(8, 16, 1) != base.point_key(8, 32, 1)


# ----------------------------------------------------------------------------------------------- the sweep
def test_time_limit_stops_early():
    sweep = kde.CapacitySweep(dims=(8, 12), bandwidth_scale=1.0, n_seeds=1, n_queries=16)
    assert kde.run_sweep(sweep, time_limit=0.0) == []


def test_sweep_point_draws_its_data_with_the_one_sphere_sampler(monkeypatch):
    seen = []
    real = amdata.sphere_points

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr("ambridge.kde.sweep.sphere_points", spy)
    kde.sweep_point(kde.CapacitySweep(dims=(8,), n_queries=16), 8, 20, 0)
    assert len(seen) == 1 and seen[0].shape == (20, 8) and seen[0].dtype == torch.float32


def test_capacity_search_is_monotone_on_a_tiny_case(tmp_path):
    """Success falls with N, N½ grows with d, and a checkpointed sweep resumes without recomputing."""
    sweep = kde.CapacitySweep(dims=(8, 12), bandwidth_scale=1.0, n_seeds=2, n_min=4, n_queries=64, max_iter=60)
    ck = tmp_path / "sweep.jsonl"
    records = kde.run_sweep(sweep, checkpoint=ck)
    for d in sweep.dims:
        sizes, mean = kde.mean_success(records, d)
        assert mean[0] > 0.5 and mean[-1] < sweep.stop_below  # the grid brackets the drop
        assert mean[0] - mean[-1] > 0.5
    caps = kde.capacities(records, 0.05)
    half = {d: np.mean([c["n_half"] for c in caps if c["d"] == d]) for d in sweep.dims}
    assert half[12] > 2 * half[8]
    assert kde.finished_dimensions(sweep, records) == [8, 12]
    store = list(RecordStore(ck))
    assert len(store) == len(records) and {r["key"] for r in store} == {r["key"] for r in records}
    assert all(r["key"] == sweep.point_key(r["d"], r["N"], r["seed"]) for r in store)
    lines = ck.read_text().splitlines()
    again = kde.run_sweep(sweep, checkpoint=ck)
    assert again == records and len(ck.read_text().splitlines()) == len(lines)  # nothing recomputed


@pytest.mark.parametrize("change", [dict(noise=0.0), dict(tol=1e-3), dict(eps=0.2)])
def test_a_resumed_sweep_with_other_settings_recomputes(tmp_path, change, monkeypatch):
    """A checkpoint written with one noise (or step tolerance, or ε) is not reused by a sweep with another: every
    point is computed again (and stored beside the first), and its result is that of a fresh run."""
    settings = dict(dims=(8,), bandwidth_scale=1.0, n_seeds=1, n_min=4, n_queries=16, max_iter=60, n_max=64)
    ck = tmp_path / "sweep.jsonl"
    first = kde.run_sweep(kde.CapacitySweep(**settings), checkpoint=ck)
    other = kde.CapacitySweep(**settings, **change)
    calls = []
    real = kde.sweep.sweep_point
    monkeypatch.setattr("ambridge.kde.sweep.sweep_point", lambda *a: calls.append(a[1:]) or real(*a))
    resumed = kde.run_sweep(other, checkpoint=ck)
    assert len(calls) == len(resumed) and len(RecordStore(ck)) == len(first) + len(resumed)
    fresh = kde.run_sweep(other)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(resumed) == strip(fresh)


def test_grid_is_coarse_then_fine_across_the_drop():
    sweep = kde.CapacitySweep(dims=(12,), bandwidth_scale=1.0, n_seeds=1, n_queries=32, growth=2 ** 0.25)
    assert sweep.coarse_step == 4
    records = kde.run_sweep(sweep)
    fine = sweep.sizes()
    done = sorted({r["N"] for r in records})
    frac = {r["N"]: r["fraction"] for r in records}
    coarse = [n for n in done if fine.index(n) % 4 == 0]
    high = max(n for n in coarse if frac[n] >= sweep.refine_above and n < coarse[-1])
    expected = [n for n in fine if n <= coarse[-1] and (fine.index(n) % 4 == 0 or n > high)]
    assert done == expected  # every grid point across the drop, only coarse ones before it
    assert frac[coarse[-1]] < sweep.stop_below and len(done) < fine.index(coarse[-1]) + 1


def test_half_precision_recheck_is_recorded():
    sweep = kde.CapacitySweep(dims=(8,), bandwidth_scale=1.0, precision="float16", check_queries=16,
                              n_queries=32)
    rec = kde.sweep_point(sweep, 8, 20, 0)
    assert rec["check_queries"] == 16 and 0 <= rec["check_agree"] <= 16
    assert 0 <= rec["check_successes_half"] <= 16
    assert json.loads(json.dumps(rec)) == rec


def test_crossing_and_capacities():
    assert kde.crossing([10, 20, 40], [1.0, 0.9, 0.1], 0.5) == pytest.approx(20 * 2 ** 0.5)
    assert math.isnan(kde.crossing([10, 20], [0.2, 0.1], 0.5))
    assert kde.crossing([10, 20], [1.0, 0.9], 0.5) == 20
    # a dip at small N does not define the capacity: the largest N above the level does
    assert kde.crossing([4, 8, 16, 32], [1.0, 0.9, 1.0, 0.2], 0.95) == pytest.approx(16 * 2 ** (0.05 / 0.8))
    recs = [{"d": 4, "seed": 0, "N": n, "fraction": f} for n, f in [(8, 1.0), (16, 0.96), (32, 0.2)]]
    (cap,) = kde.capacities(recs, 0.05)
    assert 16 <= cap["n_star"] < 32 and 16 < cap["n_half"] < 32 and cap["bracketed"]
    slope, intercept, r2 = kde.fit_exponent([1, 2, 3], [0.5, 1.0, 1.5])
    assert slope == pytest.approx(0.5) and r2 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two distinct"):
        kde.fit_exponent([3, 3], [1.0, 2.0])


def test_mean_success_averages_seeds_per_size():
    recs = [{"d": 8, "N": 16, "seed": 0, "fraction": 1.0}, {"d": 8, "N": 8, "seed": 0, "fraction": 0.5},
            {"d": 8, "N": 16, "seed": 1, "fraction": 0.5}, {"d": 9, "N": 16, "seed": 0, "fraction": 0.0}]
    assert kde.mean_success(recs, 8) == ([8, 16], [0.5, 0.75])
    sweep = kde.CapacitySweep(dims=(8, 9))
    assert kde.finished_dimensions(sweep, recs) == [9]


# ------------------------------------------------------------------------------------------ the command line
def _preset(path, **extra):
    values = {**QUICK, "sweep_d_min": 6, "sweep_d_max": 8, "sweep_seeds": 1, "sweep_n_max": 4096, "sweep_queries": 32,
              "max_iter": 50, "check_queries": 0, **extra}
    path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()) + "# a comment\nside_dim: 12\n")
    return path


def test_command_line_writes_a_run_record(tmp_path):
    preset = _preset(tmp_path / "tiny.yaml")
    out, ck = tmp_path / "out.json", tmp_path / "ck.jsonl"
    argv = ["--preset", str(preset), "--device", "cpu", "--out", str(out), "--set", "sweep_d_max=6",
            "--checkpoint", str(ck)]
    assert kde_main(argv) == 0
    record = json.loads(out.read_text())
    assert {"parameters", "commit", "hardware", "wall_time_s", "records", "capacities"} <= set(record)
    assert {r["d"] for r in record["records"]} == {6} and record["complete"] and record["dims_finished"] == [6]
    assert record["parameters"]["sweep_d_max"] == 6 and record["parameters"]["sweep"]["step_tol"] == 1e-5
    artifact = kde.read_sweep_artifact(out)  # what the chapter reads
    assert artifact.records == record["records"] and artifact.step_tol == 1e-5
    n_lines = len(ck.read_text().splitlines())
    assert kde_main(argv) == 0 and len(ck.read_text().splitlines()) == n_lines  # resumed: nothing recomputed


@pytest.mark.parametrize("text, match", [
    ("seed: 0\n", "must set"),
    ("- a\n- list\n", "YAML mapping"),
    ("seed: [0\n", "not valid YAML"),
])
def test_command_line_refuses_a_bad_preset(tmp_path, text, match):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ParameterError, match=match):
        kde_main(["--preset", str(bad), "--device", "cpu", "--out", str(tmp_path / "out.json")])


def test_command_line_checks_overrides(tmp_path):
    preset = _preset(tmp_path / "tiny.yaml")
    out = str(tmp_path / "out.json")
    with pytest.raises(ParameterError, match="`--set`"):
        kde_main(["--preset", str(preset), "--device", "cpu", "--out", out, "--set", "noise"])
    with pytest.raises(ParameterError, match="`noise`"):
        kde_main(["--preset", str(preset), "--device", "cpu", "--out", out, "--set", "noise=3"])
    with pytest.raises(ParameterError, match="no such file"):
        kde_main(["--preset", str(tmp_path / "missing.yaml"), "--device", "cpu", "--out", out])
