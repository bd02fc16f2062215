"""The poster's RMSNorm factorisation read literally (ambridge.attention.printed), held against the exact weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ambridge import attention as att
from ambridge.checks import ParameterError

F64 = torch.float64


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _setup(seed=0, t=7, s=5, d=6):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(t, d, generator=gen, dtype=F64), torch.randn(s, d, generator=gen, dtype=F64)


def test_printed_weights_against_numpy_and_the_poster_form():
    """softmax_j(scale ‖k_j‖ m_jᵀq̂_i), written from the poster's symbols κ_j = ‖k_j‖, m_j = k_j/‖k_j‖ in numpy."""
    q, k = _setup()
    qn, kn = q.numpy(), k.numpy()
    kappa = np.linalg.norm(kn, axis=1)
    m = kn / kappa[:, None]
    q_hat = qn / np.linalg.norm(qn, axis=1, keepdims=True)
    ref = _softmax(0.4 * kappa[None] * (q_hat @ m.T))
    assert np.allclose(att.printed_rmsnorm_weights(q, k, scale=0.4).numpy(), ref, atol=1e-14)


def test_printed_form_is_exact_only_for_unit_queries():
    q, k = _setup(1)
    exact = lambda queries: torch.softmax(0.5 * queries @ k.T, -1)  # noqa: E731
    unit = att.normalise(q)
    assert (att.printed_rmsnorm_weights(unit, k, scale=0.5) - exact(unit)).abs().max() < 1e-14
    # the printed weights ignore the query's length; the true ones do not
    longer = 3.0 * q
    assert torch.allclose(att.printed_rmsnorm_weights(longer, k, scale=0.5), att.printed_rmsnorm_weights(q, k, scale=0.5),
                          atol=1e-14)
    assert (att.printed_rmsnorm_weights(longer, k, scale=0.5) - exact(longer)).abs().max() > 1e-2
    # the printed factorisation is not an identity: log exp(q·k) − [‖k‖ m·q̂ + ‖q‖] varies over j unless ‖q‖ = 1
    gap = q @ k.T - (att.normalise(q) @ k.T + q.norm(dim=-1, keepdim=True))
    assert (gap.max(-1).values - gap.min(-1).values).min() > 1e-3
    gap_unit = unit @ k.T - (unit @ k.T + 1.0)
    assert torch.allclose(gap_unit, -torch.ones_like(gap_unit))  # constant over j (a factor e), so it cancels


def test_printed_form_after_rmsnorm_sees_radius_sqrt_d():
    """RMSNorm puts x/RMS(x) on the sphere of radius √D: with W_Q = I the true logits are √D times the printed ones."""
    gen = torch.Generator().manual_seed(2)
    d = 16
    x, k = torch.randn(4, d, generator=gen, dtype=F64), torch.randn(6, d, generator=gen, dtype=F64)
    q = x / x.pow(2).mean(-1, keepdim=True).sqrt()
    assert torch.allclose(q.norm(dim=-1), torch.full((4,), math.sqrt(d), dtype=F64))
    tempered = torch.softmax(math.sqrt(d) * torch.log(att.printed_rmsnorm_weights(q, k)), -1)
    assert torch.allclose(tempered, torch.softmax(q @ k.T, -1), atol=1e-12)


def test_total_variation():
    gen = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(4, 9, generator=gen, dtype=F64), -1)
    r = torch.softmax(torch.randn(4, 9, generator=gen, dtype=F64), -1)
    tv = att.total_variation(p, r)
    assert np.allclose(tv.numpy(), 0.5 * np.abs(p.numpy() - r.numpy()).sum(-1), atol=1e-15)
    assert torch.all((tv >= 0) & (tv <= 1)) and torch.all(att.total_variation(p, p) == 0)
    disjoint = att.total_variation(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert disjoint.item() == 1.0
    with pytest.raises(ParameterError, match="q"):
        att.total_variation(p, r[:, :3])


def test_printed_form_error_sweep():
    gen = torch.Generator().manual_seed(4)
    u, k = torch.randn(32, 8, generator=gen, dtype=F64), torch.randn(10, 8, generator=gen, dtype=F64)
    err = att.printed_form_error(u, k, [1.0, 2.0, 8.0, 1e4], scale=8**-0.5)
    assert err.tv_mean[0] < 1e-14 and err.abs_max[0] < 1e-14  # exact at ‖q‖ = 1
    assert np.all(err.abs_max <= err.tv_max + 1e-15) and np.all(err.tv_mean <= err.tv_max + 1e-15)
    assert err.tv_mean[2] > err.tv_mean[1] > 0.01
    # as ‖q‖ → ∞ the true weights become one-hot at the largest cosine: TV → 1 − printed weight there
    printed = att.printed_rmsnorm_weights(u, k, scale=8**-0.5)
    top = torch.gather(printed, 1, (att.normalise(u) @ k.T).argmax(-1, keepdim=True))[:, 0]
    assert math.isclose(err.tv_mean[3], (1 - top).mean().item(), rel_tol=1e-6)
    # one length by hand
    r = 2.0
    exact = torch.softmax(8**-0.5 * (r * att.normalise(u)) @ k.T, -1)
    assert math.isclose(err.tv_max[1], att.total_variation(printed, exact).max().item(), rel_tol=1e-12)
    with pytest.raises(ParameterError, match="query_norms"):
        att.printed_form_error(u, k, [1.0, -2.0])
    with pytest.raises(ParameterError, match="scale"):
        att.printed_rmsnorm_weights(u, k, scale=0.0)
