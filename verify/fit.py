"""Rate fitting: the one place where a measured error sequence becomes a rate or an order.

All fits are ordinary least squares on logarithms, with the usual residual-based
standard error of each coefficient, sigma^2 (A^T A)^{-1} with sigma^2 = SSR/(N - p).
(Residuals of an envelope are correlated, so the standard error is a scale of the
scatter, not a confidence level; claims state their tolerances separately.)

- `fit_linear_rate`: log|e_k| = c0 + k log(rho) [+ q log k] over a window after the
  transient and above round-off; `rate` = rho = exp(slope).
- `fit_recurrence_rate`: x_k = sum_j c_j x_{k-1-j} by least squares (linear prediction),
  rho = the largest root modulus of z^q - sum_j c_j z^(q-1-j): exact for a mode that is
  oscillating, critically damped (k rho^k) or overdamped alike.
- `upper_envelope`: the peaks of an oscillating |e_k| (for heavy ball, Nesterov).
- `fit_power_law`: log|e(t)| = c0 + p log t on the envelope (Nesterov's t^{-r/2}).
- `fit_loglog_slope`: log y = c0 + p log x (rate gap or weight movement vs width).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntkode.errors import NtkodeError

#: errors below max(REL_FLOOR * max|e|, ABS_FLOOR) are treated as round-off
REL_FLOOR = 1e-10
ABS_FLOOR = 1e-13
MIN_POINTS = 4
#: in a recurrence fit, directions below this fraction of the largest singular value are round-off
#: of a shorter recurrence (a lone exponential fitted at order 2), which is then fitted instead
RECURRENCE_RCOND = 1e-8


@dataclass(frozen=True)
class Fit:
    """A fitted slope with its standard error.

    kind "linear": value = log(rho) per step (k); "power": exponent p of t^p;
    "loglog": exponent of y ~ x^p. `window` = [start, stop) indices of the input
    that were eligible, `points` = how many were used (envelope points only, if asked).
    For linear fits with `power=True`, `power` is the fitted q of the k^q prefactor.
    """

    kind: str
    value: float
    stderr: float
    intercept: float
    window: tuple[int, int]
    points: int
    power: float | None = None
    power_stderr: float | None = None

    @property
    def rate(self) -> float:
        """rho = exp(slope): the per-step factor of a linear fit."""
        if self.kind != "linear":
            raise NtkodeError(f"a {self.kind} fit has an exponent, not a per-step rate")
        return math.exp(self.value)

    @property
    def rate_stderr(self) -> float:
        """Standard error of rho by the delta method: rho * stderr(log rho)."""
        return self.rate * self.stderr


def _as_positive_sequence(err: np.ndarray, what: str = "error sequence") -> np.ndarray:
    arr = np.abs(np.asarray(err, dtype=float))
    if arr.ndim != 1:
        raise NtkodeError(f"{what} must be one-dimensional; got shape {arr.shape}")
    if arr.size < MIN_POINTS:
        raise NtkodeError(f"{what} needs at least {MIN_POINTS} values; got {arr.size}")
    return arr


def _regress(columns: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS y = A c with A = [1, columns...]: coefficients and their standard errors."""
    design = np.column_stack([np.ones_like(y)] + columns)
    n_obs, n_par = design.shape
    if n_obs <= n_par:
        raise NtkodeError(
            f"only {n_obs} usable points for a {n_par}-parameter fit; run more steps or "
            "choose a slower rate so the error stays above round-off longer"
        )
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < n_par:
        raise NtkodeError("degenerate fit: the fit window holds too few distinct points")
    resid = y - design @ coef
    sigma2 = float(resid @ resid) / (n_obs - n_par)
    cov = sigma2 * np.linalg.inv(design.T @ design)
    return coef, np.sqrt(np.maximum(np.diag(cov), 0.0))


def _records_and_peaks(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks: records (|e_k| > every later value) and peaks (records with
    |e_{k-1}| <= |e_k| >= |e_{k+1}|; k = 0 needs only the right neighbour, the last point never)."""
    later_max = np.append(np.maximum.accumulate(arr[::-1])[::-1][1:], -np.inf)
    record = arr > later_max
    left_ok = np.append(True, arr[1:] >= arr[:-1])
    right_ok = np.append(arr[:-1] >= arr[1:], False)
    return record, record & left_ok & right_ok


def upper_envelope(err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices k and values |e_k| of the peaks of |e| that exceed every later value.

    Keeping only peaks above all later values drops bumps riding on a falling flank.
    A sequence without interior peaks (monotone decay) is its own envelope: every
    point that exceeds all later ones is returned.
    """
    arr = _as_positive_sequence(err)
    record, peak = _records_and_peaks(arr)
    idx = np.flatnonzero(peak) if np.any(peak[1:]) else np.flatnonzero(record)
    return idx, arr[idx]


def _envelope_in(arr: np.ndarray, idx: np.ndarray, stop: int) -> np.ndarray:
    """The envelope points of arr[:stop] inside the index range `idx`: its peaks when it holds
    at least three, else every record (a monotone stretch, or wiggles too few to trace)."""
    if idx.size < MIN_POINTS:
        return idx
    record, peak = _records_and_peaks(arr[:stop])
    inside = np.zeros(stop, dtype=bool)
    inside[idx] = True
    peaks = np.flatnonzero(peak & inside)
    return peaks if peaks.size >= 3 else np.flatnonzero(record & inside)


def auto_window(
    err: np.ndarray, skip: float = 0.5, rel_floor: float = REL_FLOOR, abs_floor: float = ABS_FLOOR
) -> tuple[int, int]:
    """[start, stop): stop = first k after which |e| stays below max(rel_floor*max|e|, abs_floor);
    start = round(skip * stop), dropping the transient where faster modes still count."""
    arr = _as_positive_sequence(err)
    if not 0.0 <= skip < 1.0:
        raise NtkodeError(f"skip must lie in [0, 1); got {skip}")
    finite = np.isfinite(arr)
    if not finite[0]:
        raise NtkodeError("the error sequence starts non-finite")
    stop = int(np.argmin(finite)) if not finite.all() else arr.size
    floor = max(rel_floor * float(np.max(arr[:stop])), abs_floor)
    later_max = np.maximum.accumulate(arr[:stop][::-1])[::-1]
    below = np.flatnonzero(later_max < floor)
    if below.size:
        stop = int(below[0])
    return int(round(skip * stop)), stop


def _check_window(window: tuple[int, int], size: int) -> tuple[int, int]:
    start, stop = int(window[0]), int(window[1])
    if not 0 <= start < stop <= size:
        raise NtkodeError(f"fit window {window} must satisfy 0 <= start < stop <= {size}")
    return start, stop


def fit_linear_rate(
    err: np.ndarray,
    window: tuple[int, int] | None = None,
    *,
    envelope: bool = False,
    power: bool = False,
    skip: float = 0.5,
) -> Fit:
    """Fit log|e_k| = c0 + k log(rho) (+ q log k if `power`) over k in `window`.

    Default window: `auto_window(err, skip)`. `envelope=True` fits only the
    `upper_envelope` points (use it for oscillating error). `power=True` adds the
    polynomial prefactor k^q of a repeated root or a Nesterov envelope, so that
    rho is not biased by it (needs k >= 1 in the window).
    """
    arr = _as_positive_sequence(err)
    start, stop = _check_window(window, arr.size) if window is not None else auto_window(arr, skip)
    idx = np.arange(start, stop)
    if envelope:
        idx = _envelope_in(arr, idx, stop)
    if power:
        idx = idx[idx >= 1]
    idx = idx[np.isfinite(arr[idx]) & (arr[idx] > 0)]
    steps = idx.astype(float)
    columns = [steps, np.log(steps)] if power else [steps]
    coef, se = _regress(columns, np.log(arr[idx]))
    extra = {"power": float(coef[2]), "power_stderr": float(se[2])} if power else {}
    return Fit("linear", float(coef[1]), float(se[1]), float(coef[0]), (start, stop), idx.size, **extra)


def fit_recurrence_rate(x: np.ndarray, order: int = 2, window: tuple[int, int] | None = None, *,
                        skip: float = 0.5) -> Fit:
    """Fit x_k = sum_{j<order} c_j x_{k-1-j} over `window` (default `auto_window(x, skip)`) and
    return log(rho), rho = max |root of z^order - sum_j c_j z^(order-1-j)| (a "linear" Fit).

    For a signed sequence (a projection of e_k on one eigenvector), not its modulus: the fitted
    recurrence is the mode's own characteristic polynomial, so near-double roots, slow beats and
    k^q prefactors do not bias rho as they bias a line through log|e_k| or its envelope.
    stderr: delta method, from the coefficients' covariance sigma^2 (A^T A)^-1.
    """
    seq = np.asarray(x, dtype=float)
    if seq.ndim != 1:
        raise NtkodeError(f"sequence must be one-dimensional; got shape {seq.shape}")
    if order < 1:
        raise NtkodeError(f"order must be a positive integer; got {order}")
    start, stop = _check_window(window, seq.size) if window is not None else auto_window(np.abs(seq), skip)
    seg = seq[start:stop] / np.max(np.abs(seq[start:stop]))
    design = np.column_stack([seg[order - 1 - j : seg.size - 1 - j] for j in range(order)])
    target = seg[order:]
    if target.size <= order + 1:
        raise NtkodeError(f"only {target.size} usable points for an order-{order} recurrence; run more steps")
    coef, _, rank, _ = np.linalg.lstsq(design, target, rcond=RECURRENCE_RCOND)
    if rank < order:  # the sequence obeys a shorter recurrence (e.g. one real mode): fit that one
        if order == 1:
            raise NtkodeError("degenerate recurrence fit: the window holds only zeros")
        return fit_recurrence_rate(x, order - 1, (start, stop))
    resid = target - design @ coef
    cov = float(resid @ resid) / (target.size - order) * np.linalg.pinv(design.T @ design)

    def log_rho(c: np.ndarray) -> float:
        return float(np.log(np.max(np.abs(np.roots(np.concatenate([[1.0], -c]))))))

    value = log_rho(coef)
    step = 1e-7 * np.maximum(np.abs(coef), 1e-3)
    grad = np.array([(log_rho(coef + np.eye(order)[j] * step[j]) - log_rho(coef - np.eye(order)[j] * step[j]))
                     / (2 * step[j]) for j in range(order)])
    stderr = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    return Fit("linear", value, stderr, 0.0, (start, stop), int(target.size))


def fit_power_law(
    t: np.ndarray,
    err: np.ndarray,
    t_window: tuple[float, float] | None = None,
    *,
    envelope: bool = True,
) -> Fit:
    """Fit log|e| = c0 + p log t on the upper envelope of |e| for t in `t_window`.

    Default `t_window`: t > 0 up to where |e| reaches round-off (see `auto_window`).
    Returns a "power" Fit whose value is p (Nesterov's ODE predicts p = -r/2).
    """
    arr = _as_positive_sequence(err)
    times = np.asarray(t, dtype=float)
    if times.shape != arr.shape:
        raise NtkodeError(f"t and err must have the same shape; got {times.shape} and {arr.shape}")
    _, stop = auto_window(arr, skip=0.0)
    lo, hi = t_window if t_window is not None else (0.0, math.inf)
    idx = np.arange(stop)
    idx = idx[(times[idx] > max(lo, 0.0)) & (times[idx] <= hi)]
    if envelope:
        idx = _envelope_in(arr, idx, stop)
    idx = idx[arr[idx] > 0]
    if idx.size == 0:
        raise NtkodeError(f"no envelope points with t in {t_window} above round-off")
    coef, se = _regress([np.log(times[idx])], np.log(arr[idx]))
    return Fit("power", float(coef[1]), float(se[1]), float(coef[0]), (int(idx[0]), int(idx[-1]) + 1), idx.size)


def fit_loglog_slope(x: np.ndarray, y: np.ndarray) -> Fit:
    """Fit log y = c0 + p log x over all points (x, y > 0): y ~ x^p, e.g. gap ~ m^{-1/2}."""
    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape or xs.size < 3:
        raise NtkodeError(f"need at least 3 matching (x, y) pairs; got {xs.size} and {ys.size}")
    if not (np.all(np.isfinite(xs) & (xs > 0)) and np.all(np.isfinite(ys) & (ys > 0))):
        raise NtkodeError("a log-log fit needs finite positive x and y")
    coef, se = _regress([np.log(xs)], np.log(ys))
    return Fit("loglog", float(coef[1]), float(se[1]), float(coef[0]), (0, xs.size), xs.size)
