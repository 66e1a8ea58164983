"""ntkode.testing, the property-testing kit (docs/theory.md#property-tests): a user's own declaration tested with
the issue's example file in a separate pytest run, the kit without hypothesis, its strategies' reach, and each
assertion failing when the route it checks is broken."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import sympy as sp
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import ntkode.theory
from conftest import examples
from ntkode.declaration import load_method
from ntkode.errors import NtkodeError
from ntkode.testing import (KAPPA_MAX, SPECTRUM_KINDS, RatesDisagree, assert_invariant_under_conjugation,
                            assert_ode_rate_agrees, assert_rates_agree, assert_scaling_equals_lr, spectra,
                            stable_hyper)
from ntkode.theory import spectral_radius

#: the issue's example, verbatim
USER_TEST = '''\
from hypothesis import given
from ntkode.testing import spectra, stable_hyper, assert_rates_agree

@given(spectra(), stable_hyper("my_method.toml"))
def test_my_method(eigs, hyper):
    assert_rates_agree("my_method.toml", eigs, hyper)
'''

#: a method ntkode does not ship: heavy ball whose gradient is extrapolated from the previous one
#: (optimistic / Popov-style); three states, of which one mode (at z = 0) never reaches W
USER_METHOD = '''\
name = "my_method"
title = "heavy ball with an extrapolated gradient"
step = [
  "g = grad(W)",
  "W, W_prev, g_prev = W - eta*((1 + theta)*g - theta*g_prev) + beta*(W - W_prev), W, g",
]

[hyper]
eta = "(0, inf)"
beta = "[0, 1)"
theta = "[0, 1)"

[state]
W = "W0"
W_prev = "W0"
g_prev = "0"
'''

#: the same with the classic sign error: gradient ascent, stable for no step size
BROKEN_METHOD = USER_METHOD.replace("W - eta*((1 + theta)*g", "W + eta*((1 + theta)*g")

#: the user's run is outside this repository, so it has no conftest; 10 examples keep it within CI time
#: (the demonstration in a fresh virtualenv, README, runs hypothesis's default 100)
USER_CONFTEST = '''\
from hypothesis import settings
settings.register_profile("short", max_examples=10, deadline=None, derandomize=True, database=None)
settings.load_profile("short")
'''


def _run_user_suite(tmp_path: Path, method_text: str) -> subprocess.CompletedProcess:
    (tmp_path / "my_method.toml").write_text(method_text)
    (tmp_path / "test_my_method.py").write_text(USER_TEST)
    (tmp_path / "conftest.py").write_text(USER_CONFTEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYPOTHESIS", "NTKODE_HYPOTHESIS"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_method.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_users_example_passes_on_their_own_method(tmp_path):
    (tmp_path / "copy.toml").write_text(USER_METHOD)
    declared = load_method(tmp_path / "copy.toml")
    assert len(declared.state_names) == 3 and declared.degree == 2  # g_prev - lam W_prev is a mode at z = 0
    run = _run_user_suite(tmp_path, USER_METHOD)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_users_example_fails_on_a_broken_declaration(tmp_path):
    run = _run_user_suite(tmp_path, BROKEN_METHOD)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed" in run.stdout and "is Jury-stable for no step size" in run.stdout


def test_import_without_hypothesis_names_the_extra():
    code = "import sys; sys.modules['hypothesis'] = None\ntry:\n    import ntkode.testing\nexcept ImportError as e:\n" \
           "    print(repr(str(e)))\n    raise SystemExit(3)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stdout + run.stderr
    message = eval(run.stdout.strip())
    assert message == 'ntkode.testing needs hypothesis; install it with: pip install "ntkode[testing]"'
    assert "\n" not in message
    import ntkode  # the package itself does not need hypothesis
    assert "hypothesis" not in Path(ntkode.__file__).with_name("__init__.py").read_text()


# -- the strategies reach what they promise -------------------------------------------------------
@pytest.mark.parametrize("kind", SPECTRUM_KINDS)
@settings(max_examples=examples(20), deadline=None)
@given(data=st.data())
def test_spectra_are_normalised(kind, data):
    eigs = data.draw(spectra(kinds=(kind,)))
    assert eigs[-1] == 1.0 and eigs[0] >= 1 / KAPPA_MAX and np.all(np.diff(eigs) >= 0)


@pytest.mark.parametrize("kind, condition", [
    ("log-uniform", lambda e: e[-1] / e[0] > 5e3),
    ("near-singular", lambda e: e[-1] / e[0] > 9e3),
    ("clustered", lambda e: len(e) > 2 and np.min(np.diff(e) / e[1:]) < 1e-6),
    ("heavy-tailed", lambda e: len(e) > 4 and np.median(e) < 0.05),
])
def test_spectra_reach_the_hard_regions(kind, condition):
    assert condition(find(spectra(kinds=(kind,)), condition, settings=settings(max_examples=2000, database=None)))


@pytest.mark.parametrize("method", ["hb", "mom2", "nag", "qhm", "triple-momentum"])
@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_stable_hyper_is_stable_on_the_whole_interval(method, data):
    hyper = data.draw(stable_hyper(method))
    grid = np.geomspace(1 / KAPPA_MAX, 1.0, 400)
    assert spectral_radius(method, grid, **hyper).rate < 1


@pytest.mark.parametrize("method, edge", [("hb", lambda h: 2 * (1 + h["beta"])),
                                          ("nag-sc", lambda h: (2 + 2 * h["beta"]) / (1 + 2 * h["beta"]))])
def test_stable_hyper_reaches_the_boundary_and_the_double_root(method, edge):
    """Jury's edge at lam = 1 in closed form (HB: eta < 2(1 + beta); NAG-SC: eta < (2 + 2 beta)/(1 + 2 beta)),
    and the double root at lam = 1, discriminant (1 + beta - eta)^2 - 4 beta = 0 for HB."""
    near = find(stable_hyper(method), lambda h: 0 < 1 - h["eta"] / edge(h) < 1e-6,
                settings=settings(max_examples=3000, database=None))
    assert spectral_radius(method, [1.0], **near).rate < 1
    if method == "hb":
        double = find(stable_hyper(method), lambda h: abs((1 + h["beta"] - h["eta"]) ** 2 - 4 * h["beta"]) < 1e-9,
                      settings=settings(max_examples=3000, database=None))
        assert spectral_radius(method, [1.0], **double).rate == pytest.approx(math.sqrt(double["beta"]), abs=1e-4)


def test_stable_hyper_rejects_a_method_with_no_stable_step(tmp_path):
    path = tmp_path / "ascent.toml"
    path.write_text(BROKEN_METHOD)
    with pytest.raises(NtkodeError, match="'my_method' is Jury-stable for no step size .*beta in \\[0, 1\\)"):
        find(stable_hyper(path), lambda h: True, settings=settings(max_examples=50, database=None))


# -- each assertion fails when its route is broken ------------------------------------------------
EIGS = np.array([0.05, 0.3, 1.0])
HB = {"eta": 0.8, "beta": 0.5}


def test_assertions_pass_on_a_plain_case():
    assert_rates_agree("hb", EIGS, HB)
    assert_ode_rate_agrees("hb", EIGS, {"damping": 0.7})
    kernel = np.diag(EIGS) + 0.01
    assert_invariant_under_conjugation("hb", kernel, HB)
    assert_scaling_equals_lr("hb", kernel, HB, 3.0)


def _shift_radius(factor):
    real = ntkode.theory.spectral_radius

    def fake(method, eigs, **hyper):
        res = real(method, eigs, **hyper)
        return type(res)(res.method, res.rate * factor, res.radius * factor, res.roots, res.stable,
                         res.argmax_lambda, res.eigs, res.hyper)
    return fake


def test_rates_agree_catches_a_compiled_rate_off_by_1e_9(monkeypatch):
    monkeypatch.setattr(ntkode.theory, "spectral_radius", _shift_radius(1 + 1e-9))
    with pytest.raises(RatesDisagree, match="compiled spectral radius"):
        assert_rates_agree("hb", EIGS, HB)


def test_rates_agree_catches_an_iteration_with_another_step(monkeypatch):
    real = ntkode.theory.iterate
    monkeypatch.setattr(ntkode.theory, "iterate", lambda m, H, e0, steps, renormalise=False, **hyper:
                        real(m, H, e0, steps, renormalise, **{**hyper, "eta": hyper["eta"] * 0.95}))
    with pytest.raises(RatesDisagree, match="iterating the declared step"):
        assert_rates_agree("hb", EIGS, HB)


def test_rates_agree_catches_a_wrong_stability_flag(monkeypatch):
    real = ntkode.theory.spectral_radius

    def fake(method, eigs, **hyper):
        res = real(method, eigs, **hyper)
        return type(res)(res.method, res.rate, res.radius, res.roots, not res.stable, res.argmax_lambda, res.eigs,
                         res.hyper)
    monkeypatch.setattr(ntkode.theory, "spectral_radius", fake)
    with pytest.raises(RatesDisagree, match="stable="):
        assert_rates_agree("hb", EIGS, HB)


def test_ode_assertion_catches_an_exponent_off_by_10_percent(monkeypatch):
    """The ODE route's tolerance is 6.7 % of the exponent (see assert_ode_rate_agrees)."""
    real = ntkode.theory.ode_rate

    def fake(*args, **kwargs):
        res = real(*args, **kwargs)
        return type(res)(res.method, res.resolution, res.exponent * 1.1, res.order, res.per_lambda * 1.1,
                         res.order_per_lambda, res.roots, res.argmin_lambda, res.eigs, res.hyper)
    monkeypatch.setattr(ntkode.theory, "ode_rate", fake)
    with pytest.raises(RatesDisagree, match="solve_ivp decays"):
        assert_ode_rate_agrees("hb", EIGS, {"damping": 0.7})


def test_ode_assertion_catches_a_wrong_sublinear_order(monkeypatch):
    real = ntkode.theory.ode_rate

    def fake(*args, **kwargs):
        res = real(*args, **kwargs)
        return type(res)(res.method, res.resolution, res.exponent, res.order + 0.25, res.per_lambda,
                         res.order_per_lambda + 0.25, res.roots, res.argmin_lambda, res.eigs, res.hyper)
    assert_ode_rate_agrees("nag", EIGS, {"r": 3.0})
    monkeypatch.setattr(ntkode.theory, "ode_rate", fake)
    with pytest.raises(RatesDisagree, match="order"):
        assert_ode_rate_agrees("nag", EIGS, {"r": 3.0})


def test_invariance_catches_a_rate_that_depends_on_the_eigenvectors(monkeypatch):
    real = ntkode.theory.iterate
    monkeypatch.setattr(ntkode.theory, "iterate", lambda m, H, e0, steps, renormalise=False, **hyper:
                        real(m, H + 1e-6 * np.diag(np.arange(len(H))), e0, steps, renormalise, **hyper))
    with pytest.raises(RatesDisagree, match="Q H Q"):
        assert_invariant_under_conjugation("hb", np.diag(EIGS) + 0.01, HB)


def test_scaling_catches_a_kernel_scaled_unlike_the_step(monkeypatch):
    real = ntkode.theory.spectral_radius
    monkeypatch.setattr(ntkode.theory, "spectral_radius",
                        lambda method, eigs, **hyper: real(method, np.asarray(eigs) ** 1.001, **hyper))
    with pytest.raises(RatesDisagree, match="radius on c"):  # beta = 0.1: real roots, the radius moves with eta lam
        assert_scaling_equals_lr("hb", EIGS, {"eta": 0.8, "beta": 0.1}, 3.0)


def test_scaling_finds_the_step_size_from_the_declaration_not_its_name(tmp_path):
    """QHM's step is alpha, triple momentum's alpha, the user's eta; a method with no step size is refused."""
    for method, hyper in (("qhm", {"alpha": 0.6, "beta": 0.5, "nu": 0.7}),
                          ("triple-momentum", {"alpha": 0.8, "beta": 0.3, "gamma": 0.2})):
        assert_scaling_equals_lr(method, EIGS, hyper, 2.5)
    path = tmp_path / "fixed.toml"
    path.write_text('name = "fixed"\nstep = ["W = W - grad(W)/4 + c*(W - W)"]\n[hyper]\nc = "[0, 1]"\n'
                    '[state]\nW = "W0"\n')
    with pytest.raises(ValueError, match="no step size"):
        assert_scaling_equals_lr(path, EIGS, {"c": 0.5}, 2.0)


def _fresh_hb(step: str):
    """Heavy ball with its step size named `step`: a declaration no cache of the kit holds yet."""
    from ntkode.declaration import Method
    return Method.from_dict({"name": f"hb-{step}", "hyper": {step: "(0, inf)", "beta": "[0, 1)"},
                             "state": {"W": "W0", "W_prev": "W0"},
                             "step": [f"W, W_prev = W - {step}*grad(W) + beta*(W - W_prev), W"]})


def test_rates_agree_catches_a_closed_form_off_by_1e_12(monkeypatch):
    m = _fresh_hb("probe_closed")
    real = ntkode.theory.derive

    def fake(method):
        d = real(method)
        return type(d)(**{**d.__dict__, "rate": d.rate * (1 + sp.Rational(1, 10**12))})
    monkeypatch.setattr(ntkode.theory, "derive", fake)
    with pytest.raises(RatesDisagree, match="closed-form rate"):
        assert_rates_agree(m, EIGS, {"probe_closed": 0.8, "beta": 0.5})


def test_rates_agree_catches_a_state_matrix_that_is_not_the_step():
    m = _fresh_hb("probe_transition")
    lam = sp.Symbol("lam", positive=True)
    m.char_poly()  # derived from the true T first; only the state-matrix route then sees the wrong one
    m.__dict__["transition"] = m.transition + sp.Matrix([[lam / 1000, 0], [0, 0]])
    with pytest.raises(RatesDisagree, match="not an eigenvalue of T"):
        assert_rates_agree(m, EIGS, {"probe_transition": 0.8, "beta": 0.5})


def test_iterated_route_sees_a_weakly_excited_slowest_mode():
    """QHM at beta = 1 - 1e-8 excites its buffer's mode (rate ~ 1 - 2e-8) with a weight ~ 1 - beta, so within
    ITERATED_MAX_STEPS the iteration still shows the next mode (0.998 per step); the route's retry at
    ITERATED_RETRY_STEPS must see the slow mode (hypothesis 6.170 found this case in CI)."""
    from ntkode import testing
    eigs = np.array([0.0010890229622607483, 0.0010890229622608919, 0.9999999999999999])
    hyper = {"alpha": 2.9999999849999996, "beta": 0.99999999, "nu": 0.5}
    assert testing.ITERATED_RETRY_STEPS > 4 * testing.ITERATED_MAX_STEPS
    testing.assert_rates_agree("qhm", eigs, hyper)


def _steps_on_a_kernel_scaled_by(factor):
    """apply_step on factor x H: the declared dynamics, with every eigenvalue off by `factor`."""
    from ntkode.theory import statespace
    real = statespace.apply_step
    return lambda method, H, state, k, args: real(method, factor * np.asarray(H), state, k, args)


@pytest.mark.parametrize("method, hyper", [("gd", {"eta": 1.0}), ("hb", {"eta": 1.0, "beta": 0.3}),
                                           ("mom2", {"eta": 1.0, "beta": 0.2, "beta2": 0.05})])
def test_iterated_route_holds_a_slow_mode_to_five_percent(method, hyper, monkeypatch):
    """A slowest eigenvalue 2e-4 (|log rho| ~ 2e-4 for GD at eta = 1): the step loop's K = ITERATED_MAX_STEPS
    resolves only ITERATED_ABS / K = 1.5e-3 of log rho, 7x the rate itself. The squared route (time-invariant steps)
    must pass on the true dynamics and catch dynamics whose slow mode is 5% faster or slower (the kernel seen by the
    step scaled by 1.05 or 0.95; given as a spectrum, so the one-step-map route does not run)."""
    from ntkode import testing
    from ntkode.theory import statespace
    eigs = np.array([2e-4, 0.3, 1.0])
    rate = spectral_radius(method, eigs, **hyper).rate
    assert testing.iterated_steps(math.log(rate)) == testing.ITERATED_MAX_STEPS
    assert testing.ITERATED_ABS / testing.ITERATED_MAX_STEPS > 5 * abs(math.log(rate))
    assert testing.squared_steps(math.log(rate)) > testing.ITERATED_MAX_STEPS
    assert testing.squared_steps(-2e-6) == 2 ** 27 and testing.squared_steps(-5e-7) == 0
    assert_rates_agree(method, eigs, hyper)
    for factor in (1.05, 0.95):
        with monkeypatch.context() as patch:
            patch.setattr(statespace, "apply_step", _steps_on_a_kernel_scaled_by(factor))
            with pytest.raises(RatesDisagree, match="iterating the declared step"):
                assert_rates_agree(method, eigs, hyper)
