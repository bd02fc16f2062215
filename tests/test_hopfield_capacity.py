"""ambridge.hopfield_capacity: the batched retrieval against the library's one-memory dynamics (exactly, unit by unit),
its energy never rising and its end points being fixed points, the crossing and the seed statistics against hand
computations and SciPy, and the classical capacity's physics at the two ends of the load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ambridge import data, dynamics
from ambridge import hopfield_capacity as hc
from ambridge.checks import ParameterError

F64 = torch.float64


def _patterns(n, d, seed):
    return data.binary_patterns(n, d, generator=torch.Generator().manual_seed(seed)).to(F64)


def _energy(s, memories, interaction, degree):
    z = s @ memories.T
    return -(torch.exp(z) if interaction == "exponential" else z**degree).sum(-1)


@pytest.mark.parametrize("interaction, degree", [("polynomial", 1), ("polynomial", 2), ("polynomial", 3),
                                                 ("polynomial", 4), ("exponential", 1)])
@pytest.mark.parametrize("n_memories, dim", [(30, 60), (200, 40)])
def test_batched_retrieval_is_dense_retrieve_for_each_memory(interaction, degree, n_memories, dim):
    """Three independent memories in one batch: each member ends exactly where ambridge.dynamics.dense_retrieve
    takes it with the same random order of units (one generator seed for both)."""
    memories = torch.stack([_patterns(n_memories, dim, seed) for seed in range(3)])
    cues = torch.stack([data.flip_signs(m[:12], 0.25, generator=torch.Generator().manual_seed(9)) for m in memories])
    batched, _ = hc.batched_dense_retrieve(cues, memories, interaction=interaction, degree=degree, max_sweeps=6,
                                           generator=torch.Generator().manual_seed(5))
    for b in range(3):
        alone = dynamics.dense_retrieve(cues[b], memories[b], interaction=interaction, degree=degree, n_sweeps=6,
                                        generator=torch.Generator().manual_seed(5))
        assert torch.equal(batched[b], alone)


@pytest.mark.parametrize("interaction, degree", [("polynomial", 2), ("polynomial", 3), ("exponential", 1)])
def test_the_energy_never_rises_and_the_ends_are_fixed_points(interaction, degree):
    memories = torch.stack([_patterns(40, 50, seed) for seed in (1, 2)])
    cues = torch.stack([data.flip_signs(m[:20], 0.3, generator=torch.Generator().manual_seed(3)) for m in memories])
    final, sweeps = hc.batched_dense_retrieve(cues, memories, interaction=interaction, degree=degree, max_sweeps=50,
                                              generator=torch.Generator().manual_seed(0))
    assert sweeps < 50  # it stopped at a fixed point of every state
    for b in range(2):
        before, after = (_energy(s, memories[b], interaction, degree) for s in (cues[b], final[b]))
        assert bool((after <= before + 1e-9 * before.abs()).all())
        again = dynamics.dense_retrieve(final[b], memories[b], interaction=interaction, degree=degree, n_sweeps=1,
                                        generator=torch.Generator().manual_seed(1))
        assert torch.equal(again, final[b])


def test_bad_arguments_are_refused_with_the_argument_named():
    memories = _patterns(5, 8, 0)[None]
    with pytest.raises(ParameterError, match="cues"):
        hc.batched_dense_retrieve(memories[0], memories)  # no batch dimension
    with pytest.raises(ParameterError, match="memories"):
        hc.batched_dense_retrieve(memories, 0.5 * memories)
    with pytest.raises(ParameterError, match="interaction"):
        hc.batched_dense_retrieve(memories, memories, interaction="cubic")
    with pytest.raises(ParameterError, match="loads"):
        hc.recall_sweep([0.2, 0.1], n_units=16, n_seeds=1, cue_noise=0.1)
    with pytest.raises(ParameterError, match="n_seeds"):
        hc.recall_sweep([0.1], n_units=16, n_seeds=0, cue_noise=0.1)


def test_crossing_load_against_hand_computations():
    loads = [0.1, 0.2, 0.3, 0.4]
    assert hc.crossing_load(loads, [1.0, 0.8, 0.2, 0.0], 0.5) == pytest.approx(0.25)  # 0.8 → 0.2: halfway
    assert hc.crossing_load(loads, [1.0, 0.5, 0.4, 0.0], 0.5) == pytest.approx(0.2)  # exactly ½ at 0.2, then below
    assert hc.crossing_load(loads, [0.4, 0.3, 0.2, 0.0], 0.5) == 0.1  # below from the start
    assert math.isnan(hc.crossing_load(loads, [1.0, 1.0, 0.9, 0.6], 0.5))  # never falls below
    # a dip that recovers: the first fall counts
    assert hc.crossing_load(loads, [1.0, 0.0, 1.0, 0.0], 0.5) == pytest.approx(0.15)
    assert hc.largest_load_above(loads, [1.0, 0.96, 0.9, 1.0], 0.95) == 0.2
    assert math.isnan(hc.largest_load_above(loads, [0.9, 1.0, 1.0, 1.0], 0.95))
    with pytest.raises(ParameterError, match="fractions"):
        hc.crossing_load(loads, [1.0, 0.5], 0.5)


def test_mean_and_sem_is_scipys():
    values = [0.17, 0.18, 0.165, 0.19, 0.172]
    mean, se = hc.mean_and_sem(values)
    assert mean == pytest.approx(np.mean(values)) and se == pytest.approx(stats.sem(values))
    assert hc.mean_and_sem([0.2, math.nan]) == (0.2, 0.0)
    assert all(math.isnan(v) for v in hc.mean_and_sem([math.nan]))


def test_recall_sweep_success_and_capacity_from_its_overlaps():
    sweep = hc.RecallSweep(np.array([0.1, 0.2, 0.3]), (np.array([[1.0, 1.0], [1.0, 0.95]]),
                                                     np.array([[1.0, 0.5], [0.2, 0.95]]),
                                                     np.array([[0.3, 0.3], [0.1, 0.2]])))
    assert sweep.n_seeds == 2
    assert sweep.success(0.9).tolist() == [[1.0, 1.0], [0.5, 0.5], [0.0, 0.0]]
    assert sweep.success(0.99).tolist() == [[1.0, 0.5], [0.5, 0.0], [0.0, 0.0]]
    assert sweep.capacity(0.9).tolist() == pytest.approx([0.2, 0.2])  # ½ at 0.2, below at 0.3
    assert sweep.capacity(0.99, level=0.75).tolist() == pytest.approx([0.15, 0.1])


def test_the_classical_capacity_at_the_two_ends_of_the_load():
    """Well below 0.138 nearly every cued pattern comes back; far above it almost none does; dense memories keep
    them all at the high load. Reproducible from the generator, and the caller's thread count is left as it was."""
    threads = torch.get_num_threads()
    runs = [hc.recall_sweep([0.04, 0.4], n_units=100, n_seeds=2, cue_noise=0.1, n_probes=32,
                            generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert torch.get_num_threads() == threads
    frac = runs[0].success(0.9)
    assert frac[0].min() >= 0.9 and frac[1].max() <= 0.2
    assert all(np.array_equal(a, b) for a, b in zip(runs[0].overlaps, runs[1].overlaps))
    assert [m.shape for m in runs[0].overlaps] == [(2, 4), (2, 32)]  # P = 4 at the low load: all cued
    dense = hc.recall_sweep([0.4], n_units=100, n_seeds=2, cue_noise=0.1, n_probes=32, degree=3,
                            generator=torch.Generator().manual_seed(0))
    assert dense.success(0.9).min() == 1.0


def test_ten_sweeps_give_the_verdicts_of_a_hundred_near_the_crossing():
    """Chapter 1 stops retrieval after 10 sweeps. Near the classical crossing (D = 100, loads 0.15–0.21), where states
    that lose their pattern move slowly, running 100 sweeps instead changes no verdict at overlap 0.9: the same
    patterns and cues (one call per load, the same generator seed), the first 10 sweeps in the same order."""
    for load in (0.15, 0.18, 0.21):
        runs = [hc.recall_sweep([load], n_units=100, n_seeds=3, cue_noise=0.1, n_probes=32, max_sweeps=sweeps,
                                generator=torch.Generator().manual_seed(4)) for sweeps in (10, 100)]
        assert np.array_equal(runs[0].success(0.9), runs[1].success(0.9))
        assert not np.array_equal(runs[0].overlaps[0], runs[1].overlaps[0]) or load == 0.15  # states did move on
