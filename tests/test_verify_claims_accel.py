"""acceleration, qhm-rate, triple-momentum-rate and `ntkode verify --method`: each claim passes on an exact
linear-recursion double of simulate and fails when the double's kernel is H-infinity x 1.1; the pieces the
claims' tolerances rest on, each checked by an independent route; the user claim end to end; bad input."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from ntkode.declaration import load_method
from ntkode.numerics import forward, init_network, kernel_spectrum, ntk_empirical, ntk_infinite
from ntkode.theory import iterate, named_tuning, optimal, spectral_radius
from ntkode.verify import claims_accel, claims_common
from ntkode.verify.claims import CLAIMS
from ntkode.verify.claims_accel import (
    ACCELERATION, THEOREM_SLOPE, THRESHOLD, accel_predictions, angle_for_kappa, antisymmetric_init, crossing_step,
    drift_bound, kernels, loglog_slope, pair_inputs, pair_kappa, predicted_steps, steps_tolerance, theorem_check,
    transient_allowance, wedge_sigma,
)
from ntkode.verify.claims_common import sphere_problem
from ntkode.verify.claims_declared import (
    QHM_RATE, TRIPLE_MOMENTUM_RATE, claim_steps, fitted_mode, nearly_double, qhm_rule, triple_momentum_rule,
)
from ntkode.verify.cli import main

from doubles import recursion_double

NEW_CLAIMS = ["acceleration", "qhm-rate", "triple-momentum-rate"]


@pytest.fixture
def double(monkeypatch):
    def install(scale):
        fake = recursion_double(scale)
        monkeypatch.setattr(claims_accel, "simulate", fake)
        monkeypatch.setattr(claims_common, "simulate", fake)
    return install


def test_the_new_claims_are_registered_with_predictions():
    assert all(name in CLAIMS and CLAIMS[name].predict is not None for name in NEW_CLAIMS)


@pytest.mark.parametrize("name", NEW_CLAIMS)
def test_each_new_claim_passes_on_the_exact_recursion(name, double):
    double(1.0)
    outcome = CLAIMS[name].run("quick", "cpu", seeds=2)
    assert outcome.checks and outcome.passed, [(c.label, c.predicted, c.measured, c.tolerance.value)
                                               for c in outcome.checks if not c.passed]


@pytest.mark.parametrize("name", NEW_CLAIMS)
def test_each_new_claim_fails_on_a_kernel_ten_percent_too_large(name, double):
    double(1.1)
    outcome = CLAIMS[name].run("quick", "cpu", seeds=2)
    assert not outcome.passed
    # the checks against H-infinity are the ones that see it (H(W_0) is the double's own kernel)
    assert any(not c.passed for c in outcome.checks if "W0" not in c.label)


@pytest.mark.parametrize("scale", [0.9, 1.1])
@pytest.mark.parametrize("name", NEW_CLAIMS)
def test_each_check_leaves_its_tolerance_unless_declared_blind(name, scale):
    claim = CLAIMS[name]
    params = claim.params("quick", seeds=2)
    base, moved = claim.predict(params, 1.0), claim.predict(params, scale)
    for exact, wrong in zip(base, moved, strict=True):
        detected = exact.tolerance.score(wrong.value, exact.value) > 1.0
        assert detected is (scale not in exact.blind_to), (name, exact.label, wrong.value, exact.value)
    if name == "acceleration":
        # blindness is the exception: GD's counts see every scale, every method's counts see it somewhere
        assert all(not p.blind_to for p in base if p.label.startswith("gd kappa"))
        for method in THEOREM_SLOPE:
            counts = [p for p in base if p.label.startswith(f"{method} kappa")]
            assert any(scale not in p.blind_to for p in counts), (method, scale)
    else:
        assert all(not p.blind_to for p in base)


# --- the pieces of the acceleration claim --------------------------------------------------------

@pytest.mark.parametrize("theta", [0.05, 0.3, 1.0, 1.5])
def test_pair_kappa_is_h_infinity_of_the_pair(theta):
    """Closed form (1/2 + h)/(1/2 - h), h = cos(theta)(pi - theta)/(2 pi), against the kernel module."""
    lam = kernel_spectrum(ntk_infinite(pair_inputs(theta)))[0]
    assert pair_kappa(theta) == pytest.approx(lam[1] / lam[0], rel=1e-10)
    assert lam[0] == pytest.approx(0.5 - math.cos(theta) * (math.pi - theta) / (2 * math.pi), rel=1e-10)


@pytest.mark.parametrize("kappa", [2.0, 10.0, 100.0, 1e4])
def test_angle_for_kappa_inverts_and_approaches_two_pi_over_kappa(kappa):
    theta = angle_for_kappa(kappa)
    assert pair_kappa(theta) == pytest.approx(kappa, rel=1e-9)
    if kappa >= 100:  # kappa = 2 pi/theta - 1 - pi^2 + O(theta) (docs/theory.md#acceleration)
        assert theta == pytest.approx(2 * math.pi / (kappa + 1 + math.pi ** 2), rel=0.02)


def test_antisymmetric_init_outputs_zero_and_has_the_half_width_kernel():
    X = pair_inputs(0.2)
    W, a = antisymmetric_init(64, 3)
    half_W, half_a = init_network(32, 2, 3)
    assert np.abs(forward(W, a, X)).max() < 1e-15
    np.testing.assert_allclose(ntk_empirical(W, a, X), ntk_empirical(half_W, half_a, X), rtol=1e-12)


def test_wedge_sigma_matches_monte_carlo():
    """The relative spread of lambda_min(H(W_0)) over 300 independent nets is the binomial formula's (+-20%)."""
    theta, width = 0.3, 2048
    X = pair_inputs(theta)
    lam0 = kernel_spectrum(ntk_infinite(X))[0][0]
    rel = [kernel_spectrum(ntk_empirical(*antisymmetric_init(width, s), X))[0][0] / lam0 - 1 for s in range(300)]
    assert np.std(rel, ddof=1) == pytest.approx(wedge_sigma(theta, width), rel=0.2)


def test_drift_bound_covers_the_lazy_limit_move(monkeypatch):
    """The minimum-norm move W_inf - W_0 = -J^T H(W_0)^{-1} e_0 (docs/theory.md#beyond-lazy), applied to real nets:
    the drop of lambda_min it causes is covered by drift_bound without its momentum allowance of 2, within 2x."""
    theta, width, scale = 0.2, 65536, 0.05  # labels 50x the claim's so that enough neurons flip to count
    monkeypatch.setattr(claims_accel, "LABEL_SCALE", scale)
    X = pair_inputs(theta)
    y = scale * kernel_spectrum(ntk_infinite(X))[1][:, 0]
    drops = []
    for seed in range(4):
        W, a = antisymmetric_init(width, seed)
        H0 = ntk_empirical(W, a, X)
        c = np.linalg.solve(H0, -y)
        dW = -(a[:, None] / math.sqrt(width)) * (((W @ X.T) >= 0) * c[None, :]) @ X
        drops.append(1 - kernel_spectrum(ntk_empirical(W + dW, a, X))[0][0] / kernel_spectrum(H0)[0][0])
    estimate = drift_bound(theta, width) / 2
    assert np.mean(drops) > 0 and np.mean(drops) <= estimate <= 2 * np.mean(drops), (drops, estimate)


def test_the_quick_labels_keep_the_drift_below_the_initial_fluctuation():
    """LABEL_SCALE's purpose: at the quick width the drift bound is below one sigma of lambda_min(H(W_0))."""
    params = ACCELERATION.params("quick")
    for kernel in kernels(params):
        assert drift_bound(kernel.theta, params["width"]) < wedge_sigma(kernel.theta, params["width"])


def test_step_tolerance_is_gds_closed_form_move_for_three_sigma_plus_drift():
    """GD from one eigenvector: steps = L/(-log(1 - eta lam_0)) exactly, so the tolerance is that formula's move
    when lam_0 drops by delta = 3 wedge_sigma + drift_bound (the worse direction for GD)."""
    params = ACCELERATION.params("quick")
    for kernel in kernels(params):
        eta = kernel.tuned["gd"]["hyper"]["eta"]
        lam0 = kernel.lam[0]
        delta = 3 * wedge_sigma(kernel.theta, params["width"]) + drift_bound(kernel.theta, params["width"])
        move = math.log(math.log(1 - eta * lam0) / math.log(1 - eta * lam0 * (1 - delta)))
        assert steps_tolerance(params, kernel, "gd") == pytest.approx(move, rel=1e-6)


def test_crossing_step_of_a_geometric_sequence_is_log_threshold_over_log_rho():
    rho = 0.7
    err = rho ** np.arange(100)
    assert crossing_step(err) == pytest.approx(math.log(THRESHOLD) / math.log(rho), rel=1e-9)
    assert math.isnan(crossing_step(err[:30]))  # still above 1e-6 at the end
    assert math.isnan(crossing_step(np.array([1.0, np.nan, 1e-9])))


def test_crossing_step_ignores_a_zero_passage():
    """An oscillating error dipping below the threshold early counts only when it stays below."""
    k = np.arange(200)
    err = np.abs(0.9 ** k * np.cos(0.3 * k + 0.2)) + 1e-12
    last = crossing_step(err)
    assert np.all(err[int(math.ceil(last)):] <= THRESHOLD * err[0])
    assert err[int(math.floor(last))] > THRESHOLD * err[0]
    assert np.flatnonzero(err <= THRESHOLD * err[0])[0] < last - 5


def test_polyak_double_root_transient_is_one_plus_one_minus_rho_k():
    """docs/theory.md#acceleration: with W_{-1} = W_0, heavy ball at Polyak's tuning has e_k = rho^k (1 + (1 - rho) k)
    on lambda_0, so the transient gain A at the crossing is 1 + (1 - rho) s < 1 + 2 log(1e6)."""
    lam0, lam_max = 0.05, 1.0
    tuned = optimal("hb", lam0, lam_max)
    rho, k = math.sqrt(tuned["hyper"]["beta"]), np.arange(301)  # the double root: rho^2 = beta
    E, _ = iterate("hb", np.array([[lam0]]), np.array([1.0]), 300, **tuned["hyper"])
    np.testing.assert_allclose(E[:, 0], rho ** k * (1 + (1 - rho) * k), rtol=1e-9)


def test_transient_gain_is_within_its_bound_for_every_method():
    """The allowance assumes |e_s| <= A rho^s |e_0| with A <= 1 + 2 log(1e6) at the crossing s."""
    params = ACCELERATION.params("quick")
    bound = 1 + 2 * math.log(1 / THRESHOLD)
    for kernel in kernels(params):
        for method in THEOREM_SLOPE:
            s = predicted_steps(params, kernel, method)
            gain = THRESHOLD / kernel.tuned[method]["rate"] ** s
            assert 1.0 <= gain * (1 + 1e-9) and gain <= bound, (method, kernel.kappa, gain)


def test_the_theorem_checks_can_fail():
    """GD's predicted slope is many tolerances from 1/2 and the accelerated ones' from 1 (about 2 at the quick
    kappa range 5..50, where NAG-SC's and triple momentum's finite-kappa slopes are still ~0.6)."""
    ks = kernels(ACCELERATION.params("quick"))
    for method, slope in THEOREM_SLOPE.items():
        predicted = [predicted_steps(ACCELERATION.params("quick"), k, method) for k in ks]
        check = theorem_check(ks, method, predicted)
        assert check.passed
        wrong = 0.5 if slope == 1.0 else 1.0
        assert abs(check.measured - wrong) > 1.5 * check.tolerance.value, (method, check.measured, check.tolerance)


def test_the_slope_checks_can_fail():
    """Each measured-slope tolerance is far below the gap between slopes 1 and 1/2."""
    slopes = [p for p in accel_predictions(ACCELERATION.params("quick")) if p.label.endswith("slope")]
    assert len(slopes) == 4
    for p in slopes:
        assert p.tolerance.value < 0.25 and abs(p.value - THEOREM_SLOPE[p.label.split()[0]]) < 0.15


def test_transient_allowance_is_the_worst_least_squares_shift():
    """Shifts of log(steps) in [0, b] move the fitted slope by at most b sum(w_j > 0); attained by a step."""
    kappas = [5.0, 10.8, 23.2, 50.0]
    b = math.log(1 + math.log(1 + 2 * math.log(1e6)) / math.log(1e6))
    worst = max(abs(loglog_slope(kappas, np.exp(b * np.array(bits)))) for bits in np.ndindex(2, 2, 2, 2))
    assert transient_allowance(kappas, "hb") == pytest.approx(worst, rel=1e-12)
    assert transient_allowance(kappas, "gd") == 0.0


def test_loglog_slope_is_least_squares():
    kappas, steps = [4.0, 9.0, 20.0, 41.0], [10.0, 16.0, 22.0, 35.0]
    expected = np.polyfit(np.log(kappas), np.log(steps), 1)[0]
    assert loglog_slope(kappas, steps) == pytest.approx(expected, rel=1e-12)


# --- the generic claim and `ntkode verify --method` -------------------------------------------------

def test_qhm_setting_is_not_heavy_ball():
    """nu < 1 (QHM proper; nu = 1 is heavy ball); that its prediction sees a 10% kernel error is tested above."""
    prob = sphere_problem(claims_common.PROBLEM_QUICK)
    assert qhm_rule(prob)["nu"] < 1 and "nu = 0.7" in QHM_RATE.doc
    assert "standard tuning" in TRIPLE_MOMENTUM_RATE.doc


def test_double_roots_are_fitted_with_a_power_and_simple_ones_are_not():
    """nag-sc's standard tuning and Polyak's heavy ball have a double root at lambda_0; triple momentum's standard
    tuning (roots rho and rho^2/(...) there) and the qhm setting have simple ones."""
    prob = sphere_problem(claims_common.PROBLEM_QUICK)
    named = {"nag-sc": named_tuning("nag-sc", "standard", prob.lam0, prob.lam_max)["hyper"],
             "hb": optimal("hb", prob.lam0, prob.lam_max)["hyper"],
             "triple-momentum": triple_momentum_rule(prob), "qhm": qhm_rule(prob)}
    verdicts = {name: nearly_double(load_method(name), hyper, prob, 200) for name, hyper in named.items()}
    assert verdicts == {"nag-sc": True, "hb": True, "triple-momentum": False, "qhm": False}


def test_the_fitted_mode_is_the_smallest_eigenvalue_attaining_rho():
    """Triple momentum's standard tuning attains rho at both ends (-rho at lambda_max): fit where the labels are."""
    prob = sphere_problem(claims_common.PROBLEM_QUICK)
    theory = spectral_radius("triple-momentum", prob.lam, **triple_momentum_rule(prob))
    assert theory.radius[-1] == pytest.approx(theory.rate, rel=1e-9)
    assert fitted_mode(theory) == 0


@pytest.mark.parametrize("rule", [qhm_rule, triple_momentum_rule])
def test_the_run_lasts_until_the_slowest_mode_nears_round_off(rule):
    """claim_steps: long enough for the fitted mode to fall by ~1e-12 on H-inf's recursion, not twice as long."""
    prob = sphere_problem(claims_common.PROBLEM_QUICK)
    method = load_method("qhm" if rule is qhm_rule else "triple-momentum")
    hyper = rule(prob)
    steps = claim_steps(method, hyper, prob, QHM_RATE.params("quick"))
    mode = fitted_mode(spectral_radius(method, prob.lam, **hyper))
    E, _ = iterate(method, np.diag(prob.lam), -prob.vecs.T @ prob.y, steps, **hyper)
    decay = np.abs(E[:, mode]) / abs(E[0, mode])
    assert decay[-1] < 1e-11 and decay[steps // 2] > 1e-9


MY_GD = """
name = "my-gd"
title = "my gradient descent"
step = ["W = W - step*grad(W)"]

[hyper]
step = "(0, inf)"

[state]
W = "W0"

[optimum]
step = "2/(lam_0 + lam_max)"
rate = "(lam_max - lam_0)/(lam_max + lam_0)"
"""


@pytest.fixture
def my_gd(tmp_path):
    path = tmp_path / "my_gd.toml"
    path.write_text(MY_GD)
    return path


def test_user_claim_end_to_end(my_gd, tmp_path, capsys):
    """One command: the declaration's rate against a real wide net (quick width), exit 0, report written."""
    out = tmp_path / "report"
    assert main(["verify", "--method", str(my_gd), "--hyper", "step=0.8", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "my-gd-declared-rate[H-inf]" in printed and "my-gd-declared-rate[H(W0)]" in printed
    assert "1/1 claims passed" in printed and (out / "my-gd-declared-rate.png").is_file()


def test_user_claim_without_hyper_tunes_on_h_infinity(my_gd, tmp_path, capsys, double):
    double(1.0)
    assert main(["verify", "--method", str(my_gd), "--device", "cpu", "--out", str(tmp_path / "r")]) == 0
    assert "tuned on H-infinity" in CLAIMS.get("my-gd-declared-rate", SimpleNamespace(doc="tuned on H-infinity")).doc


def test_user_claim_on_a_wrong_kernel_fails_with_exit_1(my_gd, tmp_path, capsys, double):
    double(1.1)
    assert main(["verify", "--method", str(my_gd), "--hyper", "step=0.8", "--device", "cpu",
                 "--out", str(tmp_path / "r")]) == 1


@pytest.mark.parametrize("argv, message", [
    (["--method", "{gd}", "--hyper", "step=5"], "makes my-gd diverge"),
    (["--method", "{gd}", "--hyper", "eta=0.5"], "no hyper-parameter 'eta'"),
    (["--method", "{gd}", "--hyper", "step=-1"], "--hyper step"),
    (["--method", "{gd}", "--hyper", "step"], "NAME=VALUE"),
    (["--method", "{missing}"], "does not exist"),
    (["--method", "{bad}"], "bad.toml"),
    (["--hyper", "step=1"], "--hyper needs --method"),
    (["--method", "{gd}", "--claims", "gd-linear"], "leave out --claims"),
])
def test_bad_user_claims_are_one_line_and_exit_2(argv, message, my_gd, tmp_path, capsys, double):
    double(1.0)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nstep = ["W = W*W"]\n[state]\nW = "W0"\n')
    paths = {"gd": str(my_gd), "missing": str(tmp_path / "missing.toml"), "bad": str(bad)}
    argv = [a.format(**paths) for a in argv]
    assert main(["verify", *argv, "--device", "cpu", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
