"""The time shift t = (k + r/2) sqrt(eta) of the Bessel prediction, against the exact scalar recursion."""
import math

import numpy as np
import pytest

from ntkode.errors import NtkodeError
from ntkode.theory import nag_discrete_prediction
from ntkode.verify.claims_nesterov import _trajectory_deviation, nag_scalar_recursion

LAM = 0.147


def _deviation(eta_lam: float, r: float, shift: float) -> float:
    eta = eta_lam / LAM
    steps = int(math.ceil(40 / math.sqrt(eta_lam)))
    k = np.arange(steps + 1)
    keep = np.sqrt(LAM * eta) * k >= 3
    return _trajectory_deviation(nag_scalar_recursion(LAM, eta, r, steps),
                                 nag_discrete_prediction(k, LAM, eta, r, shift=shift), keep)


@pytest.mark.parametrize("r", [3, 4])
def test_shift_r_over_2_cuts_the_model_error(r):
    """At eta lam = 1e-2: ~0.01 with the shift (bound 0.02), ~0.08 without (bound below 0.05)."""
    assert _deviation(1e-2, r, r / 2) < 0.02
    assert _deviation(1e-2, r, 0.0) > 0.05
    assert _deviation(1e-2, r, r / 2) < _deviation(1e-2, r, r / 2 - 0.5)
    assert _deviation(1e-2, r, r / 2) < _deviation(1e-2, r, r / 2 + 0.5)


def test_scalar_recursion_first_steps_by_hand():
    """e_1 = (1 - x) e_0 (beta_1 = 0); e_2 = (1 - x)(e_1 + (1/(r+1))(e_1 - e_0))."""
    x, r = 0.1, 3.0
    e = nag_scalar_recursion(1.0, x, r, 2)
    assert e[1] == pytest.approx(1 - x)
    assert e[2] == pytest.approx((1 - x) * (e[1] + (e[1] - 1.0) / (r + 1)))


def test_shift_must_be_non_negative():
    with pytest.raises(NtkodeError):
        nag_discrete_prediction(5, LAM, 0.01, 3, shift=-1.0)


def test_sublinear_figure_draws_every_r_in_its_own_colour_and_every_step_size_in_its_own_style():
    """Toy run: per r, one network curve per step size and the ODE envelope share a colour; the step sizes of
    one r are drawn in distinct line styles; different r differ in colour."""
    from ntkode.verify.claims import CLAIMS
    from ntkode.verify.report import render_figure

    claim = CLAIMS["nag-sublinear-ode"]
    params = claim.params("quick", width=256, seeds=1, eta_lam0s=(4e-2, 1e-2), rs=(2, 4), x_window=(3.0, 12.0),
                          second=None)
    figure = claim.measure(params, "cpu").figure
    lines = {c.get_label(): c.lines[0] for c in render_figure(figure).axes[0].containers}
    for r in (2, 4):
        network = [lines[f"sphere: r={r}, eta lam_0={e:g} (seed 0)"] for e in (4e-2, 1e-2)]
        ode = [line for label, line in lines.items() if label.startswith(f"sphere: r={r}: ODE envelope")]
        assert len(ode) == 1
        assert {line.get_color() for line in network + ode} == {ode[0].get_color()}
        assert len({line.get_linestyle() for line in network}) == 2
    assert (lines["sphere: r=2, eta lam_0=0.01 (seed 0)"].get_color()
            != lines["sphere: r=4, eta lam_0=0.01 (seed 0)"].get_color())
