"""Energies and negative log-likelihoods (ambridge.energies) against independent numpy/scipy formulas.

Every reference value here is computed in the test, from the textbook formula, with numpy/scipy — never by calling
another ambridge function — so a wrong sign, scale or constant in the library cannot cancel against itself.
The end of the file checks that every public function refuses a wrong shape with an error naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from ambridge import data as amdata
from ambridge import dynamics, energies, plotting, sampling

F64 = torch.float64



def t64(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=F64)


@pytest.fixture
def rng():
    return np.random.default_rng(20240215)


# --- classical and dense associative memories ----------------------------------------------------------------


def test_hebbian_weights_is_the_explicit_sum_with_zero_diagonal(rng):
    n, d = 5, 8
    xi = rng.choice([-1.0, 1.0], size=(n, d))
    expected = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            if i != j:
                expected[i, j] = sum(xi[mu, i] * xi[mu, j] for mu in range(n)) / d
    got = energies.hebbian_weights(t64(xi)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    assert np.all(np.diag(got) == 0)
    np.testing.assert_array_equal(got, got.T)


def test_hebbian_network_stores_few_patterns_as_fixed_points(rng):
    # Far below capacity (N = 3 ≪ 0.138·D), each stored pattern is a fixed point of s ← sign(W s).
    xi = rng.choice([-1.0, 1.0], size=(3, 200))
    w = energies.hebbian_weights(t64(xi)).numpy()
    for p in xi:
        np.testing.assert_array_equal(np.sign(w @ p), p)


def test_hopfield_energy_is_minus_half_sWs_for_a_batch(rng):
    d = 6
    a = rng.normal(size=(d, d))
    w = (a + a.T) / 2
    s = rng.normal(size=(3, 4, d))
    expected = np.empty((3, 4))
    for i in range(3):
        for j in range(4):
            expected[i, j] = -0.5 * s[i, j] @ w @ s[i, j]
    got = energies.hopfield_energy(t64(s), t64(w))
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("degree", [1, 2, 3, 4, 5])
def test_dense_energy_polynomial_matches_numpy_loop(rng, degree):
    k, d = 4, 5
    mem = rng.normal(size=(k, d))
    s = rng.normal(size=(7, d))
    expected = np.array([-sum((mem[m] @ s[i]) ** degree for m in range(k)) for i in range(7)])
    got = energies.dense_energy(t64(s), t64(mem), interaction="polynomial", degree=degree)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_dense_energy_exponential_matches_numpy_loop(rng):
    k, d = 4, 5
    mem = rng.normal(size=(k, d))
    s = rng.normal(size=(2, 3, d))
    expected = np.empty((2, 3))
    for i in range(2):
        for j in range(3):
            expected[i, j] = -sum(math.exp(mem[m] @ s[i, j]) for m in range(k))
    got = energies.dense_energy(t64(s), t64(mem), interaction="exponential")
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_dense_energy_degree_two_is_the_classical_network_up_to_the_diagonal(rng):
    # For ±1 states: −Σ_k (μ_kᵀ s)² = 2D·E_Hopfield(s; W_Hebb) − N·D  (the diagonal of XᵀX is N).
    n, d = 4, 10
    xi = rng.choice([-1.0, 1.0], size=(n, d))
    s = rng.choice([-1.0, 1.0], size=(6, d))
    w = (xi.T @ xi - n * np.eye(d)) / d
    expected = np.array([2 * d * (-0.5 * v @ w @ v) - n * d for v in s])
    got = energies.dense_energy(t64(s), t64(xi), degree=2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(degree=0), dict(degree=2.5), dict(interaction="cubic")])
def test_dense_energy_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        energies.dense_energy(torch.randn(3, 2), torch.randn(4, 2), **kwargs)


# --- distances and log-sum-exp energies ----------------------------------------------------------------------


def test_squared_distances_match_cdist(rng):
    x = rng.normal(size=(2, 3, 4))
    c = rng.normal(size=(5, 4))
    got = energies.squared_distances(t64(x), t64(c))
    assert got.shape == (2, 3, 5)
    expected = cdist(x.reshape(-1, 4), c, "sqeuclidean").reshape(2, 3, 5)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13, atol=1e-14)


def test_squared_distances_have_no_cancellation_far_from_the_origin():
    # ‖x‖² − 2xᵀc + ‖c‖² would lose every digit here in float32 (‖x‖² ≈ 2e8 has an ulp of 16; ‖x − c‖² ≈ 4e-6).
    c = torch.tensor([[1e4, 1e4]], dtype=torch.float32)
    x2 = torch.tensor([[10000.0, 10000.0 + 2**-9]], dtype=torch.float32)  # representable offset (ulp is 2**-10)
    assert energies.squared_distances(c.clone(), c).item() == 0.0
    assert energies.squared_distances(x2, c).item() == pytest.approx(2.0**-18, rel=1e-6)
    # ... which is exactly what the matrix-product form does: it is for ranking and large D, not for tiny distances
    assert energies.squared_distances_by_inner_products(x2, c).item() != pytest.approx(2.0**-18, rel=1e-2)


def test_squared_distances_by_inner_products_match_cdist_and_are_never_negative(rng):
    x = rng.normal(size=(2, 3, 16))
    c = rng.normal(size=(7, 16))
    got = energies.squared_distances_by_inner_products(t64(x), t64(c))
    expected = cdist(x.reshape(-1, 16), c, "sqeuclidean").reshape(2, 3, 7)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
    same = energies.squared_distances_by_inner_products(t64(c) * 1e3, t64(c) * 1e3)
    assert bool((same >= 0).all()) and float(same.diagonal().max()) < 1e-6 * 1e6


@pytest.mark.parametrize("beta", [0.1, 1.0, 7.5])
def test_clam_energy_matches_numpy_logsumexp(rng, beta):
    mem = rng.normal(size=(5, 3))
    v = rng.normal(size=(4, 2, 3)) * 2
    d2 = ((v[..., None, :] - mem) ** 2).sum(-1)
    expected = -logsumexp(-beta * d2, axis=-1) / beta
    got = energies.clam_energy(t64(v), t64(mem), beta)
    assert got.shape == (4, 2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_clam_energy_is_stable_at_large_beta(rng):
    # β = 1e4: exp(−β‖μ − v‖²) underflows for every memory, yet the energy must tend to min_k ‖μ_k − v‖².
    mem = rng.normal(size=(4, 2))
    v = rng.normal(size=(6, 2)) * 3
    got = energies.clam_energy(t64(v), t64(mem), 1e4).numpy()
    min_d2 = cdist(v, mem, "sqeuclidean").min(-1)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, min_d2, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("beta", [0.3, 1.0, 4.0])
def test_modern_hopfield_energy_matches_ramsauer(rng, beta):
    n, d = 6, 4
    x = rng.normal(size=(n, d))
    xi = rng.normal(size=(5, d))
    big_m = max(np.linalg.norm(row) for row in x)
    expected = np.array(
        [
            -logsumexp(beta * (x @ q)) / beta + 0.5 * q @ q + math.log(n) / beta + 0.5 * big_m**2
            for q in xi
        ]
    )
    got = energies.modern_hopfield_energy(t64(xi), t64(x), beta)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


# --- Gaussian mixtures and KDEs vs scipy ---------------------------------------------------------------------


def scipy_mixture_logpdf(x, means, variances, weights):
    """log Σ_k π_k N(x; μ_k, σ_k² I) with scipy.stats.multivariate_normal, x (M, D)."""
    d = means.shape[1]
    comps = np.stack(
        [np.log(w) + multivariate_normal(m, v * np.eye(d)).logpdf(x) for m, v, w in zip(means, variances, weights)],
        axis=-1,
    )
    return logsumexp(comps, axis=-1), comps


def test_gaussian_mixture_nll_uniform_weights_scalar_variance(rng):
    k, d = 4, 3
    means = rng.normal(size=(k, d)) * 2
    x = rng.normal(size=(9, d)) * 2
    var = 0.7
    expected, _ = scipy_mixture_logpdf(x, means, [var] * k, [1 / k] * k)
    got = energies.gaussian_mixture_nll(t64(x), t64(means), var)
    np.testing.assert_allclose(got.numpy(), -expected, rtol=1e-12, atol=1e-12)


def test_gaussian_mixture_nll_given_weights_per_component_variance(rng):
    k, d = 3, 2
    means = rng.normal(size=(k, d)) * 2
    x = rng.normal(size=(3, 4, d)) * 2
    var = np.array([0.2, 1.0, 3.5])
    w = np.array([0.5, 0.3, 0.2])
    expected, _ = scipy_mixture_logpdf(x.reshape(-1, d), means, var, w)
    got = energies.gaussian_mixture_nll(t64(x), t64(means), t64(var), weights=t64(w))
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got.numpy().ravel(), -expected, rtol=1e-12, atol=1e-12)


def test_gaussian_mixture_log_joint_matches_scipy(rng):
    k, d = 3, 2
    means = rng.normal(size=(k, d))
    x = rng.normal(size=(5, d))
    var = np.array([0.5, 1.0, 2.0])
    w = np.array([0.1, 0.6, 0.3])
    _, comps = scipy_mixture_logpdf(x, means, var, w)
    got = energies.gaussian_mixture_log_joint(t64(x), t64(means), t64(var), weights=t64(w))
    np.testing.assert_allclose(got.numpy(), comps, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_mixture_responsibilities_are_bayes_rule(rng, weighted):
    k, d = 4, 3
    means = rng.normal(size=(k, d))
    x = rng.normal(size=(6, d))
    var = np.array([0.3, 0.8, 1.0, 2.0])
    w = np.array([0.4, 0.1, 0.2, 0.3]) if weighted else np.full(k, 1 / k)
    joint = np.stack([w[j] * multivariate_normal(means[j], var[j] * np.eye(d)).pdf(x) for j in range(k)], -1)
    expected = joint / joint.sum(-1, keepdims=True)
    got = energies.mixture_responsibilities(t64(x), t64(means), t64(var), weights=t64(w) if weighted else None)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got.sum(-1).numpy(), 1.0, rtol=0, atol=1e-14)


@pytest.mark.parametrize("bandwidth", [0.3, 1.0, 2.5])
def test_kde_nll_is_an_average_of_isotropic_gaussians(rng, bandwidth):
    n, d = 12, 3
    pts = rng.normal(size=(n, d))
    x = rng.normal(size=(7, d))
    dens = np.mean([multivariate_normal(p, bandwidth**2 * np.eye(d)).pdf(x) for p in pts], axis=0)
    got = energies.kde_nll(t64(x), t64(pts), bandwidth)
    np.testing.assert_allclose(got.numpy(), -np.log(dens), rtol=1e-12, atol=1e-12)


def test_kde_nll_closed_form_of_the_docstring(rng):
    # −log Σ_n exp(−‖x − x_n‖²/(2σ²)) + log N + (D/2) log(2πσ²)
    n, d, s = 8, 2, 0.6
    pts = rng.normal(size=(n, d))
    x = rng.normal(size=(5, d))
    expected = -logsumexp(-cdist(x, pts, "sqeuclidean") / (2 * s**2), axis=-1) + math.log(n) + d / 2 * math.log(
        2 * math.pi * s**2
    )
    np.testing.assert_allclose(energies.kde_nll(t64(x), t64(pts), s).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "variance, weights",
    [
        (0.0, None),
        (-1.0, None),
        (float("nan"), None),
        (torch.tensor([1.0, -1.0, 1.0], dtype=F64), None),
        (1.0, torch.tensor([0.5, 0.6, -0.1], dtype=F64)),  # negative
        (1.0, torch.tensor([0.5, 0.3, 0.1], dtype=F64)),  # sums to 0.9
        (1.0, torch.tensor([0.5, 0.5], dtype=F64)),  # wrong length
    ],
)
def test_mixture_rejects_bad_variance_or_weights(variance, weights):
    with pytest.raises(ValueError):
        energies.gaussian_mixture_nll(torch.zeros(2, 2, dtype=F64), torch.randn(3, 2, dtype=F64), variance, weights)


# --- the bridge identities (float64) -------------------------------------------------------------------------


@pytest.mark.parametrize("k, d, beta", [(1, 1, 1.0), (3, 2, 0.5), (5, 4, 3.0), (7, 3, 20.0)])
def test_clam_nll_constant_formula(k, d, beta):
    assert energies.clam_nll_constant(k, d, beta) == pytest.approx(math.log(k) + d / 2 * math.log(math.pi / beta))


@pytest.mark.parametrize("k, d, beta", [(1, 1, 1.0), (3, 2, 0.5), (5, 4, 3.0), (7, 3, 20.0)])
def test_bridge_mixture_nll_is_beta_times_clam_energy_plus_constant(rng, k, d, beta):
    means = rng.normal(size=(k, d)) * 1.5
    x = rng.normal(size=(10, d)) * 1.5
    logp, _ = scipy_mixture_logpdf(x, means, [1 / (2 * beta)] * k, [1 / k] * k)
    rhs = beta * energies.clam_energy(t64(x), t64(means), beta).numpy() + energies.clam_nll_constant(k, d, beta)
    np.testing.assert_allclose(-logp, rhs, rtol=1e-11, atol=1e-11)
    # and the library's own mixture NLL agrees with both
    nll = energies.gaussian_mixture_nll(t64(x), t64(means), 1 / (2 * beta)).numpy()
    np.testing.assert_allclose(nll, rhs, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("beta", [0.25, 1.0, 5.0])
def test_bridge_score_is_two_beta_sum_of_responsibilities_times_displacements(rng, beta):
    k, d = 4, 3
    means = rng.normal(size=(k, d))
    x = rng.normal(size=(6, d))
    xt = t64(x).requires_grad_(True)
    energies.gaussian_mixture_nll(xt, t64(means), 1 / (2 * beta)).sum().backward()
    score = -xt.grad.numpy()  # ∇ log p
    d2 = cdist(x, means, "sqeuclidean")
    r = np.exp(-beta * d2 - logsumexp(-beta * d2, axis=-1, keepdims=True))
    expected = 2 * beta * np.einsum("mk,mkd->md", r, means[None] - x[:, None])
    np.testing.assert_allclose(score, expected, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("radius, sigma", [(1.0, 0.3), (2.0, 1.0), (3.0, 2.5)])
def test_bridge_kde_on_a_sphere_is_the_modern_hopfield_energy(radius, sigma):
    g = torch.Generator().manual_seed(3)
    n, d = 9, 4
    pts = amdata.sphere_points(n, d, radius=radius, generator=g, dtype=F64)
    x = torch.randn(11, d, generator=g, dtype=F64) * radius
    lhs = sigma**2 * energies.kde_nll(x, pts, sigma)
    rhs = energies.modern_hopfield_energy(x, pts, 1 / sigma**2) + d * sigma**2 / 2 * math.log(2 * math.pi * sigma**2)
    np.testing.assert_allclose(lhs.numpy(), rhs.numpy(), rtol=1e-11, atol=1e-11)


def test_bridge_kde_off_the_sphere_is_not_the_modern_hopfield_energy():
    # The identity needs equal norms: it must fail visibly when they differ (else the test above proves nothing).
    pts = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=F64)
    x = torch.tensor([[0.5, 0.5], [2.0, -1.0]], dtype=F64)
    lhs = energies.kde_nll(x, pts, 1.0)
    rhs = energies.modern_hopfield_energy(x, pts, 1.0) + math.log(2 * math.pi)
    diff = (lhs - rhs).numpy()
    assert np.all(np.abs(diff) > 1e-3)
    assert abs(diff[0] - diff[1]) > 1e-3  # not just a different constant


# --- gradients of every energy --------------------------------------------------------------------------------


def _gradcheck(fn, x):
    assert torch.autograd.gradcheck(fn, (x.requires_grad_(True),), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_gradients_pass_gradcheck():
    g = torch.Generator().manual_seed(11)
    d = 3
    mem = torch.randn(4, d, generator=g, dtype=F64)
    w = energies.hebbian_weights(torch.sign(torch.randn(5, d, generator=g, dtype=F64)))
    var = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=F64)
    pi = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    fns = [
        lambda x: energies.hopfield_energy(x, w),
        lambda x: energies.dense_energy(x, mem, degree=3),
        lambda x: energies.dense_energy(x, mem, interaction="exponential"),
        lambda x: energies.clam_energy(x, mem, 1.3),
        lambda x: energies.modern_hopfield_energy(x, mem, 0.7),
        lambda x: energies.squared_distances(x, mem),
        lambda x: energies.gaussian_mixture_nll(x, mem, var, pi),
        lambda x: energies.mixture_responsibilities(x, mem, var, pi),
        lambda x: energies.kde_nll(x, mem, 0.8),
    ]
    for fn in fns:
        _gradcheck(fn, torch.randn(5, d, generator=g, dtype=F64))


def test_gradients_match_analytic_formulas(rng):
    k, d, beta = 4, 3, 1.7
    mem = rng.normal(size=(k, d))
    x = rng.normal(size=(6, d))
    a = rng.normal(size=(d, d))
    w = (a + a.T) / 2

    def grad(fn):
        xt = t64(x).requires_grad_(True)
        fn(xt).sum().backward()
        return xt.grad.numpy()

    def softmax(z):
        return np.exp(z - logsumexp(z, axis=-1, keepdims=True))

    # Hopfield: ∇(−½ sᵀWs) = −Ws
    np.testing.assert_allclose(grad(lambda s: energies.hopfield_energy(s, t64(w))), -x @ w, rtol=1e-12, atol=1e-12)
    # dense polynomial: ∇ = −Σ_k n (μ_kᵀs)^{n−1} μ_k; exponential: −Σ_k exp(μ_kᵀs) μ_k
    ov = x @ mem.T
    np.testing.assert_allclose(
        grad(lambda s: energies.dense_energy(s, t64(mem), degree=4)), -(4 * ov**3) @ mem, rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        grad(lambda s: energies.dense_energy(s, t64(mem), interaction="exponential")),
        -np.exp(ov) @ mem,
        rtol=1e-12,
        atol=1e-12,
    )
    # CLAM: ∇E = 2 Σ_k r_k (v − μ_k), r = softmax(−β‖μ − v‖²)
    r = softmax(-beta * cdist(x, mem, "sqeuclidean"))
    np.testing.assert_allclose(
        grad(lambda s: energies.clam_energy(s, t64(mem), beta)), 2 * (x - r @ mem), rtol=1e-12, atol=1e-12
    )
    # modern Hopfield: ∇E = ξ − Xᵀ softmax(βXξ)
    np.testing.assert_allclose(
        grad(lambda s: energies.modern_hopfield_energy(s, t64(mem), beta)),
        x - softmax(beta * x @ mem.T) @ mem,
        rtol=1e-12,
        atol=1e-12,
    )
    # mixture NLL: ∇ = Σ_k r_k (x − μ_k)/σ_k²
    var = np.array([0.4, 0.9, 1.3, 2.2])
    pi = np.array([0.25, 0.25, 0.3, 0.2])
    logj = np.log(pi) - 0.5 * cdist(x, mem, "sqeuclidean") / var - d / 2 * np.log(2 * np.pi * var)
    r = softmax(logj)
    expected = np.einsum("mk,mkd->md", r / var, x[:, None] - mem[None])
    np.testing.assert_allclose(
        grad(lambda s: energies.gaussian_mixture_nll(s, t64(mem), t64(var), t64(pi))), expected, rtol=1e-11, atol=1e-12
    )


# --- bad input: every public function names the argument it refuses ------------------------------------------

_MEM = torch.randn(3, 2)
_STATE = torch.randn(4, 2)
_WRONG_D = torch.randn(4, 3)
_FLAT = torch.randn(3)
_INT = torch.ones(4, 2, dtype=torch.int64)
_W = torch.eye(2)





BAD_INPUT = [
    # energies
    ("hebbian_weights flat", lambda: energies.hebbian_weights(_FLAT), ValueError, "patterns"),
    ("hebbian_weights int", lambda: energies.hebbian_weights(_INT), TypeError, "patterns"),
    ("hopfield_energy int state", lambda: energies.hopfield_energy(_INT, _W), TypeError, "state"),
    ("hopfield_energy wrong D", lambda: energies.hopfield_energy(_WRONG_D, _W), ValueError, "weights"),
    pytest.param(
        "hopfield_energy int weights",
        lambda: energies.hopfield_energy(_STATE, torch.eye(2, dtype=torch.int64)),
        TypeError,
        "weights",
    ),
    ("dense_energy flat memories", lambda: energies.dense_energy(_STATE, _FLAT), ValueError, "memories"),
    ("dense_energy wrong D", lambda: energies.dense_energy(_WRONG_D, _MEM), ValueError, "state"),
    ("dense_energy int state", lambda: energies.dense_energy(_INT, _MEM), TypeError, "state"),
    ("squared_distances wrong D", lambda: energies.squared_distances(_WRONG_D, _MEM), ValueError, "x"),
    ("squared_distances flat centres", lambda: energies.squared_distances(_STATE, _FLAT), ValueError, "centres"),
    pytest.param(
        "clam_energy wrong D",
        lambda: energies.clam_energy(_WRONG_D, _MEM, 1.0),
        ValueError,
        "state",
    ),
    pytest.param(
        "clam_energy flat memories",
        lambda: energies.clam_energy(_STATE, _FLAT, 1.0),
        ValueError,
        "memories",
    ),
    ("clam_energy beta 0", lambda: energies.clam_energy(_STATE, _MEM, 0.0), ValueError, "beta"),
    ("modern_hopfield wrong D", lambda: energies.modern_hopfield_energy(_WRONG_D, _MEM, 1.0), ValueError, "state"),
    ("modern_hopfield flat", lambda: energies.modern_hopfield_energy(_STATE, _FLAT, 1.0), ValueError, "memories"),
    ("modern_hopfield int", lambda: energies.modern_hopfield_energy(_INT, _MEM, 1.0), TypeError, "state"),
    ("mixture_nll wrong D", lambda: energies.gaussian_mixture_nll(_WRONG_D, _MEM, 1.0), ValueError, "x"),
    ("mixture_nll flat means", lambda: energies.gaussian_mixture_nll(_STATE, _FLAT, 1.0), ValueError, "means"),
    (
        "mixture_nll variance shape",
        lambda: energies.gaussian_mixture_nll(_STATE, _MEM, torch.ones(3, 1)),
        ValueError,
        "variance",
    ),
    (
        "mixture_nll weights shape",
        lambda: energies.gaussian_mixture_nll(_STATE, _MEM, 1.0, torch.ones(2) / 2),
        ValueError,
        "weights",
    ),
    ("log_joint wrong D", lambda: energies.gaussian_mixture_log_joint(_WRONG_D, _MEM, 1.0), ValueError, "x"),
    ("responsibilities int", lambda: energies.mixture_responsibilities(_INT, _MEM, 1.0), TypeError, "x"),
    ("kde_nll wrong D", lambda: energies.kde_nll(_WRONG_D, _MEM, 1.0), ValueError, "x"),
    ("kde_nll bandwidth 0", lambda: energies.kde_nll(_STATE, _MEM, 0.0), ValueError, "bandwidth"),
    pytest.param(
        "kde_nll flat data",
        lambda: energies.kde_nll(_STATE, _FLAT, 1.0),
        ValueError,
        "data",
    ),
    pytest.param(
        "kde_nll bandwidth shape",
        lambda: energies.kde_nll(_STATE, _MEM, torch.ones(4)),
        ValueError,
        "bandwidth",
    ),
    pytest.param(
        "clam_nll_constant K=0",
        lambda: energies.clam_nll_constant(0, 2, 1.0),
        ValueError,
        "n_memories",
    ),
    # dynamics
    ("energy_gradient int", lambda: dynamics.energy_gradient(lambda x: x.sum(-1), _INT), TypeError, "state"),
    ("energy_gradient bad energy", lambda: dynamics.energy_gradient(lambda x: x, _STATE), ValueError, "energy must map"),
    (
        "gradient_flow int",
        lambda: dynamics.gradient_flow(lambda x: x.sum(-1), _INT, step_size=0.1, n_steps=1),
        TypeError,
        "init",
    ),
    (
        "gradient_flow step",
        lambda: dynamics.gradient_flow(lambda x: x.sum(-1), _STATE, step_size=-0.1, n_steps=1),
        ValueError,
        "step_size",
    ),
    (
        "attention wrong D",
        lambda: dynamics.attention_update(_WRONG_D, _MEM, _MEM, scale=1.0),
        ValueError,
        "queries",
    ),
    ("attention flat keys", lambda: dynamics.attention_update(_STATE, _FLAT, _MEM, scale=1.0), ValueError, "keys"),
    (
        "attention flat values",
        lambda: dynamics.attention_update(_STATE, _MEM, _FLAT, scale=1.0),
        ValueError,
        "values",
    ),
    (
        "attention bias shape",
        lambda: dynamics.attention_update(_STATE, _MEM, _MEM, scale=1.0, bias=torch.zeros(4)),
        ValueError,
        "bias",
    ),
    (
        "attention method",
        lambda: dynamics.attention_update(_STATE, _MEM, _MEM, scale=1.0, method="fast"),
        ValueError,
        "method",
    ),
    ("mean_shift wrong D", lambda: dynamics.mean_shift_step(_WRONG_D, _MEM, 1.0), ValueError, "state"),
    ("mean_shift flat data", lambda: dynamics.mean_shift_step(_STATE, _FLAT, 1.0), ValueError, "data"),
    ("mean_shift int state", lambda: dynamics.mean_shift_step(_INT, _MEM, 1.0), TypeError, "state"),
    (
        "mean_shift bandwidth shape",
        lambda: dynamics.mean_shift_step(_STATE, _MEM, torch.ones(4)),
        ValueError,
        "bandwidth",
    ),
    ("mean_shift bandwidth -1", lambda: dynamics.mean_shift_step(_STATE, _MEM, -1.0), ValueError, "bandwidth"),
    (
        "mean_shift log_weights shape",
        lambda: dynamics.mean_shift_step(_STATE, _MEM, 1.0, log_weights=torch.zeros(2)),
        ValueError,
        "log_weights",
    ),
    pytest.param(
        "hopfield_update wrong D",
        lambda: dynamics.hopfield_update(_WRONG_D, _MEM, 1.0),
        ValueError,
        "state",
    ),
    pytest.param(
        "hopfield_update flat memories",
        lambda: dynamics.hopfield_update(_STATE, _FLAT, 1.0),
        ValueError,
        "memories",
    ),
    ("clam_step wrong D", lambda: dynamics.clam_step(_WRONG_D, _MEM, 1.0), ValueError, "state"),
    pytest.param(
        "clam_step flat memories",
        lambda: dynamics.clam_step(_STATE, _FLAT, 1.0),
        ValueError,
        "memories",
    ),
    ("clam_step step 1.5", lambda: dynamics.clam_step(_STATE, _MEM, 1.0, step_size=1.5), ValueError, "step_size"),
    (
        "fixed_point int",
        lambda: dynamics.iterate_to_fixed_point(lambda x: x, _INT),
        TypeError,
        "init",
    ),
    (
        "fixed_point max_iter",
        lambda: dynamics.iterate_to_fixed_point(lambda x: x, _STATE, max_iter=0),
        ValueError,
        "max_iter",
    ),
    # sampling
    (
        "langevin_sample int",
        lambda: sampling.langevin_sample(lambda x: x.sum(-1), _INT, step_size=0.1, n_steps=1),
        TypeError,
        "init",
    ),
    (
        "langevin_step int",
        lambda: sampling.langevin_step(lambda x: x.sum(-1), _INT, step_size=0.1),
        TypeError,
        "state",
    ),
    # data and plotting
    ("sample_mixture flat means", lambda: amdata.sample_mixture(_FLAT, 1.0, 5), ValueError, "means"),
    ("sphere_points n=0", lambda: amdata.sphere_points(0, 2), ValueError, "n"),
    ("flip_signs fraction", lambda: amdata.flip_signs(torch.ones(2, 4), 1.5), ValueError, "fraction"),
    ("plot_paths shape", lambda: plotting.plot_paths(None, torch.zeros(5, 3)), ValueError, "paths"),
]


def _with_ids(cases):
    """Give every case its name as the test id (pytest.param keeps its marks)."""
    out = []
    for c in cases:
        values, marks = (c.values, c.marks) if hasattr(c, "marks") else (c, ())
        out.append(pytest.param(*values, marks=marks, id=values[0]))
    return out


@pytest.mark.parametrize("case, call, exc, name", _with_ids(BAD_INPUT))
def test_bad_input_raises_a_clear_error_naming_the_argument(case, call, exc, name):
    with pytest.raises(exc) as info:
        call()
    # the argument in backticks, as checks writes it (or a whole phrase naming it, where one is given)
    expected = name if " " in name else f"`{name}`"
    assert expected in str(info.value), f"{case}: message {str(info.value)!r} does not name {expected}"
