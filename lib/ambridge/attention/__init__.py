"""Normalisation followed by attention, read as clustering on the sphere (book chapter 6).

- :mod:`ambridge.attention.vmf` — the von Mises–Fisher distribution: log-density, the density of the cosine,
  sampling, mixture responsibilities (the special functions — log I_ν, log C_p(κ), A_p(κ) — live in
  :mod:`ambridge.special` and are re-exported here);
- :mod:`ambridge.attention.estep` — pre-norm attention as a vMF E-step: LayerNorm, RMSNorm, PyTorch's own
  encoder layer, and an additive reading of the RMSNorm concentration (the book's own straw man);
- :mod:`ambridge.attention.printed` — the poster's RMSNorm factorisation read literally, against the exact weights;
- :mod:`ambridge.attention.tokens` — tokens moved by normalised self-attention (on the sphere, post-LN, pre-LN)
  and the clusters they form;
- :mod:`ambridge.attention.model` — the attention layer in its standard and untied forms and the three forms of the
  ablation, and the small transformer that carries it;
- :mod:`ambridge.attention.experiment` — the experiment the paper proposes: in-context vMF retrieval, training,
  and the paired comparison of the forms (``python -m ambridge.attention compare-forms`` at paper scale);
- :mod:`ambridge.attention.analysis` — reading the comparison, the ablation and the trained read-out.

Shapes: tokens ``(..., T, D)``, keys ``(..., S, D)``; concentrations and responsibilities ``(..., T, S)``.
"""

from ..special import log_bessel_iv, log_vmf_normaliser, vmf_mean_resultant_length
from .analysis import (
    ABLATION_COLUMNS,
    MixtureReading,
    PairedComparison,
    ablation_table,
    excess_over_bayes,
    final_losses,
    paired_difference,
    plot_comparison,
    read_comparison,
    read_mixture,
)
from .estep import (
    VMFAttention,
    additive_concentration_fit,
    encoder_layer_vmf_view,
    layernorm_attention_vmf,
    rmsnorm_attention_vmf,
)
from .experiment import RetrievalTask, bayes_loss, compare_forms, train_retrieval, vmf_retrieval_batch
from .model import FORM_TRAITS, FORMS, Form, NormAttention, RetrievalTransformer
from .printed import PrintedFormError, printed_form_error, printed_rmsnorm_weights, total_variation
from .tokens import Scheme, count_clusters, first_time_at_most, longest_plateau, token_dynamics
from .vmf import (
    normalise,
    sample_vmf,
    scipy_log_vmf_normaliser,
    vmf_cosine_density,
    vmf_log_density,
    vmf_responsibilities,
)

__all__ = [
    # special functions (from ambridge.special)
    "log_bessel_iv", "log_vmf_normaliser", "vmf_mean_resultant_length",
    # vmf
    "normalise", "vmf_log_density", "vmf_cosine_density", "scipy_log_vmf_normaliser", "sample_vmf",
    "vmf_responsibilities",
    # estep
    "VMFAttention", "layernorm_attention_vmf", "rmsnorm_attention_vmf", "additive_concentration_fit",
    "encoder_layer_vmf_view",
    # printed (the poster's RMSNorm form)
    "printed_rmsnorm_weights", "total_variation", "PrintedFormError", "printed_form_error",
    # tokens
    "Scheme", "token_dynamics", "count_clusters", "longest_plateau", "first_time_at_most",
    # model and experiment
    "Form", "FORMS", "FORM_TRAITS", "NormAttention", "RetrievalTransformer", "RetrievalTask", "vmf_retrieval_batch",
    "bayes_loss", "train_retrieval", "compare_forms",
    # analysis
    "final_losses", "excess_over_bayes", "PairedComparison", "paired_difference", "ABLATION_COLUMNS", "ablation_table",
    "plot_comparison", "read_comparison", "MixtureReading", "read_mixture",
]
