"""The method library (docs/theory.md#library): every shipped declaration against its recursion written out
by hand in NumPy (companion-matrix radius of the hand-derived polynomial, and the decay of the iterated
recursion), every guarantee in its [about] section and every closed-form tuning against an independent route
(a grid, the numeric tuner, or a symbolic identity), the [about] metadata and the `ntkode methods` listing."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import sympy as sp

from ntkode.declaration import Method, builtin_names, load_method
from ntkode.errors import NtkodeError
from ntkode.symbols import lam as LAM, z as Z
from ntkode.theory import named_tuning, numeric_optimum, optimal, spectral_radius
from ntkode.verify.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EIGS = np.array([0.05, 0.3, 1.0, 1.7])


# -- each method's recursion by hand: (hand-derived characteristic polynomial, one step of the recursion) --------
# The step acts on the method's own variables in error coordinates on one eigendirection, grad(P) = lam * e(P);
# points start at e0 = 1, directions at 0. The polynomial is derived on paper (docs/theory.md#library), not read
# from the declaration.

def rm_coefficients(eta, kappa, rho):
    """Robust momentum (Cyrus et al. 2018) with eta = 1/L: alpha, beta, gamma from the design rate rho."""
    alpha = kappa * (1 - rho) ** 2 * (1 + rho) * eta
    beta = kappa * rho ** 3 / (kappa - 1)
    gamma = rho ** 3 / ((kappa - 1) * (1 - rho) ** 2 * (1 + rho))
    return alpha, beta, gamma


def tm_poly(lam, alpha, beta, gamma):
    return [np.ones_like(lam), -(1 + beta - alpha * lam * (1 + gamma)), beta - alpha * lam * gamma]


def tm_step(state, lam, alpha, beta, gamma):
    w, w_prev = state
    y = w + gamma * (w - w_prev)
    return [w + beta * (w - w_prev) - alpha * lam * y, w]


def aggmo_poly(lam, eta, a):
    b2, b3 = 1 - a, 1 - a ** 2
    one = np.ones_like(lam)
    # (z - 1)(z - b2)(z - b3) + (eta lam/3)[(z - b2)(z - b3) + z(z - b3) + z(z - b2)]
    cubic = np.polymul(np.polymul([1, -1], [1, -b2]), [1, -b3])
    quad = np.polyadd(np.polyadd(np.polymul([1, -b2], [1, -b3]), [1, -b3, 0]), [1, -b2, 0])
    return [one * cubic[0], cubic[1] + eta * lam / 3 * quad[0], cubic[2] + eta * lam / 3 * quad[1],
            cubic[3] + eta * lam / 3 * quad[2]]


def aggmo_step(state, lam, eta, a):
    w, v2, v3 = state
    g = lam * w
    v1 = -g
    v2 = (1 - a) * v2 - g
    v3 = (1 - a ** 2) * v3 - g
    return [w + eta / 3 * (v1 + v2 + v3), v2, v3]


def qhm_poly(lam, alpha, beta, nu):
    return [np.ones_like(lam), -(1 + beta - alpha * lam * (1 - nu * beta)), beta * (1 - alpha * lam * (1 - nu))]


def qhm_step(state, lam, alpha, beta, nu):
    w, d = state
    g = lam * w
    d = beta * d + (1 - beta) * g
    return [w - alpha * ((1 - nu) * g + nu * d), d]


def eg_step(state, lam, eta):
    (w,) = state
    y = w - eta * lam * w
    return [w - eta * lam * y]


def hb_step(state, lam, eta, beta):
    w, w_prev = state
    return [w - eta * lam * w + beta * (w - w_prev), w]


def nag_sc_step(state, lam, eta, beta):
    w, w_prev = state
    y = w + beta * (w - w_prev)
    return [y - eta * lam * y, w]


def mom2_step(state, lam, eta, beta, beta2):
    w, v, v_prev = state
    v_new = beta * v + beta2 * v_prev + lam * w
    return [w - eta * v_new, v_new, v]


HAND = {
    "gd": (lambda lam, eta: [np.ones_like(lam), -(1 - eta * lam)], lambda s, lam, eta: [s[0] - eta * lam * s[0]],
           ("W",), {"eta": 0.9}),
    "hb": (lambda lam, eta, beta: [np.ones_like(lam), -(1 + beta - eta * lam), beta * np.ones_like(lam)], hb_step,
           ("W", "W"), {"eta": 0.8, "beta": 0.45}),
    "nag-sc": (lambda lam, eta, beta: [np.ones_like(lam), -(1 + beta) * (1 - eta * lam), beta * (1 - eta * lam)],
               nag_sc_step, ("W", "W"), {"eta": 0.7, "beta": 0.6}),
    "mom2": (lambda lam, eta, beta, beta2: [np.ones_like(lam), -(1 + beta - eta * lam), (beta - beta2) * np.ones_like(lam),
                                           beta2 * np.ones_like(lam)], mom2_step, ("W", 0, 0),
             {"eta": 0.5, "beta": 0.5, "beta2": 0.2}),
    "qhm": (qhm_poly, qhm_step, ("W", 0), {"alpha": 0.9, "beta": 0.7, "nu": 0.6}),
    "triple-momentum": (tm_poly, tm_step, ("W", "W"), {"alpha": 0.9, "beta": 0.4, "gamma": 0.25}),
    "extragradient": (lambda lam, eta: [np.ones_like(lam), -(1 - eta * lam + eta ** 2 * lam ** 2)], eg_step, ("W",),
                      {"eta": 0.55}),
    "aggmo": (aggmo_poly, aggmo_step, ("W", 0, 0), {"eta": 0.6, "a": 0.1}),
    "robust-momentum": (lambda lam, eta, kappa, rho: tm_poly(lam, *rm_coefficients(eta, kappa, rho)),
                        lambda s, lam, eta, kappa, rho: tm_step(s, lam, *rm_coefficients(eta, kappa, rho)),
                        ("W", "W"), {"eta": 1 / 1.7, "kappa": 34.0, "rho": 0.9}),
}


def companion_radius(coeffs: list) -> np.ndarray:
    """max |root| per eigenvalue of the monic polynomial with these coefficient arrays (highest first)."""
    coeffs = np.broadcast_arrays(*[np.asarray(c, dtype=float) for c in coeffs])
    return np.array([np.max(np.abs(np.roots([c[i] for c in coeffs]))) for i in range(coeffs[0].size)])


def iterated_decay(step, init, lam: np.ndarray, hyper: dict, steps: int = 3000, window: int = 2000) -> np.ndarray:
    """Per-step decay of the hand recursion from its initial state: exp of the mean log growth of the state's
    norm over the last `window` steps (renormalised every step, so nothing under- or overflows)."""
    state = [np.where(v == "W", 1.0, 0.0) * np.ones_like(lam) for v in init]
    log_growth = np.zeros_like(lam)
    for k in range(steps):
        state = step(state, lam, **hyper)
        norm = np.sqrt(sum(s ** 2 for s in state))
        if k >= steps - window:
            log_growth += np.log(norm)
        state = [s / norm for s in state]
    return np.exp(log_growth / window)


@pytest.mark.parametrize("name", sorted(HAND))
def test_declaration_matches_the_recursion_written_by_hand(name):
    """Three routes agree per eigenvalue: spectral_radius (the declaration's reduced polynomial), the companion matrix
    of the polynomial derived by hand, and the decay of the hand recursion iterated 3000 steps. Tolerance of the
    last: the state norm over a window of M = 2000 steps is within a factor cond(V) of rho^M (V the eigenvectors of
    the step matrix, cond(V) < 1e4 at these settings), so the estimate is within log(1e4)/M < 5e-3 relative."""
    poly, step, init, hyper = HAND[name]
    res = spectral_radius(name, EIGS, **hyper)
    hand = companion_radius(poly(EIGS, **hyper))
    assert res.stable and np.all(hand < 1)
    np.testing.assert_allclose(res.radius, hand, rtol=1e-9)
    np.testing.assert_allclose(iterated_decay(step, init, EIGS, hyper), hand, rtol=5e-3)


@pytest.mark.parametrize("name", sorted(HAND))
def test_unstable_settings_are_unstable_by_hand_too(name):
    """Twice the largest eigenvalue the settings above are tuned for, or a step far too long, diverges in all
    three routes (rate > 1), so a flipped sign that makes an unstable method look stable is caught."""
    poly, step, init, hyper = HAND[name]
    big = np.array([40.0])
    hand = companion_radius(poly(big, **hyper))
    assert hand[0] > 1 and spectral_radius(name, big, **hyper).rate == pytest.approx(hand[0], rel=1e-9)
    assert iterated_decay(step, init, big, hyper, steps=400, window=200)[0] == pytest.approx(hand[0], rel=2e-2)


# -- robust momentum: the design rate is the rate on quadratics ---------------------------------------------------

@pytest.mark.parametrize("lo, hi", [(0.1, 1.0), (0.02, 3.0), (1e-3, 1.0)])
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.7, 1.0])
def test_robust_momentum_rate_on_quadratics_is_its_design_rate(lo, hi, fraction):
    """eta = 1/lam_max, kappa = lam_max/lam_0, rho anywhere in [1 - 1/sqrt(kappa), 1 - 1/kappa]: the worst radius over
    [lam_0, lam_max] is rho, at lam_0, where the roots are rho and rho^2; at lam_max they are 0 and
    1 - kappa (1 - rho)^2 (1 + rho) (docs/theory.md#library)."""
    kappa = hi / lo
    rho = (1 - fraction) * (1 - 1 / math.sqrt(kappa)) + fraction * (1 - 1 / kappa)
    grid = np.geomspace(lo, hi, 801)
    res = spectral_radius("robust-momentum", grid, eta=1 / hi, kappa=kappa, rho=rho)
    hand = companion_radius(HAND["robust-momentum"][0](grid, 1 / hi, kappa, rho))
    assert res.rate == pytest.approx(rho, rel=1e-9) and np.max(hand) == pytest.approx(rho, rel=1e-9)
    assert hand[0] == pytest.approx(rho, rel=1e-9) and np.all(hand <= rho * (1 + 1e-12))
    if fraction > 0:  # at fraction 0 (triple momentum) lam_max reaches rho too
        assert res.argmax_lambda == pytest.approx(lo) and hand[-1] < rho * (1 - 1e-3)
    ends = [sorted(np.abs(np.roots([c[i] for c in np.broadcast_arrays(*tm_poly(grid, *rm_coefficients(1 / hi, kappa, rho)))])))
            for i in (0, -1)]
    assert ends[0] == pytest.approx([rho ** 2, rho], rel=1e-7)
    assert ends[1] == pytest.approx(sorted([0.0, abs(1 - kappa * (1 - rho) ** 2 * (1 + rho))]), abs=1e-9)


def test_robust_momentum_outside_its_design_range_loses_the_guarantee():
    """Below 1 - 1/sqrt(kappa), p(-rho; lam_max) < 0 and a root leaves the disc of radius rho at lam_max: the range
    in the guarantee is needed, not a convention."""
    lo, hi = 0.1, 1.0
    rho = 0.9 * (1 - 1 / math.sqrt(hi / lo))
    res = spectral_radius("robust-momentum", np.geomspace(lo, hi, 201), eta=1 / hi, kappa=hi / lo, rho=rho)
    assert res.rate > rho * 1.05 and res.argmax_lambda == pytest.approx(hi)


@pytest.mark.parametrize("lo, hi", [(0.2, 3.0), (0.01, 1.0)])
def test_robust_momentum_tunings_and_their_ends(lo, hi):
    """[tuning.fast] is triple momentum's standard tuning (same alpha, beta, gamma); [tuning.robust] has GD's rate
    1 - 1/kappa and factors as (z - rho^2)(z - (1 - lam/L)): GD with step 1/L plus a mode rho^2."""
    kappa, q = hi / lo, math.sqrt(lo / hi)
    fast = named_tuning("robust-momentum", "fast", lo, hi)
    assert fast["hyper"] == pytest.approx({"eta": 1 / hi, "kappa": kappa, "rho": 1 - q})
    assert fast["rate"] == pytest.approx(1 - q, rel=1e-9) == pytest.approx(fast["rate_formula"], rel=1e-12)
    tm = named_tuning("triple-momentum", "standard", lo, hi)["hyper"]
    rho = 1 - q  # Van Scoy, Freeman & Lynch: alpha = (1 + rho)/L, beta = rho^2/(2 - rho), gamma = rho^2/((1 + rho)(2 - rho))
    assert [tm["alpha"], tm["beta"], tm["gamma"]] == pytest.approx(
        [(1 + rho) / hi, rho ** 2 / (2 - rho), rho ** 2 / ((1 + rho) * (2 - rho))], rel=1e-12)
    assert rm_coefficients(1 / hi, kappa, rho) == pytest.approx((tm["alpha"], tm["beta"], tm["gamma"]), rel=1e-12)
    robust = named_tuning("robust-momentum", "robust", lo, hi)
    assert robust["hyper"]["rho"] == pytest.approx(1 - 1 / kappa)
    assert robust["rate"] == pytest.approx(1 - 1 / kappa, rel=1e-9) == pytest.approx(robust["rate_formula"], rel=1e-12)
    grid = np.geomspace(lo, hi, 7)
    roots = spectral_radius("robust-momentum", grid, **robust["hyper"]).roots
    for lam_, found in zip(grid, roots):
        assert sorted(np.real(found)) == pytest.approx(sorted([robust["hyper"]["rho"] ** 2, 1 - lam_ / hi]), abs=1e-9)


# -- triple momentum, QHM, extragradient, aggregated momentum ----------------------------------------------------

@pytest.mark.parametrize("lo, hi", [(0.1, 1.0), (0.2, 3.0), (0.01, 1.0)])
def test_triple_momentum_standard_tuning_rate_at_both_ends(lo, hi):
    """Van Scoy, Freeman & Lynch's tuning on quadratics: worst radius 1 - 1/sqrt(kappa), reached at lam_0 and
    lam_max, below it in between (hand companion matrix on a grid)."""
    tuning = named_tuning("triple-momentum", "standard", lo, hi)
    tm = tuning["hyper"]
    grid = np.geomspace(lo, hi, 401)
    hand = companion_radius(tm_poly(grid, tm["alpha"], tm["beta"], tm["gamma"]))
    q = 1 - math.sqrt(lo / hi)
    assert tuning["rate_formula"] == pytest.approx(q, rel=1e-12)
    assert np.max(hand) == pytest.approx(q, rel=1e-9)
    assert hand[0] == pytest.approx(q, rel=1e-6) and hand[-1] == pytest.approx(q, rel=1e-6)
    assert hand[len(grid) // 2] < q - 1e-3


def _symbol(method: Method, name: str) -> sp.Symbol:
    return method.find_hyper(name).symbol


def test_qhm_is_heavy_ball_at_nu_1_and_nag_sc_at_nu_beta():
    """Reduced polynomials, symbolically: QHM(alpha, beta, nu = 1) = HB(eta = alpha (1 - beta), beta) and
    QHM(alpha, beta, nu = beta) = NAG-SC(eta = alpha (1 - beta), beta) (Ma & Yarats 2019, section 3)."""
    qhm, hb, nag = load_method("qhm"), load_method("hb"), load_method("nag-sc")
    alpha, beta, nu = (_symbol(qhm, n) for n in ("alpha", "beta", "nu"))
    for other, nu_value in ((hb, 1), (nag, beta)):
        mapped = other.char_poly().subs({_symbol(other, "eta"): alpha * (1 - beta), _symbol(other, "beta"): beta})
        assert sp.expand(qhm.char_poly().subs(nu, nu_value) - mapped) == 0
    assert sp.expand(qhm.char_poly().subs(nu, 0) - sp.expand((Z - beta) * (Z - 1 + alpha * LAM))) == 0


@pytest.mark.parametrize("lo, hi", [(0.2, 3.0), (0.01, 1.0)])
def test_qhm_optimum_is_polyak_at_nu_1(lo, hi):
    """[optimum]: nu = 1, alpha = 1/sqrt(lam_0 lam_max) (= Polyak's eta/(1 - beta)), Polyak's beta and rate."""
    closed = optimal("qhm", lo, hi)
    s = math.sqrt(hi / lo)
    polyak_beta, polyak_rate = ((s - 1) / (s + 1)) ** 2, (s - 1) / (s + 1)
    assert closed["source"] == "closed form" and closed["hyper"]["nu"] == 1
    assert closed["hyper"]["alpha"] * (1 - closed["hyper"]["beta"]) == pytest.approx(4 / (math.sqrt(hi) + math.sqrt(lo)) ** 2)
    assert closed["hyper"]["beta"] == pytest.approx(polyak_beta) and closed["rate_formula"] == pytest.approx(polyak_rate)
    assert closed["rate"] == pytest.approx(polyak_rate, rel=1e-6)


@pytest.mark.parametrize("lo, hi", [(0.2, 3.0), (0.01, 1.0)])
def test_qhm_numeric_tuner_reaches_polyak_and_not_below(lo, hi):
    """The numeric tuner over (alpha, beta, nu) reaches Polyak's rate and does not go below it (Chebyshev bound)."""
    s = math.sqrt(hi / lo)
    found = numeric_optimum("qhm", lo, hi)
    assert found["rate"] >= (s - 1) / (s + 1) * (1 - 1e-6) and found["rate"] == pytest.approx((s - 1) / (s + 1), rel=1e-4)


@pytest.mark.parametrize("lo, hi", [(0.2, 3.0), (1e-3, 1.0), (0.5, 0.9)])
def test_extragradient_optimum_against_a_grid_of_steps(lo, hi):
    """max over the spectrum of 1 - x + x^2, x = eta lam, is smallest at eta = 1/(lam_0 + lam_max) with rate
    (lam_0^2 + lam_0 lam_max + lam_max^2)/(lam_0 + lam_max)^2; a grid of 4001 steps over the stable range
    (0, 1/lam_max) finds nothing better, and its best step is the formula's."""
    closed = optimal("extragradient", lo, hi)
    assert closed["hyper"]["eta"] == pytest.approx(1 / (lo + hi))
    assert closed["rate_formula"] == pytest.approx((lo ** 2 + lo * hi + hi ** 2) / (lo + hi) ** 2)
    steps = np.linspace(0, 1 / hi, 4003)[1:-1]
    worst = np.maximum(1 - steps * lo + (steps * lo) ** 2, 1 - steps * hi + (steps * hi) ** 2)
    assert np.min(worst) >= closed["rate_formula"] * (1 - 1e-12)
    assert steps[np.argmin(worst)] == pytest.approx(1 / (lo + hi), abs=2 / (hi * 4000))
    assert closed["rate"] == pytest.approx(closed["rate_formula"], rel=1e-9)


def test_extragradient_stability_boundary_is_eta_lam_1():
    assert spectral_radius("extragradient", [1.0], eta=0.999).stable
    assert not spectral_radius("extragradient", [1.0], eta=1.001).stable


@pytest.mark.parametrize("name", ["aggmo", "robust-momentum"])
def test_one_gradient_methods_cannot_beat_polyak(name):
    """Chebyshev's bound (docs/theory.md#library): with one gradient per step the error after k steps is q_k(H) e_0,
    deg q_k <= k, q_k(0) = 1, so no tuning has a worst radius below Polyak's (sqrt(kappa) - 1)/(sqrt(kappa) + 1)."""
    lo, hi = 0.1, 1.0
    s = math.sqrt(hi / lo)
    assert numeric_optimum(name, lo, hi, starts=4)["rate"] >= (s - 1) / (s + 1) * (1 - 1e-9)


def test_aggmo_default_damping_is_the_papers():
    """a = 0.1 gives the paper's default damping 0, 0.9, 0.99; the declaration's polynomial is the hand cubic."""
    m = load_method("aggmo")
    a, eta = _symbol(m, "a"), _symbol(m, "eta")
    b2, b3 = 1 - a, 1 - a ** 2
    hand = (Z - 1) * (Z - b2) * (Z - b3) + eta * LAM / 3 * ((Z - b2) * (Z - b3) + Z * (Z - b3) + Z * (Z - b2))
    assert sp.expand(m.char_poly() - sp.expand(hand)) == 0
    assert [float(b.subs(a, sp.Rational(1, 10))) for b in (sp.Integer(1) - a ** 0, b2, b3)] == [0.0, 0.9, 0.99]


# -- metadata and the listing ---------------------------------------------------------------------------------------

def test_the_library_has_twelve_methods_each_with_its_sections():
    names = builtin_names()
    assert len(names) >= 12 and {"robust-momentum", "aggmo", "qhm", "triple-momentum", "extragradient"} <= set(names)
    for name in names:
        m = load_method(name)
        assert m.algorithm and m.guarantee and m.references, name
        assert all(isinstance(r, str) and r for r in m.references)
        again = Method.from_dict(tomllib.loads(m.to_toml()), builtin=True)
        assert (again.algorithm, again.guarantee, again.references) == (m.algorithm, m.guarantee, m.references)


BASE = {"name": "toy", "hyper": {"eta": "(0, inf)"}, "state": {"W": "W0"}, "step": ["W = W - eta*grad(W)"]}


@pytest.mark.parametrize("about, match", [
    ("text", r"\[about\] must be a table"),
    ({"algoritm": "x"}, r"unknown key 'algoritm' \(did you mean 'algorithm'\?\)"),
    ({"guarantee": 3}, r"\[about\] guarantee must be a string; got int"),
    ({"references": "Polyak 1964"}, r"references must be a list of non-empty strings"),
    ({"references": ["Polyak 1964", ""]}, r"references must be a list of non-empty strings"),
    ({"references": [1964]}, r"references must be a list of non-empty strings"),
])
def test_bad_about_section_is_one_clear_error(about, match):
    with pytest.raises(NtkodeError, match=match) as err:
        Method.from_dict({**BASE, "about": about})
    assert "\n" not in str(err.value)


def test_about_section_from_a_user_file_round_trips(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text('name = "toy"\nstep = ["W = W - eta*grad(W)"]\n[about]\nalgorithm = "W_k = W_{k-1} - eta g"\n'
                    'guarantee = "none known"\nreferences = ["A. Author 2024"]\n[hyper]\neta = "(0, inf)"\n'
                    '[state]\nW = "W0"\n')
    m = load_method(path)
    assert (m.algorithm, m.guarantee, m.references) == ("W_k = W_{k-1} - eta g", "none known", ("A. Author 2024",))
    again = Method.from_dict(tomllib.loads(m.to_toml()))
    assert again == m and again.references == m.references
    assert Method.from_dict(BASE).references == () and Method.from_dict(BASE).guarantee == ""


def test_methods_command_lists_every_method_with_domains_and_reference(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["method", "hyper-parameters", "reference"]
    for name in builtin_names():
        m = load_method(name)
        row = next(line for line in lines if line.split() and line.split()[0] == name)
        assert m.reference in row and f"{m.hyper[0].name}" in row and m.hyper[0].domain() in row
        for hp in m.hyper:
            assert f"{hp.name}{f' ({hp.alias})' if hp.alias else ''} in {hp.domain()}" in out
    assert "12 methods" in out and "rho in (0, 1)" in out and "kappa in (1, inf)" in out


def test_methods_name_prints_the_declaration_with_its_sections(capsys):
    assert main(["methods", "robust-momentum"]) == 0
    text = capsys.readouterr().out
    spec = tomllib.loads(text)
    assert set(spec["about"]) == {"algorithm", "guarantee", "references"}
    assert "Cyrus" in spec["about"]["references"][0] and load_method("robust-momentum") == Method.from_dict(spec, builtin=True)


def test_bad_about_section_in_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nstep = ["W = W - eta*grad(W)"]\n[about]\nreferences = "Polyak 1964"\n'
                   '[hyper]\neta = "(0, inf)"\n[state]\nW = "W0"\n')
    for argv in (["methods", str(bad)], ["derive", str(bad)]):
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "[about] references must be a list of non-empty strings" in lines[0], argv
