"""The ablation that separates untying from QK normalisation and the extra maps (ambridge.attention.model forms,
compare_forms with several forms, ablation_table, the command line's --forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ambridge import attention as att
from ambridge.checks import ParameterError

F64 = torch.float64


def _layer(form, d_model=12, n_heads=3, seed=0):
    torch.manual_seed(seed)
    layer = att.NormAttention(d_model, n_heads, form).double()
    for prm in layer.parameters():  # away from the initialisation (zero κ/π weights)
        prm.data += 0.3 * torch.randn_like(prm)
    return layer


def _inputs(seed=1, b=2, t=7, d=12):
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _projections(layer, x, s):
    """Per-head queries (B, H, T, d_h) and keys (B, H, S, d_h) written out from the weights."""
    h = torch.nn.functional.layer_norm(x, (x.shape[-1],), layer.norm.weight, layer.norm.bias, layer.norm.eps)
    q = (h @ layer.query.weight.T + layer.query.bias).unflatten(-1, (layer.n_heads, -1)).transpose(1, 2)
    k = (h[:, :s] @ layer.key.weight.T + layer.key.bias).unflatten(-1, (layer.n_heads, -1)).transpose(1, 2)
    return h, q, k


@pytest.mark.parametrize("form", att.FORMS)
def test_every_form_computes_its_stated_logits_and_reads_as_a_vmf_e_step(form):
    layer, x, s = _layer(form), _inputs(), 4
    h, q, k = _projections(layer, x, s)
    dh = layer.head_dim
    unit = lambda t: t / t.norm(dim=-1, keepdim=True)  # noqa: E731
    if form == "standard":
        ref = q @ k.transpose(-1, -2) / math.sqrt(dh)
    elif form == "split":
        ref = q[..., :-1] @ k[..., :-1].transpose(-1, -2) / math.sqrt(dh) + k[..., -1][:, :, None, :]
    elif form == "qknorm":
        ref = layer.log_temperature.exp()[None, :, None, None] * (unit(q) @ unit(k).transpose(-1, -2))
    else:
        kappa = (h[:, :s] @ layer.log_kappa.weight.T + layer.log_kappa.bias).exp().transpose(1, 2)[:, :, None, :]
        log_pi = (h[:, :s] @ layer.log_prior.weight.T + layer.log_prior.bias).transpose(1, 2)[:, :, None, :]
        sim = unit(q) @ unit(k).transpose(-1, -2) if form == "untied" else q @ k.transpose(-1, -2) / math.sqrt(dh)
        ref = kappa * sim + log_pi
    assert torch.allclose(layer.logits(x, s), ref, atol=1e-12)
    layer(x, s)
    for head in range(layer.n_heads):
        view = layer.vmf_view(x, s, head)
        assert (view.responsibilities - layer.last_weights[:, head]).abs().max() < 1e-12
        assert torch.allclose(view.query_directions.norm(dim=-1), torch.ones(2, 7, dtype=F64))


def test_split_is_the_standard_form_with_one_query_coordinate_pinned():
    """The split form is inside the standard form's hypothesis class: a standard layer whose last query coordinate per
    head is the constant √d_h (zero weight row, bias √d_h) computes the same logits."""
    split = _layer("split")
    standard = att.NormAttention(12, 3, "standard").double()
    standard.load_state_dict(split.state_dict())
    dh = split.head_dim
    with torch.no_grad():
        for head in range(3):
            row = head * dh + dh - 1
            standard.query.weight[row] = 0.0
            standard.query.bias[row] = math.sqrt(dh)
    x = _inputs(2)
    assert torch.allclose(standard.logits(x, 4), split.logits(x, 4), atol=1e-12)


def test_at_initialisation_the_extra_maps_change_nothing():
    """The 'heads' form starts as the standard one (κ_s = 1, log π_s = 0), the untied form as QK-norm (κ_s = √d_h)."""
    x = _inputs(3)
    for plain, extra in [("standard", "heads"), ("qknorm", "untied")]:
        torch.manual_seed(5)
        a = att.NormAttention(12, 3, plain).double()
        torch.manual_seed(5)
        b = att.NormAttention(12, 3, extra).double()
        b.load_state_dict(a.state_dict(), strict=False)
        assert torch.allclose(a.logits(x, 4), b.logits(x, 4), atol=1e-12)


def test_forms_traits_and_parameter_counts():
    assert set(att.FORM_TRAITS) == set(att.FORMS)
    d, h, layers = 16, 2, 2
    size = {f: sum(p.numel() for p in att.RetrievalTransformer(11, d, layers, h, f).parameters()) for f in att.FORMS}
    maps_per_layer = 2 * (d + 1) * h  # two linear maps d → H
    readout_maps = 2 * (d + 1) * 1
    assert size["split"] == size["standard"]
    assert size["qknorm"] == size["standard"] + layers * h + 1  # a temperature per head, the read-out has one head
    assert size["heads"] == size["untied"] == size["standard"] + layers * maps_per_layer + readout_maps
    for form, traits in att.FORM_TRAITS.items():
        layer = att.NormAttention(d, h, form)
        assert hasattr(layer, "log_kappa") == traits["maps"] == hasattr(layer, "log_prior")
        assert hasattr(layer, "log_temperature") == (form == "qknorm")
    with pytest.raises(ParameterError, match="width"):
        att.NormAttention(4, 4, "split")


def test_a_pre_drawn_stream_trains_exactly_like_drawing_as_you_go():
    task = att.RetrievalTask(dim=4, n_memories=3, n_queries=2)
    eval_batch = att.vmf_retrieval_batch(task, 8, generator=torch.Generator().manual_seed(0))
    runs = []
    for pre_drawn in (False, True):
        torch.manual_seed(1)
        model = att.RetrievalTransformer(task.token_dim, 8, 1, 2, "split")
        gen = torch.Generator().manual_seed(7)
        batches = [att.vmf_retrieval_batch(task, 4, generator=gen, posterior=False) for _ in range(5)] if pre_drawn else None
        runs.append(att.train_retrieval(model, task, steps=5, batch_size=4, eval_batch=eval_batch, eval_every=2,
                                        generator=None if pre_drawn else torch.Generator().manual_seed(7),
                                        batches=batches))
    assert runs[0] == runs[1]
    with pytest.raises(ParameterError, match="batches"):
        att.train_retrieval(model, task, steps=5, eval_batch=eval_batch, batches=batches[:2])


def test_compare_forms_over_every_form_is_paired_and_counts_parameters():
    task = att.RetrievalTask(dim=4, n_memories=3, n_queries=2)
    kw = dict(d_model=8, n_layers=1, n_heads=2, steps=3, batch_size=4, eval_size=8, eval_every=1)
    out = att.compare_forms(task, seeds=[0, 1], forms=att.FORMS, **kw)
    assert list(out["loss"]) == list(att.FORMS) and all(len(v) == 2 for v in out["loss"].values())
    alone = att.compare_forms(task, seeds=[1], forms=("split",), **kw)  # a run does not depend on the others
    assert alone["loss"]["split"][0] == out["loss"]["split"][1]
    assert out["n_parameters"]["split"] == out["n_parameters"]["standard"] < out["n_parameters"]["untied"]
    # training seeds torch's global generator and initialises the model; counting parameters must not move it after
    att.compare_forms(task, seeds=[0], forms=("standard",), **kw)
    after = torch.random.get_rng_state()
    torch.manual_seed(0)
    att.RetrievalTransformer(task.token_dim, 8, 1, 2, "standard")
    assert torch.equal(after, torch.random.get_rng_state())
    for bad in [("standard", "standard"), ("tied",), ()]:
        with pytest.raises(ParameterError, match="forms"):
            att.compare_forms(task, seeds=[0], forms=bad, **kw)


def test_paired_difference_names_the_forms_it_compares():
    curves = lambda finals: [[2.0, f] for f in finals]  # noqa: E731
    loss = {"standard": curves([1.0, 1.1, 1.2]), "split": curves([0.8, 0.9, 1.05]), "qknorm": curves([1.3, 1.4, 1.5])}
    diff, se, verdict = att.paired_difference(loss, "standard", "split")
    assert np.allclose(diff, [0.2, 0.2, 0.15]) and verdict == "split is better"
    assert att.paired_difference(loss, "standard", "qknorm").verdict == "standard is better"
    with pytest.raises(ParameterError, match="untied"):
        att.paired_difference(loss)  # the default other form is absent
    with pytest.raises(ParameterError, match="loss"):
        att.paired_difference(loss, "split", "split")


def test_ablation_table_rows():
    curves = lambda finals: [[2.0, f] for f in finals]  # noqa: E731
    result = {"bayes_loss": 0.5, "n_parameters": {"standard": 100, "heads": 1234, "split": 100},
              "loss": {"standard": curves([1.0, 1.1, 1.2]), "heads": curves([0.9, 1.0, 1.1]),
                       "split": curves([1.0, 1.12, 1.17])}}
    rows = att.ablation_table(result)
    assert [r[0] for r in rows] == ["standard", "heads", "split"]
    assert all(len(r) == len(att.ABLATION_COLUMNS) for r in rows)
    assert rows[0][1:5] == ("no", "no", "no", "100") and rows[0][6:] == ("—", "—", "(baseline)")
    assert rows[1][1:5] == ("no", "yes", "yes", "1,234")
    assert rows[1][5] == f"{0.5:.4f} ± {0.1:.4f}"  # excess 0.4, 0.5, 0.6
    assert rows[1][6] == "+0.1000 ± 0.0000" and rows[1][7] == "3 of 3"
    diff = np.array([0.0, -0.02, 0.03])
    assert rows[2][6] == f"{diff.mean():+.4f} ± {diff.std(ddof=1) / math.sqrt(3):.4f}" and rows[2][7] == "1 of 3"
    assert rows[2][8] == "no difference detected (within 2 standard errors)"


def test_command_line_forms_and_artifact_names(tmp_path, capsys):
    from ambridge.attention.__main__ import artifact_name, main

    assert artifact_name(("standard", "untied")) == "untied_comparison.json"
    assert artifact_name(att.FORMS) == "form_ablation.json"
    assert main(["compare-forms", "--out", str(tmp_path), "--small", "--workers", "1", "--forms", "standard",
                 "split"]) == 0
    record = att.read_comparison(tmp_path / "form_ablation.json")
    assert list(record["loss"]) == ["standard", "split"]
    assert record["n_parameters"]["split"] == record["n_parameters"]["standard"]
    assert "forms ['standard', 'split']" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["compare-forms", "--out", str(tmp_path), "--forms", "tied"])
