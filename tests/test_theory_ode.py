"""Limiting ODEs: hand formulas of docs/theory.md#ode, exponents against expm/solve_ivp, optimal damping."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from ntkode.theory import derive_ode, ode_rate, optimal, spectral_radius
from ntkode.theory.ode import expansion, ode_coefficients, ode_polynomial
from ntkode.symbols import h, lam, s, t
from ntkode.theory.ode import optimal_damping
from ntkode.testing import assert_ode_rate_agrees, ode_hyper, spectra

from conftest import examples

gamma, r = sp.symbols("gamma r", positive=True)
beta2 = sp.Symbol("beta2", real=True)
BY_NAME = {str(x): x for x in (gamma, r, beta2, h, lam, s, t)}


@pytest.mark.parametrize("method, expected", [
    ("gd", s + lam),
    ("hb", s**2 + gamma * s + lam),
    ("nag-sc", s**2 + gamma * s + lam),
    ("nag", s**2 + r / t * s + lam),
    ("mom2", s**2 + (gamma * s + lam) / (1 + beta2)),
])
def test_low_resolution_matches_theory(method, expected):
    assert sp.simplify(ode_polynomial(method, "low") - expected) == 0


def test_nag_sc_and_hb_differ_by_gradient_correction_at_h3():
    assert sp.simplify(expansion("nag-sc")[2] - expansion("hb")[2] - lam * s) == 0


def test_nag_high_resolution_is_shi_after_time_shift():
    """With t_k = (k + r/2) sqrt(eta) the general-r form is Shi et al.'s; r = 3 reproduces it."""
    tau = sp.Symbol("tau", positive=True)
    shifted = [sp.series(c.subs(t, tau - r * h / 2), h, 0, 2).removeO() for c in ode_coefficients("nag", "high")]
    shi = [lam * (1 + r * h / (2 * tau)), r / tau + h * lam]
    assert all(sp.simplify(a - b) == 0 for a, b in zip(shifted, shi))
    shi3 = [lam * (1 + 3 * h / (2 * tau)), 3 / tau + h * lam]
    assert all(sp.simplify(a.subs(r, 3) - b) == 0 for a, b in zip(shifted, shi3))


def test_nag_high_resolution_in_step_time():
    a0, a1 = ode_coefficients("nag", "high")
    assert sp.simplify(a1 - (r / t + h * lam - h * r**2 / (2 * t**2))) == 0
    assert sp.simplify(a0 - lam * (1 + r * h / (2 * t))) == 0


def _companion(method, lam_, resolution="low", **vals):
    subs = {lam: lam_, gamma: vals.get("damping", 0), beta2: vals.get("momentum2", 0), h: vals.get("h", 0)}
    a = [float(c.subs(subs)) for c in ode_coefficients(method, resolution)]
    comp = np.eye(len(a), k=1)
    comp[-1, :] = [-x for x in a]
    return comp


@given(st.sampled_from(["gd", "hb", "nag-sc", "mom2"]), st.floats(0.05, 5), st.floats(0.0, 4),
       st.floats(0.0, 0.9), st.sampled_from(["low", "high"]), st.floats(1e-4, 1e-1))
def test_exponent_equals_expm_abscissa(method, lam_, damping, mom2, resolution, lr):
    kw = {"gd": {}, "mom2": {"damping": damping, "momentum2": mom2}}.get(method, {"damping": damping})
    res = ode_rate(method, [lam_], resolution, **kw, **({"lr": lr} if resolution == "high" else {}))
    step = lr if method == "gd" else np.sqrt(lr)
    comp = _companion(method, lam_, resolution, damping=damping, momentum2=mom2, h=step if resolution == "high" else 0)
    T = min(200.0, 30.0 / max(res.exponent, 1e-3))  # exp(-alpha T) stays far above underflow
    # log ||expm(A T)|| / T -> spectral abscissa; a (1 + t) factor at critical damping costs log(T)/T
    measured = -np.log(np.linalg.norm(expm(comp * T), 2)) / T
    assert res.exponent == pytest.approx(measured, abs=np.log(4 * T) / T)
    assert res.exponent == pytest.approx(-np.linalg.eigvals(comp).real.max(), abs=1e-6)


def _ode_cases(resolution: str) -> st.SearchStrategy:
    methods = ["gd", "hb", "nag-sc", "mom2", "qhm", "extragradient"] + (["nag"] if resolution == "low" else [])
    return st.sampled_from(methods).flatmap(
        lambda m: st.tuples(st.just(m), spectra(max_size=4), ode_hyper(m, resolution)))


@settings(max_examples=examples(12), deadline=None)
@example(("hb", np.array([0.04, 0.5, 1.0]), {"damping": 0.4}))     # critical damping at lam_0: a double root
@example(("hb", np.array([0.04, 1.0]), {"damping": 2.0}))          # critical damping at lam_max = 1
# mom2's critical damping at lam_0: gamma = 2 sqrt(lam_0 (1 + beta2))
@example(("mom2", np.array([0.04, 1.0]), {"damping": 0.4 * np.sqrt(1.3), "momentum2": 0.3}))
@example(("hb", np.array([1e-4, 1.0]), {"damping": 3.0}))          # overdamped, exponent ~ 3e-5
@example(("nag", np.array([0.01, 1.0]), {"r": 3.0}))               # sublinear: order r/2
@given(_ode_cases("low"))
def test_ode_exponent_equals_solve_ivp(case):
    """ntkode.testing.assert_ode_rate_agrees: ode_rate's exponent (and, for nag, its order r/2) = the decay of a
    solve_ivp integration, on random spectra (kappa up to 1e4) and ODE hyper-parameters, and at double roots."""
    method, eigs, hyper = case
    assert_ode_rate_agrees(method, eigs, hyper)


@settings(max_examples=examples(6), deadline=None)
@given(_ode_cases("high"))
def test_high_resolution_ode_exponent_equals_solve_ivp(case):
    method, eigs, hyper = case
    assert_ode_rate_agrees(method, eigs, hyper, "high")


def test_exponent_equals_solve_ivp_decay():
    lam_, damping = 0.7, 0.9
    res = ode_rate("hb", [lam_], damping=damping)
    sol = solve_ivp(lambda _, y: [y[1], -damping * y[1] - lam_ * y[0]], (0, 60), [1.0, 0.0],
                    rtol=1e-10, atol=1e-14, dense_output=True)
    # energy-like norm, averaged over the last 20 time units
    tt = np.linspace(40, 60, 2001)
    y = sol.sol(tt)
    slope = np.polyfit(tt, np.log(np.hypot(y[0], y[1])), 1)[0]
    assert -slope == pytest.approx(res.exponent, rel=2e-2)


def test_nag_orders_and_exponents():
    low = ode_rate("nag", [0.5, 2.0], r=3)
    assert (low.exponent, low.order) == (0.0, pytest.approx(1.5))
    high = ode_rate("nag", [0.5, 2.0], "high", r=4, lr=1e-2)
    assert high.exponent == pytest.approx(0.1 * 0.5 / 2) and high.order == pytest.approx(2.0)
    assert derive_ode("nag").order == r / 2


def test_critical_damping_not_beaten_on_grid():
    eigs = np.geomspace(0.2, 3.0, 9)
    best = optimal("hb", eigs.min(), eigs.max(), ode=True)
    assert best["hyper"]["gamma"] == pytest.approx(2 * np.sqrt(0.2))
    assert best["exponent"] == pytest.approx(np.sqrt(0.2))
    for g in np.linspace(0.01, 4, 400):
        assert ode_rate("hb", eigs, damping=g).exponent <= best["exponent"] + 1e-9
    m2 = optimal("mom2", 0.2, 3.0, ode=True)
    for g in np.linspace(0.01, 4, 100):
        for b2 in (0.0, 0.3, 0.6):
            assert ode_rate("mom2", eigs, damping=g, momentum2=b2).exponent <= m2["exponent"] + 1e-9


def _discrete_critical_damping(method, lam_, step):
    """(1 - beta_c)/sqrt(eta) with beta_c in (0, 1) where the discrete polynomial at lam has a double root."""
    from scipy.optimize import brentq
    from ntkode.theory import METHODS
    from ntkode.theory.discrete import rate_polynomial
    m = METHODS[method]
    z = sp.Symbol("z")
    eta_sym, beta_sym = m.symbols
    disc = sp.lambdify(beta_sym, sp.discriminant(rate_polynomial(method), z).subs({lam: lam_, eta_sym: step**2}))
    beta_c = brentq(disc, 0.5, 1 - 1e-12, xtol=1e-15)
    return (1 - beta_c) / step


@pytest.mark.parametrize("method, high", [("hb", 2 * sp.sqrt(lam) - h * lam), ("nag-sc", 2 * sp.sqrt(lam) - 2 * h * lam)])
def test_high_resolution_critical_damping_tracks_the_discrete_double_root(method, high):
    """Low resolution: gamma* = 2 sqrt(lam), off the discrete critical damping by O(h); high resolution:
    2 sqrt(lam) - h lam (HB, exactly the discrete beta = (1 - sqrt(eta lam))^2) and 2 sqrt(lam) - 2 h lam
    (NAG-SC, whose gradient correction adds h lam to the damping), off by O(h^2) (docs/theory.md#ode)."""
    gam, _ = optimal_damping(method, "high")
    assert sp.simplify(gam - high) == 0
    assert optimal_damping(method, "low")[0] == 2 * sp.sqrt(lam)
    lam_ = 0.7
    errors = {}
    for step in (0.04, 0.02):
        exact = _discrete_critical_damping(method, lam_, step)
        errors[step] = (abs(float(gam.subs({h: step, lam: lam_})) - exact), abs(2 * np.sqrt(lam_) - exact))
    high_ratio = errors[0.04][0] / max(errors[0.02][0], 1e-15)
    low_ratio = errors[0.04][1] / errors[0.02][1]
    assert low_ratio == pytest.approx(2, rel=0.1)  # first order
    assert errors[0.04][0] < 1e-12 if method == "hb" else high_ratio == pytest.approx(4, rel=0.15)  # second order


def test_damping_regimes_and_json():
    d = derive_ode("hb")
    parsed = sp.sympify(d.to_json()["polynomial"])
    parsed = parsed.subs({x: BY_NAME[x.name] for x in parsed.free_symbols})
    assert sp.simplify(parsed - (s**2 + gamma * s + lam)) == 0
    assert d.regimes["critical"].subs({gamma: 2, lam: 1}) == sp.true
    assert d.to_json()["order"] == "0"


@pytest.mark.parametrize("method", ["gd", "hb", "nag-sc", "mom2"])
def test_discrete_rate_tends_to_ode_rate_low_order_h_high_order_h2(method):
    """docs/theory.md#ode: the discrete exponent per unit time, -log(rho)/h, tends to the ODE's
    as eta -> 0; the low-resolution ODE is off by O(h) and the high-resolution one by O(h^2)
    (h = eta for GD, sqrt(eta) otherwise; beta = 1 - gamma h, for mom2 1 - beta2 - gamma h).
    The observed order between eta = 1e-3 and 1e-4 must be about 1 (low) and about 2 (high);
    GD uses eta = 1e-2 and 1e-3, since its h = eta puts the O(h^2) gap, lam_0^3 h^2/3, at
    round-off (4e-13) when eta = 1e-4."""
    eigs, damping, beta2 = np.array([0.05, 0.5, 2.0]), 1.0, 0.2
    ode = {"gd": {}, "mom2": {"damping": damping, "momentum2": beta2}}.get(method, {"damping": damping})
    errors = {"low": [], "high": []}
    steps = []
    for lr in (1e-2, 1e-3) if method == "gd" else (1e-3, 1e-4):
        h = lr if method == "gd" else np.sqrt(lr)
        hyper = {"lr": lr}
        if method != "gd":
            hyper["momentum"] = 1 - damping * h - (beta2 if method == "mom2" else 0.0)
        if method == "mom2":
            hyper["momentum2"] = beta2
        discrete = -np.log(spectral_radius(method, eigs, **hyper).rate) / h
        for res in ("low", "high"):
            extra = {"lr": lr} if res == "high" else {}
            errors[res].append(abs(ode_rate(method, eigs, res, **ode, **extra).exponent - discrete))
        steps.append(h)
    order = {res: np.log(e[0] / e[1]) / np.log(steps[0] / steps[1]) for res, e in errors.items()}
    assert 0.8 < order["low"] < 1.3, (order, errors)
    assert order["high"] > 1.7, (order, errors)
    assert errors["high"][1] < errors["low"][1]
