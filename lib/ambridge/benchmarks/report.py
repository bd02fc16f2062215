"""Tables and figures of the clustering benchmark, for the chapters: medians with the best marked, per-seed violins,
which method wins where, and what a committed run holds.

Every function takes a frame of :func:`ambridge.benchmarks.clustering_runs.run_benchmark` or
:func:`~ambridge.benchmarks.clustering_runs.load_results`; pandas and seaborn are imported inside the functions that
need them. Used in chapter 3, § The clustering benchmark and § The full benchmark, and chapter 4, § On real data:
choosing σ².
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .clustering import DATASETS, HIGHER_IS_BETTER, INTERNAL_METRICS, METHODS, METRIC_LABELS, METRICS
from .clustering_runs import resolve_seeds

__all__ = [
    "long_format",
    "missing_runs",
    "summary_table",
    "violin_plot",
    "datasets_in",
    "describe_run",
    "median_scores",
    "Dominance",
    "dominance",
    "cluster_count_table",
    "dp_gmm_table",
]


def long_format(df, metrics: Sequence[str] = METRICS):
    """One row per (dataset, method, seed, metric) with its ``value``; failed runs and NaN scores left out (the
    input of :func:`violin_plot`).
    Used by :func:`violin_plot` (chapter 3, § The clustering benchmark).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRICS)}")
    ok = df[df["error"] == ""]
    tidy = ok.melt(id_vars=["dataset", "method", "seed"], value_vars=list(metrics), var_name="metric",
                   value_name="value")
    return tidy.dropna(subset=["value"]).reset_index(drop=True)


def missing_runs(
    df,
    datasets: Sequence[str] = DATASETS,
    methods: Sequence[str] = tuple(METHODS),
    seeds: int | Iterable[int] = 10,
    *,
    count_failed: bool = True,
) -> list[tuple[str, str, int]]:
    """The (dataset, method, seed) runs the table lacks (failed runs count as missing when ``count_failed``).
    Used in chapter 3, § The full benchmark (:func:`describe_run`)."""
    have = df if not count_failed else df[df["error"] == ""]
    present = set(zip(have["dataset"], have["method"], have["seed"].astype(int)))
    return [(d, m, s) for d in datasets for m in methods for s in resolve_seeds(seeds) if (d, m, s) not in present]


def _ordered(values, order) -> list:
    values = list(dict.fromkeys(values))
    return [v for v in order if v in values] + [v for v in values if v not in order]


def summary_table(
    df, metrics: Sequence[str] = METRICS, *, digits: int = 3
) -> tuple[list[str], list[list[str]]]:
    """Median over seeds of each metric per (dataset, method); the best method per data set and metric in bold.

    Returns ``(header, rows)`` for :func:`ambridge.report.markdown_table`. Medians are over the seeds where a score
    is defined; best is the highest (lowest for Davies–Bouldin) median after rounding to ``digits`` significant
    digits, ties all marked. The last columns: median clusters found (``K found``, true K in the ``K`` column),
    runs counted, and a note when runs failed or had undefined internal scores. Used in chapter 3, § The clustering
    benchmark and § The full benchmark, and by the command line's closing table.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRICS)}")
    header = ["dataset", "method", *[METRIC_LABELS[m] for m in metrics], "K", "K found", "runs", "notes"]
    rows = []
    for dataset in _ordered(df["dataset"], DATASETS):
        part = df[df["dataset"] == dataset]
        ok = part[part["error"] == ""]
        methods = _ordered(part["method"], tuple(METHODS))
        medians = {m: ok[ok["method"] == m][list(metrics)].median(skipna=True) for m in methods}
        shown = {m: {c: _significant(medians[m][c], digits) for c in metrics} for m in methods}
        best = {}
        for c in metrics:
            values = [float(shown[m][c]) for m in methods if shown[m][c] != "–"]
            if values:
                best[c] = max(values) if HIGHER_IS_BETTER[c] else min(values)
        for m in methods:
            runs = part[part["method"] == m]
            good = runs[runs["error"] == ""]
            cells = [f"**{shown[m][c]}**" if shown[m][c] != "–" and float(shown[m][c]) == best.get(c) else shown[m][c]
                     for c in metrics]
            found = good["n_clusters_found"].dropna()
            notes = []
            if len(good) < len(runs):
                notes.append(f"{len(runs) - len(good)} failed")
            undefined = int(good[list(INTERNAL_METRICS)].isna().any(axis=1).sum())
            if undefined:
                notes.append(f"{undefined} with internal scores undefined")
            rows.append([
                dataset, m, *cells, str(int(runs["n_classes"].iloc[0])),
                _significant(float(found.median()), 3) if len(found) else "–", str(len(runs)), "; ".join(notes),
            ])
    return header, rows


def _significant(value: float, digits: int) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{float(f'{value:.{digits}g}'):g}" if abs(value) < 10**digits else f"{value:.0f}"


def violin_plot(
    df,
    dataset: str,
    metrics: Sequence[str] = METRICS,
    *,
    methods: Sequence[str] | None = None,
    fig=None,
    ncols: int | None = None,
):
    """Per-seed score distributions of every method on one data set: one panel per metric, methods on the x axis,
    a violin (cut at the data) with the individual seeds as dots. Returns the matplotlib figure (``fig`` if given,
    its axes replaced). Failed runs and undefined scores are left out; a method without values shows no violin.
    Used in chapter 3, § The clustering benchmark and § The full benchmark.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ..plotting import PALETTE

    if dataset not in set(df["dataset"]):
        have = ", ".join(_ordered(df["dataset"], DATASETS))
        raise ValueError(f"no results for data set {dataset!r}; the table has {have}")
    part = long_format(df[df["dataset"] == dataset], metrics)
    order = list(methods) if methods is not None else _ordered(df.loc[df["dataset"] == dataset, "method"],
                                                               tuple(METHODS))
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(order)}
    ncols = ncols or min(len(metrics), 4)
    nrows = math.ceil(len(metrics) / ncols)
    if fig is None:
        fig = plt.figure(figsize=(3.2 * ncols, 2.9 * nrows), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seaborn's notices (e.g. a constant sample) would reach a notebook's stderr
        for ax, metric in zip(axes, metrics):
            values = part[part["metric"] == metric]
            if len(values):
                sns.violinplot(data=values, x="method", y="value", hue="method", order=order, hue_order=order,
                               palette=colours, cut=0, inner=None, density_norm="width", linewidth=0.8,
                               legend=False, ax=ax)
                sns.stripplot(data=values, x="method", y="value", order=order, color="black", size=2.5, jitter=0.15,
                              ax=ax)
            ax.set_title(METRIC_LABELS[metric] + ("" if HIGHER_IS_BETTER[metric] else " (lower is better)"))
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"{dataset}: scores over seeds")
    return fig


# ------------------------------------------------------------------------------------- who wins, what a run holds

#: Short names of the metrics for the headers of :meth:`Dominance.table`.
SHORT_LABELS = {"rand": "Rand", "adjusted_rand": "ARI", "ami": "AMI", "nmi": "NMI", "calinski_harabasz": "CH",
                "davies_bouldin": "DB", "silhouette": "silhouette"}


def datasets_in(df) -> list[str]:
    """The data sets of a runs frame, in the order of :data:`~ambridge.benchmarks.clustering.DATASETS`.
    Used in chapter 3, § The full benchmark.
    """
    return _ordered(df["dataset"], DATASETS)


def describe_run(df, meta: dict | None, where: str) -> str:
    """Two lines on a committed run: its size and what it lacks (failed or missing runs), then who made it — preset,
    hardware, wall time (with the record's ``timing`` note, e.g. "shared machine, under load", when it has one),
    commit — from its ``benchmark.json`` ``meta``, or that the run did not finish.
    Used in chapter 3, § The full benchmark."""
    sets = datasets_in(df)
    lacking = missing_runs(df, sets, tuple(METHODS), sorted(set(df["seed"])))
    first = (f"{where}: {len(df)} runs, {len(sets)} data sets x {df['method'].nunique()} methods x "
             f"{df['seed'].nunique()} seeds; failed or missing: {len(lacking)}")
    if not meta:
        return first + "\nno benchmark.json: the run did not finish; rerun the command above to complete it"
    timing = f" ({meta['timing']})" if meta.get("timing") else ""
    return (first + f"\nmade by {meta['parameters'].get('preset', '?')} preset on {meta['hardware']}; "
            f"wall time {meta['wall_time_s'] / 60:.0f} min{timing}; commit {meta['commit'][:10]}")


def median_scores(df, metric: str, decimals: int = 3):
    """Median over seeds of one metric, successful runs only: a frame, data sets × methods, rounded to ``decimals``.
    Used in chapter 3, § The full benchmark (CLAM+ELBO against CLAM and K-means)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    return df[df["error"] == ""].groupby(["dataset", "method"])[metric].median().unstack().round(decimals)


@dataclass
class Dominance:
    """Which methods are best where (:func:`dominance`).

    ``winners``: {(data set, metric): methods with the best median}; ``always``: methods among the best in every
    (data set, metric); ``counts``: {method: number of (data set, metric) cells where it is among the best}.
    Used in chapter 3, § The clustering benchmark and § The full benchmark.
    """

    winners: dict[tuple[str, str], list[str]]
    always: list[str]
    counts: dict[str, int]

    def tally(self) -> str:
        """``"K-means 5, GMM 3, …"``: the best cells per method, in the order of the methods."""
        return ", ".join(f"{m} {c}" for m, c in self.counts.items())

    def table(self, datasets: Sequence[str], metrics: Sequence[str] = ("adjusted_rand", "ami", "silhouette")):
        """``(header, rows)`` for :func:`ambridge.report.markdown_table`: per data set, the best methods per metric."""
        header = ["data set", *(f"best {SHORT_LABELS[m]}" for m in metrics)]
        return header, [(name, *(", ".join(self.winners[(name, m)]) for m in metrics)) for name in datasets]


def dominance(df, metrics: Sequence[str] = ("adjusted_rand", "ami", "nmi", "silhouette")) -> Dominance:
    """Does a method dominate? For each data set and metric, the method(s) with the best median over seeds (highest,
    lowest for Davies–Bouldin), medians rounded to 3 significant digits so that ties are ties as the tables show
    them; a method dominates if it is among the best everywhere. Failed runs are left out.
    Used in chapter 3, § The clustering benchmark and § The full benchmark ("no method dominates")."""
    ok = df[df["error"] == ""]
    winners: dict[tuple[str, str], list[str]] = {}
    for metric in metrics:
        med = ok.groupby(["dataset", "method"])[metric].median().unstack().map(lambda x: float(f"{x:.3g}"))
        best = med.max(axis=1) if HIGHER_IS_BETTER[metric] else med.min(axis=1)
        for name in med.index:
            winners[(name, metric)] = [m for m in METHODS if m in med.columns and med.loc[name, m] == best[name]]
    always = [m for m in METHODS if all(m in best for best in winners.values())]
    counts = {m: sum(m in best for best in winners.values()) for m in METHODS}
    return Dominance(winners, always, counts)


def cluster_count_table(runs, methods: Sequence[str] = ("CLAM+CRP", "DP-GMM")):
    """``(header, rows)``: per data set, its classes and the clusters each method found — median (range over
    seeds) — for the methods that choose their own number of clusters. Used in chapter 4, § On real data: choosing σ²."""
    found = runs[(runs["error"] == "") & runs["method"].isin(list(methods))]
    table = found.groupby(["dataset", "method"])["n_clusters_found"].agg(["median", "min", "max", "count"])
    header = ["data set", "classes", f"{methods[0]}: clusters, median (range over seeds)", *methods[1:]]
    rows = []
    for name in dict.fromkeys(runs["dataset"]):
        cells = [f"{table.loc[(name, m), 'median']:g} ({table.loc[(name, m), 'min']:g}–{table.loc[(name, m), 'max']:g})"
                 if (name, m) in table.index else "–" for m in methods]
        rows.append((name, int(runs[runs["dataset"] == name]["n_classes"].iloc[0]), *cells))
    return header, rows


def dp_gmm_table(runs, tuned: str = "DP-GMM", default: str = "DP-GMM (sklearn default)"):
    """``(header, rows)``: per data set, what the tuned DP-GMM chose (its commonest concentration and covariance over
    seeds, from the runs' ``details``), its clusters (median, range) against its truncation and in how many seeds the
    truncation bound, and the same clusters count for scikit-learn's default (which binds when it uses its
    :func:`~ambridge.benchmarks.clustering.dp_gmm_components`), with both median adjusted Rand indices.
    Used in chapter 3, § A fair DP-GMM."""
    from .clustering import dp_gmm_components

    ok = runs[runs["error"] == ""]
    header = ["data set", "classes", "chosen γ, covariance", f"{tuned}: clusters / truncation", "binds",
              f"{default}: clusters / truncation", "binds", "ARI tuned", "ARI default"]
    rows = []
    for name in datasets_in(runs):
        mine, theirs = ok[(ok["dataset"] == name) & (ok["method"] == tuned)], ok[(ok["dataset"] == name) &
                                                                                 (ok["method"] == default)]
        if mine.empty or theirs.empty:
            continue
        k = int(mine["n_classes"].iloc[0])
        fields = [dict(p.split("=", 1) for p in d.split("; ")) for d in mine["details"]]
        choice = max(set((f["concentration"], f["covariance"]) for f in fields),
                     key=[(f["concentration"], f["covariance"]) for f in fields].count)
        truncations = sorted({int(f["truncation"]) for f in fields})
        found, found_d, cap = mine["n_clusters_found"], theirs["n_clusters_found"], dp_gmm_components(k)
        rows.append([name, k, f"{choice[0]}, {choice[1]}",
                     f"{found.median():g} ({found.min()}–{found.max()}) / {'–'.join(map(str, truncations))}",
                     f"{sum(f['binds'] == 'yes' for f in fields)}/{len(fields)}",
                     f"{found_d.median():g} ({found_d.min()}–{found_d.max()}) / {cap}",
                     f"{int((found_d >= cap).sum())}/{len(theirs)}",
                     f"{mine['adjusted_rand'].median():.2f}", f"{theirs['adjusted_rand'].median():.2f}"])
    return header, rows
