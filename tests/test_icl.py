"""The in-context energy model (chapter 2): data, causality, the masked sampler against the loop, exact resume,
divergence detection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ambridge.icl import (EnergyTransformer, HELD_OUT_NAMES, candidate_mask, MixtureStream, MixtureTask, ModelConfig, TrainConfig,
                          Trainer, TrainingDiverged, held_out_sets, langevin_negatives, load_model,
                          negative_positions, uniform_init)
from ambridge.icl.evaluate import error_vs_context, true_mixture_descent
from ambridge.icl.layers import prefix_blocked
from ambridge.icl.train import contrastive_divergence_loss, step_gradients
from ambridge.runtime import CapturedCall

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from icl_loop_sampler import loop_negatives  # noqa: E402

TINY = TrainConfig(model=ModelConfig(d_model=16, n_heads=2, n_layers=2), batch_size=2, langevin_steps=3,
                   n_steps=6, checkpoint_every=3)


def _model(dtype=torch.float32, seed=0, **kw):
    torch.manual_seed(seed)
    return EnergyTransformer(ModelConfig(**kw)).to(dtype)


# ------------------------------------------------------------------------------------------------------------ data
def test_stream_shapes_and_prior():
    task = MixtureTask()
    points, means = MixtureStream(task, seed=0).batch(4)
    assert points.shape == (4, 35, 2) and means.shape == (4, 3, 2)
    nearest = torch.cdist(points, means).min(-1).values
    assert nearest.max() < 6 * task.component_std  # every point is near one of its own means
    big = MixtureStream(task, seed=1).batch(2000)[1]
    assert abs(big.std().item() - 5.0) < 0.1  # means ~ N(0, 5² I)


def test_stream_pool_and_state_roundtrip():
    stream = MixtureStream(MixtureTask(), seed=0, pool_size=5)
    means = torch.cat([stream.batch(8)[1] for _ in range(10)])
    assert len(torch.unique(means.reshape(len(means), -1), dim=0)) <= 5
    state = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in stream.state_dict().items()}
    a = stream.batch(3)[0]
    other = MixtureStream(MixtureTask(), seed=99, pool_size=5)
    other.load_state_dict(state)
    assert torch.equal(other.batch(3)[0], a)


def test_held_out_sets():
    sets = held_out_sets(MixtureTask(), 3, generator=torch.Generator().manual_seed(0))
    assert tuple(sets) == HELD_OUT_NAMES
    for name, s in sets.items():
        assert s["points"].shape == (3, 35, 2), name
        assert bool(torch.isfinite(s["points"]).all())
    assert sets["5 components"]["means"].shape == (3, 5, 2)
    assert sets["moons"]["means"] is None and sets["moons"]["points"].abs().max() <= 7.5 + 1e-6


# ----------------------------------------------------------------------------------------------------------- model
def test_energies_are_causal():
    model = _model(torch.float64)
    x = torch.randn(3, 12, 2, dtype=torch.float64)
    e = model(x)
    assert e.shape == (3, 12)
    for m in (0, 5, 11):
        y = x.clone()
        y[:, m] += 3.0
        f = model(y)
        assert torch.allclose(e[:, :m], f[:, :m], atol=1e-12, rtol=0), m  # earlier positions do not see x_m
        assert (e[:, m] - f[:, m]).abs().min() > 1e-8  # position m does


def test_candidate_energies_equal_explicit_sequences():
    model = _model(torch.float64)
    ctx = torch.randn(2, 8, 2, dtype=torch.float64)
    cand = torch.randn(2, 5, 2, dtype=torch.float64)
    pos = torch.tensor([0, 3, 3, 8, 5])
    e_real, e_cand = model.candidate_energies(ctx, cand, pos)
    assert torch.allclose(e_real, model(ctx), atol=1e-12, rtol=0)  # candidates do not disturb the real tokens
    for m, p in enumerate(pos.tolist()):
        explicit = model(torch.cat([ctx[:, :p], cand[:, m:m + 1]], 1))[:, -1]
        assert torch.allclose(e_cand[:, m], explicit, atol=1e-12, rtol=0)


@pytest.mark.parametrize("n_heads,feedforward", [(2, 0), (4, 24)])
def test_passes_equal_pytorchs_encoder_with_the_dense_mask(n_heads, feedforward):
    """The cached two-pass layers (ambridge.icl.layers) against PyTorch's own TransformerEncoder run on real tokens
    and candidates together under the dense boolean mask of candidate_mask: the same energies, real and candidate."""
    model = _model(torch.float64, d_model=16, n_heads=n_heads, n_layers=3, dim_feedforward=feedforward)
    g = torch.Generator().manual_seed(3)
    ctx = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    cand = torch.randn(3, 6, 2, generator=g, dtype=torch.float64)
    pos = torch.tensor([0, 1, 7, 3, 3, 6])
    dense = model.encoder(model.embed(torch.cat([ctx, cand], 1)), mask=candidate_mask(7, pos))
    reference = model.readout(dense).squeeze(-1)
    e_real, e_cand = model.candidate_energies(ctx, cand, pos)
    assert torch.allclose(e_real, reference[:, :7], atol=1e-12, rtol=0)
    assert torch.allclose(e_cand, reference[:, 7:], atol=1e-12, rtol=0)
    assert torch.allclose(model(ctx), reference[:, :7], atol=1e-12, rtol=0)
    given = model.energy_given(ctx, cand[0], chunk=4)  # every query sees the whole context
    full = model.candidate_energies(ctx, cand[0].expand(3, 6, 2), torch.full((6,), 7))[1]
    assert torch.allclose(given, full, atol=1e-12, rtol=0)
    assert torch.allclose(model.energy_given(ctx[:, :0], cand[0]), model.candidate_energies(
        ctx, cand[0].expand(3, 6, 2), torch.zeros(6, dtype=torch.long))[1], atol=1e-12, rtol=0)  # n = 0


def test_feedforward_default_is_four_d_model():
    assert ModelConfig(d_model=32, n_heads=4).feedforward == 128
    assert _model(d_model=32, n_heads=4).encoder.layers[0].linear1.out_features == 128
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, n_heads=4)


# --------------------------------------------------------------------------------------------------------- sampler
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_vectorised_sampler_equals_loop(dtype, tol):
    model = _model(dtype)
    g = torch.Generator().manual_seed(1)
    b, n, s, t = 2, 9, 3, 5
    ctx = 5 * torch.randn(b, n, 2, generator=g, dtype=dtype)
    init = uniform_init((b, n, s, 2), 15.0, generator=g, dtype=dtype)
    noise = torch.randn(t, b, n, s, 2, generator=g, dtype=dtype)
    kw = dict(step_size=0.5, noise_std=0.05)
    fast = langevin_negatives(model, ctx, n_negatives=s, n_steps=t, box=15.0, init=init, noise=noise, **kw)
    slow = loop_negatives(model, ctx, init, noise, box=15.0, **kw)
    assert (fast - init).abs().max() > 1e-3  # the chains moved
    assert (fast - slow).abs().max() < tol


def test_sampler_step_convention():
    """x ← x − α∇E + s·ω exactly: one step of the sampler against a hand-made step."""
    model = _model(torch.float64)
    g = torch.Generator().manual_seed(2)
    ctx = torch.randn(1, 4, 2, generator=g, dtype=torch.float64)
    init = torch.randn(1, 4, 1, 2, generator=g, dtype=torch.float64)
    noise = torch.randn(1, 1, 4, 1, 2, generator=g, dtype=torch.float64)
    out = langevin_negatives(model, ctx, n_negatives=1, n_steps=1, step_size=0.3, noise_std=0.2, box=100.0,
                             init=init, noise=noise)
    x = init.reshape(1, 4, 2).clone().requires_grad_(True)
    e = model.candidate_energies(ctx, x, negative_positions(4, 1))[1].sum()
    (grad,) = torch.autograd.grad(e, x)
    expected = x.detach() - 0.3 * grad + 0.2 * noise.reshape(1, 4, 2)
    assert torch.allclose(out.reshape(1, 4, 2), expected, atol=1e-12, rtol=0)
    clamped = langevin_negatives(model, ctx, n_negatives=1, n_steps=1, step_size=0.3, noise_std=0.2, box=0.1,
                                 init=init, noise=noise)
    assert torch.equal(clamped, out.clamp(-0.1, 0.1))  # chains are clamped to the prior box


# ---------------------------------------------------------------------------------------------------------- train
def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _reference_step(model, optimizer, stream, generator, c: TrainConfig):
    """One optimizer step written with the public pieces (the sampler, the candidate pass, loss.backward()): the
    formulation the trainer had before its micro-batch became a pure function for CUDA graphs."""
    optimizer.zero_grad(set_to_none=True)
    for _ in range(c.grad_accum):
        context, _ = stream.batch(c.batch_size)
        neg = langevin_negatives(model, context, n_negatives=c.n_negatives, n_steps=c.langevin_steps,
                                 step_size=c.step_size, noise_std=c.noise_std, box=c.task.box, generator=generator)
        b, n, s, d = neg.shape
        e_pos, e_neg = model.candidate_energies(context, neg.reshape(b, n * s, d), negative_positions(n, s))
        (contrastive_divergence_loss(e_pos, e_neg, c.reg) / c.grad_accum).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
    optimizer.step()


@pytest.mark.parametrize("grad_accum", [1, 3])
def test_trainer_step_equals_the_reference_step_bit_for_bit(grad_accum):
    config = TINY.with_(grad_accum=grad_accum)
    trainer = Trainer(config)
    torch.manual_seed(config.seed)
    model = EnergyTransformer(config.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    stream = MixtureStream(config.task, seed=config.seed + 1, pool_size=config.pool_size)
    generator = torch.Generator().manual_seed(config.seed + 2)
    for _ in range(3):
        trainer.train_step()
        _reference_step(model, optimizer, stream, generator, config)
    a, b = _params(trainer.model), _params(model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_step_gradients_are_the_loss_gradients_and_change_nothing():
    trainer = Trainer(TINY)
    context, init, noise = trainer.draw_inputs()
    n = context.shape[1]
    blocked = prefix_blocked(n, negative_positions(n, TINY.n_negatives))
    before = _params(trainer.model)
    neg, stats, grads = step_gradients(trainer.model, TINY, blocked, context, init, noise, accum=2)
    assert all(torch.equal(before[k], v) for k, v in _params(trainer.model).items())
    assert all(p.grad is None for p in trainer.model.parameters())
    # the same loss through the model's checked entry point and loss.backward()
    e_pos, e_neg = trainer.model.candidate_energies(context, neg, negative_positions(n, TINY.n_negatives))
    loss = contrastive_divergence_loss(e_pos, e_neg, TINY.reg)
    loss.backward()
    assert torch.allclose(stats[0], loss) and torch.allclose(stats[1], e_pos.mean() - e_neg.mean())
    for p, g in zip(trainer.model.parameters(), grads):
        torch.testing.assert_close(2 * g, p.grad)


def test_cuda_graphs_need_a_cuda_device():
    with pytest.raises(ValueError, match="cuda_graph"):
        Trainer(TINY, "cpu", cuda_graph=True)
    with pytest.raises(ValueError, match="CUDA device"):
        CapturedCall(lambda x: x + 1, torch.zeros(3))
    with pytest.raises(TypeError, match="example input"):
        CapturedCall(lambda: None)


def test_resume_is_bit_exact(tmp_path):
    straight = Trainer(TINY)
    straight.train(progress=False)
    interrupted = Trainer(TINY, checkpoint_path=tmp_path / "state.pt")
    interrupted.train(3, progress=False)
    del interrupted
    torch.manual_seed(12345)  # a different global RNG state: the checkpoint must restore it
    resumed = Trainer.resume(tmp_path / "state.pt")
    assert resumed.step == 3
    resumed.train(progress=False)
    a, b = _params(straight.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in straight.log] == [r["loss"] for r in resumed.log]


def test_resume_in_a_new_process(tmp_path):
    base = [sys.executable, "-m", "ambridge.icl", "--preset", "tiny", "--device", "cpu", "--checkpoint-every", "2",
            "--print-every", "2", "--name", "run"]
    run = lambda *extra: subprocess.run(base + list(extra), capture_output=True, text=True, check=True)  # noqa: E731
    run("--steps", "4", "--out", str(tmp_path / "straight"))
    run("--steps", "2", "--out", str(tmp_path / "cut"))
    run("--steps", "4", "--out", str(tmp_path / "cut"), "--resume")
    a = torch.load(tmp_path / "straight" / "run.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "run.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert (tmp_path / "cut" / "run-log.csv").read_text() .count("\n") == 5  # header + 4 steps
    model, _ = load_model(tmp_path / "cut" / "run.pt")
    assert not model.training


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(TINY.with_(checkpoint_every=2), checkpoint_path=tmp_path / "state.pt")
    trainer.train(2, progress=False)
    good = _params(trainer.model)
    real_batch = trainer.stream.batch
    trainer.stream.batch = lambda b: (torch.full_like(real_batch(b)[0], float("nan")), None)
    with pytest.raises(TrainingDiverged, match="non-finite loss") as err:
        trainer.train(progress=False)
    assert err.value.step == 2 and err.value.checkpoint == tmp_path / "state.pt"
    now = _params(trainer.model)
    assert all(torch.equal(good[k], now[k]) for k in good)  # the bad update was not applied
    saved = torch.load(tmp_path / "state.pt", weights_only=False)
    assert saved["step"] == 2 and all(torch.equal(good[k], saved["model"][k]) for k in good)


def test_energy_blow_up_is_detected():
    with pytest.raises(TrainingDiverged, match="energy_limit"):
        Trainer(TINY.with_(energy_limit=1e-6)).train(progress=False)


def test_config_checks():
    with pytest.raises(ValueError, match="step_size"):
        TrainConfig(step_size=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    assert TrainConfig.from_dict(TINY.to_dict()) == TINY


def test_evaluation_helpers():
    model = _model()
    g = torch.Generator().manual_seed(0)
    points, means = MixtureStream(MixtureTask(), seed=0).batch(2)
    out = error_vs_context(model, points, means, [0, 5], n_chains=4, box=15.0, n_steps=2, step_size=0.1,
                           noise_std=0.01, generator=g)
    assert len(out["error"]) == 2 and out["init"].shape == (2, 4, 2)
    final = true_mixture_descent(out["init"], means, 0.33, step_size=0.1, n_steps=100)
    assert torch.cdist(final, means).min(-1).values.max() < 0.05  # the oracle reaches the true means
