"""scikit-learn's own estimator checks on the four memories (CLAM+CRP also with diagonal memories and merges) (``parametrize_with_checks``).

The instances are small (few updates, rounds or passes) so the whole file runs in under a minute. Every check
passes: :data:`EXPECTED` (the checks expected to fail, with their reasons, given to ``expected_failed_checks``) is
empty. scikit-learn itself skips its array-API checks (``check_array_api_input``) unless ``SCIPY_ARRAY_API=1`` is set;
the memories are torch models that take NumPy input.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from ambridge.memories import CLAM, CLAMCRP, CLAMELBO, DPMeans

ESTIMATORS = [
    CLAM(3, n_steps=2, n_updates=40, batch_size=16, init="data", lr=0.1),
    CLAMELBO(3, flow="natural", max_iter=20, predict_steps=20),
    CLAMCRP(max_iter=10, max_memories=50),
    CLAMCRP(max_iter=10, max_memories=50, covariance="diag", merge=True),
    DPMeans(lam=1.0, max_iter=10),
]

#: {estimator class name: {check name: why it is expected to fail}} — none today.
EXPECTED: dict[str, dict[str, str]] = {}


def expected_failures(estimator) -> dict[str, str]:
    """{check name: why it fails} for one of :data:`ESTIMATORS`."""
    return EXPECTED.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "estimator, name",
    [(CLAM(init="zeros"), "init"), (CLAMELBO(tol=-1.0), "tol"), (CLAMCRP(update="sometimes"), "update"),
     (CLAMCRP(covariance="full"), "covariance"), (CLAMCRP(merge="yes"), "merge"),
     (DPMeans(lam=0.0), "lam"), (CLAMCRP(random_state=-1), "random_state")],
)
def test_a_refused_parameter_is_both_the_books_error_and_scikit_learns(estimator, name):
    from sklearn.utils._param_validation import InvalidParameterError

    from ambridge.checks import ParameterError

    x = np.random.default_rng(0).normal(size=(12, 2))
    with pytest.raises(ParameterError, match=rf"^parameter `{name}` = .*: The '{name}' parameter of \w+ must be") as err:
        estimator.fit(x)
    assert isinstance(err.value, InvalidParameterError) and err.value.name == name


def test_more_memories_than_points_is_refused_at_fit():
    from ambridge.checks import ParameterError

    with pytest.raises(ParameterError, match=r"n_memories.*n_samples = 2"):
        CLAMELBO(3).fit(np.zeros((2, 2)))
