"""Neural tangent kernels of f(x) = m^{-1/2} sum_r a_r relu(w_r.x) (docs/theory.md#network).

train="W" (only the first layer trained, a fixed) or "both" (a trained too, which
adds the second-layer kernel). loss="sum" is L = 1/2 ||u-y||^2; loss="mean" is
L = 1/(2n) ||u-y||^2, which divides every kernel by n; loss="mse" is PyTorch's
nn.MSELoss, L = 1/n ||u-y||^2, which multiplies every kernel by 2/n (`loss_factor`).
The standard parametrisation (a bias b, no m^{-1/2}) is the NTK one on [X, 1] with
a' = sqrt(m) a and the second layer's kernel weighted by m (`network.standard_to_ntk`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ntkode.errors import NtkodeError

#: a NumPy or CuPy array (the device kernels accept either)
Array = Any

TRAINS = ("W", "both")
LOSSES = ("sum", "mean", "mse")


def check_options(train: str, loss: str) -> None:
    """NtkodeError unless train in TRAINS and loss in LOSSES."""
    if train not in TRAINS:
        raise NtkodeError(f"train must be one of {', '.join(TRAINS)}; got {train!r}", param="train")
    if loss not in LOSSES:
        raise NtkodeError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}", param="loss")


def loss_factor(loss: str, n: int) -> float:
    """The factor every kernel and gradient carries for `loss`: 1 (sum), 1/n (mean), 2/n (mse)."""
    return {"sum": 1.0, "mean": 1.0 / n, "mse": 2.0 / n}[loss]


#: largest (and, for a non-zero input, smallest) row norm accepted: ||x||^2 and the kernel stay finite and normal
NORM_LIMIT = 1e150


def real_array(values, name: str) -> np.ndarray:
    """`values` as a float64 array; NtkodeError (naming `name`) for ragged, complex, string or object data.

    Complex input is refused, never cast to its real part; booleans and integers are converted.
    """
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as err:
        raise NtkodeError(f"{name} must be a numeric array; got {type(values).__name__} ({err})") from None
    if arr.dtype.kind == "c":
        raise NtkodeError(f"{name} must be real; got complex values (dtype {arr.dtype})")
    if arr.dtype.kind not in "biuf":
        raise NtkodeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    return arr.astype(float)


def _row_norms(arr: np.ndarray) -> np.ndarray:
    """||x_i|| without overflow or underflow: each row scaled by its largest |entry| first."""
    peak = np.abs(arr).max(axis=1)
    safe = np.where(peak > 0, peak, 1.0)
    return peak * np.linalg.norm(arr / safe[:, None], axis=1)


def as_inputs(X: np.ndarray) -> np.ndarray:
    """X as a finite real float64 (n, d) array with n >= 1, or NtkodeError.

    Refused too: complex or non-numeric X, and rows whose norm lies outside
    [1/NORM_LIMIT, NORM_LIMIT] (zero rows excepted), where x_i.x_j would overflow or underflow.
    """
    arr = real_array(X, "X")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise NtkodeError(f"inputs X must be a non-empty 2-D array (n, d); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.all(np.isfinite(arr), axis=1))
        raise NtkodeError(f"inputs X contain NaN or inf in rows {bad[:10].tolist()}")
    norms = _row_norms(arr)
    bad = np.flatnonzero((norms > NORM_LIMIT) | ((norms > 0) & (norms < 1 / NORM_LIMIT)))
    if bad.size:
        raise NtkodeError(
            f"inputs X rows {bad[:10].tolist()} have norms like {norms[bad[0]]:.3g}, outside "
            f"[{1 / NORM_LIMIT:g}, {NORM_LIMIT:g}]: the kernel x_i.x_j would overflow or underflow; rescale X",
        )
    return arr


def as_kappa(kappa) -> float:
    """The initialisation scale kappa as a float in (0, NORM_LIMIT] (kappa^2 stays finite), or NtkodeError."""
    if isinstance(kappa, (bool, np.bool_)) or not isinstance(kappa, (int, float, np.integer, np.floating)):
        raise NtkodeError(f"kappa must be a positive number; got {kappa!r}", param="kappa")
    if not np.isfinite(kappa) or kappa <= 0 or kappa > NORM_LIMIT:
        raise NtkodeError(f"kappa must be a positive number; got {kappa!r}", param="kappa")
    return float(kappa)


def _half_angle_pairs(U: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 1 << 16) -> tuple[np.ndarray, ...]:
    """(||u_i - u_j||, ||u_i + u_j||) for the index pairs (i, j) of unit rows U, in chunks of pairs."""
    minus, plus = np.empty(i.size), np.empty(i.size)
    for start in range(0, i.size, chunk):
        part = slice(start, start + chunk)
        Ui, Uj = U[i[part]], U[j[part]]
        minus[part] = np.linalg.norm(Ui - Uj, axis=1)
        plus[part] = np.linalg.norm(Ui + Uj, axis=1)
    return minus, plus


def _angles(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(G, outer, cos, theta, pi - theta): Gram matrix, ||x_i|| ||x_j||, cos_ij = G_ij / outer_ij clipped
    to [-1, 1] (0 for a zero input), the angle theta_ij and its supplement.

    arccos loses half the digits where |cos| is near 1 (the diagonal above all), so there
    the angle and its supplement come from unit vectors u: theta = 2 atan2(||u_i - u_j||,
    ||u_i + u_j||), pi - theta = 2 atan2(||u_i + u_j||, ||u_i - u_j||) (Kahan), accurate
    to a few ulps absolutely (docs/theory.md#kernels).
    """
    G = X @ X.T
    norms = _row_norms(X)
    outer = np.outer(norms, norms)
    cos = np.clip(np.divide(G, outer, out=np.zeros_like(G), where=outer > 0), -1.0, 1.0)
    theta = np.arccos(cos)
    supplement = np.pi - theta
    i, j = np.nonzero((np.abs(cos) > 0.5) & (outer > 0))
    if i.size:
        U = X / np.where(norms > 0, norms, 1.0)[:, None]
        minus, plus = _half_angle_pairs(U, i, j)
        theta[i, j] = 2 * np.arctan2(minus, plus)
        supplement[i, j] = 2 * np.arctan2(plus, minus)
    return G, outer, cos, theta, supplement


def ntk_infinite(X: np.ndarray, train: str = "W", kappa: float = 1.0, loss: str = "sum") -> np.ndarray:
    """H-infinity: x_i.x_j (pi - theta_ij)/(2 pi)  [+ kappa^2 ||x_i|| ||x_j|| (sin t + (pi - t) cos t)/(2 pi) if both]
    (docs/theory.md#kernels); the angles come from `_angles`, stable near 0 and pi."""
    check_options(train, loss)
    X = as_inputs(X)
    kappa = as_kappa(kappa)
    G, outer, cos, theta, supplement = _angles(X)
    H = G * (supplement / (2 * np.pi))
    if train == "both":
        H = H + kappa**2 * outer * (np.sin(theta) + supplement * cos) / (2 * np.pi)
    if not np.all(np.isfinite(H)):
        raise NtkodeError(f"H-infinity overflows for kappa={kappa:g} and these inputs; rescale X or kappa",
                          param="kappa")
    return H * loss_factor(loss, X.shape[0])


def empirical_from_preactivations(
    Z: Array, a: Array, G: Array, train: str = "W", loss: str = "sum", second_layer: float = 1.0
) -> Array:
    """H(W) from Z = W X^T (..., m, n): (1/m)[(S^T S) * G  (+ c relu(Z)^T relu(Z) if both)], S = a * 1{Z >= 0},
    with c = `second_layer` (m for the standard parametrisation, `network.standard_to_ntk`).

    Works on stacked (B, m, n) arrays of NumPy or CuPy alike (returns the same kind).
    """
    m, n = Z.shape[-2], Z.shape[-1]
    S = (Z >= 0) * a[..., :, None]
    St = S.swapaxes(-1, -2)
    H = (St @ S) * G
    if train == "both":
        R = Z * (Z > 0)
        H = H + second_layer * (R.swapaxes(-1, -2) @ R)
    H = H / m
    return H * loss_factor(loss, n)


def ntk_empirical(
    W: np.ndarray, a: np.ndarray, X: np.ndarray, train: str = "W", loss: str = "sum", *, b: np.ndarray | None = None
) -> np.ndarray:
    """Empirical NTK H(W)_ij = (x_i.x_j/m) sum_r a_r^2 1{w_r.x_i >= 0} 1{w_r.x_j >= 0} (+ second layer if both).

    With a bias `b` the net is the standard-parametrised sum_r a_r relu(w_r.x + b_r):
    H_ij = (x_i.x_j + 1) sum_r a_r^2 1{w_r.x_i + b_r >= 0} 1{w_r.x_j + b_r >= 0}
    (+ sum_r relu(w_r.x_i + b_r) relu(w_r.x_j + b_r) if both), times the loss factor.
    """
    check_options(train, loss)
    X = as_inputs(X)
    W = np.asarray(W, dtype=float)
    a = np.asarray(a, dtype=float)
    if W.ndim != 2 or W.shape[1] != X.shape[1] or a.shape != (W.shape[0],):
        raise NtkodeError(f"need W (m, d={X.shape[1]}) and a (m,); got W {W.shape}, a {a.shape}")
    if b is None:
        return empirical_from_preactivations(W @ X.T, a, X @ X.T, train, loss)
    b = np.asarray(b, dtype=float)
    if b.shape != a.shape or not np.all(np.isfinite(b)):
        raise NtkodeError(f"need a finite bias b of shape {a.shape}; got {b.shape}", param="b")
    m = W.shape[0]
    Z = W @ X.T + b[:, None]
    return empirical_from_preactivations(Z, np.sqrt(m) * a, X @ X.T + 1.0, train, loss, second_layer=float(m))


def kernel_spectrum(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues ascending, orthonormal eigenvectors as columns) of a symmetric kernel."""
    H = np.asarray(H, dtype=float)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or not np.all(np.isfinite(H)):
        raise NtkodeError(f"a kernel must be a finite square matrix; got shape {H.shape}")
    if not np.allclose(H, H.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(H).max()))):
        raise NtkodeError("a kernel must be symmetric")
    return np.linalg.eigh((H + H.T) / 2)


def kernel_drift(H: np.ndarray, H0: np.ndarray) -> float:
    """||H - H0||_2 / ||H0||_2 (spectral norms)."""
    H, H0 = np.asarray(H, dtype=float), np.asarray(H0, dtype=float)
    if H.shape != H0.shape:
        raise NtkodeError(f"kernels differ in shape: {H.shape} vs {H0.shape}")
    if not (np.all(np.isfinite(H)) and np.all(np.isfinite(H0))):
        raise NtkodeError("kernel drift needs finite kernels; the run has diverged")
    scale = np.linalg.norm(H0, 2)
    if scale == 0:
        raise NtkodeError("kernel drift is undefined for a zero initial kernel")
    return float(np.linalg.norm(H - H0, 2) / scale)


def _parallel_pairs(X: np.ndarray, rel_tol: float) -> list[tuple[int, int, bool]]:
    """(i, j, duplicate?) for i < j whose inputs point the same way: 1 - cos theta_ij <= rel_tol."""
    _, outer, cos, _, _ = _angles(X)
    i, j = np.nonzero(np.triu(1.0 - cos <= rel_tol, k=1) & (outer > 0))
    same = np.all(np.isclose(X[i], X[j], rtol=rel_tol, atol=0.0), axis=1)
    return list(zip(i.tolist(), j.tolist(), same.tolist()))


def check_data(X: np.ndarray, rel_tol: float = 1e-6) -> None:
    """NtkodeError naming the inputs if H-infinity is singular or nearly so.

    Zero inputs, duplicate or (positively) parallel pairs with 1 - cos theta <= rel_tol,
    and lambda_min(H-inf) <= rel_tol * lambda_max (named by the largest entries of
    the bottom eigenvector) are all reported.
    """
    X = as_inputs(X)
    zero = np.flatnonzero(np.linalg.norm(X, axis=1) == 0)
    if zero.size:
        raise NtkodeError(f"inputs {zero[:10].tolist()} are zero vectors: the NTK is singular there")
    pairs = _parallel_pairs(X, rel_tol)
    if pairs:
        shown = ", ".join(f"{i} and {j} ({'duplicate' if dup else 'parallel'})" for i, j, dup in pairs[:10])
        more = f" and {len(pairs) - 10} more" if len(pairs) > 10 else ""
        raise NtkodeError(f"inputs {shown}{more} point the same way: the NTK is singular; remove one of each pair")
    lam, vec = np.linalg.eigh(ntk_infinite(X))
    if lam[0] <= rel_tol * lam[-1]:
        weight = np.abs(vec[:, 0])
        culprits = np.flatnonzero(weight >= 0.5 * weight.max())[:10].tolist()
        raise NtkodeError(
            f"H-infinity is nearly singular (lambda_min/lambda_max = {lam[0] / lam[-1]:.2e} <= {rel_tol:g}); "
            f"inputs {culprits} are nearly dependent: remove or perturb them"
        )
