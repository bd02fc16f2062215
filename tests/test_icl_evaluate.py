"""Chapter 2's evaluation: the sampler's temperature, the paired metric at its ideal when the model's energy is the
true energy, and the baselines' scores laid out as the chapter reads them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ambridge.energies import gaussian_mixture_nll
from ambridge.icl import MixtureStream, MixtureTask, uniform_init
from ambridge.icl.evaluate import (METHODS, band_over_runs, mean_band, noise_for_temperature, sample_given,
                                   sampler_temperature, samples_at_context_sizes, score_baselines, score_model,
                                   scores_at)

STD = 0.33


class EnergyStub:
    """Anything with the model's candidate interface (the sampler's cached-prefix pass and the plain one): here an
    energy of the candidates that ignores the context."""

    def __init__(self, energy):
        self.energy = energy

    def context_cache(self, context):
        return None

    def cached_energies(self, cache, candidates, blocked):
        return self.energy(candidates)

    def candidate_energies(self, context, candidates, positions, *, mask=None):
        return None, self.energy(candidates)


def _mixtures(b=3, seed=0):
    points, means = MixtureStream(MixtureTask(), seed=seed).batch(b)
    return points.double(), means.double()


def test_temperature_of_the_training_sampler():
    assert sampler_temperature(3.16, 0.01) == pytest.approx(1.582e-5, rel=1e-3)
    assert noise_for_temperature(3.16, 1.0) == pytest.approx(math.sqrt(6.32))
    assert sampler_temperature(3.16, noise_for_temperature(3.16, 1.0)) == pytest.approx(1.0)


def test_noise_matched_to_the_step_samples_temperature_one():
    """On E = κ‖x‖²/2 the step-α sampler with s = √(2α) has the stationary variance 1/(κ(1 − ακ/2)) (exact for this
    linear recursion), → 1/κ = the Boltzmann variance at T = 1 as α → 0."""
    kappa, alpha = 2.0, 0.05
    stub = EnergyStub(lambda x: 0.5 * kappa * x.pow(2).sum(-1))
    context = torch.zeros(1, 0, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    init = torch.zeros(1, 20_000, 2, dtype=torch.float64)
    x = sample_given(stub, context, init, n_steps=200, step_size=alpha, noise_std=noise_for_temperature(alpha, 1.0),
                     generator=g).final
    assert x.var().item() == pytest.approx(1 / (kappa * (1 - alpha * kappa / 2)), rel=0.03)


def test_paired_metric_is_zero_when_the_model_energy_is_the_true_energy():
    points, means = _mixtures()
    truth = EnergyStub(lambda x: torch.stack([gaussian_mixture_nll(xb, mb, STD**2) for xb, mb in zip(x, means)]))
    g = torch.Generator().manual_seed(1)
    init = uniform_init((3, 32, 2), 15.0, generator=g, dtype=torch.float64)
    # the step σ² is the true energy's mode-seeking step; noise 0, the temperature of the public code's evaluation
    scores = score_model(truth, points, means, STD, [0, 5], init, n_steps=7, step_size=STD**2, noise_std=0.0,
                         box=15.0, generator=g)
    assert np.abs(scores["paired"]).max() < 1e-12
    assert np.abs(scores["nearest"]).max() < 1e-6  # descent reaches the means
    assert set(scores) == {"coverage", "divergence", "nearest", "paired"}
    assert all(v.shape == (2, 3) for v in scores.values())


def test_samples_at_context_sizes_are_the_chains_of_sample_given():
    points, _ = _mixtures()
    stub = EnergyStub(lambda x: x.pow(2).sum(-1))
    init = uniform_init((3, 4, 2), 15.0, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = samples_at_context_sizes(stub, points, init, [0, 3], n_steps=2, step_size=0.1, noise_std=0.0, box=15.0)
    assert out.shape == (2, 3, 4, 2)
    torch.testing.assert_close(out[1], sample_given(stub, points[:, :3], init, n_steps=2, step_size=0.1,
                                                    noise_std=0.0, box=15.0).final)


def test_baseline_scores():
    points, means = _mixtures(b=2, seed=3)
    g = torch.Generator().manual_seed(4)
    init = uniform_init((2, 64, 2), 15.0, generator=g, dtype=torch.float64)
    out = score_baselines(points, means, STD, [2, 3, 30], init, n_steps=7, generator=g)
    assert set(out) == set(METHODS)
    for scores in out.values():
        assert all(v.shape == (3, 2) for v in scores.values())
    assert np.isnan(out[("kde", "train")]["nearest"][0]).all()  # n = 2: no KDE in 2-D
    assert np.isnan(out[("em", "unit")]["coverage"][0]).all()  # n = 2 < K = 3: no EM
    assert not np.isnan(out[("em", "train")]["coverage"][1:]).any()  # from n = 3 on, both fit
    assert not np.isnan(out[("kde", "train")]["paired"][1:]).any()
    truth = out[("truth", "train")]
    assert np.abs(truth["paired"]).max() == 0 and truth["nearest"].mean() < 1e-4
    assert np.isnan(out[("truth", "unit")]["paired"]).all()
    assert out[("truth", "unit")]["nearest"].mean() == pytest.approx(STD * math.sqrt(math.pi / 2), rel=0.2)
    assert out[("em", "unit")]["coverage"][-1].min() == 1.0  # 30 points, K known: EM finds the three components


def test_bands_and_summaries():
    values = np.array([[1.0, 2.0, 3.0, np.nan], [np.nan] * 4])
    mean, low, high = mean_band(values)
    assert mean[0] == pytest.approx(2.0) and np.isnan(mean[1])
    assert high[0] - mean[0] == pytest.approx(1.0 / math.sqrt(3))  # sd 1 over 3 values
    assert scores_at({"a": values, "b": values * 2}, [0, 5], 0) == {"a": 2.0, "b": 4.0}
    assert scores_at({"a": values}, [0, 5], 5) == {}
    runs = [{"m": np.array([[1.0, 3.0], [2.0, 2.0]])}, {"m": np.array([[3.0, 5.0], [2.0, 2.0]])}]
    mean, low, high = band_over_runs(runs, "m")
    np.testing.assert_allclose(mean, [3.0, 2.0])
    np.testing.assert_allclose(high - mean, [np.std([2.0, 4.0], ddof=1) / math.sqrt(2), 0.0])
    with pytest.raises(ValueError):
        band_over_runs([], "m")
