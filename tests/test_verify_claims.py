"""Claim structure, tolerance semantics, and one cheap claim measured end to end."""
import math

import numpy as np
import pytest

from ntkode.errors import NtkodeError
from ntkode.verify.claim import Check, Tolerance
from ntkode.verify.claims import CLAIMS

ISSUE_CLAIMS = [
    "gd-linear", "hb-linear", "hb-optimal-damping", "nag-sublinear-ode", "nag-discrete-linear",
    "nag-sc-linear", "mom2-rate", "width-convergence", "lazy-training", "du-width",
    "implicit-bias", "pl-star",
    "acceleration", "qhm-rate", "triple-momentum-rate",
]
SECTIONS = ("Theorem:", "Algorithm:", "Theoretical guarantee:", "References:", "Measurement:", "Tolerance:")


def test_the_claims_of_the_issues():
    assert sorted(CLAIMS) == sorted(ISSUE_CLAIMS)


@pytest.mark.parametrize("name", ISSUE_CLAIMS)
def test_claim_is_documented_and_has_both_settings(name):
    claim = CLAIMS[name]
    assert claim.name == name and claim.statement
    for section in SECTIONS:
        assert section in claim.doc, f"{name} docstring lacks {section}"
    assert set(claim.defaults) == {"quick", "full"}
    assert set(claim.defaults["quick"]) == set(claim.defaults["full"])


def test_params_refuse_unknown_keys_and_settings():
    claim = CLAIMS["gd-linear"]
    assert claim.params("quick", seeds=1)["seeds"] == 1
    with pytest.raises(NtkodeError):
        claim.params("quick", no_such_parameter=1)
    with pytest.raises(NtkodeError):
        claim.params("medium")


@pytest.mark.parametrize(
    "tol, predicted, measured, passed",
    [
        (Tolerance("rel", 0.1, ""), -2.0, -2.19, True),
        (Tolerance("rel", 0.1, ""), -2.0, -2.21, False),
        (Tolerance("abs", 0.1, ""), -1.5, -1.41, True),
        (Tolerance("abs", 0.1, ""), -1.5, -1.39, False),
        (Tolerance("range", (-0.8, -0.25), ""), -0.5, -0.3, True),
        (Tolerance("range", (-0.8, -0.25), ""), -0.5, -0.2, False),
        (Tolerance("range", (0.0, math.inf), ""), 0.3, 1e-3, True),
        (Tolerance("range", (0.0, math.inf), ""), 0.3, -1e-3, False),
        (Tolerance("rel", 0.1, ""), -2.0, math.nan, False),
    ],
)
def test_tolerance_semantics(tol, predicted, measured, passed):
    assert Check("", "q", predicted, measured, 0.0, tol).passed is passed


def test_mom2_rate_end_to_end_against_companion_matrix():
    """Predicted rates equal the companion matrix's spectral radius (computed here from the
    recursion coefficients of docs/theory.md#discrete), and the claim passes at a small size."""
    from ntkode.numerics import kernel_spectrum, ntk_infinite, sphere_data

    outcome = CLAIMS["mom2-rate"].run("quick", "cpu", seeds=2, second={})  # the sphere only: no second data set
    assert outcome.passed, outcome.to_json()
    assert [c.predicted for c in outcome.checks] == [p.value for p in CLAIMS["mom2-rate"].predict(outcome.params, 1.0)]
    X, _ = sphere_data(10, 10, 0)
    lam = kernel_spectrum(ntk_infinite(X))[0]
    for check, (scale, b1, b2) in zip(outcome.checks, CLAIMS["mom2-rate"].defaults["quick"]["settings"]):
        eta = scale / lam[-1]
        radius = max(
            np.abs(np.linalg.eigvals(np.array([[1 + b1 - eta * l, b2 - b1, -b2], [1, 0, 0], [0, 1, 0]]))).max()
            for l in lam
        )
        assert check.predicted == pytest.approx(math.log(radius), rel=1e-9)
        assert check.measured == pytest.approx(check.predicted, rel=check.tolerance.value)
    record = outcome.to_json()
    assert {"name", "statement", "predicted", "measured", "tolerance", "passed", "checks"} <= set(record)


def test_du_sufficient_width_formula():
    """n^6 / (lam_0^4 delta^3), evaluated by hand."""
    from ntkode.verify.claims_du import du_sufficient_width

    assert du_sufficient_width(10, 0.5, 0.1) == pytest.approx(1e6 / (0.0625 * 1e-3))


def test_du_width_fails_when_no_width_reaches_the_rate():
    """With widths all far from lazy (m <= 64) no width is within 0.1 of the NTK rate: the claim fails, not crashes."""
    outcome = CLAIMS["du-width"].run("quick", "cpu", widths=(16, 32, 64), seeds=1)
    assert not outcome.passed
