"""Limiting ODEs: z = exp(s h) in the characteristic polynomial, expanded in h.

Recipe (THEORY.md section 3): substitute `Method.ode_scaling` (GD: eta = h, t = k eta;
momentum: eta = h^2, beta = 1 - gamma h, t = k h), centre the stencil on its middle
iterate (multiply p by z^(-q/2)) so that X(t) is W at t = k h, put z = exp(s h) and
expand in h. The leading non-zero coefficient P0(s) is the low-resolution ODE,
s^n <-> d^n/dt^n with t-dependent coefficients acting by multiplication. High
resolution keeps h * P1(s) and reduces derivatives of order >= deg P0 with the
low-resolution equation itself, so the result has the order of P0.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from .discrete import RATE_ARGS, check_eigs, poly_roots
from ntkode.errors import NtkodeError
from .methods import HYPERS, get_method
from .symbols import beta, beta2, eta, gamma, h, lam, r, s, t, z

RESOLUTIONS = ("low", "high")


def check_resolution(resolution: str) -> None:
    """Refuse a resolution other than low or high."""
    if resolution not in RESOLUTIONS:
        raise NtkodeError(f"resolution must be one of {', '.join(RESOLUTIONS)}; got {resolution!r}")


@lru_cache(maxsize=None)
def expansion(method: str) -> tuple[int, sp.Expr, sp.Expr]:
    """(m, P0, P1): p(exp(s h)) z^(-q/2) = h^m (P0(s, t) + h P1(s, t) + O(h^2))."""
    m = get_method(method)
    centred = m.char_poly() * z ** (-sp.Rational(m.memory, 2))
    scaled = centred.subs(m.ode_scaling, simultaneous=True).subs(t, t + sp.Rational(m.memory, 2) * h)
    series = sp.expand(sp.series(scaled.subs(z, sp.exp(s * h)), h, 0, 5).removeO())
    coeffs = sp.Poly(series, h).all_coeffs()[::-1]
    order = next(i for i, c in enumerate(coeffs) if sp.simplify(c) != 0)
    return order, sp.factor(coeffs[order]), sp.factor(coeffs[order + 1])


def _reduce(derivative: int, low: list[sp.Expr]) -> list[sp.Expr]:
    """X^(n) as sum_i u_i X^(i), i < d, using X^(d) = -sum_i low[i] X^(i) (t-dependent low)."""
    d = len(low)
    u = [sp.Integer(1 if i == derivative else 0) for i in range(d)] if derivative < d else None
    if u is not None:
        return u
    u = [-c for c in low]
    for _ in range(derivative - d):
        shifted = [sp.diff(c, t) for c in u]
        for i in range(d - 1):
            shifted[i + 1] += u[i]
        shifted = [shifted[i] - u[d - 1] * low[i] for i in range(d)]
        u = [sp.together(c) for c in shifted]
    return u


@lru_cache(maxsize=None)
def ode_coefficients(method: str, resolution: str = "low") -> tuple[sp.Expr, ...]:
    """[a_0, ..., a_{d-1}] of the monic ODE X^(d) + sum a_i(t) X^(i) = 0 (h = ODE step)."""
    check_resolution(resolution)
    _, p0, p1 = expansion(method)
    poly0 = sp.Poly(p0, s)
    lead = poly0.LC()
    low = [sp.factor(c / lead) for c in poly0.all_coeffs()[:0:-1]]
    if resolution == "low":
        return tuple(low)
    corr = [sp.Integer(0)] * len(low)
    for (n,), c in sp.Poly(p1, s).terms():
        for i, u in enumerate(_reduce(n, low)):
            corr[i] += c / lead * u
    return tuple(sp.factor(sp.expand(a + h * b)) for a, b in zip(low, corr))


def ode_polynomial(method: str, resolution: str = "low") -> sp.Expr:
    """The monic characteristic polynomial s^d + sum a_i(t) s^i of the ODE."""
    a = ode_coefficients(method, resolution)
    return s ** len(a) + sum(c * s**i for i, c in enumerate(a))


def ode_equation(method: str, resolution: str = "low") -> sp.Eq:
    """The ODE for the per-eigenvalue error e(t)."""
    e = sp.Function("e")
    a = ode_coefficients(method, resolution)
    lhs = e(t).diff(t, len(a)) + sum(c * e(t).diff(t, i) for i, c in enumerate(a))
    return sp.Eq(lhs, 0)


def step_of_eta(method: str) -> sp.Expr:
    """h as a function of eta: the inverse of `ode_scaling[eta]` (eta for GD, sqrt(eta) else)."""
    return sp.solve(sp.Eq(get_method(method).ode_scaling[eta], eta), h)[0]


@lru_cache(maxsize=None)
def asymptotic_coefficients(method: str, resolution: str = "low") -> tuple[tuple, tuple]:
    """(a_i(inf), a_i1): a_i(t) = a_i(inf) + a_i1 / t + O(1/t^2) as t -> infinity."""
    a = ode_coefficients(method, resolution)
    inf = tuple(sp.limit(c, t, sp.oo) for c in a)
    first = tuple(sp.limit(t * (c - ci), t, sp.oo) for c, ci in zip(a, inf))
    return inf, first


ODE_ARGS = (lam, gamma, beta2, r, h)


@lru_cache(maxsize=None)
def _asymptotic_function(method: str, resolution: str):
    inf, first = asymptotic_coefficients(method, resolution)
    return sp.lambdify(ODE_ARGS, (list(inf), list(first)), modules="numpy")


@dataclass(frozen=True)
class OdeRateResult:
    """Decay of the ODE: |e(t)| ~ t^(-order) exp(-exponent t) for the slowest eigenvalue.

    exponent = min over eigs of -max Re s (roots of the t -> infinity polynomial);
    order = -Re of the 1/t correction of the dominant root (0 for constant coefficients).
    """

    method: str
    resolution: str
    exponent: float
    order: float
    per_lambda: np.ndarray
    order_per_lambda: np.ndarray
    roots: np.ndarray
    argmin_lambda: float
    eigs: np.ndarray
    hyper: dict


def _dominant_correction(roots: np.ndarray, inf: list, first: list) -> tuple[np.ndarray, np.ndarray]:
    """Dominant root s and its 1/t correction sigma = -sum a_i1 s^i / P'(s) (implicit function)."""
    # among roots of equal real part (a conjugate pair) pick one deterministically
    idx = np.argmax(roots.real + 1e-12 * np.abs(roots.imag), axis=-1)
    dom = np.take_along_axis(roots, idx[:, None], axis=-1)[:, 0]
    d = len(inf)
    num = sum(first[i] * dom**i for i in range(d))
    dp = d * dom ** (d - 1) + sum(i * inf[i] * dom ** (i - 1) for i in range(1, d))
    # P is monic with O(1) coefficients here, so |P'(s)| < 1e-12 means a double root up to round-off
    if np.any(np.abs(num) > 0) and np.any(np.abs(dp) < 1e-12):
        raise NtkodeError("a double root as t -> infinity: the sublinear order is undefined here")
    sigma = -num / np.where(np.abs(dp) < 1e-12, 1.0, dp)
    return dom, sigma


def ode_rate(method: str, eigs: ArrayLike, resolution: str = "low", **hyper: float) -> OdeRateResult:
    """Decay exponent alpha = min_lam -max Re s(lam) and sublinear order of the limiting ODE."""
    check_resolution(resolution)
    m = get_method(method)
    lam_ = check_eigs(eigs)
    values = {n: float(v) for n, v in m.check_hyper(ode=True, **hyper).items()}
    step = 0.0
    if resolution == "high":
        if hyper.get("lr") is None:
            raise NtkodeError(f"the high-resolution ODE of {method!r} needs --lr (its step h)")
        values["lr"] = float(HYPERS["lr"].check(hyper["lr"]))
        step = float(step_of_eta(method).subs(eta, values["lr"]))
    with np.errstate(all="ignore"):  # overflow shows up as non-finite values, refused below
        inf, first = _asymptotic_function(method, resolution)(
            lam_, values.get("damping", 0.0), values.get("momentum2", 0.0), values.get("r", 0.0), step
        )
        inf = [np.broadcast_to(np.asarray(c, dtype=float), lam_.shape) for c in inf]
        first = [np.broadcast_to(np.asarray(c, dtype=float), lam_.shape) for c in first]
        roots = np.asarray(poly_roots(np, inf))
        dom, sigma = _dominant_correction(roots, inf, first)
    per_lambda = -dom.real
    order_per = -sigma.real
    if not (np.all(np.isfinite(per_lambda)) and np.all(np.isfinite(order_per))):
        raise NtkodeError(f"non-finite ODE rate for {method} with {values}; check the hyper-parameters")
    i = int(np.lexsort((order_per, np.round(per_lambda, 12)))[0])
    # an exponent within round-off of 0 is the exact 0 of a sublinear decay
    exponent = float(per_lambda[i]) if abs(per_lambda[i]) > 1e-13 else 0.0
    return OdeRateResult(method, resolution, exponent, float(order_per[i]), per_lambda, order_per,
                         roots, float(lam_[i]), lam_, values)


def damping_discriminant(method: str) -> sp.Expr | None:
    """Discriminant a_1^2 - 4 a_0 of a constant-coefficient 2nd-order low-resolution ODE."""
    a = ode_coefficients(method, "low")
    if len(a) != 2 or any(c.has(t) for c in a):
        return None
    return sp.factor(a[1] ** 2 - 4 * a[0])


def damping_regimes(method: str) -> dict[str, sp.Boolean] | None:
    """Under-, critically and over-damped regimes: the sign of the discriminant."""
    disc = damping_discriminant(method)
    if disc is None:
        return None
    return {"underdamped": disc < 0, "critical": sp.Eq(disc, 0), "overdamped": disc > 0}


def decay_exponent(method: str, resolution: str = "low") -> sp.Expr:
    """alpha(lam) = -Re of the slowest root of the t -> infinity polynomial (symbolic)."""
    a, _ = asymptotic_coefficients(method, resolution)
    if len(a) == 1:
        return a[0]
    return sp.simplify((a[1] - sp.re(sp.sqrt(a[1] ** 2 - 4 * a[0]))) / 2)


@lru_cache(maxsize=None)
def optimal_damping(method: str) -> tuple[sp.Expr, sp.Expr] | None:
    """(gamma*, alpha*) in lam = lam_0: critical damping of the slowest mode, discriminant = 0."""
    disc = damping_discriminant(method)
    if disc is None or not disc.has(gamma):
        return None
    gam = [g for g in sp.solve(sp.Eq(disc, 0), gamma) if g.is_positive is not False][0]
    alpha = sp.factor(ode_coefficients(method, "low")[1].subs(gamma, gam) / 2)
    return gam, alpha


__all__ = [
    "OdeRateResult", "RATE_ARGS", "asymptotic_coefficients", "damping_regimes", "decay_exponent",
    "expansion", "ode_coefficients", "ode_equation", "ode_polynomial", "ode_rate", "optimal_damping",
    "step_of_eta",
]
