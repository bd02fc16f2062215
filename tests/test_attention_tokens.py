"""Tokens under normalised self-attention, and their clusters (ambridge.attention.tokens)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ambridge import attention as att
from ambridge.checks import ParameterError

F64 = torch.float64


def test_count_clusters():
    pts = torch.tensor([[1, 0, 0], [1, 0.01, 0], [0, 1, 0], [0, 0.99, 0.02], [0, 0, 1]], dtype=F64)
    assert att.count_clusters(pts, 0.05) == 3
    assert att.count_clusters(pts, 1e-4) == 5
    assert att.count_clusters(pts.expand(3, 5, 3), 2.0).tolist() == [1, 1, 1]


@pytest.mark.parametrize("scheme", ["sphere", "post_ln", "pre_ln"])
def test_dynamics_stay_on_the_sphere_and_cluster(scheme):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 12, 3, generator=gen, dtype=F64)
    traj = att.token_dynamics(x0, torch.tensor([1.0, 1.0, 4.0, 4.0], dtype=F64), scheme=scheme, step_size=0.2,
                              record_steps=[0, 3000])
    assert traj.shape == (2, 4, 12, 3)
    assert torch.allclose(traj.norm(dim=-1), torch.ones(2, 4, 12, dtype=F64))
    counts = att.count_clusters(traj, 0.05)
    assert np.all(counts[1] <= counts[0])
    assert np.all(counts[1][:2] == 1)  # β = 1: one cluster (Geshkovski et al.: collapse)


def test_two_tokens_approach_monotonically():
    x0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)
    traj = att.token_dynamics(x0, 2.0, scheme="sphere", step_size=0.01, record_steps=range(0, 400, 20))
    cos = (traj[:, 0] * traj[:, 1]).sum(-1)
    assert torch.all(cos.diff() > 0)


def test_pre_ln_residual_stream_grows_and_slows_down():
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(16, 3, generator=gen, dtype=F64)
    post = att.count_clusters(att.token_dynamics(x0, 4.0, scheme="post_ln", step_size=1.0, record_steps=[30]), 0.05)
    pre = att.count_clusters(att.token_dynamics(x0, 4.0, scheme="pre_ln", step_size=1.0, record_steps=[30]), 0.05)
    assert pre[0] > post[0]  # same depth, fewer merges: the growing norm slows the angular motion


def test_bad_scheme_fails_clearly():
    x = torch.randn(3, 4, dtype=F64)
    with pytest.raises(ParameterError, match="scheme"):
        att.token_dynamics(x, 1.0, scheme="mid_ln")


# --- reading the counts (chapter 6's metastability and pre-LN/post-LN summaries) ------------------------------


def test_longest_plateau_measures_constant_stretches_above_one():
    times = np.arange(7.0)
    assert att.longest_plateau(np.array([5, 5, 3, 3, 3, 1, 1]), times) == 3.0  # 3 from t = 2 to the merge at t = 5
    assert att.longest_plateau(np.array([4, 2, 2, 2]), np.array([0.0, 1.0, 3.0, 7.0])) == 6.0  # to the last record
    assert att.longest_plateau(np.array([1, 1, 1]), np.arange(3.0)) == 0.0  # collapsed: no plateau counts
    # runs and settings after the time axis
    counts = np.stack([np.array([5, 5, 3, 3, 3, 1, 1]), np.array([2, 2, 2, 2, 2, 2, 2])], 1)[:, :, None]
    assert att.longest_plateau(counts, times).tolist() == [[3.0], [6.0]]
    with pytest.raises(ParameterError, match="times"):
        att.longest_plateau(counts, times[:-1])


def test_first_time_at_most():
    values = np.array([[32, 32, 32], [20, 30, 32], [10, 17, 32], [5, 16, 32]])
    layers = np.array([0, 1, 10, 100])
    first = att.first_time_at_most(values, layers, 16)
    assert first == [10, 100, None]
    assert [str(f) for f in first[:2]] == ["10", "100"]  # elements of `times`: integers print as integers
    with pytest.raises(ParameterError, match="values"):
        att.first_time_at_most(values[:, 0], layers, 16)
