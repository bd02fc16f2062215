"""CLAM — clustering with associative memories (Saha et al. 2023), as the paper reads it: generalised EM.

The state is a point v ∈ ℝ^D and the energy is CLAM's log-sum-exp, E(v) = −(1/β) log Σ_k exp(−β‖μ_k − v‖²)
(:func:`ambridge.energies.clam_energy`). Retrieval runs T Euler steps of τ dv/dt = Σ_k r_k(v)(μ_k − v)
(:func:`ambridge.dynamics.clam_step`): an E-step done by descent. The memories are learned by a self-supervised
task: hide a random part of each point, let the dynamics fill in the hidden coordinates with the visible ones held
fixed, and descend the reconstruction error of the hidden part through the T unrolled steps (Adam) — the M-step done
by gradient. A point's cluster is the memory nearest to where its free dynamics end after T steps.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions

from ..dynamics import clam_step
from ..energies import squared_distances
from ._base import MemoryEstimator

__all__ = ["CLAM"]


class CLAM(TransformerMixin, MemoryEstimator):
    """Clustering associative memory trained through its unrolled dynamics (Saha et al. 2023).

    Used in chapter 3, § CLAM is generalised EM, and in the clustering benchmark (chapter 3, § The clustering
    benchmark).

    Parameters
    ----------
    n_memories : int, default=8
        K, at least 1 and at most the number of points.
    beta : float, default=1.0
        The inverse temperature β > 0 of E (the mixture reading has σ² = 1/(2β)).
    n_steps : int, default=8
        T, the unrolled steps of the dynamics.
    step_size : float, default=1.0
        Δt/τ ∈ (0, 1].
    keep_prob : float, default=0.8
        The chance a coordinate stays visible during training, in [0, 1) (each point draws a Bernoulli mask; at least
        one coordinate is always hidden).
    n_updates : int, default=1000
        Adam steps, on mini-batches of ``batch_size`` points.
    batch_size : int, default=64
        Points per mini-batch.
    lr : float, default=0.01
        Adam's learning rate.
    init : {"normal", "data"}, default="normal"
        "normal": N(0, init_scale²) prototypes, as in Saha et al.; "data": K distinct data points.
    init_scale : float, default=0.01
        The standard deviation of the "normal" start.
    random_state : int, RandomState instance or None, default=None
        Seed of the start, the masks and the batches (an int is the torch seed itself).
    device : str or torch.device, default="cpu"
        Where training and retrieval run ("auto", "cpu", "cuda" or "cuda:N").

    Attributes
    ----------
    memories_ : ndarray of shape (K, D)
        The learned memories μ_k.
    labels_ : ndarray of shape (n,)
        The memory nearest to where each training point's free dynamics end.
    n_memories_ : int
        K.
    loss_curve_ : list of float
        Mean masked reconstruction error per epoch (the last may be partial).
    n_iter_ : int
        Epochs run.
    n_features_in_ : int
        D.
    """

    _parameter_constraints: dict = {
        "n_memories": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "step_size": [Interval(Real, 0, 1, closed="right")],
        "keep_prob": [Interval(Real, 0, 1, closed="left")],
        "n_updates": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "init": [StrOptions({"normal", "data"})],
        "init_scale": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "device": [str, torch.device],
    }

    def __init__(
        self,
        n_memories: int = 8,
        *,
        beta: float = 1.0,
        n_steps: int = 8,
        step_size: float = 1.0,
        keep_prob: float = 0.8,
        n_updates: int = 1000,
        batch_size: int = 64,
        lr: float = 0.01,
        init: str = "normal",
        init_scale: float = 0.01,
        random_state: int | None = None,
        device: str = "cpu",
    ):
        self.n_memories = n_memories
        self.beta = beta
        self.n_steps = n_steps
        self.step_size = step_size
        self.keep_prob = keep_prob
        self.n_updates = n_updates
        self.batch_size = batch_size
        self.lr = lr
        self.init = init
        self.init_scale = init_scale
        self.random_state = random_state
        self.device = device

    def _run(self, v: torch.Tensor, memories: torch.Tensor, clamp: torch.Tensor | None = None) -> torch.Tensor:
        """T steps of the dynamics; coordinates where ``clamp`` is True keep their starting values."""
        start = v
        for _ in range(self.n_steps):
            v = clam_step(v, memories, self.beta, step_size=self.step_size, method="exact")
            if clamp is not None:
                v = torch.where(clamp, start, v)
        return v

    def fit(self, X, y=None) -> "CLAM":
        """Learn the memories by masked reconstruction through T unrolled steps (Adam); returns self."""
        self._validate_params()
        x = self._as_tensor(X, fitting=True)
        n, d = x.shape
        self._check_n_memories(n)
        gen = torch.Generator().manual_seed(self._seed())
        if self.init == "normal":
            init = self.init_scale * torch.randn(self.n_memories, d, generator=gen, dtype=x.dtype)
        else:
            init = x[torch.randperm(n, generator=gen)[: self.n_memories].to(x.device)].cpu()
        memories = torch.nn.Parameter(init.to(x.device))
        optimiser = torch.optim.Adam([memories], lr=self.lr)
        curve, updates = [], 0
        while updates < self.n_updates:  # epochs: one pass over a fresh permutation each
            total, seen = 0.0, 0
            for batch in torch.randperm(n, generator=gen).to(x.device).split(self.batch_size):
                xb = x[batch]
                hidden = self._mask(xb.shape, gen).to(x.device)
                v = self._run(torch.where(hidden, torch.zeros_like(xb), xb), memories, clamp=~hidden)
                loss = ((v - xb).pow(2) * hidden).sum() / hidden.sum()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total, seen, updates = total + loss.detach().item() * len(batch), seen + len(batch), updates + 1
                if updates == self.n_updates:
                    break
            curve.append(total / seen)
        self.memories_ = memories.detach().cpu().numpy()
        self.n_memories_ = self.n_memories
        self.loss_curve_ = curve
        self.n_iter_ = len(curve)
        self.labels_ = self.predict(X)
        return self

    def _mask(self, shape, gen) -> torch.Tensor:
        """Bernoulli(1 − keep_prob) hidden coordinates, with at least one hidden per point."""
        hidden = torch.rand(shape, generator=gen) >= self.keep_prob
        none = ~hidden.any(-1)
        if bool(none.any()):
            pick = torch.randint(shape[-1], (int(none.sum()),), generator=gen)
            hidden[none.nonzero(as_tuple=True)[0], pick] = True
        return hidden

    def transform(self, X) -> np.ndarray:
        """Where each point's free dynamics stand after T steps  →  (n, D)."""
        x = self._as_tensor(X, fitting=False)
        with torch.no_grad():
            return self._run(x, torch.as_tensor(self.memories_, dtype=x.dtype, device=x.device)).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """The memory nearest to each point after T steps of its free dynamics  →  (n,) ints."""
        v = torch.from_numpy(self.transform(X))
        return squared_distances(v, torch.from_numpy(self.memories_)).argmin(-1).numpy()
