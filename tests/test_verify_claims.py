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


def mom2_companion(lam, eta, b1, b2):
    """The companion matrix of z^3 - (1 + b1 - eta lam) z^2 + (b1 - b2) z + b2 (Bu, Xu & Chen 2021;
    docs/theory.md#discrete), the recursion e_k = (1 + b1 - eta H) e_{k-1} + (b2 - b1) e_{k-2} - b2 e_{k-3}."""
    return np.array([[1 + b1 - eta * lam, b2 - b1, -b2], [1, 0, 0], [0, 1, 0]])


def mom2_log_radius(lam, eta, b1, b2):
    return math.log(np.abs(np.linalg.eigvals(mom2_companion(lam, eta, b1, b2))).max())


def mom2_errors(H, e0, eta, b1, b2, steps):
    """(steps + 1, n) errors of the linearised model: the recursion above from v_0 = v_{-1} = 0, i.e.
    e_{-1} = e_{-2} = e_0."""
    errors = [e0, e0, e0]
    for _ in range(steps):
        errors.append((1 + b1) * errors[-1] - eta * H @ errors[-1] + (b2 - b1) * errors[-2] - b2 * errors[-3])
    return np.array(errors[2:])


def test_mom2_rate_end_to_end_against_companion_matrix():
    """mom2-rate at a small size (sphere only, 2 seeds), against numbers derived here, apart from the claim's code.

    Predictions: log of the companion matrix's spectral radius on H-infinity's spectrum (numpy eigvalsh), attained
    at lambda_0 (the claim's settings have a real dominant root there). Measurement: per seed s the linearised
    model decays along the slowest direction like rho(mu_s), mu_s = lambda_min(H(W_0)); training moves the kernel
    along the linearised weight path (`linear_path_drift`) by at most D_s, the net's own path by PATH_MARGIN D_s
    (tests/test_properties_kernels.py), so each seed's slope lies between the extremes of log rho(lam) over
    lam in [mu_s - PATH_MARGIN D_s, mu_s + PATH_MARGIN D_s], and the seed mean between the means of those. The
    claim must pass, and its tolerance must not exceed TOLERANCE_SLACK x the largest relative deviation that
    interval allows.
    """
    from ntkode.numerics import forward, init_network, kernel_spectrum, ntk_empirical, ntk_infinite, sphere_data

    from test_properties_kernels import PATH_MARGIN, TOLERANCE_SLACK, linear_path_drift

    claim = CLAIMS["mom2-rate"]
    outcome = claim.run("quick", "cpu", seeds=2, second={})  # the sphere only: no second data set
    params = outcome.params
    assert outcome.passed, outcome.to_json()
    X, _ = sphere_data(params["n"], params["d"], params["data_seed"])
    h_inf = ntk_infinite(X)
    lam = np.linalg.eigvalsh(h_inf)
    y = kernel_spectrum(h_inf)[1][:, 0]  # the claim's labels
    nets = [init_network(params["width"], params["d"], s) for s in range(params["seeds"])]
    kernels = [ntk_empirical(W, a, X) for W, a in nets]
    assert len(outcome.checks) == len(params["settings"])
    for check, (scale, b1, b2) in zip(outcome.checks, params["settings"]):
        eta = scale / lam[-1]
        radii = [mom2_log_radius(l, eta, b1, b2) for l in lam]
        assert int(np.argmax(radii)) == 0
        assert check.predicted == pytest.approx(radii[0], rel=1e-12)
        lows, highs = [], []
        for (W, a), H0 in zip(nets, kernels):
            mu = np.linalg.eigvalsh(H0)[0]
            errors = mom2_errors(H0, forward(W, a, X) - y, eta, b1, b2, params["steps"])
            drift = PATH_MARGIN * linear_path_drift(W, a, X, errors[::2])
            span = [mom2_log_radius(l, eta, b1, b2) for l in np.linspace(mu - drift, mu + drift, 41)]
            lows.append(min(span))
            highs.append(max(span))
        assert np.mean(lows) <= check.measured <= np.mean(highs), (check.label, lows, check.measured, highs)
        allowed = max(abs(v / radii[0] - 1) for v in lows + highs)
        assert check.tolerance.value <= TOLERANCE_SLACK * allowed, (check.label, check.tolerance, allowed)
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
