"""CLAM+ELBO and CLAM: the energy, its flows, the fixed point, and the estimators.

Independent references: scipy's Gaussian log-density and log-sum-exp for the posterior and the evidence, autograd for
the velocity, and the ELBO's own inequality E(q) ≥ −log p(x).
"""

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score

from ambridge.energies import clam_energy
from ambridge.memories import CLAM, CLAMELBO, elbo_dynamics, elbo_velocity, negative_elbo
from ambridge.memories.elbo import negative_elbo_of_logits
from ambridge.checks import ParameterError


def _log_joint(seed=0, n=40, k=4, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, k, generator=g, dtype=torch.float64)


def _blobs(seed=0, k=3, per=40, d=2, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = 6.0 * rng.standard_normal((k, d))
    x = np.concatenate([c + spread * rng.standard_normal((per, d)) for c in centres])
    y = np.repeat(np.arange(k), per)
    order = rng.permutation(len(y))
    return x[order], y[order]


def _scipy_log_joint(x, means, variance, weights):
    """log π_k + log N(x; μ_k, σ² I) from scipy, one memory at a time."""
    d = x.shape[1]
    return np.stack(
        [np.log(w) + multivariate_normal(mean=m, cov=variance * np.eye(d)).logpdf(x) for m, w in zip(means, weights)],
        axis=-1,
    )


# --- the energy ----------------------------------------------------------------------------------------------------


def test_energy_is_minus_log_evidence_at_the_posterior_and_above_it_elsewhere():
    a = _log_joint()
    posterior = torch.softmax(a, -1)
    evidence = torch.from_numpy(logsumexp(a.numpy(), axis=-1))
    assert torch.allclose(negative_elbo(posterior, a), -evidence, atol=1e-12)
    g = torch.Generator().manual_seed(1)
    other = torch.softmax(torch.randn(a.shape, generator=g, dtype=a.dtype), -1)
    gap = negative_elbo(other, a) + evidence
    kl = (other * (other.log() - posterior.log())).sum(-1)  # E(q) + log p(x) = KL(q ‖ posterior) ≥ 0
    assert torch.allclose(gap, kl, atol=1e-10) and bool((gap > 0).all())


def test_zero_probabilities_count_as_zero_entropy():
    a = torch.tensor([[0.0, -1.0, 2.0]], dtype=torch.float64)
    q = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(negative_elbo(q, a), torch.tensor([-2.0], dtype=torch.float64))


@pytest.mark.parametrize("bad", [torch.tensor([[0.5, 0.6]]), torch.tensor([[-0.1, 1.1]])])
def test_energy_refuses_q_off_the_simplex(bad):
    with pytest.raises(ValueError, match="probability vector"):
        negative_elbo(bad.double(), torch.zeros(1, 2, dtype=torch.float64))


def test_velocity_is_minus_the_autograd_gradient_of_the_energy():
    a = _log_joint()
    v = torch.randn(a.shape, generator=torch.Generator().manual_seed(2), dtype=a.dtype, requires_grad=True)
    (grad,) = torch.autograd.grad(negative_elbo_of_logits(v, a).sum(), v)
    assert torch.allclose(elbo_velocity(v.detach(), a), -grad, atol=1e-12)


def test_natural_velocity_is_the_fisher_preconditioned_gradient():
    a = _log_joint()
    v = torch.randn(a.shape, generator=torch.Generator().manual_seed(3), dtype=a.dtype)
    q = torch.softmax(v, -1)
    fisher = torch.diag_embed(q) - q.unsqueeze(-1) * q.unsqueeze(-2)
    natural = elbo_velocity(v, a, flow="natural")
    assert torch.allclose((fisher @ natural.unsqueeze(-1)).squeeze(-1), elbo_velocity(v, a), atol=1e-12)
    assert torch.allclose(natural.sum(-1), torch.zeros(len(a), dtype=a.dtype), atol=1e-12)


# --- the dynamics --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.5, 3.0, 30.0, 300.0])
@pytest.mark.parametrize("flow", ["gradient", "natural"])
def test_energy_never_increases_along_the_dynamics(scale, flow):
    a = _log_joint(scale=scale)
    traj = elbo_dynamics(a, flow=flow, step_size=1.0 if flow == "natural" else 4.0, max_steps=300, record=True)
    assert bool((traj.energy_trace.diff(dim=0) <= 1e-12).all())
    assert torch.allclose(traj.q_trace.sum(-1), torch.ones((), dtype=a.dtype))
    # and it lies above the bound it approaches: E ≥ −log p(x)
    assert bool((traj.energy_trace >= -torch.logsumexp(a, -1) - 1e-10).all())


def test_gradient_flow_settles_on_the_exact_posterior():
    a = _log_joint(scale=1.0)
    traj = elbo_dynamics(a, max_steps=20000, tol=1e-9)
    assert bool(traj.converged.all())
    assert torch.allclose(traj.q, torch.softmax(a, -1), atol=1e-8)
    assert torch.allclose(traj.energy, -torch.logsumexp(a, -1), atol=1e-10)


def test_natural_flow_with_unit_step_is_the_exact_e_step():
    a = _log_joint(scale=50.0)
    traj = elbo_dynamics(a, flow="natural", step_size=1.0, max_steps=5)
    assert traj.n_steps == 1 and bool(traj.converged.all())
    assert torch.allclose(traj.q, torch.softmax(a, -1), atol=1e-12)


def test_the_posterior_is_a_fixed_point():
    a = _log_joint()
    traj = elbo_dynamics(a, init_logits=a.clone(), max_steps=10)
    assert traj.n_steps == 0 and torch.equal(traj.logits, a)


def test_a_memory_that_explains_x_best_excites_itself_and_inhibits_the_rest():
    a = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)  # from q uniform
    traj = elbo_dynamics(a, max_steps=50, record=True)
    q = traj.q_trace[:, 0]
    assert bool((q[:, 0].diff() > 0).all())  # the best memory's share only grows
    assert bool((q[:, 2].diff() < 0).all())  # the worst one's only shrinks


def test_dynamics_checks_its_inputs():
    a = _log_joint()
    with pytest.raises(ValueError, match="flow"):
        elbo_dynamics(a, flow="newton")
    with pytest.raises(ValueError, match="init_logits"):
        elbo_dynamics(a, init_logits=torch.zeros(3, 4, dtype=a.dtype))
    with pytest.raises(ValueError, match="finite"):
        elbo_dynamics(torch.tensor([[0.0, -float("inf")]]))
    with pytest.raises(ValueError, match="step_size"):
        elbo_dynamics(a, step_size=0.0)


# --- on a Gaussian mixture: the fixed point against scipy -----------------------------------------------------------


def _fixed_mixture(flow, steps):
    est = CLAMELBO(3, flow=flow, predict_steps=steps)
    est.memories_ = np.array([[0.0, 0.0], [3.0, -1.0], [-2.0, 2.0]])
    est.weights_, est.variance_, est.n_features_in_ = np.array([0.5, 0.3, 0.2]), 1.7, 2
    return est


def test_fixed_point_is_the_mixture_posterior_and_its_energy_the_log_evidence():
    x, _ = _blobs(seed=4, spread=2.0)
    est = _fixed_mixture("natural", 1)
    ref = _scipy_log_joint(x, est.memories_, est.variance_, est.weights_)
    assert np.allclose(est.log_joint(x).numpy(), ref, atol=1e-10)
    assert np.allclose(est.predict_proba(x), softmax(ref, axis=-1), atol=1e-12)
    assert np.allclose(est.score_samples(x), logsumexp(ref, axis=-1), atol=1e-10)


def test_the_papers_gradient_flow_approaches_the_posterior_like_one_over_t():
    # A memory whose posterior share is ~1e-13 moves at a speed proportional to its current share, so that share
    # decays only like 1/t: slow, but steadily towards the exact posterior and the exact log evidence.
    x, _ = _blobs(seed=4, spread=2.0)
    ref = _scipy_log_joint(x, *(lambda e: (e.memories_, e.variance_, e.weights_))(_fixed_mixture("gradient", 1)))
    errors, gaps = [], []
    for steps in (2000, 20000):
        est = _fixed_mixture("gradient", steps)
        errors.append(np.abs(est.predict_proba(x) - softmax(ref, axis=-1)).max())
        gaps.append(np.abs(est.score_samples(x) - logsumexp(ref, axis=-1)).max())
    assert errors[1] < 1e-4 and gaps[1] < 1e-4
    assert 5 < errors[0] / errors[1] < 20  # ten times the steps, about a tenth of the error


# --- the estimators -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", ["gradient", "natural"])
def test_clam_elbo_recovers_separated_clusters_and_never_raises_its_energy(flow):
    x, y = _blobs(seed=5)
    est = CLAMELBO(3, flow=flow, random_state=0).fit(x)
    assert adjusted_rand_score(y, est.labels_) == 1.0
    assert np.all(np.diff(est.energy_curve_) <= 1e-9)
    assert est.converged_ and est.memories_.shape == (3, 2) and est.n_memories_ == 3
    assert np.allclose(est.weights_.sum(), 1.0)
    assert np.array_equal(est.predict(x), est.labels_)


def test_clam_elbo_m_step_lands_on_the_weighted_means():
    x, _ = _blobs(seed=6, spread=1.5)
    est = CLAMELBO(3, flow="natural", tol=1e-12, max_iter=500, random_state=1).fit(x)
    q = est.predict_proba(x)
    assert np.allclose(est.memories_, (q.T @ x) / q.sum(0)[:, None], atol=1e-6)
    assert np.allclose(est.weights_, q.mean(0), atol=1e-6)


def test_clam_elbo_is_reproducible_and_clonable():
    x, _ = _blobs(seed=7, spread=1.0)
    a = CLAMELBO(3, random_state=3).fit(x)
    b = clone(a).fit(x)
    assert np.array_equal(a.memories_, b.memories_)
    assert np.array_equal(CLAMELBO(3, random_state=3).fit_predict(x), a.labels_)


def test_clam_learns_memories_whose_dynamics_never_raise_its_energy():
    x, y = _blobs(seed=8, per=30, d=5)
    x = (x - x.mean(0)) / x.std(0)
    est = CLAM(3, random_state=0).fit(x)
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    assert adjusted_rand_score(y, est.labels_) > 0.9
    v = torch.from_numpy(x)
    memories = torch.from_numpy(est.memories_)
    energies = [clam_energy(v, memories, est.beta)]
    sub = CLAM(3, n_steps=1, beta=est.beta)
    for _ in range(8):
        v = sub._run(v, memories)
        energies.append(clam_energy(v, memories, est.beta))
    assert bool((torch.stack(energies).diff(dim=0) <= 1e-12).all())


@pytest.mark.parametrize("cls", [CLAM, CLAMELBO])
def test_bad_input_is_a_clear_error(cls):
    x, _ = _blobs(seed=9, per=5)
    with pytest.raises(NotFittedError):
        cls(2).predict(x)
    with pytest.raises(ValueError, match="Expected 2D array"):  # scikit-learn's validate_data
        cls(2).fit(x[:, 0])
    with pytest.raises(ValueError, match="NaN"):
        cls(2).fit(np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x))
    with pytest.raises(ParameterError, match="n_memories"):
        cls(len(x) + 1).fit(x)
    with pytest.raises(ValueError, match="random_state"):
        cls(2, random_state=-1).fit(x)
    fitted = cls(2, random_state=0, **({"n_updates": 2} if cls is CLAM else {})).fit(x)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.zeros((3, 5)))
