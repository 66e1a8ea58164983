"""Every rate check can fail for a wrong kernel: its prediction, recomputed on the spectrum
scaled by 0.9 or 1.1 (hyper-parameters held at what ran), leaves its tolerance.

The stand-in for the measurement is the unscaled prediction itself, i.e. what the exact
linear recursion on the claim's kernel would measure; a real run differs from it by less
than the tolerance (that is what the claim checks), so these tests need no training.
"""
import numpy as np
import pytest

from ntkode.numerics import simulate
from ntkode.verify.claims import CLAIMS
from ntkode.verify.claims_common import initial_spectra, sphere_problem

#: claims whose checks compare a rate (per step or per unit time) with a prediction
RATE_CLAIMS = ["gd-linear", "hb-linear", "hb-optimal-damping", "mom2-rate", "nag-discrete-linear", "nag-sc-linear",
               "pl-star"]


def test_rate_claims_declare_their_predictions():
    assert all(CLAIMS[name].predict is not None for name in RATE_CLAIMS)


@pytest.mark.parametrize("scale", [0.9, 1.1])
@pytest.mark.parametrize("setting", ["quick", "full"])
@pytest.mark.parametrize("name", RATE_CLAIMS)
def test_each_rate_check_fails_on_a_spectrum_off_by_ten_percent(name, setting, scale):
    claim = CLAIMS[name]
    # two seeds keep the full setting cheap: its widths (hence tolerances) are what matter here
    params = claim.params(setting, seeds=2)
    base = claim.predict(params, 1.0)
    moved = claim.predict(params, scale)
    assert base and [p.label for p in base] == [p.label for p in moved]
    for exact, wrong in zip(base, moved):
        assert exact.tolerance.score(exact.value, exact.value) == 0.0
        detected = exact.tolerance.score(wrong.value, exact.value) > 1.0
        # a declared blind spot must be real (derived, not a way out), every other scale detected
        assert detected is (scale not in exact.blind_to), (name, exact.label, wrong.value, exact.value)


def test_initial_spectra_are_the_simulated_ones():
    """initial_spectra draws H(W_0) exactly as simulate does (same seeds, same nets)."""
    params = {"n": 6, "d": 5, "data_seed": 1}
    prob = sphere_problem(params)
    sim = simulate("gd", prob.X, prob.y, [64], 1, seeds=3, hyper={"lr": 0.1}, device="cpu", progress=False)
    np.testing.assert_allclose(initial_spectra(prob, 64, 3), sim.lam_emp[0], rtol=1e-12, atol=1e-14)
