"""Pre-norm attention read as a von Mises–Fisher E-step (ambridge.attention.estep).

The reference is softmax attention on ``torch.nn.functional.layer_norm`` (or an RMSNorm written here) and PyTorch's
own ``nn.TransformerEncoderLayer``; the concentrations are checked against the exact formulas, so the tests fail if
the LayerNorm κ loses its √D (the unit-sphere reading) or the RMSNorm κ becomes additive.
"""

from __future__ import annotations

import math

import pytest
import torch

from ambridge import attention as att

F64 = torch.float64


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=-1, keepdim=True)


def _layernorm_attention(x, keys, gamma, delta, eps, scale, wq=None, bq=None):
    """Softmax attention on torch's own LayerNorm: the reference the vMF reading must reproduce."""
    q = torch.nn.functional.layer_norm(x, (x.shape[-1],), gamma, delta, eps)
    if wq is not None:
        q = q @ wq.T + bq
    return torch.softmax(scale * q @ keys.transpose(-1, -2), dim=-1)


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.3])
@pytest.mark.parametrize("projected", [False, True])
def test_layernorm_attention_is_a_vmf_e_step(eps, projected):
    gen = torch.Generator().manual_seed(11)
    d, t, s, dh = 12, 9, 7, 6
    x = 3 * torch.randn(2, t, d, generator=gen, dtype=F64) + 1.5
    gamma = 0.5 + torch.rand(d, generator=gen, dtype=F64)
    delta = torch.randn(d, generator=gen, dtype=F64)
    wq = torch.randn(dh, d, generator=gen, dtype=F64) if projected else None
    bq = torch.randn(dh, generator=gen, dtype=F64) if projected else None
    keys = torch.randn(2, s, dh if projected else d, generator=gen, dtype=F64)
    scale = 1 / math.sqrt(keys.shape[-1])
    ref = _layernorm_attention(x, keys, gamma, delta, eps, scale, wq, bq)
    view = att.layernorm_attention_vmf(x, keys, gamma, delta, eps=eps, scale=scale, query_weight=wq, query_bias=bq)
    assert (view.responsibilities - ref).abs().max() < 1e-12
    # the pieces are what the docstring says
    assert torch.allclose(view.query_directions.norm(dim=-1), torch.ones(2, t, dtype=F64))
    assert view.query_directions.sum(-1).abs().max() < 1e-12  # in the hyperplane ⊥ 1
    assert view.directions.sum(-1).abs().max() < 1e-12
    assert view.dim == d - 1
    var = x.var(-1, unbiased=False)
    rho = torch.sqrt(d * var / (var + eps))
    eff = keys @ wq if projected else keys
    a = gamma * eff
    expected_kappa = scale * rho[..., :, None] * (a - a.mean(-1, keepdim=True)).norm(dim=-1)[..., None, :]
    assert torch.allclose(view.kappa, expected_kappa, rtol=1e-12)
    expected_prior = scale * (eff @ delta + (keys @ bq if projected else 0))
    assert torch.allclose(view.log_prior, expected_prior, rtol=1e-12, atol=1e-12)


def test_layernorm_kappa_is_gamma_sqrt_d_norm_k():
    """Scalar γ, centred keys, ε = 0: κ_i = γ √D ‖k_i‖ on the unit sphere (x̃ has radius √D, not 1)."""
    gen = torch.Generator().manual_seed(2)
    d, gamma = 16, 1.7
    keys = torch.randn(10, d, generator=gen, dtype=F64)
    keys = keys - keys.mean(-1, keepdim=True)
    x = torch.randn(5, d, generator=gen, dtype=F64)
    view = att.layernorm_attention_vmf(x, keys, gamma, 0.0)
    assert torch.allclose(view.kappa, (gamma * math.sqrt(d) * keys.norm(dim=-1)).expand(5, 10), rtol=1e-13)
    # with κ = γ‖k‖ (the radius-1 reading) the mixture is not the attention
    ref = _layernorm_attention(x, keys, torch.full((d,), gamma, dtype=F64), torch.zeros(d, dtype=F64), 0.0, 1.0)
    wrong = att.vmf_responsibilities(view.query_directions, view.directions, gamma * keys.norm(dim=-1), dim=d - 1)
    assert (wrong - ref).abs().max() > 1e-2


def test_mixing_weights_absorb_the_normaliser():
    """r = softmax(log π + log C(κ) + κ mᵀu) with π ∝ π̃/C(κ): a proper vMF mixture when κ is query-independent."""
    gen = torch.Generator().manual_seed(4)
    d = 8
    x, keys = torch.randn(6, d, generator=gen, dtype=F64), torch.randn(5, d, generator=gen, dtype=F64)
    view = att.layernorm_attention_vmf(x, keys, 1.3, torch.randn(d, generator=gen, dtype=F64))
    log_pi = view.mixing_log_weights()
    assert torch.allclose(log_pi.logsumexp(-1), torch.zeros(6, dtype=F64), atol=1e-12)
    assert torch.allclose(log_pi, log_pi[:1].expand_as(log_pi), atol=1e-10)  # ε = 0: the same for every query
    r = att.vmf_responsibilities(view.query_directions, view.directions, view.kappa[0], log_pi[0], dim=d - 1)
    assert (r - view.responsibilities).abs().max() < 1e-12


def test_rmsnorm_attention_kappa_is_a_product():
    gen = torch.Generator().manual_seed(5)
    d, dh, t, s = 10, 6, 8, 9
    x = torch.randn(t, d, generator=gen, dtype=F64)
    gamma = 0.5 + torch.rand(d, generator=gen, dtype=F64)
    wq = torch.randn(dh, d, generator=gen, dtype=F64)
    keys = torch.randn(s, dh, generator=gen, dtype=F64)
    q = (gamma * x / x.pow(2).mean(-1, keepdim=True).sqrt()) @ wq.T
    scale = 0.4
    ref = torch.softmax(scale * q @ keys.T, dim=-1)
    view = att.rmsnorm_attention_vmf(x, keys, gamma, scale=scale, query_weight=wq)
    assert (view.responsibilities - ref).abs().max() < 1e-12
    assert torch.allclose(view.kappa, scale * q.norm(dim=-1)[:, None] * keys.norm(dim=-1)[None], rtol=1e-13)
    # the additive reading κ = ‖q‖ + ‖k‖, and even the best additive κ_ij = a_i + b_j, do not reproduce it
    cos = view.query_directions @ view.directions.T
    additive = torch.softmax(scale * (q.norm(dim=-1)[:, None] + keys.norm(dim=-1)[None]) * cos, dim=-1)
    assert (additive - ref).abs().max() > 0.05
    fitted, _, _ = att.additive_concentration_fit(q, keys, scale=scale)
    assert (fitted - ref).abs().max() > 0.01


def test_additive_fit_is_exact_when_the_query_norms_are_equal():
    """Sanity check of the fit: with ‖q_i‖ all equal, κ_ij = ‖q‖‖k_j‖ *is* of the form a_i + b_j."""
    gen = torch.Generator().manual_seed(6)
    q = 2.0 * _unit(torch.randn(7, 5, generator=gen, dtype=F64))
    keys = torch.randn(6, 5, generator=gen, dtype=F64)
    fitted, _, b = att.additive_concentration_fit(q, keys, scale=0.7)
    assert (fitted - torch.softmax(0.7 * q @ keys.T, -1)).abs().max() < 1e-10


@pytest.mark.parametrize("causal", [False, True])
def test_torch_encoder_layer_is_read_exactly(causal):
    """PyTorch's own pre-LN encoder layer (the block of the Chapter 2 model): its heads' weights are E-steps."""
    torch.manual_seed(3)
    layer = torch.nn.TransformerEncoderLayer(12, 3, dim_feedforward=24, dropout=0.0, batch_first=True,
                                             norm_first=True).double().eval()
    with torch.no_grad():
        layer.norm1.weight.add_(0.5 * torch.randn(12, dtype=F64))
        layer.norm1.bias.add_(0.5 * torch.randn(12, dtype=F64))
    x = 2 * torch.randn(2, 7, 12, dtype=F64) + 0.3
    mask = torch.ones(7, 7, dtype=torch.bool).triu(1) if causal else None
    h = layer.norm1(x)
    _, weights = layer.self_attn(h, h, h, attn_mask=mask, need_weights=True, average_attn_weights=False)
    for head in range(3):
        view = att.encoder_layer_vmf_view(layer, x, head, mask=mask)
        assert (view.responsibilities - weights[:, head]).abs().max() < 1e-12
    with pytest.raises(ValueError, match="norm_first"):
        att.encoder_layer_vmf_view(torch.nn.TransformerEncoderLayer(12, 3, batch_first=True), x)

