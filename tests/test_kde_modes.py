"""ambridge.kde.modes: mode counting on cases with a known answer, the bandwidth rules, the retained fraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ambridge import kde

F64 = torch.float64


def test_two_point_modes_merge_at_twice_the_bandwidth():
    """Two equal Gaussian bumps at distance D are bimodal exactly when D > 2h."""
    h = 0.3
    assert kde.kde_modes_1d([0.0, 2 * h * 1.02], h).size == 2
    assert kde.kde_modes_1d([0.0, 2 * h * 0.98], h).size == 1


def test_modes_of_separated_clusters_and_positions():
    pts = np.array([-10.0, 0.0, 0.05, 7.0, 30.0])  # 0 and 0.05 merge at h = 0.2; the rest are isolated
    modes = kde.kde_modes_1d(pts, 0.2)
    assert modes.size == 4
    np.testing.assert_allclose(modes[[0, 2, 3]], [-10.0, 7.0, 30.0], atol=1e-3)
    assert modes[1] == pytest.approx(0.025, abs=1e-3)
    with pytest.raises(ValueError, match="samples"):
        kde.kde_modes_1d([], 0.2)


def test_mode_count_does_not_depend_on_the_grid():
    x = np.random.default_rng(7).standard_normal(3000)
    for beta in (100.0, 3000.0):
        counts = {kde.kde_modes_1d(x, beta**-0.5, resolution=r).size for r in (10, 20, 80)}
        assert len(counts) == 1


def test_retained_fraction_and_bandwidth_rules():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(200, 3, generator=gen, dtype=F64)
    assert kde.retained_fraction(x, 0.01) == 1.0  # tiny kernels: every point is its own mode
    assert kde.retained_fraction(x, 10.0) == pytest.approx(1 / 200)  # one broad mode, owned by one point
    sd = float(x.std(dim=0).mean())
    assert kde.scott_bandwidth(x) == pytest.approx(sd * 200 ** (-1 / 7))
    assert kde.silverman_bandwidth(x) == pytest.approx(sd * (4 / (5 * 200)) ** (1 / 7))


def test_retained_fraction_counts_points_that_own_a_mode():
    """Two tight triples far apart and one isolated point, a kernel wider than a triple and narrower than the gaps:
    each triple merges into one mode near its mean (0.083 from its first point), owned by its middle point; the
    isolated point keeps its own. Three of seven points own a mode."""
    x = torch.tensor([[0.0], [0.1], [0.15], [10.0], [10.1], [10.15], [40.0]], dtype=F64)
    assert kde.retained_fraction(x, 0.5, tol=1e-8) == pytest.approx(3 / 7)
    assert kde.retained_fraction(x, 0.01, tol=1e-8) == 1.0
