"""Retrieval: the dynamics that carry a state downhill on an energy to a memory.

Two kinds, as in the book:

- :func:`gradient_flow` — explicit Euler steps x ← x − η∇E(x) on *any* energy, the gradient from autograd;
- closed-form updates — :func:`mean_shift_step` (one step of size σ² on the KDE negative log-likelihood),
  :func:`hopfield_update` (Ramsauer et al.'s ξ ← Xᵀ softmax(βXξ)) and :func:`clam_step`. All three are a
  softmax-weighted average of the memories, i.e. **attention** with the state as query and the memories as keys and
  values, and :func:`attention_update` runs them on ``torch.nn.functional.scaled_dot_product_attention`` (fused
  kernels on a GPU) whenever the algebra allows.

Why the algebra allows it: −‖x − x_n‖²/(2σ²) = xᵀx_n/σ² − ‖x_n‖²/(2σ²) − ‖x‖²/(2σ²). The last term is the same for
every n and cancels in the softmax; the middle one is a per-pattern bias, passed as an additive attention mask
(and dropped entirely when every ‖x_n‖ is equal — data on a sphere — so the mask-free flash kernels apply).
With a different bandwidth per centre, −‖x‖²/(2σ_n²) no longer cancels: that case takes the exact path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F

from . import checks
from .energies import squared_distances

__all__ = [
    "Trajectory",
    "energy_gradient",
    "gradient_flow",
    "attention_update",
    "mean_shift_step",
    "hopfield_update",
    "clam_step",
    "FixedPoint",
    "iterate_to_fixed_point",
    "dense_retrieve",
    "batched_dense_retrieve",
    "norms_are_equal",
]

Energy = Callable[[torch.Tensor], torch.Tensor]
Method = Literal["auto", "sdpa", "exact"]


@dataclass
class Trajectory:
    """States and energies along a run: ``states`` (T+1, ..., D), ``energies`` (T+1, ...)."""

    states: torch.Tensor
    energies: torch.Tensor

    @property
    def final(self) -> torch.Tensor:
        return self.states[-1]


def energy_gradient(energy: Energy, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(∇E(x), E(x)) for a batch of states ``(..., D)``, by autograd. Each state's gradient is its own
    (the energies are summed before differentiating, and states do not interact)."""
    state = checks.points("state", state)
    with torch.enable_grad():
        x = state.detach().requires_grad_(True)
        values = energy(x)
        if values.shape != state.shape[:-1]:
            raise ValueError(f"energy must map (..., D) to (...): got {tuple(values.shape)} for {tuple(state.shape)}")
        (grad,) = torch.autograd.grad(values.sum(), x)
    return grad, values.detach()


def gradient_flow(energy: Energy, init: torch.Tensor, *, step_size: float, n_steps: int) -> Trajectory:
    """Retrieval on any energy: n_steps explicit Euler steps x_{t+1} = x_t − η ∇E(x_t), η = ``step_size``.

    For an L-smooth energy and η ≤ 2/L the energy never increases (the descent lemma). ``init``: (..., D).
    """
    checks.positive("step_size", step_size)
    checks.count("n_steps", n_steps)
    x = checks.points("init", init).detach()
    states, energies = [x], []
    for _ in range(n_steps):
        grad, value = energy_gradient(energy, x)
        energies.append(value)
        x = x - step_size * grad
        states.append(x)
    energies.append(energy_gradient(energy, x)[1])
    return Trajectory(torch.stack(states), torch.stack(energies))


def attention_update(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *,
    scale: float,
    bias: torch.Tensor | None = None,
    method: Method = "auto",
    precision: torch.dtype | None = None,
) -> torch.Tensor:
    """softmax(scale · q kᵀ + bias) v for every query — one retrieval step of a modern associative memory.

    ``queries``: (..., D); ``keys``: (N, D); ``values``: (N, Dv); ``bias``: (N,) or None  →  (..., Dv).
    ``method="sdpa"`` (and ``"auto"``) uses ``torch.nn.functional.scaled_dot_product_attention``, with the bias as
    an additive mask; ``"exact"`` forms the logits explicitly. ``precision`` is the dtype the step is computed in
    (default: the queries' dtype); the result is returned in the queries' dtype. Half precision is fast on GPUs;
    it loses digits, so check it against float32 where it matters.
    """
    keys = checks.patterns("keys", keys)
    queries = checks.points("queries", queries, dim=keys.shape[1])
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise TypeError("`values` must be a floating-point torch.Tensor of shape (N, Dv)")
    if values.ndim != 2 or values.shape[0] != keys.shape[0]:
        raise ValueError(f"`values` must have shape ({keys.shape[0]}, Dv), got {tuple(values.shape)}")
    bias = checks.per_pattern("bias", bias, keys.shape[0])
    checks.positive("scale", scale)
    if method not in ("auto", "sdpa", "exact"):
        raise ValueError(f"`method` must be 'auto', 'sdpa' or 'exact', got {method!r}")
    out_dtype = queries.dtype
    dtype = precision or queries.dtype
    batch_shape = queries.shape[:-1]
    # (batch, heads, length, dim): the fused flash / memory-efficient kernels accept only 4-D inputs; 3-D ones
    # silently take the unfused math path (measured: no speed-up at all on an H200).
    q = queries.reshape(1, 1, -1, queries.shape[-1]).to(dtype)  # (1, 1, Q, D)
    k, v = keys.to(dtype)[None, None], values.to(dtype)[None, None]  # (1, 1, N, D), (1, 1, N, Dv)
    if method == "exact":
        logits = scale * (q @ k.transpose(-1, -2))
        if bias is not None:
            logits = logits + bias.to(dtype)
        out = torch.softmax(logits, dim=-1) @ v
    else:
        mask = None if bias is None else bias.to(dtype).expand(q.shape[2], -1)[None, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=float(scale))
    return out.reshape(*batch_shape, values.shape[1]).to(out_dtype)


def norms_are_equal(norms_sq: torch.Tensor) -> bool:
    """True when all patterns have the same norm to the precision of their dtype: the bias is then a constant.

    The tolerance is a few ulps of ‖x_n‖², the rounding a norm computed in that dtype carries anyway; any larger
    spread is real and keeps the bias (dropping it would shift the logits by spread/(2σ²)).
    """
    spread = norms_sq.max() - norms_sq.min()
    return bool(spread <= 4 * torch.finfo(norms_sq.dtype).eps * norms_sq.max())


def mean_shift_step(
    state: torch.Tensor,
    data: torch.Tensor,
    bandwidth: float | torch.Tensor,
    *,
    log_weights: torch.Tensor | None = None,
    method: Method = "auto",
    precision: torch.dtype | None = None,
) -> torch.Tensor:
    """One mean-shift step on a Gaussian kernel density estimate (Comaniciu & Meer 2002):

        x ← Σ_n r_n(x) x_n,   r = softmax_n(log w_n − ‖x − x_n‖²/(2σ²)),

    which is the gradient step x − σ²∇(−log p̂)(x). With a bandwidth per centre σ_n (a general isotropic Gaussian
    mixture with weights w_n) it is the mode-seeking fixed-point step x ← Σ r_n x_n/σ_n² / Σ r_n/σ_n², with
    r_n ∝ w_n σ_n^{−D} exp(−‖x − x_n‖²/(2σ_n²)); both never increase −log p̂.

    ``state``: (..., D); ``data``: (N, D); ``bandwidth``: σ scalar or (N,); ``log_weights``: (N,) or None (uniform)
    →  (..., D). ``method``: ``"auto"`` uses fused attention when the bandwidth is shared and the exact path
    otherwise; ``"sdpa"`` insists on attention; ``"exact"`` computes distances directly.
    """
    data = checks.patterns("data", data)
    state = checks.points("state", state, dim=data.shape[1])
    log_weights = checks.per_pattern("log_weights", log_weights, data.shape[0])
    checks.positive("bandwidth", bandwidth)
    per_centre = isinstance(bandwidth, torch.Tensor) and bandwidth.ndim > 0
    if per_centre:
        bandwidth = checks.per_pattern("bandwidth", bandwidth, data.shape[0])
        if method == "sdpa":
            raise ValueError("a bandwidth per centre has no attention form; use method='exact' or 'auto'")
        return _mixture_mode_step(state, data, bandwidth, log_weights, precision)
    sigma_sq = float(bandwidth) ** 2
    if method == "exact":
        dtype = precision or state.dtype
        logits = -squared_distances(state.to(dtype), data.to(dtype)) / (2 * sigma_sq)
        if log_weights is not None:
            logits = logits + log_weights.to(dtype)
        return (torch.softmax(logits, dim=-1) @ data.to(dtype)).to(state.dtype)
    norms_sq = data.pow(2).sum(-1)
    bias = None if norms_are_equal(norms_sq) else -norms_sq / (2 * sigma_sq)
    if log_weights is not None:
        bias = log_weights if bias is None else bias + log_weights
    return attention_update(state, data, data, scale=1 / sigma_sq, bias=bias, method=method, precision=precision)


def _mixture_mode_step(state, centres, bandwidth, log_weights, precision):
    dtype = precision or state.dtype
    var = bandwidth.to(dtype) ** 2
    logits = -squared_distances(state.to(dtype), centres.to(dtype)) / (2 * var) - 0.5 * centres.shape[1] * var.log()
    if log_weights is not None:
        logits = logits + log_weights.to(dtype)
    r = torch.softmax(logits, dim=-1) / var  # (..., N): r_n / σ_n²
    return ((r @ centres.to(dtype)) / r.sum(-1, keepdim=True)).to(state.dtype)


def hopfield_update(
    state: torch.Tensor,
    memories: torch.Tensor,
    beta: float,
    *,
    method: Method = "auto",
    precision: torch.dtype | None = None,
) -> torch.Tensor:
    """Modern Hopfield update (Ramsauer et al. 2021): ξ ← Xᵀ softmax(β X ξ), the memories as rows of X.

    It is attention with Q = ξ and K = V = X. ``state``: (..., D); ``memories``: (N, D)  →  (..., D).
    """
    checks.positive("beta", beta)
    memories = checks.patterns("memories", memories)
    state = checks.points("state", state, dim=memories.shape[1])
    return attention_update(state, memories, memories, scale=beta, method=method, precision=precision)


def clam_step(
    state: torch.Tensor,
    memories: torch.Tensor,
    beta: float,
    *,
    step_size: float = 1.0,
    method: Method = "auto",
    precision: torch.dtype | None = None,
) -> torch.Tensor:
    """One Euler step of CLAM's dynamics τ dv/dt = Σ_k r_k(v)(μ_k − v), r = softmax(−β‖μ − v‖²):

        v ← v + Δt Σ_k r_k (μ_k − v) = v − (Δt/2) ∇E_CLAM(v),   Δt = ``step_size`` ∈ (0, 1].

    Δt = 1 is the fixed-point iteration v ← Σ_k r_k μ_k, i.e. mean shift with σ² = 1/(2β). The energy never
    increases for Δt ≤ 1 (the Hessian of E_CLAM is at most 2·I). ``state``: (..., D); ``memories``: (K, D).
    """
    checks.positive("beta", beta)
    memories = checks.patterns("memories", memories)
    state = checks.points("state", state, dim=memories.shape[1])
    if not 0 < step_size <= 1:
        raise ValueError(f"`step_size` must be in (0, 1], got {step_size!r}")
    target = mean_shift_step(state, memories, (2 * beta) ** -0.5, method=method, precision=precision)
    return state + step_size * (target - state)


@dataclass
class FixedPoint:
    """Result of :func:`iterate_to_fixed_point`: final ``state`` (..., D); ``n_iter``, the most steps any state took;
    per state, ``steps`` (...) taken and ``converged`` (...) (its last step moved less than ``tol``)."""

    state: torch.Tensor
    n_iter: int
    converged: torch.Tensor
    steps: torch.Tensor


def iterate_to_fixed_point(
    update: Callable[[torch.Tensor], torch.Tensor],
    init: torch.Tensor,
    *,
    max_iter: int = 1000,
    tol: float = 1e-6,
    chunk: int | None = None,
) -> FixedPoint:
    """Apply ``update`` until every state moves less than ``tol`` (Euclidean) in one step, or ``max_iter`` steps.

    A state that moves less than ``tol`` takes that step and is then frozen, so the result does not depend on how
    long the slowest state takes. Only the states still moving are passed to ``update`` (so the cost follows the
    slow ones: in a capacity sweep most states settle in a few steps and a few wander for many), which requires
    ``update`` to move each state on its own — a map (M, D) → (M, D) for any M, as every retrieval step here is.
    States are processed ``chunk`` at a time (default: all), bounding memory. ``init``: (..., D).
    Used in chapter 1 (retrieval converges to the posterior-weighted memories) and chapter 5 (the capacity sweep).
    """
    checks.count("max_iter", max_iter, low=1)
    checks.positive("tol", tol)
    x = checks.points("init", init)
    flat = x.reshape(-1, x.shape[-1]).clone()
    chunk = flat.shape[0] if chunk is None else checks.count("chunk", chunk, low=1)
    steps = torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
    converged = torch.zeros(flat.shape[0], dtype=torch.bool, device=flat.device)
    for start in range(0, flat.shape[0], max(chunk, 1)):
        active = torch.arange(start, min(start + chunk, flat.shape[0]), device=flat.device)
        for _ in range(max_iter):
            new = update(flat[active])
            if new.shape != (len(active), flat.shape[1]):
                raise ValueError(f"`update` must map (M, D) to (M, D): got {tuple(new.shape)} for "
                                 f"{(len(active), flat.shape[1])}")
            moved = (new - flat[active]).norm(dim=-1)
            flat[active] = new.to(flat.dtype)
            steps[active] += 1
            settled = moved < tol  # a NaN step never counts as converged
            converged[active[settled]] = True
            active = active[~settled]
            if active.numel() == 0:
                break
    shape = x.shape[:-1]
    return FixedPoint(flat.reshape(x.shape), int(steps.max()) if steps.numel() else 0,
                      converged.reshape(shape), steps.reshape(shape))


def dense_retrieve(
    state: torch.Tensor,
    memories: torch.Tensor,
    *,
    interaction: Literal["polynomial", "exponential"] = "polynomial",
    degree: int = 2,
    n_sweeps: int = 5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Asynchronous retrieval in a binary dense associative memory E(s) = −Σ_k F(μ_kᵀ s) (Krotov & Hopfield 2016).

    Each sweep visits the D units in a random order; unit i takes the sign with the lower energy, the others held
    fixed — so the energy never increases. It stops early after a sweep that changes no unit (a fixed point). Only the overlaps z_k = μ_kᵀ s are kept (flipping s_i moves z_k by
    2μ_ki), which makes a step O(K) per state instead of O(KD). With F(z) = z² (``degree=2``) this is the classical
    Hopfield network with Hebbian weights: −½ sᵀ W s = −(1/2D) Σ_k z_k² + N/2. ``"exponential"`` (F = exp) compares
    the two energies through Σ_k e^{z_k − max z}·sinh(μ_ki), so it does not overflow.

    ``state``: (T, D) of ±1; ``memories``: (K, D) of ±1  →  (T, D) of ±1 after ``n_sweeps`` sweeps.
    """
    memories = checks.patterns("memories", memories)
    state = checks.points("state", state, dim=memories.shape[1])
    if state.ndim != 2:
        raise ValueError(f"`state` must have shape (T, D), got {tuple(state.shape)}")
    checks.count("n_sweeps", n_sweeps)
    final, _ = batched_dense_retrieve(state[None], memories[None], interaction=interaction, degree=degree,
                                      max_sweeps=n_sweeps, generator=generator)
    return final[0]


def _odd_part(rest: torch.Tensor, degree: int) -> torch.Tensor:
    """g(r) with (r + c)^n − (r − c)^n = 2c·g(r) for c = ±1: g(r) = Σ_{j odd} C(n, j) r^{n−j} (n = ``degree``)."""
    out = math.comb(degree, 1) * (rest if degree == 2 else rest ** (degree - 1)) if degree > 1 else torch.ones_like(rest)
    for j in range(3, degree + 1, 2):
        out = out + math.comb(degree, j) * rest ** (degree - j)
    return out


def _prefers_up(rest: torch.Tensor, column: torch.Tensor, interaction: str, degree: int) -> torch.Tensor:
    """E(s_i = −1) − E(s_i = +1) ≥ 0 for every state: rest (B, T, K) overlaps without unit i, column (B, K) of ±1."""
    if interaction == "exponential":  # Σ_k e^{rest_k}(e^{c_k} − e^{−c_k}), scaled by a positive factor
        weights = torch.exp(rest - rest.amax(-1, keepdim=True))
        return torch.einsum("btk,bk->bt", weights, torch.sinh(column)) >= 0
    return torch.einsum("btk,bk->bt", _odd_part(rest, degree), column) >= 0


def batched_dense_retrieve(
    cues: torch.Tensor,
    memories: torch.Tensor,
    *,
    interaction: Literal["polynomial", "exponential"] = "polynomial",
    degree: int = 2,
    max_sweeps: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, int]:
    """Asynchronous retrieval in B independent binary dense associative memories at once.

    The dynamics of :func:`ambridge.dynamics.dense_retrieve` — E(s) = −Σ_k F(ξ_kᵀ s) with F(z) = z^degree
    (``"polynomial"``; degree 2 is the classical Hopfield network) or F = exp; each sweep visits the units in one
    random order, each unit takes the sign of lower energy (ties to +1), so the energy never increases — with a
    batch dimension, so that the memories of several seeds run in one pass. One permutation per sweep is shared by
    the batch; it stops after a sweep that changes no unit of any state. For B = 1 and the same generator it gives
    exactly what ``dense_retrieve`` gives.

    ``cues``: (B, T, D) of ±1; ``memories``: (B, K, D) of ±1  →  (final states (B, T, D), sweeps run).
    Used in chapter 1, § From Hopfield to dense associative memory.
    """
    if cues.ndim != 3 or memories.ndim != 3 or cues.shape[0] != memories.shape[0] or cues.shape[2] != memories.shape[2]:
        raise checks.ParameterError("cues", cues, f"must be (B, T, D) with memories (B, K, D) of the same B and D, got "
                                    f"memories {tuple(memories.shape)}", shown=f"shape {tuple(cues.shape)}")
    checks.check_choice("interaction", interaction, ["polynomial", "exponential"])
    if interaction == "polynomial":
        checks.count("degree", degree, low=1)
    checks.count("max_sweeps", max_sweeps)
    if not bool(((memories == 1) | (memories == -1)).all()):
        raise checks.ParameterError("memories", memories, "must hold only ±1", shown=f"shape {tuple(memories.shape)}")
    s = cues.clone()
    z = torch.einsum("btd,bkd->btk", s, memories)  # overlaps
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):
        before = s.clone()
        for i in torch.randperm(s.shape[-1], generator=generator).tolist():
            column = memories[:, :, i]  # (B, K)
            rest = z - s[:, :, i : i + 1] * column.unsqueeze(1)
            s[:, :, i] = torch.where(_prefers_up(rest, column, interaction, degree), 1.0, -1.0)
            z = rest + s[:, :, i : i + 1] * column.unsqueeze(1)
        if torch.equal(s, before):
            break
    return s, sweeps


