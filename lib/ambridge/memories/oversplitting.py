"""What stops CLAM+CRP over-splitting real data: the remedies as named variants, one run of each, their summary.

A variant is a way to fit CLAM+CRP without labels (:data:`VARIANTS`):

- ``default``: the benchmark's ``CLAMCRP(alpha=1)`` — isotropic memories of one shared σ², σ² by the evidence;
- ``merge``: the same, with the merge step (:mod:`ambridge.memories.merge`);
- ``diag``: each memory its own diagonal variance, integrated out (``covariance="diag"``);
- ``diag+merge``: both;
- ``held-out``: isotropic memories, α and σ² chosen by the likelihood of held-out points (:func:`heldout_choice`)
  instead of the evidence — the density-estimation criterion.

The study (``benchmarks/crp_oversplitting.py``) runs every variant on the benchmark's data sets over seeds and stores
one record per run (:func:`run_variant`); chapter 4 reads the committed artifact with :func:`summary_rows`.
Used in chapter 4, § Why it over-splits, and what stops it.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from .clamcrp import VARIANCE_GRID, CLAMCRP

__all__ = ["VARIANTS", "HELDOUT_ALPHAS", "HELDOUT_FRACTION", "isotropy_gaps", "heldout_choice", "run_variant",
           "summary_rows", "memory_ratio", "median_score", "load_study"]

#: Variant name -> CLAMCRP keyword arguments (``held-out`` chooses α and σ² first, see :func:`heldout_choice`).
VARIANTS: dict[str, dict] = {
    "default": {},
    "merge": {"merge": True},
    "diag": {"covariance": "diag"},
    "diag+merge": {"covariance": "diag", "merge": True},
    "held-out": {},
}

#: The α grid of the held-out choice (σ² runs over :data:`~ambridge.memories.clamcrp.VARIANCE_GRID` times σ₀²).
HELDOUT_ALPHAS = (0.1, 1.0, 10.0)
#: The share of points held out (drawn by the run's seed; no labels are used).
HELDOUT_FRACTION = 0.2


def isotropy_gaps(X: np.ndarray, y: np.ndarray, *, ridge: float = 1e-2) -> tuple[float, float]:
    """How many nats per point one memory loses on a class by being a ball, or an axis-aligned ellipsoid, instead of
    the class's own Gaussian: for a class with covariance Σ (plus ``ridge``·I, so that constant features stay finite),

        ball:      (D/2) log(tr Σ / D) − ½ log det Σ   (AM–GM: ≥ 0, zero iff Σ ∝ I),
        diagonal:  ½ Σ_d log Σ_dd − ½ log det Σ        (Hadamard: ≥ 0, zero iff Σ is diagonal),

    averaged over the classes ``y`` (n,) weighted by their sizes  →  (ball, diagonal). n·gap nats is what splitting
    a class can win back; a memory costs only O(D log n) nats of Occam factor, so a large gap means that the evidence
    splits the class, rightly for the model. Labels are used for this diagnosis only, never to fit.
    Used in chapter 4, § Why it over-splits, and what stops it."""
    gaps, sizes = [], []
    for c in np.unique(y):
        pts = X[y == c]
        cov = np.cov(pts, rowvar=False, bias=True).reshape(X.shape[1], X.shape[1]) + ridge * np.eye(X.shape[1])
        logdet = np.linalg.slogdet(cov)[1]
        d = X.shape[1]
        gaps.append((0.5 * d * np.log(np.trace(cov) / d) - 0.5 * logdet, 0.5 * np.log(np.diag(cov)).sum() - 0.5 * logdet))
        sizes.append(len(pts))
    ball, diag = np.average(np.array(gaps), axis=0, weights=sizes)
    return float(ball), float(diag)


def _fit(X, **kw) -> CLAMCRP:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return CLAMCRP(**kw).fit(X)


def heldout_choice(X: np.ndarray, seed: int, *, alphas=HELDOUT_ALPHAS, grid=VARIANCE_GRID) -> tuple[float, float, list]:
    """α and σ² that maximise the mean predictive log density (:meth:`CLAMCRP.score_samples`) of a held-out
    :data:`HELDOUT_FRACTION` of ``X`` (n, D), the memory fitted on the rest, over ``alphas`` × σ₀²·``grid``
    →  (α, σ², [(α, σ², mean held-out log density, memories)]). Used in chapter 4, § Why it over-splits, and what
    stops it."""
    n = X.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    test, train = perm[: int(round(HELDOUT_FRACTION * n))], perm[int(round(HELDOUT_FRACTION * n)):]
    s02 = float(X[train].var(0).mean())
    table = []
    for alpha in alphas:
        for g in grid:
            m = _fit(X[train], alpha=alpha, variance=g * s02, prior_variance=s02, random_state=seed)
            table.append((alpha, g * s02, float(m.score_samples(X[test]).mean()), m.n_memories_))
    best = max(table, key=lambda row: row[2])
    return best[0], best[1], table


def run_variant(name: str, X: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """Fit variant ``name`` of :data:`VARIANTS` on ``X`` (n, D) with streaming order ``seed``, score it against the
    classes ``y`` (n,)  →  a JSON-ready dict: memories, adjusted Rand and mutual information, σ², α, log evidence,
    merges, converged, fit seconds (and the held-out table for ``held-out``). Used by the study."""
    if name not in VARIANTS:
        raise ValueError(f"`name` must be one of {', '.join(VARIANTS)}, got {name!r}")
    start = time.perf_counter()
    extra: dict = {}
    if name == "held-out":
        alpha, variance, table = heldout_choice(X, seed)
        s02 = float(X.var(0).mean())
        m = _fit(X, alpha=alpha, variance=variance, prior_variance=s02, random_state=seed)
        extra["heldout_table"] = [[a, round(v, 6), round(s, 6), k] for a, v, s, k in table]
    else:
        alpha = 1.0
        m = _fit(X, alpha=alpha, random_state=seed, **VARIANTS[name])
    return {
        "memories": int(m.n_memories_), "classes": int(np.unique(y).size),
        "ari": float(adjusted_rand_score(y, m.labels_)), "ami": float(adjusted_mutual_info_score(y, m.labels_)),
        "variance": float(m.variance_), "alpha": float(alpha), "log_evidence": float(m.log_evidence_),
        "merges": int(m.n_merges_), "converged": bool(m.converged_), "fit_s": round(time.perf_counter() - start, 2),
        **extra,
    }


def summary_rows(records: list[dict], datasets, variants=tuple(VARIANTS)) -> list[tuple]:
    """Rows (data set, classes, then per variant "memories (ARI / AMI)" as medians over seeds) from the study's
    records (dicts with ``dataset``, ``variant`` and the fields of :func:`run_variant`); "–" where none ran.
    Used in chapter 4, § Why it over-splits, and what stops it."""
    rows = []
    for ds in datasets:
        mine = [r for r in records if r["dataset"] == ds]
        if not mine:
            continue
        row = [ds, mine[0]["classes"]]
        for v in variants:
            runs = [r for r in mine if r["variant"] == v]
            if not runs:
                row.append("–")
                continue
            med = {f: float(np.median([r[f] for r in runs])) for f in ("memories", "ari", "ami")}
            row.append(f"{med['memories']:g} ({med['ari']:.2f} / {med['ami']:.2f})")
        rows.append(tuple(row))
    return rows


def memory_ratio(records: list[dict], variant: str, datasets, *, base: str = "default") -> float:
    """The median over ``datasets`` of (median memories of ``variant``) / (median memories of ``base``) over seeds,
    from the study's records. Used in chapter 4, § Why it over-splits, and what stops it (and its ledger rows)."""
    ratios = []
    for ds in datasets:
        mem = {v: [r["memories"] for r in records if r["dataset"] == ds and r["variant"] == v] for v in (variant, base)}
        if mem[variant] and mem[base]:
            ratios.append(float(np.median(mem[variant]) / np.median(mem[base])))
    return float(np.median(ratios)) if ratios else float("nan")


def median_score(records: list[dict], dataset: str, variant: str, field: str = "ari") -> float:
    """The median over seeds of ``field`` for one data set and variant of the study (NaN when none ran).
    Used in chapter 4, § Why it over-splits, and what stops it (its ledger rows)."""
    vals = [r[field] for r in records if r["dataset"] == dataset and r["variant"] == variant]
    return float(np.median(vals)) if vals else float("nan")


def load_study(path) -> dict | None:
    """The study's committed artifact (``benchmarks/crp_oversplitting.py``): a dict with ``records`` (one per data set,
    variant and seed), ``parameters``, ``commit``, ``hardware``, ``wall_time_s``; None when the file is absent.
    Used in chapter 4, § Why it over-splits, and what stops it."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None
