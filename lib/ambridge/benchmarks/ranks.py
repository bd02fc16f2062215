"""Rank statistics of the clustering benchmark: does any method do better than the others across data sets, and
does one method beat another over seeds?

Across data sets (Demšar 2006): each data set ranks the methods by their median score over seeds (1 = best; ties
share the mean rank); :func:`mean_ranks` averages the ranks, :func:`friedman_test` asks whether they differ at all
(scipy), :func:`nemenyi_test` which pairs differ (scikit-posthocs), and :func:`critical_difference_diagram` draws
both (scikit-posthocs). Over seeds, on one data set: :func:`paired_wilcoxon` pairs two methods seed by seed
(Wilcoxon's signed-rank test, scipy) and corrects the p-values of each pair's family of data sets with Holm's method
(statsmodels). pandas is imported inside the functions. Used in chapter 3, § Ranks and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .clustering import HIGHER_IS_BETTER, METRICS

__all__ = ["score_matrix", "mean_ranks", "friedman_test", "nemenyi_test", "critical_difference_diagram",
           "paired_wilcoxon", "wilcoxon_table", "RankSummary", "rank_table"]


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")


def score_matrix(df, metric: str, methods: Sequence[str] | None = None):
    """Median over seeds of ``metric``: a frame, data sets (rows, in the frame's order) × ``methods`` (columns);
    successful runs only; data sets where a method has no score are dropped (every test needs complete blocks).
    Used in chapter 3, § Ranks and tests."""
    _check_metric(metric)
    ok = df[df["error"] == ""]
    table = ok.groupby(["dataset", "method"], sort=False)[metric].median().unstack()
    methods = list(methods) if methods is not None else list(dict.fromkeys(df["method"]))
    missing = [m for m in methods if m not in table.columns]
    if missing:
        raise ValueError(f"no successful runs of {missing} in the frame")
    order = [d for d in dict.fromkeys(df["dataset"]) if d in table.index]
    return table.loc[order, methods].dropna()


def _ranks(matrix, metric: str):
    """Per data set, 1 = best (ties share their mean rank)."""
    from scipy.stats import rankdata

    values = matrix.to_numpy(dtype=float)
    oriented = -values if HIGHER_IS_BETTER[metric] else values
    return matrix.__class__(rankdata(oriented, axis=1), index=matrix.index, columns=matrix.columns)


def mean_ranks(df, metric: str, methods: Sequence[str] | None = None):
    """Each method's rank on each data set (1 = best median; ties averaged), averaged over data sets: a Series,
    best first. Used in chapter 3, § Ranks and tests."""
    return _ranks(score_matrix(df, metric, methods), metric).mean().sort_values()


def friedman_test(df, metric: str, methods: Sequence[str] | None = None) -> tuple[float, float, int]:
    """Friedman's test that all methods have the same mean rank: ``(statistic, p-value, data sets)``
    (:func:`scipy.stats.friedmanchisquare`, χ² with k − 1 degrees of freedom). Needs at least 3 methods.
    Used in chapter 3, § Ranks and tests."""
    from scipy.stats import friedmanchisquare

    matrix = score_matrix(df, metric, methods)
    if matrix.shape[1] < 3 or matrix.shape[0] < 2:
        raise ValueError(f"Friedman's test needs at least 3 methods and 2 data sets, got {matrix.shape[1]} and "
                         f"{matrix.shape[0]}")
    stat, p = friedmanchisquare(*(matrix[m].to_numpy() for m in matrix.columns))
    return float(stat), float(p), int(matrix.shape[0])


def nemenyi_test(df, metric: str, methods: Sequence[str] | None = None):
    """Nemenyi's post-hoc test after Friedman's: a symmetric frame of p-values, methods × methods
    (:func:`scikit_posthocs.posthoc_nemenyi_friedman`, data sets as blocks). Used in chapter 3, § Ranks and tests."""
    import scikit_posthocs as sp

    matrix = score_matrix(df, metric, methods)
    oriented = matrix if HIGHER_IS_BETTER[metric] else -matrix  # the test is symmetric; orientation for clarity
    return sp.posthoc_nemenyi_friedman(oriented.reset_index(drop=True))


def critical_difference_diagram(df, metric: str, methods: Sequence[str] | None = None, *, ax=None, alpha=0.05):
    """Draw the critical-difference diagram of ``metric`` on ``ax`` (a new figure if None): methods placed at
    their mean ranks, bars joining those that Nemenyi's test cannot tell apart at ``alpha``
    (:func:`scikit_posthocs.critical_difference_diagram`). Returns the axes. Used in chapter 3, § Ranks and tests."""
    import matplotlib.pyplot as plt
    import scikit_posthocs as sp

    from ..plotting import PALETTE

    ranks = mean_ranks(df, metric, methods)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.2))
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods or ranks.index)}
    sp.critical_difference_diagram(ranks, nemenyi_test(df, metric, methods), ax=ax, alpha=alpha,
                                   color_palette=colours)
    return ax


def paired_wilcoxon(df, metric: str, pairs: Sequence[tuple[str, str]], *, alpha: float = 0.05):
    """Per pair (A, B) and data set: Wilcoxon's signed-rank test of A's score against B's, paired by seed
    (:func:`scipy.stats.wilcoxon`, two-sided, exact for small samples), Holm-corrected over the data sets of the
    pair (:func:`statsmodels.stats.multitest.multipletests`). A frame with columns ``pair``, ``dataset``, ``seeds``,
    ``median_diff`` (A − B, oriented so that positive means A is better), ``p``, ``p_holm`` and ``verdict`` (A better,
    B better, or no difference at ``alpha``; identical scores on every seed give p = 1).
    Used in chapter 3, § Ranks and tests."""
    import pandas as pd
    from scipy.stats import wilcoxon
    from statsmodels.stats.multitest import multipletests

    _check_metric(metric)
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    ok = df[df["error"] == ""]
    rows = []
    for a, b in pairs:
        part = []
        for name in dict.fromkeys(df["dataset"]):
            sa = ok[(ok["dataset"] == name) & (ok["method"] == a)].set_index("seed")[metric]
            sb = ok[(ok["dataset"] == name) & (ok["method"] == b)].set_index("seed")[metric]
            both = sa.to_frame("a").join(sb.to_frame("b"), how="inner").dropna()
            if len(both) < 2:
                continue
            diff = sign * (both["a"] - both["b"]).to_numpy()
            p = 1.0 if np.allclose(diff, 0.0) else float(wilcoxon(diff).pvalue)
            part.append({"pair": f"{a} vs {b}", "dataset": name, "seeds": len(both),
                         "median_diff": float(np.median(diff)), "p": p})
        if part:
            holm = multipletests([r["p"] for r in part], alpha=alpha, method="holm")[1]
            for r, ph in zip(part, holm):
                r["p_holm"] = float(ph)
                r["verdict"] = ("no difference" if ph >= alpha else
                                f"{a} better" if r["median_diff"] > 0 else f"{b} better")
            rows.extend(part)
    return pd.DataFrame(rows, columns=["pair", "dataset", "seeds", "median_diff", "p", "p_holm", "verdict"])


def wilcoxon_table(tests) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of :func:`paired_wilcoxon`'s frame: one row per data set, one column per pair, each cell
    the verdict with the median difference and Holm's p-value. Used in chapter 3, § Ranks and tests."""
    pairs = list(dict.fromkeys(tests["pair"]))
    header = ["data set", *pairs]
    rows = []
    for name in dict.fromkeys(tests["dataset"]):
        cells = []
        for pair in pairs:
            hit = tests[(tests["dataset"] == name) & (tests["pair"] == pair)]
            cells.append("–" if hit.empty else
                         f"{hit['verdict'].iloc[0]} ({hit['median_diff'].iloc[0]:+.2f}, p {hit['p_holm'].iloc[0]:.2g})")
        rows.append([name, *cells])
    return header, rows


@dataclass
class RankSummary:
    """Mean ranks and Friedman's test for several metrics (:func:`rank_table`).
    Used in chapter 3, § Ranks and tests."""

    ranks: dict[str, object]  # metric -> Series of mean ranks
    friedman: dict[str, tuple[float, float, int]]  # metric -> (statistic, p, data sets)

    def table(self, methods: Sequence[str]) -> tuple[list[str], list[list[str]]]:
        """``(header, rows)`` for :func:`ambridge.report.markdown_table`: one row per method, its mean rank per metric,
        and a last row with Friedman's p-value per metric."""
        from .clustering import METRIC_LABELS

        header = ["method", *(f"{METRIC_LABELS[m]}: mean rank" for m in self.ranks)]
        rows = [[m, *(f"{self.ranks[k][m]:.2f}" for k in self.ranks)] for m in methods]
        rows.append(["Friedman p (data sets)", *(f"{self.friedman[k][1]:.1g} ({self.friedman[k][2]})"
                                                  for k in self.ranks)])
        return header, rows


def rank_table(df, metrics: Sequence[str], methods: Sequence[str] | None = None) -> RankSummary:
    """Mean ranks and Friedman's test of every metric in ``metrics``, over the same methods.
    Used in chapter 3, § Ranks and tests."""
    return RankSummary({m: mean_ranks(df, m, methods) for m in metrics},
                       {m: friedman_test(df, m, methods) for m in metrics})
