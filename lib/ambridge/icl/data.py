"""In-context data: each training sequence is a fresh 2-D Gaussian mixture, its points read one by one.

The in-context energy model never sees the same dataset twice (unless ``pool_size`` fixes a finite pool of
mixtures). A sequence is N points x_1, …, x_N drawn i.i.d. from Σ_k π_k N(μ_k, σ² I) with K = 3 components,
means μ_k ~ N(0, 5² I), σ = 0.33 and uniform weights (Schaeffer, Khona & Koyejo 2024).

:class:`MixtureStream` owns its random generator, so a training run's data can be checkpointed and resumed exactly
(:meth:`MixtureStream.state_dict`). The held-out sets of :func:`held_out_sets` test what the frozen model does
with datasets unlike its training data: more components, narrower components, and 2-D toy shapes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .. import checks
from ..data import mixture_means

__all__ = ["MixtureTask", "MixtureStream", "sample_mixture_batch", "held_out_sets", "HELD_OUT_NAMES"]


@dataclass(frozen=True)
class MixtureTask:
    """The distribution over datasets. Defaults are the paper's."""

    n_components: int = 3  # K, Gaussians per mixture
    dim: int = 2  # D
    mean_std: float = 5.0  # μ_k ~ N(0, mean_std² I)
    component_std: float = 0.33  # σ, each component's standard deviation
    context_len: int = 35  # N, points per sequence

    def __post_init__(self):
        checks.count("n_components", self.n_components, low=1)
        checks.count("dim", self.dim, low=1)
        checks.count("context_len", self.context_len, low=1)
        checks.positive("mean_std", self.mean_std)
        checks.positive("component_std", self.component_std)

    @property
    def box(self) -> float:
        """Half-width of the prior box [−3·mean_std, 3·mean_std]^D where Langevin chains start."""
        return 3.0 * self.mean_std

    def to_dict(self) -> dict:
        return asdict(self)


def sample_mixture_batch(
    means: torch.Tensor, std: float, n_points: int, *, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_points`` draws from each of B equal-weight mixtures. ``means``: (B, K, D) → (points (B, N, D),
    labels (B, N))."""
    b, k, d = means.shape
    labels = torch.randint(0, k, (b, n_points), generator=generator)
    noise = torch.randn(b, n_points, d, generator=generator, dtype=means.dtype)
    return torch.gather(means, 1, labels[..., None].expand(b, n_points, d)) + std * noise, labels


class MixtureStream:
    """An endless stream of in-context batches; ``pool_size`` 0 draws a fresh mixture for every sequence.

    ``stream.batch(B)`` → (points (B, N, D), means (B, K, D)). Its randomness comes from its own CPU generator,
    saved and restored by :meth:`state_dict` / :meth:`load_state_dict`.
    """

    def __init__(self, task: MixtureTask, *, seed: int, pool_size: int = 0):
        self.task = task
        self.pool_size = checks.count("pool_size", pool_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.pool = None
        if pool_size:
            self.pool = self._means(pool_size)

    def _means(self, n: int) -> torch.Tensor:
        t = self.task
        return torch.stack([mixture_means(t.n_components, t.dim, spread=t.mean_std, generator=self.generator)
                            for _ in range(n)])

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        checks.count("batch_size", batch_size, low=1)
        if self.pool is None:
            means = self._means(batch_size)
        else:
            means = self.pool[torch.randint(0, self.pool_size, (batch_size,), generator=self.generator)]
        points, _ = sample_mixture_batch(means, self.task.component_std, self.task.context_len,
                                         generator=self.generator)
        return points, means

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "pool": self.pool}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.pool = state["pool"]


HELD_OUT_NAMES = ("in-distribution", "5 components", "narrow (σ = 0.1)", "moons", "circles", "blobs")


def _toy(name: str, n: int, seed: int, scale: float) -> np.ndarray:
    from sklearn import datasets

    if name == "moons":
        x, _ = datasets.make_moons(n, noise=0.05, random_state=seed)
    elif name == "circles":
        x, _ = datasets.make_circles(n, noise=0.03, factor=0.5, random_state=seed)
    else:  # blobs: 3 centres, sklearn's defaults (box (-10, 10), std 1)
        x, _ = datasets.make_blobs(n, centers=3, cluster_std=1.0, random_state=seed)
    x = x - x.mean(0)
    return scale * x / np.abs(x).max()  # rescaled to fill [-scale, scale] along its widest axis


def held_out_sets(task: MixtureTask, n_sets: int, *, generator: torch.Generator) -> dict[str, dict]:
    """Datasets the model was not trained on, each ``{"points": (n_sets, N, D), "means": (n_sets, K, D) or None,
    "std": σ or None}``: fresh in-distribution mixtures; 5-component and narrow (σ = 0.1) mixtures; moons, circles
    and blobs from scikit-learn, centred and rescaled to the scale of the training means (2-D only)."""
    checks.count("n_sets", n_sets, low=1)
    t = task
    out = {}
    for name, k, std in [("in-distribution", t.n_components, t.component_std), ("5 components", 5, t.component_std),
                         ("narrow (σ = 0.1)", t.n_components, 0.1)]:
        means = torch.stack([mixture_means(k, t.dim, spread=t.mean_std, generator=generator) for _ in range(n_sets)])
        points, _ = sample_mixture_batch(means, std, t.context_len, generator=generator)
        out[name] = {"points": points, "means": means, "std": std}
    if t.dim == 2:
        for name in ("moons", "circles", "blobs"):
            seeds = torch.randint(0, 2**31 - 1, (n_sets,), generator=generator).tolist()
            pts = np.stack([_toy(name, t.context_len, s, 1.5 * t.mean_std) for s in seeds])
            perm = np.stack([np.random.default_rng(s).permutation(t.context_len) for s in seeds])  # shuffle order
            pts = np.take_along_axis(pts, perm[..., None], axis=1)
            out[name] = {"points": torch.as_tensor(pts, dtype=torch.get_default_dtype()), "means": None, "std": None}
    return out
