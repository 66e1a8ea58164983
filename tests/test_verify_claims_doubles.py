"""The older rate claims (gd-linear, hb-linear, mom2-rate, nag-sc-linear) on doubles of `simulate` that train no
network (tests/doubles.py): every seed's error follows the method's exact linear recursion on scale x H-infinity.

On scale 1 the measured rates are the recursion's own, so every check must pass. On scale 0.9 or 1.1 the kernel
is 10% off: every check judged against H-infinity (the discrete rates and GD's flow exponent lambda_0) must fail.
A check judged against H(W_0) cannot see the scale: the double's H(W_0) is its own kernel, scale x H-infinity,
so prediction and measurement move together, and it must pass. The one exception is nag-sc-linear at 1.1, below.
"""
import pytest

from ntkode.verify import claims_common
from ntkode.verify.claims import CLAIMS

from doubles import recursion_double

RATE_CLAIMS = ["gd-linear", "hb-linear", "mom2-rate", "nag-sc-linear"]
WRONG_SCALES = [0.9, 1.1]


@pytest.fixture
def run_on_double(monkeypatch):
    """Run a claim (quick, 2 seeds) with the recursion double on scale x H-infinity as its simulate."""
    def run(name, scale):
        monkeypatch.setattr(claims_common, "simulate", recursion_double(scale))
        return CLAIMS[name].run("quick", "cpu", seeds=2)
    return run


def _scores(outcome):
    return {c.label: round(c.score, 3) for c in outcome.checks}


def against_initial_kernel(label: str) -> bool:
    """The checks judged against each seed's H(W_0) (labels "sphere: H(W0)", "digits: H(W0)")."""
    return label.endswith("H(W0)")


@pytest.mark.parametrize("name", RATE_CLAIMS)
def test_rate_claim_passes_on_the_exact_recursion(name, run_on_double):
    outcome = run_on_double(name, 1.0)
    assert outcome.passed, _scores(outcome)
    # both data sets ran: the sphere's checks and the digits' (`claims_common.on_each_dataset`)
    assert {c.label.split(":")[0] for c in outcome.checks} == {"sphere", "digits"}


@pytest.mark.parametrize("scale", WRONG_SCALES)
@pytest.mark.parametrize("name", RATE_CLAIMS)
def test_rate_claim_fails_on_a_kernel_ten_percent_off(name, scale, run_on_double):
    """Exactly the checks against H-infinity fail; those against H(W_0) pass, except nag-sc-linear at 1.1.

    nag-sc-linear at 1.1: its predictions are declared blind to a spectrum too large (complex roots at lambda_0,
    |z|^2 = beta (1 - eta lam), moves log(rho) by ~2%), and they stay inside their tolerances. The claim fails there
    all the same, H(W_0) check included, because its measurement, a line plus q log k through |u_0^T e_k|, reads an
    oscillating sequence (complex roots) as a much faster decay: -1.31 per step against the double's exact -0.465 on
    the sphere. That failure is the fit's, not a detection of the kernel; the test pins it so that a change of the
    fit shows up here.
    """
    outcome = run_on_double(name, scale)
    assert not outcome.passed
    failed = {c.label for c in outcome.checks if not c.passed}
    if name == "nag-sc-linear" and scale == 1.1:
        assert failed == {c.label for c in outcome.checks}, _scores(outcome)
        blind = CLAIMS[name].predict(outcome.params, 1.0)
        moved = CLAIMS[name].predict(outcome.params, scale)
        assert all(p.tolerance.score(q.value, p.value) <= 1.0 for p, q in zip(blind, moved, strict=True))
        assert all(abs(c.measured) > 2 * abs(c.predicted) for c in outcome.checks if c.label == "sphere: H(W0)")
        return
    expected = {c.label for c in outcome.checks if not against_initial_kernel(c.label)}
    assert failed == expected, _scores(outcome)
    if name == "gd-linear":  # the flow exponent is judged against lambda_0 of H-infinity: it must see the scale
        assert {"sphere: ODE", "digits: ODE"} <= failed
