"""The cost of retrieval: CLAM's D-dimensional point state against CLAM+ELBO's K logits, timed.

A CLAM retrieval carries a point in ℝ^D: each of its T steps computes K distances in ℝ^D and a weighted sum of K
memories, about 4KD operations per point. CLAM+ELBO pays once for the log joint a (one matrix product, about 2KD
operations), and then each step of its dynamics costs a few dozen operations per memory, with no D at all.
:func:`retrieval_cost` times the three pieces as D grows; :func:`read_cost_record` reads a committed measurement back,
so a chapter can draw it instead of timing anew. Used in chapter 3, § The cost of a K-dimensional state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..dynamics import clam_step
from ..energies import squared_distances_by_inner_products
from ..runtime import Stopwatch
from .elbo import elbo_dynamics

__all__ = ["COST_LABELS", "cost_dims", "fastest", "retrieval_cost", "read_cost_record"]

#: The three timed pieces, in the order :func:`retrieval_cost` returns them.
COST_LABELS = ("CLAM: T point steps", "ELBO: log joint, once", "ELBO: T steps on K logits")


def cost_dims(dim_max: int) -> list[int]:
    """The dimensions of the sweep: D = 2, 8, 32, … (a factor 4 apart) up to ``dim_max``.
    Used in chapter 3, § The cost of a K-dimensional state.
    """
    return [int(d) for d in 2 * 4 ** np.arange(12) if d <= dim_max]


def fastest(fn: Callable[[], object], repeats: int, device: str | torch.device = "cpu") -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (seconds), after one untimed call: first calls at a new shape
    pay for allocation and dispatch. CUDA is synchronised around each call (:class:`ambridge.runtime.Stopwatch`).
    Used by :func:`retrieval_cost` (chapter 3, § The cost of a K-dimensional state).
    """
    fn()
    times = []
    for _ in range(repeats):
        with Stopwatch(device) as watch:
            fn()
        times.append(watch.seconds)
    return min(times)


def retrieval_cost(
    dims: Sequence[int],
    *,
    memories: int,
    points: int,
    steps: int,
    repeats: int,
    seed: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
) -> dict[str, list[float]]:
    """Seconds to retrieve ``points`` points with K = ``memories`` memories for T = ``steps`` steps, per D in ``dims``
    (the fastest of ``repeats``): {label in :data:`COST_LABELS`: [seconds per D]}.

    The memories are N(0, I) in D dimensions, the points noisy copies of them (noise 0.5), β = 1/D so that the
    responsibilities stay soft at every D. They are drawn from their own generator seeded with ``seed``, so timing
    draws nothing from a chapter's generator. The log joint is written as one matrix product
    (:func:`ambridge.energies.squared_distances_by_inner_products`), the form CLAM's step uses.
    """
    gen = torch.Generator().manual_seed(seed)
    cost: dict[str, list[float]] = {label: [] for label in COST_LABELS}
    for d in dims:
        mems = torch.randn(memories, d, generator=gen, dtype=dtype).to(device)
        pick = torch.randint(memories, (points,), generator=gen).to(device)
        pts = mems[pick] + torch.randn(points, d, generator=gen, dtype=dtype).to(device) * 0.5
        beta = 1.0 / d
        a = -beta * squared_distances_by_inner_products(pts, mems)

        def clam_run(v=pts, mems=mems, beta=beta):
            for _ in range(steps):
                v = clam_step(v, mems, beta)

        cost[COST_LABELS[0]].append(fastest(clam_run, repeats, device))
        cost[COST_LABELS[1]].append(fastest(lambda: -beta * squared_distances_by_inner_products(pts, mems), repeats, device))
        cost[COST_LABELS[2]].append(fastest(lambda: elbo_dynamics(a, max_steps=steps, tol=1e-300), repeats, device))
    return cost


def read_cost_record(path: str | Path, settings: dict, dims: Sequence[int]) -> dict | None:
    """A committed cost measurement (a run record with ``parameters``, ``dims``, ``seconds``, ``hardware``,
    ``created``) if ``path`` holds one for exactly these ``settings`` and ``dims``, else None.

    A file that is not such a record is a ValueError naming it (delete it, or measure anew).
    Used in chapter 3, § The cost of a K-dimensional state.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        same = record["parameters"] == settings and record["dims"] == list(dims)
        if same and not set(COST_LABELS) <= set(record["seconds"]):
            raise KeyError("seconds")
        return record if same else None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a cost record ({err!r}); delete it or rerun with cost_timings='measure'") from None
