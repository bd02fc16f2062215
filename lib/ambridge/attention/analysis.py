"""Reading the untied experiment: final and excess losses, the paired comparison of two forms, the ablation table
of every form against the standard one, the figure of the learning curves, the committed paper-scale artifact, and
what a trained read-out believes the mixture is.

Used in chapter 6, § Inside a trained transformer, § The experiment the paper proposes: untie concentration
and mixing weight, and § Untying, unconfounded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .. import checks
from ..special import log_vmf_normaliser
from .estep import VMFAttention
from .model import FORM_TRAITS

__all__ = [
    "final_losses",
    "excess_over_bayes",
    "PairedComparison",
    "paired_difference",
    "ABLATION_COLUMNS",
    "ablation_table",
    "plot_comparison",
    "read_comparison",
    "MixtureReading",
    "read_mixture",
]

_RESULT_KEYS = ("step", "bayes_loss", "loss")


def final_losses(result: dict) -> dict[str, np.ndarray]:
    """The last evaluation loss of every seed, per form: ``{form: (n_seeds,) array}`` from a :func:`compare_forms`
    result (or the artifact read by :func:`read_comparison`).

    Used in chapter 6, § Inside a trained transformer."""
    return {form: np.array([curve[-1] for curve in curves]) for form, curves in result["loss"].items()}


def excess_over_bayes(result: dict) -> dict[str, float]:
    """Mean final loss over the seeds minus the Bayes loss, per form: how far each form stays above the floor.

    Used in chapter 6, § The experiment the paper proposes: untie concentration and mixing weight."""
    return {form: np.mean([curve[-1] for curve in curves]) - result["bayes_loss"]
            for form, curves in result["loss"].items()}


class PairedComparison(NamedTuple):
    """The final-loss difference baseline − other, seed by seed (positive: the other form is lower).

    Used in chapter 6, § The experiment the paper proposes: untie concentration and mixing weight, and § Untying,
    unconfounded."""

    diff: np.ndarray  # (n_seeds,)
    se: float  # standard error of the mean difference
    verdict: str


def paired_difference(loss: dict, baseline: str = "standard", other: str = "untied") -> PairedComparison:
    """Final-loss difference ``baseline`` − ``other`` per seed (runs with the same seed share initialisation and
    data), its standard error, and a verdict at two standard errors: "no difference detected (within 2 standard
    errors)", "<other> is better" or "<baseline> is better". ``loss``: ``{form: [[...] per seed]}``.

    Used in chapter 6, § The experiment the paper proposes: untie concentration and mixing weight, and § Untying,
    unconfounded."""
    if ({baseline, other} - set(loss) or baseline == other or len(loss[baseline]) != len(loss[other])
            or len(loss[other]) < 2):
        raise checks.ParameterError("loss", loss, f"needs '{baseline}' and '{other}' curves for the same 2 or more "
                                    "seeds", shown=f"forms {sorted(loss)}")
    diff = np.array([s[-1] - u[-1] for s, u in zip(loss[baseline], loss[other])])
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    if abs(diff.mean()) <= 2 * se:
        verdict = "no difference detected (within 2 standard errors)"
    else:
        verdict = f"{other} is better" if diff.mean() > 0 else f"{baseline} is better"
    return PairedComparison(diff, se, verdict)


#: The column headers of :func:`ablation_table`'s rows (the baseline named "standard").
ABLATION_COLUMNS = ("form", "QK norm", "κ, π maps", "untied", "parameters", "excess over Bayes (mean ± sd)",
                    "standard − form (± se)", "form lower in", "verdict at 2 se")


def ablation_table(result: dict, baseline: str = "standard") -> list[tuple]:
    """Rows of the ablation table, one per form of a :func:`compare_forms` result: form, its traits (QK
    normalisation, own κ/π maps, untied — "yes"/"no", from :data:`~ambridge.attention.model.FORM_TRAITS`), trained
    parameters, final excess over the Bayes loss (mean ± sd over seeds), and against ``baseline``: the paired
    difference baseline − form (mean ± standard error), in how many seeds the form is lower, and the verdict of
    :func:`paired_difference`. Headers: :data:`ABLATION_COLUMNS`.

    Used in chapter 6, § Untying, unconfounded."""
    final = final_losses(result)
    rows = []
    for form, values in final.items():
        excess = values - result["bayes_loss"]
        marks = ["yes" if FORM_TRAITS[form][key] else "no" for key in ("qk_norm", "maps", "untied")]
        if form == baseline:
            versus = ["—", "—", "(baseline)"]
        else:
            diff, se, verdict = paired_difference(result["loss"], baseline, form)
            versus = [f"{diff.mean():+.4f} ± {se:.4f}", f"{int((diff > 0).sum())} of {len(diff)}", verdict]
        rows.append((form, *marks, f"{result['n_parameters'][form]:,}",
                     f"{excess.mean():.4f} ± {excess.std(ddof=1):.4f}", *versus))
    return rows


def plot_comparison(ax, steps, loss: dict, bayes: float, title: str) -> None:
    """Draw the excess evaluation loss over the Bayes floor on ``ax``: per form, the mean over seeds and a band of
    ± one standard deviation (log scale, the band clipped at 1e-4).

    Used in chapter 6, § The experiment the paper proposes: untie concentration and mixing weight."""
    from ..plotting import PALETTE

    for (form, curves), colour in zip(loss.items(), PALETTE):
        excess = np.asarray(curves) - bayes
        mean, sd = excess.mean(0), excess.std(0, ddof=1)
        ax.plot(steps, mean, color=colour, label=f"{form} ({len(curves)} seeds)")
        ax.fill_between(steps, np.maximum(mean - sd, 1e-4), mean + sd, color=colour, alpha=0.2)
    ax.set(yscale="log", xlabel="training step", ylabel="eval loss − Bayes loss (nats)", title=title)
    ax.legend()


def read_comparison(path) -> dict:
    """Read a comparison artifact: the JSON run record written by ``python -m ambridge.attention compare-forms``
    (``parameters``, ``hardware``, ``step``, ``bayes_loss``, ``loss``). Raises ``ValueError`` naming what is missing.

    Used in chapter 6, § The experiment the paper proposes: untie concentration and mixing weight."""
    record = json.loads(Path(path).read_text())
    missing = [k for k in ("parameters", "hardware", *_RESULT_KEYS) if k not in record]
    if missing:
        raise ValueError(f"{path}: not a comparison record, missing {', '.join(missing)}")
    lengths = {len(curve) for curves in record["loss"].values() for curve in curves}
    if lengths != {len(record["step"])}:
        raise ValueError(f"{path}: loss curves of lengths {sorted(lengths)} for {len(record['step'])} steps")
    return record


@dataclass
class MixtureReading:
    """What a trained read-out's vMF view says about the mixture, beside the truth (flattened over the batch).

    ``true_kappa``, ``learned_kappa``: κ_s of every memory (B·S,), the learned one averaged over the query tokens;
    ``ideal_log_prior``: log π_s + log C_p(κ_s), the prior term of the Bayes E-step, and ``learned_log_prior``:
    the read-out's log π̃_s, both centred per sequence (softmax ignores a constant); ``kappa_rank``: Spearman
    correlation of learned and true κ; ``prior_correlation``: Pearson correlation of the learned prior term with
    the ideal one; ``weight_correlation``: with log π_s alone.

    Used in chapter 6, § Inside a trained transformer.
    """

    true_kappa: np.ndarray
    learned_kappa: np.ndarray
    ideal_log_prior: np.ndarray
    learned_log_prior: np.ndarray
    kappa_rank: float
    prior_correlation: float
    weight_correlation: float


def _centred(t: torch.Tensor) -> np.ndarray:
    return (t - t.mean(-1, keepdim=True)).flatten().numpy()


def read_mixture(view: VMFAttention, batch: dict, n_memories: int) -> MixtureReading:
    """Compare the mixture a trained read-out implements (``view``, from ``NormAttention.vmf_view`` on a batch of
    :func:`vmf_retrieval_batch`) with the mixture the batch came from. The Bayes logit is
    κ_s m_sᵀx + log π_s + log C_p(κ_s), so a layer that implements the E-step must put the normaliser into its
    prior term: ``prior_correlation`` above ``weight_correlation`` says it did.

    Used in chapter 6, § Inside a trained transformer."""
    from scipy.stats import pearsonr, spearmanr

    true_kappa, log_weight = batch["kappa"], batch["log_weight"]
    p = batch["directions"].shape[-1]
    ideal = log_weight + torch.as_tensor(log_vmf_normaliser(true_kappa.numpy(), p))
    learned_kappa = view.kappa[:, n_memories:].mean(1)  # (B, S): averaged over the query tokens
    learned_prior = _centred(view.log_prior)
    return MixtureReading(
        true_kappa=true_kappa.flatten().numpy(),
        learned_kappa=learned_kappa.flatten().numpy(),
        ideal_log_prior=_centred(ideal),
        learned_log_prior=learned_prior,
        kappa_rank=float(spearmanr(learned_kappa.flatten(), true_kappa.flatten())[0]),
        prior_correlation=float(pearsonr(learned_prior, _centred(ideal))[0]),
        weight_correlation=float(pearsonr(learned_prior, _centred(log_weight))[0]),
    )
