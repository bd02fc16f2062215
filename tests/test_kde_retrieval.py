"""ambridge.kde.retrieval: the cue, mean shift to convergence through dynamics.iterate_to_fixed_point, the verdict
(within ε of the pattern *and* nearest to it), and the one sphere sampler."""

from __future__ import annotations

import math

import pytest
import torch

from ambridge import data as amdata
from ambridge import dynamics, kde

F64 = torch.float64


def test_sphere_sample_is_bit_identical_to_the_sampler_it_replaced():
    """kde.sphere_sample is now data.sphere_points(dtype=float32); before, on a CPU generator, it drew float64
    Gaussians, normalised them and rounded once to float32 — the same bits, written out here."""
    for n, d, radius in [(5000, 8, 2.0), (33, 64, 1.0)]:
        ours = kde.sphere_sample(n, d, radius=radius, generator=torch.Generator().manual_seed(11))
        raw = torch.randn(n, d, generator=torch.Generator().manual_seed(11), dtype=F64)
        assert ours.dtype == torch.float32 and torch.equal(ours, (radius * raw / raw.norm(dim=-1, keepdim=True)).float())
        assert torch.allclose(ours.norm(dim=-1), torch.full((n,), radius), atol=1e-6)


def test_perturb_moves_by_exactly_the_distance():
    gen = torch.Generator().manual_seed(3)
    x = amdata.sphere_points(50, 5, generator=gen, dtype=F64)
    y = kde.perturb(x, 0.3, generator=gen)
    assert torch.allclose((y - x).norm(dim=-1), torch.full((50,), 0.3, dtype=F64))
    assert torch.equal(kde.perturb(x, 0.0), x)
    with pytest.raises(ValueError, match="distance"):
        kde.perturb(x, -0.1)


def test_nearest_index_matches_cdist():
    gen = torch.Generator().manual_seed(5)
    data = torch.randn(1000, 9, generator=gen)
    q = torch.randn(77, 9, generator=gen)
    assert torch.equal(kde.nearest_index(q, data, chunk=128), torch.cdist(q, data).argmin(dim=-1))
    assert torch.equal(kde.nearest_index(q, data), torch.cdist(q, data).argmin(dim=-1))


def test_retrieve_succeeds_when_separated_and_fails_when_crowded():
    gen = torch.Generator().manual_seed(6)
    x = amdata.sphere_points(64, 16, generator=gen)
    idx = torch.arange(64)
    sharp = kde.retrieve(x, 0.1, idx, kde.perturb(x, 0.05, generator=gen), eps=0.05)
    assert bool(sharp.success.all())
    broad = kde.retrieve(x, 1.5, idx, x.clone(), eps=0.05)  # one broad bump: everything flows to the centre
    assert not bool(broad.success.any())
    # two points closer than the kernel merge: neither is retrieved
    pair = torch.tensor([[1.0, 0.0], [0.9, math.sqrt(1 - 0.81)]])
    assert not bool(kde.retrieve(pair, 0.5, torch.arange(2), pair.clone(), eps=0.01).success.any())


def test_an_end_point_within_eps_but_nearest_another_pattern_is_not_a_success():
    """Step 4 of the protocol: ending within ε of the pattern is not enough, the pattern must also be the nearest
    data point. Here x₁ lies 0.05 from x₀ and the kernel is far narrower, so a cue started on x₁ stays on x₁:
    within ε = 0.1 of x₀, but nearest x₁ — a retrieval of x₁, not of x₀."""
    theta = 2 * math.asin(0.05 / 2)  # chord 0.05
    x = torch.tensor([[1.0, 0.0], [math.cos(theta), math.sin(theta)], [-1.0, 0.0], [0.0, 1.0]], dtype=F64)
    starts = x[[1, 1, 2]].clone()
    targets = torch.tensor([0, 1, 2])
    out = kde.retrieve(x, 0.004, targets, starts, eps=0.1, tol=1e-12)
    assert float(out.distance[0]) == pytest.approx(0.05, abs=1e-9) and float(out.distance[0]) <= 0.1
    assert out.nearest.tolist() == [1, 1, 2]
    assert out.success.tolist() == [False, True, True]


def test_retrieve_steps_each_query_to_its_own_fixed_point():
    """The engine is dynamics.iterate_to_fixed_point: the same end points, per-query step counts and convergence
    flags, whatever the chunk (a state is stepped only while it moves)."""
    gen = torch.Generator().manual_seed(4)
    x = amdata.sphere_points(40, 6, generator=gen, dtype=F64)
    starts = kde.perturb(x[:25], 0.4, generator=gen)
    ref = dynamics.iterate_to_fixed_point(lambda v: dynamics.mean_shift_step(v, x, 0.45), starts, max_iter=300,
                                          tol=1e-9)
    out = kde.retrieve(x, 0.45, torch.arange(25), starts, eps=0.1, max_iter=300, tol=1e-9, chunk=7)
    assert torch.equal(out.n_iter, ref.steps) and torch.equal(out.converged, ref.converged)
    assert torch.allclose(out.distance, (ref.state - x[:25]).norm(dim=-1), atol=1e-12)
    assert int(out.n_iter.min()) < int(out.n_iter.max())  # the queries really do settle at different times
    capped = kde.retrieve(x, 0.45, torch.arange(25), starts, eps=0.1, max_iter=2, tol=1e-9)
    assert not bool(capped.converged.any()) and bool((capped.n_iter == 2).all())


def test_explicit_reference_path_matches_the_fused_one():
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(300, 12, generator=gen, dtype=F64) * 0.5  # off the sphere: the bias matters
    idx = torch.arange(0, 300, 3)
    starts = kde.perturb(x[idx], 0.1, generator=gen)
    fused = kde.retrieve(x, 0.5, idx, starts, eps=0.1, tol=1e-10)
    explicit = kde.retrieve(x, 0.5, idx, starts, eps=0.1, tol=1e-10, method="explicit", chunk=17)
    assert torch.equal(fused.success, explicit.success) and fused.success.any() and not fused.success.all()
    assert torch.allclose(fused.distance, explicit.distance, atol=1e-9)
    with pytest.raises(ValueError, match="method"):
        kde.retrieve(x, 0.3, idx, starts, eps=0.1, method="naive")
    # on a sphere the mask-free form is the same step
    y = amdata.sphere_points(300, 12, generator=gen, dtype=F64)
    ys = kde.perturb(y[idx], 0.1, generator=gen)
    a = kde.retrieve(y, 0.3, idx, ys, eps=0.1, tol=1e-10)
    b = kde.retrieve(y, 0.3, idx, ys, eps=0.1, tol=1e-10, method="sphere")
    assert torch.equal(a.success, b.success) and torch.allclose(a.distance, b.distance, atol=1e-9)
