"""The training grid of chapter 2 (ambridge.icl.experiments): the pool sampler, resume and skipping, the manifest
reader, the export rule, divergence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ambridge.icl import MixtureStream, MixtureTask, ModelConfig, TrainConfig
from ambridge.icl.experiments import (Grid, choose_export, load_run, plateau_step, read_manifest, read_validation,
                                      run_grid,
                                      pool_size_summary, run_id, run_pool, smoothed, train_run, validation_errors,
                                      validation_sets)
from ambridge.icl.train import Trainer
from ambridge.store import CorruptStore

TINY = TrainConfig(model=ModelConfig(d_model=8, n_heads=2, n_layers=1, dim_feedforward=16), batch_size=2,
                   langevin_steps=2)
GRID = Grid(base=TINY, pool_sizes=(3, 0), seeds=(0,), n_steps=4, validate_every=2, n_val_sets=2, n_val_chains=4,
            smooth_window=3)


def _quiet(_line):
    pass


# ------------------------------------------------------------------------------------------------------ the pool
def test_pool_stream_draws_only_its_pool_mixtures():
    stream = MixtureStream(MixtureTask(), seed=3, pool_size=10)
    means = torch.cat([stream.batch(16)[1] for _ in range(40)])  # 640 sequences
    distinct = torch.unique(means.reshape(len(means), -1), dim=0)
    assert len(distinct) == 10  # every pool mixture is drawn, and no other
    pool = stream.pool.reshape(10, -1)
    assert all(bool((pool == row).all(1).any()) for row in distinct)
    fresh_stream = MixtureStream(MixtureTask(), seed=3)
    fresh = torch.cat([fresh_stream.batch(16)[1] for _ in range(2)])
    assert len(torch.unique(fresh.reshape(len(fresh), -1), dim=0)) == 32  # pool 0: a new mixture each time


def test_validation_sets_pool_comes_from_the_pool_and_held_out_does_not():
    stream = MixtureStream(TINY.task, seed=1, pool_size=5)
    sets = validation_sets(TINY, stream.pool, 8)
    assert torch.equal(sets["pool"]["means"], stream.pool)  # a pool smaller than n_sets: all of it
    nearest = torch.cdist(sets["pool"]["points"], sets["pool"]["means"]).min(-1).values
    assert nearest.max() < 6 * TINY.task.component_std
    for name in ("select", "heldout"):
        m = sets[name]["means"].reshape(8, -1)
        assert not any(bool((stream.pool.reshape(5, -1) == row).all(1).any()) for row in m)
    assert not torch.equal(sets["select"]["means"], sets["heldout"]["means"])
    assert validation_sets(TINY, None, 8)["pool"] is None


# ------------------------------------------------------------------------------------------------ export rule
def test_smoothed_is_a_centred_rolling_mean():
    rng = np.random.default_rng(0)
    e = rng.uniform(0.5, 3, size=17)
    for window in (1, 3, 5):
        expected = pd.Series(e).rolling(window, center=True, min_periods=1).mean().to_numpy()
        np.testing.assert_allclose(smoothed(e, window), expected, rtol=1e-12)
    e[6] = np.nan
    got = smoothed(e, 5)
    assert np.all(np.isinf(got[4:9])) and np.isfinite(got[:4]).all() and np.isfinite(got[9:]).all()
    with pytest.raises(ValueError, match="window"):
        smoothed(e, 4)


def test_export_rule_prefers_a_good_stretch_to_a_single_lucky_validation():
    steps = [0, 25, 50, 75, 100, 125]
    errors = [5.0, 1.0, 5.0, 2.0, 2.0, 2.0]  # the single best validation is step 25
    assert choose_export(steps, errors, 1) == 25  # window 1 is "best single validation"
    assert choose_export(steps, errors, 3) == 100  # centred means 3, 11/3, 8/3, 3, 2, 2: the earliest of the ties
    collapse = [9.9, 7.5, 5.1, 4.6, 9.4, 13.1]  # improves, then collapses
    assert choose_export(steps, collapse, 3) == 50  # the middle of the good stretch, not its edge
    assert choose_export(steps, [5.0, np.nan, 1.0, 1.0, 1.0, 3.0], 3) == 75  # no window holding NaN is chosen
    assert choose_export(steps, [np.nan] * 6, 3) == 125  # nothing finite: the last step
    with pytest.raises(ValueError):
        choose_export([], [], 3)


# ------------------------------------------------------------------------------------------------ the driver
def test_grid_runs_then_skips_finished_runs(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    first = run_grid(GRID, out, work, log=_quiet, wall_time_note="shared machine, under load")
    assert [r["run_id"] for r in first] == ["pool3-seed0", "fresh-seed0"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    lines = []
    assert run_grid(GRID, out, work, log=lines.append) == []  # nothing retrained
    assert lines == ["pool3-seed0: finished already, skipped", "fresh-seed0: finished already, skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    rows = read_manifest(out)
    assert [r["run_id"] for r in rows] == ["pool3-seed0", "fresh-seed0"]
    row = rows[0]
    hist = read_validation(row, out)
    assert list(hist["step"]) == [0, 2, 4] and np.isnan(hist["loss"][0]) and np.isfinite(hist["pool_error"]).all()
    assert np.isnan(read_validation(rows[-1], out)["pool_error"]).all()  # fresh: no pool
    assert row["export_step"] == choose_export(hist["step"], hist["select_error"], GRID.smooth_window)
    model, state = load_run(row, out)
    saved = torch.load(next(work.glob("pool3-seed0-*")) / f"weights-{row['export_step']}.pt", weights_only=False)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved["model"].items())
    assert state["step"] == row["export_step"] and not any(p.requires_grad for p in model.parameters())
    record = json.loads((out / row["record"]).read_text())
    assert record["export_step"] == row["export_step"] and "shared machine" in record["wall_time_note"]


def test_a_longer_grid_extends_the_runs_and_the_reader_takes_the_newest_row(tmp_path):
    out = tmp_path / "out"
    short = Grid(**{**GRID.__dict__, "pool_sizes": (3,)})
    run_grid(short, out, tmp_path / "w", log=_quiet)
    lines = []
    longer = Grid(**{**short.__dict__, "n_steps": 6})
    assert len(run_grid(longer, out, tmp_path / "w", log=lines.append)) == 1
    assert [line.split(": ")[0] for line in lines] == ["pool3-seed0 step 6"]  # resumed at 4: one new validation
    (row,) = read_manifest(out)
    assert row["final_step"] == 6 and list(read_validation(row, out)["step"]) == [0, 2, 4, 6]
    straight = run_grid(longer, tmp_path / "straight", tmp_path / "w2", log=_quiet)[0]
    a, b = (pd.read_csv(d / "pool3-seed0-validation.csv") for d in (out, tmp_path / "straight"))
    pd.testing.assert_frame_equal(a.drop(columns="wall_s"), b.drop(columns="wall_s"))
    assert straight["export_step"] == row["export_step"]


def test_an_interrupted_run_resumes_to_the_same_history(tmp_path):
    config = GRID.configs()[0]
    train_run(config, GRID, tmp_path / "a", tmp_path / "wa", log=_quiet)

    def stop_after_step_2(line):
        if "step 2:" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(config, GRID, tmp_path / "b", tmp_path / "wb", log=stop_after_step_2)
    assert not (tmp_path / "b" / f"{run_id(config)}.pt").exists()
    train_run(config, GRID, tmp_path / "b", tmp_path / "wb", log=_quiet)
    a, b = (pd.read_csv(tmp_path / d / f"{run_id(config)}-validation.csv") for d in ("a", "b"))
    pd.testing.assert_frame_equal(a.drop(columns="wall_s"), b.drop(columns="wall_s"))


def test_divergence_is_recorded_and_the_export_is_pre_divergence(tmp_path):
    grid = Grid(**{**GRID.__dict__, "base": TINY.with_(energy_limit=1e-9), "pool_sizes": (0,)})
    (row,) = run_grid(grid, tmp_path, tmp_path / "work", log=_quiet)
    assert row["diverged_at"] == 1 and row["status"].startswith("diverged at step 1")
    assert row["export_step"] == 0 and row["final_step"] == 0


# ------------------------------------------------------------------------------------------------ the manifest
def test_corrupt_manifest_line_raises(tmp_path):
    run_grid(Grid(**{**GRID.__dict__, "pool_sizes": (0,), "n_steps": 2}), tmp_path, tmp_path / "w", log=_quiet)
    path = tmp_path / "manifest.jsonl"
    good = path.read_text()
    path.write_text("this is not json\n" + good)
    with pytest.raises(CorruptStore, match=r"manifest\.jsonl, line 1"):
        read_manifest(tmp_path)
    row = json.loads(good)
    del row["export_step"]
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="fresh-seed0.*export_step"):
        read_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m ambridge.icl experiments"):
        read_manifest(tmp_path / "nowhere")


def test_grid_checks_its_parameters():
    with pytest.raises(ValueError, match="val_n"):
        Grid(base=TINY, val_n=36)
    with pytest.raises(ValueError, match="smooth_window"):
        Grid(base=TINY, smooth_window=4)
    with pytest.raises(ValueError, match="shard"):
        run_grid(GRID, "unused", "unused", shard=(2, 2))


def test_pool_size_summary_against_numpy():
    rows = [{"pool_size": p, "seed": s, "diverged_at": 7 if (p, s) == (10, 1) else None,
             "heldout_error_at_export": h, "pool_error_at_export": q}
            for p, s, h, q in [(10, 0, 3.0, 1.0), (10, 1, 5.0, 2.0), (0, 0, 2.0, float("nan")), (100, 0, 4.0, 4.0)]]
    table = pool_size_summary(rows)
    assert [t["pool_size"] for t in table] == [10, 100, 0]
    assert table[0]["n_runs"] == 2 and table[0]["n_diverged"] == 1
    assert table[0]["heldout_mean"] == 4.0 and np.isclose(table[0]["heldout_sd"], np.std([3.0, 5.0], ddof=1))
    assert np.isnan(table[1]["heldout_sd"]) and np.isnan(table[2]["pool_mean"])


def test_command_line_runs_the_grid_and_keeps_the_training_command(tmp_path):
    from ambridge.icl.__main__ import main

    threads = str(torch.get_num_threads())
    args = ["experiments", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"), "--pool-sizes", "3",
            "--seeds", "1", "--steps", "2", "--validate-every", "1", "--val-sets", "2", "--val-chains", "4",
            "--d-model", "8", "--n-heads", "2", "--n-layers", "1", "--dim-feedforward", "16", "--batch-size", "2",
            "--langevin-steps", "2", "--threads", threads]
    assert main(args) == 0
    (row,) = read_manifest(tmp_path / "out")
    record = json.loads((tmp_path / "out" / row["record"]).read_text())
    assert row["run_id"] == "pool3-seed1" and record["command"].startswith("python -m ambridge.icl experiments --out")
    assert record["commit"] and record["hardware"]
    assert main(["--preset", "tiny", "--steps", "2", "--checkpoint-every", "1", "--threads", threads,
                 "--out", str(tmp_path / "single")]) == 0  # the single-run command line still works
    assert (tmp_path / "single" / "checkpoint.pt").is_file()


def test_run_pool_is_the_trainers_pool_and_validation_errors_reproduce_the_history(tmp_path):
    config = GRID.configs()[0]
    assert torch.equal(run_pool(config), Trainer(config).stream.pool)
    assert run_pool(GRID.configs()[1]) is None
    (row, _) = run_grid(GRID, tmp_path, tmp_path / "w", log=_quiet)
    model, _ = load_run(row, tmp_path)
    again = validation_errors(model, config, GRID, validation_sets(config, run_pool(config), GRID.n_val_sets))
    hist = read_validation(row, tmp_path)
    at = list(hist["step"]).index(row["export_step"])
    expected = {f"{k}_error": pytest.approx(hist[f"{k}_error"][at], abs=1e-5) for k in ("select", "heldout", "pool")}
    assert again == expected


# ------------------------------------------------------------------------------------------- plateau and budget
def test_plateau_step_waits_for_patience_validations_without_improvement():
    steps = [0, 10, 20, 30, 40, 50, 60]
    falling = [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0]
    assert all(plateau_step(steps[:k], falling[:k], 1, 2) is None for k in range(1, 8))
    flat = [9.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0]  # best at step 10
    assert plateau_step(steps[:4], flat[:4], 1, 2) is None  # two validations after the best: not yet
    assert plateau_step(steps[:5], flat[:5], 1, 2) == 40  # the third without improvement ends the run
    assert plateau_step(steps, flat, 1, 0) is None  # patience 0: never


def test_plateau_ends_a_run_and_its_record_says_so(tmp_path):
    grid = Grid(base=TINY, pool_sizes=(0,), seeds=(0,), n_steps=40, validate_every=2, n_val_sets=2, n_val_chains=4,
                smooth_window=1)
    row = run_grid(grid, tmp_path / "out", tmp_path / "work", log=_quiet, patience=1)[0]
    hist = read_validation(row, tmp_path / "out")
    best = int(np.argmin(hist["select_error"]))
    if row["status"].startswith("plateau"):  # a tiny model on 2 sets plateaus early; the rule is checked exactly
        assert row["final_step"] < 40 and len(hist["step"]) - 1 - best == 2
        assert row["status"] == f"plateau at step {row['final_step']}: the smoothed select error did not improve " \
                                 "in the last 1 validations"
    else:  # it kept improving to the end
        assert row["final_step"] == 40 and best >= len(hist["step"]) - 2


def test_a_run_stopped_by_the_time_budget_resumes_to_the_same_weights(tmp_path):
    grid = Grid(base=TINY, pool_sizes=(0,), seeds=(0,), n_steps=6, validate_every=2, n_val_sets=2, n_val_chains=4)
    straight = run_grid(grid, tmp_path / "a", tmp_path / "wa", log=_quiet)[0]
    cut = run_grid(grid, tmp_path / "b", tmp_path / "wb", log=_quiet, time_budget_s=0.0)[0]  # one step, then stop
    assert cut["status"] == "stopped at the time budget at step 1" and cut["final_step"] == 1
    resumed = run_grid(grid, tmp_path / "b", tmp_path / "wb", log=_quiet)[0]  # not skipped: resumed
    assert resumed["status"] == "finished" and resumed["final_step"] == 6
    assert read_manifest(tmp_path / "b")[0]["status"] == "finished"
    # the trajectory is the uninterrupted one (the export may differ: the cut added a validation at step 1)
    a = torch.load(next((tmp_path / "wa").glob("fresh-seed0-*")) / "state.pt", weights_only=False)["model"]
    b = torch.load(next((tmp_path / "wb").glob("fresh-seed0-*")) / "state.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert 1 in read_validation(resumed, tmp_path / "b")["step"]
