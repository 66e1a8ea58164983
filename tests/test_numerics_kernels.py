"""Kernels against closed forms and Monte-Carlo estimates; H(W) -> H-inf with width; data checks and loaders."""
import numpy as np
import pytest

from ntkode.numerics import (check_data, digits_data, init_network, kernel_drift, kernel_spectrum, load_data,
                             ntk_empirical, ntk_infinite, paper_data, sphere_data)
from ntkode.errors import NtkodeError


def test_closed_form_values():
    X = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [3.0, 3.0]])
    H = ntk_infinite(X)
    assert H[0, 0] == pytest.approx(0.5) and H[1, 1] == pytest.approx(2.0)  # ||x||^2 / 2
    assert H[0, 1] == pytest.approx(0.0) and H[0, 2] == pytest.approx(0.0)  # orthogonal, opposite
    assert H[0, 3] == pytest.approx(3.0 * (np.pi - np.pi / 4) / (2 * np.pi))
    Hb = ntk_infinite(X, train="both", kappa=2.0)
    assert Hb[0, 0] - H[0, 0] == pytest.approx(4.0 * 0.5)  # kappa^2 E relu(w.x)^2 = kappa^2 ||x||^2 / 2
    assert Hb[0, 1] - H[0, 1] == pytest.approx(4.0 * 2.0 / (2 * np.pi))  # theta = pi/2: sin = 1
    np.testing.assert_allclose(ntk_infinite(X, loss="mean"), H / 4)


#: Monte-Carlo bound in standard errors: 15 distinct entries, P(max |z| > 4.5) ~ 15 * 6.8e-6 ~ 1e-4 for Gaussian z
MC_SIGMAS = 4.5


def per_neuron_kernel_terms(W: np.ndarray, X: np.ndarray, train: str) -> np.ndarray:
    """(m, n, n): neuron r's term of H(W), whose mean over r is the empirical kernel (a_r^2 = 1,
    docs/theory.md#network): x_i.x_j 1{w_r.x_i >= 0} 1{w_r.x_j >= 0} (+ relu(w_r.x_i) relu(w_r.x_j) if both)."""
    Z = W @ X.T
    on = (Z >= 0).astype(float)
    terms = (X @ X.T)[None] * on[:, :, None] * on[:, None, :]
    if train == "both":
        relu = np.maximum(Z, 0.0)
        terms = terms + relu[:, :, None] * relu[:, None, :]
    return terms


@pytest.mark.parametrize("train", ["W", "both"])
def test_infinite_kernel_matches_monte_carlo(train):
    """H(W_0) is a mean of m i.i.d. per-neuron terms, so each entry has standard error sigma_ij = std_r / sqrt(m)
    (CLT; the sample std of 200000 terms is within ~1% of the true one). H-inf must lie within MC_SIGMAS sigma of
    it, entry by entry (fixed seed). W-only: the term is x_i.x_j times a Bernoulli(p_ij), p_ij = (pi - theta_ij)/(2 pi),
    so sigma_ij = |x_i.x_j| sqrt(p (1 - p) / m): the sample std is checked against that closed form too."""
    X = np.random.default_rng(5).standard_normal((5, 3))  # not normalised on purpose
    m = 200_000
    W, a = init_network(m, 3, seed=1, kappa=0.7)
    Hmc = ntk_empirical(W, a, X, train=train)
    terms = per_neuron_kernel_terms(W, X, train)
    np.testing.assert_allclose(terms.mean(axis=0), Hmc, rtol=1e-10)  # summation order only
    sigma = terms.std(axis=0, ddof=1) / np.sqrt(m)
    if train == "W":
        norms = np.linalg.norm(X, axis=1)
        cos = np.clip(X @ X.T / np.outer(norms, norms), -1.0, 1.0)
        p = (np.pi - np.arccos(cos)) / (2 * np.pi)
        np.testing.assert_allclose(sigma, np.abs(X @ X.T) * np.sqrt(p * (1 - p) / m), rtol=0.01)
    z = np.abs(Hmc - ntk_infinite(X, train=train, kappa=0.7)) / sigma
    assert z.max() <= MC_SIGMAS, z


def test_empirical_kernel_converges_like_inverse_sqrt_width():
    X, _ = sphere_data(12, 6, seed=0)
    Hinf = ntk_infinite(X)
    gaps = []
    for m in (100, 10_000):
        gaps.append(np.mean([np.linalg.norm(ntk_empirical(*init_network(m, 6, s), X) - Hinf) for s in range(5)]))
    assert 5 < gaps[0] / gaps[1] < 20  # sqrt(100) = 10


def test_empirical_kernel_is_the_jacobian_gram():
    X, _ = sphere_data(4, 3, seed=2)
    W, a = init_network(7, 3, seed=3)
    m = 7
    act = (W @ X.T >= 0).astype(float)
    J = np.stack([(a[:, None] * act[:, i][:, None] * X[i][None, :]).ravel() / np.sqrt(m) for i in range(4)])
    np.testing.assert_allclose(ntk_empirical(W, a, X), J @ J.T, atol=1e-14)
    Ja = np.maximum(W @ X.T, 0).T / np.sqrt(m)
    np.testing.assert_allclose(ntk_empirical(W, a, X, train="both"), J @ J.T + Ja @ Ja.T, atol=1e-14)


def test_spectrum_and_drift():
    H = ntk_infinite(sphere_data(6, 4, seed=0)[0])
    lam, U = kernel_spectrum(H)
    assert np.all(np.diff(lam) >= 0) and lam[0] > 0
    np.testing.assert_allclose(U @ np.diag(lam) @ U.T, H, atol=1e-13)
    assert kernel_drift(H, H) == 0.0
    assert kernel_drift(1.1 * H, H) == pytest.approx(0.1)
    with pytest.raises(NtkodeError, match="symmetric"):
        kernel_spectrum(np.triu(H))


def test_check_data_names_the_inputs():
    X, _ = sphere_data(6, 4, seed=0)
    check_data(X)
    dup = np.vstack([X, X[2]])
    with pytest.raises(NtkodeError, match=r"2 and 6 \(duplicate\)"):
        check_data(dup)
    with pytest.raises(NtkodeError, match=r"1 and 6 \(parallel\)"):
        check_data(np.vstack([X, 3 * X[1]]))
    with pytest.raises(NtkodeError, match=r"inputs \[6\] are zero"):
        check_data(np.vstack([X, np.zeros(4)]))
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)  # no close pair, yet H-inf is singular on a circle
    with pytest.raises(NtkodeError, match=r"nearly singular.*inputs \[\d+"):
        check_data(np.c_[np.cos(angles), np.sin(angles)])
    with pytest.raises(NtkodeError, match="NaN"):
        check_data(np.array([[np.nan, 1.0]]))


def test_data_sets(tmp_path):
    X, y = sphere_data(7, 3, seed=1)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    Xp, yp = paper_data(50, seed=0)
    np.testing.assert_allclose(Xp[:, 2], np.linspace(-4, 4, 50))
    np.testing.assert_allclose(yp, -0.5 * Xp[:, 0] + 1.2 * Xp[:, 1] + 10 * np.sin(Xp[:, 2]))
    np.savez(tmp_path / "d.npz", X=X, y=y)
    Xl, yl = load_data(tmp_path / "d.npz")
    np.testing.assert_array_equal(Xl, X)
    np.savez(tmp_path / "bad.npz", X=X)
    with pytest.raises(NtkodeError, match="missing"):
        load_data(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", X=X, y=y[:3])
    with pytest.raises(NtkodeError, match="labels"):
        load_data(tmp_path / "short.npz")
    with pytest.raises(NtkodeError, match="cannot read"):
        load_data(tmp_path / "none.npz")
    with pytest.raises(NtkodeError, match="positive"):
        sphere_data(0, 3)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
@pytest.mark.parametrize("draw", [lambda s: sphere_data(4, 3, s), lambda s: paper_data(4, s),
                                  lambda s: digits_data(4, seed=s), lambda s: init_network(8, 3, s)])
def test_bad_seed_is_an_error(draw, seed):
    with pytest.raises(NtkodeError, match="non-negative integer"):
        draw(seed)


def test_digits():
    pytest.importorskip("sklearn")
    X, y = digits_data(40, classes=(3, 8), seed=0)
    assert X.shape == (40, 64) and set(np.unique(y)) == {-1.0, 1.0}
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    with pytest.raises(NtkodeError, match="only"):
        digits_data(10_000)
