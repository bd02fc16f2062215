"""Special functions of the sphere (ambridge.special) against independent numerical integrals and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import mpmath
from scipy.special import iv

from ambridge import special


def _log_mean_exp_cosine_by_quadrature(kappa: float, p: int) -> float:
    """log E[exp(κu)]: the cosine u of two uniform points of S^{p−1} has density ∝ (1 − u²)^{(p−3)/2} on [−1, 1];
    the integral by mpmath at 30 digits (no Bessel function involved)."""
    with mpmath.workdps(30):
        w = lambda u: (1 - u * u) ** (mpmath.mpf(p - 3) / 2)  # noqa: E731
        num = mpmath.quad(lambda u: mpmath.exp(kappa * (u - 1)) * w(u), [-1, 0, 1 - 1 / (kappa + 1), 1])
        return float(mpmath.log(num / mpmath.quad(w, [-1, 1]))) + kappa


@pytest.mark.parametrize("p", [3, 4, 8, 20])
@pytest.mark.parametrize("kappa", [0.0, 0.3, 2.0, 15.0, 60.0])
def test_log_mean_exp_cosine_equals_the_integral_over_the_sphere(kappa, p):
    got = special.log_mean_exp_cosine(kappa, p)
    assert abs(float(got) - _log_mean_exp_cosine_by_quadrature(kappa, p)) < 1e-8 * max(1.0, kappa)


@pytest.mark.parametrize("nu, x", [(0.0, 0.5), (1.5, 3.0), (10.0, 40.0), (49.0, 7.0)])
def test_log_bessel_iv_matches_scipy_where_scipy_has_the_digits(nu, x):
    assert abs(special.log_bessel_iv(nu, x) - math.log(iv(nu, x))) < 1e-12 * max(1.0, abs(math.log(iv(nu, x))))


def test_log_bessel_iv_is_finite_where_scipy_underflows_and_continuous_across_the_switch():
    nu = 500.0
    xs = np.geomspace(1e-3, 2e3, 400)
    out = special.log_bessel_iv(nu, xs)
    assert np.all(np.isfinite(out)) and np.all(np.diff(out) > 0)  # I_ν increases in x
    with mpmath.workdps(40):  # every regime (series, ive, Debye) against arbitrary precision
        ref = np.array([float(mpmath.log(mpmath.besseli(nu, mpmath.mpf(x)))) for x in xs[::20]])
    np.testing.assert_allclose(out[::20], ref, rtol=1e-11)


@pytest.mark.parametrize("p", [2, 3, 16, 1024])
def test_vmf_normaliser_integrates_to_one_and_its_derivative_is_minus_the_mean_resultant(p):
    kappa = torch.tensor([0.5, 5.0, 80.0], dtype=torch.float64, requires_grad=True)
    log_c = special.log_vmf_normaliser(kappa, p)
    (grad,) = torch.autograd.grad(log_c.sum(), kappa)
    a = special.vmf_mean_resultant_length(kappa.detach(), p)
    torch.testing.assert_close(grad, -a, rtol=1e-10, atol=0)
    # C_p(κ) · |S^{p−1}| · E_uniform[exp(κu)] = 1
    total = log_c.detach().numpy() + special.log_sphere_area(p) + special.log_mean_exp_cosine(kappa.detach().numpy(), p)
    np.testing.assert_allclose(total, 0.0, atol=1e-10)
    # the area: |S^1| = 2π, |S^2| = 4π
    assert math.isclose(math.exp(special.log_sphere_area(2)), 2 * math.pi)
    assert math.isclose(math.exp(special.log_sphere_area(3)), 4 * math.pi)
    assert special.vmf_mean_resultant_length(0.0, p) == 0.0
    assert math.isclose(special.log_vmf_normaliser(0.0, p), -special.log_sphere_area(p))


def test_bad_dimension_and_concentration_are_errors_naming_them():
    with pytest.raises(ValueError, match="dim"):
        special.log_vmf_normaliser(1.0, 1)
    with pytest.raises(ValueError, match="kappa"):
        special.vmf_mean_resultant_length(-1.0, 3)
