"""Scoring samples against the mixture that made the context: four numbers per dataset, each with a known ideal.

Chapter 2 asks how close samples of E_θ(· ∣ x_1..x_n) come to the held-out mixture Σ_k π_k N(μ_k, σ² I). One number
cannot say it: a sampler that puts every chain on one component is close to a mean and wrong about the mixture.

- :func:`paired_squared_error` — the public code's own metric (``mse_transformers_samples_vs_true_samples``,
  ``src/systems.py`` at Ni2002ka/KoyejoLab-ICL-Energy-Based-Models@96adf9b): the squared distance between the chain
  run on the learned energy and the chain run on the true energy *from the same start*, averaged over chains;
  0 when the learned energy is the true one. :func:`public_reference_descent` is that commit's reference chain.
- :func:`mode_coverage` — the fraction of the K components that receive samples (each sample is assigned to its
  nearest true mean, and counts only within ``radius`` of it); a dropped mode lowers it by 1/K.
- :func:`mass_divergence` — the Jensen–Shannon divergence (base 2, in [0, 1]) between the share of samples per
  component (plus an "off every component" bin) and the shares exact samples have (the weights, less the Gaussian
  tail beyond the radius, which goes to the off bin); 0 for exact samples in the limit of many chains, about 0.2
  when one of three equal components is dropped and its mass goes to another.
- :func:`nearest_mean_distance` — the distance from a sample to the nearest true mean, the chapter's first error
  (σ√(π/2) for exact samples of an isotropic 2-D component); blind to a dropped mode.

Used in chapter 2, § Samples against the truth, as n grows.
"""

from __future__ import annotations

import math

import torch

from .. import checks
from ..energies import gaussian_mixture_nll

__all__ = ["paired_squared_error", "public_reference_descent", "nearest_mean_distance", "nearest_component",
           "component_mass", "mode_coverage", "jensen_shannon", "off_component_share", "mass_divergence",
           "score_samples", "exact_nearest_mean_distance"]


def paired_squared_error(samples: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """‖x_m − y_m‖² for chains m run from the same start on two energies: ``samples``, ``reference`` (B, M, D) →
    (B, M). Its mean over chains and datasets at context size n is the public code's logged
    ``test_<eval>/mse_transformers_samples_vs_true_samples_in_context=n`` (``src/systems.py``@96adf9b, the
    evaluation callback: ``torch.square(torch.norm(transformer_samples − true_samples, dim=-1))``, averaged).
    Used in chapter 2, § Samples against the truth, as n grows."""
    if samples.shape != reference.shape or samples.ndim != 3:
        raise checks.ParameterError("reference", reference, f"must have the shape of `samples` (B, M, D) = "
                                    f"{tuple(samples.shape)}", shown=f"a tensor of shape {tuple(reference.shape)}")
    return (samples - reference).pow(2).sum(-1)


def public_reference_descent(init: torch.Tensor, means: torch.Tensor, std: float, *, step_size: float,
                             n_steps: int) -> torch.Tensor:
    """The public code's reference chains (``EnergyFunctionMixtureOfGaussians.sample_data_with_langevin_mcmc``,
    ``src/systems.py``@96adf9b): noise-free steps x ← x − (α/10) ∇_x(−log p(x)) on the true equal-weight mixture,
    α = ``step_size`` (the model's Langevin step). That code multiplies the energy by 10/max E in place under
    ``torch.no_grad()`` before differentiating ("rescale energy to make it ~10"), which leaves the gradient
    unchanged, so the step is α/10 on −log p itself. ``init`` (B, M, D), ``means`` (B, K, D) → (B, M, D).

    At the commit's α = 0.1 the chains move 1 − (1 − 0.01/σ²)^7 ≈ 49 % of the way to a component mean in 7 steps
    (σ = 0.33); at the book's α = 3.16 the step 0.316 exceeds 2σ², where descent on a Gaussian diverges.
    Used in chapter 2, § Samples against the truth, as n grows."""
    checks.positive("std", std)
    checks.positive("step_size", step_size)
    checks.count("n_steps", n_steps)
    x = init.detach().clone()
    for _ in range(n_steps):
        x = x.requires_grad_(True)
        with torch.enable_grad():
            energy = torch.stack([gaussian_mixture_nll(xb, mb, std**2) for xb, mb in zip(x, means)])
            (grad,) = torch.autograd.grad(energy.sum(), x)
        x = (x - step_size / 10.0 * grad).detach()
    return x


def nearest_mean_distance(points: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Distance from each point to the nearest true component mean: ``points`` (B, M, D), ``means`` (B, K, D) →
    (B, M). Used in chapter 2, § Samples against the truth, as n grows."""
    return torch.cdist(points, means).min(dim=-1).values


def exact_nearest_mean_distance(std: float, dim: int = 2) -> float:
    """E‖x − μ‖ for x ~ N(μ, σ² I_D) (a chi distribution times σ): σ√2 Γ((D+1)/2)/Γ(D/2), σ√(π/2) in 2-D — the
    nearest-mean distance of exact samples when the components are far apart. Used in chapter 2, § Samples against
    the truth, as n grows."""
    checks.positive("std", std)
    checks.count("dim", dim, low=1)
    return std * math.sqrt(2) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))


def nearest_component(samples: torch.Tensor, means: torch.Tensor, radius: float) -> torch.Tensor:
    """The index of each sample's nearest true mean, or K ("off every component") when that mean is farther than
    ``radius``. ``samples`` (B, M, D), ``means`` (B, K, D) → (B, M) integers in [0, K]. Used in chapter 2, § Samples
    against the truth, as n grows."""
    checks.positive("radius", radius)
    dist, idx = torch.cdist(samples, means).min(dim=-1)
    return torch.where(dist <= radius, idx, torch.full_like(idx, means.shape[1]))


def component_mass(samples: torch.Tensor, means: torch.Tensor, radius: float) -> torch.Tensor:
    """The share of the samples assigned to each component (:func:`nearest_component`), the last entry the share
    off every component: (B, M, D), (B, K, D) → (B, K + 1), rows summing to 1. Used in chapter 2, § Samples against
    the truth, as n grows."""
    k = means.shape[1]
    labels = nearest_component(samples, means, radius)
    counts = torch.zeros(labels.shape[0], k + 1, dtype=torch.float64)
    counts.scatter_add_(1, labels.cpu(), torch.ones(labels.shape, dtype=torch.float64))
    return counts / labels.shape[1]


def mode_coverage(samples: torch.Tensor, means: torch.Tensor, radius: float, *, min_share: float = 0.0) -> torch.Tensor:
    """The fraction of the K components that receive samples: a component counts when more than ``min_share`` of
    the samples are assigned to it (default: at least one). (B, M, D), (B, K, D) → (B,). Used in chapter 2,
    § Samples against the truth, as n grows."""
    checks.check_number("min_share", min_share, low=0, high=1, high_open=True)
    share = component_mass(samples, means, radius)[:, :-1]
    return (share > min_share).double().mean(dim=1)


def jensen_shannon(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence in bits between discrete distributions along the last axis (symmetric, in
    [0, 1]; 0 iff p = q): ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2. (scipy's ``jensenshannon(p, q, base=2)`` is its
    square root.) Used in chapter 2, § Samples against the truth, as n grows."""
    p, q = p.double(), q.double()
    m = (p + q) / 2

    def kl(a):
        return torch.where(a > 0, a * (a / m.clamp_min(1e-300)).log2(), torch.zeros_like(a)).sum(-1)

    return (0.5 * kl(p) + 0.5 * kl(q)).clamp_min(0.0)


def off_component_share(radius: float, std: float, dim: int) -> float:
    """P(‖x − μ‖ > radius) for x ~ N(μ, σ² I_D), the chi-square tail at (radius/σ)² with D degrees of freedom
    (exp(−radius²/(2σ²)) in 2-D): the share of exact samples a radius leaves off their component. Used in chapter 2,
    § Samples against the truth, as n grows."""
    from scipy.stats import chi2

    checks.positive("std", std)
    return float(chi2.sf((radius / std) ** 2, dim))


def mass_divergence(samples: torch.Tensor, means: torch.Tensor, radius: float, std: float,
                    weights: torch.Tensor | None = None) -> torch.Tensor:
    """Jensen–Shannon divergence (bits) between the sample mass per component, with the off-component share as one
    more bin, and the mass exact samples put there: π_k (1 − t) per component and t off, where t is
    :func:`off_component_share` (components of standard deviation ``std``, assumed well apart); π (B, K) or (K,) is
    uniform when None. (B, M, D), (B, K, D) → (B,). Used in chapter 2, § Samples against the truth, as n grows."""
    b, k, d = means.shape
    if weights is None:
        weights = torch.full((b, k), 1.0 / k, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64).expand(b, k)
    tail = off_component_share(radius, std, d)
    target = torch.cat([weights * (1 - tail), torch.full((b, 1), tail, dtype=torch.float64)], dim=1)
    return jensen_shannon(component_mass(samples, means, radius), target)


def score_samples(samples: torch.Tensor, means: torch.Tensor, std: float, *, radius: float | None = None,
                  reference: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """All the chapter's metrics for one set of samples against mixtures of component standard deviation ``std``,
    one value per dataset (B,): ``coverage`` and ``divergence`` (Jensen–Shannon) with samples counted within
    ``radius`` (default 3σ) of their nearest mean, ``nearest`` (mean distance to the nearest true mean) and, when
    ``reference`` chains from the same starts are given, ``paired`` (the public code's mean squared distance to
    them). Used in chapter 2, § Samples against the truth, as n grows."""
    radius = 3 * std if radius is None else radius
    samples, means = samples.detach().cpu().double(), means.detach().cpu().double()
    out = {"coverage": mode_coverage(samples, means, radius),
           "divergence": mass_divergence(samples, means, radius, std, weights),
           "nearest": nearest_mean_distance(samples, means).mean(dim=1)}
    if reference is not None:
        out["paired"] = paired_squared_error(samples, reference.detach().cpu().double()).mean(dim=1)
    return out
