"""The clustering benchmark (ambridge.benchmarks; paper §2d): data, metrics against hand computations, the resumable
store (keys that include every setting, resume, a cut-off record redone), failures kept as rows, the stores'
validation, the tables and plot for the chapters, the committed artifact, and the command line."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ambridge import benchmarks as cb
from ambridge.benchmarks.__main__ import load_benchmark_preset, main
from ambridge.store import CorruptStore, RecordStore

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------- helpers


class Fake:
    """A tiny estimator: cluster by the sign of the first feature (or one cluster); counts its fits."""

    fits: list = []

    def __init__(self, n_classes: int, seed: int, *, one_cluster: bool = False, fail: bool = False):
        self.n_classes, self.seed, self.one_cluster, self.fail = n_classes, seed, one_cluster, fail

    def fit_predict(self, X):
        Fake.fits.append(self.seed)
        if self.fail:
            raise RuntimeError("no convergence,\nsecond line")
        if self.one_cluster:
            return np.zeros(len(X), dtype=int)
        return (X[:, 0] > 0).astype(int)


@pytest.fixture(autouse=True)
def _reset_fake():
    Fake.fits = []


def tiny(name: str = "tiny") -> cb.Dataset:
    """Two well separated groups of 10 points in 2-D (labels 0 / 1 by the sign of x)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-3, 0.5, (10, 2)), rng.normal(3, 0.5, (10, 2))])
    return cb.Dataset(name, X, np.repeat([0, 1], 10), 2)


# --------------------------------------------------------------------------------------------------- datasets


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize(
    "name, shape, k",
    [("iris", (150, 4), 3), ("wine", (178, 13), 3), ("breast_cancer", (569, 30), 2), ("digits", (1797, 64), 10),
     ("ecoli", (336, 7), 6), ("segment", (2310, 19), 7), ("libras", (360, 90), 15),
     ("blobs_k5_d2", (500, 2), 5), ("blobs_k10_d16", (1000, 16), 10), ("blobs_k3_d7", (300, 7), 3)],
)
def test_datasets_load_standardized_without_network(no_network, name, shape, k):
    data = cb.load_dataset(name)
    assert data.name == name and data.X.shape == shape and data.y.shape == (shape[0],) and data.n_classes == k
    assert data.X.dtype == np.float64 and np.unique(data.y).size == k
    np.testing.assert_allclose(data.X.mean(axis=0), 0, atol=1e-12)
    std = data.X.std(axis=0)
    assert np.all(np.isclose(std, 1) | np.isclose(std, 0))  # digits' blank border pixels stay 0
    assert cb.DATASETS == ("iris", "wine", "breast_cancer", "digits", "ecoli", "segment", "libras", "blobs_k5_d2",
                           "blobs_k10_d16")


def test_synthetic_data_fixed_unless_asked():
    a, b = cb.load_dataset("blobs_k5_d2"), cb.load_dataset("blobs_k5_d2")
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.X, cb.load_dataset("blobs_k5_d2", seed=cb.DATASET_SEED).X)
    assert not np.allclose(a.X, cb.load_dataset("blobs_k5_d2", seed=1).X)
    assert np.bincount(a.y).tolist() == [100] * 5


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'; valid: iris, wine, breast_cancer, digits"):
        cb.load_dataset("mnist")


# --------------------------------------------------------------------------------------------------- metrics


def rand_by_pairs(a, b) -> float:
    """Rand index from its definition: the fraction of point pairs on which the two partitions agree."""
    pairs = list(itertools.combinations(range(len(a)), 2))
    return sum((a[i] == a[j]) == (b[i] == b[j]) for i, j in pairs) / len(pairs)


def silhouette_by_loops(X, labels) -> float:
    """Mean over points of (b − a) / max(a, b): a = mean distance within its cluster, b = to the nearest other."""
    values = []
    for i in range(len(X)):
        d = np.linalg.norm(X - X[i], axis=1)
        own = labels == labels[i]
        if own.sum() == 1:
            values.append(0.0)
            continue
        a = d[own].sum() / (own.sum() - 1)
        b = min(d[labels == c].mean() for c in set(labels) if c != labels[i])
        values.append((b - a) / max(a, b))
    return float(np.mean(values))


def calinski_harabasz_by_formula(X, labels) -> float:
    """[tr(B)/(k − 1)] / [tr(W)/(n − k)]: between- and within-cluster dispersions."""
    n, ks = len(X), sorted(set(labels))
    mean = X.mean(axis=0)
    between = sum((labels == c).sum() * np.sum((X[labels == c].mean(0) - mean) ** 2) for c in ks)
    within = sum(np.sum((X[labels == c] - X[labels == c].mean(0)) ** 2) for c in ks)
    return (between / (len(ks) - 1)) / (within / (n - len(ks)))


def test_metrics_against_hand_computations():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 3))
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0])
    s = cb.score_clustering(X, y, labels)
    assert set(s) == set(cb.METRICS) | {"n_clusters_found", "note"} and s["n_clusters_found"] == 3
    assert s["rand"] == pytest.approx(rand_by_pairs(y, labels))
    assert s["silhouette"] == pytest.approx(silhouette_by_loops(X, labels))
    assert s["calinski_harabasz"] == pytest.approx(calinski_harabasz_by_formula(X, labels))
    # adjusted Rand from the contingency table (Hubert & Arabie): (index − expected) / (max − expected)
    table = pd.crosstab(y, labels).to_numpy()
    comb = lambda v: v * (v - 1) / 2  # noqa: E731
    index, rows, cols = comb(table).sum(), comb(table.sum(1)).sum(), comb(table.sum(0)).sum()
    expected = rows * cols / comb(len(y))
    assert s["adjusted_rand"] == pytest.approx((index - expected) / ((rows + cols) / 2 - expected))


def test_perfect_and_renamed_labels():
    data = tiny()
    perfect = cb.score_clustering(data.X, data.y, data.y)
    for m in cb.EXTERNAL_METRICS:
        assert perfect[m] == pytest.approx(1.0)
    renamed = cb.score_clustering(data.X, data.y, np.where(data.y == 0, 7, 3))  # other names, same partition
    for m in cb.METRICS:
        assert renamed[m] == pytest.approx(perfect[m])


def test_one_cluster_or_all_singletons_give_nan_internal_scores():
    data = tiny()
    one = cb.score_clustering(data.X, data.y, np.zeros(20, dtype=int))
    assert all(math.isnan(one[m]) for m in cb.INTERNAL_METRICS)
    assert one["adjusted_rand"] == pytest.approx(0.0) and one["n_clusters_found"] == 1
    assert one["note"] == "internal scores undefined: 1 cluster for 20 points"
    singletons = cb.score_clustering(data.X, data.y, np.arange(20))
    assert all(math.isnan(singletons[m]) for m in cb.INTERNAL_METRICS) and "20 clusters" in singletons["note"]
    with pytest.raises(ValueError, match="shape"):
        cb.score_clustering(data.X, data.y, np.zeros(19))


# --------------------------------------------------------------------------------------------------- methods


def test_methods_registry_and_sklearn_methods_cluster_iris():
    assert list(cb.METHODS) == ["K-means", "GMM", "DP-GMM", "DP-GMM (sklearn default)", "CLAM", "CLAM+ELBO",
                                "CLAM+CRP"]
    assert cb.METHODS["K-means"](3, 5).n_clusters == 3 and cb.METHODS["K-means"](3, 5).random_state == 5
    assert cb.METHODS["GMM"](4, 0).n_components == 4
    dp = cb.METHODS[cb.DP_GMM_DEFAULT](3, 0)
    assert dp.n_components == 10 and dp.weight_concentration_prior_type == "dirichlet_process"
    assert dp.weight_concentration_prior is None  # scikit-learn's default, 1 / n_components
    tuned = cb.METHODS["DP-GMM"](3, 4)
    assert isinstance(tuned, cb.SelectedDPGMM) and tuned.random_state == 4 and tuned.n_classes == 3
    assert cb.dp_gmm_components(8) == 16
    runs = cb.run_benchmark(["iris"], ["K-means", "GMM"], [0])
    assert (runs["error"] == "").all() and (runs["adjusted_rand"] > 0.5).all()


# --------------------------------------------------------------------------------------------------- runner


def fake_methods(**kwargs):
    return {"fake": lambda k, seed: Fake(k, seed, **kwargs)}


def test_run_returns_one_row_per_run_in_order(tmp_path):
    runs = cb.run_benchmark([tiny("a"), tiny("b")], fake_methods(), 3, out=tmp_path)
    assert tuple(runs.columns) == cb.COLUMNS and len(runs) == 6
    assert list(zip(runs["dataset"], runs["seed"])) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert (runs["adjusted_rand"] == 1.0).all() and (runs["n_clusters_found"] == 2).all()
    assert runs["seed"].dtype == np.int64 and (runs["fit_time_s"] >= 0).all()
    records = list(RecordStore(tmp_path / cb.RUNS_FILE))
    assert [r["key"].split("/")[:3] for r in records][:2] == [["a", "fake", "seed=0"], ["a", "fake", "seed=1"]]
    assert records[0]["settings"] == {"estimator": "Fake", "params": {"fail": "False", "n_classes": "2",
                                                                       "one_cluster": "False", "seed": "0"}}
    assert cb.read_meta(tmp_path) is None  # the run record is the command line's (book machinery)
    summary = cb.benchmark_summary(runs, fake_methods())
    assert summary["runs"] == 6 and summary["failed_runs"] == 0 and "Fake" in summary["estimators"]["fake"]
    pd.testing.assert_frame_equal(cb.load_results(tmp_path), runs)


class Interrupt(BaseException):
    pass


def test_resume_skips_finished_runs_and_redoes_a_torn_row(tmp_path):
    def stop_after(n):
        def factory(k, seed):
            if len(Fake.fits) == n:
                raise Interrupt  # the machine went away during the fit
            return Fake(k, seed)

        return {"fake": factory}

    with pytest.raises(Interrupt):
        cb.run_benchmark([tiny()], stop_after(3), 5, out=tmp_path)
    assert len(Fake.fits) == 3 and len(cb.load_results(tmp_path)) == 3
    path = tmp_path / cb.RUNS_FILE
    path.write_text(path.read_text()[:-10])  # the last record cut off mid-write
    Fake.fits = []
    runs = cb.run_benchmark([tiny()], fake_methods(), 5, out=tmp_path)
    assert Fake.fits == [2, 3, 4] and list(runs["seed"]) == [0, 1, 2, 3, 4]
    Fake.fits = []
    cb.run_benchmark([tiny()], fake_methods(), 5, out=tmp_path)
    assert Fake.fits == []  # all done
    cb.run_benchmark([tiny()], fake_methods(), 5, out=tmp_path, resume=False)
    assert len(Fake.fits) == 5 and len(cb.load_results(tmp_path)) == 5


def test_failures_and_single_clusters_are_rows_not_crashes(tmp_path):
    methods = {**fake_methods(fail=True), "one": lambda k, seed: Fake(k, seed, one_cluster=True)}
    runs = cb.run_benchmark([tiny()], methods, 2, out=tmp_path)
    failed = runs[runs["method"] == "fake"]
    assert (failed["error"] == "RuntimeError: no convergence, second line").all()
    assert failed[list(cb.METRICS)].isna().all().all() and failed["n_clusters_found"].isna().all()
    one = runs[runs["method"] == "one"]
    assert (one["error"] == "").all() and one["silhouette"].isna().all() and (one["ami"] == 0).all()
    assert (one["note"] == "internal scores undefined: 1 cluster for 20 points").all()
    summary = cb.benchmark_summary(runs, methods)
    assert summary["failed_runs"] == 2 and summary["runs_with_undefined_internal_scores"] == 2
    assert cb.missing_runs(runs, ["tiny"], ["fake", "one"], 2) == [("tiny", "fake", 0), ("tiny", "fake", 1)]
    Fake.fits = []
    cb.run_benchmark([tiny()], fake_methods(), 2, out=tmp_path)  # other settings (fail=False): new keys, refitted
    assert Fake.fits == [0, 1]
    assert (cb.load_results(tmp_path)["error"] == "").all() and len(cb.load_results(tmp_path)) == 4


class Flaky(Fake):
    """Fails while the class says so: the same settings (its attributes) whether it fails or not."""

    broken = True

    def fit_predict(self, X):
        if Flaky.broken:
            Fake.fits.append(self.seed)
            raise RuntimeError("flaky")
        return super().fit_predict(X)


def test_failed_runs_are_kept_unless_retried(tmp_path):
    Flaky.broken = True
    assert (cb.run_benchmark([tiny()], {"flaky": Flaky}, 2, out=tmp_path)["error"] == "RuntimeError: flaky").all()
    Flaky.broken, Fake.fits = False, []
    assert (cb.run_benchmark([tiny()], {"flaky": Flaky}, 2, out=tmp_path)["error"] != "").all() and Fake.fits == []
    runs = cb.run_benchmark([tiny()], {"flaky": Flaky}, 2, out=tmp_path, retry_failed=True)
    assert Fake.fits == [0, 1] and (runs["error"] == "").all() and (cb.load_results(tmp_path)["error"] == "").all()


def test_a_record_is_reused_only_under_the_same_data_and_settings(tmp_path):
    """The key holds every input that can change a run: a changed setting of the estimator, or other data under the
    same name, is refitted, never read back."""
    cb.run_benchmark([tiny()], fake_methods(), 1, out=tmp_path)
    Fake.fits = []
    cb.run_benchmark([tiny()], fake_methods(), 1, out=tmp_path)
    assert Fake.fits == []  # same data, same settings: read back
    cb.run_benchmark([tiny()], {"fake": lambda k, seed: Fake(k, seed, one_cluster=True)}, 1, out=tmp_path)
    assert Fake.fits == [0]  # one setting changed
    moved = tiny()
    moved = cb.Dataset("tiny", moved.X + 1e-9, moved.y, 2)
    cb.run_benchmark([moved], fake_methods(), 1, out=tmp_path)
    assert Fake.fits == [0, 0]  # the same name, other data
    assert cb.load_results(tmp_path)["n_clusters_found"].tolist() == [2]  # the latest record of the run


def test_warnings_are_recorded_not_printed(capsys):
    import warnings

    class Noisy(Fake):
        def fit_predict(self, X):
            warnings.warn("did not converge", RuntimeWarning)
            return super().fit_predict(X)

    runs = cb.run_benchmark([tiny()], {"noisy": Noisy}, 1)
    assert runs["warnings"].iloc[0] == "RuntimeWarning: did not converge"
    assert capsys.readouterr().err == ""


def _record(**changes) -> str:
    row = {"key": "iris/K-means/seed=0/x", "dataset": "iris", "method": "K-means", "seed": 0, "n_samples": 150,
           "n_features": 4, "n_classes": 3, "n_clusters_found": 3, "fit_time_s": 0.1,
           **{m: 0.5 for m in cb.METRICS}, "note": "", "warnings": "", "error": ""}
    row.update(changes)
    return json.dumps(row) + "\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"key": "a", "b": 1}\n', "record 1 .* is not a clustering-benchmark run: it lacks dataset"),
        ("not json\n" + _record(), "line 1"),
        (_record(seed="zero"), r"row 1: column `seed` must be an integer, got 'zero'"),
        (_record(rand="high"), r"row 1: column `rand` must be a number, got 'high'"),
    ],
)
def test_corrupt_or_foreign_store_is_a_clear_error(tmp_path, text, message):
    (tmp_path / cb.RUNS_FILE).write_text(text)
    with pytest.raises(ValueError, match=message):
        cb.load_results(tmp_path)
    with pytest.raises(ValueError, match=message):
        cb.run_benchmark([tiny()], fake_methods(), 1, out=tmp_path)
    assert Fake.fits == []


def test_bad_arguments_fail_before_any_fit(tmp_path):
    for kwargs, message in [
        ({"datasets": ["iris", "mnist"]}, "unknown data set 'mnist'"),
        ({"methods": ["K-means", "Kmeans"]}, "unknown method 'Kmeans'; valid: K-means, GMM"),
        ({"seeds": 0}, "at least 1"),
        ({"seeds": [1, 1]}, "repeated seeds"),
    ]:
        args = {"datasets": ["iris"], "methods": ["K-means"], "seeds": 1, **kwargs}
        with pytest.raises(ValueError, match=message):
            cb.run_benchmark(args["datasets"], args["methods"], args["seeds"], out=tmp_path)
    assert not (tmp_path / cb.RUNS_FILE).exists()
    with pytest.raises(FileNotFoundError, match="no clustering-benchmark results"):
        cb.load_results(tmp_path)


# --------------------------------------------------------------------------------------------------- for chapters


def hand_table() -> pd.DataFrame:
    rows = []
    for method, ari, db in [("K-means", 0.9, 1.0), ("GMM", 0.5, 0.4)]:
        for seed in range(3):
            row = dict.fromkeys(cb.COLUMNS, "")
            row.update(dataset="iris", method=method, seed=seed, n_samples=150, n_features=4, n_classes=3,
                       n_clusters_found=3, fit_time_s=0.1, **{m: 0.5 for m in cb.METRICS})
            row.update(adjusted_rand=ari + 0.01 * seed, davies_bouldin=db)
            rows.append(row)
    rows[-1].update(error="ValueError: x", **{m: math.nan for m in cb.METRICS}, n_clusters_found=None)
    return cb.runs_frame(rows, "hand table")


def test_summary_table_medians_and_best_marked():
    header, rows = cb.summary_table(hand_table())
    assert header[:4] == ["dataset", "method", "Rand", "adjusted Rand"] and header[-4:] == ["K", "K found", "runs",
                                                                                             "notes"]
    kmeans, gmm = rows
    col = header.index
    assert kmeans[col("adjusted Rand")] == "**0.91**" and gmm[col("adjusted Rand")] == "0.505"  # median of 2 seeds
    assert kmeans[col("Davies–Bouldin")] == "1" and gmm[col("Davies–Bouldin")] == "**0.4**"  # lower is better
    assert kmeans[col("Rand")] == gmm[col("Rand")] == "**0.5**"  # a tie: both marked
    assert gmm[col("runs")] == "3" and gmm[col("notes")] == "1 failed" and kmeans[col("notes")] == ""
    from ambridge.report import markdown_table

    text = markdown_table(header, rows)
    assert "| iris | K-means |" in getattr(text, "data", text)


def test_long_format_and_violin_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = hand_table()
    tidy = cb.long_format(df)
    assert list(tidy.columns) == ["dataset", "method", "seed", "metric", "value"]
    assert len(tidy) == 5 * len(cb.METRICS)  # the failed run is left out
    fig = cb.violin_plot(df, "iris")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 7
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["K-means", "GMM"]
    plt.close(fig)
    with pytest.raises(ValueError, match="no results for data set 'wine'"):
        cb.violin_plot(df, "wine")


# --------------------------------------------------------------------------------------------------- command line


def test_presets_are_valid_and_paper_covers_everything():
    quick = load_benchmark_preset("quick")
    paper = load_benchmark_preset("paper")
    assert paper["datasets"] == list(cb.DATASETS) and paper["methods"] == list(cb.METHODS) and paper["seeds"] >= 10
    assert paper["out"] == "chapters/artifacts/clustering_benchmark"
    assert set(quick["datasets"]) < set(cb.DATASETS) and quick["methods"] == list(cb.METHODS)


def test_cli_runs_a_subset_and_resumes(tmp_path, capsys):
    argv = ["--preset", "quick", "--datasets", "iris", "blobs_k5_d2", "--methods", "K-means", "--seeds", "2",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # Runs finish in any order when they run in parallel: each of the four is reported once, numbered 1 to 4.
    for name in ("iris", "blobs_k5_d2"):
        for seed in (0, 1):
            assert printed.count(f"] {name} K-means seed {seed}: ARI") == 1, (name, seed)
    assert all(f"[{i}/4] " in printed for i in range(1, 5)) and "| iris | K-means |" in printed
    runs = cb.load_results(tmp_path)
    assert len(runs) == 4 and not cb.missing_runs(runs, ["iris", "blobs_k5_d2"], ["K-means"], 2)
    meta = cb.read_meta(tmp_path)
    assert meta["parameters"]["preset"] == "quick" and meta["parameters"]["seeds"] == [0, 1]
    assert meta["runs"] == 4 and meta["failed_runs"] == 0 and {"commit", "hardware", "wall_time_s"} <= set(meta)
    assert main([*argv, "--quiet"]) == 0 and len(cb.load_results(tmp_path)) == 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "CLAM+DP"], "unknown method 'CLAM+DP'; valid: K-means, GMM, DP-GMM, DP-GMM (sklearn default), "
                                   "CLAM, CLAM+ELBO, CLAM+CRP"),
        (["--workers", "0"], "workers 0: must be an integer at least 1"),
        (["--datasets", "mnist"], "unknown data set 'mnist'"),
        (["--preset", "huge"], "no preset 'huge'"),
        (["--seeds", "0"], "at least 1"),
    ],
)
def test_cli_usage_errors(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- integration


def test_clam_family_runs_through_the_harness(tmp_path):
    memories = pytest.importorskip("ambridge.memories")
    missing = [name for name in ("CLAM", "CLAMELBO", "CLAMCRP") if not hasattr(memories, name)]
    if missing:
        pytest.skip(f"ambridge.memories does not have {', '.join(missing)} yet")
    data = cb.load_dataset("blobs_k3_d2")
    runs = cb.run_benchmark([data], ["CLAM", "CLAM+ELBO", "CLAM+CRP"], [0], out=tmp_path)
    assert (runs["error"] == "").all(), runs["error"].tolist()
    assert (runs["n_clusters_found"] >= 1).all() and runs["adjusted_rand"].notna().all()


# --------------------------------------------------------------------------------------------- chapter helpers


def test_dominance_median_scores_and_describe_run():
    df = hand_table()
    dom = cb.dominance(df)
    assert dom.winners[("iris", "adjusted_rand")] == ["K-means"] and dom.winners[("iris", "ami")] == ["K-means", "GMM"]
    assert dom.counts == {"K-means": 4, "GMM": 3, **{m: 0 for m in list(cb.METHODS)[2:]}}  # GMM: a tie off ARI
    assert dom.always == ["K-means"] and dom.tally().startswith("K-means 4, GMM 3, DP-GMM 0")  # ties count
    header, rows = dom.table(["iris"])
    assert header == ["data set", "best ARI", "best AMI", "best silhouette"]
    assert rows == [("iris", "K-means", "K-means, GMM", "K-means, GMM")]
    assert cb.dominance(df, ("davies_bouldin",)).winners[("iris", "davies_bouldin")] == ["GMM"]  # lower is better
    med = cb.median_scores(df, "adjusted_rand")
    assert med.loc["iris", "K-means"] == 0.91 and med.loc["iris", "GMM"] == 0.505
    text = cb.describe_run(df, None, "here")
    assert text.startswith("here: 6 runs, 1 data sets x 2 methods x 3 seeds; failed or missing: ")
    assert "no benchmark.json" in text
    meta = {"parameters": {"preset": "paper"}, "hardware": "a CPU", "wall_time_s": 600.0, "commit": "0123456789abc"}
    assert text.split("\n")[0] + "\nmade by paper preset on a CPU; wall time 10 min; commit 0123456789" == \
        cb.describe_run(df, meta, "here")
    loaded = cb.describe_run(df, {**meta, "timing": "shared machine, under load"}, "here")
    assert "wall time 10 min (shared machine, under load); commit 0123456789" in loaded


def test_cluster_count_table():
    df = hand_table()
    df.loc[df["method"] == "GMM", "n_clusters_found"] = [2, 4, pd.NA]
    header, rows = cb.cluster_count_table(df, ("GMM", "K-means", "CLAM+CRP"))
    assert header == ["data set", "classes", "GMM: clusters, median (range over seeds)", "K-means", "CLAM+CRP"]
    assert rows == [("iris", 3, "3 (2–4)", "3 (3–3)", "–")]


# --------------------------------------------------------------------------------------------- the artifact


ARTIFACT = ROOT / "chapters" / "artifacts" / "clustering_benchmark"


def test_the_committed_artifact_reads_and_its_keys_are_todays():
    """The committed full run reads as 630 runs (9 data sets x 7 methods x 10 seeds), and every record's key is the
    key the paper preset computes today from the (subsampled) data and the estimators' settings, so
    ``--preset paper`` resumes from it instead of refitting."""
    runs = cb.load_results(ARTIFACT)
    assert len(runs) == 630 and (runs["error"] == "").all() and runs["seed"].nunique() == 10
    assert cb.datasets_in(runs) == list(cb.DATASETS) and set(runs["method"]) == set(cb.METHODS)
    cap = load_benchmark_preset("paper")["max_samples"]
    assert runs["n_samples"].max() == cap
    digests = {name: cb.data_digest(cb.load_dataset(name, max_samples=cap)) for name in cb.DATASETS}
    for record in RecordStore(ARTIFACT / cb.RUNS_FILE):
        estimator = cb.METHODS[record["method"]](record["n_classes"], record["seed"])
        key = cb.run_key(record["dataset"], record["method"], record["seed"], digests[record["dataset"]],
                         cb.estimator_settings(estimator))
        assert key == record["key"], record["key"]


def test_a_rerun_into_the_artifact_reads_it_back(tmp_path):
    shutil.copy(ARTIFACT / cb.RUNS_FILE, tmp_path / cb.RUNS_FILE)
    runs = cb.run_benchmark(["iris", "wine"], ["K-means", "CLAM+CRP"], [0, 1], out=tmp_path)
    assert len(RecordStore(tmp_path / cb.RUNS_FILE)) == 630  # nothing refitted: every key was there
    full = cb.load_results(ARTIFACT).set_index(["dataset", "method", "seed"])
    wanted = [(d, m, s) for d in ("iris", "wine") for m in ("K-means", "CLAM+CRP") for s in (0, 1)]
    pd.testing.assert_frame_equal(runs, full.loc[wanted].reset_index()[list(cb.COLUMNS)])


# --------------------------------------------------------------------------------------------- the module layout


def test_importing_the_benchmark_loads_neither_pandas_seaborn_nor_the_book():
    code = ("import sys, ambridge.benchmarks; "
            "print(sorted(m for m in ('pandas', 'seaborn', 'ambridge.book') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["ambridge.benchmarks", "ambridge.cluster_benchmark"])
def test_both_command_lines_run(module, tmp_path):
    done = subprocess.run([sys.executable, "-m", module, "--methods", "K-means", "--datasets", "iris", "--seeds", "1",
                           "--out", str(tmp_path), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "1 runs, 0 failed" in done.stdout and cb.read_meta(tmp_path)["runs"] == 1


def test_the_old_module_is_an_alias():
    from ambridge import cluster_benchmark as old

    assert old.run_benchmark is cb.run_benchmark and old.load_dataset is cb.load_dataset and old.main is main
