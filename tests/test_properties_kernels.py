"""docs/theory.md#property-tests end to end, through the property-testing kit `ntkode.testing`.

Kernels come from (a) random data on and off the unit sphere through H-infinity,
(b) random spectra with random orthogonal eigenvectors, and (c) empirical
kernels H(W_0) of random finite-width nets (`ntkode.testing.kernels`, each divided by its
largest eigenvalue). The linearised dynamics on a kernel H are the method's own declared step
(`ntkode.theory.statespace`, executing the same ops as the engine) applied to the error e = u - y.
With u linear in W, grad L(Y) = J^T e(Y) and H = J J^T; since the coefficients on points sum to 1
(and on directions to 0) the affine map W -> e(W) carries every statement over with grad(y) = H y
(docs/theory.md#state-space).

On every draw theory's spectral radius must equal the spectral radius of the one-step map of these
dynamics and the per-step decay measured by iterating them (`assert_rates_agree`, whose tolerances are
derived in its docstring: never looser than the former 12/K on the log-rate).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ntkode.numerics import init_network, kernel_spectrum, ntk_empirical, ntk_infinite, simulate, sphere_data
from ntkode.testing import (any_hyper, assert_invariant_under_conjugation, assert_rates_agree,
                            assert_scaling_equals_lr, data_sets, kernels, orthogonal_matrices, well_separated)
from ntkode.theory import spectral_radius
from ntkode.verify import CLAIMS, fit_linear_rate

from cases import MULTISTEP
from conftest import examples
from ntkode.verify.claims_linear import gd_rate_tolerance


def hypers(method: str) -> st.SearchStrategy[dict]:
    """Hyper-parameters anywhere in their domains for a kernel with lam_max = 1, unstable settings included
    (step sizes up to 2.5), except for nag, whose asymptotic rate sqrt(1 - eta lam) needs eta lam < 1."""
    return any_hyper(method, step_range=(0.05, 0.95 if method == "nag" else 2.5))


def envelope(method: str, hyper: dict) -> float | None:
    """Nesterov's k^(-r/2) envelope of the discrete NAG (docs/theory.md#nesterov)."""
    return -hyper["r"] / 2 if method == "nag" else None


@pytest.mark.parametrize("method", MULTISTEP)
@settings(max_examples=examples(15), deadline=None)
@given(data=st.data(), kernel=kernels())
def test_theory_rate_equals_linearised_dynamics(method: str, data: st.DataObject, kernel: np.ndarray) -> None:
    hyper = data.draw(hypers(method))
    assert_rates_agree(method, kernel, hyper, envelope_power=envelope(method, hyper))


@pytest.mark.parametrize("method", MULTISTEP)
@settings(max_examples=examples(10), deadline=None)
@given(data=st.data(), x=data_sets(), seed=st.integers(0, 2**32 - 1))
def test_rate_invariant_under_permuting_data(method: str, data: st.DataObject, x: np.ndarray, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(len(x))
    kernel = ntk_infinite(x)
    permuted = ntk_infinite(x[perm])
    np.testing.assert_allclose(permuted, kernel[np.ix_(perm, perm)], rtol=0, atol=1e-12)

    w, a = init_network(128, x.shape[1], seed=seed % 2**31)
    np.testing.assert_allclose(ntk_empirical(w, a, x[perm]), ntk_empirical(w, a, x)[np.ix_(perm, perm)], atol=1e-12)

    eigs = kernel_spectrum(kernel)[0]
    assume(eigs[0] > 1e-4 * eigs[-1])
    hyper = data.draw(hypers(method))
    assert_invariant_under_conjugation(method, kernel / eigs[-1], hyper, seed=seed)


@pytest.mark.parametrize("method", MULTISTEP)
@settings(max_examples=examples(10), deadline=None)
@given(data=st.data(), kernel=kernels(), seed=st.integers(0, 2**32 - 1))
def test_rate_invariant_under_orthogonal_conjugation(
    method: str, data: st.DataObject, kernel: np.ndarray, seed: int
) -> None:
    assert_invariant_under_conjugation(method, kernel, data.draw(hypers(method)), seed=seed)


@settings(max_examples=examples(10), deadline=None)
@given(data=st.data(), x=data_sets(), seed=st.integers(0, 2**31 - 1))
def test_kernels_depend_only_on_inner_products(data: st.DataObject, x: np.ndarray, seed: int) -> None:
    """Rotating the data (and, for H(W), the weights) leaves both kernels unchanged."""
    rot = data.draw(orthogonal_matrices(x.shape[1]))
    np.testing.assert_allclose(ntk_infinite(x @ rot), ntk_infinite(x), atol=1e-12)
    w, a = init_network(128, x.shape[1], seed=seed)
    np.testing.assert_allclose(ntk_empirical(w @ rot, a, x @ rot), ntk_empirical(w, a, x), atol=1e-12)


@pytest.mark.parametrize("method", MULTISTEP)
@settings(max_examples=examples(10), deadline=None)
@given(data=st.data(), kernel=kernels(), c=st.floats(0.1, 10.0))
def test_scaling_kernel_equals_scaling_lr(method: str, data: st.DataObject, kernel: np.ndarray, c: float) -> None:
    """H -> cH with lr eta is the same optimiser as H with lr c*eta."""
    assert_scaling_equals_lr(method, kernel, data.draw(any_hyper(method, lam_max=max(c, 1.0))), c)


@settings(max_examples=examples(10), deadline=None)
@given(x=data_sets())
def test_mean_loss_is_kernel_over_n(x: np.ndarray) -> None:
    """The 'mean' loss convention rescales the kernel by 1/n (docs/theory.md#network)."""
    np.testing.assert_allclose(ntk_infinite(x, loss="mean"), ntk_infinite(x) / len(x), rtol=1e-12)
    w, a = init_network(128, x.shape[1], seed=3)
    np.testing.assert_allclose(ntk_empirical(w, a, x, loss="mean"), ntk_empirical(w, a, x) / len(x), rtol=1e-12)


@settings(max_examples=3, deadline=None)
@given(data_seed=st.integers(1, 2**31 - 1), lr_scale=st.floats(0.5, 1.0))
def test_network_rate_within_claim_tolerance(data_seed: int, lr_scale: float) -> None:
    """On fresh random sphere data, a width-m net's GD rate along the slowest eigenvector of
    H-infinity (seed mean of `fit_linear_rate`) matches log(rho) within gd-linear's tolerance."""
    params = CLAIMS["gd-linear"].params("quick")
    tolerance = gd_rate_tolerance(params)
    x, _ = sphere_data(params["n"], params["d"], data_seed)
    assume(well_separated(x))
    lam, vecs = kernel_spectrum(ntk_infinite(x))
    labels = np.random.default_rng(data_seed).normal(size=len(lam))
    hyper = {"lr": lr_scale / lam[-1]}
    predicted = spectral_radius("gd", lam, **hyper)
    mode = int(np.argmax(predicted.radius))
    sim = simulate("gd", x, labels / np.linalg.norm(labels), [params["width"]], params["steps"],
                   seeds=params["seeds"], hyper=hyper, progress=False, movement=False)
    measured = np.mean([fit_linear_rate(row).value for row in sim.projections[0, 0, :, :, mode]])
    assert tolerance.score(math.log(predicted.rate), measured) <= 1.0, (predicted.rate, math.exp(measured))
