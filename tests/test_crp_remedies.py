"""CLAM+CRP's remedies for over-splitting: diagonal memories (collapsed Normal–Gamma), the merge step, the
predictive density used for held-out selection. Each against an independent formula (scipy) or an invariant."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import logsumexp

from ambridge.checks import ParameterError
from ambridge.memories import CLAMCRP
from ambridge.memories._collapsed import collapsed_log_joint
from ambridge.memories.clamcrp import DIAG_PRIOR_SHAPE
from ambridge.memories.crp import cluster_log_marginal, crp_log_prior
from ambridge.memories.marginals import (
    NormalGamma,
    isotropic_log_marginal,
    normal_gamma_log_marginal,
    normal_gamma_log_predictive,
    normal_gamma_variance,
    statistics,
)
from ambridge.memories.merge import greedy_merge, merge_prior_gain

RNG = np.random.default_rng(0)


def _blobs(n_per=40, d=3, k=4, seed=0, scale=None):
    rng = np.random.default_rng(seed)
    scale = np.ones(d) if scale is None else np.asarray(scale)
    means = 4 * rng.standard_normal((k, d))
    return np.concatenate([m + scale * rng.standard_normal((n_per, d)) for m in means])


def _stats_of(points):
    return len(points), points.sum(0), (points**2).sum(0)


def test_isotropic_marginal_from_statistics_equals_the_points_form():
    pts = RNG.normal(size=(7, 4))
    got = isotropic_log_marginal(*_stats_of(pts), variance=0.3, prior_variance=2.0, prior_mean=np.full(4, 0.5))
    assert got == pytest.approx(cluster_log_marginal(pts, 0.3, 2.0, np.full(4, 0.5)), rel=1e-12)


def test_normal_gamma_marginal_against_numerical_integration():
    x = np.array([0.3, -1.2, 0.8])
    m0, kappa, a0, b0 = 0.2, 0.7, 1.5, 0.9
    mu = np.linspace(-12, 12, 1501)[:, None]
    log_tau = np.linspace(-14, 6, 1501)[None, :]
    tau = np.exp(log_tau)
    log_joint = (stats.norm.logpdf(x[:, None, None], mu, 1 / np.sqrt(tau)).sum(0)  # p(x | mu, tau)
                 + stats.norm.logpdf(mu, m0, 1 / np.sqrt(kappa * tau)) + stats.gamma.logpdf(tau, a0, scale=1 / b0)
                 + log_tau)  # d tau = tau d log tau
    value = integrate.trapezoid(integrate.trapezoid(np.exp(log_joint), log_tau[0], axis=1), mu[:, 0])
    prior = NormalGamma(np.array([m0]), kappa, a0, b0)
    got = normal_gamma_log_marginal(3, x.sum()[None], (x**2).sum()[None], prior)
    assert got == pytest.approx(math.log(value), abs=1e-6)


def test_normal_gamma_predictive_is_scipys_student_t_and_the_chain_rule_of_the_marginal():
    pts, x_new = RNG.normal(size=(6, 3)), RNG.normal(size=3)
    prior = NormalGamma(np.array([0.1, -0.2, 0.0]), 0.5, 1.0, 0.8)
    kn, an = 0.5 + 6, 1.0 + 3
    bn = 0.8 + 0.5 * ((pts - pts.mean(0)) ** 2).sum(0) + 0.5 * 6 * (pts.mean(0) - prior.mean) ** 2 / (2 * kn)
    mn = (0.5 * prior.mean + pts.sum(0)) / kn
    want = stats.t.logpdf(x_new, 2 * an, loc=mn, scale=np.sqrt(bn * (kn + 1) / (an * kn))).sum()
    n, s, t = _stats_of(pts)
    got = normal_gamma_log_predictive(x_new, np.array([n]), s[None], t[None], prior)[0]
    assert got == pytest.approx(want, rel=1e-12)
    both = np.vstack([pts, x_new])
    chain = normal_gamma_log_marginal(*_stats_of(both), prior) - normal_gamma_log_marginal(n, s, t, prior)
    assert got == pytest.approx(chain, rel=1e-10)


def test_merge_prior_gain_is_the_change_of_the_eppf():
    counts = np.array([5, 3, 9, 1])
    for alpha, d in [(1.0, 0.0), (0.3, 0.4), (7.0, 0.2)]:
        merged = np.array([5 + 9, 3, 1])
        want = crp_log_prior(merged, alpha, d) - crp_log_prior(counts, alpha, d)
        assert merge_prior_gain(5, 9, 4, log_alpha=math.log(alpha), discount=d) == pytest.approx(want, rel=1e-12)


def test_greedy_merge_only_raises_the_evidence_by_its_gains():
    x = _blobs(seed=1)
    labels = np.arange(x.shape[0]) // 10  # 16 memories splitting 4 clusters
    s2, s02, m0 = 1.0, 16.0, x.mean(0)

    def evidence(lab):
        k = lab.max() + 1
        return crp_log_prior(np.bincount(lab), 1.0) + sum(cluster_log_marginal(x[lab == j], s2, s02, m0) for j in range(k))

    marginal = lambda c, s, t: isotropic_log_marginal(c, s, t, variance=s2, prior_variance=s02, prior_mean=m0)  # noqa: E731
    out = greedy_merge(x, labels, marginal, log_alpha=0.0)
    assert out.gains and min(out.gains) > 0
    assert evidence(out.labels) == pytest.approx(evidence(labels) + sum(out.gains), rel=1e-10)
    assert out.labels.max() + 1 == 4  # the four clusters, each whole again


@pytest.mark.parametrize("covariance", ["spherical", "diag"])
def test_merging_never_lowers_the_evidence(covariance):
    x = _blobs(seed=2, scale=[0.4, 1.0, 2.5])
    kw = dict(alpha=1.0, variance=0.3, prior_variance=16.0, covariance=covariance, random_state=0)
    plain, merged = CLAMCRP(**kw).fit(x), CLAMCRP(merge=True, **kw).fit(x)
    assert merged.log_evidence_ >= plain.log_evidence_ - 1e-9
    assert plain.n_merges_ == 0
    if covariance == "spherical":  # σ² too small for these clusters: ICM leaves a split that merging removes
        assert merged.n_merges_ > 0 and merged.log_evidence_ > plain.log_evidence_


def test_collapsed_log_joint_is_the_evidence_with_the_point_moved():
    x = _blobs(seed=3)
    m = CLAMCRP(alpha=0.7, discount=0.3, variance=0.5, prior_variance=16.0, covariance="diag", random_state=0).fit(x)
    i, lab = 17, m.labels_.copy()
    rest = np.delete(np.arange(x.shape[0]), i)
    k = m.n_memories_
    stats_rest = statistics(x[rest], lab[rest], k)
    assert (stats_rest[0] > 0).all()
    joint = collapsed_log_joint(x[i:i + 1], stats_rest, m._prior, log_alpha=math.log(0.7), discount=0.3)[0]
    evidence = []
    for option in range(k + 1):
        lab[i] = option
        evidence.append(crp_log_prior(np.bincount(lab), 0.7, 0.3)
                        + normal_gamma_log_marginal(*statistics(x, lab, lab.max() + 1), m._prior).sum())
    np.testing.assert_allclose(joint - joint[0], np.array(evidence) - evidence[0], atol=1e-8)
    assert int(np.argmax(joint)) == m.labels_[i]  # converged: the point already sits at its best option


def test_collapsed_passes_never_lower_the_evidence():
    x = _blobs(seed=4, k=6, scale=[0.5, 1.5, 1.0])
    curve = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for passes in range(1, 6):
            m = CLAMCRP(variance=0.5, prior_variance=16.0, covariance="diag", max_iter=passes, random_state=5).fit(x)
            curve.append(m.log_evidence_)
    assert all(b >= a - 1e-9 for a, b in zip(curve, curve[1:]))


def test_diagonal_variances_are_the_posterior_means_of_each_memorys_points():
    x = _blobs(seed=5, scale=[0.3, 1.0, 3.0])
    m = CLAMCRP(alpha=1.0, variance=0.8, prior_variance=16.0, covariance="diag", random_state=0).fit(x)
    kappa, a0, b0 = 0.8 / 16.0, DIAG_PRIOR_SHAPE, DIAG_PRIOR_SHAPE * 0.8
    for k in range(m.n_memories_):
        pts = x[m.labels_ == k]
        n, mean = len(pts), pts.mean(0)
        rate = b0 + 0.5 * n * pts.var(0) + kappa * n * (mean - x.mean(0)) ** 2 / (2 * (kappa + n))
        np.testing.assert_allclose(m.variances_[k], rate / (a0 + n / 2 - 1), rtol=1e-10)
        np.testing.assert_allclose(m.memories_[k], (kappa * x.mean(0) + pts.sum(0)) / (kappa + n), rtol=1e-10)


def test_with_a_vanishing_prior_the_variance_is_the_weighted_variance_of_the_points():
    pts = RNG.normal(size=(50, 3)) * [0.2, 1.0, 4.0]
    prior = NormalGamma(np.zeros(3), 1e-12, 1.0, 1e-12)
    got = normal_gamma_variance(*(np.asarray(v)[None] for v in _stats_of(pts)), prior)[0]
    np.testing.assert_allclose(got, pts.var(0), rtol=1e-9)


def test_diagonal_memories_follow_elongated_clusters_where_shared_balls_split_them():
    x = _blobs(n_per=60, seed=6, scale=[0.2, 0.2, 3.0])  # 4 clusters elongated along the last axis
    kw = dict(alpha=1.0, random_state=0)
    assert CLAMCRP(covariance="diag", **kw).fit(x).n_memories_ <= 5 < CLAMCRP(**kw).fit(x).n_memories_


@pytest.mark.parametrize("covariance", ["spherical", "diag"])
def test_score_samples_is_the_predictive_mixture_density(covariance):
    x, q = _blobs(seed=7), RNG.normal(size=(5, 3)) * 3
    m = CLAMCRP(alpha=0.5, variance=0.6, prior_variance=9.0, covariance=covariance, normaliser=False,
                random_state=0).fit(x)
    n, m0 = x.shape[0], x.mean(0)
    terms = []
    for k in range(m.n_memories_):
        pts = x[m.labels_ == k]
        if covariance == "spherical":
            terms.append(np.log(len(pts)) + stats.multivariate_normal(m.memories_[k], 0.6 * np.eye(3)).logpdf(q))
        else:
            terms.append(np.log(len(pts)) + normal_gamma_log_predictive(q, *(np.asarray(v)[None] for v in _stats_of(pts)),
                                                                        m._prior)[:, 0])
    new = (stats.multivariate_normal(m0, 9.6 * np.eye(3)).logpdf(q) if covariance == "spherical" else
           normal_gamma_log_predictive(q, np.zeros(1), np.zeros((1, 3)), np.zeros((1, 3)), m._prior)[:, 0])
    want = logsumexp(np.stack(terms + [np.log(0.5) + new]), axis=0) - np.log(0.5 + n)
    np.testing.assert_allclose(m.score_samples(q), want, rtol=1e-10)


def test_diag_refuses_the_batch_schedule():
    with pytest.raises(ParameterError, match="update"):
        CLAMCRP(covariance="diag", update="batch").fit(_blobs())


def test_isotropy_gaps_against_the_covariances_they_summarise():
    from ambridge.memories.oversplitting import isotropy_gaps

    rng = np.random.default_rng(8)
    iso = rng.standard_normal((4000, 3))
    axes = rng.standard_normal((4000, 3)) * [0.5, 1.0, 2.0]
    rot = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    x, y = np.vstack([iso, axes, axes @ rot.T]), np.repeat([0, 1, 2], 4000)
    want_axes = 1.5 * np.log((0.25 + 1 + 4) / 3 + 1e-2) - 0.5 * np.log(np.array([0.25, 1, 4]) + 1e-2).sum()
    gaps = [isotropy_gaps(x[y == c], y[y == c]) for c in range(3)]
    assert gaps[0][0] == pytest.approx(0.0, abs=0.01) and gaps[0][1] == pytest.approx(0.0, abs=0.01)
    assert gaps[1][0] == pytest.approx(want_axes, rel=0.05) and gaps[1][1] == pytest.approx(0.0, abs=0.01)
    assert gaps[2][0] == pytest.approx(want_axes, rel=0.05) and gaps[2][1] > 0.1  # rotated: diagonal is not enough
    both = isotropy_gaps(x, y)
    assert both[0] == pytest.approx(np.mean([g[0] for g in gaps]), rel=1e-9)  # equal class sizes: the plain mean


def test_run_variant_and_the_summaries():
    from ambridge.memories.oversplitting import VARIANTS, median_score, memory_ratio, run_variant, summary_rows

    x = _blobs(n_per=15, seed=9)
    y = np.repeat(np.arange(4), 15)
    records = []
    for v in ("default", "diag", "held-out"):
        rec = run_variant(v, x, y, 0)
        assert rec["classes"] == 4 and -1 <= rec["ari"] <= 1 and rec["memories"] >= 1
        records.append({"dataset": "toy", "variant": v, **rec})
    assert len(records[2]["heldout_table"]) == 3 * 7
    rows = summary_rows(records, ["toy", "absent"])
    assert len(rows) == 1 and rows[0][:2] == ("toy", 4) and len(rows[0]) == 2 + len(VARIANTS) and rows[0][3] == "–"
    want = records[1]["memories"] / records[0]["memories"]
    assert memory_ratio(records, "diag", ["toy"]) == pytest.approx(want)
    assert median_score(records, "toy", "diag") == records[1]["ari"] and math.isnan(median_score(records, "toy", "merge"))
    with pytest.raises(ValueError, match="name"):
        run_variant("full", x, y, 0)
