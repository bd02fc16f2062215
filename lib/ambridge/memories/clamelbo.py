"""The CLAM+ELBO estimator: a clustering memory fitted by generalised EM whose E-step is the ELBO dynamics
(:func:`ambridge.memories.elbo.elbo_dynamics`) over K assignment logits (paper, section 2b; chapter 3).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.cluster import kmeans_plusplus
from sklearn.utils._param_validation import Interval, StrOptions

from ..energies import gaussian_mixture_log_joint, squared_distances
from ..runtime import select_device
from ._base import MemoryEstimator
from .elbo import ELBOTrajectory, Flow, elbo_dynamics, negative_elbo_of_logits

__all__ = ["CLAMELBO"]


class CLAMELBO(MemoryEstimator):
    """CLAM+ELBO: a clustering memory whose retrieval runs the ELBO dynamics over K assignment logits.

    The model is the isotropic Gaussian mixture p(x, z = k) = π_k N(x; μ_k, σ² I) — CLAM's energy read as a
    likelihood, with β = 1/(2σ²). Fitting alternates (generalised EM, Dempster et al. 1977):

    - **retrieval (E-step):** ``e_steps`` Euler steps of :func:`elbo_dynamics` on every point's logits, warm-started
      from the previous round, so each point's −ELBO never increases;
    - **learning (M-step):** the minimiser of −ELBO over μ_k (and π_k, σ² when learned) at fixed q: the q-weighted
      means, the shares N_k/n, the pooled squared error. A gradient step on −ELBO w.r.t. μ_k with step σ²/N_k lands
      on the same point.

    Both halves lower the mean −ELBO, so ``energy_curve_`` never rises. Memories are seeded by k-means++ (a stated
    choice: the paper's initialisation is not public).

    Used in chapter 3, § CLAM is generalised EM (and its exercise "The cold limit is k-means"), and in the clustering
    benchmark (chapter 3, § The clustering benchmark).

    Parameters
    ----------
    n_memories : int, default=8
        K, at least 1 and at most the number of points.
    flow : {"gradient", "natural"}, default="gradient"
        The ELBO dynamics' flow: "gradient" is the paper's, "natural" makes one unit step the exact E-step.
    e_steps : int, default=25
        Dynamics steps per round (the E-step).
    step_size : float, default=1.0
        Their Euler step Δt/τ > 0.
    max_iter : int, default=200
        Rounds at most.
    tol : float, default=1e-6
        Stop when the mean −ELBO falls by less than ``tol``·(1 + abs(E)) in a round.
    learn_weights : bool, default=True
        Learn the mixture weights π_k (else they stay 1/K).
    learn_variance : bool, default=True
        Learn the shared variance σ² (else it stays at its start).
    variance : float or None, default=None
        The starting σ² > 0; None: the k-means++ seeding's mean squared distance per dimension.
    min_variance : float, default=1e-4
        Floor on σ², relative to the data's mean per-feature variance.
    predict_steps : int, default=200
        Dynamics steps for new points (``predict``, ``predict_proba``, ``score_samples``).
    random_state : int, RandomState instance or None, default=None
        Seed of the k-means++ seeding (an int is passed on as it is).
    device : str or torch.device, default="cpu"
        Where the dynamics run.

    Attributes
    ----------
    memories_ : ndarray of shape (K, D)
        The memories μ_k.
    weights_ : ndarray of shape (K,)
        The mixture weights π_k.
    variance_ : float
        The shared σ².
    labels_ : ndarray of shape (n,)
        argmax_k q_k of each training point after the last round.
    n_memories_ : int
        K.
    n_iter_ : int
        Rounds run.
    energy_curve_ : list of float
        Mean −ELBO after each round, starting with the seeding.
    converged_ : bool
        Whether the tolerance was met before ``max_iter``.
    n_features_in_ : int
        D.
    """

    _parameter_constraints: dict = {
        "n_memories": [Interval(Integral, 1, None, closed="left")],
        "flow": [StrOptions({"gradient", "natural"})],
        "e_steps": [Interval(Integral, 1, None, closed="left")],
        "step_size": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "learn_weights": ["boolean"],
        "learn_variance": ["boolean"],
        "variance": [Interval(Real, 0, None, closed="neither"), None],
        "min_variance": [Interval(Real, 0, None, closed="neither")],
        "predict_steps": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, torch.device],
    }

    def __init__(
        self,
        n_memories: int = 8,
        *,
        flow: Flow = "gradient",
        e_steps: int = 25,
        step_size: float = 1.0,
        max_iter: int = 200,
        tol: float = 1e-6,
        learn_weights: bool = True,
        learn_variance: bool = True,
        variance: float | None = None,
        min_variance: float = 1e-4,
        predict_steps: int = 200,
        random_state: int | None = None,
        device: str = "cpu",
    ):
        self.n_memories = n_memories
        self.flow = flow
        self.e_steps = e_steps
        self.step_size = step_size
        self.max_iter = max_iter
        self.tol = tol
        self.learn_weights = learn_weights
        self.learn_variance = learn_variance
        self.variance = variance
        self.min_variance = min_variance
        self.predict_steps = predict_steps
        self.random_state = random_state
        self.device = device

    def log_joint(self, X) -> torch.Tensor:
        """a_nk = log π_k + log N(x_n; μ_k, σ² I) under the fitted model  →  (n, K) float64 tensor."""
        x = self._as_tensor(X, fitting=False)
        return self._log_joint(x, *self._params)

    @staticmethod
    def _log_joint(x, means, weights, variance):
        return gaussian_mixture_log_joint(x, means, variance, weights.clamp_min(1e-300) / weights.sum())

    def fit(self, X, y=None) -> "CLAMELBO":
        """Generalised EM: E-steps by the ELBO dynamics, exact M-steps, until the −ELBO stalls; returns self."""
        self._validate_params()
        x = self._as_tensor(X, fitting=True)
        n, d = x.shape
        self._check_n_memories(n)
        k = self.n_memories
        seeds, _ = kmeans_plusplus(x.cpu().numpy(), k, random_state=self._seed())
        means = torch.as_tensor(seeds, dtype=x.dtype, device=x.device)
        floor = self.min_variance * float(x.var(0).mean().clamp_min(1e-12))
        if self.variance is None:
            variance = max(float(squared_distances(x, means).min(-1).values.mean()) / d, floor)
        else:
            variance = float(self.variance)
        weights = torch.full((k,), 1.0 / k, dtype=x.dtype, device=x.device)
        logits = torch.zeros(n, k, dtype=x.dtype, device=x.device)
        curve = [float(negative_elbo_of_logits(logits, self._log_joint(x, means, weights, variance)).mean())]
        converged = False
        for it in range(1, self.max_iter + 1):
            a = self._log_joint(x, means, weights, variance)
            traj = elbo_dynamics(
                a, init_logits=logits, flow=self.flow, step_size=self.step_size, max_steps=self.e_steps, tol=1e-12
            )
            logits, q = traj.logits, traj.q
            means, weights, variance = self._m_step(x, q, means, weights, variance, floor)
            a = self._log_joint(x, means, weights, variance)
            curve.append(float(negative_elbo_of_logits(logits, a).mean()))
            if curve[-2] - curve[-1] < self.tol * (1 + abs(curve[-1])):
                converged = True
                break
        self.memories_ = means.cpu().numpy()
        self.weights_ = weights.cpu().numpy()
        self.variance_ = variance
        self.n_memories_ = k
        self.n_iter_ = it
        self.energy_curve_ = curve
        self.converged_ = converged
        self.labels_ = q.argmax(-1).cpu().numpy()
        return self

    def _m_step(self, x, q, means, weights, variance, floor):
        mass = q.sum(0)  # N_k
        alive = mass > 1e-10 * x.shape[0]
        new_means = (q.T @ x) / mass.clamp_min(1e-300).unsqueeze(-1)
        means = torch.where(alive.unsqueeze(-1), new_means, means)  # an empty memory keeps its place
        if self.learn_weights:
            weights = mass / mass.sum()
        if self.learn_variance:
            variance = max(float((q * squared_distances(x, means)).sum()) / (x.shape[0] * x.shape[1]), floor)
        return means, weights, variance

    @property
    def _params(self):
        ref = torch.as_tensor(self.memories_, dtype=torch.float64, device=select_device(self.device))
        return ref, torch.as_tensor(self.weights_, dtype=torch.float64, device=ref.device), self.variance_

    def _retrieve(self, X) -> ELBOTrajectory:
        return elbo_dynamics(self.log_joint(X), flow=self.flow, step_size=self.step_size, max_steps=self.predict_steps)

    def predict_proba(self, X) -> np.ndarray:
        """The assignment probabilities q after retrieval (the ELBO dynamics from q uniform)  →  (n, K)."""
        return self._retrieve(X).q.cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """The memory each point is assigned to: argmax_k q_k after retrieval  →  (n,) ints."""
        return self.predict_proba(X).argmax(-1)

    def score_samples(self, X) -> np.ndarray:
        """The ELBO −E(q) after retrieval: a lower bound on log p(x), tight when the dynamics converged  →  (n,)."""
        return (-self._retrieve(X).energy).cpu().numpy()
