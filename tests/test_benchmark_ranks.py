"""Rank statistics of the benchmark (ambridge.benchmarks.ranks) on a case small enough to check by hand: mean ranks
with a tie, Friedman's statistic from its formula, Nemenyi's p-values from the studentized range, Wilcoxon's exact
p-value and Holm's correction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import studentized_range

from ambridge import benchmarks as cb

# Median scores (data set -> method -> value); every method gets seeds 0, 1, 2 at value - 0.01, value, value + 0.01.
MEDIANS = {"d1": {"A": 0.9, "B": 0.5, "C": 0.1}, "d2": {"A": 0.8, "B": 0.6, "C": 0.2},
           "d3": {"A": 0.7, "B": 0.3, "C": 0.4}, "d4": {"A": 0.6, "B": 0.6, "C": 0.1}}


def frame(medians=MEDIANS, offsets=(-0.01, 0.0, 0.01)) -> pd.DataFrame:
    rows = []
    for dataset, scores in medians.items():
        for method, value in scores.items():
            for seed, off in enumerate(offsets):
                row = dict.fromkeys(cb.COLUMNS, "")
                row.update(dataset=dataset, method=method, seed=seed, n_samples=10, n_features=2, n_classes=2,
                           n_clusters_found=2, fit_time_s=0.1, **{m: value + off for m in cb.METRICS})
                rows.append(row)
    return cb.runs_frame(rows, "hand")


def test_score_matrix_and_mean_ranks_by_hand():
    df = frame()
    matrix = cb.score_matrix(df, "adjusted_rand", ["A", "B", "C"])
    assert matrix.index.tolist() == ["d1", "d2", "d3", "d4"] and matrix.loc["d3", "C"] == pytest.approx(0.4)
    ranks = cb.mean_ranks(df, "adjusted_rand", ["A", "B", "C"])
    # d1, d2: A B C = 1 2 3; d3: 1 3 2; d4: A and B tie for first (1.5 each), C 3
    assert ranks.to_dict() == pytest.approx({"A": 1.125, "B": 2.125, "C": 2.75})
    assert ranks.index.tolist() == ["A", "B", "C"]
    lower = cb.mean_ranks(df, "davies_bouldin", ["A", "B", "C"])  # lower is better: the order turns round
    assert lower.to_dict() == pytest.approx({"A": 2.875, "B": 1.875, "C": 1.25})


def test_friedman_against_its_formula_with_the_tie_correction():
    stat, p, n = cb.friedman_test(frame(), "adjusted_rand", ["A", "B", "C"])
    k, N = 3, 4
    rbar = np.array([1.125, 2.125, 2.75])
    chi2 = 12 * N / (k * (k + 1)) * np.sum((rbar - (k + 1) / 2) ** 2)  # 5.375 without ties
    correction = 1 - (2**3 - 2) / (N * k * (k**2 - 1))  # one tie of two on d4
    assert n == 4 and stat == pytest.approx(chi2 / correction) and stat == pytest.approx(5.7333, abs=1e-4)
    assert p == pytest.approx(math.exp(-stat / 2))  # chi-squared with 2 degrees of freedom
    with pytest.raises(ValueError, match="at least 3 methods"):
        cb.friedman_test(frame(), "adjusted_rand", ["A", "B"])


def test_nemenyi_from_the_studentized_range():
    p = cb.nemenyi_test(frame(), "adjusted_rand", ["A", "B", "C"])
    assert p.shape == (3, 3) and np.allclose(p.to_numpy(), p.to_numpy().T)
    k, N = 3, 4
    q = abs(1.125 - 2.75) / math.sqrt(k * (k + 1) / (6 * N))
    assert p.loc["A", "C"] == pytest.approx(studentized_range.sf(q * math.sqrt(2), k, np.inf), rel=1e-3)
    assert p.loc["A", "C"] < p.loc["A", "B"] < 1


def test_critical_difference_diagram_draws_every_method():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ax = cb.critical_difference_diagram(frame(), "adjusted_rand", ["A", "B", "C"])
    texts = " ".join(t.get_text() for t in ax.texts)
    assert all(name in texts for name in ("A", "B", "C"))
    plt.close("all")


def test_paired_wilcoxon_exact_p_and_holm():
    diffs = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
    rows = []
    for seed, d in enumerate(diffs):
        for dataset, a, b in [("x", 0.5 + d, 0.5), ("y", 0.4, 0.4)]:  # x: A better on every seed; y: identical
            for method, value in (("A", a), ("B", b)):
                row = dict.fromkeys(cb.COLUMNS, "")
                row.update(dataset=dataset, method=method, seed=seed, n_samples=10, n_features=2, n_classes=2,
                           n_clusters_found=2, fit_time_s=0.1, **{m: value for m in cb.METRICS})
                rows.append(row)
    df = cb.runs_frame(rows, "hand")
    table = cb.paired_wilcoxon(df, "adjusted_rand", [("A", "B")])
    x, y = table.set_index("dataset").loc["x"], table.set_index("dataset").loc["y"]
    assert x["seeds"] == 6 and x["median_diff"] == pytest.approx(0.035)
    assert x["p"] == pytest.approx(2 / 2**6)  # exact: all six signs positive
    assert y["p"] == 1.0  # identical on every seed
    assert x["p_holm"] == pytest.approx(2 * 2 / 2**6) and y["p_holm"] == 1.0  # Holm over the pair's 2 data sets
    assert x["verdict"] == "no difference"
    loose = cb.paired_wilcoxon(df, "adjusted_rand", [("A", "B")], alpha=0.1).set_index("dataset")
    assert loose.loc["x", "verdict"] == "A better"
    lower = cb.paired_wilcoxon(df, "davies_bouldin", [("A", "B")], alpha=0.1).set_index("dataset")
    assert lower.loc["x", "median_diff"] < 0 and lower.loc["x", "verdict"] == "B better"  # lower DB is better


def test_rank_table_rows():
    summary = cb.rank_table(frame(), ["adjusted_rand", "ami"], ["A", "B", "C"])
    header, rows = summary.table(["A", "B", "C"])
    assert header == ["method", "adjusted Rand: mean rank", "AMI: mean rank"]
    assert rows[0] == ["A", "1.12", "1.12"] and rows[-1][0] == "Friedman p (data sets)"
    assert rows[-1][1] == f"{summary.friedman['adjusted_rand'][1]:.1g} (4)"


def test_wilcoxon_table_one_row_per_data_set():
    tests = pd.DataFrame([
        {"pair": "A vs B", "dataset": "x", "seeds": 6, "median_diff": 0.035, "p": 0.03125, "p_holm": 0.0625,
         "verdict": "no difference"},
        {"pair": "C vs B", "dataset": "x", "seeds": 6, "median_diff": -0.2, "p": 0.002, "p_holm": 0.004,
         "verdict": "B better"},
        {"pair": "A vs B", "dataset": "y", "seeds": 6, "median_diff": 0.0, "p": 1.0, "p_holm": 1.0,
         "verdict": "no difference"}])
    header, rows = cb.wilcoxon_table(tests)
    assert header == ["data set", "A vs B", "C vs B"]
    assert rows == [["x", "no difference (+0.04, p 0.062)", "B better (-0.20, p 0.004)"],
                    ["y", "no difference (+0.00, p 1)", "–"]]
