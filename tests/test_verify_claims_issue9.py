"""Issue 9 leftovers: kernels read before round-off, the second data set, the pl-star certificate."""
import math

import numpy as np
import pytest

from ntkode.errors import NtkodeError
from ntkode.verify.claims import CLAIMS
from ntkode.verify.claims_common import roundoff_step, sphere_problem
from ntkode.verify.claims_width import lazy_read_step


def test_roundoff_step_by_hand():
    """0.5^10 = 9.8e-4 <= 1e-3 < 0.5^9; 10 * 0.5^10 = 9.8e-3 <= 1e-2 < 9 * 0.5^9 = 1.8e-2."""
    assert roundoff_step(0.5, floor=1e-3) == 10
    assert roundoff_step(0.5, power=1.0, floor=1e-2) == 10
    assert roundoff_step(0.5) == math.ceil(10 * math.log(10) / math.log(2))
    with pytest.raises(NtkodeError):
        roundoff_step(1.0)


def test_lazy_training_reads_drift_where_theory_reaches_1e_10():
    """GD at eta = 1/lam_max: (1 - lam_0/lam_max)^T <= 1e-10, the first such T, well before the last step."""
    params = CLAIMS["lazy-training"].params("quick")
    prob = sphere_problem(params)
    rho = 1 - prob.lam0 / prob.lam_max
    T = lazy_read_step(prob, params)
    assert rho ** T <= 1e-10 < rho ** (T - 1)
    assert T < params["steps"]


# --- pl-star -------------------------------------------------------------------------------------------

def _toy_net(m=64, n=3, d=3, seed=0):
    from ntkode.numerics import init_network, sphere_data

    X, _ = sphere_data(n, d, seed)
    W, a = init_network(m, d, seed)
    return X, W, a


def test_flip_bound_by_hand():
    """Two neurons, two orthogonal points: z = [[0.5, -0.05], [2.0, 0.3]], R = 0.1. Neuron 0: x_0 surely active,
    x_1 reachable (-0.05 >= -R) and not sure: pairs (0,1), (1,1) can change, (0,0) cannot. Neuron 1: both surely
    active, nothing changes. C = [[0, 1], [1, 1]] / 2 entrywise with |G| = I: B = diag(0, 1/2), norm 1/2."""
    from ntkode.verify.claims_plstar import flip_bound

    Z = np.array([[0.5, -0.05], [2.0, 0.3]])
    assert flip_bound(Z, np.eye(2), 0.1) == pytest.approx(0.5)
    assert flip_bound(Z, np.eye(2), 0.01) == pytest.approx(0.0)
    assert flip_bound(Z, np.eye(2), 0.6) == pytest.approx(1.0)


def test_flip_bound_dominates_every_move_inside_the_ball():
    """Random and targeted moves (each neuron pushed by R across its nearest boundary) never change the kernel
    by more than flip_bound(R) in spectral norm."""
    from ntkode.numerics import ntk_empirical
    from ntkode.verify.claims_plstar import flip_bound

    X, W, a = _toy_net()
    H0 = ntk_empirical(W, a, X)
    rng = np.random.default_rng(5)
    for R in (0.05, 0.2, 0.8):
        bound = flip_bound(W @ X.T, X @ X.T, R)
        nearest = np.argmin(np.abs(W @ X.T), axis=1)
        targeted = -R * np.sign((W @ X.T)[np.arange(len(W)), nearest])[:, None] * X[nearest] * 1.0001
        moves = [targeted * (1 - 1e-3)] + [rng.standard_normal(W.shape) for _ in range(40)]
        for dW in moves:
            dW = dW * np.minimum(1.0, R / np.linalg.norm(dW, axis=1))[:, None]
            assert np.linalg.norm(ntk_empirical(W + dW, a, X) - H0, 2) <= bound + 1e-12
        assert bound > 0


def test_trajectory_radius_formula():
    from ntkode.verify.claims_plstar import trajectory_radius

    assert trajectory_radius(2.0, 1.5, 400, 0.3) == pytest.approx(2 * 2.0 * 1.5 / (20 * 0.3))


def test_pl_star_at_toy_size_certifies_and_passes():
    """n = 2, d = 2, m = 16384: the certificate is self-consistent (lambda_min(H(W_0)) - flip(R(mu)) >= mu > 0),
    GD obeys it at every step, stays in the ball, and runs at the NTK rate (sphere only: second=None)."""
    from ntkode.verify.claims_plstar import certificates

    claim = CLAIMS["pl-star"]
    params = claim.params("quick", n=2, d=2, width=16384, seeds=1, second=None)
    cert, = certificates(params)
    assert 0 < cert.mu <= cert.lam_min0 - cert.flip + 1e-15
    outcome = claim.run("quick", device="cpu", n=2, d=2, width=16384, seeds=1, second=None)
    assert outcome.passed, [(c.label, c.predicted, c.measured) for c in outcome.checks]
    bound, ball, ntk = outcome.checks
    assert bound.measured < bound.predicted < 0 and ball.measured < ball.predicted


def test_pl_star_refuses_a_vacuous_certificate():
    """n = 3, d = 3 at m = 4096 admits no self-consistent mu: the claim says so instead of certifying nothing."""
    with pytest.raises(NtkodeError, match="vacuous"):
        CLAIMS["pl-star"].run("quick", device="cpu", n=3, d=3, width=4096, seeds=1)


# --- the second data set -------------------------------------------------------------------------------

RATE_CLAIMS_ON_TWO = ["gd-linear", "hb-linear", "mom2-rate", "nag-sc-linear"]


@pytest.mark.parametrize("setting", ["quick", "full"])
@pytest.mark.parametrize("name", RATE_CLAIMS_ON_TWO)
def test_second_data_set_is_ten_times_worse_conditioned(name, setting):
    """Every check exists once per data set (tagged), and the digits' kappa is at least 10x the sphere's (H-inf)."""
    from ntkode.verify.claims_common import dataset_params, problem

    runs = dataset_params(CLAIMS[name].params(setting))
    assert [tag for tag, _ in runs] == ["sphere", "digits"]
    kappas = [problem(p).lam_max / problem(p).lam0 for _, p in runs]
    assert kappas[1] >= 10 * kappas[0]
    labels = [p.label for p in CLAIMS[name].predict(CLAIMS[name].params(setting, seeds=1), 1.0)]
    sphere = [label for label in labels if label.startswith("sphere: ")]
    digits = [label for label in labels if label.startswith("digits: ")]
    assert sphere and len(sphere) == len(digits) and len(sphere) + len(digits) == len(labels)


def test_digits_problem_labels_are_unit_norm_and_kappa_as_documented():
    from ntkode.verify.claims_common import DIGITS, problem

    prob = problem({**DIGITS, "d": 10})
    assert prob.X.shape == (12, 64) and np.linalg.norm(prob.y) == pytest.approx(1.0)
    assert prob.lam_max / prob.lam0 == pytest.approx(80.8, abs=0.05)
    with pytest.raises(NtkodeError):
        problem({**DIGITS, "data": "mnist"})


def test_finite_width_tolerance_is_the_larger_of_width_and_kernel_error():
    """Sphere, m = 16384: 2 sqrt(n/m) decides; digits (kappa 81), m = 131072: the diagnostic's kernel error bound
    decides, and it is what kernel_error_tolerance gives for the seed-worst bound."""
    from ntkode.verify.claims_common import (
        DIGITS, diagnostics, finite_width_tolerance, kernel_error_tolerance, problem, width_tolerance,
    )

    for params in ({"n": 10, "d": 10, "data_seed": 0, "width": 16384, "seeds": 2},
                   {**DIGITS, "d": 10, "width": 131072, "seeds": 1}):
        prob = problem(params)
        hyper = {"lr": 1.0 / prob.lam_max}
        delta = max(d.rate_error_bound for d in diagnostics(prob, params["width"], params["seeds"]))
        kernel = kernel_error_tolerance("gd", prob.lam, hyper, delta).value
        width = width_tolerance(prob.n, params["width"]).value
        assert finite_width_tolerance("gd", prob, hyper, params).value == max(kernel, width)
        assert (kernel > width) is (params.get("data") == "digits")
