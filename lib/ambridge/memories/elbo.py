"""CLAM+ELBO: an associative memory whose state is the vector of assignment probabilities (paper, section 2b).

Instead of a point v ∈ ℝ^D that descends towards a memory, the state is q ∈ Δ^{K−1}, a distribution over the K
memories, parameterised by logits v ∈ ℝ^K (q = softmax(v)). Its energy is the negative evidence lower bound of the
mixture p(x, z = k; θ) = π_k N(x; μ_k, σ² I),

    E(q) = −Σ_k q_k a_k + Σ_k q_k log q_k,        a_k = log p(x, z = k; θ)   (the "log joint"),
         = KL(q ‖ p(z ∣ x; θ)) − log p(x; θ),

so E ≥ −log p(x) with equality exactly at the posterior q* = softmax(a). Gradient flow on the logits,

    τ dv/dt = −∇_v E = (diag(q) − q qᵀ)(a − log q − 1) = (diag(q) − q qᵀ)(a − v),

(the constants −1 and log Σ e^v drop out because (diag(q) − q qᵀ)·1 = 0). Read per memory,
dv_k/dt = q_k (a_k − v_k) − q_k Σ_j q_j (a_j − v_j): each memory excites itself in proportion to how much it already
holds (q_k) and how well it explains x (a_k), and inhibits the others through the shared mean.

This module holds the energy, the velocity, and :func:`elbo_dynamics`, which integrates the flow with Euler steps
(the estimator built on them is :class:`ambridge.memories.clamelbo.CLAMELBO`).
The flow has no global Lipschitz constant, so a step that would raise a state's energy is halved for that state
until it does not: the energy never increases, by construction and not by luck of the step size.

Two flows descend the same energy. ``"gradient"`` is the paper's: plain gradient flow on the logits. Near a
confident posterior it is slow: a memory that should end with q*_k ≈ 0 moves at speed ∝ q_k, so its share decays
only like 1/t. ``"natural"`` preconditions by the Fisher information of the softmax (which is diag(q) − q qᵀ
itself), giving τ dv/dt = a − v: the logits relax exponentially onto the log joint, and one Euler step of size 1
lands exactly on the posterior — the E-step of classical EM. Its Euler steps with Δt ≤ 1 move q along the geometric
path q^{1−Δt} p(z∣x)^{Δt}, on which the KL to the posterior falls monotonically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .. import checks

__all__ = ["negative_elbo", "negative_elbo_of_logits", "elbo_velocity", "ELBOTrajectory", "elbo_dynamics"]


def _log_joint(log_joint) -> torch.Tensor:
    log_joint = checks.points("log_joint", log_joint)
    if log_joint.shape[-1] < 1:
        raise ValueError(f"`log_joint` needs K >= 1 memories on its last axis, got shape {tuple(log_joint.shape)}")
    if not bool(torch.isfinite(log_joint).all()):
        raise ValueError("`log_joint` must be finite (a memory with probability 0 has no place in the mixture)")
    return log_joint


def negative_elbo(q: torch.Tensor, log_joint: torch.Tensor) -> torch.Tensor:
    """E(q) = Σ_k q_k log q_k − Σ_k q_k a_k, the negative ELBO, with 0·log 0 = 0.

    ``q``: (..., K) on the simplex; ``log_joint`` a: (..., K)  →  (...). Its minimum over q is −log Σ_k e^{a_k}.
    Used in chapter 3, § The claims, checked (and its exercise "One minimiser").
    """
    log_joint = _log_joint(log_joint)
    q = checks.points("q", q, dim=log_joint.shape[-1])
    if bool((q < 0).any()) or not bool(torch.allclose(q.sum(-1), torch.ones((), dtype=q.dtype), atol=1e-6)):
        raise ValueError("`q` must be a probability vector on its last axis (non-negative, summing to 1)")
    return (torch.xlogy(q, q) - q * log_joint).sum(-1)


def negative_elbo_of_logits(logits: torch.Tensor, log_joint: torch.Tensor) -> torch.Tensor:
    """E(softmax(v)), the negative ELBO of the logits v, without input checks (the inner loop's form).

    ``logits`` v: (..., K); ``log_joint`` a: (..., K)  →  (...). Used by :func:`elbo_dynamics` and by
    :class:`~ambridge.memories.CLAMELBO`'s energy curve (chapter 3, § CLAM is generalised EM).
    """
    log_q = torch.log_softmax(logits, dim=-1)
    return (log_q.exp() * (log_q - log_joint)).sum(-1)


Flow = Literal["gradient", "natural"]


def elbo_velocity(logits: torch.Tensor, log_joint: torch.Tensor, flow: Flow = "gradient") -> torch.Tensor:
    """The right-hand side of τ dv/dt for q = softmax(v).

    ``"gradient"``: −∇_v E = (diag(q) − q qᵀ)(a − v), computed without the K×K matrix as
    q ⊙ (a − v) − q·⟨q, a − v⟩. ``"natural"``: the Fisher-preconditioned −(diag(q) − q qᵀ)⁺∇_v E = a − v, centred
    (a constant shift of the logits does not change q).
    ``logits`` v: (..., K); ``log_joint`` a: (..., K)  →  (..., K). Used in chapter 3, § The claims, checked.
    """
    log_joint = _log_joint(log_joint)
    logits = checks.points("logits", logits, dim=log_joint.shape[-1])
    return _velocity(logits, log_joint, _flow(flow))


def _flow(flow) -> str:
    if flow not in ("gradient", "natural"):
        raise ValueError(f"`flow` must be 'gradient' or 'natural', got {flow!r}")
    return flow


def _velocity(v: torch.Tensor, a: torch.Tensor, flow: str) -> torch.Tensor:
    drive = a - v
    if flow == "natural":
        return drive - drive.mean(-1, keepdim=True)
    q = torch.softmax(v, dim=-1)
    return q * (drive - (q * drive).sum(-1, keepdim=True))


@dataclass
class ELBOTrajectory:
    """Result of :func:`elbo_dynamics`.

    ``logits`` (..., K) and ``q`` (..., K) at the end; ``energy`` (...) there; ``n_steps`` taken (the slowest
    state); ``converged`` (...) flags; ``n_halvings`` how many times a step was halved in all; ``energy_trace``
    (n_steps + 1, ...) and ``q_trace`` (n_steps + 1, ..., K) when recorded, else None. Used in chapters 3 and 4.
    """

    logits: torch.Tensor
    q: torch.Tensor
    energy: torch.Tensor
    n_steps: int
    converged: torch.Tensor
    n_halvings: int
    energy_trace: torch.Tensor | None = None
    q_trace: torch.Tensor | None = None


def elbo_dynamics(
    log_joint: torch.Tensor,
    *,
    init_logits: torch.Tensor | None = None,
    flow: Flow = "gradient",
    step_size: float = 1.0,
    max_steps: int = 1000,
    tol: float = 1e-7,
    record: bool = False,
    max_halvings: int = 30,
) -> ELBOTrajectory:
    """Integrate the ``flow`` (see :func:`elbo_velocity`) from ``init_logits`` (default 0: q uniform) by Euler steps.

    A state whose step would raise its energy E(q) retries with half the step (up to ``max_halvings`` times, then
    stays put for that step), so E never increases (beyond rounding: a rise of a few ulps is not refused).

    A state stops when its largest velocity component is below ``tol``; stopped states are frozen. At the fixed point
    q = softmax(a) = p(z ∣ x; θ) and E = −log p(x; θ). For the gradient flow a small velocity is necessary, not
    sufficient: near a corner of the simplex every component of (diag(q) − q qᵀ)(a − v) is small, so a state that a
    too-large Euler step (``step_size`` well above K) threw into the wrong corner also reads as converged. Check
    ``q`` against the posterior when in doubt; the natural flow has no such plateaus.

    ``log_joint`` a: (..., K); ``init_logits``: (..., K) or None; ``step_size`` Δt/τ > 0.

    Used in chapter 3, § The claims, checked and § Self-excitation and mutual inhibition, and by the estimators
    CLAM+ELBO and CLAM+CRP (chapter 4, § The memory: ELBO dynamics over K + 1 memories).
    """
    log_joint = _log_joint(log_joint)
    flow = _flow(flow)
    checks.positive("step_size", step_size)
    checks.count("max_steps", max_steps, low=1)
    checks.positive("tol", tol)
    checks.count("max_halvings", max_halvings, low=0)
    if init_logits is None:
        v = torch.zeros_like(log_joint)
    else:
        v = checks.points("init_logits", init_logits, dim=log_joint.shape[-1])
        if v.shape != log_joint.shape:
            raise ValueError(
                f"`init_logits` must have the shape of `log_joint` {tuple(log_joint.shape)}, got {tuple(v.shape)}"
            )
        v = v.to(log_joint.dtype).clone()
    energy = negative_elbo_of_logits(v, log_joint)
    done = torch.zeros(energy.shape, dtype=torch.bool, device=v.device)
    energies, qs = ([energy], [torch.softmax(v, -1)]) if record else (None, None)
    n_halvings, steps = 0, 0
    for steps in range(1, max_steps + 1):
        velocity = _velocity(v, log_joint, flow)
        done = done | (velocity.abs().amax(-1) < tol)
        if bool(done.all()):
            steps -= 1
            break
        slack = 4 * torch.finfo(v.dtype).eps * energy.abs().clamp_min(1.0)  # rounding, not a rise
        dt = torch.full(energy.shape, float(step_size), dtype=v.dtype, device=v.device)
        dt = torch.where(done, torch.zeros_like(dt), dt)
        for _ in range(max_halvings + 1):
            proposal = v + dt.unsqueeze(-1) * velocity
            new_energy = negative_elbo_of_logits(proposal, log_joint)
            too_high = new_energy > energy + slack
            if not bool(too_high.any()):
                break
            n_halvings += int(too_high.sum())
            dt = torch.where(too_high, dt / 2, dt)
        else:  # states still rising after every halving stay where they are this step
            proposal = torch.where(too_high.unsqueeze(-1), v, proposal)
            new_energy = torch.where(too_high, energy, new_energy)
        v, energy = proposal, new_energy
        if record:
            energies.append(energy)
            qs.append(torch.softmax(v, -1))
    else:
        done = done | (_velocity(v, log_joint, flow).abs().amax(-1) < tol)
    return ELBOTrajectory(
        logits=v,
        q=torch.softmax(v, -1),
        energy=energy,
        n_steps=steps,
        converged=done,
        n_halvings=n_halvings,
        energy_trace=torch.stack(energies) if record else None,
        q_trace=torch.stack(qs) if record else None,
    )


def __getattr__(name: str):
    """``ambridge.memories.elbo.CLAMELBO`` moved to :mod:`ambridge.memories.clamelbo`; the old path works for one
    release (imported on first use: the estimator builds on this module)."""
    if name == "CLAMELBO":
        from .clamelbo import CLAMELBO

        return CLAMELBO
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
