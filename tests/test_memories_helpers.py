"""The chapters' helpers in ambridge.memories: the retrieval-cost harness and its committed records (chapter 3),
memories paired to true means (chapter 3), and mixture streams with the memories CLAM+CRP makes on them (chapter 4)."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from ambridge.data import sample_mixture
from ambridge.memories import CLAMCRP
from ambridge.memories.cost import COST_LABELS, cost_dims, fastest, read_cost_record, retrieval_cost
from ambridge.memories.evaluation import matched_distances
from ambridge.memories.streams import memories_made, mixture_stream


# ------------------------------------------------------------------------------------------------------ cost


def test_cost_dims_are_powers_of_four_times_two():
    assert cost_dims(2048) == [2, 8, 32, 128, 512, 2048] and cost_dims(100) == [2, 8, 32] and cost_dims(1) == []


def test_fastest_calls_once_untimed_then_keeps_the_minimum():
    calls = []
    assert fastest(lambda: calls.append(1), 4) >= 0 and len(calls) == 5


def test_retrieval_cost_times_every_piece_at_every_dimension_and_draws_nothing_else():
    gen_state = torch.random.get_rng_state()
    cost = retrieval_cost([2, 8], memories=3, points=5, steps=2, repeats=1, seed=0)
    assert list(cost) == list(COST_LABELS) and all(len(v) == 2 and min(v) > 0 for v in cost.values())
    assert torch.equal(torch.random.get_rng_state(), gen_state)  # its own generator: the global stream untouched


def test_read_cost_record(tmp_path):
    settings, dims = {"memories": 4, "steps": 2}, [2, 8]
    path = tmp_path / "cost-cpu.json"
    assert read_cost_record(path, settings, dims) is None  # no file
    record = {"parameters": settings, "dims": dims, "seconds": {k: [1.0, 2.0] for k in COST_LABELS},
              "hardware": "a CPU", "created": "2026-01-01T00:00:00Z"}
    path.write_text(json.dumps(record))
    assert read_cost_record(path, settings, dims) == record
    assert read_cost_record(path, {**settings, "steps": 3}, dims) is None  # other settings: measure anew
    assert read_cost_record(path, settings, [2]) is None
    path.write_text(json.dumps({"parameters": settings}))
    with pytest.raises(ValueError, match="is not a cost record"):
        read_cost_record(path, settings, dims)
    path.write_text("{")
    with pytest.raises(ValueError, match="delete it"):
        read_cost_record(path, settings, dims)


# ------------------------------------------------------------------------------------------------ evaluation


def test_matched_distances_is_the_least_total_pairing():
    rng = np.random.default_rng(0)
    for _ in range(20):
        memories, truth = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
        best = min(itertools.permutations(range(4)),
                   key=lambda p: sum(np.linalg.norm(memories[i] - truth[j]) for i, j in enumerate(p)))
        expected = [np.linalg.norm(memories[i] - truth[j]) for i, j in enumerate(best)]
        np.testing.assert_allclose(matched_distances(memories, truth), expected, rtol=1e-12)
    np.testing.assert_allclose(matched_distances(truth[[2, 0, 3, 1]], truth), 0.0)  # a relabelling costs nothing
    with pytest.raises(ValueError, match="must be"):
        matched_distances(truth[:, :2], truth)


# ------------------------------------------------------------------------------------------------ streams


def test_mixture_stream_is_its_seeded_mixture():
    x, z = mixture_stream(3, 4, 50, spread=2.0, seed=7, stream=2)
    g = torch.Generator().manual_seed(7002)
    means = 2.0 * torch.randn(3, 4, generator=g, dtype=torch.float64)
    x_ref, z_ref = sample_mixture(means, 1.0, 50, generator=g)
    assert torch.equal(x, x_ref) and torch.equal(z, z_ref)
    assert not torch.equal(x, mixture_stream(3, 4, 50, spread=2.0, seed=7, stream=3)[0])


def test_memories_made_counts_each_streams_fit():
    kw = dict(n=60, spread=3.0, seed=1)
    made = memories_made(3, 2, alpha=1.0, normaliser=True, n_streams=2, **kw)
    for s in range(2):
        direct = CLAMCRP(alpha=1.0, variance=1.0, prior_variance=9.0, random_state=1 + s).fit(
            mixture_stream(3, 2, 60, spread=3.0, seed=1, stream=s)[0])
        assert made.counts[s] == direct.n_memories_ and made.converged[s] == direct.converged_
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # silenced inside, reported by the flag
        capped = memories_made(3, 2, alpha=1.0, normaliser=False, n_streams=1, max_iter=1, **kw)
    assert capped.converged.tolist() == [False] and capped.counts.shape == (1,)
