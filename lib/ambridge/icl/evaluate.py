"""Reading a frozen in-context energy model: landscapes after n points, samples, and their error against the truth.

The model's parameters never change here; only the context does. For a held-out dataset x_1, …, x_N and n ≤ N the
landscape is y ↦ E_θ(y ∣ x_1, …, x_n) (the query y is a candidate token at position n), and samples are Langevin
chains on it, run with the sampler the model was trained with.
"""

from __future__ import annotations

import torch

import math

import numpy as np

from .. import checks
from ..dynamics import gradient_flow
from ..energies import gaussian_mixture_nll
from .baselines import fit_em, fit_kde, true_mixture
from .metrics import nearest_mean_distance, score_samples
from .model import EnergyTransformer
from .sampler import langevin_candidates, uniform_init

__all__ = ["energy_landscape", "sample_given", "nearest_mean_distance", "true_mixture_descent", "error_vs_context",
           "sampler_temperature", "noise_for_temperature", "samples_at_context_sizes", "score_model",
           "score_baselines", "METHODS", "mean_band", "scores_at", "band_over_runs"]


def energy_landscape(model: EnergyTransformer, context: torch.Tensor, device: str | torch.device = "cpu"):
    """y ↦ E_θ(y ∣ context) as a function of a grid of points (..., D) → (...) on the CPU, for
    :func:`ambridge.plotting.plot_landscape`. ``context``: (n, D), n may be 0. Used in chapter 2,
    § Landscapes as the context grows."""
    context = context[None].to(device)

    def energy(grid: torch.Tensor) -> torch.Tensor:
        return model.energy_given(context, grid.reshape(-1, grid.shape[-1]).to(device)).reshape(grid.shape[:-1]).cpu()

    return energy


def sample_given(
    model: EnergyTransformer,
    context: torch.Tensor,
    init: torch.Tensor,
    *,
    n_steps: int,
    step_size: float,
    noise_std: float,
    generator: torch.Generator | None = None,
    record: bool = False,
    box: float | None = None,
):
    """Langevin chains on E_θ(· ∣ context): ``context`` (B, n, D) (n may be 0), ``init`` (B, M, D) → LangevinRun
    (final (B, M, D), path (T + 1, B, M, D) when ``record``). ``box`` clamps the chains as in training."""
    positions = torch.full((init.shape[1],), context.shape[1], dtype=torch.long)
    return langevin_candidates(model, context, init, positions, n_steps=n_steps, step_size=step_size,
                               noise_std=noise_std, generator=generator, record=record, box=box)


def true_mixture_descent(init: torch.Tensor, means: torch.Tensor, std: float, *, step_size: float,
                         n_steps: int) -> torch.Tensor:
    """Gradient descent on the true mixture energy −log p(x) = ``gaussian_mixture_nll`` (equal weights, σ = ``std``)
    from the same starts: the oracle a learned energy is compared with. ``init`` (B, M, D), ``means`` (B, K, D) →
    final points (B, M, D)."""
    return torch.stack([gradient_flow(lambda x, m=m: gaussian_mixture_nll(x, m, std**2), x0, step_size=step_size,
                                      n_steps=n_steps).final for x0, m in zip(init, means)])


def error_vs_context(
    model: EnergyTransformer,
    points: torch.Tensor,
    means: torch.Tensor,
    ns,
    *,
    n_chains: int,
    box: float,
    n_steps: int,
    step_size: float,
    noise_std: float,
    generator: torch.Generator,
) -> dict:
    """For each context size n in ``ns``: Langevin samples of E_θ(· ∣ x_{1:n}) from uniform starts over the prior
    box (clamped to it, as in training), and their mean distance to the nearest true mean (averaged over chains and datasets). The same starts are
    used for every n. ``points`` (B, N, D), ``means`` (B, K, D). Returns {"n": [...], "error": [...],
    "init": (B, M, D)}."""
    b, _, d = points.shape
    init = uniform_init((b, n_chains, d), box, generator=generator, dtype=points.dtype)
    errors = []
    for n in ns:
        samples = sample_given(model, points[:, :n], init, n_steps=n_steps, step_size=step_size,
                               noise_std=noise_std, generator=generator, box=box).final
        errors.append(nearest_mean_distance(samples, means).mean().item())
    return {"n": list(ns), "error": errors, "init": init}


# --- the chapter's comparison: the learned energy and what a statistician would fit, at two temperatures ---------

#: (method, temperature) pairs scored by :func:`score_baselines`; the model's are scored by :func:`score_model`.
METHODS = (("truth", "train"), ("kde", "train"), ("em", "train"), ("truth", "unit"), ("kde", "unit"), ("em", "unit"))


def sampler_temperature(step_size: float, noise_std: float) -> float:
    """The temperature T = s²/(2α) the sampler x ← x − α∇E + s ω, ω ~ N(0, I), targets: matching it with the
    unadjusted Langevin algorithm x ← x − ε∇(E/T) + √(2ε) ω at ε = αT gives s = √(2αT). The training sampler
    (α = 3.16, s = 0.01) runs at T ≈ 1.6·10⁻⁵. Used in chapter 2, § Two temperatures."""
    checks.positive("step_size", step_size)
    return noise_std**2 / (2 * step_size)


def noise_for_temperature(step_size: float, temperature: float) -> float:
    """The noise s = √(2αT) that makes the step-α sampler target exp(−E/T); s = √(2α) at T = 1.
    Used in chapter 2, § Two temperatures."""
    checks.positive("step_size", step_size)
    return math.sqrt(2 * step_size * temperature)


def samples_at_context_sizes(model: EnergyTransformer, points: torch.Tensor, init: torch.Tensor, ns, *, n_steps: int,
                             step_size: float, noise_std: float, box: float,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """The same starts ``init`` (B, M, D) run by :func:`sample_given` on E_θ(· ∣ x_{1:n}) for every n in ``ns``
    (one masked pass per step and n: putting all n in one pass would make attention quadratic in the number of
    chains). ``points`` (B, N, D) → (len(ns), B, M, D) on the CPU. Used in chapter 2, § Samples against
    the truth, as n grows."""
    init = init.to(points.device, points.dtype)
    return torch.stack([sample_given(model, points[:, :n], init, n_steps=n_steps, step_size=step_size,
                                     noise_std=noise_std, generator=generator, box=box).final.cpu() for n in ns])


def _stack(per_n: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([np.asarray(s[k], dtype=float) for s in per_n]) for k in per_n[0]}


def score_model(model: EnergyTransformer, points: torch.Tensor, means: torch.Tensor, std: float, ns, init: torch.Tensor,
                *, n_steps: int, step_size: float, noise_std: float, box: float, generator: torch.Generator,
                radius: float | None = None) -> dict[str, np.ndarray]:
    """The model's chains from ``init`` at every n in ``ns``, with sampler noise ``noise_std``, scored by
    :func:`~ambridge.icl.metrics.score_samples` against the held-out mixtures (``means`` (B, K, D), σ = ``std``;
    ``radius`` defaults to 3σ); ``paired`` is the public code's metric against the true energy's mode-seeking descent
    from the same starts. → {metric: (len(ns), B)}. Used in chapter 2, § Samples against the truth, as n grows."""
    radius = 3 * std if radius is None else radius
    samples = samples_at_context_sizes(model, points, init, ns, n_steps=n_steps, step_size=step_size,
                                       noise_std=noise_std, box=box, generator=generator)
    reference = torch.stack([true_mixture(mb, std).descend(x0, n_steps) for mb, x0 in zip(means.cpu(), init.cpu())])
    return _stack([score_samples(s, means, std, radius=radius, reference=reference) for s in samples])


def score_baselines(points: torch.Tensor, means: torch.Tensor, std: float, ns, init: torch.Tensor, *, n_steps: int,
                    generator: torch.Generator, radius: float | None = None, em_seed: int = 0) -> dict:
    """The true mixture, the KDE and EM fitted to x_{1:n} (:mod:`~ambridge.icl.baselines`), each at the two
    temperatures of the chapter: ``"train"`` — ``n_steps`` mode-seeking steps from the starts ``init`` (B, M, D),
    the counterpart of the model's near-zero-temperature sampler, with ``paired`` against the truth's own descent;
    ``"unit"`` — M exact samples. The KDE needs n > D points and EM n ≥ K; below that the scores are NaN.
    → {(method, temperature): {metric: (len(ns), B)}} for the pairs in :data:`METHODS`. Used in chapter 2,
    § What a statistician would fit."""
    radius = 3 * std if radius is None else radius
    points, means, init = points.cpu().double(), means.cpu().double(), init.cpu().double()
    b, m, d = init.shape
    k = means.shape[1]
    truths = [true_mixture(mb, std) for mb in means]
    reference = torch.stack([t.descend(x0, n_steps) for t, x0 in zip(truths, init)])
    exact = torch.stack([t.sample(m, generator=generator) for t in truths])
    nan = {key: np.full(b, np.nan) for key in ("coverage", "divergence", "nearest", "paired")}
    out = {pair: [] for pair in METHODS}
    for method in ("truth", "kde", "em"):
        for n in ns:
            if (method == "kde" and n <= d) or (method == "em" and n < k):
                out[(method, "train")].append(nan), out[(method, "unit")].append(nan)
                continue
            fits = truths if method == "truth" else [fit_kde(x[:n]) if method == "kde" else
                                                      fit_em(x[:n], k, seed=em_seed) for x in points]
            low = reference if method == "truth" else torch.stack([f.descend(x0, n_steps) for f, x0 in zip(fits, init)])
            unit = exact if method == "truth" else torch.stack([f.sample(m, generator=generator) for f in fits])
            out[(method, "train")].append(score_samples(low, means, std, radius=radius, reference=reference))
            out[(method, "unit")].append({**score_samples(unit, means, std, radius=radius), "paired": np.full(b, np.nan)})
    return {pair: _stack(per_n) for pair, per_n in out.items()}


def mean_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over the last axis (the held-out datasets; NaN entries ignored) and the band ± one standard error of
    that mean: (..., B) → three (...) arrays (all NaN where every entry is). Used in chapter 2, § What a
    statistician would fit."""
    v = np.asarray(values, dtype=float)
    count = np.isfinite(v).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(v, -1) / count
        sd = np.sqrt(np.nansum((v - mean[..., None]) ** 2, -1) / np.maximum(count - 1, 1))
        se = np.where(count > 1, sd / np.sqrt(count), 0.0)
    mean = np.where(count > 0, mean, np.nan)
    return mean, mean - se, mean + se


def scores_at(scores: dict[str, np.ndarray], ns, n: int, digits: int = 2) -> dict[str, float]:
    """Each metric's mean over the datasets at context size ``n`` (a member of ``ns``), rounded; metrics that are
    NaN there (no fit, no pairing) are left out. Used in chapter 2, § What a statistician would fit."""
    i = list(ns).index(n)
    out = {}
    for metric, values in scores.items():
        mean = mean_band(values[i])[0]
        if np.isfinite(mean):
            out[metric] = round(float(mean), digits)
    return out


def band_over_runs(runs: list[dict[str, np.ndarray]], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several trained models' scores (from :func:`score_model`, each {metric: (len(ns), B)}) → the mean over runs
    of each run's mean over datasets, ± one standard error over runs: three (len(ns),) arrays. Used in chapter 2,
    § Several seeds and task diversity."""
    if not runs:
        raise ValueError("no runs to summarise")
    return mean_band(np.stack([np.nanmean(r[metric], axis=-1) for r in runs], axis=-1))
