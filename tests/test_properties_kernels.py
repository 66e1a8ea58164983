"""docs/theory.md#property-tests end to end: rates agree across random kernels.

Kernels come from (a) random data on and off the unit sphere through H-infinity,
(b) random spectra with random orthogonal eigenvectors, and (c) empirical
kernels H(W_0) of random finite-width nets. The linearised dynamics on a kernel
H are the method's own declared step (`ntkode.theory.statespace`, executing the same
ops as the engine) applied to the error e = u - y. With u linear in W, grad L(Y) = J^T e(Y)
and H = J J^T; since the coefficients on points sum to 1 (and on directions to 0) the affine
map W -> e(W) carries every statement over with grad(y) = H y (docs/theory.md#state-space).

On every draw theory's spectral radius must equal the spectral radius of the
one-step map of these dynamics and the per-step decay measured by iterating them.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ntkode.numerics import init_network, kernel_spectrum, ntk_empirical, ntk_infinite, simulate, sphere_data
from ntkode.theory import get_method, iterate, spectral_radius
from ntkode.theory.statespace import apply_step
from ntkode.verify import CLAIMS, fit_linear_rate

from cases import MULTISTEP
from ntkode.verify.claims_linear import gd_rate_tolerance

#: steps of the measured iteration; the fit uses the second half.
STEPS = 4000
#: |measured - predicted| in log(rate) per step. Over the window [K/2, K] a
#: Jordan block adds at most (q-1) log 2 / (K/2), and oscillation of the state
#: norm (complex roots) plus mixing of the slowest modes with their neighbours
#: add O(1)/K; seen on 200 random draws at K = 2000: at most 5.3/K.
LOG_RATE_TOL = 12.0 / STEPS
#: eigenvalues of a defective q x q block are only determined to eps**(1/q); q <= 3.
ROOT_RTOL = 1e-5


def _orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian, signs fixed by diag(R))."""
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def _random_data(rng: np.random.Generator, n: int, d: int, on_sphere: bool) -> np.ndarray:
    """n Gaussian directions in R^d, unit norm or with norms drawn from [0.3, 3]."""
    x = rng.normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x if on_sphere else x * rng.uniform(0.3, 3.0, size=(n, 1))


def _well_separated(x: np.ndarray, min_angle: float = 0.05) -> bool:
    """No two inputs within `min_angle` radians of parallel (theory's assumption)."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = np.abs(unit @ unit.T)[np.triu_indices(len(x), 1)]
    return bool(np.all(cos < math.cos(min_angle)))


@st.composite
def data_sets(draw: st.DrawFn) -> np.ndarray:
    """Random inputs, on the unit sphere or off it, with no near-parallel pair."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = _random_data(rng, draw(st.integers(2, 8)), draw(st.integers(3, 6)), draw(st.booleans()))
    assume(_well_separated(x))
    return x


@st.composite
def kernels(draw: st.DrawFn) -> np.ndarray:
    """A kernel from one of the three families of docs/theory.md#property-tests."""
    family = draw(st.sampled_from(["infinite", "spectrum", "empirical"]))
    if family == "spectrum":
        eigs = np.array(draw(st.lists(st.floats(0.02, 5.0), min_size=2, max_size=8)))
        q = _orthogonal(len(eigs), np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
        return (q * eigs) @ q.T
    x = draw(data_sets())
    if family == "infinite":
        return ntk_infinite(x)
    w, a = init_network(draw(st.sampled_from([64, 256, 1024])), x.shape[1], seed=draw(st.integers(0, 2**31 - 1)))
    kernel = ntk_empirical(w, a, x)
    assume(kernel_spectrum(kernel)[0][0] > 1e-3 * kernel_spectrum(kernel)[0][-1])
    return kernel


@st.composite
def hypers(draw: st.DrawFn, method: str, lam_max: float) -> dict[str, float]:
    """Hyper-parameters of `method`, lr = c / lam_max; unstable settings included
    except for nag, whose asymptotic rate sqrt(1 - eta*lam) needs eta*lam < 1."""
    names = {hp.label for hp in get_method(method).hyper}
    c_max = 0.95 if method == "nag" else 2.5
    hyper = {"lr": draw(st.floats(0.05, c_max)) / lam_max}
    if "momentum" in names:
        hyper["momentum"] = draw(st.floats(0.0, 0.95))
    if "momentum2" in names:
        hyper["momentum2"] = draw(st.floats(0.0, 0.5))
    if "r" in names:
        hyper["r"] = draw(st.floats(1.0, 6.0))
    return hyper


def _log_state_norms(method: str, kernel: np.ndarray, e0: np.ndarray, steps: int, hyper: dict) -> np.ndarray:
    """log ||(e_k, ..., e_{k-q+1})|| for k = 0..steps (q = the recursion's order), from the declared step
    iterated with renormalisation, so neither decay nor growth leaves float64 range (the dynamics are linear)."""
    E, scale = iterate(method, kernel, e0, steps, renormalise=True, **hyper)
    q = get_method(method).degree

    def log_norm(k: int) -> float:  # the true e_j = E[j] exp(scale[j]), factored at exp(scale[k])
        window = slice(max(k - q + 1, 0), k + 1)
        return math.log(np.linalg.norm(E[window] * np.exp(scale[window] - scale[k])[:, None])) + scale[k]

    return np.array([log_norm(k) for k in range(steps + 1)])


def _measured_log_rate(logs: np.ndarray) -> float:
    """Mean per-step change of the log state norm over the second half of the run."""
    half = len(logs) // 2
    return float((logs[-1] - logs[half]) / (len(logs) - 1 - half))


def _one_step_map(method: str, kernel: np.ndarray, hyper: dict, step: int) -> np.ndarray:
    """The matrix of the declared step on the whole state (every variable's error vector), column by column."""
    m = get_method(method)
    values = m.scalar_hyper(hyper)
    args = [values[n] for n in m.hyper_names]
    n, names = len(kernel), m.state_names
    columns = []
    for basis in np.eye(n * len(names)):
        state = dict(zip(names, basis.reshape(len(names), n)))
        after = apply_step(m, kernel, state, step, args)
        columns.append(np.concatenate([after[name] for name in names]))
    return np.array(columns).T


def _asymptotic_step(method: str) -> int:
    """A step far enough out that time-varying coefficients sit at their limit."""
    return 10**9 if get_method(method).time_varying else 1


@pytest.mark.parametrize("method", MULTISTEP)
@settings(max_examples=15, deadline=None)
@given(data=st.data(), kernel=kernels())
def test_theory_rate_equals_linearised_dynamics(method: str, data: st.DataObject, kernel: np.ndarray) -> None:
    eigs = kernel_spectrum(kernel)[0]
    hyper = data.draw(hypers(method, float(eigs[-1])))
    predicted = spectral_radius(method, eigs, **hyper)

    companion = _one_step_map(method, kernel, hyper, _asymptotic_step(method))
    assert predicted.rate == pytest.approx(np.abs(np.linalg.eigvals(companion)).max(), rel=ROOT_RTOL)
    assert predicted.stable == (predicted.rate < 1.0)

    e0 = np.random.default_rng(0).normal(size=len(kernel))
    measured = _measured_log_rate(_log_state_norms(method, kernel, e0, STEPS, hyper))
    expected = math.log(predicted.rate)
    if method == "nag":
        # discrete NAG = Bessel envelope ~ k^(-r/2) times sqrt(1 - eta lam)^k (docs/theory.md#nesterov)
        expected -= hyper["r"] / 2 * math.log(2.0) / (STEPS // 2)
    assert abs(measured - expected) <= LOG_RATE_TOL


@pytest.mark.parametrize("method", MULTISTEP)
@settings(max_examples=10, deadline=None)
@given(data=st.data(), x=data_sets(), seed=st.integers(0, 2**32 - 1))
def test_rate_invariant_under_permuting_data(method: str, data: st.DataObject, x: np.ndarray, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(len(x))
    kernel = ntk_infinite(x)
    permuted = ntk_infinite(x[perm])
    np.testing.assert_allclose(permuted, kernel[np.ix_(perm, perm)], rtol=0, atol=1e-12)

    w, a = init_network(128, x.shape[1], seed=seed % 2**31)
    np.testing.assert_allclose(ntk_empirical(w, a, x[perm]), ntk_empirical(w, a, x)[np.ix_(perm, perm)], atol=1e-12)

    eigs = kernel_spectrum(kernel)[0]
    hyper = data.draw(hypers(method, float(eigs[-1])))
    expected = spectral_radius(method, eigs, **hyper).rate
    assert spectral_radius(method, kernel_spectrum(permuted)[0], **hyper).rate == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("method", MULTISTEP)
@settings(max_examples=10, deadline=None)
@given(data=st.data(), kernel=kernels(), seed=st.integers(0, 2**32 - 1))
def test_rate_invariant_under_orthogonal_conjugation(
    method: str, data: st.DataObject, kernel: np.ndarray, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    q = _orthogonal(len(kernel), rng)
    rotated = q @ kernel @ q.T
    eigs = kernel_spectrum(kernel)[0]
    hyper = data.draw(hypers(method, float(eigs[-1])))

    expected = spectral_radius(method, eigs, **hyper)
    got = spectral_radius(method, kernel_spectrum(rotated)[0], **hyper)
    assert got.rate == pytest.approx(expected.rate, rel=1e-9)
    np.testing.assert_allclose(got.radius, expected.radius, rtol=1e-9)

    e0 = rng.normal(size=len(kernel))
    steps = 200
    np.testing.assert_allclose(
        _log_state_norms(method, rotated, q @ e0, steps, hyper),
        _log_state_norms(method, kernel, e0, steps, hyper),
        rtol=1e-8,
        atol=1e-8,
    )


@settings(max_examples=10, deadline=None)
@given(x=data_sets(), seed=st.integers(0, 2**31 - 1))
def test_kernels_depend_only_on_inner_products(x: np.ndarray, seed: int) -> None:
    """Rotating the data (and, for H(W), the weights) leaves both kernels unchanged."""
    rng = np.random.default_rng(seed)
    rot = _orthogonal(x.shape[1], rng)
    np.testing.assert_allclose(ntk_infinite(x @ rot), ntk_infinite(x), atol=1e-12)
    w, a = init_network(128, x.shape[1], seed=seed)
    np.testing.assert_allclose(ntk_empirical(w @ rot, a, x @ rot), ntk_empirical(w, a, x), atol=1e-12)


@pytest.mark.parametrize("method", MULTISTEP)
@settings(max_examples=10, deadline=None)
@given(data=st.data(), kernel=kernels(), c=st.floats(0.1, 10.0))
def test_scaling_kernel_equals_scaling_lr(method: str, data: st.DataObject, kernel: np.ndarray, c: float) -> None:
    """H -> cH with lr eta is the same optimiser as H with lr c*eta."""
    eigs = kernel_spectrum(kernel)[0]
    hyper = data.draw(hypers(method, float(eigs[-1]) * c))
    scaled_lr = {**hyper, "lr": c * hyper["lr"]}
    on_scaled = spectral_radius(method, c * eigs, **hyper)
    on_original = spectral_radius(method, eigs, **scaled_lr)
    np.testing.assert_allclose(on_scaled.radius, on_original.radius, rtol=1e-10)

    e0 = np.random.default_rng(1).normal(size=len(kernel))
    np.testing.assert_allclose(
        _log_state_norms(method, c * kernel, e0, 200, hyper),
        _log_state_norms(method, kernel, e0, 200, scaled_lr),
        rtol=1e-8,
        atol=1e-8,
    )


@settings(max_examples=10, deadline=None)
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
    assume(_well_separated(x))
    lam, vecs = kernel_spectrum(ntk_infinite(x))
    labels = np.random.default_rng(data_seed).normal(size=len(lam))
    hyper = {"lr": lr_scale / lam[-1]}
    predicted = spectral_radius("gd", lam, **hyper)
    mode = int(np.argmax(predicted.radius))
    sim = simulate("gd", x, labels / np.linalg.norm(labels), [params["width"]], params["steps"],
                   seeds=params["seeds"], hyper=hyper, progress=False, movement=False)
    measured = np.mean([fit_linear_rate(row).value for row in sim.projections[0, 0, :, :, mode]])
    assert tolerance.score(math.log(predicted.rate), measured) <= 1.0, (predicted.rate, math.exp(measured))
