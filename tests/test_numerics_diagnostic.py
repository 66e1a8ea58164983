"""lazy_diagnostic: the lazy-limit move, the verdict thresholds, errors, and agreement with training."""
import numpy as np
import pytest

from ntkode.errors import NtkodeError
from ntkode.numerics import init_network, kernel_spectrum, lazy_diagnostic, ntk_infinite, simulate, sphere_data
from ntkode.numerics.diagnostic import lazy_move, verdict_for
from ntkode.verify.claims_diagnostic import diagnostic_grid


def test_lazy_move_is_minus_jacobian_transpose_times_c():
    """Row r of dW against the Jacobian built entry by entry: du_i/dw_r = a_r 1{w_r.x_i >= 0} x_i / sqrt(m)."""
    X, _ = sphere_data(4, 3, 1)
    W, a = init_network(7, 3, 2)
    c = np.array([0.3, -1.2, 0.7, 2.0])
    J = np.zeros((4, 7, 3))
    for i in range(4):
        for r in range(7):
            J[i, r] = a[r] * (W[r] @ X[i] >= 0) * X[i] / np.sqrt(7)
    np.testing.assert_allclose(lazy_move(W, a, X, c), -np.einsum("irk,i->rk", J, c), rtol=1e-12)


def test_lazy_move_predicts_the_trained_displacement():
    """GD trained to convergence moves W by -J^T H(W_0)^-1 e_0 up to the O(m^-1/2) nonlinearity:
    relative Frobenius error below 0.1 at m = 4096 (the kernel drift there is ~1%)."""
    X, y = sphere_data(5, 5, 0)
    y = y / np.linalg.norm(y)
    lam = kernel_spectrum(ntk_infinite(X))[0]
    sim = simulate("gd", X, y, [4096], 400, seeds=1, hyper={"lr": 1 / lam[-1]}, device="cpu", progress=False,
                   keep_weights=True, projections=False, movement=False)
    W0, a = init_network(4096, 5, 0)
    from ntkode.numerics import forward, ntk_empirical

    c = np.linalg.solve(ntk_empirical(W0, a, X), forward(W0, a, X) - y)
    predicted = lazy_move(W0, a, X, c)
    moved = sim.final_W[0][0, 0] - W0
    assert np.linalg.norm(moved - predicted) < 0.1 * np.linalg.norm(predicted)


@pytest.mark.parametrize("bound, estimate, verdict", [(0.1, 0.05, "lazy"), (0.1, 0.1, "lazy"),
                                                     (0.1001, 0.1, "marginal"), (0.5, 0.02, "marginal"),
                                                     (0.1001, 0.1001, "not lazy")])
def test_verdict_thresholds(bound, estimate, verdict):
    """lazy: the bound within the tolerance; not lazy: the estimate beyond it; else marginal."""
    assert verdict_for(bound, estimate, 0.1) == verdict


def test_estimate_is_the_bottom_eigenvalue_along_the_lazy_path():
    """rate_error = max over s in {0, 1/2, 1} of |lambda_min(H(W_0 + s dW))/lambda_0 - 1|, recomputed here from
    the pieces; path_shift the same relative to lambda_min(H(W_0)); bound = fluctuation + drift."""
    from ntkode.numerics import forward, ntk_empirical

    X, y = sphere_data(6, 4, 2)
    y = 2.0 * y / np.linalg.norm(y)
    diag = lazy_diagnostic(X, y, 512, seed=3)
    W, a = init_network(512, 4, 3)
    H0 = ntk_empirical(W, a, X)
    dW = lazy_move(W, a, X, np.linalg.solve(H0, forward(W, a, X) - y))
    bottom = np.array([np.linalg.eigvalsh(ntk_empirical(W + s * dW, a, X))[0] for s in (0.0, 0.5, 1.0)])
    lam_inf = np.linalg.eigvalsh(ntk_infinite(X))[0]
    assert diag.rate_error == pytest.approx(np.max(np.abs(bottom / lam_inf - 1)), rel=1e-9)
    assert diag.path_shift == pytest.approx(np.max(np.abs(bottom / bottom[0] - 1)), rel=1e-9)
    assert diag.rate_error_bound == pytest.approx(diag.fluctuation + diag.drift, rel=1e-12)
    assert diag.verdict == verdict_for(diag.rate_error_bound, diag.rate_error, 0.1)


def test_ill_conditioning_raises_the_predicted_error():
    """Same width and unit labels: kappa ~7 (sphere n=10, d=10) vs kappa ~45 (sphere n=20, d=5)."""
    Xa, ya = sphere_data(10, 10, 0)
    Xb, yb = sphere_data(20, 5, 0)
    da = lazy_diagnostic(Xa, ya / np.linalg.norm(ya), 8192)
    db = lazy_diagnostic(Xb, yb / np.linalg.norm(yb), 8192)
    assert db.kappa > 5 * da.kappa
    assert db.rate_error_bound > 3 * da.rate_error_bound


def test_bad_input_is_refused():
    X, y = sphere_data(5, 3, 0)
    with pytest.raises(NtkodeError):
        lazy_diagnostic(X, y, 0)
    with pytest.raises(NtkodeError):
        lazy_diagnostic(X, y, 64, tolerance=-1.0)
    with pytest.raises(NtkodeError):
        lazy_diagnostic(X, y[:3], 64)


def test_small_grid_verdicts_agree_with_training():
    """Two decisive corners of the validation grid: well-conditioned, unit labels, wide -> lazy and
    measured within 0.1; ill-conditioned (kappa ~45), labels x4, narrow -> not lazy and outside."""
    lazy, = diagnostic_grid(["sphere n=10 d=10"], widths=[65536], label_scales=[1.0])
    wild, = diagnostic_grid(["sphere n=20 d=5"], widths=[1024], label_scales=[4.0])
    assert lazy.verdict == "lazy" and lazy.within
    assert wild.verdict == "not lazy" and not wild.within
