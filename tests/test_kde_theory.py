"""ambridge.kde.theory: Ramsauer et al.'s bound and its worked constants, the separation and the retrieval-error
bound against brute force and actual mean-shift steps, and the typical-pattern theory against direct integration,
arbitrary-precision Bessel functions, and the values of the implementation it replaced."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import gammaln, lambertw

from ambridge import data as amdata
from ambridge import dynamics, kde
from ambridge.checks import ParameterError

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
        (lambda: kde.alpha_one(-1.0), "lam"),
        (lambda: kde.mean_field_log_capacity(1.0, 10, eps=1.0), "eps"),
        (lambda: kde.separation(torch.ones(1, 3)), "patterns"),
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


# ------------------------------------------------------------------------------------------------- theory
@pytest.mark.parametrize("d", [3, 6, 20, 64])
@pytest.mark.parametrize("kappa", [0.3, 4.0, 40.0])
def test_crosstalk_and_mean_cosine_match_direct_integration(d, kappa):
    """u = cosine of two uniform points on S^{d−1} has density ∝ (1 − u²)^{(d−3)/2}."""
    log_c = gammaln(d / 2) - gammaln((d - 1) / 2) - 0.5 * math.log(math.pi)
    dens = lambda u: math.exp(log_c) * (1 - u * u) ** ((d - 3) / 2)  # noqa: E731
    z = integrate.quad(lambda u: dens(u) * math.exp(kappa * (u - 1)), -1, 1, limit=200, epsabs=0, epsrel=1e-11)[0]
    m = integrate.quad(lambda u: dens(u) * u * math.exp(kappa * (u - 1)), -1, 1, limit=200, epsabs=0,
                       epsrel=1e-11)[0] / z
    assert float(kde.log_crosstalk(kappa, d)) == pytest.approx(math.log(z), abs=1e-7)
    assert float(kde.mean_cosine(kappa, d)) == pytest.approx(m, abs=1e-7)


def _crosstalk_and_mean_cosine_mpmath(kappa: float, d: int) -> tuple[float, float]:
    """ln E[exp(κ(u − 1))] = ln Γ(d/2) + (d/2 − 1) ln(2/κ) + ln I_{d/2−1}(κ) − κ and A_d = I_{d/2}/I_{d/2−1}, at 40
    digits (mpmath's Bessel functions: independent of SciPy's ive and of any expansion)."""
    with mpmath.workdps(40):
        k, nu = mpmath.mpf(kappa), mpmath.mpf(d) / 2 - 1
        i_nu, i_next = mpmath.besseli(nu, k), mpmath.besseli(nu + 1, k)
        log_ct = mpmath.loggamma(mpmath.mpf(d) / 2) + nu * mpmath.log(2 / k) + mpmath.log(i_nu) - k
        return float(log_ct), float(i_next / i_nu)


@pytest.mark.parametrize("d", [2, 3, 5, 16, 64, 256, 1024])
def test_crosstalk_and_mean_cosine_agree_with_arbitrary_precision_from_d_2_to_1024(d):
    """The call sites kde.log_crosstalk / kde.mean_cosine, now on ambridge.special, over the κ the chapter reaches
    (κ = λd·a with λ up to ~8, and the fixed-bandwidth κ = 8) and far beyond: the regimes where ive has the digits,
    where it underflows (d in the hundreds against small κ: the expansions), and d = 2 (I_0)."""
    kappas = np.array([0.05, 0.7, 8.0, 0.3 * d, 1.0 * d, 4.0 * d])
    got_ct, got_mc = kde.log_crosstalk(kappas, d), kde.mean_cosine(kappas, d)
    for k, ct, mc in zip(kappas, got_ct, got_mc):
        ref_ct, ref_mc = _crosstalk_and_mean_cosine_mpmath(float(k), d)
        assert ct == pytest.approx(ref_ct, rel=1e-11, abs=1e-11), (k, d)
        assert mc == pytest.approx(ref_mc, rel=1e-11), (k, d)


def test_crosstalk_large_order_stays_finite_and_monotone():
    """Where scipy's ive underflows (d large against κ) the expansions take over without a jump."""
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


# (λ, d, ε, ln N½) produced by the pre-refactor implementation at commit cc25826 (ambridge/kde.py with its own
# Bessel code: scipy's ive, and a two-term Debye expansion where ive underflows), before it was replaced by
# ambridge.special. They cover the settings chapter 5 evaluates (λ = 1, the paper preset's λ = 1/1.8², the fixed
# bandwidth σ = 0.35·M, the ε variants, the d → ∞ ceiling at d = 8192) and the edges d = 2, 3.
PRE_REFACTOR_LOG_CAPACITY = [
    (1.0, 8, 0.1, 3.526798127635222),
    (1.0, 16, 0.1, 8.157459221220591),
    (1.0, 64, 0.1, 36.61116199795795),
    (1.0, 512, 0.1, 313.37377372602157),
    (0.30864197530864196, 16, 0.1, 1.9916835443405547),
    (0.30864197530864196, 72, 0.1, 15.56219554762385),
    (0.30864197530864196, 48, 0.05, 9.481226871044157),
    (0.2551020408163266, 32, 0.1, 4.605100392056993),
    (0.0009765625, 8192, 0.1, 5.000588400285014),
    (0.5, 2048, 0.1, 785.712950328079),
    (0.5, 256, 0.2, 94.29035015249177),
    (1.5625, 12, 0.1, 8.365837817279102),
    (0.25, 12, 0.1, 0.4796208099344833),
    (1.0, 2, 0.1, 0.24515304365880689),
    (2.0, 3, 0.1, 2.5403882532853794),
]


@pytest.mark.parametrize("lam, d, eps, expected", PRE_REFACTOR_LOG_CAPACITY)
def test_mean_field_log_capacity_is_unchanged_by_the_move_to_ambridge_special(lam, d, eps, expected):
    """The saddle-node capacity moved from kde's own Bessel code to ambridge.special (more terms in its Debye
    expansion): its values move by less than 1e-9 relative (measured: at most 2e-12, at d = 8192)."""
    assert kde.mean_field_log_capacity(lam, d, eps=eps) == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------------- the fixed-bandwidth ceiling
@pytest.mark.parametrize("kappa, eps", [(1 / 0.35**2, 0.1), (8.0, 0.1), (20.0, 0.1), (20.0, 0.3), (3.0, 0.2),
                                        (50.0, 0.05), (4.5, 0.4)])
def test_fixed_bandwidth_ceiling_is_the_maximum_over_the_retrieval_window(kappa, eps):
    """The closed form against a brute-force maximum of κa + ln((1 − a)/a) over a fine grid of a in [1 − ε, 1)."""
    a = np.linspace(1 - eps, 1 - 1e-9, 2_000_001)
    brute = float(np.max(kappa * a + np.log1p(-a) - np.log(a)))
    assert kde.fixed_bandwidth_log_ceiling(kappa, eps=eps) == pytest.approx(brute, abs=1e-9)


def test_fixed_bandwidth_ceiling_at_the_chapter_setting_and_not_e_to_the_kappa():
    """σ = 0.35·M, ε = 0.1: the bracket peaks below 1 − ε, so the ceiling is κ(1 − ε) + ln(ε/(1 − ε)) ≈ ln 172,
    about twenty times below e^κ ≈ 3510."""
    kappa = 1 / 0.35**2
    ceiling = kde.fixed_bandwidth_log_ceiling(kappa, eps=0.1)
    assert ceiling == pytest.approx(0.9 * kappa + math.log(0.1 / 0.9), rel=1e-14)
    assert round(math.exp(ceiling)) == 172 and round(math.exp(kappa)) == 3510


def test_the_saddle_node_capacity_rises_to_the_fixed_bandwidth_ceiling():
    """At fixed κ the finite-d theory (an independent computation: Bessel ratios, bisection in ln N) reaches the
    closed-form limit as d → ∞ — climbing to it from below at the chapter's κ (at a small κ ≤ 4 it comes from above)."""
    for kappa, eps, rises in [(8.0, 0.1, True), (1 / 0.35**2, 0.1, True), (3.0, 0.2, False)]:
        ceiling = kde.fixed_bandwidth_log_ceiling(kappa, eps=eps)
        values = [kde.mean_field_log_capacity(kappa / d, d, eps=eps) for d in (16, 256, 4096, 1_000_000)]
        assert values[-1] == pytest.approx(ceiling, abs=1e-4)
        if rises:
            assert values[0] < values[1] < values[2] < values[3] <= ceiling + 1e-6


@pytest.mark.parametrize("kappa, eps", [(0.0, 0.1), (-1.0, 0.1), (8.0, 0.0), (8.0, 1.0)])
def test_fixed_bandwidth_ceiling_refuses_bad_values(kappa, eps):
    with pytest.raises(ParameterError):
        kde.fixed_bandwidth_log_ceiling(kappa, eps=eps)
