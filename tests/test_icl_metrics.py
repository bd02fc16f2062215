"""Chapter 2's metrics: the public code's paired error (its formula and its reference chain, replayed literally), mode
coverage and the mass divergence (ideal on exact samples, a planted dropped mode shows), the nearest-mean distance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from ambridge.checks import ParameterError
from ambridge.icl.baselines import true_mixture
from ambridge.icl.metrics import (component_mass, exact_nearest_mean_distance, jensen_shannon, mass_divergence,
                                  off_component_share,
                                  mode_coverage, nearest_component, nearest_mean_distance, paired_squared_error,
                                  public_reference_descent, score_samples)

STD = 0.33
MEANS = torch.tensor([[[0.0, 0.0], [6.0, 1.0], [-3.0, 7.0]]], dtype=torch.float64)  # (1, 3, 2), well apart


def _exact(n, seed=0, means=MEANS):
    g = torch.Generator().manual_seed(seed)
    return true_mixture(means[0], STD).sample(n, generator=g)[None]  # (1, n, 2)


def _drop_third(samples):
    """A planted dropped mode: every sample of component 2 moved to component 0 (same offsets)."""
    out = samples.clone()
    on_third = nearest_component(samples, MEANS, 3 * STD)[0] == 2
    out[0, on_third] += MEANS[0, 0] - MEANS[0, 2]
    return out


def test_paired_error_is_the_public_formula():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 5, 2, generator=g), torch.randn(2, 5, 2, generator=g)
    public = torch.square(torch.norm(a - b, dim=-1))  # src/systems.py@96adf9b, the evaluation callback
    torch.testing.assert_close(paired_squared_error(a, b), public)
    np.testing.assert_allclose(paired_squared_error(a, b).numpy(), ((a.numpy() - b.numpy()) ** 2).sum(-1), rtol=1e-6)
    assert paired_squared_error(a, a).abs().max() == 0
    with pytest.raises(ParameterError, match="reference"):
        paired_squared_error(a, b[:, :4])


def _public_reference_literally(init, means, std, step_size, n_steps):
    """EnergyFunctionMixtureOfGaussians.sample_data_with_langevin_mcmc of src/systems.py@96adf9b, with its
    in-place rescaling under no_grad, written out with torch.distributions as that code does."""
    k = means.shape[0]
    dist = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(k, dtype=means.dtype)),
        torch.distributions.MultivariateNormal(means, covariance_matrix=std**2 * torch.eye(2, dtype=means.dtype)
                                               .expand(k, 2, 2)))
    x = init.clone().requires_grad_(True)
    for _ in range(n_steps):
        energy = -dist.log_prob(x)
        with torch.no_grad():
            energy *= 10.0 / torch.max(energy)
        grad = torch.autograd.grad([energy.sum()], [x])[0]
        x = x - step_size * grad / 10.0
    return x.detach()


def test_public_reference_matches_the_public_code():
    g = torch.Generator().manual_seed(2)
    init = (torch.rand(1, 40, 2, generator=g, dtype=torch.float64) * 2 - 1) * 15
    ours = public_reference_descent(init, MEANS, STD, step_size=0.1, n_steps=7)
    theirs = _public_reference_literally(init[0], MEANS[0], STD, 0.1, 7)
    torch.testing.assert_close(ours[0], theirs, rtol=1e-10, atol=1e-10)
    # at the public alpha = 0.1 the reference gets about half-way to its mean in 7 steps: 1 - (1 - 0.01/σ²)^7
    near = torch.tensor([[[0.5, 0.0]]], dtype=torch.float64)
    moved = public_reference_descent(near, MEANS, STD, step_size=0.1, n_steps=7)[0, 0, 0].item()
    assert moved == pytest.approx(0.5 * (1 - 0.01 / STD**2) ** 7, rel=1e-6)
    # at alpha = 3.16 the step 0.316 > 2σ²: descent on the true energy diverges
    far = public_reference_descent(near, MEANS, STD, step_size=3.16, n_steps=7)
    assert far.norm() > 10 * near.norm()


def test_coverage_and_divergence_are_ideal_on_exact_samples():
    x = _exact(20_000)
    assert mode_coverage(x, MEANS, 3 * STD).item() == 1.0
    assert mass_divergence(x, MEANS, 3 * STD, STD).item() < 1e-3
    mass = component_mass(x, MEANS, 3 * STD)[0]
    np.testing.assert_allclose(mass[:3].numpy(), 1 / 3, atol=0.015)
    assert mass[3].item() == pytest.approx(math.exp(-4.5), abs=0.004)  # outside 3σ in 2-D: exp(-9/2)
    assert off_component_share(3 * STD, STD, 2) == pytest.approx(math.exp(-4.5), rel=1e-9)


def test_a_planted_dropped_mode_shows():
    x = _exact(6000, seed=3)
    dropped = _drop_third(x)
    assert mode_coverage(dropped, MEANS, 3 * STD).item() == pytest.approx(2 / 3)
    # mass (2/3, 1/3, 0) against (1/3, 1/3, 1/3), tails aside: JS = 0.2075 bits (worked out by hand)
    assert mass_divergence(dropped, MEANS, 3 * STD, STD).item() == pytest.approx(0.2075, abs=0.02)
    # the nearest-mean distance cannot see it
    assert nearest_mean_distance(dropped, MEANS).mean().item() == pytest.approx(
        nearest_mean_distance(x, MEANS).mean().item(), rel=1e-9)
    # one stray sample covers a mode at min_share 0, not at a quarter of its fair share
    stray = dropped.clone()
    stray[0, 0] = MEANS[0, 2]
    assert mode_coverage(stray, MEANS, 3 * STD).item() == 1.0
    assert mode_coverage(stray, MEANS, 3 * STD, min_share=1 / 12).item() == pytest.approx(2 / 3)


def test_jensen_shannon_against_scipy():
    rng = np.random.default_rng(4)
    p, q = rng.dirichlet(np.ones(5), size=6), rng.dirichlet(np.ones(5), size=6)
    q[0, 2] = 0.0
    q[0] /= q[0].sum()
    ours = jensen_shannon(torch.as_tensor(p), torch.as_tensor(q)).numpy()
    theirs = np.array([jensenshannon(a, b, base=2) ** 2 for a, b in zip(p, q)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(jensen_shannon(torch.as_tensor(p), torch.as_tensor(p)).numpy(), 0, atol=1e-12)
    assert jensen_shannon(torch.tensor([1.0, 0]), torch.tensor([0, 1.0])).item() == pytest.approx(1.0)


def test_nearest_mean_distance_of_exact_samples():
    x = _exact(40_000, seed=5)
    assert nearest_mean_distance(x, MEANS).mean().item() == pytest.approx(exact_nearest_mean_distance(STD), rel=0.01)
    assert exact_nearest_mean_distance(STD) == pytest.approx(STD * math.sqrt(math.pi / 2))
    assert exact_nearest_mean_distance(1.0, dim=3) == pytest.approx(2 * math.sqrt(2 / math.pi))


def test_score_samples_keys_and_shapes():
    x = torch.cat([_exact(50, seed=s) for s in range(3)])
    means = MEANS.expand(3, 3, 2)
    out = score_samples(x, means, STD, reference=x)
    assert set(out) == {"coverage", "divergence", "nearest", "paired"} and all(v.shape == (3,) for v in out.values())
    assert out["paired"].abs().max() == 0
    assert "paired" not in score_samples(x, means, STD)
    with pytest.raises(ParameterError, match="radius"):
        nearest_component(x, means, 0.0)
