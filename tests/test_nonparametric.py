"""CLAM+CRP and DP-means (ambridge.memories.crp, .clamcrp, .dpmeans): the CRP / Pitman–Yor cluster counts against their
recursion and Monte Carlo, the energy against the Gaussian predictive computed with scipy, its gradient against
autograd, the evidence against scipy, the estimators' interface, memory creation, and the small-variance limit —
CLAM+CRP's partition equals DP-means' at large β, and differs at moderate β (so the limit test can fail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score

from ambridge.checks import ParameterError
from ambridge.memories import CLAMCRP, DPMeans
from ambridge.memories import crp as npm

F64 = torch.float64


def _blobs(seed, n=240, d=2, k=4, std=0.6, box=6.0):
    x, y = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=std, center_box=(-box, box), random_state=seed)
    return (x - x.mean(0)) / x.std(), y  # one scale for all features: the blobs stay isotropic


def _same_partition(a, b) -> bool:
    """Equal partitions, whatever the cluster names: a relabelling that is one-to-one both ways."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# ------------------------------------------------------------------------------------------- CRP and Pitman–Yor
def _recursion(n_max, alpha, d):
    e = [0.0]
    for i in range(n_max):  # E[K_{i+1}] = E[K_i] + (α + d E[K_i]) / (α + i), with the first point always new
        e.append(e[-1] + (1.0 if i == 0 else (alpha + d * e[-1]) / (alpha + i)))
    return np.array(e)


@pytest.mark.parametrize("alpha, d", [(1.0, 0.0), (10.0, 0.0), (0.3, 0.0), (1.0, 0.5), (5.0, 0.25), (-0.2, 0.5), (0.0, 0.7)])
def test_expected_clusters_solves_the_recursion(alpha, d):
    n = np.arange(0, 1001)
    got = npm.expected_clusters(n, alpha, d)
    np.testing.assert_allclose(got, _recursion(1000, alpha, d), rtol=1e-10, atol=1e-12)
    assert npm.expected_clusters(1, alpha, d) == pytest.approx(1.0, rel=1e-12)


def test_expected_clusters_crp_is_alpha_times_digamma_difference():
    assert npm.expected_clusters(500, 2.0) == pytest.approx(2.0 * (digamma(502.0) - digamma(2.0)), rel=1e-14)


@pytest.mark.parametrize("alpha, d", [(1.0, 0.0), (3.0, 0.0), (1.0, 0.5), (2.0, 0.3)])
def test_simulated_table_counts_match_the_closed_form(alpha, d):
    gen = torch.Generator().manual_seed(7)
    k = npm.simulate_cluster_counts(2000, alpha, d, n_runs=2000, generator=gen).double()
    for n in (10, 100, 2000):
        mean, se = float(k[:, n - 1].mean()), float(k[:, n - 1].std()) / math.sqrt(k.shape[0])
        assert abs(mean - npm.expected_clusters(n, alpha, d)) < 4 * se + 1e-9, (n, mean)
    assert bool((k.diff(dim=1) >= 0).all()) and bool((k.diff(dim=1) <= 1).all())


@pytest.mark.parametrize("alpha, d", [(1.0, 0.0), (2.0, 0.5)])
def test_crp_seating_tables_and_first_table_size(alpha, d):
    """Independent of the K chain: the first table's mean size is d + (1 − d)(α + n)/(α + 1) (a Pólya urn)."""
    gen = torch.Generator().manual_seed(3)
    n, runs = 150, 400
    draws = [npm.crp_seating(n, alpha, d, generator=gen) for _ in range(runs)]
    for s in draws[:5]:
        assert int(s.counts.sum()) == n and s.n_tables[-1] == s.counts.numel()
        assert torch.equal(torch.bincount(s.labels), s.counts) and int(s.labels[0]) == 0
        assert bool((s.labels <= torch.cummax(s.labels, 0).values).all())  # tables open in order
    first = np.array([float(s.counts[0]) for s in draws])
    expected = d + (1 - d) * (alpha + n) / (alpha + 1)
    assert abs(first.mean() - expected) < 4 * first.std() / math.sqrt(runs)
    ks = np.array([s.counts.numel() for s in draws], dtype=float)
    assert abs(ks.mean() - npm.expected_clusters(n, alpha, d)) < 4 * ks.std() / math.sqrt(runs)


def test_growth_is_logarithmic_for_crp_and_a_power_law_for_pyp():
    n = np.array([10**4, 10**6, 10**8])
    crp = npm.expected_clusters(n, 2.0)
    assert np.allclose(crp / npm.asymptotic_clusters(n, 2.0), 1, atol=1e-4)
    assert np.allclose(np.diff(crp) / np.diff(np.log(n)), 2.0, rtol=1e-3)  # slope α against log n
    pyp = npm.expected_clusters(n, 1.0, 0.5)
    slopes = np.diff(np.log(pyp)) / np.diff(np.log(n))
    assert np.allclose(slopes, 0.5, atol=2e-3) and np.allclose(pyp / npm.asymptotic_clusters(n, 1.0, 0.5), 1, atol=1e-4)


def test_crp_parameters_are_checked():
    with pytest.raises(ParameterError, match="discount"):
        npm.expected_clusters(10, 1.0, 1.0)
    with pytest.raises(ParameterError, match="alpha"):
        npm.expected_clusters(10, -0.6, 0.5)
    with pytest.raises(ParameterError, match="alpha"):
        npm.crp_seating(10, 0.0)
    with pytest.raises(ValueError, match="`n`"):
        npm.expected_clusters(-1, 1.0)
    with pytest.raises(ValueError, match="`n`"):
        npm.expected_clusters(2.5, 1.0)


# ------------------------------------------------------------------------------------------------- the energy
def _setup(seed=0, k=3, d=3):
    g = torch.Generator().manual_seed(seed)
    mem = torch.randn(k, d, generator=g, dtype=F64)
    counts = torch.tensor([5.0, 1.0, 12.0][:k], dtype=F64)
    v = 1.5 * torch.randn(7, d, generator=g, dtype=F64)
    return mem, counts, v


@pytest.mark.parametrize("discount", [0.0, 0.4])
@pytest.mark.parametrize("normaliser", [True, False])
def test_energy_is_the_scaled_predictive_nll(discount, normaliser):
    """E(v) = −(1/β) log[w_new N(v; 0, (σ² + σ₀²) I) + Σ_k (n_k − d) N(v; μ_k, σ² I)] − (1/β)(D/2) log(2πσ²), with
    w_new = (α + dK) and, without the normaliser, times ((σ² + σ₀²)/σ²)^{D/2} — computed with scipy."""
    mem, counts, v = _setup()
    sigma2, sigma02, alpha = 0.3, 2.5, 0.7
    beta, rho = 1 / (2 * sigma2), 1 / (2 * sigma02)
    d = v.shape[-1]
    w_new = (alpha + discount * 3) * (1.0 if normaliser else ((sigma2 + sigma02) / sigma2) ** (d / 2))
    dens = w_new * multivariate_normal(np.zeros(d), (sigma2 + sigma02) * np.eye(d)).pdf(v.numpy())
    for mu, n_k in zip(mem.numpy(), counts.numpy()):
        dens = dens + (n_k - discount) * multivariate_normal(mu, sigma2 * np.eye(d)).pdf(v.numpy())
    expected = -(np.log(dens) + 0.5 * d * np.log(2 * np.pi * sigma2)) / beta
    got = npm.crp_energy(v, mem, counts, alpha=alpha, discount=discount, beta=beta, prior_precision=rho,
                         normaliser=normaliser)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-11)
    # softmax of the log weights is the posterior over the memories and a new one
    post = torch.softmax(npm.crp_log_weights(v, mem, counts, alpha=alpha, discount=discount, beta=beta,
                                             prior_precision=rho, normaliser=normaliser), -1)
    comp = [(n_k - discount) * multivariate_normal(mu, sigma2 * np.eye(d)).pdf(v.numpy())
            for mu, n_k in zip(mem.numpy(), counts.numpy())]
    comp.append(w_new * multivariate_normal(np.zeros(d), (sigma2 + sigma02) * np.eye(d)).pdf(v.numpy()))
    comp = np.stack(comp, -1)
    np.testing.assert_allclose(post.numpy(), comp / comp.sum(-1, keepdims=True), rtol=1e-10, atol=1e-14)


def test_energy_gradient_autograd_closed_form_and_finite_difference():
    mem, counts, v = _setup(1)
    beta, rho = 1.7, 0.2
    kw = dict(alpha=1.3, beta=beta, prior_precision=rho, normaliser=True)
    v = v.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(npm.crp_energy(v, mem, counts, **kw).sum(), v)
    q = torch.softmax(npm.crp_log_weights(v.detach(), mem, counts, **kw), -1)
    closed = 2 * (q[:, :-1, None] * (v.detach()[:, None] - mem)).sum(1) + 2 * q[:, -1:] * v.detach() / (1 + beta / rho)
    torch.testing.assert_close(grad, closed, rtol=1e-12, atol=1e-12)
    h, e = 1e-6, torch.eye(v.shape[-1], dtype=F64)
    fd = torch.stack([(npm.crp_energy(v.detach() + h * e[j], mem, counts, **kw)
                       - npm.crp_energy(v.detach() - h * e[j], mem, counts, **kw)) / (2 * h) for j in range(3)], -1)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)


def test_energy_without_memories_is_the_new_memory_basin():
    v = torch.tensor([[0.5, -1.0], [2.0, 0.0]], dtype=F64)
    beta, rho, alpha = 2.0, 0.5, 3.0
    got = npm.crp_energy(v, torch.zeros(0, 2, dtype=F64), torch.zeros(0), alpha=alpha, beta=beta, prior_precision=rho)
    expected = (v.pow(2).sum(-1) / (1 / beta + 1 / rho) - math.log(alpha)) / beta
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=1e-14)


def test_log_alpha_replaces_alpha_and_survives_underflow():
    mem, counts, v = _setup(2)
    kw = dict(beta=1.0, prior_precision=1.0)
    a = npm.crp_log_weights(v, mem, counts, alpha=0.25, **kw)
    b = npm.crp_log_weights(v, mem, counts, log_alpha=math.log(0.25), **kw)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    tiny = npm.crp_log_weights(v, mem, counts, log_alpha=-5000.0, **kw)  # α = e^-5000 is 0 in float64
    assert bool(torch.isfinite(tiny).all()) and float(tiny[0, -1] - b[0, -1]) == pytest.approx(-5000 - math.log(0.25))


def test_energy_arguments_are_checked():
    mem, counts, v = _setup()
    kw = dict(beta=1.0, prior_precision=1.0)
    with pytest.raises(ValueError, match="counts"):
        npm.crp_energy(v, mem, counts[:2], **kw)
    with pytest.raises(ValueError, match="exceed the discount"):
        npm.crp_energy(v, mem, torch.tensor([5.0, 0.3, 2.0]), discount=0.5, **kw)
    with pytest.raises(ValueError, match="last dimension"):
        npm.crp_energy(v[:, :2], mem, counts, **kw)
    with pytest.raises(ParameterError, match="beta"):
        npm.crp_energy(v, mem, counts, beta=0.0, prior_precision=1.0)
    with pytest.raises(ParameterError, match="alpha"):
        npm.crp_energy(v, mem, counts, alpha=-1.0, **kw)
    with pytest.raises(TypeError, match="state"):
        npm.crp_energy(v.numpy(), mem, counts, **kw)


def test_small_variance_log_alpha_cancels_the_normaliser():
    mem, counts, v = _setup(3)
    beta, rho, lam = 40.0, 0.5, 0.8
    for normaliser in (True, False):
        la = npm.small_variance_log_alpha(lam, beta, rho, 3, normaliser)
        w = npm.crp_log_weights(v, mem, counts, log_alpha=la, beta=beta, prior_precision=rho, normaliser=normaliser)
        expected = -beta * lam - v.pow(2).sum(-1) / (1 / beta + 1 / rho)
        torch.testing.assert_close(w[:, -1], expected, rtol=1e-12, atol=1e-10)


# --------------------------------------------------------------------------------------------- the evidence
def test_crp_log_prior_is_the_product_of_seating_probabilities():
    labels = [0, 0, 1, 0, 2, 1, 1, 3, 0, 2]
    for alpha, d in [(1.5, 0.0), (0.8, 0.3)]:
        logp, counts = 0.0, []
        for i, z in enumerate(labels):
            if z == len(counts):
                logp += 0.0 if i == 0 else math.log((alpha + d * len(counts)) / (alpha + i))
                counts.append(1)
            else:
                logp += math.log((counts[z] - d) / (alpha + i))
                counts[z] += 1
        assert npm.crp_log_prior(counts, alpha, d) == pytest.approx(logp, rel=1e-12)


def test_cluster_log_marginal_against_scipy():
    rng = np.random.default_rng(0)
    pts, m0 = rng.normal(size=(6, 3)) + 1.0, np.array([0.2, -0.1, 0.0])
    s2, s02 = 0.4, 2.0
    cov = s2 * np.eye(6) + s02 * np.ones((6, 6))  # per coordinate, the memory integrated out
    expected = sum(multivariate_normal(np.full(6, m0[j]), cov).logpdf(pts[:, j]) for j in range(3))
    assert npm.cluster_log_marginal(pts, s2, s02, m0) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------------------------- the estimators
def test_estimator_interface():
    x, y = _blobs(0, std=0.4)
    est = CLAMCRP(variance=0.05, random_state=0)
    assert est.fit(x) is est
    k = est.n_memories_
    assert est.memories_.shape == (k, 2) and est.counts_.sum() == len(x) and est.labels_.shape == (len(x),)
    assert est.converged_ and est.n_iter_ >= 2 and est.memory_growth_.shape == (len(x),)
    assert est.memory_growth_[0] == 1 and (np.diff(est.memory_growth_) >= 0).all()
    assert adjusted_rand_score(y, est.labels_) > 0.95 and k == 4
    np.testing.assert_array_equal(CLAMCRP(variance=0.05, random_state=0).fit_predict(x), est.labels_)
    np.testing.assert_array_equal(est.predict(x), est.labels_)
    proba = est.predict_proba(x[:5])
    assert proba.shape == (5, k) and np.allclose(proba.sum(-1), 1)
    far = np.array([[8.0, 8.0]])
    assert est.new_memory_proba(far)[0] > 0.99 and est.new_memory_proba(est.memories_).max() < 1e-2
    assert est.energy(x[:3]).shape == (3,)
    assert clone(est).get_params() == est.get_params()


def test_estimator_errors():
    x, _ = _blobs(1)
    with pytest.raises(NotFittedError):
        CLAMCRP().predict(x)
    with pytest.raises(NotFittedError):
        DPMeans().predict(x)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CLAMCRP().fit(bad)
    with pytest.raises(ValueError, match="shape"):
        DPMeans().fit(x[:, 0])
    with pytest.raises(ParameterError, match="alpha"):
        CLAMCRP(alpha=0.0).fit(x)
    with pytest.raises(ParameterError, match="update"):
        CLAMCRP(update="sometimes").fit(x)
    with pytest.raises(ParameterError, match="lam"):
        DPMeans(lam=-1.0).fit(x)
    with pytest.raises(ParameterError, match="discount"):
        CLAMCRP(discount=1.0).fit(x)
    fitted = CLAMCRP(variance=0.05, random_state=0).fit(x)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="random_state"):
        CLAMCRP(random_state=-1).fit(x)


def test_variance_chosen_by_the_evidence_finds_the_true_k():
    x, y = _blobs(2, n=200, k=4, std=0.5)
    est = CLAMCRP(random_state=0).fit(x)
    assert est.n_memories_ == 4 and adjusted_rand_score(y, est.labels_) > 0.95
    best = max(est.variance_evidence_, key=lambda t: t[1])
    assert best[0] == pytest.approx(est.variance_) and best[1] == pytest.approx(est.log_evidence_)
    assert len(est.variance_evidence_) >= 3


def test_more_alpha_more_memories():
    x, _ = _blobs(3, n=200, d=4, k=3, std=1.0)
    counts = {a: np.mean([CLAMCRP(alpha=a, variance=0.1, max_iter=1, update="online", random_state=s).fit(x).n_memories_
                          for s in range(3)]) for a in (1e-4, 1.0, 1e4)}
    assert counts[1e-4] < counts[1.0] < counts[1e4]


def test_the_normaliser_holds_memory_creation_back_in_high_dimension():
    g = np.random.default_rng(4)
    means = g.normal(size=(4, 64)) * 2.0
    x = means[g.integers(0, 4, 300)] + g.normal(size=(300, 64)) * 0.5
    kw = dict(variance=0.25, prior_variance=4.0, max_iter=1, update="online", random_state=0)
    with_c = CLAMCRP(normaliser=True, **kw).fit(x).n_memories_
    without = CLAMCRP(normaliser=False, **kw).fit(x).n_memories_
    assert with_c <= 6 and without > 10 * with_c


def test_gradient_flow_and_natural_flow_make_the_same_decisions():
    x, _ = _blobs(5, n=60, k=3)
    natural = CLAMCRP(variance=0.05, random_state=1).fit(x)
    gradient = CLAMCRP(variance=0.05, flow="gradient", dynamics_steps=30, random_state=1).fit(x)
    halfstep = CLAMCRP(variance=0.05, step_size=0.5, random_state=1).fit(x)  # runs the loop, natural flow
    assert _same_partition(natural.labels_, gradient.labels_) and _same_partition(natural.labels_, halfstep.labels_)


def test_max_memories_caps_and_warns():
    x, _ = _blobs(6, n=80, k=4)
    with pytest.warns(Warning, match="max_memories"):
        est = CLAMCRP(variance=1e-4, max_memories=3, random_state=0).fit(x)
    assert est.n_memories_ <= 3 and est.capped_


def test_dp_means_recovers_separated_clusters_and_never_raises_its_objective():
    x, y = _blobs(7, n=300, k=5, std=0.3, box=8.0)
    for update in ("batch", "online"):
        dp = DPMeans(lam=0.5, update=update, random_state=0).fit(x)
        assert dp.n_memories_ == 5 and adjusted_rand_score(y, dp.labels_) == 1.0 and dp.converged_
        np.testing.assert_array_equal(dp.predict(x), dp.labels_)
    x2, _ = _blobs(8, n=300, d=3, k=6, std=1.0, box=4.0)
    obj = DPMeans(lam=0.3, update="batch", random_state=1).fit(x2).objective_
    assert len(obj) > 2 and all(b <= a + 1e-9 for a, b in zip(obj, obj[1:]))


def _dp_means_one_pass(x, order, lam):
    """DP-means' streaming pass written out independently: join the nearest running mean unless its squared distance
    exceeds λ, else open a cluster at the point."""
    means, counts, labels = [], [], np.full(len(x), -1)
    for i in order:
        d2 = [float(((x[i] - m) ** 2).sum()) for m in means]
        j = int(np.argmin(d2)) if d2 else -1
        if j < 0 or d2[j] > lam:
            means.append(x[i].copy())
            counts.append(1)
            labels[i] = len(means) - 1
        else:
            counts[j] += 1
            means[j] = means[j] + (x[i] - means[j]) / counts[j]
            labels[i] = j
    return labels


@pytest.mark.parametrize("lam", [0.25, 4.0])
def test_dp_means_compares_squared_distance_with_lambda(lam):
    """λ is a penalty on *squared* distance. With λ ≠ 1, ‖x − μ‖ and ‖x − μ‖² fall on different sides of λ:
    two tight groups 3 apart are two clusters at λ = 4 (9 > 4, though 3 < 4), and two groups 0.4 apart are one at
    λ = 0.25 (0.16 < 0.25, though 0.4 > 0.25)."""
    gap = 3.0 if lam == 4.0 else 0.4
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(0.0, 0.01, (15, 2)), rng.normal(0.0, 0.01, (15, 2)) + [gap, 0.0]])
    dp = DPMeans(lam=lam, random_state=0).fit(x)
    assert dp.n_memories_ == (2 if lam == 4.0 else 1)
    # and stream by stream, against the pass written out above, on data whose distances straddle λ and √λ
    x, _ = _blobs(9, n=120, d=2, k=4, std=0.5)
    x = x * (2.0 if lam == 4.0 else 0.5)
    for seed in range(3):
        one = DPMeans(lam=lam, max_iter=1, random_state=seed).fit(x)
        assert _same_partition(one.labels_, _dp_means_one_pass(x, one.order_, lam)), seed


# ------------------------------------------------------------------------------------ the small-variance limit
LIMIT_DATA = [dict(seed=s, n=200, d=3, k=5, std=1.0, box=5.0) for s in (0, 1, 2)]


@pytest.mark.parametrize("update", ["batch", "online"])
@pytest.mark.parametrize("normaliser", [True, False])
def test_large_beta_clam_crp_partitions_equal_dp_means(update, normaliser):
    lam = 1.0
    for spec in LIMIT_DATA:
        x, _ = _blobs(**spec)
        dp = DPMeans(lam=lam, update=update, random_state=spec["seed"]).fit(x)
        for beta in (1e4, 1e5):
            crp = CLAMCRP.small_variance(lam, beta, dim=x.shape[1], normaliser=normaliser, update=update,
                                         random_state=spec["seed"]).fit(x)
            assert _same_partition(crp.labels_, dp.labels_), (spec, beta)
            np.testing.assert_allclose(crp.memories_, dp.memories_, atol=1e-2)


def test_the_limit_test_can_fail_at_moderate_beta():
    """At β = 1 the counts and the prior still matter: on these data the partitions differ, so equality at large β
    is a property of the limit, not of the data."""
    lam, differ = 1.0, 0
    for spec in LIMIT_DATA:
        x, _ = _blobs(**spec)
        dp = DPMeans(lam=lam, random_state=spec["seed"]).fit(x)
        crp = CLAMCRP.small_variance(lam, 1.0, dim=x.shape[1], random_state=spec["seed"]).fit(x)
        differ += not _same_partition(crp.labels_, dp.labels_)
    assert differ == len(LIMIT_DATA)


def test_a_wrong_alpha_breaks_the_limit():
    """Without the e^{−βλ} scaling (α = 1 at large β) the new-memory term loses only (D/2) log β while an existing
    memory loses β‖x − μ‖²: every point ends as its own memory, where DP-means finds a handful."""
    x, _ = _blobs(0, n=120, d=3, k=4, std=0.5, box=6.0)
    dp = DPMeans(lam=1.0, random_state=0).fit(x)
    crp = CLAMCRP(alpha=1.0, variance=1 / (2 * 1e4), prior_variance=1.0, random_state=0).fit(x)
    assert crp.n_memories_ == len(x) and dp.n_memories_ == 4


def test_the_old_module_is_an_alias_of_the_new_ones():
    from ambridge.memories import nonparametric
    from ambridge.memories.elbo import CLAMELBO as old_path
    from ambridge.memories import CLAMELBO

    assert nonparametric.CLAMCRP is CLAMCRP and nonparametric.DPMeans is DPMeans and old_path is CLAMELBO
    assert all(getattr(nonparametric, name) is getattr(npm, name) for name in npm.__all__)
    assert set(nonparametric.__all__) == set(npm.__all__) | {"CLAMCRP", "DPMeans", "VARIANCE_GRID"}
