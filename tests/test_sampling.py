"""Langevin sampling (ambridge.sampling): the exact stationary law of ULA on a Gaussian, temperature, the T = 0
limit, reproducibility, recording, and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ambridge import dynamics, sampling

F64 = torch.float64
N_CHAINS = 20000
BURN_IN = 150



def gaussian_energy(m: torch.Tensor, s: float):
    """E(x) = ‖x − m‖²/(2s²)."""
    return lambda x: (x - m).pow(2).sum(-1) / (2 * s**2)


def ula_variance(s: float, eps: float) -> float:
    """Stationary variance of x ← x − ε(x − m)/s² + √(2ε) ξ: v = a²v + 2ε, a = 1 − ε/s²."""
    return s**2 / (1 - eps / (2 * s**2))


def _run(m, s, eps, temperature=1.0, seed=0):
    d = m.shape[0]
    g = torch.Generator().manual_seed(seed)
    init = torch.zeros(N_CHAINS, d, dtype=F64)
    traj = sampling.langevin_sample(
        gaussian_energy(m, s), init, step_size=eps, n_steps=BURN_IN, temperature=temperature, generator=g
    )
    return traj.final.numpy()


def _check_moments(x, m, var):
    """Mean and variance within 4 standard errors (computed here) of the target, per coordinate."""
    n = x.shape[0]
    se_mean = math.sqrt(var / n)
    se_var = var * math.sqrt(2 / (n - 1))
    np.testing.assert_array_less(np.abs(x.mean(0) - m), 4 * se_mean)
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var), 4 * se_var)
    return se_var


@pytest.mark.parametrize(
    "m, s, eps",
    [(np.array([1.5]), 0.8, 0.1), (np.array([-1.0, 2.0]), 1.2, 0.3)],
    ids=["1-D", "2-D"],
)
def test_ula_reaches_its_exact_stationary_gaussian(m, s, eps):
    # burn-in: the mean's offset decays as (1 − ε/s²)^t; check it is negligible against the standard error
    assert (1 - eps / s**2) ** BURN_IN * np.abs(m).max() < 1e-6
    x = _run(torch.as_tensor(m, dtype=F64), s, eps)
    var = ula_variance(s, eps)
    se_var = _check_moments(x, m, var)
    # the test can tell ULA's biased variance from the target s²: the bias is > 4 standard errors
    assert var - s**2 > 4 * se_var
    assert np.all(np.abs(x.var(0, ddof=1) - s**2) > 2 * se_var)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_scales_the_stationary_variance(temperature):
    m, s, eps = np.array([0.5, -0.5]), 1.0, 0.2
    x = _run(torch.as_tensor(m, dtype=F64), s, eps, temperature=temperature, seed=3)
    _check_moments(x, m, temperature * ula_variance(s, eps))


def test_temperature_zero_is_gradient_flow():
    m = torch.tensor([1.0, -2.0], dtype=F64)
    energy = gaussian_energy(m, 0.7)
    init = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    lang = sampling.langevin_sample(
        energy, init, step_size=0.05, n_steps=20, temperature=0.0, record_every=1, generator=torch.Generator()
    )
    flow = dynamics.gradient_flow(energy, init, step_size=0.05, n_steps=20)
    torch.testing.assert_close(lang.states, flow.states, rtol=0, atol=0)
    torch.testing.assert_close(lang.energies, flow.energies, rtol=0, atol=0)


def test_langevin_step_is_the_ula_update_with_the_generators_noise():
    m = torch.tensor([0.3, -0.4, 1.0], dtype=F64)
    energy = gaussian_energy(m, 1.5)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    new, value = sampling.langevin_step(
        energy, x, step_size=0.1, temperature=0.7, generator=torch.Generator().manual_seed(42)
    )
    noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(42), dtype=F64)
    expected = x - 0.1 * (x - m) / 1.5**2 + math.sqrt(2 * 0.1 * 0.7) * noise
    torch.testing.assert_close(new, expected, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(value, energy(x))


def test_same_seed_gives_identical_samples_and_another_seed_does_not():
    energy = gaussian_energy(torch.zeros(2, dtype=F64), 1.0)
    init = torch.zeros(50, 2, dtype=F64)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return sampling.langevin_sample(energy, init, step_size=0.1, n_steps=30, generator=g).final

    a, b, c = run(123), run(123), run(124)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize(
    "n_steps, record_every, recorded",
    [(10, 0, [0, 10]), (10, 1, list(range(11))), (10, 3, [0, 3, 6, 9, 10]), (10, 5, [0, 5, 10]), (0, 0, [0])],
)
def test_record_every_keeps_the_right_states(n_steps, record_every, recorded):
    energy = gaussian_energy(torch.zeros(2, dtype=F64), 1.0)
    init = torch.ones(3, 2, dtype=F64)
    full = sampling.langevin_sample(
        energy, init, step_size=0.1, n_steps=n_steps, record_every=1, generator=torch.Generator().manual_seed(0)
    )
    kept = sampling.langevin_sample(
        energy,
        init,
        step_size=0.1,
        n_steps=n_steps,
        record_every=record_every,
        generator=torch.Generator().manual_seed(0),
    )
    assert kept.states.shape == (len(recorded), 3, 2) and kept.energies.shape == (len(recorded), 3)
    torch.testing.assert_close(kept.states, full.states[recorded], rtol=0, atol=0)
    torch.testing.assert_close(kept.energies, energy(kept.states))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(step_size=-0.1),
        dict(step_size=0.0),
        dict(step_size=float("nan")),
        dict(n_steps=2.5),
        dict(n_steps=-1),
        dict(n_steps="10"),
        dict(temperature=-1.0),
        dict(temperature=float("nan")),
        dict(temperature=float("inf")),
        dict(record_every=-1),
        dict(record_every=1.5),
    ],
)
def test_bad_arguments_raise_value_error(kwargs):
    args = dict(step_size=0.1, n_steps=5)
    args.update(kwargs)
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        sampling.langevin_sample(lambda x: x.pow(2).sum(-1), torch.zeros(2, 2), **args)
