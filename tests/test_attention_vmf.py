"""The von Mises–Fisher distribution (ambridge.attention.vmf) and the special functions it re-exports.

References are independent of the library: mpmath's Bessel function, numerical integration over the sphere,
``scipy.stats.vonmises_fisher.logpdf``, closed forms in p = 3, autograd and finite differences.
"""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import gammaln
from scipy.stats import vonmises_fisher

from ambridge import attention as att
from ambridge import special
from ambridge.data import sphere_points

F64 = torch.float64


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=-1, keepdim=True)


# --- Bessel function and normaliser ---------------------------------------------------------------------------


def _mp_log_iv(nu, x):
    mpmath.mp.dps = 40
    return float(mpmath.log(mpmath.besseli(nu, x, maxterms=10**6)))


@pytest.mark.parametrize("nu", [0, 0.5, 1, 3.5, 10, 49, 99.5, 150, 499, 1999.5])
def test_log_bessel_matches_mpmath_over_many_decades(nu):
    xs = np.array([1e-300, 1e-10, 1e-3, 0.5, 1, 10, 100, 1e3, 1e5, 1e8])
    got = att.log_bessel_iv(nu, xs)
    ref = np.array([_mp_log_iv(nu, x) for x in xs])
    assert np.all(np.isfinite(got))
    assert np.max(np.abs(got - ref) / np.maximum(1, np.abs(ref))) < 1e-12


def test_log_bessel_is_continuous_where_the_method_switches():
    """Series / ive / Debye hand over at x² = 0.04(ν+1) and where ive underflows: no jump there."""
    for nu in [150.0, 300.0, 1000.0]:
        xs = np.geomspace(1e-2, 3 * nu, 4000)
        values = att.log_bessel_iv(nu, xs)
        ref = np.array([_mp_log_iv(nu, x) for x in xs[::97]])
        assert np.max(np.abs(values[::97] - ref) / np.maximum(1, np.abs(ref))) < 1e-12
        slope = np.diff(values) / np.diff(np.log(xs))  # d log I / d log x is smooth and increasing
        assert np.all(np.diff(slope) > -1e-6)


def test_bessel_at_zero_and_bad_input():
    assert att.log_bessel_iv(0, 0.0) == 0.0
    assert att.log_bessel_iv(2, 0.0) == -np.inf
    with pytest.raises(ValueError):
        att.log_bessel_iv(-1, 1.0)
    with pytest.raises(ValueError):
        att.log_bessel_iv(1, -1.0)


def test_normaliser_three_dimensions_closed_form():
    kappa = np.array([1e-6, 0.3, 1.0, 7.0, 50.0, 700.0])
    expected = np.log(kappa) - np.log(4 * np.pi) - (kappa + np.log(-np.expm1(-2 * kappa)) - np.log(2))  # log sinh κ
    assert np.allclose(att.log_vmf_normaliser(kappa, 3), expected, rtol=1e-12, atol=1e-12)
    assert math.isclose(att.log_vmf_normaliser(0.0, 3), -math.log(4 * math.pi), rel_tol=1e-14)


@pytest.mark.parametrize("p", [2, 3, 5, 16])
@pytest.mark.parametrize("kappa", [0.0, 0.5, 5.0, 50.0])
def test_density_integrates_to_one(p, kappa):
    """∫_{S^{p−1}} C_p(κ) e^{κ mᵀx} dx = |S^{p−2}| ∫_{−1}^{1} C_p(κ) e^{κt} (1 − t²)^{(p−3)/2} dt = 1."""
    log_area_below = math.log(2) + ((p - 1) / 2) * math.log(math.pi) - gammaln((p - 1) / 2)  # |S^{p−2}|
    log_c = att.log_vmf_normaliser(kappa, p)
    integrand = lambda t: math.exp(log_c + log_area_below + kappa * t) * (1 - t * t) ** ((p - 3) / 2)
    value, _ = integrate.quad(integrand, -1, 1, limit=200, points=[1 - 1 / (kappa + 1)])
    assert abs(value - 1) < 1e-8


@pytest.mark.parametrize("p", [3, 8, 64])
def test_log_density_matches_scipy(p):
    rng = np.random.default_rng(p)
    mu = rng.normal(size=p)
    mu /= np.linalg.norm(mu)
    x = rng.normal(size=(20, p))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for kappa in [0.1, 3.0, 40.0]:
        ref = vonmises_fisher(mu, kappa).logpdf(x)
        got = att.vmf_log_density(torch.tensor(x), torch.tensor(mu), kappa).numpy()
        assert np.allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_normaliser_stays_finite_where_scipy_does_not():
    """p = 1000, κ = 1: SciPy's logpdf returns inf (ive underflows); the library agrees with mpmath."""
    p, kappa = 1000, 1.0
    with np.errstate(all="ignore"):
        mu = np.eye(p)[0]
        scipy_value = vonmises_fisher(mu, kappa).logpdf(mu)
    mpmath.mp.dps = 40
    nu = p / 2 - 1
    ref = nu * math.log(kappa) - (p / 2) * math.log(2 * math.pi) - _mp_log_iv(nu, kappa)
    got = att.log_vmf_normaliser(kappa, p)
    assert not np.isfinite(scipy_value) or abs(scipy_value - got - kappa) < 1e-6
    assert abs(got - ref) < 1e-10 * abs(ref)
    assert np.all(np.isfinite(att.log_vmf_normaliser(np.array([1e-12, 1.0, 1e4, 1e12]), 20_000)))


def test_normaliser_gradient_is_minus_mean_resultant_length():
    kappa = torch.tensor([0.05, 0.7, 4.0, 30.0, 300.0], dtype=F64, requires_grad=True)
    for p in [2, 3, 10, 400]:
        assert torch.autograd.gradcheck(lambda k: att.log_vmf_normaliser(k, p), (kappa,), eps=1e-6, atol=1e-7)


def test_mean_resultant_length_matches_samples():
    gen = torch.Generator().manual_seed(0)
    p = 6
    for kappa in [0.5, 4.0, 40.0]:
        m = _unit(torch.randn(1, p, generator=gen, dtype=F64)).expand(20_000, p)
        x = att.sample_vmf(m, kappa, generator=gen)
        assert torch.allclose(x.norm(dim=-1), torch.ones(len(x), dtype=F64))
        mean_cos = (x * m).sum(-1).mean().item()
        assert abs(mean_cos - att.vmf_mean_resultant_length(kappa, p)) < 4 * 0.5 / math.sqrt(len(x))


def test_sampler_rotates_to_each_row_and_is_seeded():
    gen = torch.Generator().manual_seed(1)
    p, n = 5, 4000
    centres = _unit(torch.randn(3, p, generator=gen, dtype=F64))
    centres[0] = torch.eye(p, dtype=F64)[0]  # the north pole itself: the reflection must be skipped
    m = centres.repeat_interleave(n, 0)
    kappa = torch.tensor([20.0, 20.0, 0.0], dtype=F64).repeat_interleave(n)
    x = att.sample_vmf(m, kappa, generator=torch.Generator().manual_seed(5))
    again = att.sample_vmf(m, kappa, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x, again)
    a = att.vmf_mean_resultant_length(20.0, p)
    for j in range(2):  # the sample mean of component j is A_p(κ) m_j
        mean = x[j * n : (j + 1) * n].mean(0)
        assert (mean - a * centres[j]).norm() < 0.03
    assert x[2 * n :].mean(0).norm() < 0.05  # κ = 0: uniform


def test_responsibilities_match_a_numpy_mixture():
    rng = np.random.default_rng(3)
    p, k = 4, 5
    mus = rng.normal(size=(k, p))
    mus /= np.linalg.norm(mus, axis=1, keepdims=True)
    kappas, w = rng.uniform(0.5, 30, size=k), rng.dirichlet(np.ones(k))
    x = rng.normal(size=(50, p))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    log_joint = np.stack([np.log(w[j]) + vonmises_fisher(mus[j], kappas[j]).logpdf(x) for j in range(k)], 1)
    ref = np.exp(log_joint - log_joint.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    got = att.vmf_responsibilities(torch.tensor(x), torch.tensor(mus), torch.tensor(kappas), torch.tensor(np.log(w)))
    assert np.allclose(got.numpy(), ref, atol=1e-12)


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="dim"):
        att.log_vmf_normaliser(1.0, 1)
    with pytest.raises(ValueError, match="kappa"):
        att.log_vmf_normaliser(-1.0, 3)


# --- what chapter 6 uses from vmf.py beyond the density --------------------------------------------------------


def test_public_names_still_import_from_ambridge_attention():
    """Every name that ``ambridge.attention`` exported before it became a package still imports from there; the
    special functions are ambridge.special's own (one copy)."""
    old = ["log_bessel_iv", "log_vmf_normaliser", "vmf_mean_resultant_length", "vmf_log_density", "sample_vmf",
           "vmf_responsibilities", "VMFAttention", "layernorm_attention_vmf", "rmsnorm_attention_vmf",
           "additive_concentration_fit", "encoder_layer_vmf_view", "token_dynamics", "count_clusters",
           "RetrievalTask", "vmf_retrieval_batch", "NormAttention", "RetrievalTransformer", "train_retrieval",
           "compare_forms", "Form", "Scheme"]
    assert [n for n in old if not hasattr(att, n)] == []
    assert [n for n in att.__all__ if not hasattr(att, n)] == []
    for name in ["log_bessel_iv", "log_vmf_normaliser", "vmf_mean_resultant_length"]:
        assert getattr(att, name) is getattr(special, name)


def test_normalise_projects_onto_the_unit_sphere():
    x = torch.tensor([[3.0, 4.0], [0.0, -2.0]], dtype=F64)
    assert torch.equal(att.normalise(x), torch.tensor([[0.6, 0.8], [0.0, -1.0]], dtype=F64))


@pytest.mark.parametrize("kappa", [0.3, 4.0, 60.0])
def test_cosine_density_in_three_dimensions_is_the_closed_form(kappa):
    """p = 3: t = mᵀx has density κ e^{κt} / (2 sinh κ) on [−1, 1] (Archimedes: the slices have equal area)."""
    t = np.linspace(-1, 1, 41)
    ref = kappa * np.exp(kappa * t) / (2 * np.sinh(kappa))
    assert np.allclose(att.vmf_cosine_density(t, kappa, 3), ref, rtol=1e-12)


@pytest.mark.parametrize("p", [2, 3, 8, 64])
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0])
def test_cosine_density_has_mass_one_and_mean_a_p(p, kappa):
    """∫ f = 1, and ∫ t f(t) dt = A_p(κ) = I_{p/2}(κ)/I_{p/2−1}(κ), a Bessel ratio computed independently of C_p."""
    mass = integrate.quad(att.vmf_cosine_density, -1, 1, args=(kappa, p), limit=200)[0]
    mean = integrate.quad(lambda t: t * att.vmf_cosine_density(t, kappa, p), -1, 1, limit=200)[0]
    assert abs(mass - 1) < 1e-7
    ratio = float(mpmath.besseli(p / 2, kappa) / mpmath.besseli(p / 2 - 1, kappa))
    assert abs(mean - ratio) < 1e-7


def test_cosine_density_matches_samples():
    gen = torch.Generator().manual_seed(7)
    p, kappa = 5, 6.0
    m = _unit(torch.randn(1, p, generator=gen, dtype=F64)).expand(40_000, p)
    t = (att.sample_vmf(m, kappa, generator=gen) * m).sum(-1).numpy()
    counts, edges = np.histogram(t, bins=20, range=(-1, 1))
    expected = [integrate.quad(att.vmf_cosine_density, a, b, args=(kappa, p))[0] * len(t)
                for a, b in zip(edges[:-1], edges[1:])]
    big = np.array(expected) > 50
    assert np.all(np.abs(counts[big] - np.array(expected)[big]) < 5 * np.sqrt(np.array(expected)[big]))


def test_scipy_normaliser_agrees_where_finite_and_fails_silently_where_not():
    kappa = np.geomspace(1e-2, 1e3, 30)
    ours = att.log_vmf_normaliser(kappa, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SciPy's own warnings are swallowed
        theirs = att.scipy_log_vmf_normaliser(kappa, 8)
        at_1024 = att.scipy_log_vmf_normaliser([1.0, 10.0], 1024)
    assert np.allclose(theirs, ours, rtol=1e-10)
    assert not np.isfinite(at_1024).all()  # ive underflows: SciPy's density is not finite at p = 1024, κ = 1
    assert np.all(np.isfinite(att.log_vmf_normaliser(np.array([1.0, 10.0]), 1024)))


def test_uniform_rows_are_drawn_by_the_one_sphere_sampler():
    """κ = 0 rows come from ambridge.data.sphere_points on the same generator (after the NumPy seed is drawn)."""
    p, n = 4, 6
    m = torch.eye(p, dtype=F64)[:1].expand(n, p)
    got = att.sample_vmf(m, 0.0, generator=torch.Generator().manual_seed(9))
    gen = torch.Generator().manual_seed(9)
    torch.randint(0, 2**62, (1,), generator=gen)  # the NumPy seed
    assert torch.equal(got, sphere_points(n, p, generator=gen, dtype=F64))
