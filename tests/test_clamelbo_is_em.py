"""CLAM+ELBO with k-means++ seeding and an exact M-step is EM for a shared isotropic Gaussian mixture.

The reference is an EM written here in NumPy, independently of the library: responsibilities
r_nk = softmax_k(log π_k − ‖x_n − μ_k‖²/(2σ²) − (D/2) log 2πσ²), then μ_k = Σ_n r_nk x_n / N_k, π_k = N_k/n,
σ² = Σ_nk r_nk ‖x_n − μ_k‖² / (nD) with the new means. Its start is the estimator's stated one: the k-means++ seeds
of :func:`sklearn.cluster.kmeans_plusplus` with the same ``random_state`` (the seeding is shared input, not part of
EM), π uniform, σ² = mean over points of the squared distance to the nearest seed, divided by D.

scikit-learn's ``GaussianMixture(covariance_type="spherical")`` is not used: it gives every component its own σ_k²
(it cannot tie them), and its M-step adds ``reg_covar`` to every variance.

What is asserted (chapter 3 cites it):
1. ``flow="natural"`` (one Euler step of size 1 is the exact E-step): after every round t = 1…12 the means, weights
   and σ² equal EM's after t iterations (to 1e-9 relative), and the estimator's responsibilities under those
   parameters (``predict_proba``) equal EM's responsibilities of iteration t + 1 (to 1e-9) — on iris (K = 3) and
   wine (K = 3), standardised, seeds 0 and 1.
2. Run to convergence (tol = 0 in both, 500 rounds), the partition ``labels_`` equals EM's argmax partition.
3. The paper's ``flow="gradient"`` with the default 25 E-step iterations (the benchmark's CLAM+ELBO) is generalised
   EM, not EM: its round-1 means differ from EM's, yet at convergence (its default tol = 1e-6) it reaches EM's fixed point — the same
   partition, means to 1e-3 (its E-step approaches the posterior only like 1/t near a confident corner) — on the
   same data and seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.cluster import kmeans_plusplus
from sklearn.datasets import load_iris, load_wine

from ambridge.memories import CLAMELBO


def _standardised(loader) -> np.ndarray:
    x = loader().data.astype(np.float64)
    return (x - x.mean(0)) / x.std(0)


DATA = {"iris": _standardised(load_iris), "wine": _standardised(load_wine)}


def em_start(x: np.ndarray, k: int, seed: int):
    means, _ = kmeans_plusplus(x, k, random_state=seed)
    sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)
    return means, np.full(k, 1.0 / k), float(sq.min(1).mean() / x.shape[1])


def e_step(x, means, weights, variance):
    d = x.shape[1]
    sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)
    log_joint = np.log(weights) - sq / (2 * variance) - 0.5 * d * np.log(2 * np.pi * variance)
    return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


def m_step(x, r):
    mass = r.sum(0)
    means = (r.T @ x) / mass[:, None]
    sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)
    return means, mass / x.shape[0], float((r * sq).sum() / x.size)


def em(x, k, seed, n_iter):
    """[(means, weights, variance, responsibilities used to get them)] after each of ``n_iter`` EM iterations."""
    means, weights, variance = em_start(x, k, seed)
    out = []
    for _ in range(n_iter):
        r = e_step(x, means, weights, variance)
        means, weights, variance = m_step(x, r)
        out.append((means, weights, variance, r))
    return out


def em_converged(x, k, seed, max_iter=500):
    means, weights, variance = em_start(x, k, seed)
    for _ in range(max_iter):
        means, weights, variance = m_step(x, e_step(x, means, weights, variance))
    return means, e_step(x, means, weights, variance).argmax(1)


def _fit(x, k, seed, **kw):
    return CLAMELBO(n_memories=k, random_state=seed, min_variance=1e-12, **kw).fit(x)


@pytest.mark.parametrize("name", sorted(DATA))
@pytest.mark.parametrize("seed", [0, 1])
def test_natural_flow_is_em_step_by_step(name, seed):
    x, k, steps = DATA[name], 3, 12
    ref = em(x, k, seed, steps + 1)
    for t in range(1, steps + 1):
        m = _fit(x, k, seed, flow="natural", e_steps=1, max_iter=t, tol=0.0)
        assert m.n_iter_ == t
        means, weights, variance, _ = ref[t - 1]
        np.testing.assert_allclose(m.memories_, means, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(m.weights_, weights, rtol=1e-9, atol=1e-12)
        assert m.variance_ == pytest.approx(variance, rel=1e-9)
        np.testing.assert_allclose(m.predict_proba(x), ref[t][3], atol=1e-9)  # EM's next E-step


@pytest.mark.parametrize("name", sorted(DATA))
@pytest.mark.parametrize("seed", [0, 1])
def test_same_final_partition_as_em(name, seed):
    x, k = DATA[name], 3
    means, labels = em_converged(x, k, seed)
    m = _fit(x, k, seed, flow="natural", e_steps=1, max_iter=500, tol=0.0)
    np.testing.assert_array_equal(m.labels_, labels)
    np.testing.assert_allclose(m.memories_, means, atol=1e-8)


@pytest.mark.parametrize("name", sorted(DATA))
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_flow_is_generalised_em_with_the_same_fixed_point(name, seed):
    x, k = DATA[name], 3
    first = _fit(x, k, seed, max_iter=1, tol=0.0)  # the paper's flow, 25 Euler steps: a partial E-step
    assert np.abs(first.memories_ - em(x, k, seed, 1)[0][0]).max() > 1e-6
    means, labels = em_converged(x, k, seed)
    m = _fit(x, k, seed)  # the estimator's defaults: tol = 1e-6, 200 rounds at most
    assert m.converged_
    np.testing.assert_array_equal(m.labels_, labels)
    np.testing.assert_allclose(m.memories_, means, atol=1e-3)  # its E-steps stall near corners (1/t)
