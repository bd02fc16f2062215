"""The KDE capacity module (ambridge.kde): Ramsauer et al.'s bound and its worked constants, the separation and the
retrieval-error bound against brute force and actual mean-shift steps, the typical-pattern theory against direct
integration, the capacity sweep (monotone in N, resumable, half precision checked), and mode counting on cases
with a known answer.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import gammaln, lambertw

from ambridge import data as amdata
from ambridge import dynamics, kde
from ambridge.runtime import ParameterError

F64 = torch.float64



# ------------------------------------------------------------------------------------------------- the bound
@pytest.mark.parametrize(
    "beta, K, d, p, c_paper",
    [(1.0, 3.0, 20, 0.001, 3.1546), (1.0, 1.0, 75, 0.001, 1.3718)],
)
def test_ramsauer_worked_constants(beta, K, d, p, c_paper):
    """Ramsauer et al. print c ≥ 3.1546 and c ≥ 1.3718 for these settings (truncated to four decimals)."""
    bound = kde.ramsauer_bound(beta, K, d, p)
    assert c_paper <= bound.c < c_paper + 1e-4
    assert bound.valid  # both examples satisfy the theorem's condition
    # independent formula, written out
    a = 2 / (d - 1) * (1 + math.log(2 * beta * K**2 * p * (d - 1)))
    b = 2 * K**2 * beta / 5
    assert bound.c == pytest.approx(b / lambertw(math.exp(a + math.log(b)), 0).real, rel=1e-12)
    assert bound.n_patterns == pytest.approx(math.sqrt(p) * bound.c ** ((d - 1) / 4), rel=1e-12)


def test_bound_validity_condition():
    """c ≥ (2/√p)^{4/(d−1)}: small βK² (wide kernels) fail it, and a fixed bandwidth fails it at every large d."""
    b = kde.ramsauer_bound(1.0, 3.0, 20, 0.001)
    assert b.c_min == pytest.approx((2 / math.sqrt(0.001)) ** (4 / 19), rel=1e-12)
    assert not kde.ramsauer_bound(0.05, 1.0, 20, 0.001).valid
    # KDE with a fixed bandwidth: βK² = M²/(σ²(d−1)) → 0, c → 1, and c < c_min for all d here
    assert not any(kde.kde_bound(0.5, 1.0, d, 0.01).valid for d in range(3, 400))
    # scaled bandwidth σ = M/√d: βK² = d/(d−1), valid from some d on, and stays valid
    valid = [kde.kde_bound(kde.scaled_bandwidth(1.0, 1.0, d), 1.0, d, 0.05).valid for d in range(3, 200)]
    first = valid.index(True)
    assert first > 0 and all(valid[first:])


def test_kde_bound_maps_bandwidth_to_beta_k():
    """The bound only sees βK² = M²/(σ²(d−1)), d and p."""
    d, m, s = 30, 2.0, 0.3
    via_kde = kde.kde_bound(s, m, d, 0.01)
    direct = kde.ramsauer_bound(1 / s**2, m / math.sqrt(d - 1), d, 0.01)
    other = kde.ramsauer_bound(1.0, math.sqrt(m**2 / (s**2 * (d - 1))), d, 0.01)
    assert via_kde.c == pytest.approx(direct.c) == pytest.approx(other.c)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: kde.ramsauer_bound(0.0, 1.0, 10, 0.1), "beta"),
        (lambda: kde.ramsauer_bound(1.0, 1.0, 1, 0.1), "dim"),
        (lambda: kde.ramsauer_bound(1.0, 1.0, 10, 1.5), "p"),
        (lambda: kde.ramsauer_bound(1.0, -1.0, 10, 0.1), "K"),
        (lambda: kde.kde_bound(-0.1, 1.0, 10, 0.1), "bandwidth"),
        (lambda: kde.CapacitySweep(dims=(8,), precision="float8"), "precision"),
        (lambda: kde.CapacitySweep(dims=(1,)), "dims"),
        (lambda: kde.CapacitySweep(n_min=16, n_max=8), "n_max"),
    ],
)
def test_bad_parameters_raise_a_clear_error(call, name):
    with pytest.raises(ParameterError, match=rf"parameter `{name}` ="):
        call()


# ------------------------------------------------------------------------------ separation and error bound
def test_separation_matches_brute_force_and_half_min_distance():
    gen = torch.Generator().manual_seed(1)
    x = amdata.sphere_points(300, 7, radius=2.0, generator=gen, dtype=F64)
    delta = kde.separation(x, chunk=64)  # several chunks
    gram = (x @ x.T).numpy()
    brute = np.array([gram[i, i] - np.max(np.delete(gram[i], i)) for i in range(len(x))])
    np.testing.assert_allclose(delta.numpy(), brute, rtol=0, atol=1e-12)
    d2 = torch.cdist(x, x).pow(2) + torch.diag(torch.full((300,), math.inf, dtype=F64))
    np.testing.assert_allclose(delta.numpy(), 0.5 * d2.min(dim=1).values.numpy(), atol=1e-10)


def test_separation_off_the_sphere_is_not_half_the_distance():
    x = torch.tensor([[1.0, 0.0], [0.0, 3.0], [0.5, 0.5]], dtype=F64)
    gram = x @ x.T
    assert kde.separation(x)[1].item() == pytest.approx(9.0 - max(gram[1, 0], gram[1, 2]).item())


@pytest.mark.parametrize("beta", [5.0, 20.0, 80.0])
def test_retrieval_error_bound_holds_for_one_step_from_the_ball(beta):
    """‖f(ξ) − x_i‖ ≤ 2e(N−1)M exp(−βΔ_i) for every start with ‖ξ − x_i‖ ≤ 1/(2βM) — on and off the sphere."""
    gen = torch.Generator().manual_seed(2)
    for x in (amdata.sphere_points(200, 10, generator=gen, dtype=F64),
              torch.randn(200, 10, generator=gen, dtype=F64) / 3):
        big_m = x.norm(dim=-1).max().item()
        bound = kde.retrieval_error_bound(x, beta)
        for radius in (0.0, 1 / (2 * beta * big_m)):
            start = kde.perturb(x, radius, generator=gen)
            err = kde.one_step_error(start, x, beta)
            assert bool((err <= bound * (1 + 1e-9)).all()), float((err / bound).max())
            # the bound is not slack everywhere: the worst pattern uses a fair share of it
            assert float((err / bound).max()) > 1e-3
    # on the sphere the Hopfield update is the mean-shift step with σ = β^{-1/2}
    x = amdata.sphere_points(100, 10, generator=gen, dtype=F64)
    assert torch.allclose(dynamics.mean_shift_step(x, x, beta**-0.5, method="exact"),
                          dynamics.hopfield_update(x, x, beta, method="exact"), atol=1e-12)


def test_one_step_error_is_the_step_minus_the_pattern():
    gen = torch.Generator().manual_seed(9)
    x = amdata.sphere_points(60, 8, generator=gen, dtype=F64)
    start = kde.perturb(x, 0.05, generator=gen)
    direct = (dynamics.hopfield_update(start, x, 4.0, method="exact") - x).norm(dim=-1)
    assert torch.allclose(kde.one_step_error(start, x, 4.0), direct, rtol=1e-10, atol=1e-14)
    tiny = kde.one_step_error(x, x, 400.0)  # far below float64 rounding of x_i, and still positive
    assert bool((tiny > 0).all()) and float(tiny.max()) < 1e-18


def test_sphere_sample_is_on_the_sphere():
    x = kde.sphere_sample(5000, 8, radius=2.0, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and torch.allclose(x.norm(dim=-1), torch.full((5000,), 2.0), atol=1e-6)


def test_perturb_moves_by_exactly_the_distance():
    gen = torch.Generator().manual_seed(3)
    x = amdata.sphere_points(50, 5, generator=gen, dtype=F64)
    y = kde.perturb(x, 0.3, generator=gen)
    assert torch.allclose((y - x).norm(dim=-1), torch.full((50,), 0.3, dtype=F64))
    assert torch.equal(kde.perturb(x, 0.0), x)


# ------------------------------------------------------------------------------------------------- theory
@pytest.mark.parametrize("d", [3, 6, 20, 64])
@pytest.mark.parametrize("kappa", [0.3, 4.0, 40.0])
def test_crosstalk_and_mean_cosine_match_direct_integration(d, kappa):
    """u = cosine of two uniform points on S^{d−1} has density ∝ (1 − u²)^{(d−3)/2}."""
    log_c = gammaln(d / 2) - gammaln((d - 1) / 2) - 0.5 * math.log(math.pi)
    dens = lambda u: math.exp(log_c) * (1 - u * u) ** ((d - 3) / 2)
    z = integrate.quad(lambda u: dens(u) * math.exp(kappa * (u - 1)), -1, 1, limit=200, epsabs=0, epsrel=1e-11)[0]
    m = integrate.quad(lambda u: dens(u) * u * math.exp(kappa * (u - 1)), -1, 1, limit=200, epsabs=0,
                       epsrel=1e-11)[0] / z
    assert float(kde.log_crosstalk(kappa, d)) == pytest.approx(math.log(z), abs=1e-7)
    assert float(kde.mean_cosine(kappa, d)) == pytest.approx(m, abs=1e-7)


def test_crosstalk_large_order_stays_finite_and_monotone():
    """Where scipy's ive underflows (d large against κ) the Debye expansion takes over without a jump."""
    ks = np.geomspace(0.05, 400, 200)
    for d in (500, 2000):
        lc = kde.log_crosstalk(ks, d)
        assert np.all(np.isfinite(lc)) and np.all(np.diff(lc) < 0)  # E[exp(κ(u − 1))] falls with κ
        # small κ: ln E[exp(κu)] ≈ κ²/(2d), so log_crosstalk ≈ −κ + κ²/(2d)
        assert float(kde.log_crosstalk(0.05, d)) == pytest.approx(-0.05 + 0.05**2 / (2 * d), abs=1e-6)


def test_alpha_one_limits_and_mean_field_convergence():
    lam = np.array([0.1, 1.0, 30.0])
    a = kde.alpha_one(lam)
    assert np.all(np.diff(a) > 0)
    assert float(kde.alpha_one(1e4)) == pytest.approx(0.5 + 0.5 * math.log(1e4), abs=1e-3)  # large λ
    assert float(kde.alpha_one(1e-3)) == pytest.approx(1e-3, rel=1e-2)  # small λ: u* ≈ λ, α₁ ≈ λ
    # the finite-d saddle-node estimate approaches α₁ from below as d grows
    rates = [kde.mean_field_log_capacity(0.5, d) / d for d in (32, 256, 2048)]
    assert rates[0] < rates[1] < rates[2] < float(kde.alpha_one(0.5)) + 1e-3
    assert rates[2] == pytest.approx(float(kde.alpha_one(0.5)), abs=0.01)
    with pytest.raises(ValueError):
        kde.alpha_one(-1.0)


# ------------------------------------------------------------------------------------------------ retrieval
def test_converge_matches_iterate_to_fixed_point():
    gen = torch.Generator().manual_seed(4)
    x = amdata.sphere_points(40, 6, generator=gen, dtype=F64)
    starts = kde.perturb(x[:25], 0.4, generator=gen)
    step = lambda v: dynamics.mean_shift_step(v, x, 0.45)
    ours = kde.converge(step, starts, max_iter=300, tol=1e-9, chunk=7)
    ref = dynamics.iterate_to_fixed_point(step, starts, max_iter=300, tol=1e-9)
    assert torch.allclose(ours.state, ref.state, atol=1e-12)
    assert bool(ours.converged.all()) and int(ours.n_iter.max()) == ref.n_iter


def test_nearest_index_matches_cdist():
    gen = torch.Generator().manual_seed(5)
    data = torch.randn(1000, 9, generator=gen)
    q = torch.randn(77, 9, generator=gen)
    assert torch.equal(kde.nearest_index(q, data, chunk=128), torch.cdist(q, data).argmin(dim=-1))


def test_retrieve_succeeds_when_separated_and_fails_when_crowded():
    gen = torch.Generator().manual_seed(6)
    x = amdata.sphere_points(64, 16, generator=gen)
    idx = torch.arange(64)
    sharp = kde.retrieve(x, 0.1, idx, kde.perturb(x, 0.05, generator=gen), eps=0.05)
    assert bool(sharp.success.all())
    broad = kde.retrieve(x, 1.5, idx, x.clone(), eps=0.05)  # one broad bump: everything flows to the centre
    assert not bool(broad.success.any())
    # two points closer than the kernel merge: neither is retrieved
    pair = torch.tensor([[1.0, 0.0], [0.9, math.sqrt(1 - 0.81)]])
    assert not bool(kde.retrieve(pair, 0.5, torch.arange(2), pair.clone(), eps=0.01).success.any())


def test_explicit_reference_path_matches_the_fused_one():
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(300, 12, generator=gen, dtype=F64) * 0.5  # off the sphere: the bias matters
    idx = torch.arange(0, 300, 3)
    starts = kde.perturb(x[idx], 0.1, generator=gen)
    fused = kde.retrieve(x, 0.5, idx, starts, eps=0.1, tol=1e-10)
    explicit = kde.retrieve(x, 0.5, idx, starts, eps=0.1, tol=1e-10, method="explicit", chunk=17)
    assert torch.equal(fused.success, explicit.success) and fused.success.any() and not fused.success.all()
    assert torch.allclose(fused.distance, explicit.distance, atol=1e-9)
    with pytest.raises(ValueError, match="method"):
        kde.retrieve(x, 0.3, idx, starts, eps=0.1, method="naive")
    # on a sphere the mask-free form is the same step
    y = amdata.sphere_points(300, 12, generator=gen, dtype=F64)
    ys = kde.perturb(y[idx], 0.1, generator=gen)
    a = kde.retrieve(y, 0.3, idx, ys, eps=0.1, tol=1e-10)
    b = kde.retrieve(y, 0.3, idx, ys, eps=0.1, tol=1e-10, method="sphere")
    assert torch.equal(a.success, b.success) and torch.allclose(a.distance, b.distance, atol=1e-9)


def test_time_limit_stops_early():
    sweep = kde.CapacitySweep(dims=(8, 12), bandwidth_scale=1.0, n_seeds=1, n_queries=16)
    assert kde.run_sweep(sweep, time_limit=0.0) == []


def test_capacity_search_is_monotone_on_a_tiny_case(tmp_path):
    """Success falls with N, N½ grows with d, and a checkpointed sweep resumes without recomputing."""
    sweep = kde.CapacitySweep(dims=(8, 12), bandwidth_scale=1.0, n_seeds=2, n_min=4, n_queries=64, max_iter=60)
    ck = tmp_path / "sweep.jsonl"
    records = kde.run_sweep(sweep, checkpoint=ck)
    for d in sweep.dims:
        mean = [np.mean([r["fraction"] for r in records if r["d"] == d and r["N"] == n])
                for n in sorted({r["N"] for r in records if r["d"] == d})]
        assert mean[0] > 0.5 and mean[-1] < sweep.stop_below  # the grid brackets the drop
        assert mean[0] - mean[-1] > 0.5
    caps = kde.capacities(records, 0.05)
    half = {d: np.mean([c["n_half"] for c in caps if c["d"] == d]) for d in sweep.dims}
    assert half[12] > 2 * half[8]
    lines = ck.read_text().splitlines()
    assert len(lines) == len(records)
    again = kde.run_sweep(sweep, checkpoint=ck)
    assert again == records and len(ck.read_text().splitlines()) == len(lines)  # nothing recomputed
    changed = kde.run_sweep(kde.CapacitySweep(dims=(8,), bandwidth_scale=1.0, n_seeds=1, n_min=4, n_queries=64,
                                              max_iter=60, eps=0.2), checkpoint=ck)
    assert len(ck.read_text().splitlines()) == len(lines) + len(changed)  # another experiment: not reused


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


def test_command_line_writes_a_run_record(tmp_path):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(
        "seed: 0\nbandwidth_scale: 1.0\nsweep_d_min: 6\nsweep_d_max: 8\nsweep_d_step: 2\nsweep_seeds: 1\n"
        "sweep_n_max: 4096\nsweep_growth: 1.4142\nsweep_queries: 32\nnoise: 0.1\neps: 0.1\nmax_iter: 50\np_fail: 0.05\n"
        "precision: auto  # float32 on a CPU\nchunk: 4096\ncheck_queries: 0\n"
    )
    out = tmp_path / "out.json"
    assert kde.main(["--preset", str(preset), "--device", "cpu", "--out", str(out), "--set", "sweep_d_max=6"]) == 0
    record = json.loads(out.read_text())
    assert {"parameters", "commit", "hardware", "wall_time_s", "records", "capacities"} <= set(record)
    assert {r["d"] for r in record["records"]} == {6}
    with pytest.raises(ParameterError, match="must set"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("seed: 0\n")
        kde.main(["--preset", str(bad), "--device", "cpu", "--out", str(out)])


# ---------------------------------------------------------------------------------------------------- modes
def test_two_point_modes_merge_at_twice_the_bandwidth():
    """Two equal Gaussian bumps at distance D are bimodal exactly when D > 2h."""
    h = 0.3
    assert kde.kde_modes_1d([0.0, 2 * h * 1.02], h).size == 2
    assert kde.kde_modes_1d([0.0, 2 * h * 0.98], h).size == 1


def test_modes_of_separated_clusters_and_positions():
    pts = np.array([-10.0, 0.0, 0.05, 7.0, 30.0])  # 0 and 0.05 merge at h = 0.2; the rest are isolated
    modes = kde.kde_modes_1d(pts, 0.2)
    assert modes.size == 4
    np.testing.assert_allclose(modes[[0, 2, 3]], [-10.0, 7.0, 30.0], atol=1e-3)
    assert modes[1] == pytest.approx(0.025, abs=1e-3)


def test_mode_count_does_not_depend_on_the_grid():
    x = np.random.default_rng(7).standard_normal(3000)
    for beta in (100.0, 3000.0):
        counts = {kde.kde_modes_1d(x, beta**-0.5, resolution=r).size for r in (10, 20, 80)}
        assert len(counts) == 1


def test_retained_fraction_and_bandwidth_rules():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(200, 3, generator=gen, dtype=F64)
    assert kde.retained_fraction(x, 0.01) == 1.0  # tiny kernels: every point is its own mode
    assert kde.retained_fraction(x, 10.0) == pytest.approx(1 / 200)  # one broad mode, owned by one point
    sd = float(x.std(dim=0).mean())
    assert kde.scott_bandwidth(x) == pytest.approx(sd * 200 ** (-1 / 7))
    assert kde.silverman_bandwidth(x) == pytest.approx(sd * (4 / (5 * 200)) ** (1 / 7))
