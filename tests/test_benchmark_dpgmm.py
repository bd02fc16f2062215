"""The tuned DP-GMM (ambridge.benchmarks.dpgmm.SelectedDPGMM): its choice is the held-out likelihood's argmax
(checked against independent scikit-learn fits), it recovers a well-separated mixture without binding its
truncation, it doubles a binding truncation, and it reports when the truncation still binds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import BayesianGaussianMixture
from sklearn.model_selection import train_test_split

from ambridge.benchmarks import METHODS, SelectedDPGMM


def blobs(k=3, n=60, seed=0):
    X, y = make_blobs(n_samples=k * n, centers=k, cluster_std=0.5, center_box=(-10, 10), random_state=seed)
    return X, y


def test_choice_is_the_argmax_of_independent_held_out_scores():
    X, y = blobs()
    model = SelectedDPGMM(3, concentrations=(0.01, 10.0), covariance_types=("full", "spherical"),
                          random_state=1).fit(X)
    fit_part, held = train_test_split(X, test_size=0.2, random_state=1)
    for (gamma, cov), score in model.heldout_scores_.items():
        ref = BayesianGaussianMixture(n_components=20, weight_concentration_prior_type="dirichlet_process",
                                      weight_concentration_prior=gamma, covariance_type=cov, reg_covar=1e-3,
                                      max_iter=500, random_state=1).fit(fit_part)
        assert score == pytest.approx(ref.score(held))
    best = max(model.heldout_scores_, key=model.heldout_scores_.get)
    assert (model.concentration_, model.covariance_type_) == best and len(model.heldout_scores_) == 4
    assert model.n_clusters_ == 3 and not model.truncation_binds_ and model.truncation_ == 20
    assert adjusted_rand_score(y, model.labels_) == pytest.approx(1.0)
    assert model.details_.endswith("truncation=20; clusters=3; binds=no")


def test_a_binding_truncation_is_doubled_then_reported():
    X, _ = blobs(k=5)
    one = dict(concentrations=(1.0,), covariance_types=("spherical",), random_state=0)
    grown = SelectedDPGMM(5, truncation=2, max_truncation=8, **one).fit(X)
    assert grown.truncation_ == 8 and grown.n_clusters_ == 5 and not grown.truncation_binds_
    capped = SelectedDPGMM(5, truncation=2, max_truncation=3, **one).fit(X)
    assert capped.truncation_ == 2 and capped.n_clusters_ == 2 and capped.truncation_binds_
    assert capped.details_.endswith("binds=yes")


def test_parameters_settings_and_errors():
    model = METHODS["DP-GMM"](4, 7)
    params = model.get_params()
    assert params["n_classes"] == 4 and params["random_state"] == 7 and params["truncation"] is None
    assert repr(model).startswith("SelectedDPGMM(n_classes=4,")
    X, _ = blobs()
    with pytest.raises(ValueError, match="holdout"):
        SelectedDPGMM(3, holdout=1.5).fit(X)
    labels = SelectedDPGMM(3, concentrations=(1.0,), covariance_types=("spherical",), random_state=0).fit_predict(X)
    assert labels.shape == (len(X),) and np.unique(labels).size == 3


def test_dp_gmm_table_reads_the_choices_and_the_binding():
    from ambridge import benchmarks as cb

    rows = []
    for seed, (details, found_d) in enumerate([("concentration=0.01; covariance=spherical; truncation=20; clusters=6; "
                                                "binds=no", 10),
                                               ("concentration=1; covariance=spherical; truncation=40; clusters=40; "
                                                "binds=yes", 9),
                                               ("concentration=0.01; covariance=spherical; truncation=20; clusters=5; "
                                                "binds=no", 10)]):
        for method, found, det, ari in (("DP-GMM", int(details.split("clusters=")[1].split(";")[0]), details, 0.8),
                                        (cb.DP_GMM_DEFAULT, found_d, "", 0.4)):
            row = dict.fromkeys(cb.COLUMNS, "")
            row.update(dataset="wine", method=method, seed=seed, n_samples=178, n_features=13, n_classes=3,
                       n_clusters_found=found, fit_time_s=0.1, details=det, **{m: ari for m in cb.METRICS})
            rows.append(row)
    header, table = cb.dp_gmm_table(cb.runs_frame(rows, "hand"))
    assert header[:3] == ["data set", "classes", "chosen γ, covariance"]
    assert table == [["wine", 3, "0.01, spherical", "6 (5–40) / 20–40", "1/3", "10 (9–10) / 10", "2/3", "0.80",
                      "0.40"]]
