"""Tests written to kill mutants that survived the suite (issue 13), at the API level so that
they survive the engine's rewrite: simulate against plain-NumPy gradient descent written here,
the digits sampler, the fit's degrees of freedom against scipy, and the width tolerance's size."""
import math

import numpy as np
import pytest
from scipy import stats

from ntkode.errors import NtkodeError
from ntkode.numerics import digits_data, forward, init_network, ntk_empirical, simulate, sphere_data
from ntkode.verify.claim import Check, Tolerance
from ntkode.verify.claims_common import mean_and_stderr, width_tolerance
from ntkode.verify.fit import fit_linear_rate, fit_loglog_slope
from ntkode.verify.runner import Report


def direct_gd(X, y, m, seed, lr, steps, loss="sum"):
    """(||e_k|| for k = 0..steps, W_steps) of full-batch GD on f(x) = m^{-1/2} sum_r a_r relu(w_r.x), written
    from the definitions: dL/dw_r = c m^{-1/2} a_r sum_i e_i 1{w_r.x_i > 0} x_i, c = 1 (sum) or 1/n (mean)."""
    W, a = init_network(m, X.shape[1], seed)
    c = 1.0 if loss == "sum" else 1.0 / X.shape[0]

    def error(W):
        return np.maximum(W @ X.T, 0.0).T @ a / math.sqrt(m) - y

    norms = [np.linalg.norm(error(W))]
    for _ in range(steps):
        e = error(W)
        W = W - lr * c / math.sqrt(m) * (((W @ X.T) > 0) * a[:, None] * e[None, :]) @ X
        norms.append(np.linalg.norm(error(W)))
    return np.array(norms), W


PROBLEM = sphere_data(6, 4, seed=7)


@pytest.mark.parametrize("loss", ["sum", "mean"])
def test_settings_and_seeds_match_direct_gradient_descent(loss):
    """Run [setting i, seed j] is GD with lr_i from init_network(seed_j): kills a swapped
    seed_of_run, seeds 1..S for seeds=S, and a mean loss without its 1/n."""
    X, y = PROBLEM
    lrs = [0.3, 0.7] if loss == "sum" else [1.8, 4.2]
    res = simulate("gd", X, y, [32], 6, seeds=3, hyper=[{"lr": lr} for lr in lrs], loss=loss, device="cpu",
                   progress=False)
    assert res.seeds.tolist() == [0, 1, 2]
    for i, lr in enumerate(lrs):
        for j, seed in enumerate(res.seeds):
            expected = direct_gd(X, y, 32, int(seed), lr, 6, loss)[0]
            np.testing.assert_allclose(res.error_norm[0, i, j], expected, rtol=1e-10)


def test_explicit_seeds_keep_their_order():
    X, y = PROBLEM
    res = simulate("gd", X, y, [16], 3, seeds=[5, 2], hyper={"lr": 0.5}, device="cpu", progress=False)
    for j, seed in enumerate([5, 2]):
        np.testing.assert_allclose(res.error_norm[0, 0, j], direct_gd(X, y, 16, seed, 0.5, 3)[0], rtol=1e-10)


@pytest.mark.parametrize("space", ["z", "w"])
@pytest.mark.parametrize("movement", [True, False])
def test_kept_weights_are_the_trained_weights(space, movement):
    """keep_weights=True returns W_steps in both spaces, with or without movement records
    (in space z without movement, final_W used to be all NaN)."""
    X, y = PROBLEM
    res = simulate("gd", X, y, [24], 5, seeds=2, hyper={"lr": 0.4}, keep_weights=True, movement=movement,
                   space=space, device="cpu", progress=False)
    for j in range(2):
        np.testing.assert_allclose(res.final_W[0][0, j], direct_gd(X, y, 24, j, 0.4, 5)[1], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("n, d, space", [(8, 4, "z"), (9, 4, "w"), (4, 2, "z"), (5, 2, "w")])
def test_auto_space_switches_above_n_equals_2d(n, d, space):
    """Space z (an m x n x n product a step) while n <= 2d, else w (two m x n x d products)."""
    X, y = sphere_data(n, d, seed=1)
    res = simulate("gd", X, y, [8], 1, hyper={"lr": 0.1}, device="cpu", progress=False, check=False)
    assert res.space == space


def test_digits_are_drawn_without_replacement():
    """Asking for every image of two classes returns each exactly once."""
    from sklearn.datasets import load_digits

    images, target = load_digits(return_X_y=True)
    pool = images[np.isin(target, (3, 8))]
    X, _ = digits_data(len(pool), classes=(3, 8), seed=4, normalise=False)
    np.testing.assert_array_equal(np.unique(X, axis=0), np.unique(pool, axis=0))
    assert len(np.unique(X, axis=0)) == len(np.unique(pool, axis=0)) and X.shape == pool.shape


@pytest.mark.parametrize("points", [5, 8, 30])
def test_loglog_slope_and_stderr_equal_scipy_linregress(points):
    """The residual variance divides by N - 2 for a two-parameter fit (scipy's linregress does too)."""
    rng = np.random.default_rng(points)
    x = np.geomspace(10, 1000, points)
    y = 3.0 * x**-0.5 * np.exp(0.1 * rng.standard_normal(points))
    fit = fit_loglog_slope(x, y)
    ref = stats.linregress(np.log(x), np.log(y))
    assert fit.value == pytest.approx(ref.slope, rel=1e-12)
    assert fit.stderr == pytest.approx(ref.stderr, rel=1e-10)


def test_linear_rate_stderr_equals_scipy_linregress_on_its_window():
    rng = np.random.default_rng(3)
    k = np.arange(40)
    err = 0.9**k * np.exp(0.05 * rng.standard_normal(k.size))
    fit = fit_linear_rate(err, window=(0, 40))
    lo, hi = fit.window
    ref = stats.linregress(k[lo:hi], np.log(err[lo:hi]))
    assert fit.value == pytest.approx(ref.slope, rel=1e-12)
    assert fit.stderr == pytest.approx(ref.stderr, rel=1e-10)


@pytest.mark.parametrize("n, m, expected", [(10, 1000, 0.2), (10, 4000, 0.1), (20, 80, 1.0)])
def test_width_tolerance_is_two_sqrt_n_over_m(n, m, expected):
    """docs/theory.md#verification, pitfall 2: rates move by O(sqrt(n/m)); the claims allow 2 sqrt(n/m)."""
    tol = width_tolerance(n, m)
    assert tol.kind == "rel" and tol.value == pytest.approx(expected, abs=1e-4)
    assert width_tolerance(n, m, extra=0.05).value == pytest.approx(expected + 0.05, abs=1e-4)


@pytest.mark.parametrize("window, power", [((0, 2), False), ((0, 4), True)])
def test_a_fit_with_as_many_points_as_parameters_is_refused(window, power):
    """N points determine N parameters exactly: no residual, no standard error (N - p = 0)."""
    with pytest.raises(NtkodeError, match="usable points for a"):
        fit_linear_rate(0.9 ** np.arange(10), window=window, power=power)


def test_seed_mean_stderr_is_scipy_sem():
    """The standard error across seeds is std with ddof=1 over sqrt(S) (scipy.stats.sem)."""
    values = [0.1, 0.4, 0.35, 0.2]
    mean, err = mean_and_stderr(values)
    assert mean == pytest.approx(np.mean(values)) and err == pytest.approx(stats.sem(values), rel=1e-12)


@pytest.mark.parametrize("kind, predicted, measured", [("abs", 1.0, 1.5), ("abs", 1.0, 0.5), ("rel", 2.0, 3.0)])
def test_a_deviation_exactly_at_the_tolerance_passes(kind, predicted, measured):
    """Tolerance semantics are inclusive: |measured - predicted| <= tolerance (exact binary numbers here)."""
    assert Check("", "q", predicted, measured, 0.0, Tolerance(kind, 0.5, "")).passed
    outside = measured + 0.25 * np.sign(measured - predicted)
    assert not Check("", "q", predicted, outside, 0.0, Tolerance(kind, 0.5, "")).passed


def test_forward_jacobian_gram_is_the_empirical_kernel():
    """The NTK scaling m^{-1/2} of `forward`: central differences of f(x_i) in W give J with
    J J^T = ntk_empirical (a mis-scaled forward is off by a factor of m or sqrt(m))."""
    X, _ = sphere_data(4, 3, seed=5)
    W, a = init_network(9, 3, seed=2)
    h = 1e-6
    J = np.empty((4, W.size))
    for idx in range(W.size):
        step = np.zeros(W.size)
        step[idx] = h
        J[:, idx] = (forward(W + step.reshape(W.shape), a, X) - forward(W - step.reshape(W.shape), a, X)) / (2 * h)
    np.testing.assert_allclose(J @ J.T, ntk_empirical(W, a, X), rtol=1e-7, atol=1e-9)


def test_a_report_with_no_claims_has_not_passed():
    assert Report([], "quick", "cpu", 0.0, None).passed is False


# -- theory/ and core/declaration.py (issue 13's mutation run over the declaration spine) -----------------
# Every expected value below comes from a route independent of ntkode: mpmath, numpy.roots, a formula worked
# out by hand in the docstring, or a brute-force optimiser written here.

def test_quadratic_roots_are_accurate_when_b_is_negative():
    """z^2 + b z + c with b = -(1 + beta - eta lam) < 0 and a tiny c = beta (heavy ball, beta = 1e-14,
    eta lam = 1e-3): the roots are ~0.999 and ~1e-14; a cancelling formula gets the small one wrong by ~1%.
    Reference: the same polynomial's roots by mpmath at 40 digits."""
    import mpmath as mp

    from ntkode.theory import roots_function

    mp.mp.dps = 40
    beta, eta, lam_ = 1e-14, 1e-3, 1.0
    got = np.sort(np.abs(np.asarray(roots_function("hb")(np.array([lam_]), eta, beta))[0]))
    want = sorted(abs(r) for r in mp.polyroots([1, -(1 + mp.mpf(beta) - mp.mpf(eta) * lam_), mp.mpf(beta)]))
    np.testing.assert_allclose(got, [float(w) for w in want], rtol=1e-12)


def test_jury_third_condition_alone_decides_mom2_instability():
    """mom2 at eta lam = 0.5, beta = beta2 = 0.9: p(z) = z^3 - 1.4 z^2 + 0.9 passes P(1) = 0.5 > 0,
    -P(-1) = 1.5 > 0 and |a_0| = 0.9 < 1, but the reduced row b_j = a_0 a_j - a_3 a_{3-j} has |b_0| = 0.19 <
    |b_2| = 1.26: unstable, radius 1.16700 by numpy.roots. Only the Jury table's reduction sees it."""
    from ntkode.symbols import lam as LAM, z as Z
    from ntkode.theory import jury_conditions
    from ntkode.theory.discrete import rate_polynomial

    want = max(abs(np.roots([1.0, -1.4, 0.0, 0.9])))
    assert want > 1.16
    m_poly = rate_polynomial("mom2")
    names = {str(s): s for s in m_poly.free_symbols}
    at = {LAM: 1, names["eta"]: 0.5, names["beta"]: 0.9, names["beta2"]: 0.9}
    assert not bool(jury_conditions(m_poly.subs(at), Z))
    from ntkode.theory import spectral_radius

    res = spectral_radius("mom2", [1.0], eta=0.5, beta=0.9, beta2=0.9)
    assert res.rate == pytest.approx(want, rel=1e-12) and not res.stable


def test_cubic_real_root_is_backward_stable():
    """The real root x of z^3 + a2 z^2 + a1 z + a0 (first column of poly_roots) over 20000 seeded mom2 draws has
    a relative backward error |p(x)| / (|x|^3 + |a2| x^2 + |a1||x| + |a0|) under 8 ulp (Newton-polished:
    1.4 ulp at most; Cardano alone reaches ~3e4 ulp on 0.3% of these draws)."""
    from ntkode.theory.discrete import poly_roots

    rng = np.random.default_rng(3)
    n = 20000
    el, b, b2 = 10 ** rng.uniform(-6, 0.5, n), rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    a2, a1, a0 = -(1 + b - el), b - b2, b2
    x = np.asarray(poly_roots(np, [a0, a1, a2]))[:, 0]
    assert np.max(np.abs(x.imag)) == 0
    x = x.real
    backward = np.abs(((x + a2) * x + a1) * x + a0) / (np.abs(x) ** 3 + np.abs(a2) * x**2 + np.abs(a1 * x) + np.abs(a0))
    assert backward.max() < 8 * np.finfo(float).eps


def test_radius_exactly_one_is_not_stable():
    """GD at eta lam = 2: the root 1 - 2 = -1 has modulus exactly 1, neither decaying nor stable."""
    from ntkode.theory import spectral_radius

    res = spectral_radius("gd", [0.5, 1.0], lr=2.0)
    assert res.rate == 1.0 and not res.stable and res.argmax_lambda == 1.0


def test_overdamped_decay_exponent():
    """hb's ODE e'' + gamma e' + lam e = 0 at gamma = 3, lam = 1 (over-damped): roots (-3 +- sqrt 5)/2, the
    slowest decays at (3 - sqrt 5)/2 = 0.381966...; gd's gradient flow e' = -lam e decays at lam."""
    import sympy as sp

    from ntkode.symbols import lam as LAM
    from ntkode.theory import ode_rate
    from ntkode.theory.ode import decay_exponent

    expr = decay_exponent("hb")
    gamma = next(s for s in expr.free_symbols if str(s) == "gamma")
    assert float(expr.subs({gamma: 3, LAM: 1})) == pytest.approx((3 - math.sqrt(5)) / 2, rel=1e-14)
    assert sp.simplify(decay_exponent("gd") - LAM) == 0
    assert ode_rate("hb", [1.0, 4.0], damping=3.0).exponent == pytest.approx((3 - math.sqrt(5)) / 2, rel=1e-12)


def test_small_ode_exponent_is_kept():
    """Gradient flow on lam = 1e-5 decays at 1e-5 per unit time: a small exponent is not rounded to 0."""
    from ntkode.theory import ode_rate

    assert ode_rate("gd", [1e-5, 1.0]).exponent == pytest.approx(1e-5, rel=1e-12)


def test_gd_ode_optimum_is_the_slowest_mode():
    """Gradient flow has nothing to tune: its exponent on [lam_0, lam_max] is lam_0 (e' = -lam_0 e)."""
    from ntkode.theory import optimal

    assert optimal("gd", 0.5, 4.0, ode=True)["exponent"] == pytest.approx(0.5, rel=1e-14)


def _brute_force_optimum(coeffs, lo, hi, bounds):
    """min over hyper-parameters of max over a geometric grid of [lo, hi] of the largest root modulus of
    z^2 + c1 z + c0 (coeffs(lam, *hyper) -> (c1, c0)), by scipy's differential evolution then Nelder-Mead;
    roots from the complex quadratic formula, nothing of ntkode."""
    from scipy import optimize

    grid = np.geomspace(lo, hi, 401)

    def worst(x):
        c1, c0 = coeffs(grid, *x)
        d = np.sqrt(c1.astype(complex) ** 2 - 4 * c0)
        return float(np.max(np.maximum(np.abs(-c1 + d), np.abs(-c1 - d)) / 2))

    best = optimize.differential_evolution(worst, bounds, seed=0, tol=1e-12, polish=False)
    best = optimize.minimize(worst, best.x, method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-14})
    return best.x, best.fun


def test_nag_sc_closed_form_optimum_equals_brute_force():
    """NAG-SC on [1, 100]: the declared optimum (Lessard, Recht & Packard 2016) against an independent
    minimax search over (eta, beta) of z^2 - (1 + beta)(1 - eta lam) z + beta (1 - eta lam)."""
    from ntkode.theory import optimal

    x, rate = _brute_force_optimum(lambda lam_, eta, beta: (-(1 + beta) * (1 - eta * lam_), beta * (1 - eta * lam_)),
                                   1.0, 100.0, [(1e-4, 0.05), (0.0, 0.999)])
    got = optimal("nag-sc", 1.0, 100.0)
    assert got["rate_formula"] == pytest.approx(rate, abs=1e-6)
    assert got["rate"] == pytest.approx(rate, abs=1e-6)
    assert got["hyper"]["eta"] == pytest.approx(x[0], rel=1e-3)
    assert got["hyper"]["beta"] == pytest.approx(x[1], rel=1e-3)


def test_hb_and_gd_closed_form_optima_equal_brute_force():
    """Polyak's heavy ball and GD on [1, 100] against the same independent minimax search."""
    from ntkode.theory import optimal

    x, rate = _brute_force_optimum(lambda lam_, eta, beta: (-(1 + beta - eta * lam_), beta + 0 * lam_),
                                   1.0, 100.0, [(1e-4, 0.1), (0.0, 0.999)])
    got = optimal("hb", 1.0, 100.0)
    assert got["rate_formula"] == pytest.approx(rate, abs=1e-6) and got["rate"] == pytest.approx(rate, abs=1e-6)
    assert got["hyper"]["eta"] == pytest.approx(x[0], rel=1e-3) and got["hyper"]["beta"] == pytest.approx(x[1], rel=1e-3)
    gd = optimal("gd", 1.0, 100.0)
    assert gd["hyper"]["eta"] == pytest.approx(2 / 101, rel=1e-14)  # max|1 - eta lam| balanced at both ends
    assert gd["rate"] == pytest.approx(99 / 101, rel=1e-14) and gd["rate_formula"] == pytest.approx(99 / 101, rel=1e-14)


def test_nag_sc_standard_tuning_values():
    """Nesterov's textbook tuning on [1, 100]: eta = 1/100, beta = (10 - 1)/(10 + 1), declared rate 1 - 1/10."""
    from ntkode.theory import named_tuning

    got = named_tuning("nag-sc", "standard", 1.0, 100.0)
    assert got["hyper"]["eta"] == pytest.approx(0.01, rel=1e-14)
    assert got["hyper"]["beta"] == pytest.approx(9 / 11, rel=1e-14)
    assert got["rate_formula"] == pytest.approx(0.9, rel=1e-14)


def test_nag_envelope_is_clamped_to_one():
    """The envelope bounds |e(t)|/e0, which starts at 1; near t = 0 Y_nu blows up, the bound stays 1."""
    from ntkode.theory.nesterov import nag_envelope

    t = np.array([1e-6, 1e-3, 0.1])
    env = nag_envelope(t, 1.0, 3.0)
    np.testing.assert_array_equal(env, 1.0)
    assert np.all(nag_envelope(np.linspace(0.0, 50.0, 501), 1.0, 3.0) <= 1.0)


def test_nag_prediction_refuses_lr_lam_equal_to_one():
    """(1 - eta lam)^(k/2) needs eta lam < 1: at exactly 1 the prediction is refused."""
    from ntkode.theory.nesterov import nag_discrete_prediction

    with pytest.raises(NtkodeError, match="0 < lr\\*lam < 1"):
        nag_discrete_prediction(10, 1.0, 1.0, 3.0)


def test_closed_low_end_of_a_domain_is_accepted_and_open_high_end_refused():
    """hb's momentum domain [0, 1): 0 is heavy ball without momentum, GD (radius |1 - eta lam|); 1 is refused."""
    from ntkode.theory import spectral_radius

    assert spectral_radius("hb", [1.0, 3.0], lr=0.5, momentum=0.0).rate == pytest.approx(0.5, rel=1e-14)
    with pytest.raises(NtkodeError, match="momentum"):
        spectral_radius("hb", [1.0], lr=0.5, momentum=1.0)


def test_a_one_point_domain_is_refused():
    from ntkode.declaration import Method

    spec = {"name": "toy", "hyper": {"eta": "[1, 1)"}, "state": {"W": "W0"}, "step": ["W = W - eta*grad(W)"]}
    with pytest.raises(NtkodeError, match="empty"):
        Method.from_dict(spec)


def test_step_size_hypers_are_the_ones_scaling_with_the_kernel():
    """p(z) depends on eta only through eta lam for gd, hb, nag-sc and mom2; beta and beta2 do not scale."""
    from ntkode.declaration import load_method

    for name, want in (("gd", ("eta",)), ("hb", ("eta",)), ("nag-sc", ("eta",)), ("mom2", ("eta",))):
        assert load_method(name).step_size_hypers == want


def test_width_claim_range_refuses_a_width_independent_error():
    """The O(m^(-1/2)) claims accept slopes in [-0.8, -0.25]: 0 (no decay with width) and +0.2 fail, -0.5 passes."""
    from ntkode.verify.claims_width import HALF_POWER

    assert HALF_POWER.score(-0.5, -0.5) <= 1.0
    assert HALF_POWER.score(-0.5, 0.0) > 1.0 and HALF_POWER.score(-0.5, 0.2) > 1.0
    assert HALF_POWER.score(-0.5, -0.26) <= 1.0 < HALF_POWER.score(-0.5, -0.24)


# -- the CLI's JSON against independent values (issue 13's "weak tests": JSON that only parsed or was counted) --
def _cli_json(capsys, *argv) -> dict:
    import json

    from ntkode.verify.cli import main

    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_discrete_json_roots_solve_the_literature_polynomial(beta, capsys):
    """rates hb --json: every eigenvalue's roots solve Polyak's z^2 - (1 + beta - eta lam) z + beta to 1e-12, their
    largest modulus is the reported radius; at beta = 0 the roots are exactly {1 - eta lam, 0}."""
    eta, eigs = 0.5, [0.1, 1.0, 3.0]
    out = _cli_json(capsys, "rates", "hb", "--eigs", ",".join(map(str, eigs)), "--lr", str(eta), "--momentum",
                    str(beta), "--json")
    for entry, lam_ in zip(out["per_eigenvalue"], eigs):
        roots = [complex(re, im) for re, im in entry["roots"]]
        for z in roots:
            assert abs(z * z - (1 + beta - eta * lam_) * z + beta) < 1e-12
        assert max(abs(z) for z in roots) == pytest.approx(entry["radius"], rel=1e-14)
        if beta == 0.0:
            assert sorted(z.real for z in roots) == sorted([1 - eta * lam_, 0.0])
    assert out["rate"] == max(e["radius"] for e in out["per_eigenvalue"])


def _numeric(expr_text: str, values: dict) -> complex:
    import sympy as sp

    expr = sp.sympify(expr_text)
    return complex(expr.subs({s: values[str(s)] for s in expr.free_symbols}).evalf(30))


@pytest.mark.parametrize("method", ["gd", "hb", "nag-sc", "mom2"])
def test_derive_json_polynomial_and_roots_are_the_literature(method, capsys):
    """derive --json: the polynomial equals the literature's (tests/test_theory_discrete.py's closed forms, written
    out here at a numeric point), each root is a root of it, and the ODE JSON's exponent equals ode_rate's."""
    from ntkode.theory import ode_rate

    values = {"eta": 0.3, "beta": 0.6, "beta2": 0.2, "lam": 1.7, "z": 0.4 + 0.3j}
    e, b, b2, lam_, z = (values[n] for n in ("eta", "beta", "beta2", "lam", "z"))
    literature = {
        "gd": z - (1 - e * lam_),
        "hb": z**2 - (1 + b - e * lam_) * z + b,
        "nag-sc": z**2 - (1 + b) * (1 - e * lam_) * z + b * (1 - e * lam_),
        "mom2": z**3 - (1 + b - e * lam_) * z**2 + (b - b2) * z + b2,
    }[method]
    out = _cli_json(capsys, "derive", method, "--json")
    assert _numeric(out["polynomial"], values) == pytest.approx(literature, abs=1e-12)
    for root in out["roots"]:
        at_root = dict(values, z=_numeric(root, values))
        assert abs(_numeric(out["polynomial"], at_root)) < 1e-12
    ode = _cli_json(capsys, "derive", method, "--ode", "--json")
    odes = {"gamma": 0.8, "beta2": 0.2, "lam": 1.7}
    hyper = {"gd": {}, "hb": {"damping": 0.8}, "nag-sc": {"damping": 0.8}, "mom2": {"damping": 0.8, "momentum2": 0.2}}
    want = ode_rate(method, [1.7], **hyper[method]).exponent
    assert _numeric(ode["exponent"], odes).real == pytest.approx(want, rel=1e-12)
    if method in ("hb", "nag-sc"):  # e'' + gamma e' + lam e = 0, under-damped at gamma = 0.8, lam = 1.7: gamma/2
        assert want == pytest.approx(0.4, rel=1e-12)


@pytest.mark.parametrize("coeffs", [[1.0, 0.0, 1.5], [1.0, 0.3, 1.2], [1.0, -0.2, 1.9]])
def test_jury_needs_the_constant_term_inside_the_unit_disc(coeffs):
    """z^2 + b z + c with 1 < c < 2 and |b| small: P(1) > 0 and P(-1) > 0 hold, but the roots' product is
    c > 1, so a root lies outside the unit circle (numpy.roots); only |a_0| < 1 tells."""
    import sympy as sp

    from ntkode.symbols import z as Z
    from ntkode.theory import jury_conditions

    assert max(abs(np.roots(coeffs))) > 1
    poly = sum(sp.nsimplify(c) * Z ** (2 - i) for i, c in enumerate(coeffs))
    assert not bool(jury_conditions(poly, Z))
    assert bool(jury_conditions(Z**2 + sp.nsimplify(coeffs[1]) * Z + sp.Rational(1, 2), Z))  # c = 1/2: stable


def test_worst_rate_sees_an_interior_peak_of_the_spectrum():
    """W = W - eta grad(W - gamma grad W) has p(z) = z - (1 - eta lam + eta gamma lam^2); at eta = 0.6,
    gamma = 0.05 on [1, 19] the root is 0.43 at both ends but 1 - eta/(4 gamma) = -2 at lam = 1/(2 gamma) = 10:
    the worst radius is 2, inside the interval. A tuning's reported rate must see it (65-point geometric grid:
    the nearest point is within a factor 19^(1/128) of 10, so the radius there is 2 - O(1e-3))."""
    from ntkode.declaration import Method
    from ntkode.theory import named_tuning

    toy = Method.from_dict({"name": "eg-toy", "hyper": {"eta": "(0, inf)", "gamma": "(0, inf)"}, "state": {"W": "W0"},
                            "step": ["W = W - eta*grad(W - gamma*grad(W))"],
                            "tuning": {"t": {"eta": "3/5", "gamma": "1/20"}}})
    rate = named_tuning(toy, "t", 1.0, 19.0)["rate"]
    assert 1.99 < rate <= 2.0 + 1e-12


def test_renormalised_iteration_keeps_the_true_scale():
    """GD on H = diag(0.5, 2) from e0 = (1, 1) with eta = 0.3: e_k = ((0.85)^k, (0.4)^k) exactly; with
    renormalise=True, E[k] exp(log_scale[k]) must still be that (the scale accumulates over the steps)."""
    from ntkode.theory import iterate

    k = np.arange(61)
    want = np.stack([0.85**k, 0.4**k], axis=1)
    E, log_scale = iterate("gd", np.diag([0.5, 2.0]), np.ones(2), 60, renormalise=True, lr=0.3)
    np.testing.assert_allclose(E * np.exp(log_scale)[:, None], want, rtol=1e-12, atol=0)
    plain, zeros = iterate("gd", np.diag([0.5, 2.0]), np.ones(2), 60, lr=0.3)
    np.testing.assert_allclose(plain, want, rtol=1e-12, atol=0)
    assert not zeros.any()


def test_a_direction_that_starts_at_zero_and_gets_no_gradient_is_not_a_mode():
    """d = rho d with d_0 = 0 stays 0 for every k, so W = W - eta grad(W) + d is gradient descent: its reduced
    polynomial is z - (1 - eta lam) and the rate ignores rho (a d_0 = 1 start would add the pole rho)."""
    import sympy as sp

    from ntkode.declaration import Method
    from ntkode.symbols import lam as LAM, z as Z
    from ntkode.theory import spectral_radius

    toy = Method.from_dict({"name": "idle-d", "hyper": {"eta": "(0, inf)", "rho": "(0, inf)"},
                            "state": {"W": "W0", "d": "0"}, "step": ["d = rho*d", "W = W - eta*grad(W) + d"]})
    eta = next(hp.symbol for hp in toy.hyper if hp.name == "eta")
    assert sp.simplify(toy.char_poly() - (Z - (1 - eta * LAM))) == 0
    assert spectral_radius(toy, [1.0], eta=0.5, rho=3.0).rate == pytest.approx(0.5, rel=1e-14)
