"""Open method declarations (docs/theory.md#state-space): parsing and refusal of bad declarations, the
reduction to reachable modes, the built-ins pinned to ntkode 0.1.0's numbers, properties over the built-ins
a degree-4 declaration kept here, the numeric tuner against every
closed form, the engine against the declared step on a tiny net, and the command line end to end."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ntkode import __version__
from ntkode.declaration import Method, builtin_names, load_method
from ntkode.errors import NtkodeError
from ntkode.numerics import init_network, ntk_empirical, simulate, sphere_data
from ntkode.symbols import k as K, lam as LAM, z as Z
from ntkode.theory import (derive, iterate, numeric_optimum, ode_rate, optimal, rate_function,
                           spectral_radius)
from ntkode.theory.discrete import rate_polynomial
from ntkode.theory.optimal import spectrum_grid, worst_rate
from ntkode.testing import any_hyper, assert_rates_agree, assert_scaling_equals_lr, spectra, stable_hyper
from ntkode.verify.cli import cli_message, main

from conftest import examples

HERE = Path(__file__).parent
SHIPPED = ("qhm", "triple-momentum", "extragradient")
DECLARED = {**{name: name for name in SHIPPED}, "four-step": str(HERE / "methods" / "four-step.toml")}
#: by name, not path: hypothesis derives its derandomized draws from the arguments, so a path would make them
#: depend on where the repository is cloned
ALL = sorted(builtin_names()) + ["four-step"]
PIN = json.loads((HERE / "data" / "builtins-0.1.0.json").read_text())

BASE = {"name": "toy", "hyper": {"eta": "(0, inf)"}, "state": {"W": "W0"}, "step": ["W = W - eta*grad(W)"]}


def declare(**changes) -> Method:
    return Method.from_dict({**BASE, **changes})


# -- bad declarations: one clear line naming what is wrong ---------------------------------------
@pytest.mark.parametrize("changes, match", [
    (dict(step=["W = W - eta*grad(W)*W"]), r"statement 1 .*not linear"),
    (dict(step=["W = W**2 - eta*grad(W)"]), r"statement 1 .*not linear"),
    (dict(step=["W = W - eta*grad(W*W)"]), r"statement 1 .*not linear"),
    (dict(step=["W = W - etta*grad(W)"]), r"statement 1 .*unknown symbol 'etta' \(did you mean 'eta'\?\)"),
    (dict(step=["W = W - eta*grad(W"]), r"statement 1 .*syntax error"),
    (dict(step=["W = W - eta*v", "v = grad(W)"]), r"statement 1 .*'v' is read before it is assigned"),
    (dict(step=["W = W - eta*grad(d)"], state={"W": "W0", "d": "0"}), r"direction, not a point"),
    (dict(step=["W = W/2 - eta*grad(W)"]), r"neither a point"),
    (dict(step=["W = W + eta"]), r"constant"),
    (dict(step=["eta = 2", "W = W - eta*grad(W)"]), r"cannot define the coefficient 'eta'"),
    (dict(step=["c = 2*eta", "c = W - c*grad(W)"]), r"'c' names a coefficient"),
    (dict(step=["W = W - eta*grad(W)", "d = W"], state={"W": "W0", "d": "0"}), r"'d' is a direction"),
    (dict(step=["W = W - eta*foo(W)"]), r"unknown function 'foo'"),
    (dict(step=["W = W - Min(eta, W)*grad(W)"]), r"takes coefficients"),
    (dict(step=["W == W"]), r"must be one assignment"),
    (dict(step=["g = grad(W)"]), r"never assigns W"),
    (dict(step="W = W - eta*grad(W)"), r"non-empty list"),
    (dict(state={"V": "W0"}), r"must declare W"),
    (dict(state={"W": "1"}), r"initial value"),
    (dict(hyper={"eta": "[1, 0)"}), r"empty"),
    (dict(hyper={"eta": "(0, inf)", "nu": "[0, 1]"}), r"nu are declared but never used"),
    (dict(hyper={"eta": "0 to 1"}), r"not an interval"),
    (dict(hyper={"lam": "(0, inf)"}), r"not a usable hyper-parameter name"),
    (dict(name="hb"), r"shadows a built-in"),
    (dict(hyperr={}), r"unknown key 'hyperr' \(did you mean 'hyper'\?\)"),
    (dict(ode={"time": "k*h", "eta": "h**2", "zeta": "h"}), r"not a hyper-parameter"),
    (dict(ode={"eta": "h"}), r"needs time"),
    (dict(ode={"time": "k*h", "eta": "gamma"}), r"step size"),
])
def test_bad_declaration_is_one_clear_error(changes, match):
    with pytest.raises(NtkodeError, match=match) as err:
        declare(**changes)
    assert "\n" not in str(err.value)


def test_bad_declaration_files_through_the_cli(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nstep = ["W = W*W"]\n[hyper]\n[state]\nW = "W0"\n')
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\nstep = [\n')
    for argv in (["derive", str(bad)], ["derive", str(broken)], ["derive", str(tmp_path / "none.toml")],
                 ["rates", str(bad), "--eigs", "1"], ["simulate", "--method", str(bad), "--width", "8", "--steps", "2",
                                                      "--out", str(tmp_path / "r.npz")]):
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "error:" in lines[0], argv
    assert "not linear" in (main(["derive", str(bad)]) and capsys.readouterr().err)
    assert "not valid TOML" in (main(["derive", str(broken)]) and capsys.readouterr().err)


# -- reduction to the modes that reach W ---------------------------------------------------------
def test_idle_and_unobserved_states_do_not_change_the_rate():
    """hb-idle carries u = rho u (never excited) and acc = acc + g (excited, never read by W): T is 4 x 4
    with eigenvalues rho and 1 besides heavy ball's, yet the reduced polynomial and every rate are heavy ball's."""
    idle = load_method(HERE / "methods" / "idle.toml")
    hb = load_method("hb")
    assert idle.transition.shape == (4, 4)
    assert sp.simplify(idle.char_poly() - hb.char_poly()) == 0
    values = {"eta": 0.4, "beta": 0.3, "rho": 1.9}
    T = np.array(idle.transition.subs({LAM: 0.5, **{hp.symbol: values[hp.name] for hp in idle.hyper}}), dtype=float)
    assert np.max(np.abs(np.linalg.eigvals(T))) == pytest.approx(1.9)  # the idle mode is in T, unexcited
    eigs = [0.1, 0.5, 2.0]
    for rho in (0.2, 1.0, 1.9):
        got = spectral_radius(idle, eigs, eta=0.4, beta=0.3, rho=rho)
        assert got.rate == pytest.approx(spectral_radius("hb", eigs, lr=0.4, momentum=0.3).rate, rel=1e-14)
    H = np.diag(eigs)
    E_idle = iterate(idle, H, np.ones(3), 60, eta=0.4, beta=0.3, rho=1.9)[0]
    np.testing.assert_allclose(E_idle, iterate("hb", H, np.ones(3), 60, lr=0.4, momentum=0.3)[0], rtol=1e-13, atol=0)


# -- the built-ins: the same numbers as ntkode 0.1.0 ---------------------------------------------
@pytest.mark.parametrize("method", sorted(PIN["methods"]))
def test_builtins_reproduce_version_0_1_0(method):
    """0.1.0 wrote each method as coefficients of a multistep rule; its numbers, recorded in
    tests/data/builtins-0.1.0.json, must come out of the declarations unchanged."""
    pin = PIN["methods"][method]
    names = {str(s): s for s in load_method(method).symbols} | {"lam": LAM, "z": sp.Symbol("z"), "k": K}
    assert sp.simplify(sp.sympify(pin["polynomial"], locals=names) - derive(method).polynomial) == 0
    res = spectral_radius(method, PIN["eigs"], **PIN["settings"][method])
    np.testing.assert_allclose(res.radius, pin["radius"], rtol=1e-12)
    for resolution, key in (("low", "ode"), ("high", "ode_high")):
        extra = {"lr": 0.01} if resolution == "high" else {}
        o = ode_rate(method, PIN["eigs"], resolution, **PIN["ode"][method], **extra)
        np.testing.assert_allclose([o.exponent, o.order], pin[key], rtol=1e-10, atol=1e-12)
    X, y = sphere_data(6, 4, 0)
    sim = simulate(method, X, y, [64, 256], 25, 2, PIN["settings"][method], progress=False, drift_steps=(25,))
    for name in ("error_norm", "weight_movement", "kernel_drift"):
        want = np.array(pin[name])
        np.testing.assert_allclose(getattr(sim, name), want, rtol=1e-9, atol=1e-12 * np.abs(want).max(), err_msg=name)


# -- properties over every method (the property-testing kit, ntkode.testing) ----------------------
def hyper_draws(method: str, lam_max: float = 1.0) -> st.SearchStrategy[dict]:
    """Each hyper-parameter inside its declared domain; step sizes c/lam_max with c up to 2.5 (unstable
    settings included; nag's asymptotic rate sqrt(1 - eta lam) needs eta lam < 1)."""
    return any_hyper(method, lam_max, (0.05, 0.95 if load_method(method).time_varying else 2.5))


PROPERTY = settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def generic(method, hyper: dict) -> bool:
    """False where the iterated route cannot see a mode the rate rightly counts: near (not at) QHM's nu = 0 the
    buffer's mode reaches W with a weight ~ nu, which a float64 iteration of ITERATED_RETRY_STEPS steps cannot see
    below QHM_NU_VISIBLE (hypothesis found nu = 2e-139 with beta = 0.999: the iteration shows |1 - alpha lam|).
    At nu = 0 itself the mode no longer reaches W and the rate is GD's (`setting_polynomial`), so it is drawn."""
    return not (load_method(method).name == "qhm" and 0 < hyper["nu"] < QHM_NU_VISIBLE)


#: the smallest nu at which QHM's buffer mode (weight ~ nu) shows within the kit's iteration budget
QHM_NU_VISIBLE = 1e-6


@pytest.mark.parametrize("method", ALL)
@PROPERTY
@given(data=st.data(), eigs=spectra())
def test_rates_agree_for_every_declared_method(method, data, eigs):
    """`assert_rates_agree`: reduced roots are eigenvalues of T(lam), the compiled rate is the symbolic one, the
    declared step iterated on Q diag(eigs) Q^T decays like rate^k (Nesterov-type methods: with their k^(-r/2)
    envelope), and 'stable' = rate < 1; on spectra with kappa up to 1e4, stable and unstable settings."""
    method = DECLARED.get(method, method)
    m = load_method(method)
    hyper = data.draw(hyper_draws(method))
    assume(generic(m, hyper))
    power = -hyper["r"] / 2 if m.time_varying and "r" in hyper else None
    assert_rates_agree(m, eigs, hyper, envelope_power=power)


@pytest.mark.parametrize("method", ALL)
@PROPERTY
@given(data=st.data(), eigs=spectra())
def test_rates_agree_at_stable_settings_near_the_edge_and_double_roots(method, data, eigs):
    method = DECLARED.get(method, method)
    m = load_method(method)
    hyper = data.draw(stable_hyper(m))
    assume(generic(m, hyper))
    power = -hyper["r"] / 2 if m.time_varying and "r" in hyper else None
    assert_rates_agree(m, eigs, hyper, envelope_power=power)
    assert spectral_radius(m, eigs, **hyper).rate < 1


@pytest.mark.parametrize("method", ALL)
@settings(max_examples=examples(4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), lo=st.floats(0.01, 1.0), kappa=st.floats(1.5, 200.0))
def test_tuner_is_not_beaten_by_any_grid_point(method, data, lo, kappa):
    method = DECLARED.get(method, method)
    m = load_method(method)
    hi = lo * kappa
    best = optimal(method, lo, hi)
    grid = spectrum_grid(lo, hi)
    fixed = {hp.name: 3.0 for hp in m.hyper if hp.name not in best["hyper"]}
    for _ in range(40):
        point = data.draw(hyper_draws(method, hi))
        assert worst_rate(m, grid, {**point, **fixed}) >= best["rate"] - 1e-9


@pytest.mark.parametrize("method", ALL)
@settings(max_examples=examples(10), deadline=None)
@given(eigs=spectra(), c=st.floats(0.1, 10.0), data=st.data())
def test_scaling_the_kernel_equals_scaling_the_step_sizes(method, eigs, c, data):
    method = DECLARED.get(method, method)
    assert_scaling_equals_lr(method, eigs, data.draw(hyper_draws(method, max(c, 1.0))), c)


# -- cancellation at special settings (docs/theory.md#state-space) --------------------------------
#: GD plus a buffer v = rho v + grad(W - mu grad(W)) that W reads with weight c. Res_z(N, p) = c rho lam (mu lam - 1):
#: at c = 0 the buffer's mode rho stops reaching W however unstable it is (inside the domain of c, not at an end);
#: at lam = 1/mu the buffer is not excited (a coincidence at one lam).
GATED = {"name": "gated", "hyper": {"eta": "(0, inf)", "mu": "(0, inf)", "rho": "[0, 2]", "c": "[-1, 1]"},
         "state": {"W": "W0", "v": "0"},
         "step": ["g = grad(W)", "Y = W - mu*g", "v = rho*v + grad(Y)", "W = W - eta*g + c*v"]}
#: aggregated momentum with two free dampings: Res_z(N, p) ~ b2 b3 (b2 - b3)^2 lam^2, so at b2 = b3 the two
#: velocities coincide and the mode of their difference, b2, never reaches W (a diagonal of the domain)
TWO_VELOCITY = {"name": "two-velocity", "hyper": {"eta": "(0, inf)", "b2": "[0, 1)", "b3": "[0, 1)"},
                "state": {"W": "W0", "v2": "0", "v3": "0"},
                "step": ["g = grad(W)", "v2 = b2*v2 - g", "v3 = b3*v3 - g", "W = W + eta/3*(-g + v2 + v3)"]}


def test_qhm_at_nu_0_is_gradient_descent(capsys):
    """QHM at nu = 0 is gradient descent: with alpha lam = 1 its error is exactly 0 after one step, so its rate
    is |1 - alpha lam| = 0, not the buffer's beta; at lam = 0.3 (beta = 0.9) the rate is 0.7, not 0.9, in
    spectral_radius, the compiled rate_function (also vectorised over nu), the tuners' worst rate and `ntkode rates`."""
    E, _ = iterate("qhm", [[1.0]], [1.0], 3, alpha=1.0, beta=0.5, nu=0.0)
    assert E[1:, 0].tolist() == [0.0, 0.0, 0.0]
    assert spectral_radius("qhm", [1.0], alpha=1.0, beta=0.5, nu=0.0).rate == pytest.approx(0.0, abs=1e-12)
    alpha, beta = 1.0, 0.9
    assert sp.expand(rate_polynomial("qhm", alpha=alpha, beta=beta, nu=0.0) - (Z - 1 + alpha * LAM)) == 0
    at = spectral_radius("qhm", [0.3, 1.5], alpha=alpha, beta=beta, nu=0.0)
    assert at.radius.tolist() == pytest.approx([0.7, 0.5], abs=1e-15) and at.roots.shape == (2, 2)
    assert at.roots[:, 1].tolist() == [0, 0]  # the reduced polynomial's root, padded to p's degree with 0
    fn = rate_function("qhm")
    got = fn(np.array([0.3, 1.5]), alpha, beta, np.array([[0.0], [0.5]]))
    assert got[0].tolist() == pytest.approx([0.7, 0.5], abs=1e-15)
    assert got[1].tolist() == pytest.approx(spectral_radius("qhm", [0.3, 1.5], alpha=alpha, beta=beta, nu=0.5).radius)
    grid = spectrum_grid(0.3, 1.5)
    assert worst_rate("qhm", grid, {"alpha": alpha, "beta": beta, "nu": 0.0}) == pytest.approx(0.7, abs=1e-15)
    assert main(["rates", "qhm", "--eigs", "0.3,1.5", "--hyper", "alpha=1,beta=0.9,nu=0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rate"] == pytest.approx(0.7, abs=1e-15) and out["stable"] is True


def test_the_iterated_route_sees_past_a_dominant_mode_w_does_not_read():
    """QHM at nu = 0 with beta = 0.999 on [0.5, 1]: the buffer d decays like 0.999^k while W decays like 0.5^k, so a
    renormalisation by the whole state's norm would leave W below float64's range within 1100 steps; `iterate`
    holds each variable with its own scale, and the kit's iterated route sees W's rate 0.5."""
    eigs, hyper = np.linspace(0.5, 1.0, 4), {"alpha": 1.0, "beta": 0.999, "nu": 0.0}
    assert_rates_agree("qhm", eigs, hyper)
    E, scale = iterate("qhm", np.diag(eigs), np.ones(4), 3000, renormalise=True, **hyper)
    assert scale[3000] + math.log(np.linalg.norm(E[3000])) == pytest.approx(3000 * math.log(0.5), rel=1e-9)


def test_qhm_ode_at_nu_0_is_gradient_flow():
    """QHM's ODE scaling (alpha = h/gamma, beta = 1 - gamma h, t = k h) at nu = 0 is GD with step h/gamma, whose
    flow e' = -(lam/gamma) e decays at lam/gamma per unit time; the generic ODE (s + gamma)(s + lam/gamma) would add
    the buffer's exponent gamma, the smaller one at lam = 1, gamma = 0.5. At nu = 1e-3 the buffer counts again."""
    eigs, gamma = [0.1, 1.0], 0.5
    at = ode_rate("qhm", eigs, gamma=gamma, nu=0.0)
    assert at.per_lambda.tolist() == pytest.approx([0.1 / gamma, 1.0 / gamma], rel=1e-14)
    assert at.exponent == pytest.approx(0.2, rel=1e-14) and at.roots.shape == (2, 1)
    near = ode_rate("qhm", eigs, gamma=gamma, nu=1e-3)
    assert near.per_lambda[1] == pytest.approx(gamma, rel=1e-2)


def test_near_nu_0_the_buffer_counts():
    """At nu = 1e-9 the buffer's mode reaches W with amplitude O(nu): it is counted (rate ~ beta, not GD's)."""
    near = spectral_radius("qhm", [0.3], alpha=1.0, beta=0.9, nu=1e-9)
    assert near.rate == pytest.approx(0.9, abs=1e-8) and near.roots.shape == (1, 2) and min(abs(near.roots[0])) > 0.6


@pytest.mark.parametrize("method, hyper, smaller", [
    ("hb", {"eta": 0.4, "beta": 0.0}, lambda: Z - 1 + sp.Rational(0.4) * LAM),  # heavy ball at beta = 0 is GD
    ("nag-sc", {"eta": 0.4, "beta": 0.0}, lambda: Z - 1 + sp.Rational(0.4) * LAM),
    ("qhm", {"alpha": 0.4, "beta": 0.0, "nu": 0.3}, lambda: Z - 1 + sp.Rational(0.4) * LAM),
    ("triple-momentum", {"alpha": 0.4, "beta": 0.0, "gamma": 0.0}, lambda: Z - 1 + sp.Rational(0.4) * LAM),
    # mom2 at beta2 = 0: v = beta v + g, W -= eta v is heavy ball in velocity form, (z - 1)(z - beta) + eta lam z
    ("mom2", {"eta": 0.4, "beta": 0.3, "beta2": 0.0},
     lambda: (Z - 1) * (Z - sp.Rational(0.3)) + sp.Rational(0.4) * LAM * Z),
    # two equal velocities v: W+ = W + eta/3 (-g + 2 v+), v+ = b v - g gives (z - 1)(z - b) + (eta lam/3)(3z - b)
    (TWO_VELOCITY, {"eta": 0.4, "b2": 0.9, "b3": 0.9},
     lambda: (Z - 1) * (Z - sp.Rational(0.9)) + sp.Rational(0.4) * LAM / 3 * (3 * Z - sp.Rational(0.9))),
    (GATED, {"eta": 0.4, "mu": 2.0, "rho": 1.9, "c": 0.0}, lambda: Z - 1 + sp.Rational(0.4) * LAM),
])
def test_special_settings_reduce_to_the_smaller_recursion(method, hyper, smaller):
    """At these settings N and p share a factor that they do not share for generic hyper-parameters; the rate
    polynomial at the setting (floats as the exact rationals they are, sp.Rational(0.4) != 2/5) is the smaller
    recursion's (written out by hand above), its radius that of the
    smaller polynomial's companion matrix, and the roots beyond its degree are padded with 0."""
    m = load_method(method)
    reduced = rate_polynomial(m, **hyper)
    assert sp.expand(reduced - smaller()) == 0
    eigs = np.array([0.05, 0.7, 2.0])
    res = spectral_radius(m, eigs, **hyper)
    want_fn = sp.lambdify(LAM, sp.Poly(smaller(), Z).all_coeffs())
    for lam_, radius, roots in zip(eigs, res.radius, res.roots):
        want = np.linalg.eigvals(_companion(want_fn(lam_)))
        assert radius == pytest.approx(np.max(np.abs(want)), rel=1e-13, abs=1e-15)
        q = len(want)
        order = lambda r: (round(abs(r), 9), r.imag)  # noqa: E731  (a conjugate pair: by modulus, then sign)
        assert roots.shape == (m.degree,) and sorted(roots[:q], key=order) == pytest.approx(sorted(want, key=order))
        assert roots[q:].tolist() == [0] * (m.degree - q)


def _companion(coeffs: list) -> np.ndarray:
    """Companion matrix of the monic polynomial with coefficients `coeffs` (leading 1 first)."""
    c = np.array([float(x) for x in coeffs[1:]])
    comp = np.eye(len(c), k=-1)
    comp[0, :] = -c
    return comp


def test_a_mode_that_stops_reaching_w_changes_neither_rate_nor_stability():
    """GATED at c = 0 is GD, however unstable its buffer (rho = 1.9): stable, rate |1 - eta lam|, the same iterates as
    GD, and Jury's conditions on the setting's polynomial say stable where those on the generic one say not. At
    c = 1e-3 the buffer reaches W with amplitude O(c) and the iteration grows like rho, as the rate says."""
    from ntkode.theory import jury_conditions
    m = load_method(GATED)
    eigs, hyper = [0.1, 0.5, 2.0], {"eta": 0.4, "mu": 2.0, "rho": 1.9}
    at = spectral_radius(m, eigs, **hyper, c=0.0)
    assert at.stable and at.rate == pytest.approx(spectral_radius("gd", eigs, eta=0.4).rate, rel=1e-15)
    H = np.diag(eigs)
    np.testing.assert_array_equal(iterate(m, H, np.ones(3), 50, **hyper, c=0.0)[0],
                                  iterate("gd", H, np.ones(3), 50, eta=0.4)[0])
    generic = sp.lambdify((LAM, *m.symbols), jury_conditions(rate_polynomial(m)))
    setting = sp.lambdify(LAM, jury_conditions(rate_polynomial(m, **hyper, c=0.0)))
    for lam_ in eigs:
        assert bool(setting(lam_)) and not bool(generic(lam_, 0.4, 2.0, 1.9, 0.0))
    near = spectral_radius(m, eigs, **hyper, c=1e-3)
    assert not near.stable and near.rate == pytest.approx(1.9, rel=1e-2)
    E, scale = iterate(m, H, np.ones(3), 400, renormalise=True, **hyper, c=1e-3)
    growth = (scale[-1] + math.log(np.linalg.norm(E[-1])) - scale[200] - math.log(np.linalg.norm(E[200]))) / 200
    assert growth == pytest.approx(math.log(near.rate), abs=0.02)


def test_two_equal_velocities_are_one():
    """TWO_VELOCITY at b2 = b3 = 0.9, eta lam = 1: the hand quadratic z^2 - 0.9 z + 0.6 has complex roots of modulus
    sqrt(0.6), which the iterated error shows; the generic cubic would add the root 0.9. Just off the diagonal
    (b3 = b2 (1 + 1e-12)) the difference mode reaches W with amplitude O(b2 - b3) and the rate is 0.9 again."""
    m = load_method(TWO_VELOCITY)
    at = spectral_radius(m, [1.0], eta=1.0, b2=0.9, b3=0.9)
    assert at.rate == pytest.approx(math.sqrt(0.6), rel=1e-14)
    E, _ = iterate(m, [[1.0]], [1.0], 400, eta=1.0, b2=0.9, b3=0.9)
    decay = math.log(abs(E[399, 0]) + abs(E[400, 0])) - math.log(abs(E[199, 0]) + abs(E[200, 0]))
    assert decay / 200 == pytest.approx(0.5 * math.log(0.6), abs=0.02)
    off = spectral_radius(m, [1.0], eta=1.0, b2=0.9, b3=0.9 * (1 + 1e-12))
    assert off.rate == pytest.approx(0.9, rel=1e-9)


def test_a_coincidence_at_one_lam_keeps_the_rate_continuous():
    """GATED with c = 0.5, mu = 2: at lam* = 1/mu = 0.5 the buffer is not excited (Res_z(N, p) = c rho lam (mu lam - 1)
    vanishes at that lam only), so the exact error decays like |1 - eta lam*| = 0.5 there; but at every lam near
    lam* the buffer's mode reaches W with amplitude O(|lam - lam*|) and dominates. The rate counts it at lam* too
    (docs/theory.md#state-space): it equals its limit from either side, and the iteration at lam* (1 + 1e-6) shows
    it."""
    m = load_method(GATED)
    hyper = {"eta": 1.0, "mu": 2.0, "rho": 0.95, "c": 0.5}
    at = spectral_radius(m, [0.5], **hyper).rate
    sides = [spectral_radius(m, [0.5 * (1 + d)], **hyper).rate for d in (-1e-9, 1e-9)]
    assert at == pytest.approx(sides[0], abs=1e-8) and at == pytest.approx(sides[1], abs=1e-8)
    assert at > 0.94
    E_at, _ = iterate(m, [[0.5]], [1.0], 60, **hyper)
    assert abs(E_at[60, 0]) == pytest.approx(0.5**60, rel=1e-12)  # the unexcited buffer: 1 - eta lam* per step
    E, _ = iterate(m, [[0.5 * (1 + 1e-6)]], [1.0], 400, **hyper)
    assert E[400, 0] / E[399, 0] == pytest.approx(at, rel=1e-6)


#: special settings per method: (method, the hyper-parameters that make them, strategy for the others)
SPECIAL = [
    ("qhm", {"nu": 0.0}, {"alpha": st.floats(0.05, 2.5), "beta": st.floats(0.0, 0.999)}),
    ("qhm", {"beta": 0.0}, {"alpha": st.floats(0.05, 2.5), "nu": st.floats(0.0, 1.0)}),
    ("hb", {"beta": 0.0}, {"eta": st.floats(0.05, 2.5)}),
    ("mom2", {"beta2": 0.0}, {"eta": st.floats(0.05, 2.5), "beta": st.floats(0.0, 0.999)}),
    ("triple-momentum", {"beta": 0.0, "gamma": 0.0}, {"alpha": st.floats(0.05, 2.5)}),
    (GATED, {"c": 0.0}, {"eta": st.floats(0.05, 2.5), "mu": st.floats(0.05, 4.0), "rho": st.floats(0.0, 2.0)}),
]


@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), eigs=spectra())
def test_rates_agree_at_special_settings(data, eigs):
    """At a setting where more of p's modes stop reaching W (drawn: any method of SPECIAL, the others in their
    domains, stable or not; and TWO_VELOCITY on its diagonal), `assert_rates_agree`: the reduced rate is the
    spectral_radius's, its roots are eigenvalues of T(lam), and the declared step iterated on the spectrum decays
    like rate^k."""
    from ntkode.theory.discrete import setting_polynomial
    method, fixed, free = data.draw(st.sampled_from(SPECIAL + [(TWO_VELOCITY, {}, {})]))
    m = load_method(method)
    hyper = {**fixed, **{name: data.draw(strategy) for name, strategy in free.items()}}
    if m.name == "two-velocity":
        damping = data.draw(st.floats(0.01, 0.999))
        hyper = {"eta": data.draw(st.floats(0.05, 2.5)), "b2": damping, "b3": damping}
    assert setting_polynomial(m, tuple(hyper[n] for n in m.hyper_names)) is not None
    assert_rates_agree(m, eigs, hyper)


@pytest.mark.parametrize("method, eigs, hyper", [
    # the unread buffer v (rho = 1) dominates the one-step map: the kit's squared route cannot see W's 0.9 there
    (GATED, [0.1, 1.0], {"eta": 1.0, "mu": 1.0, "rho": 1.0, "c": 0.0}),
    # rate exactly 0 on the exact spectrum; the kernel built from it carries eigenvalues 1 - 6e-16
    ("triple-momentum", [1.0, 1.0], {"alpha": 1.0, "beta": 0.0, "gamma": 0.0}),
    # rho = 1 - 4e-8 by the edge: a squared route of 2^33 steps held the map's own rounding (4.9e-9) to 1.4e-9;
    # aggmo's 1 - 5e-7 at a = 1e-6 (7.8e-7 at K = 2^24 against 7.2e-7): no squared route below |log rho| = 1e-6
    (str(HERE / "methods" / "four-step.toml"), [1.0, 1.0], {"eta": 3.9997999999959997, "beta": 0.9999, "beta2": 0.0}),
    ("aggmo", [0.0026417232047362404, 1.0], {"eta": 0.002999999624999484, "a": 1e-06}),
])
def test_kit_at_special_settings_found_by_ci(method, eigs, hyper):
    """Cases hypothesis found in CI: the kit's iterated routes must agree with the rate there."""
    assert_rates_agree(load_method(method), np.array(eigs), hyper)


def test_kit_still_catches_a_wrong_rate_at_a_special_setting():
    """The same gated case with the rate reported 10% off: the kit's iterated route must fail it."""
    import ntkode.testing as kit
    m = load_method(GATED)
    wrong = spectral_radius(m, [0.1, 1.0], eta=1.0, mu=1.0, rho=1.0, c=0.0).rate * 1.1
    with pytest.raises(kit.RatesDisagree):
        kit._check_iterated(m, np.diag([0.1, 1.0]), np.eye(2), {"eta": 1.0, "mu": 1.0, "rho": 1.0, "c": 0.0}, wrong,
                            1e-12, 400, iterate, None)


def test_degree_four_uses_companion_roots_and_jury_beyond_cubics():
    """four-step's p(z) = z^4 - (1 + beta - eta lam) z^3 + beta z^2 - beta2 z + beta2 (written out here from the
    step): no closed-form kernel, so its rates come from companion eigenvalues; they must equal numpy.roots of
    that polynomial, and Jury's conditions must agree with them."""
    from ntkode.theory import jury_conditions
    from ntkode.theory.discrete import rate_polynomial
    m = load_method(DECLARED["four-step"])
    assert m.degree == 4
    rng = np.random.default_rng(0)
    stable_fn = sp.lambdify((LAM, *m.symbols), jury_conditions(rate_polynomial(m)), "numpy")
    for _ in range(200):
        lam_, eta, beta, beta2 = rng.uniform(0.05, 3), rng.uniform(0.01, 2), rng.uniform(0, 0.99), rng.uniform(0, 0.49)
        want = np.max(np.abs(np.roots([1, -(1 + beta - eta * lam_), beta, -beta2, beta2])))
        got = spectral_radius(m, [lam_], eta=eta, beta=beta, beta2=beta2).rate
        assert got == pytest.approx(want, rel=1e-9)
        if abs(want - 1) > 1e-6:
            assert bool(stable_fn(lam_, eta, beta, beta2)) == (want < 1)


def test_every_method_with_a_learning_rate_has_it_as_a_step_size():
    for method in ALL:
        m = load_method(DECLARED.get(method, method))
        assert m.step_size_hypers == tuple(n for n in m.hyper_names if n in ("eta", "alpha")), method


# -- the numeric tuner reproduces every closed form ----------------------------------------------
@pytest.mark.parametrize("method", ["gd", "hb", "nag-sc"])
@pytest.mark.parametrize("lo, hi", [(0.2, 3.0), (1e-3, 1.0), (0.5, 0.9), (0.01, 100.0)])
def test_numeric_tuner_reproduces_the_closed_form(method, lo, hi):
    closed = optimal(method, lo, hi)
    found = numeric_optimum(method, lo, hi)
    assert closed["source"] == "closed form" and found["source"] == "numeric"
    assert found["rate"] == pytest.approx(closed["rate_formula"], rel=2e-7)
    for name, value in closed["hyper"].items():
        assert found["hyper"][name] == pytest.approx(value, rel=5e-4, abs=1e-6), name


def test_qhm_optimum_is_heavy_ball_at_nu_1():
    """QHM at nu = 1 is heavy ball with step alpha (1 - beta) (docs/theory.md#state-space), so its tuned rate is
    Polyak's (sqrt(k) - 1)/(sqrt(k) + 1), reached on the closed end nu = 1 of its domain. The numeric tuner (QHM's
    [optimum] now states this closed form) must find that end by itself."""
    best = numeric_optimum(DECLARED["qhm"], 0.2, 3.0)
    polyak = optimal("hb", 0.2, 3.0)
    assert best["hyper"]["nu"] == 1.0
    assert best["rate"] == pytest.approx(polyak["rate_formula"], rel=1e-6)
    assert best["hyper"]["alpha"] * (1 - best["hyper"]["beta"]) == pytest.approx(polyak["hyper"]["eta"], rel=1e-3)


def test_nag_sc_optimum_is_lessard_recht_packard_and_the_standard_tuning_is_named():
    """Lessard, Recht & Packard 2016: eta = 4/(3 L + mu), beta = (sqrt(3k+1) - 2)/(sqrt(3k+1) + 2),
    rho = 1 - 2/sqrt(3k+1); Nesterov's textbook tuning (1/L, (sqrt(k)-1)/(sqrt(k)+1)) reaches 1 - 1/sqrt(k)."""
    lo, hi = 0.2, 3.0
    q = math.sqrt(3 * hi / lo + 1)
    best = optimal("nag-sc", lo, hi)
    assert best["hyper"]["eta"] == pytest.approx(4 / (3 * hi + lo))
    assert best["hyper"]["beta"] == pytest.approx((q - 2) / (q + 2))
    assert best["rate"] == pytest.approx(1 - 2 / q) == pytest.approx(0.7051160877, abs=1e-9)
    assert spectral_radius("nag-sc", [0.2, 1, 3], lr=0.4347826, momentum=0.54454).rate == pytest.approx(0.70515, abs=1e-5)
    from ntkode.theory import named_tuning
    std = named_tuning("nag-sc", "standard", lo, hi)
    assert std["rate"] == pytest.approx(1 - math.sqrt(lo / hi)) == pytest.approx(0.7418011103, abs=1e-9)
    tm = named_tuning(DECLARED["triple-momentum"], "standard", lo, hi)
    assert tm["rate"] == pytest.approx(1 - math.sqrt(lo / hi), rel=1e-9)


# -- the engine runs the declared step ------------------------------------------------------------
ENGINE_CASES = [(DECLARED["qhm"], {"alpha": 0.6, "beta": 0.5, "nu": 0.7}),
                (DECLARED["triple-momentum"], {"alpha": 0.8, "beta": 0.3, "gamma": 0.2}),
                (DECLARED["extragradient"], {"eta": 0.5}),
                ("seed-nag", {"eta": 0.5, "r": 3.0}), ("seed-mom2", {"eta": 0.5, "beta": 0.5, "beta2": 0.2}),
                ("nag", {"eta": 0.5, "r": 3.0}), ("mom2", {"eta": 0.5, "beta": 0.5, "beta2": 0.2}),
                (DECLARED["four-step"], {"eta": 0.5, "beta": 0.4, "beta2": 0.2}),
                (str(HERE / "methods" / "idle.toml"), {"eta": 0.5, "beta": 0.4, "rho": 0.5})]


@pytest.mark.parametrize("name, hyper", ENGINE_CASES)
@pytest.mark.parametrize("space", ["z", "w"])
def test_dense_engine_trajectory_is_T_iterated_on_the_initial_kernel(name, hyper, space):
    """A tiny net with a tiny initial error keeps every activation pattern at every step (kernel drift exactly 0
    throughout, checked): the engine's error is then exactly the declared step iterated on H(W_0)
    (docs/theory.md#state-space), to round-off."""
    X, y = sphere_data(6, 4, seed=3)
    W, a = init_network(400, 4, seed=0)
    H0 = ntk_empirical(W, a, X)
    step = 0.6 / np.linalg.eigvalsh(H0)[-1]
    scaled = {n: v * step if n in ("alpha", "eta") else v for n, v in hyper.items()}
    u0 = np.maximum(W @ X.T, 0).T @ a / np.sqrt(400)
    y = u0 + 1e-4 * y
    res = simulate(name, X, y, [400], 40, seeds=[0], hyper=scaled, space=space, drift_steps=tuple(range(41)),
                   progress=False)
    assert np.all(res.kernel_drift[0, 0, 0] == 0.0)  # no activation pattern ever changed: exactly linear
    E, _ = iterate(name, H0, u0 - y, 40, **scaled)
    expected = np.linalg.norm(E, axis=1)
    # e = u - y is a difference of O(||u_0||) numbers: each step adds ~n eps ||u_0|| of round-off, 40 steps at most
    roundoff = 40 * len(y) * np.finfo(float).eps * np.linalg.norm(u0)
    np.testing.assert_allclose(res.error_norm[0, 0, 0], expected, rtol=1e-9, atol=roundoff)
    assert expected[-1] < 0.9 * expected[0]


# -- command line --------------------------------------------------------------------------------
def test_qhm_end_to_end_on_the_command_line(tmp_path, capsys):
    qhm = DECLARED["qhm"]
    assert main(["derive", qhm, "--json"]) == 0
    derived = json.loads(capsys.readouterr().out)
    assert "nu" in derived["polynomial"] and len(derived["roots"]) == 2
    assert main(["rates", qhm, "--eigs", "0.2,1,3", "--hyper", "alpha=0.5,beta=0.6,nu=0.7", "--json"]) == 0
    rates = json.loads(capsys.readouterr().out)
    expected = spectral_radius(qhm, [0.2, 1, 3], alpha=0.5, beta=0.6, nu=0.7)
    assert rates["rate"] == pytest.approx(expected.rate) and rates["stable"] is True
    assert [p["radius"] for p in rates["per_eigenvalue"]] == pytest.approx(expected.radius.tolist())
    assert main(["rates", qhm, "--eigs", "0.2,1,3", "--optimal", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert set(best["hyper"]) == {"alpha", "beta", "nu"} and best["rate"] < rates["rate"]
    assert best["rate"] == pytest.approx(spectral_radius(qhm, [0.2, 1, 3], **best["hyper"]).rate, rel=1e-9)
    out = tmp_path / "qhm.npz"
    assert main(["simulate", "--method", qhm, "--hyper", "alpha=0.5,beta=0.6,nu=0.7", "--n", "6", "--d", "5",
                 "--width", "64", "--steps", "20", "--out", str(out), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "qhm" and out.exists()


@pytest.mark.parametrize("argv, message", [
    (["rates", "hb", "--eigs", "1", "--lr", "0.5"], "needs --momentum"),
    (["rates", "hb", "--eigs", "1", "--lr", "0.5", "--hyper", "momentun=0.1"], "did you mean 'momentum'"),
    (["rates", "hb", "--eigs", "1", "--lr", "0.5", "--hyper", "beta=1.5"], "must lie in [0, 1)"),
    (["rates", "hb", "--eigs", "1", "--lr", "0.5", "--hyper", "beta"], "NAME=VALUE"),
    (["rates", "hb", "--eigs", "1", "--lr", "0.5", "--hyper", "beta=x"], "not a number"),
    (["rates", "hb", "--eigs", "1", "--lr", "0.5", "--momentum", "0.1", "--hyper", "momentum=0.2"], "both"),
    (["rates", "gd", "--eigs", "1", "--lr", "0.5", "--momentum", "0.1"], "no hyper-parameter 'momentum'"),
    (["rates", "hb", "--eigs", "1", "--optimal", "--lr", "0.5"], "does not use --lr"),
    (["rates", "hb", "--eigs", "1", "--tuning", "standard"], "go with --optimal"),
    (["rates", "hb", "--eigs", "1,2", "--optimal", "--tuning", "standard"], "has no --tuning 'standard'"),
    (["rates", "hb", "--eigs", "1", "--lr", "0.5", "--momentum", "0.1", "--resolution", "high"], "add --ode"),
    (["derive", "hb", "--resolution", "high"], "add --ode"),
    (["derive", "sgd"], "unknown method 'sgd'"),
    (["rates", "triple-momentum", "--eigs", "1", "--ode", "--hyper", "alpha=1"],
     "declares no [ode]"),
    (["simulate", "--method", "hb", "--width", "8", "--steps", "2", "--lr", "0.1", "--out", "x.npz"], "needs --momentum"),
])
def test_hyper_parameter_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_cli_names_flags_the_library_names_parameters():
    assert cli_message(NtkodeError("widths must be positive integers; got [0]", param="widths")) \
        == "--width must be positive integers; got [0]"
    assert cli_message(NtkodeError("alpha must lie in (0, inf); got -1", param="hyper:alpha")) \
        == "--hyper alpha must lie in (0, inf); got -1"
    assert cli_message(NtkodeError("lr must lie in (0, inf); got -1", param="hyper:lr")) == "--lr must lie in (0, inf); got -1"
    assert cli_message(NtkodeError("no parameter here")) == "no parameter here"
    # verify has no alias flags (only --hyper NAME=VALUE), simulate has no --damping
    assert cli_message(NtkodeError("method 'nag' needs r", param="hyper:r"), "verify") == "method 'nag' needs --hyper r"
    assert cli_message(NtkodeError("method 'nag' needs r", param="hyper:r"), "simulate") == "method 'nag' needs --r"
    assert cli_message(NtkodeError("damping must lie in (0, inf)", param="hyper:damping"), "simulate") \
        == "--hyper damping must lie in (0, inf)"


def test_methods_command_and_version(capsys):
    assert main(["methods"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in builtin_names()) and "eta (lr) in (0, inf)" in listing
    assert main(["methods", "nag-sc"]) == 0
    text = capsys.readouterr().out
    assert "[tuning.standard]" in text and load_method("nag-sc") == Method.from_dict(
        __import__("tomllib").loads(text), builtin=True)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"ntkode {__version__}"


def test_coefficients_may_use_min_of_the_step_counter():
    """A start-up written as Min(1, k - 1): no step at k = 1, full steps after (the seed notebook's buffers)."""
    m = declare(step=["start = Min(1, k - 1)", "W = W - start*eta*grad(W)"])
    E, _ = iterate(m, [[1.0]], [1.0], 3, eta=0.5)
    assert E[:, 0] == pytest.approx([1.0, 1.0, 0.5, 0.25])
    assert m.time_varying and derive(m).rate_polynomial == derive("gd").rate_polynomial


def test_a_declaration_given_as_dict_file_or_object_is_the_same_method(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text('name = "toy"\nstep = ["W = W - eta*grad(W)"]\n[hyper]\neta = "(0, inf)"\n[state]\nW = "W0"\n')
    from_file = load_method(path)
    assert from_file == load_method(str(path)) == declare() == load_method(declare())
    assert spectral_radius(from_file, [1.0, 2.0], eta=0.3).rate == spectral_radius("gd", [1.0, 2.0], lr=0.3).rate
