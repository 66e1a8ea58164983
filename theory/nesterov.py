"""Nesterov with beta_k = (k-1)/(k+r-1): the Su-Boyd-Candes ODE and the discrete asymptotics.

Low-resolution ODE (t = k sqrt(eta)): e'' + (r/t) e' + lam e = 0, e(0) = e0, e'(0) = 0.
With nu = (r-1)/2 and e = t^(-nu) u, u solves Bessel's equation of order nu; the
solution regular at t = 0 is e(t) = e0 Gamma(nu+1) (2/(sqrt(lam) t))^nu J_nu(sqrt(lam) t)
(docs/theory.md#nesterov). Its envelope decays like t^(-r/2). The discrete method with a
fixed eta instead follows that solution times (1 - eta lam)^(k/2) for 0 < eta lam < 1.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
import scipy.special as sc
import sympy as sp
from numpy.typing import ArrayLike

from ntkode.declaration import builtin
from ntkode.errors import NtkodeError
from ntkode.symbols import lam, t

r = sp.Symbol("r", positive=True)

e0 = sp.Symbol("e0")
nu = sp.Symbol("nu", positive=True)


def nag_ode() -> sp.Eq:
    """e'' + (r/t) e' + lam e = 0 for e(t)."""
    e = sp.Function("e")
    return sp.Eq(e(t).diff(t, 2) + r / t * e(t).diff(t) + lam * e(t), 0)


@lru_cache(maxsize=None)
def nag_ode_dsolve() -> sp.Expr:
    """e(t) solving `nag_ode` with e(0) = e0, found by sympy's dsolve (Bessel, nu = (r-1)/2).

    sympy's Bessel hint needs a numeric r, so substitute e = t^(-nu) u: u solves
    t^2 u'' + t u' + (lam t^2 - nu^2) u = 0 for any nu. The Y_nu solution is singular at
    t = 0 and is dropped; C1 follows from lim_{t->0} t^(-nu) J_nu(sqrt(lam) t), taken in
    x = sqrt(lam) t (sympy's limit cannot factor sqrt(lam) out of the Bessel series).
    """
    e, u = sp.Function("e"), sp.Function("u")
    ode = nag_ode().lhs.subs(r, 2 * nu + 1)
    bessel_form = sp.expand(sp.simplify(ode.subs(e(t), t ** (-nu) * u(t)).doit() * t ** (nu + 2)))
    general = sp.dsolve(bessel_form, u(t)).rhs
    c1, c2 = sp.symbols("C1 C2")
    regular = t ** (-nu) * general.subs(c2, 0)
    x = sp.Symbol("x", positive=True)
    at_zero = sp.limit(sp.powsimp(regular.subs(t, x / sp.sqrt(lam)), force=True), x, 0)
    return sp.powsimp((e0 * regular / at_zero).subs(c1, 1).subs(nu, (r - 1) / 2))


def _hyper(name: str):
    """nag's declared hyper-parameter `name` (r, or lr for its step size), with its domain."""
    return builtin("nag").find_hyper(name)


def _check_positive(name: str, value: ArrayLike) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise NtkodeError(f"{name} must be finite and > 0; got {value!r}")
    return arr


def _bessel_form(t_: ArrayLike, lam_: ArrayLike, r_: ArrayLike,
                 part: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Gamma(nu+1) (2/x)^nu part(nu, x) with x = sqrt(lam) t, nu = (r-1)/2; 1 at x = 0."""
    ll = _check_positive("lam", lam_)
    nu = (_hyper("r").check(r_) - 1) / 2
    x = np.sqrt(ll) * np.asarray(t_, dtype=float)
    safe = np.where(x == 0, 1.0, x)
    with np.errstate(over="ignore"):
        value = sc.gamma(nu + 1) * (2 / safe) ** nu * part(nu, safe)
    return np.where(x == 0, 1.0, value)


def nag_ode_solution(t_: ArrayLike, lam_: ArrayLike, r_: ArrayLike) -> np.ndarray:
    """e(t)/e0 = Gamma(nu+1) (2/x)^nu J_nu(x), x = sqrt(lam) t, nu = (r-1)/2 (1 at t = 0)."""
    return _bessel_form(t_, lam_, r_, sc.jv)


def nag_envelope(t_: ArrayLike, lam_: ArrayLike, r_: ArrayLike) -> np.ndarray:
    """min(1, Gamma(nu+1) (2/x)^nu sqrt(J_nu(x)^2 + Y_nu(x)^2)): bounds |e|/e0, ~ x^(-r/2)."""
    modulus = _bessel_form(t_, lam_, r_, lambda nu, x: np.hypot(sc.jv(nu, x), sc.yv(nu, x)))
    return np.minimum(1.0, modulus)


def nag_discrete_prediction(steps: int | ArrayLike, lam_: ArrayLike, lr: float, r_: float,
                            envelope: bool = False, shift: float = 0.0) -> np.ndarray:
    """Per eigenvalue: e((k + shift) sqrt(eta)) (1 - eta lam)^(k/2), k = 0..steps (or the given k array).

    Shape (len(lam), len(k)) for an array of eigenvalues, (len(k),) for a scalar.
    With envelope=True the ODE solution is replaced by `nag_envelope`. Needs 0 < eta lam < 1.
    shift = r/2 uses the time t = (k + r/2) sqrt(eta) that the high-resolution ODE implies
    (docs/theory.md#nesterov); against the exact scalar recursion it cuts the largest envelope
    log-error over sqrt(lam) t in [3, 40] at eta lam = 1e-2 from 0.08 to 0.01 (r = 3).
    """
    eta_ = float(_hyper("lr").check(lr))
    _hyper("r").check(r_)
    ks = np.arange(int(steps) + 1) if np.ndim(steps) == 0 else np.asarray(steps, dtype=float)
    ll = _check_positive("lam", lam_)
    if np.any(eta_ * ll >= 1):
        raise NtkodeError(f"the prediction needs 0 < lr*lam < 1; got lr*lam up to {eta_ * ll.max():g}")
    ll2 = np.atleast_1d(ll)[:, None]
    if not np.isfinite(shift) or shift < 0:
        raise NtkodeError(f"shift must be a finite number >= 0; got {shift!r}", param="shift")
    ode = (nag_envelope if envelope else nag_ode_solution)((ks + shift) * np.sqrt(eta_), ll2, r_)
    out = ode * (1 - eta_ * ll2) ** (ks / 2)
    return out[0] if np.ndim(lam_) == 0 else out
