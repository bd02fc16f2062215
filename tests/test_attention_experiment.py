"""The untied experiment: the retrieval task, the model's attention layers read as E-steps, training and the
paired comparison (ambridge.attention.model, .experiment)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import vonmises_fisher

from ambridge import attention as att
from ambridge.checks import ParameterError

F64 = torch.float64


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=-1, keepdim=True)


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



def test_bad_form_fails_clearly():
    with pytest.raises(ParameterError, match="form"):
        att.NormAttention(8, 2, "tied")
    with pytest.raises(ParameterError, match="divisible"):
        att.NormAttention(9, 2)


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


def test_bayes_loss_is_the_mean_log_posterior_and_beats_other_predictors():
    task = att.RetrievalTask(dim=6, n_memories=5, n_queries=8)
    batch = att.vmf_retrieval_batch(task, 256, generator=torch.Generator().manual_seed(2))
    post, z = batch["posterior"].numpy(), batch["target"].numpy()
    ref = -np.mean([math.log(post[b, q, z[b, q]]) for b in range(z.shape[0]) for q in range(z.shape[1])])
    assert math.isclose(att.bayes_loss(batch), ref, rel_tol=1e-12)
    # the exact posterior is the best predictor: ignoring the weights π, or the concentrations κ, costs
    x = batch["tokens"][:, task.n_memories:, : task.dim].double()
    no_weights = att.vmf_responsibilities(att.normalise(x), batch["directions"], batch["kappa"].unsqueeze(1))
    one_kappa = att.vmf_responsibilities(att.normalise(x), batch["directions"], 12.0, batch["log_weight"].unsqueeze(1))
    for other in (no_weights, one_kappa):
        worse = -torch.gather(other, -1, batch["target"].unsqueeze(-1)).log().mean().item()
        assert worse > att.bayes_loss(batch) + 0.01
    with pytest.raises(ParameterError, match="posterior"):
        att.bayes_loss(att.vmf_retrieval_batch(task, 2, posterior=False))


# --- reading the comparison -----------------------------------------------------------------------------------


def _result(standard_finals, untied_finals, bayes=0.5):
    curves = lambda finals: [[2.0, 1.0, f] for f in finals]  # noqa: E731
    return {"step": [0, 10, 20], "bayes_loss": bayes,
            "loss": {"standard": curves(standard_finals), "untied": curves(untied_finals)}}


def test_final_and_excess_losses():
    result = _result([1.0, 1.2], [0.7, 0.9], bayes=0.5)
    finals = att.final_losses(result)
    assert finals["standard"].tolist() == [1.0, 1.2] and finals["untied"].tolist() == [0.7, 0.9]
    excess = att.excess_over_bayes(result)
    assert math.isclose(excess["standard"], 0.6) and math.isclose(excess["untied"], 0.3)


def test_paired_difference_and_its_verdict():
    from scipy.stats import sem

    diff, se, verdict = att.paired_difference(_result([1.0, 1.1, 1.25], [0.5, 0.62, 0.7])["loss"])
    assert np.allclose(diff, [0.5, 0.48, 0.55]) and math.isclose(se, sem([0.5, 0.48, 0.55]))
    assert verdict == "untied is better"
    assert att.paired_difference(_result([0.5, 0.62, 0.7], [1.0, 1.1, 1.25])["loss"]).verdict == "standard is better"
    noisy = att.paired_difference(_result([1.0, 0.9, 1.05], [0.9, 0.92, 0.97])["loss"])  # mean 0.053 = 1.4 se
    assert noisy.verdict == "no difference detected (within 2 standard errors)"
    with pytest.raises(ParameterError, match="loss"):
        att.paired_difference({"standard": [[1.0], [1.0]]})


def test_plot_comparison_draws_mean_and_band_per_form():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    result = _result([1.0, 1.2], [0.7, 0.9])
    att.plot_comparison(ax, np.array(result["step"]), result["loss"], result["bayes_loss"], "title")
    assert [line.get_label() for line in ax.get_lines()] == ["standard (2 seeds)", "untied (2 seeds)"]
    assert np.allclose(ax.get_lines()[1].get_ydata(), [1.5, 0.5, 0.3])  # mean excess of the untied curves
    assert ax.get_yscale() == "log" and len(ax.collections) == 2


def test_read_comparison_reads_the_committed_artifact_and_refuses_broken_ones(tmp_path):
    from ambridge.book.records import repo_root

    path = repo_root() / "chapters" / "artifacts" / "06_attention_clustering" / "untied_comparison.json"
    record = att.read_comparison(path)
    assert set(record["loss"]) == {"standard", "untied"}
    assert len(record["loss"]["standard"]) == len(record["parameters"]["seeds"])
    broken = dict(record)
    del broken["bayes_loss"]
    (tmp_path / "a.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="bayes_loss"):
        att.read_comparison(tmp_path / "a.json")
    short = dict(record, step=record["step"][:-1])
    (tmp_path / "b.json").write_text(json.dumps(short))
    with pytest.raises(ValueError, match="lengths"):
        att.read_comparison(tmp_path / "b.json")


def test_read_mixture_compares_the_read_out_with_the_truth():
    """A read-out whose κ is a monotone function of the true κ and whose prior term is the Bayes one up to a constant
    per sequence reads as perfect; the learned prior's correlation with log π alone is lower (the normaliser)."""
    task = att.RetrievalTask(dim=5, n_memories=4, n_queries=3)
    batch = att.vmf_retrieval_batch(task, 64, generator=torch.Generator().manual_seed(3))
    b, s, q = 64, task.n_memories, task.n_queries
    kappa = (3 * batch["kappa"].sqrt()).unsqueeze(1).expand(b, s + q, s)  # monotone in the true κ
    ideal = batch["log_weight"] + torch.as_tensor(att.log_vmf_normaliser(batch["kappa"].numpy(), task.dim))
    prior = ideal + torch.randn(b, 1, generator=torch.Generator().manual_seed(4), dtype=F64)  # constant per sequence
    view = att.VMFAttention(None, None, kappa, prior, task.dim, responsibilities=None)
    reading = att.read_mixture(view, batch, s)
    assert math.isclose(reading.kappa_rank, 1.0) and math.isclose(reading.prior_correlation, 1.0)
    assert reading.weight_correlation < 0.99
    centred = (ideal - ideal.mean(-1, keepdim=True)).flatten().numpy()
    assert np.allclose(reading.ideal_log_prior, centred) and np.allclose(reading.learned_log_prior, centred)
    assert reading.learned_kappa.shape == (b * s,) and np.allclose(reading.true_kappa, batch["kappa"].flatten())
    shuffled = att.VMFAttention(None, None, kappa.flip(0), prior, task.dim, responsibilities=None)
    assert att.read_mixture(shuffled, batch, s).kappa_rank < 0.5  # another sequence's κ: no longer follows


# --- the command line behind benchmarks/gpu/06_attention_clustering.sh ------------------------------------------


def test_compare_forms_command_writes_a_readable_run_record(tmp_path, capsys):
    from ambridge.attention.__main__ import main

    assert main(["compare-forms", "--out", str(tmp_path), "--small", "--workers", "1"]) == 0
    record = att.read_comparison(tmp_path / "untied_comparison.json")
    assert record["parameters"]["seeds"] == [0, 1] and record["parameters"]["workers"] == 1
    assert record["step"] == [0, 10, 20] and record["parameters"]["task"]["kappas"] == [2.0, 5.0, 12.0, 30.0, 75.0]
    assert "final eval loss per seed" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["compare-forms", "--out", str(tmp_path), "--workers", "0"])
