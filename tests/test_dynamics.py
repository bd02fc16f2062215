"""Retrieval dynamics (ambridge.dynamics): gradients, gradient flow, mean shift = Hopfield update = CLAM step,
the attention fast path against the exact one, monotone energy (property-based), and fixed points.

References are written in the test in numpy (or autograd of a library energy, where the claim is that a step *is*
a gradient step on that energy — the energies themselves are checked against scipy in test_energies.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp, softmax

from ambridge import data as amdata
from ambridge import dynamics, energies

F64 = torch.float64



def t64(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=F64)


def numpy_mean_shift(x, pts, sigma, log_w=None):
    """x ← Σ_n r_n x_n with r = softmax_n(log w_n − ‖x − x_n‖²/(2σ²)); x (M, D)."""
    d2 = ((x[:, None, :] - pts[None]) ** 2).sum(-1)
    logits = -d2 / (2 * sigma**2) + (0 if log_w is None else log_w)
    return softmax(logits, axis=-1) @ pts


def autograd(fn, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    fn(x).sum().backward()
    return x.grad


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# --- energy_gradient and gradient_flow ------------------------------------------------------------------------


def _quadratic(rng, d):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = q @ np.diag(np.linspace(0.5, 2.0, d)) @ q.T
    m = rng.normal(size=d)
    return a, m


def test_energy_gradient_is_the_analytic_gradient_per_state(rng):
    d = 3
    a, m = _quadratic(rng, d)
    at, mt = t64(a), t64(m)

    def energy(x):
        y = x - mt
        return 0.5 * torch.einsum("...i,ij,...j->...", y, at, y)

    x = rng.normal(size=(2, 4, d))
    grad, value = dynamics.energy_gradient(energy, t64(x))
    assert grad.shape == (2, 4, d) and value.shape == (2, 4)
    np.testing.assert_allclose(grad.numpy(), (x - m) @ a, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(value.numpy(), 0.5 * np.einsum("...i,ij,...j->...", x - m, a, x - m), rtol=1e-13)
    assert not value.requires_grad and not grad.requires_grad


def test_energy_gradient_passes_gradcheck_through_a_library_energy():
    g = torch.Generator().manual_seed(0)
    mem = torch.randn(5, 3, generator=g, dtype=F64)
    x = torch.randn(4, 3, generator=g, dtype=F64)
    grad, _ = dynamics.energy_gradient(lambda s: energies.clam_energy(s, mem, 0.9), x)
    # central finite differences, coordinate by coordinate
    h = 1e-6
    fd = torch.zeros_like(x)
    for i in range(3):
        e = torch.zeros(3, dtype=F64)
        e[i] = h
        fd[:, i] = (energies.clam_energy(x + e, mem, 0.9) - energies.clam_energy(x - e, mem, 0.9)) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-7, atol=1e-8)


def test_gradient_flow_on_a_quadratic_reaches_the_minimum_monotonically(rng):
    d, eta, steps = 3, 0.4, 120  # slowest contraction 1 − 0.4·0.5 = 0.8; 0.8^120 ≈ 2e-12
    a, m = _quadratic(rng, d)
    at, mt = t64(a), t64(m)

    def energy(x):
        y = x - mt
        return 0.5 * torch.einsum("...i,ij,...j->...", y, at, y)

    x0 = rng.normal(size=(5, d)) * 3
    traj = dynamics.gradient_flow(energy, t64(x0), step_size=eta, n_steps=steps)
    assert traj.states.shape == (steps + 1, 5, d) and traj.energies.shape == (steps + 1, 5)
    torch.testing.assert_close(traj.states[0], t64(x0))
    # closed form of explicit Euler: x_t − m = (I − ηA)^t (x_0 − m)
    expected = (x0 - m) @ np.linalg.matrix_power(np.eye(d) - eta * a, steps).T + m
    np.testing.assert_allclose(traj.final.numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(traj.final.numpy(), np.broadcast_to(m, (5, d)), atol=1e-6)
    # energies are the energies of the recorded states, and never increase
    torch.testing.assert_close(traj.energies, energy(traj.states))
    assert bool((traj.energies[1:] <= traj.energies[:-1]).all())


def test_gradient_flow_with_zero_steps_and_bad_arguments():
    x = torch.randn(3, 2, dtype=F64)
    traj = dynamics.gradient_flow(lambda s: s.pow(2).sum(-1), x, step_size=0.1, n_steps=0)
    assert traj.states.shape == (1, 3, 2)
    torch.testing.assert_close(traj.energies[0], x.pow(2).sum(-1))
    for bad in dict(step_size=0.0, n_steps=1), dict(step_size=0.1, n_steps=-1), dict(step_size=0.1, n_steps=2.0):
        with pytest.raises(ValueError):
            dynamics.gradient_flow(lambda s: s.pow(2).sum(-1), x, **bad)


# --- attention_update ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sdpa", "exact", "auto"])
def test_attention_update_is_softmax_qk_plus_bias_times_v(rng, method):
    q = rng.normal(size=(2, 3, 4))
    k = rng.normal(size=(6, 4))
    v = rng.normal(size=(6, 5))
    bias = rng.normal(size=6)
    expected = softmax(0.7 * q @ k.T + bias, axis=-1) @ v
    got = dynamics.attention_update(t64(q), t64(k), t64(v), scale=0.7, bias=t64(bias), method=method)
    assert got.shape == (2, 3, 5) and got.dtype == F64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-11, atol=1e-12)
    # a single query (D,) gives (Dv,)
    one = dynamics.attention_update(t64(q[0, 0]), t64(k), t64(v), scale=0.7, method=method)
    assert one.shape == (5,)
    np.testing.assert_allclose(one.numpy(), softmax(0.7 * k @ q[0, 0]) @ v, rtol=1e-11, atol=1e-12)


# --- mean shift ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_mean_shift_is_a_gradient_step_of_size_sigma_squared_on_the_kde_nll(rng, sigma):
    pts = t64(rng.normal(size=(15, 3)))
    x = t64(rng.normal(size=(2, 4, 3)) * 1.5)
    step = dynamics.mean_shift_step(x, pts, sigma)
    grad = autograd(lambda s: energies.kde_nll(s, pts, sigma), x)
    torch.testing.assert_close(step, x - sigma**2 * grad, rtol=1e-10, atol=1e-12)
    expected = numpy_mean_shift(x.numpy().reshape(-1, 3), pts.numpy(), sigma).reshape(2, 4, 3)
    np.testing.assert_allclose(step.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_weighted_mean_shift_is_a_gradient_step_on_the_weighted_mixture(rng):
    n, d, sigma = 10, 2, 0.8
    pts = rng.normal(size=(n, d))
    w = rng.random(n) + 0.1
    w /= w.sum()
    x = rng.normal(size=(6, d))
    step = dynamics.mean_shift_step(t64(x), t64(pts), sigma, log_weights=t64(np.log(w)))
    np.testing.assert_allclose(step.numpy(), numpy_mean_shift(x, pts, sigma, np.log(w)), rtol=1e-10, atol=1e-12)
    grad = autograd(lambda s: energies.gaussian_mixture_nll(s, t64(pts), sigma**2, t64(w)), t64(x))
    np.testing.assert_allclose(step.numpy(), x - sigma**2 * grad.numpy(), rtol=1e-10, atol=1e-12)


def _cases(rng, dtype):
    """(name, state, data, bandwidth, log_weights): on a sphere, off it (the bias path), and weighted."""
    g = torch.Generator().manual_seed(5)
    sphere = amdata.sphere_points(20, 4, radius=2.0, generator=g, dtype=dtype)
    off = torch.as_tensor(rng.normal(size=(20, 4)) * 1.5, dtype=dtype)
    x = torch.as_tensor(rng.normal(size=(3, 5, 4)) * 1.5, dtype=dtype)
    lw = torch.as_tensor(np.log(rng.dirichlet(np.ones(20))), dtype=dtype)
    return [
        ("sphere", x, sphere, 0.7, None),
        ("off-sphere", x, off, 0.7, None),
        ("sphere+weights", x, sphere, 0.7, lw),
        ("off-sphere+weights", x, off, 1.3, lw),
        ("off-sphere narrow", x, off, 0.2, None),
    ]


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_sdpa_and_exact_mean_shift_agree(rng, dtype, rtol):
    for name, x, pts, bw, lw in _cases(rng, dtype):
        fast = dynamics.mean_shift_step(x, pts, bw, log_weights=lw, method="sdpa")
        auto = dynamics.mean_shift_step(x, pts, bw, log_weights=lw, method="auto")
        exact = dynamics.mean_shift_step(x, pts, bw, log_weights=lw, method="exact")
        assert fast.dtype == exact.dtype == dtype and fast.shape == x.shape
        scale = float(pts.abs().max())
        torch.testing.assert_close(fast, exact, rtol=rtol, atol=rtol * scale, msg=name)
        torch.testing.assert_close(auto, fast, rtol=0, atol=0, msg=name)
        # and both are the weighted average, computed in float64 numpy
        ref = numpy_mean_shift(
            x.double().numpy().reshape(-1, 4), pts.double().numpy(), bw, None if lw is None else lw.double().numpy()
        ).reshape(x.shape)
        np.testing.assert_allclose(exact.double().numpy(), ref, rtol=rtol, atol=rtol * scale, err_msg=name)


def test_sdpa_mean_shift_keeps_the_bias_for_data_nearly_on_a_sphere():
    g = torch.Generator().manual_seed(1)
    pts = amdata.sphere_points(6, 3, generator=g, dtype=F64)
    pts[0] *= math.sqrt(1 + 5e-7)  # norms² 1 and 1 + 5e-7: inside norms_are_equal's tolerance, but not equal
    x = torch.randn(8, 3, generator=g, dtype=F64) * 0.5
    fast = dynamics.mean_shift_step(x, pts, 0.3, method="sdpa")
    exact = dynamics.mean_shift_step(x, pts, 0.3, method="exact")
    torch.testing.assert_close(fast, exact, rtol=1e-10, atol=1e-10)


def test_per_centre_bandwidth_step_is_the_mixture_mode_formula(rng):
    n, d = 9, 3
    pts = rng.normal(size=(n, d))
    sig = rng.uniform(0.3, 2.0, size=n)
    w = rng.dirichlet(np.ones(n))
    x = rng.normal(size=(2, 5, d))
    for log_w in (None, np.log(w)):
        xf = x.reshape(-1, d)
        d2 = ((xf[:, None] - pts[None]) ** 2).sum(-1)
        lw = np.zeros(n) if log_w is None else log_w
        logr = lw - d * np.log(sig) - d2 / (2 * sig**2)
        r = np.exp(logr - logsumexp(logr, axis=-1, keepdims=True))
        expected = (r / sig**2) @ pts / (r / sig**2).sum(-1, keepdims=True)
        for method in ("auto", "exact"):
            got = dynamics.mean_shift_step(
                t64(x), t64(pts), t64(sig), log_weights=None if log_w is None else t64(log_w), method=method
            )
            np.testing.assert_allclose(got.numpy().reshape(-1, d), expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="exact"):
        dynamics.mean_shift_step(t64(x), t64(pts), t64(sig), method="sdpa")


def test_per_centre_bandwidth_all_equal_is_plain_mean_shift(rng):
    pts = t64(rng.normal(size=(7, 2)))
    x = t64(rng.normal(size=(4, 2)))
    same = dynamics.mean_shift_step(x, pts, torch.full((7,), 0.6, dtype=F64))
    torch.testing.assert_close(same, dynamics.mean_shift_step(x, pts, 0.6, method="exact"), rtol=1e-12, atol=1e-12)


# --- Hopfield update and CLAM step -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sdpa", "exact"])
@pytest.mark.parametrize("beta", [0.5, 2.0, 8.0])
def test_hopfield_update_is_X_transpose_softmax(rng, method, beta):
    mem = rng.normal(size=(7, 4))
    xi = rng.normal(size=(5, 4))
    expected = np.stack([mem.T @ softmax(beta * mem @ q) for q in xi])
    got = dynamics.hopfield_update(t64(xi), t64(mem), beta, method=method)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("beta", [0.5, 2.0, 8.0])
def test_hopfield_update_is_mean_shift_on_a_sphere(beta):
    g = torch.Generator().manual_seed(2)
    mem = amdata.sphere_points(12, 5, radius=1.5, generator=g, dtype=F64)
    xi = torch.randn(6, 5, generator=g, dtype=F64)
    hop = dynamics.hopfield_update(xi, mem, beta)
    ms = dynamics.mean_shift_step(xi, mem, beta**-0.5, method="exact")
    torch.testing.assert_close(hop, ms, rtol=1e-11, atol=1e-12)
    # off the sphere they differ (the per-pattern bias): otherwise the check above is vacuous
    off = mem * torch.linspace(0.5, 1.5, 12, dtype=F64)[:, None]
    assert (dynamics.hopfield_update(xi, off, beta) - dynamics.mean_shift_step(xi, off, beta**-0.5)).abs().max() > 1e-3


@pytest.mark.parametrize("step_size", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("beta", [0.3, 1.0, 5.0])
def test_clam_step_is_half_a_gradient_step_on_the_clam_energy(rng, step_size, beta):
    mem = t64(rng.normal(size=(6, 3)))
    v = t64(rng.normal(size=(4, 3)) * 1.5)
    grad = autograd(lambda s: energies.clam_energy(s, mem, beta), v)
    got = dynamics.clam_step(v, mem, beta, step_size=step_size)
    torch.testing.assert_close(got, v - step_size / 2 * grad, rtol=1e-10, atol=1e-12)
    # Δt = 1 is the posterior-weighted average of the memories, r = softmax(−β‖μ − v‖²)
    if step_size == 1.0:
        vn, mn = v.numpy(), mem.numpy()
        r = softmax(-beta * ((vn[:, None] - mn[None]) ** 2).sum(-1), axis=-1)
        np.testing.assert_allclose(got.numpy(), r @ mn, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.01, float("nan")])
def test_clam_step_rejects_step_sizes_outside_unit_interval(bad):
    with pytest.raises(ValueError, match="step_size"):
        dynamics.clam_step(torch.zeros(1, 2), torch.randn(3, 2), 1.0, step_size=bad)


# --- reduced precision ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision, tol", [(torch.float16, 5e-3), (torch.bfloat16, 4e-2)])
@pytest.mark.parametrize("method", ["sdpa", "exact"])
def test_half_precision_returns_float32_close_to_float32(rng, precision, tol, method):
    pts = torch.as_tensor(rng.normal(size=(30, 4)), dtype=torch.float32)
    x = torch.as_tensor(rng.normal(size=(10, 4)), dtype=torch.float32)
    try:
        half = dynamics.mean_shift_step(x, pts, 0.8, method=method, precision=precision)
        hop = dynamics.hopfield_update(x, pts, 1.2, method=method, precision=precision)
    except (RuntimeError, NotImplementedError) as err:  # pragma: no cover - depends on the CPU kernels
        pytest.skip(f"{precision} not supported on this CPU: {err}")
    full = dynamics.mean_shift_step(x, pts, 0.8, method=method)
    assert half.dtype == torch.float32 and hop.dtype == torch.float32
    scale = float(pts.abs().max())
    torch.testing.assert_close(half, full, rtol=0, atol=tol * scale)
    torch.testing.assert_close(hop, dynamics.hopfield_update(x, pts, 1.2, method=method), rtol=0, atol=tol * scale)
    assert (half - full).abs().max() > 0  # it really was computed in lower precision


# --- property-based: energy never increases -------------------------------------------------------------------

PROPS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _problem(seed, n, d, spread):
    rng = np.random.default_rng(seed)
    pts = t64(rng.normal(size=(n, d)) * spread)
    x = t64(rng.normal(size=(3, d)) * spread * 2)
    return rng, pts, x


def _assert_non_increasing(values):
    for before, after in zip(values[:-1], values[1:]):
        slack = 1e-10 * before.abs() + 1e-12
        assert bool((after <= before + slack).all()), (before, after)


@PROPS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    d=st.integers(1, 6),
    bandwidth=st.floats(0.05, 5.0),
    spread=st.floats(0.1, 5.0),
)
def test_property_mean_shift_never_increases_the_kde_nll(seed, n, d, bandwidth, spread):
    _, pts, x = _problem(seed, n, d, spread)
    values = [energies.kde_nll(x, pts, bandwidth)]
    for _ in range(5):
        x = dynamics.mean_shift_step(x, pts, bandwidth)
        values.append(energies.kde_nll(x, pts, bandwidth))
    _assert_non_increasing(values)


@PROPS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    d=st.integers(1, 6),
    beta=st.floats(0.02, 20.0),
    step_size=st.floats(1e-3, 1.0),
    spread=st.floats(0.1, 5.0),
)
def test_property_clam_step_never_increases_the_clam_energy(seed, n, d, beta, step_size, spread):
    _, mem, v = _problem(seed, n, d, spread)
    values = [energies.clam_energy(v, mem, beta)]
    for _ in range(5):
        v = dynamics.clam_step(v, mem, beta, step_size=step_size)
        values.append(energies.clam_energy(v, mem, beta))
    _assert_non_increasing(values)


@PROPS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    d=st.integers(1, 6),
    low=st.floats(0.05, 5.0),
    ratio=st.floats(1.0, 10.0),
    spread=st.floats(0.1, 5.0),
)
def test_property_per_centre_bandwidth_step_never_increases_the_mixture_nll(seed, n, d, low, ratio, spread):
    rng, pts, x = _problem(seed, n, d, spread)
    sig = t64(rng.uniform(low, low * ratio, size=n))
    w = t64(rng.dirichlet(np.ones(n)))
    values = [energies.gaussian_mixture_nll(x, pts, sig**2, w)]
    for _ in range(5):
        x = dynamics.mean_shift_step(x, pts, sig, log_weights=w.log())
        values.append(energies.gaussian_mixture_nll(x, pts, sig**2, w))
    _assert_non_increasing(values)


@PROPS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    d=st.integers(1, 6),
    beta=st.floats(0.02, 20.0),
    step_size=st.floats(1e-3, 0.5),
    spread=st.floats(0.1, 5.0),
)
def test_property_gradient_flow_never_increases_the_clam_energy(seed, n, d, beta, step_size, spread):
    _, mem, v = _problem(seed, n, d, spread)
    traj = dynamics.gradient_flow(lambda s: energies.clam_energy(s, mem, beta), v, step_size=step_size, n_steps=5)
    _assert_non_increasing(list(traj.energies))


# --- fixed points ---------------------------------------------------------------------------------------------


def test_a_well_separated_memory_is_a_fixed_point_of_the_clam_step():
    mem = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [-3.0, -3.0]], dtype=F64)
    for beta in (5.0, 20.0):
        out = dynamics.clam_step(mem, mem, beta)
        torch.testing.assert_close(out, mem, rtol=0, atol=1e-6)
    # and at small β it is not: the memories are pulled towards each other
    assert (dynamics.clam_step(mem, mem, 0.05) - mem).norm(dim=-1).min() > 1e-2


@pytest.mark.parametrize("beta", [0.2, 1.0, 4.0])
def test_iterate_to_fixed_point_gives_posterior_weighted_memories(rng, beta):
    mem = rng.normal(size=(5, 2)) * 1.5
    init = rng.normal(size=(8, 2)) * 2
    fp = dynamics.iterate_to_fixed_point(
        lambda v: dynamics.clam_step(v, t64(mem), beta), t64(init), max_iter=20000, tol=1e-11
    )
    assert bool(fp.converged.all()) and fp.converged.shape == (8,)
    assert 1 <= fp.n_iter < 20000
    v = fp.state.numpy()
    r = softmax(-beta * ((v[:, None] - mem[None]) ** 2).sum(-1), axis=-1)  # p(z = k | v*) with σ² = 1/(2β)
    np.testing.assert_allclose(v, r @ mem, rtol=0, atol=1e-6)


def test_iterate_to_fixed_point_freezes_converged_states_and_reports_non_convergence():
    calls = []

    def halve(x):
        calls.append(x.clone())
        return x / 2

    init = torch.tensor([[1e-7, 0.0], [1.0, 0.0]], dtype=F64)
    fp = dynamics.iterate_to_fixed_point(halve, init, max_iter=5, tol=1e-6)
    assert fp.n_iter == 5 and fp.converged.tolist() == [True, False]
    # the first state moved 5e-8 < tol in the first step and was frozen there: exactly 5e-8, not 5e-8/2^k
    # (a tolerance of 1e-7 would pass an unfrozen state too, so the comparison is exact)
    assert fp.state[0].tolist() == [5e-8, 0.0] and fp.steps.tolist() == [1, 5]
    torch.testing.assert_close(fp.state[1], torch.tensor([1 / 32, 0.0], dtype=F64))
    fp = dynamics.iterate_to_fixed_point(halve, init, max_iter=100, tol=1e-6)
    assert bool(fp.converged.all()) and fp.n_iter == 20  # the second moves 2^-t at step t: 2^-20 < 1e-6 ≤ 2^-19


def test_iterate_to_fixed_point_steps_only_the_states_still_moving_and_chunks():
    seen = []

    def shrink(x):  # each state moves by a fixed fraction of itself: state i settles after a number of steps
        seen.append(x.shape[0])
        return x * 0.5

    init = torch.tensor([[1e-6], [1e-3], [1.0], [4.0]], dtype=F64)
    fp = dynamics.iterate_to_fixed_point(shrink, init, max_iter=100, tol=1e-6)
    # step t moves x0/2^t: 1e-6 settles at step 1, 1e-3 at 10 (2^-10 < 1e-3), 1 at 20, 4 at 22
    assert fp.steps.tolist() == [1, 10, 20, 22] and fp.n_iter == 22 and bool(fp.converged.all())
    assert seen[0] == 4 and seen[1] == 3 and seen[-1] == 1 and sum(seen) == 1 + 10 + 20 + 22
    # chunking gives the same result, one chunk at a time (the update sees at most `chunk` states)
    seen.clear()
    chunked = dynamics.iterate_to_fixed_point(shrink, init, max_iter=100, tol=1e-6, chunk=2)
    assert torch.equal(chunked.state, fp.state) and max(seen) == 2
    # batch shapes (..., D) come back as they went in
    grid = dynamics.iterate_to_fixed_point(shrink, init.reshape(2, 2, 1), max_iter=100, tol=1e-6)
    assert grid.state.shape == (2, 2, 1) and grid.steps.tolist() == [[1, 10], [20, 22]]
    with pytest.raises(ValueError, match="update"):
        dynamics.iterate_to_fixed_point(lambda x: x[:1], init)


def test_symmetric_point_between_two_memories_is_a_spurious_fixed_point():
    a = 1.0
    mem = torch.tensor([[-a], [a]], dtype=F64)
    zero = torch.zeros(1, 1, dtype=F64)
    for beta in (0.2, 2.0):
        assert dynamics.clam_step(zero, mem, beta).abs().item() < 1e-12
        assert dynamics.mean_shift_step(zero, mem, 0.4).abs().item() < 1e-12
    # bimodal mixture (σ = 1/√(2β) = 0.5 < a): 0 is a maximum of p — metastable, a nudge runs to a memory
    nudged = dynamics.iterate_to_fixed_point(lambda v: dynamics.clam_step(v, mem, 2.0), zero + 1e-4, tol=1e-12)
    assert abs(nudged.state.item() - a) < 0.05  # reaches the fixed point next to +a (slightly pulled inwards)
    # unimodal (σ = 1/√0.4 ≈ 1.58 > a): 0 is the one attractor, a nudge comes back
    back = dynamics.iterate_to_fixed_point(lambda v: dynamics.clam_step(v, mem, 0.2), zero + 0.5, tol=1e-12)
    assert abs(back.state.item()) < 1e-9


# --- binary dense associative memory: asynchronous retrieval ----------------------------------------------------


def _binary(rng, shape):
    return torch.as_tensor(rng.choice([-1.0, 1.0], size=shape), dtype=torch.float32)


@pytest.mark.parametrize("kwargs", [dict(degree=2), dict(degree=3), dict(interaction="exponential")])
def test_dense_retrieve_never_increases_the_dense_energy_and_stays_binary(rng, kwargs):
    mem = _binary(rng, (12, 40))
    s = _binary(rng, (6, 40))
    energy_kwargs = dict(kwargs)
    e0 = energies.dense_energy(s.double(), mem.double(), **energy_kwargs)
    g = torch.Generator().manual_seed(0)
    prev = e0
    for _ in range(3):
        s = dynamics.dense_retrieve(s, mem, n_sweeps=1, generator=g, **kwargs)
        assert set(s.unique().tolist()) <= {-1.0, 1.0}
        e = energies.dense_energy(s.double(), mem.double(), **energy_kwargs)
        assert bool((e <= prev + 1e-9 * prev.abs()).all())
        prev = e


def test_dense_retrieve_recovers_stored_patterns_from_corrupted_cues(rng):
    mem = _binary(rng, (3, 100))
    g = torch.Generator().manual_seed(1)
    cues = amdata.flip_signs(mem, 0.15, generator=g)
    out = dynamics.dense_retrieve(cues, mem, degree=2, n_sweeps=3, generator=g)
    torch.testing.assert_close(out, mem)
    # with zero sweeps the state is returned unchanged
    torch.testing.assert_close(dynamics.dense_retrieve(cues, mem, n_sweeps=0), cues)


def test_attention_update_hands_sdpa_4d_inputs(monkeypatch):
    """The fused flash / memory-efficient kernels take only (batch, heads, length, dim) inputs; a 3-D call silently
    runs the unfused math path (seen on an H200: no speed-up at all). Guard the shape we pass."""
    seen = {}
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen["ndim"] = (q.ndim, k.ndim, v.ndim, None if kwargs.get("attn_mask") is None else kwargs["attn_mask"].ndim)
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    x = torch.randn(5, 3, 4)
    keys = torch.randn(7, 4)
    dynamics.attention_update(x, keys, keys, scale=1.0, method="sdpa")
    assert seen["ndim"] == (4, 4, 4, None)
    dynamics.attention_update(x, keys, keys, scale=1.0, bias=torch.randn(7), method="sdpa")
    assert seen["ndim"] == (4, 4, 4, 4)


@pytest.mark.parametrize("kwargs", [dict(degree=2), dict(degree=3), dict(interaction="exponential")])
def test_dense_retrieve_equals_a_direct_energy_comparison_unit_by_unit(rng, kwargs):
    """The reference recomputes E(s) = −Σ_k F(μ_kᵀ s) for both signs of each unit, in the same random order: the
    library's overlap bookkeeping and its overflow-free sign test must give exactly the same states."""
    mem, cues = _binary(rng, (4, 12)).double(), _binary(rng, (3, 12)).double()
    power = kwargs.get("degree", 2)
    F = torch.exp if kwargs.get("interaction") == "exponential" else (lambda z: z**power)  # noqa: E731
    energy = lambda s: -F(mem @ s).sum()  # noqa: E731
    out = dynamics.dense_retrieve(cues, mem, n_sweeps=4, generator=torch.Generator().manual_seed(5), **kwargs)
    g, ref = torch.Generator().manual_seed(5), cues.clone()
    for _ in range(4):
        before = ref.clone()
        for i in torch.randperm(12, generator=g).tolist():
            for t in range(len(ref)):
                up, down = ref[t].clone(), ref[t].clone()
                up[i], down[i] = 1.0, -1.0
                ref[t, i] = 1.0 if energy(up) <= energy(down) else -1.0
        if torch.equal(ref, before):
            break
    assert torch.equal(out, ref)
