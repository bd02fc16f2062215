"""Data generators (ambridge.data), run-time helpers (ambridge.runtime) and the figure helpers (ambridge.plotting)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ambridge import data as amdata  # noqa: E402
from ambridge import plotting, runtime  # noqa: E402
from ambridge.book import records  # noqa: E402
from ambridge.runtime import ParameterError  # noqa: E402

F64 = torch.float64


# --- data -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [1.0, 2.5])
def test_sphere_points_lie_on_the_sphere_and_are_centred(radius):
    x = amdata.sphere_points(4000, 3, radius=radius, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert x.shape == (4000, 3) and x.dtype == F64
    np.testing.assert_allclose(x.norm(dim=-1).numpy(), radius, rtol=1e-14)
    # uniform on the sphere: each coordinate has mean 0 and variance r²/D; 4 standard errors
    se = radius / math.sqrt(3) / math.sqrt(4000)
    assert bool((x.mean(0).abs() < 4 * se).all())
    np.testing.assert_allclose(x.var(0).numpy(), radius**2 / 3, rtol=0.1)


def test_sphere_points_dtype_and_argument_checks():
    assert amdata.sphere_points(3, 2, dtype=torch.float32).dtype == torch.float32
    for bad in (dict(n=0, dim=2), dict(n=2, dim=0), dict(n=2.0, dim=2), dict(n=True, dim=2), dict(n=2, dim=2, radius=0)):
        with pytest.raises(ValueError):
            amdata.sphere_points(**bad)


def test_binary_patterns_are_plus_minus_one_and_fair():
    x = amdata.binary_patterns(200, 50, generator=torch.Generator().manual_seed(1))
    assert x.shape == (200, 50) and x.is_floating_point()
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    assert abs(x.mean().item()) < 4 / math.sqrt(x.numel())
    a = amdata.binary_patterns(5, 8, generator=torch.Generator().manual_seed(2))
    b = amdata.binary_patterns(5, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize("fraction, dim", [(0.0, 10), (0.1, 10), (0.25, 10), (0.33, 30), (0.5, 7), (1.0, 12)])
def test_flip_signs_flips_exactly_round_fraction_times_d_per_row(fraction, dim):
    x = amdata.binary_patterns(40, dim, generator=torch.Generator().manual_seed(3))
    y = amdata.flip_signs(x, fraction, generator=torch.Generator().manual_seed(4))
    assert y.shape == x.shape and set(y.unique().tolist()) <= {-1.0, 1.0}
    flipped = (y != x).sum(-1)
    assert flipped.tolist() == [round(fraction * dim)] * 40
    torch.testing.assert_close(y[y != x], -x[y != x])


def test_flip_signs_chooses_positions_uniformly():
    x = torch.ones(4000, 10)
    y = amdata.flip_signs(x, 0.3, generator=torch.Generator().manual_seed(5))
    freq = (y == -1).double().mean(0).numpy()  # each position flipped with probability 0.3
    np.testing.assert_allclose(freq, 0.3, atol=4 * math.sqrt(0.3 * 0.7 / 4000))
    with pytest.raises(ValueError, match="fraction"):
        amdata.flip_signs(x, -0.1)


def test_mixture_means_shape_and_spread():
    mu = amdata.mixture_means(2000, 2, spread=5.0, generator=torch.Generator().manual_seed(6))
    assert mu.shape == (2000, 2)
    np.testing.assert_allclose(mu.std(0).numpy(), 5.0, rtol=0.1)


@pytest.mark.parametrize("weights", [None, torch.tensor([0.6, 0.3, 0.1])])
def test_sample_mixture_labels_means_and_frequencies(weights):
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, -10.0]], dtype=F64)
    n = 12000
    x, labels = amdata.sample_mixture(means, 0.5, n, weights=weights, generator=torch.Generator().manual_seed(7))
    assert x.shape == (n, 2) and labels.shape == (n,) and x.dtype == F64
    assert labels.dtype == torch.int64 and set(labels.unique().tolist()) == {0, 1, 2}
    p = np.full(3, 1 / 3) if weights is None else weights.numpy()
    freq = np.bincount(labels.numpy(), minlength=3) / n
    np.testing.assert_array_less(np.abs(freq - p), 4 * np.sqrt(p * (1 - p) / n))
    for k in range(3):  # each point scatters around its own component's mean with std 0.5
        pts = x[labels == k]
        np.testing.assert_allclose(pts.mean(0).numpy(), means[k].numpy(), atol=0.05)
        np.testing.assert_allclose(pts.std(0).numpy(), 0.5, rtol=0.05)


def test_sample_mixture_argument_checks():
    with pytest.raises(ValueError, match="std"):
        amdata.sample_mixture(torch.zeros(2, 2), 0.0, 5)
    with pytest.raises(ValueError, match="`n`"):
        amdata.sample_mixture(torch.zeros(2, 2), 1.0, 0)


# --- runtime: parameter checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, kwargs",
    [
        (0.5, dict(low=0, high=1)),
        (0, dict(low=0, high=1)),
        (1, dict(low=0, high=1)),
        (1e-9, dict(low=0, low_open=True)),
        (-1e300, dict()),
        (3, dict(low=1, integer=True)),
        (np.int64(4), dict(low=1, integer=True)),
        (np.float64(0.25), dict(low=0, high=1)),
    ],
)
def test_check_number_accepts(value, kwargs):
    out = runtime.check_number("p", value, **kwargs)
    assert out == value
    if kwargs.get("integer"):
        assert type(out) is int


@pytest.mark.parametrize(
    "value, kwargs, interval",
    [
        (True, dict(integer=True), "(-inf, inf)"),
        (False, dict(), "(-inf, inf)"),
        (2.0, dict(integer=True), "(-inf, inf)"),
        (float("nan"), dict(), "(-inf, inf)"),
        (float("inf"), dict(low=0), "[0, inf)"),
        ("1", dict(), "(-inf, inf)"),
        (None, dict(), "(-inf, inf)"),
        (0, dict(low=0, low_open=True), "(0, inf)"),
        (1, dict(low=0, high=1, high_open=True), "[0, 1)"),
        (-0.5, dict(low=0, high=1), "[0, 1]"),
        (1.5, dict(low=0, high=1), "[0, 1]"),
        (0, dict(low=1, integer=True), "[1, inf)"),
    ],
)
def test_check_number_rejects_with_a_message_naming_parameter_value_and_interval(value, kwargs, interval):
    with pytest.raises(ParameterError) as info:
        runtime.check_number("n_steps", value, **kwargs)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "`n_steps`" in msg and repr(value) in msg and interval in msg, msg
    assert ("an integer" in msg) == bool(kwargs.get("integer"))
    assert info.value.name == "n_steps" and info.value.value is value


def test_check_choice():
    assert runtime.check_choice("method", "exact", ["auto", "sdpa", "exact"]) == "exact"
    assert runtime.check_choice("flag", True, [True, False]) is True
    for bad, choices in (("fast", ["auto", "exact"]), (1, [True, False]), (1.0, [1, 2]), (True, [1, 0])):
        with pytest.raises(ParameterError) as info:
            runtime.check_choice("method", bad, choices)
        assert "`method`" in str(info.value) and repr(bad) in str(info.value)
        assert all(repr(c) in str(info.value) for c in choices)


# --- runtime: devices, seeds, records -------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without CUDA")
def test_select_device_on_a_cpu_machine():
    assert runtime.select_device("auto") == torch.device("cpu")
    assert runtime.select_device("cpu") == torch.device("cpu")
    assert runtime.select_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("cuda", "cuda:0"):
        with pytest.raises(ParameterError, match="CUDA is not available"):
            runtime.select_device(bad)
    for bad in ("gpu", "mps", 0, None):
        with pytest.raises(ParameterError, match="`device`"):
            runtime.select_device(bad)


@pytest.fixture
def restore_torch_state():
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det)
    if env is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = env


def test_seed_everything_is_reproducible(restore_torch_state):
    import random

    g1 = runtime.seed_everything(17, deterministic=True, threads=1)
    a = (torch.randn(5), np.random.rand(3), random.random(), torch.randn(3, generator=g1))
    assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
    g2 = runtime.seed_everything(17, deterministic=False)
    b = (torch.randn(5), np.random.rand(3), random.random(), torch.randn(3, generator=g2))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2] and torch.equal(a[3], b[3])
    runtime.seed_everything(18, deterministic=False)
    assert not torch.equal(torch.randn(5), a[0])
    for bad in (-1, 1.5, True):
        with pytest.raises(ParameterError, match="`seed`"):
            runtime.seed_everything(bad, deterministic=False)


def test_repo_root_is_found_from_anywhere(tmp_path, monkeypatch):
    expected = Path(__file__).resolve().parents[1]
    assert records.repo_root() == expected
    assert (expected / "_toc.yml").is_file() and (expected / "lib" / "ambridge").is_dir()
    monkeypatch.chdir(tmp_path)  # not inside the book: found from the library's own location
    assert records.repo_root() == expected


def test_run_record_has_the_keys_and_is_json_serialisable():
    rec = records.run_record({"beta": 2.0, "n": 3}, wall_time_s=1.23456, device="cpu", error=0.01, curve=[1, 2])
    assert set(rec) == {"parameters", "commit", "hardware", "wall_time_s", "created", "error", "curve"}
    assert rec["parameters"] == {"beta": 2.0, "n": 3} and rec["wall_time_s"] == 1.235 and rec["error"] == 0.01
    assert isinstance(rec["commit"], str) and rec["commit"]
    assert "torch" in rec["hardware"]
    assert time.strptime(rec["created"], "%Y-%m-%dT%H:%M:%SZ")
    assert json.loads(json.dumps(rec)) == rec
    with pytest.raises(TypeError):
        records.run_record({"x": torch.zeros(1)}, wall_time_s=0.0)


def test_stopwatch_measures_elapsed_time():
    with runtime.Stopwatch() as t:
        time.sleep(0.02)
    assert 0.015 < t.seconds < 2.0


# --- plotting -------------------------------------------------------------------------------------------------


@pytest.fixture
def figure():
    fig, ax = plt.subplots()
    yield fig, ax
    plt.close(fig)


def test_use_book_style_sets_the_palette_and_white_faces():
    with matplotlib.rc_context():
        plotting.use_book_style()
        assert matplotlib.rcParams["figure.facecolor"] == "white"
        colours = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
        assert colours == plotting.PALETTE


def test_energy_grid_evaluates_the_energy_on_the_grid():
    gx, gy, e = plotting.energy_grid(lambda x: (x**2).sum(-1), (-1, 1), (0, 2), resolution=5)
    assert gx.shape == gy.shape == e.shape == (5, 5)
    np.testing.assert_allclose(gx[0], np.linspace(-1, 1, 5))
    np.testing.assert_allclose(gy[:, 0], np.linspace(0, 2, 5))
    np.testing.assert_allclose(e, gx**2 + gy**2, rtol=1e-6)


def test_plot_landscape_and_plot_paths_draw(figure):
    fig, ax = figure
    with matplotlib.rc_context():
        plotting.use_book_style()
        mem = torch.tensor([[-1.0, 0.0], [1.0, 0.5]])
        cs = plotting.plot_landscape(
            ax, lambda x: ((x.unsqueeze(-2) - mem) ** 2).sum(-1).min(-1).values, (-2, 2), (-2, 2), resolution=30,
            memories=mem,
        )
        assert len(cs.levels) > 2
        assert len(fig.axes) == 2  # the colour bar
        assert ax.get_xlim() == (-2, 2) and ax.get_ylim() == (-2, 2)
        n_lines = len(ax.lines)
        paths = torch.randn(6, 4, 2)
        plotting.plot_paths(ax, paths)
        assert len(ax.lines) == n_lines + 4
        np.testing.assert_allclose(ax.lines[-1].get_xydata(), paths[:, 3].numpy())
        fig.canvas.draw()
        with pytest.raises(ValueError, match="paths"):
            plotting.plot_paths(ax, torch.randn(6, 4, 3))
        with pytest.raises(ValueError, match="paths"):
            plotting.plot_paths(ax, torch.randn(6, 2))


def test_publish_results_writes_only_under_the_runner(tmp_path, monkeypatch):
    from ambridge.book.records import RESULTS_ENV, publish_results

    monkeypatch.delenv(RESULTS_ENV, raising=False)
    assert publish_results(a=np.float64(1.5)) == {"a": 1.5}  # no file anywhere
    target = tmp_path / "r.json"
    monkeypatch.setenv(RESULTS_ENV, str(target))
    publish_results(a=1.5, name="x")
    publish_results(b=torch.tensor(2))
    assert json.loads(target.read_text()) == {"a": 1.5, "b": 2, "name": "x"}
    with pytest.raises(TypeError, match="result `c`"):
        publish_results(c=[1, 2])


def test_git_commit_falls_back_to_the_commit_given_for_a_copy_without_history(monkeypatch):
    import subprocess as sp

    from ambridge.book import records

    sha = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setattr(records.subprocess, "run", lambda *a, **k: sp.CompletedProcess(a, 128, "HEAD\n", ""))
    monkeypatch.delenv(records.COMMIT_ENV, raising=False)
    assert records.git_commit() == "unknown"
    monkeypatch.setenv(records.COMMIT_ENV, sha)
    assert records.git_commit() == f"{sha} (given)"
    monkeypatch.setenv(records.COMMIT_ENV, "main")
    with pytest.raises(ValueError, match="AMBRIDGE_COMMIT"):
        records.git_commit()
