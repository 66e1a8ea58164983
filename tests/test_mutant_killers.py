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
