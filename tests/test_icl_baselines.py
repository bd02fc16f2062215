"""Chapter 2's in-context baselines against their references: the KDE's density and samples against
scipy.stats.gaussian_kde, EM's against sklearn.mixture.GaussianMixture, and the mode-seeking descent against mean
shift, the isotropic gradient step and autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import gaussian_kde, ks_2samp
from sklearn.mixture import GaussianMixture

from ambridge.checks import ParameterError
from ambridge.dynamics import mean_shift_step
from ambridge.icl.baselines import MixtureDensity, fit_em, fit_kde, true_mixture
from ambridge.icl.evaluate import true_mixture_descent

MEANS = torch.tensor([[0.0, 0.0], [6.0, 1.0], [-3.0, 7.0]], dtype=torch.float64)


def _points(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    return MEANS[labels] + 0.33 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _queries(seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(200, 2, generator=g, dtype=torch.float64) * 2 - 1) * 10


def test_kde_density_matches_scipy():
    x = _points()
    kde = gaussian_kde(x.numpy().T)
    q = _queries()
    np.testing.assert_allclose(fit_kde(x).log_prob(q).numpy(), kde.logpdf(q.numpy().T), rtol=1e-9, atol=1e-9)
    # Scott's rule: covariance = n^(-2/(d+4)) × the sample covariance (divisor n - 1)
    fitted = fit_kde(x).covariances[0].numpy()
    np.testing.assert_allclose(fitted, len(x) ** (-2 / 6) * np.cov(x.numpy().T), rtol=1e-12)


def test_kde_samples_match_scipy_resample():
    x = _points()
    ours = fit_kde(x).sample(20_000, generator=torch.Generator().manual_seed(2)).numpy()
    theirs = gaussian_kde(x.numpy().T).resample(20_000, seed=np.random.default_rng(3)).T
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.1)
    np.testing.assert_allclose(np.cov(ours.T), np.cov(theirs.T), rtol=0.05, atol=0.1)
    for axis in (0, 1):
        assert ks_2samp(ours[:, axis], theirs[:, axis]).pvalue > 0.01


def test_em_density_and_samples_match_sklearn():
    x = _points(60)
    gm = GaussianMixture(3, covariance_type="full", random_state=0).fit(x.numpy())
    fit = fit_em(x, 3, seed=0)
    q = _queries()
    np.testing.assert_allclose(fit.log_prob(q).numpy(), gm.score_samples(q.numpy()), rtol=1e-9, atol=1e-9)
    ours = fit.sample(20_000, generator=torch.Generator().manual_seed(4)).numpy()
    theirs, _ = gm.sample(20_000)
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.1)
    np.testing.assert_allclose(np.cov(ours.T), np.cov(theirs.T), rtol=0.05, atol=0.15)
    for axis in (0, 1):
        assert ks_2samp(ours[:, axis], theirs[:, axis]).pvalue > 0.01


def test_true_mixture_density_is_the_formula():
    mix = true_mixture(MEANS, 0.33)
    q = _queries()
    ref = torch.logsumexp(torch.stack([torch.distributions.MultivariateNormal(
        m, covariance_matrix=0.33**2 * torch.eye(2, dtype=torch.float64)).log_prob(q) for m in MEANS]), 0) - np.log(3)
    torch.testing.assert_close(mix.log_prob(q), ref)
    torch.testing.assert_close(mix.energy(q), -ref)


def test_mode_step_is_mean_shift_and_the_isotropic_gradient_step():
    x, q = _points(), _queries()
    h = 0.7
    iso = MixtureDensity(torch.full((len(x),), 1 / len(x), dtype=torch.float64), x,
                         (h**2 * torch.eye(2, dtype=torch.float64)).expand(len(x), 2, 2).clone())
    torch.testing.assert_close(iso.mode_step(q), mean_shift_step(q, x, h, method="exact"))
    init = q[None]
    torch.testing.assert_close(true_mixture(MEANS, 0.33).descend(q, 7)[None],
                               true_mixture_descent(init, MEANS[None], 0.33, step_size=0.33**2, n_steps=7))


def test_descent_never_raises_the_energy_and_ends_at_a_mode():
    x = _points(40)
    for fit in (fit_kde(x), fit_em(x, 3)):
        state = _queries()
        energies = [fit.energy(state)]
        for _ in range(60):
            state = fit.mode_step(state)
            energies.append(fit.energy(state))
        steps = torch.stack(energies)
        assert bool((steps[1:] <= steps[:-1] + 1e-9).all())
        end = state.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fit.energy(end).sum(), end)
        assert grad.norm(dim=-1).median() < 1e-3


def test_too_few_points_is_an_error():
    with pytest.raises(ParameterError, match="points"):
        fit_kde(_points(2))
    with pytest.raises(ParameterError, match="points"):
        fit_em(_points(2), 3)
    with pytest.raises(ParameterError, match="covariances"):
        MixtureDensity(torch.ones(2) / 2, MEANS[:2], torch.eye(2, dtype=torch.float64).expand(3, 2, 2))
