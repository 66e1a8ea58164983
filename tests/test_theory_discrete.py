"""Discrete rates: closed form = companion matrix = iterated recurrence; Jury = blow-up.

The companion matrices and recurrences here come from the literature's polynomials, written out below
independently of the declarations, so a wrong declaration cannot move both sides together."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ntkode.theory import METHODS, NtkodeError, derive, jury_conditions, rate_function, spectral_radius
from ntkode.symbols import lam as LAM
from ntkode.theory.discrete import closed_form_rate, rate_polynomial
from ntkode.testing import assert_rates_agree, spectra, stable_hyper

from conftest import examples

#: p(z) = z^q + c_{q-1} z^(q-1) + ... + c_0 as [c_{q-1}, ..., c_0], from the literature (docs/theory.md#discrete):
#: GD z - (1 - eta lam); Polyak z^2 - (1 + beta - eta lam) z + beta; NAG-SC z^2 - (1 + beta)(1 - eta lam) z
#: + beta (1 - eta lam); NAG with beta_k -> 1 the same at beta = 1; two-coefficient momentum
#: z^3 - (1 + beta - eta lam) z^2 + (beta - beta2) z + beta2.
LITERATURE = {
    "gd": lambda lam, eta, beta, beta2: [-(1 - eta * lam)],
    "hb": lambda lam, eta, beta, beta2: [-(1 + beta - eta * lam), beta],
    "nag-sc": lambda lam, eta, beta, beta2: [-(1 + beta) * (1 - eta * lam), beta * (1 - eta * lam)],
    "nag": lambda lam, eta, beta, beta2: [-2 * (1 - eta * lam), 1 - eta * lam],
    "mom2": lambda lam, eta, beta, beta2: [-(1 + beta - eta * lam), beta - beta2, beta2],
}


def recurrence_coefficients(method, lam, eta, beta, beta2):
    """x_k = sum_j coef_j x_{k-1-j}: the literature's polynomial as a recurrence."""
    return -np.array(LITERATURE[method](lam, eta, beta, beta2), dtype=float)


def args(method, eta, beta, beta2):
    """The method's hyper-parameters in declared order (r = 3 for nag; it does not move the rate)."""
    values = {"eta": eta, "beta": beta, "beta2": beta2, "r": 3.0}
    return [values[n] for n in METHODS[method].hyper_names]


def lambdified(method, expr):
    return sp.lambdify((LAM, *METHODS[method].symbols), expr, "numpy")


@pytest.mark.parametrize("method", sorted(LITERATURE))
def test_declared_polynomial_equals_literature(method):
    z = sp.Symbol("z")
    lam_, eta, beta, beta2 = sp.symbols("lam_ eta_ beta_ beta2_")
    coeffs = sp.Poly(rate_polynomial(method), z).all_coeffs()[1:]
    values = {"eta": eta, "beta": beta, "beta2": beta2, "r": sp.Integer(3)}
    subs = {LAM: lam_, **{sym: values[n] for sym, n in zip(METHODS[method].symbols, METHODS[method].hyper_names)}}
    got = [sp.expand(c.subs(subs)) for c in coeffs]
    assert got == [sp.expand(c) for c in LITERATURE[method](lam_, eta, beta, beta2)]


def companion_radius(method, lam, eta, beta, beta2):
    coef = recurrence_coefficients(method, lam, eta, beta, beta2)
    comp = np.eye(len(coef), k=-1)
    comp[0, :] = coef
    return float(np.abs(np.linalg.eigvals(comp)).max())


def iterated_rate(method, lam, eta, beta, beta2, steps=2000, seed=0):
    """Growth per step of the renormalised recurrence over its second half."""
    coef = recurrence_coefficients(method, lam, eta, beta, beta2)
    x = np.random.default_rng(seed).standard_normal(len(coef))
    log_norm = 0.0
    for step in range(steps):
        x = np.concatenate([[coef @ x], x[:-1]])
        norm = np.linalg.norm(x)
        x /= norm
        if step == steps // 2 - 1:
            log_norm = 0.0
        else:
            log_norm += np.log(norm)
    return float(np.exp(log_norm / (steps - steps // 2 - 1)))


configs = st.tuples(
    st.sampled_from(sorted(LITERATURE)),
    st.floats(1e-2, 10.0),  # lam
    st.floats(1e-3, 1.0),  # eta * lam_max scale
    st.floats(0.0, 0.98),  # beta
    st.floats(0.0, 0.5),  # beta2
)


#: Polyak's tuning on [0.01, 1]: eta = 4/(1 + 0.1)^2, beta = (0.9/1.1)^2, double roots at both ends, rate 0.9/1.1
POLYAK = {"eta": 4 / 1.21, "beta": (0.9 / 1.1) ** 2}
#: mom2 at lam = 1 where Jury's first two conditions and |a_0| < 1 hold and only the reduced-row condition
#: |1 - a_0^2| > |a_1 - a_0 a_2| decides: unstable at eta = 0.5 (rate 1.04), stable at eta = 1 (rate 0.977)
MOM2_ROW = {"beta": 0.75, "beta2": 0.54}


@example(("hb", 1.0, POLYAK["eta"] / 2.5, POLYAK["beta"], 0.0))
@example(("hb", 0.01, POLYAK["eta"] * 0.01 / 2.5, POLYAK["beta"], 0.0))
@example(("mom2", 1.0, 0.5 / 2.5, MOM2_ROW["beta"], MOM2_ROW["beta2"]))
@given(configs)
def test_compiled_rate_equals_companion_radius(cfg):
    method, lam, x, beta, beta2 = cfg
    eta = 2.5 * x / lam
    fast = float(rate_function(method)(np.array([lam]), *args(method, eta, beta, beta2))[0])
    # near a double root the eigenvalues move like sqrt(machine eps): 1e-6 absolute
    assert fast == pytest.approx(companion_radius(method, lam, eta, beta, beta2), abs=1e-6)


@given(configs)
def test_closed_form_rate_equals_compiled_rate(cfg):
    method, lam, x, beta, beta2 = cfg
    eta = 2.5 * x / lam
    expr = closed_form_rate(rate_polynomial(method))
    sym = complex(lambdified(method, expr)(complex(lam), *args(method, eta, beta, beta2))).real
    fast = float(rate_function(method)(np.array([lam]), *args(method, eta, beta, beta2))[0])
    assert sym == pytest.approx(fast, abs=1e-6)


#: relative accuracy on log(rho) the Gelfand route is held to
GELFAND_REL = 0.01
#: bound on |r(K) - r(K/2)| + the Jordan term, r(k) = log ||x_k|| - k log rho (see `gelfand_log_rate`)
GELFAND_BUDGET = 100.0
#: a float64 root near a double root moves like sqrt(machine eps) ~ 1.5e-8 times the coefficients (<= ~30 here)
ROOT_ABS = 1e-6


def gelfand_steps(log_rho):
    """K = 2^p >= 2 GELFAND_BUDGET / (GELFAND_REL |log rho|) (|log rho| floored at ROOT_ABS), so that the
    budget's error GELFAND_BUDGET / (K/2) is at most GELFAND_REL |log rho|."""
    return 2 ** int(np.ceil(np.log2(2 * GELFAND_BUDGET / (GELFAND_REL * max(abs(log_rho), ROOT_ABS)))))


def gelfand_log_rate(method, lam, eta, beta, beta2, steps, seed=0):
    """Growth per step of the literature's recurrence iterated K = `steps` (a power of 2) times from a random
    window x_0: (log ||x_K|| - log ||x_{K/2}||) / (K/2), x_k = C^k x_0 the window (x_k, ..., x_{k-q+1}), C the
    companion matrix, C^(K/2) by repeated squaring (associativity), each square divided by its norm, logs carried.

    Error: |r(K) - r(K/2)| / (K/2), r(k) = log ||x_k|| - k log rho. Along a Jordan block of size j, r grows by
    (j - 1) log 2 <= 1.4 between K/2 and K; otherwise r stays between the logs of the extreme singular values of
    the dominant eigenvectors times x_0's weights on them: a spread of log cond + log(1/weight), below 2 x 40 for
    any case float64 can represent (cond < 1/eps ~ e^36; a normal draw's weight below e^-4 has probability < 2%,
    and seed 0 is fixed). GELFAND_BUDGET = 100 covers both, so the error is at most 2 GELFAND_BUDGET / K.
    """
    coef = recurrence_coefficients(method, lam, eta, beta, beta2)
    comp = np.eye(len(coef), k=-1)
    comp[0, :] = coef
    x = np.random.default_rng(seed).standard_normal(len(coef))
    norm = np.linalg.norm(comp)
    power, log_scale = comp / norm, np.log(norm)
    for _ in range(int(np.log2(steps)) - 1):
        power = power @ power
        norm = np.linalg.norm(power)
        power, log_scale = power / norm, 2 * log_scale + np.log(norm)
    half = power @ x
    return float((np.log(np.linalg.norm(power @ half)) - np.log(np.linalg.norm(half)) + log_scale) / (steps // 2))


def gelfand_tolerance(log_rho, steps):
    """|Gelfand log rate - log rho| allowed: the budget's 2 GELFAND_BUDGET / K, plus the float64 root error."""
    return 2 * GELFAND_BUDGET / steps + ROOT_ABS


#: slow modes, |log rho| ~ 2e-4: GD at eta lam = 2e-4; heavy ball and two-coefficient momentum at a small eta lam
SLOW = [("gd", 1.0, 2e-4 / 2.5, 0.0, 0.0), ("hb", 1.0, 1.4e-4 / 2.5, 0.3, 0.0), ("mom2", 1.0, 1.5e-4 / 2.5, 0.2, 0.05)]


@example(SLOW[0])
@example(SLOW[1])
@example(SLOW[2])
@example(("hb", 1.0, POLYAK["eta"] / 2.5, POLYAK["beta"], 0.0))  # Polyak's double root
@given(configs)
def test_rate_equals_decay_of_iterated_recurrence(cfg):
    """The compiled rate against Gelfand's formula on the literature's recurrence: relative on every mode,
    GELFAND_REL of |log rho| plus the float64 root error ROOT_ABS."""
    method, lam, x, beta, beta2 = cfg
    eta = 2.5 * x / lam
    fast = float(rate_function(method)(np.array([lam]), *args(method, eta, beta, beta2))[0])
    assume(fast > 0)
    steps = gelfand_steps(np.log(fast))
    measured = gelfand_log_rate(method, lam, eta, beta, beta2, steps)
    assert measured == pytest.approx(np.log(fast), abs=gelfand_tolerance(np.log(fast), steps))
    assert gelfand_tolerance(np.log(fast), steps) <= GELFAND_REL * abs(np.log(fast)) + ROOT_ABS


@pytest.mark.parametrize("cfg", SLOW)
def test_iterated_recurrence_catches_a_slow_rate_five_percent_off(cfg):
    """On a slow mode (|log rho| ~ 2e-4) a rate whose log is 5% off leaves the tolerance; the former comparison,
    2000 steps against abs=1e-2 on rho, could not tell rho from 1."""
    method, lam, x, beta, beta2 = cfg
    eta = 2.5 * x / lam
    log_rho = np.log(companion_radius(method, lam, eta, beta, beta2))
    assert 1e-4 < abs(log_rho) < 3e-4
    steps = gelfand_steps(log_rho)
    measured = gelfand_log_rate(method, lam, eta, beta, beta2, steps)
    tol = gelfand_tolerance(log_rho, steps)
    assert abs(measured - log_rho) <= tol
    assert abs(measured - 1.05 * log_rho) > tol and abs(measured - 0.95 * log_rho) > tol


@example(("mom2", 1.0, 0.5 / 2.5, MOM2_ROW["beta"], MOM2_ROW["beta2"]))
@example(("mom2", 1.0, 1.0 / 2.5, MOM2_ROW["beta"], MOM2_ROW["beta2"]))
@given(configs)
def test_jury_stability_matches_blow_up(cfg):
    method, lam, x, beta, beta2 = cfg
    eta = 2.5 * x / lam
    rho = companion_radius(method, lam, eta, beta, beta2)
    assume(abs(rho - 1) > 0.02)
    cond = jury_conditions(rate_polynomial(method))
    stable = bool(lambdified(method, cond)(lam, *args(method, eta, beta, beta2)))
    grows = iterated_rate(method, lam, eta, beta, beta2, steps=600) > 1
    assert stable == (not grows) == (rho < 1)


def test_mom2_row_examples_are_decided_by_the_row_condition_only():
    """The MOM2_ROW examples are what they claim: P(1) > 0, -P(-1) > 0 and |a_0| < 1 at both, the row condition
    fails at eta = 0.5 and holds at eta = 1 (coefficients of the literature's z^3 + a_2 z^2 + a_1 z + a_0)."""
    for eta, stable in ((0.5, False), (1.0, True)):
        a2, a1, a0 = LITERATURE["mom2"](1.0, eta, MOM2_ROW["beta"], MOM2_ROW["beta2"])
        assert 1 + a2 + a1 + a0 > 0 and -(-1 + a2 - a1 + a0) > 0 and abs(a0) < 1
        assert (abs(1 - a0 * a0) > abs(a1 - a0 * a2)) == stable
        assert spectral_radius("mom2", [1.0], lr=eta, momentum=MOM2_ROW["beta"], momentum2=MOM2_ROW["beta2"]).stable \
            == stable


def _method_cases() -> st.SearchStrategy:
    return st.sampled_from(sorted(LITERATURE)).flatmap(lambda m: st.tuples(st.just(m), spectra(), stable_hyper(m)))


@settings(max_examples=examples(15), deadline=None)
@example(("hb", np.array([0.01, 0.2, 1.0]), POLYAK))                               # Polyak: double roots at both ends
@example(("hb", np.array([0.01, 1.0]), {"eta": (1 - np.sqrt(0.6)) ** 2, "beta": 0.6}))  # double root at lam = 1
@example(("gd", np.array([0.5, 1.0]), {"eta": 2.0}))                               # rho = 1 exactly (root -1)
@example(("hb", np.array([0.3, 1.0]), {"eta": 3.0, "beta": 0.5}))                 # rho = 1: eta lam = 2(1 + beta)
@example(("mom2", np.array([0.2, 1.0]), {"eta": 0.5, **MOM2_ROW}))                 # only Jury's row condition: unstable
@example(("mom2", np.array([0.2, 1.0]), {"eta": 1.0, **MOM2_ROW}))                 # only Jury's row condition: stable
@given(_method_cases())
def test_rates_agree_in_the_hard_regions(case):
    """ntkode.testing's four routes on spectra with kappa up to 1e4 and stable settings drawn near Jury's edge and
    near double roots (|rho - 1| down to 1e-12, rho near a double root), plus the explicit hard cases."""
    method, eigs, hyper = case
    assert_rates_agree(method, eigs, hyper, envelope_power=-1.5 if method == "nag" else None)


@given(st.floats(0.01, 10), st.floats(0.1, 10), st.floats(1e-3, 0.5))
def test_scaling_eigenvalue_equals_scaling_lr(lam, c, eta):
    for method in LITERATURE:  # the methods args() knows; every declared one: test_declarations.py
        f = rate_function(method)
        assert f(np.array([c * lam]), *args(method, eta, 0.5, 0.1))[0] == pytest.approx(
            f(np.array([lam]), *args(method, c * eta, 0.5, 0.1))[0])


def test_known_closed_forms():
    hb = spectral_radius("hb", [0.3, 1.0], lr=0.5, momentum=0.6)  # complex roots: |z| = sqrt(beta)
    assert hb.rate == pytest.approx(np.sqrt(0.6))
    nag = spectral_radius("nag", [0.2, 1.0], lr=0.7, r=3)
    assert nag.radius == pytest.approx(np.sqrt(1 - 0.7 * np.array([0.2, 1.0])))
    gd = spectral_radius("gd", [1.0, 3.0], lr=1.0)
    assert (gd.rate, gd.argmax_lambda, gd.stable) == (2.0, 3.0, False)
    assert str(derive("gd").rate) == "Abs(eta*lam - 1)"
    assert sp.sympify(derive("mom2").to_json()["polynomial"]).has(sp.Symbol("beta2"))


def test_hb_jury_region_matches_theory():
    cond = jury_conditions(rate_polynomial("hb"))
    f = lambdified("hb", cond)
    for lam, eta, beta in [(1, 2.9, 0.5), (1, 3.1, 0.5), (2, 0.5, 0.99)]:
        assert bool(f(lam, eta, beta)) == (eta * lam < 2 * (1 + beta))


@pytest.mark.parametrize("bad", [[], [0.0], [-1.0], [np.nan], [np.inf], "abc"])
def test_bad_eigenvalues_raise(bad):
    with pytest.raises(NtkodeError):
        spectral_radius("gd", bad, lr=0.1)


def test_bad_hyper_raise():
    with pytest.raises(NtkodeError, match="needs momentum"):
        spectral_radius("hb", [1.0], lr=0.1)
    with pytest.raises(NtkodeError):
        spectral_radius("hb", [1.0], lr=0.1, momentum=1.0)
    with pytest.raises(NtkodeError):
        spectral_radius("nag", [1.0], lr=0.1, r=0.0)
    with pytest.raises(NtkodeError):
        spectral_radius("sgd", [1.0], lr=0.1)
