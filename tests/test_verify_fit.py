"""Rate fitting on synthetic sequences whose rates are known in closed form."""
import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.special import jv

from ntkode.errors import NtkodeError
from ntkode.verify.fit import (auto_window, fit_linear_rate, fit_loglog_slope, fit_power_law, fit_recurrence_rate,
                               upper_envelope)


@given(rho=st.floats(0.3, 0.995), scale=st.floats(1e-3, 1e3))
def test_pure_geometric_rate_is_exact(rho, scale):
    err = scale * rho ** np.arange(3000)
    fit = fit_linear_rate(err)
    assert fit.rate == pytest.approx(rho, rel=1e-9)
    assert fit.kind == "linear" and fit.points >= 4


def test_window_stops_above_round_off():
    k = np.arange(400)
    err = np.maximum(0.8**k, 1e-16)  # hits the float64 floor near k = 165
    start, stop = auto_window(err)
    assert err[stop - 1] > 1e-10 * err[0]
    assert start == round(0.5 * stop)
    assert fit_linear_rate(err).rate == pytest.approx(0.8, rel=1e-9)


def test_slowest_mode_dominates_after_transient():
    k = np.arange(2000)
    err = 0.9**k + 5.0 * 0.7**k  # the fast mode is large at first
    assert fit_linear_rate(err).rate == pytest.approx(0.9, rel=1e-6)


@given(rho=st.floats(0.9, 0.995), theta=st.floats(0.3, 2.8), phase=st.floats(0.0, 3.0))
@example(rho=0.9054725875950365, theta=0.31510439141411467, phase=0.6229404557409656)  # 8 delta/L off
def test_envelope_fit_of_oscillating_error(rho, theta, phase):
    """f(t) = log(rho^t |cos(theta t + phase)|) peaks at points t*_j that lie on the line
    c + t log(rho), with curvature -w^2, w = sqrt(theta'^2 + log(rho)^2) (theta' = theta
    folded into [0, pi/2]). The envelope point k_j is within half a step of t*_j, so its
    residual from the line at k_j, [f(k_j) - f(t*_j)] - (k_j - t*_j) log(rho), lies in an
    interval of width s = delta + |log rho|, delta = -log cos(w/2). With residuals confined
    to width s, OLS over evenly spread points moves the slope by at most
    s sum_{x<0}|x| / sum x^2 <= 1.5 s / span (x = k_j - mean, worst case: the low end on
    one half of the points), and with at least ~10 peaks per window span >= 0.8 L, so
    <= 1.9 s / L. (Seen on 2 x 30000 random draws: at most 1.09 s / L.)"""
    k = np.arange(4000)
    err = rho**k * np.cos(theta * k + phase)
    fit = fit_linear_rate(err, envelope=True)
    folded = min(theta % math.pi, math.pi - theta % math.pi)
    delta = -math.log(math.cos(math.hypot(folded, math.log(rho)) / 2))
    spread = delta - math.log(rho)
    length = fit.window[1] - fit.window[0]
    assert fit.points >= 10
    assert abs(fit.value - math.log(rho)) <= 2 * spread / length + 1e-9


def test_noisy_rate_within_its_standard_error():
    rng = np.random.default_rng(1)
    k = np.arange(600)
    err = 0.97**k * np.exp(0.05 * rng.standard_normal(k.size))
    fit = fit_linear_rate(err, window=(0, 600))
    assert fit.stderr > 0
    assert abs(fit.value - math.log(0.97)) < 4 * fit.stderr
    assert fit.rate_stderr == pytest.approx(fit.rate * fit.stderr)


def test_polynomial_prefactor_is_separated_from_the_rate():
    k = np.arange(600)
    err = k**2.0 * 0.95**k  # err[0] = 0 is skipped (log of zero)
    fit = fit_linear_rate(err, power=True)
    assert fit.value == pytest.approx(math.log(0.95), rel=1e-8)
    assert fit.power == pytest.approx(2.0, abs=1e-6)
    assert fit_linear_rate(err).value > math.log(0.95)  # a plain fit is biased by k^2


def test_upper_envelope_monotone_and_oscillating():
    k = np.arange(200)
    idx, vals = upper_envelope(0.9**k)
    assert idx.tolist() == list(range(200))
    osc = 0.99**k * np.abs(np.cos(0.3 * k))
    idx, vals = upper_envelope(osc)
    assert 0 < idx.size < 40
    assert np.all(vals[:-1] > vals[1:])
    inner = idx[(idx > 0) & (idx < 199)]
    assert np.all(osc[inner] >= osc[inner - 1]) and np.all(osc[inner] >= osc[inner + 1])


@pytest.mark.parametrize("r", [2, 3, 4, 6])
def test_power_law_of_bessel_envelope(r):
    """x^(-nu) J_nu(x) has envelope ~ x^(-nu-1/2) = x^(-r/2): Nesterov's ODE solution."""
    nu = (r - 1) / 2
    x = np.linspace(1e-3, 120.0, 40000)
    fit = fit_power_law(x, x**-nu * jv(nu, x), (10.0, 100.0))
    assert fit.value == pytest.approx(-r / 2, abs=0.02)
    assert fit.kind == "power"
    with pytest.raises(NtkodeError):
        fit.rate


def test_loglog_slope_exact_and_noisy():
    m = np.array([512, 1024, 2048, 4096, 8192])
    assert fit_loglog_slope(m, 3.0 * m**-0.5).value == pytest.approx(-0.5, abs=1e-12)
    noisy = 3.0 * m**-0.5 * np.exp(0.1 * np.random.default_rng(0).standard_normal(m.size))
    fit = fit_loglog_slope(m, noisy)
    assert abs(fit.value + 0.5) < 4 * fit.stderr


@pytest.mark.parametrize(
    "call",
    [
        lambda: fit_linear_rate(np.ones(2)),
        lambda: fit_linear_rate(np.ones((5, 5))),
        lambda: fit_linear_rate(np.ones(50), window=(40, 10)),
        lambda: fit_loglog_slope([1, 2, 3], [1, -1, 2]),
        lambda: fit_loglog_slope([1, 2], [1, 2]),
        lambda: fit_power_law(np.arange(10), np.ones(11)),
        lambda: fit_linear_rate(np.array([1.0, np.nan, 1.0, 1.0, 1.0])),
    ],
)
def test_bad_input_is_an_ntkode_error(call):
    with pytest.raises(NtkodeError):
        call()


@given(rho=st.floats(0.8, 0.995), theta=st.floats(0.05, 3.0), phase=st.floats(0.0, 3.0),
       weight=st.floats(0.1, 3.0), kind=st.sampled_from(["oscillating", "double root", "two real modes"]))
@example(rho=0.995, theta=0.05, phase=0.0, weight=0.1, kind="oscillating")
def test_recurrence_fit_recovers_the_dominant_root_exactly(rho, theta, phase, weight, kind):
    """A mode of a second-order recursion, whatever its kind, obeys x_k = c_1 x_{k-1} + c_2 x_{k-2}:
    the order-2 linear-prediction fit returns its root modulus to round-off (no beat, no k^q bias):
    1e-10 relative for distinct roots (theta >= 0.05 keeps the oscillating pair 2 rho sin(theta)
    >= 0.08 apart); a double root moves like the square root of round-off (sqrt(eps) = 1.5e-8,
    times the window's conditioning), so 1e-6 there. Both real modes are present (weight >= 0.1);
    a mode at round-off level is the one-exponential case tested below."""
    k = np.arange(600)
    x = {"oscillating": rho**k * np.cos(theta * k + phase),
         "double root": (1 + theta * k) * rho**k,
         "two real modes": rho**k + weight * (0.7 * rho) ** k}[kind]
    fit = fit_recurrence_rate(x, skip=0.0)
    assert math.exp(fit.value) == pytest.approx(rho, rel=1e-6 if kind == "double root" else 1e-10)


def test_recurrence_fit_falls_back_to_one_mode_and_reports_noise():
    k = np.arange(400)
    assert math.exp(fit_recurrence_rate(0.97**k).value) == pytest.approx(0.97, rel=1e-12)
    # a pair of roots 1e-7 apart is one exponential to round-off: the order-1 fallback, not noise
    assert math.exp(fit_recurrence_rate(0.995**k * np.cos(6e-8 * k)).value) == pytest.approx(0.995, rel=1e-12)
    noisy = 0.97**k * np.cos(0.3 * k) + 1e-6 * np.random.default_rng(0).standard_normal(k.size)
    fit = fit_recurrence_rate(noisy)
    assert fit.stderr > 0 and abs(fit.value - math.log(0.97)) < 4 * fit.stderr
    with pytest.raises(NtkodeError):
        fit_recurrence_rate(np.zeros((3, 3)))
