"""CLAM — clustering with associative memories (Saha et al. 2023), as the paper reads it: generalised EM.

The state is a point v ∈ ℝ^D and the energy is CLAM's log-sum-exp, E(v) = −(1/β) log Σ_k exp(−β‖μ_k − v‖²)
(:func:`ambridge.energies.clam_energy`). Retrieval runs T Euler steps of τ dv/dt = Σ_k r_k(v)(μ_k − v)
(:func:`ambridge.dynamics.clam_step`): an E-step done by descent. The memories are learned by a self-supervised
task: hide a random part of each point, let the dynamics fill in the hidden coordinates with the visible ones held
fixed, and descend the reconstruction error of the hidden part through the T unrolled steps (Adam) — the M-step done
by gradient. A point's cluster is the memory nearest to where its free dynamics end after T steps.
"""

from __future__ import annotations

import numpy as np
import torch

from ..dynamics import clam_step
from ..energies import squared_distances
from ..checks import check_choice, check_number
from ._base import MemoryEstimator

__all__ = ["CLAM"]


class CLAM(MemoryEstimator):
    """Clustering associative memory trained through its unrolled dynamics (Saha et al. 2023).

    Parameters: ``n_memories`` K; ``beta`` the inverse temperature of E (the mixture reading has σ² = 1/(2β));
    ``n_steps`` T unrolled steps; ``step_size`` Δt/τ ∈ (0, 1]; ``keep_prob`` the chance a coordinate stays visible
    during training (each point draws a Bernoulli mask; at least one coordinate is always hidden); ``n_updates``
    Adam steps on mini-batches of ``batch_size`` with learning rate ``lr``; ``init`` "normal" (N(0, ``init_scale``²) prototypes, as in Saha et al.) or "data"
    (K distinct data points); ``random_state``; ``device``.

    Fitted: ``memories_`` (K, D), ``labels_``, ``n_memories_``, ``loss_curve_`` (mean masked reconstruction error
    per epoch; the last may be partial), ``n_iter_`` (epochs).
    """

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

    def _check_params(self, n_samples: int) -> None:
        check_number("n_memories", self.n_memories, low=1, high=n_samples, integer=True)
        check_number("beta", self.beta, low=0, low_open=True)
        check_number("n_steps", self.n_steps, low=1, integer=True)
        check_number("step_size", self.step_size, low=0, high=1, low_open=True)
        check_number("keep_prob", self.keep_prob, low=0, high=1, high_open=True)
        check_number("n_updates", self.n_updates, low=1, integer=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("lr", self.lr, low=0, low_open=True)
        check_choice("init", self.init, ("normal", "data"))
        check_number("init_scale", self.init_scale, low=0, low_open=True)

    def _run(self, v: torch.Tensor, memories: torch.Tensor, clamp: torch.Tensor | None = None) -> torch.Tensor:
        """T steps of the dynamics; coordinates where ``clamp`` is True keep their starting values."""
        start = v
        for _ in range(self.n_steps):
            v = clam_step(v, memories, self.beta, step_size=self.step_size, method="exact")
            if clamp is not None:
                v = torch.where(clamp, start, v)
        return v

    def fit(self, X, y=None) -> "CLAM":
        x = self._as_tensor(X, fitting=True)
        n, d = x.shape
        self._check_params(n)
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
        self._check_fitted()
        x = self._as_tensor(X, fitting=False)
        with torch.no_grad():
            return self._run(x, torch.as_tensor(self.memories_, dtype=x.dtype, device=x.device)).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """The memory nearest to each point after T steps of its free dynamics  →  (n,) ints."""
        v = torch.from_numpy(self.transform(X))
        return squared_distances(v, torch.from_numpy(self.memories_)).argmin(-1).numpy()
