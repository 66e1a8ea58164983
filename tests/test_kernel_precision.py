"""ntk_infinite against a 40-digit mpmath reference, on random data and on nearly parallel
and nearly antiparallel pairs (where arccos of a rounded cosine loses half the digits).

Tolerance, fixed before running: the float64 inputs are taken as exact. The Gram entry
x_i.x_j carries a rounding error below d*eps*||x_i|| ||x_j|| (a d-term dot product), and
a stable angle is off by a few eps absolutely, which moves H_ij by at most that times
||x_i|| ||x_j|| / 2. So |H_ij - ref_ij| <= (d + 8) eps ||x_i|| ||x_j|| for every entry.
The old arccos route misses this by about 1e7 on the diagonal (error ~ sqrt(eps)).
"""
import mpmath
import numpy as np
import pytest

from ntkode.numerics import ntk_infinite

EPS = np.finfo(float).eps


def reference(X: np.ndarray, train: str = "W", kappa: float = 1.0) -> np.ndarray:
    """H-inf with 40 significant digits, the angle from acos of the exact cosine (mpmath)."""
    with mpmath.workdps(40):
        rows = [[mpmath.mpf(float(v)) for v in x] for x in X]
        norms = [mpmath.sqrt(mpmath.fsum(v * v for v in x)) for x in rows]
        H = np.empty((len(rows), len(rows)))
        for i, xi in enumerate(rows):
            for j, xj in enumerate(rows):
                g = mpmath.fsum(a * b for a, b in zip(xi, xj))
                outer = norms[i] * norms[j]
                c = max(min(g / outer, mpmath.mpf(1)), mpmath.mpf(-1))
                t = mpmath.acos(c)
                h = g * (mpmath.pi - t) / (2 * mpmath.pi)
                if train == "both":
                    h += mpmath.mpf(kappa) ** 2 * outer * (mpmath.sin(t) + (mpmath.pi - t) * c) / (2 * mpmath.pi)
                H[i, j] = float(h)
    return H


def assert_close(X: np.ndarray, train: str = "W", kappa: float = 1.0) -> None:
    norms = np.linalg.norm(X, axis=1)
    scale = np.outer(norms, norms) * (1.0 + (kappa**2 if train == "both" else 0.0))
    error = np.abs(ntk_infinite(X, train=train, kappa=kappa) - reference(X, train, kappa))
    bound = (X.shape[1] + 8) * EPS * scale
    assert np.all(error <= bound), f"worst error/bound {np.max(error / bound):.3g}"


def test_the_issue_example_is_exact():
    assert ntk_infinite(np.array([[3.0, 1.0]]))[0, 0] == 5.0


@pytest.mark.parametrize("train", ["W", "both"])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_data_against_mpmath(seed, train):
    X = np.random.default_rng(seed).standard_normal((7, 4)) * np.array([1e-3, 1.0, 10.0, 3.0])
    assert_close(X, train, kappa=0.7)


@pytest.mark.parametrize("angle", [1e-4, 1e-7, 1e-10, 1e-13])
@pytest.mark.parametrize("train", ["W", "both"])
def test_nearly_parallel_and_antiparallel_pairs(angle, train):
    base = np.array([0.6, -0.8, 0.0])
    turned = np.array([0.6 * np.cos(angle), -0.8 * np.cos(angle), np.sin(angle)])
    X = np.array([3.0 * base, 2.0 * turned, -1.5 * turned, [0.0, 0.0, 1.0]])
    assert_close(X, train)


def test_diagonal_is_half_the_squared_norm_to_the_last_bit():
    X = np.random.default_rng(3).standard_normal((20, 5))
    np.testing.assert_array_equal(np.diag(ntk_infinite(X)), np.diag(X @ X.T) / 2)
