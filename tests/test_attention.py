"""Normalised attention as a von Mises–Fisher E-step (ambridge.attention).

References are independent of the library: mpmath's Bessel function, numerical integration over the sphere,
``scipy.stats.vonmises_fisher.logpdf``, ``torch.nn.functional.layer_norm`` + softmax attention, autograd and
finite differences. The identity tests check the concentrations against the exact formulas, so they fail if the
LayerNorm κ loses its √D (the unit-sphere reading) or the RMSNorm κ becomes additive.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import gammaln
from scipy.stats import vonmises_fisher

from ambridge import attention as att

F64 = torch.float64



def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=-1, keepdim=True)


# --- Bessel function and normaliser ---------------------------------------------------------------------------


def _mp_log_iv(nu, x):
    mpmath.mp.dps = 40
    return float(mpmath.log(mpmath.besseli(nu, x, maxterms=10**6)))


@pytest.mark.parametrize("nu", [0, 0.5, 1, 3.5, 10, 49, 99.5, 150, 499, 1999.5])
def test_log_bessel_matches_mpmath_over_many_decades(nu):
    xs = np.array([1e-300, 1e-10, 1e-3, 0.5, 1, 10, 100, 1e3, 1e5, 1e8])
    got = att.log_bessel_iv(nu, xs)
    ref = np.array([_mp_log_iv(nu, x) for x in xs])
    assert np.all(np.isfinite(got))
    assert np.max(np.abs(got - ref) / np.maximum(1, np.abs(ref))) < 1e-12


def test_log_bessel_is_continuous_where_the_method_switches():
    """Series / ive / Debye hand over at x² = 0.04(ν+1) and where ive underflows: no jump there."""
    for nu in [150.0, 300.0, 1000.0]:
        xs = np.geomspace(1e-2, 3 * nu, 4000)
        values = att.log_bessel_iv(nu, xs)
        ref = np.array([_mp_log_iv(nu, x) for x in xs[::97]])
        assert np.max(np.abs(values[::97] - ref) / np.maximum(1, np.abs(ref))) < 1e-12
        slope = np.diff(values) / np.diff(np.log(xs))  # d log I / d log x is smooth and increasing
        assert np.all(np.diff(slope) > -1e-6)


def test_bessel_at_zero_and_bad_input():
    assert att.log_bessel_iv(0, 0.0) == 0.0
    assert att.log_bessel_iv(2, 0.0) == -np.inf
    with pytest.raises(ValueError):
        att.log_bessel_iv(-1, 1.0)
    with pytest.raises(ValueError):
        att.log_bessel_iv(1, -1.0)


def test_normaliser_three_dimensions_closed_form():
    kappa = np.array([1e-6, 0.3, 1.0, 7.0, 50.0, 700.0])
    expected = np.log(kappa) - np.log(4 * np.pi) - (kappa + np.log(-np.expm1(-2 * kappa)) - np.log(2))  # log sinh κ
    assert np.allclose(att.log_vmf_normaliser(kappa, 3), expected, rtol=1e-12, atol=1e-12)
    assert math.isclose(att.log_vmf_normaliser(0.0, 3), -math.log(4 * math.pi), rel_tol=1e-14)


@pytest.mark.parametrize("p", [2, 3, 5, 16])
@pytest.mark.parametrize("kappa", [0.0, 0.5, 5.0, 50.0])
def test_density_integrates_to_one(p, kappa):
    """∫_{S^{p−1}} C_p(κ) e^{κ mᵀx} dx = |S^{p−2}| ∫_{−1}^{1} C_p(κ) e^{κt} (1 − t²)^{(p−3)/2} dt = 1."""
    log_area_below = math.log(2) + ((p - 1) / 2) * math.log(math.pi) - gammaln((p - 1) / 2)  # |S^{p−2}|
    log_c = att.log_vmf_normaliser(kappa, p)
    integrand = lambda t: math.exp(log_c + log_area_below + kappa * t) * (1 - t * t) ** ((p - 3) / 2)
    value, _ = integrate.quad(integrand, -1, 1, limit=200, points=[1 - 1 / (kappa + 1)])
    assert abs(value - 1) < 1e-8


@pytest.mark.parametrize("p", [3, 8, 64])
def test_log_density_matches_scipy(p):
    rng = np.random.default_rng(p)
    mu = rng.normal(size=p)
    mu /= np.linalg.norm(mu)
    x = rng.normal(size=(20, p))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for kappa in [0.1, 3.0, 40.0]:
        ref = vonmises_fisher(mu, kappa).logpdf(x)
        got = att.vmf_log_density(torch.tensor(x), torch.tensor(mu), kappa).numpy()
        assert np.allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_normaliser_stays_finite_where_scipy_does_not():
    """p = 1000, κ = 1: SciPy's logpdf returns inf (ive underflows); the library agrees with mpmath."""
    p, kappa = 1000, 1.0
    with np.errstate(all="ignore"):
        mu = np.eye(p)[0]
        scipy_value = vonmises_fisher(mu, kappa).logpdf(mu)
    mpmath.mp.dps = 40
    nu = p / 2 - 1
    ref = nu * math.log(kappa) - (p / 2) * math.log(2 * math.pi) - _mp_log_iv(nu, kappa)
    got = att.log_vmf_normaliser(kappa, p)
    assert not np.isfinite(scipy_value) or abs(scipy_value - got - kappa) < 1e-6
    assert abs(got - ref) < 1e-10 * abs(ref)
    assert np.all(np.isfinite(att.log_vmf_normaliser(np.array([1e-12, 1.0, 1e4, 1e12]), 20_000)))


def test_normaliser_gradient_is_minus_mean_resultant_length():
    kappa = torch.tensor([0.05, 0.7, 4.0, 30.0, 300.0], dtype=F64, requires_grad=True)
    for p in [2, 3, 10, 400]:
        assert torch.autograd.gradcheck(lambda k: att.log_vmf_normaliser(k, p), (kappa,), eps=1e-6, atol=1e-7)


def test_mean_resultant_length_matches_samples():
    gen = torch.Generator().manual_seed(0)
    p = 6
    for kappa in [0.5, 4.0, 40.0]:
        m = _unit(torch.randn(1, p, generator=gen, dtype=F64)).expand(20_000, p)
        x = att.sample_vmf(m, kappa, generator=gen)
        assert torch.allclose(x.norm(dim=-1), torch.ones(len(x), dtype=F64))
        mean_cos = (x * m).sum(-1).mean().item()
        assert abs(mean_cos - att.vmf_mean_resultant_length(kappa, p)) < 4 * 0.5 / math.sqrt(len(x))


def test_sampler_rotates_to_each_row_and_is_seeded():
    gen = torch.Generator().manual_seed(1)
    p, n = 5, 4000
    centres = _unit(torch.randn(3, p, generator=gen, dtype=F64))
    centres[0] = torch.eye(p, dtype=F64)[0]  # the north pole itself: the reflection must be skipped
    m = centres.repeat_interleave(n, 0)
    kappa = torch.tensor([20.0, 20.0, 0.0], dtype=F64).repeat_interleave(n)
    x = att.sample_vmf(m, kappa, generator=torch.Generator().manual_seed(5))
    again = att.sample_vmf(m, kappa, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x, again)
    a = att.vmf_mean_resultant_length(20.0, p)
    for j in range(2):  # the sample mean of component j is A_p(κ) m_j
        mean = x[j * n : (j + 1) * n].mean(0)
        assert (mean - a * centres[j]).norm() < 0.03
    assert x[2 * n :].mean(0).norm() < 0.05  # κ = 0: uniform


def test_responsibilities_match_a_numpy_mixture():
    rng = np.random.default_rng(3)
    p, k = 4, 5
    mus = rng.normal(size=(k, p))
    mus /= np.linalg.norm(mus, axis=1, keepdims=True)
    kappas, w = rng.uniform(0.5, 30, size=k), rng.dirichlet(np.ones(k))
    x = rng.normal(size=(50, p))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    log_joint = np.stack([np.log(w[j]) + vonmises_fisher(mus[j], kappas[j]).logpdf(x) for j in range(k)], 1)
    ref = np.exp(log_joint - log_joint.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    got = att.vmf_responsibilities(torch.tensor(x), torch.tensor(mus), torch.tensor(kappas), torch.tensor(np.log(w)))
    assert np.allclose(got.numpy(), ref, atol=1e-12)


# --- the identity: pre-norm attention = vMF E-step -----------------------------------------------------------


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


@pytest.mark.parametrize("form", ["standard", "untied"])
def test_model_attention_layers_are_vmf_e_steps(form):
    """Inside the model (float64): the first layer's heads and the read-out, read with the library."""
    torch.manual_seed(0)
    task = att.RetrievalTask(dim=4, n_memories=5, n_queries=3)
    model = att.RetrievalTransformer(task.token_dim, d_model=16, n_layers=1, n_heads=2, form=form).double()
    for prm in model.parameters():  # move away from the initialisation (zero κ/π weights in the untied form)
        prm.data += 0.3 * torch.randn_like(prm)
    batch = att.vmf_retrieval_batch(task, 4, generator=torch.Generator().manual_seed(1))
    s = task.n_memories
    log_probs = model(batch["tokens"].double(), s)
    layer, x = model.attn[0], model.residuals[0]
    mem = layer.norm(x[:, :s])
    for h in range(layer.n_heads):
        rows = slice(h * layer.head_dim, (h + 1) * layer.head_dim)
        keys = mem @ layer.key.weight[rows].T + layer.key.bias[rows]
        if form == "standard":
            view = att.layernorm_attention_vmf(
                x, keys, layer.norm.weight, layer.norm.bias, eps=layer.norm.eps, scale=layer.head_dim**-0.5,
                query_weight=layer.query.weight[rows], query_bias=layer.query.bias[rows])
            r = view.responsibilities
        else:
            q = layer.norm(x) @ layer.query.weight[rows].T + layer.query.bias[rows]
            kappa = layer.log_kappa(mem)[..., h].exp().unsqueeze(-2)  # κ_s, one per key token
            log_pi = layer.log_prior(mem)[..., h].unsqueeze(-2) - att.log_vmf_normaliser(kappa, layer.head_dim)
            r = att.vmf_responsibilities(_unit(q), _unit(keys), kappa, log_pi)
        assert (r - layer.last_weights[:, h]).abs().max() < 1e-12
        assert (layer.vmf_view(x, s, h).responsibilities - r).abs().max() < 1e-12
    readout = torch.softmax(model.readout.logits(model.residuals[-1], s)[:, 0], dim=-1)
    assert (model.readout.vmf_view(model.residuals[-1], s).responsibilities - readout).abs().max() < 1e-12
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(4, s + 3, dtype=F64))


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


# --- dynamics -------------------------------------------------------------------------------------------------


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


def test_bad_arguments_fail_clearly():
    x = torch.randn(3, 4, dtype=F64)
    with pytest.raises(ValueError, match="scheme"):
        att.token_dynamics(x, 1.0, scheme="mid_ln")
    with pytest.raises(ValueError, match="dim"):
        att.log_vmf_normaliser(1.0, 1)
    with pytest.raises(ValueError, match="kappa"):
        att.log_vmf_normaliser(-1.0, 3)
    with pytest.raises(ValueError, match="form"):
        att.NormAttention(8, 2, "tied")


# --- the untied experiment ------------------------------------------------------------------------------------


def test_retrieval_batch_layout_and_bayes_posterior():
    task = att.RetrievalTask(dim=5, n_memories=4, n_queries=6)
    batch = att.vmf_retrieval_batch(task, 3, generator=torch.Generator().manual_seed(0))
    tokens, post = batch["tokens"].double(), batch["posterior"]
    assert tokens.shape == (3, 10, 8) and batch["target"].shape == (3, 6) and post.shape == (3, 6, 4)
    assert torch.allclose(tokens[:, :4, :5], batch["directions"], atol=1e-6)
    assert torch.allclose(tokens[:, :4, 5], batch["kappa"].log() / math.log(max(task.kappas)), atol=1e-6)
    assert torch.all(tokens[:, 4:, 5:] == 0) and torch.all(tokens[:, :4, 7] == 1)
    # the posterior is the vMF E-step, written here with SciPy's densities
    x = tokens[:, 4:, :5].numpy()
    for b in range(3):
        log_joint = np.stack([batch["log_weight"][b, s].item()
                              + vonmises_fisher(batch["directions"][b, s].numpy(), batch["kappa"][b, s].item()).logpdf(
                                  x[b] / np.linalg.norm(x[b], axis=1, keepdims=True)) for s in range(4)], 1)
        ref = np.exp(log_joint - log_joint.max(1, keepdims=True))
        assert np.allclose(post[b].numpy(), ref / ref.sum(1, keepdims=True), atol=1e-5)


def test_compare_forms_pairs_the_runs():
    task = att.RetrievalTask(dim=4, n_memories=3, n_queries=2)
    out = att.compare_forms(task, seeds=[0, 1], d_model=8, n_layers=1, n_heads=2, steps=3, batch_size=4,
                            eval_size=8, eval_every=1)
    assert out["step"] == [0, 1, 2, 3]
    assert set(out["loss"]) == {"standard", "untied"} and all(len(v) == 2 for v in out["loss"].values())
    assert 0 < out["bayes_loss"] < math.log(3) + 1
    again = att.compare_forms(task, seeds=[0], d_model=8, n_layers=1, n_heads=2, steps=3, batch_size=4,
                              eval_size=8, eval_every=1)
    assert again["loss"]["standard"][0] == out["loss"]["standard"][0]  # seeded: the same run twice
    assert next(out["models"]["untied"][0].parameters()).dtype == torch.float32
