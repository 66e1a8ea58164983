"""Limiting ODEs: z = exp(s h) in the characteristic polynomial, expanded in h.

Recipe (docs/theory.md#ode): substitute the declaration's [ode] scaling (GD: eta = h, t = k eta;
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

from ntkode.declaration import Hyper, Method
from ntkode.errors import NtkodeError
from ntkode.symbols import h, lam, s, t, z

from .discrete import check_eigs, float_coefficients, poly_roots, reduction
from .methods import get_method

RESOLUTIONS = ("low", "high")


def check_resolution(resolution: str) -> None:
    """Refuse a resolution other than low or high."""
    if resolution not in RESOLUTIONS:
        raise NtkodeError(f"resolution must be one of {', '.join(RESOLUTIONS)}; got {resolution!r}")


def _scaled(method) -> Method:
    """The Method, or NtkodeError when its declaration has no [ode] scaling."""
    m = get_method(method)
    if m.ode is None:
        raise NtkodeError(f"method {m.name!r} declares no [ode] scaling, so it has no ODE limit")
    return m


def expansion(method) -> tuple[int, sp.Expr, sp.Expr]:
    """(m, P0, P1): p(exp(s h)) z^(-q/2) = h^m (P0(s, t) + h P1(s, t) + O(h^2))."""
    return _expansion(_scaled(method))


@lru_cache(maxsize=None)
def _expansion(m: Method) -> tuple[int, sp.Expr, sp.Expr]:
    q = m.degree
    centred = m.char_poly() * z ** (-sp.Rational(q, 2))
    scaled = centred.subs(m.ode.mapping(), simultaneous=True).subs(t, t + sp.Rational(q, 2) * h)
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


def ode_coefficients(method, resolution: str = "low") -> tuple[sp.Expr, ...]:
    """[a_0, ..., a_{d-1}] of the monic ODE X^(d) + sum a_i(t) X^(i) = 0 (h = ODE step)."""
    check_resolution(resolution)
    return _ode_coefficients(_scaled(method), resolution)


@lru_cache(maxsize=None)
def _ode_coefficients(m: Method, resolution: str) -> tuple[sp.Expr, ...]:
    _, p0, p1 = _expansion(m)
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


def step_of_eta(method) -> sp.Expr:
    """h as a function of the step-size hyper-parameter (eta for GD, sqrt(eta) for HB, alpha gamma for QHM):
    the positive inverse of its [ode] substitution."""
    m = _scaled(method)
    sym = m.ode.step_hyper
    roots = [r for r in sp.solve(sp.Eq(dict(m.ode.substitutions)[sym], sym), h) if r.is_positive is not False]
    return roots[0]


def asymptotic_coefficients(method, resolution: str = "low") -> tuple[tuple, tuple]:
    """(a_i(inf), a_i1): a_i(t) = a_i(inf) + a_i1 / t + O(1/t^2) as t -> infinity."""
    return _asymptotic(_scaled(method), resolution)


@lru_cache(maxsize=None)
def _asymptotic(m: Method, resolution: str) -> tuple[tuple, tuple]:
    a = _ode_coefficients(m, resolution)
    inf = tuple(sp.limit(c, t, sp.oo) for c in a)
    first = tuple(sp.limit(t * (c - ci), t, sp.oo) for c, ci in zip(a, inf))
    return inf, first


def ode_hypers(method, resolution: str = "low") -> tuple[Hyper, ...]:
    """The hyper-parameters the ODE depends on (declared order, then the [ode]'s new ones such as the
    damping); at high resolution the step size too, since h is its function."""
    m = _scaled(method)
    free = set().union(*[c.free_symbols for c in _ode_coefficients(m, resolution)])
    pool = m.hyper + m.ode.new
    needed = [hp for hp in pool if hp.symbol in free]
    if h in free:
        step = step_of_eta(m).free_symbols
        needed += [hp for hp in pool if hp.symbol in step]
    return tuple(dict.fromkeys(needed))


@lru_cache(maxsize=None)
def _low_pair(m: Method) -> tuple[sp.Expr, sp.Expr] | None:
    """(N0, P0), monic in s: the leading orders in h of N(e^{sh}) and p(e^{sh}) under the [ode] scaling, so that the
    low-resolution ODE's Laplace transform is X(s) ~ N0/P0, as W(z) = z N/p (docs/theory.md#state-space); None for
    a time-dependent ODE or where they share a factor for generic hyper-parameters."""
    _, p0, _ = _expansion(m)
    if m.time_varying or p0.has(t):
        return None
    num = m.transfer[0].subs(m.ode.mapping(), simultaneous=True)
    series = sp.expand(sp.series(num.subs(z, sp.exp(s * h)), h, 0, 5).removeO())
    n0 = next(c for c in sp.Poly(series, h).all_coeffs()[::-1] if sp.simplify(c) != 0)
    pair = [sp.Poly(part, s) for part in (n0, p0)]
    if sp.degree(sp.gcd(*pair), s) > 0:
        return None
    return tuple(sp.expand(part.as_expr() / part.LC()) for part in pair)


def _reduced_ode(m: Method, values: dict[str, float]) -> sp.Expr | None:
    """The low-resolution ODE polynomial with the factor N0 and P0 share at this exact setting divided out (QHM at
    nu = 0: (s + gamma)(s + lam/gamma) -> GD's s + lam/gamma), or None where nothing more cancels."""
    pair = _low_pair(m)
    found = reduction(*pair, s, ode_hypers(m, "low"), values) if pair is not None else None
    if found is None:
        return None
    poly, hypers = found
    return poly.subs({hp.symbol: sp.Rational(values[hp.name]) for hp in hypers})


@lru_cache(maxsize=None)
def _asymptotic_function(m: Method, resolution: str):
    inf, first = _asymptotic(m, resolution)
    symbols = [hp.symbol for hp in ode_hypers(m, resolution) if hp.symbol != m.ode.step_hyper]
    return sp.lambdify((lam, *symbols, h), (list(inf), list(first)), modules="numpy"), symbols


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


def ode_rate(method, eigs: ArrayLike, resolution: str = "low", **hyper: float) -> OdeRateResult:
    """Decay exponent alpha = min_lam -max Re s(lam) and sublinear order of the limiting ODE.

    `hyper`: the ODE's hyper-parameters (`ode_hypers`) by name or alias, e.g. damping for hb,
    r for nag; the high resolution also needs the step size (lr), which fixes h.
    """
    check_resolution(resolution)
    m = _scaled(method)
    lam_ = check_eigs(eigs)
    values = {n: float(v) for n, v in m.check_hyper(hyper, ode_hypers(m, resolution), ode=True).items()}
    fn, symbols = _asymptotic_function(m, resolution)
    by_symbol = {hp.symbol: values[hp.name] for hp in m.hyper + m.ode.new if hp.name in values}
    step = float(step_of_eta(m).subs(by_symbol)) if resolution == "high" else 0.0
    reduced = _reduced_ode(m, values) if resolution == "low" else None
    with np.errstate(all="ignore"):  # overflow shows up as non-finite values, refused below
        inf, first = fn(lam_, *[by_symbol[sym] for sym in symbols], step)
        if reduced is not None:  # only the modes that still reach W (constant coefficients: no 1/t terms)
            inf = sp.lambdify(lam, float_coefficients(reduced, s), modules="numpy")(lam_)
            first = [0.0] * len(inf)
        inf = [np.broadcast_to(np.asarray(c, dtype=float), lam_.shape) for c in inf]
        first = [np.broadcast_to(np.asarray(c, dtype=float), lam_.shape) for c in first]
        roots = np.asarray(poly_roots(np, inf))
        dom, sigma = _dominant_correction(roots, inf, first)
    per_lambda = -dom.real
    order_per = -sigma.real
    if not (np.all(np.isfinite(per_lambda)) and np.all(np.isfinite(order_per))):
        raise NtkodeError(f"non-finite ODE rate for {m.name} with {values}; check the hyper-parameters")
    i = int(np.lexsort((order_per, np.round(per_lambda, 12)))[0])
    # an exponent within round-off of 0 is the exact 0 of a sublinear decay
    exponent = float(per_lambda[i]) if abs(per_lambda[i]) > 1e-13 else 0.0
    return OdeRateResult(m.name, resolution, exponent, float(order_per[i]), per_lambda, order_per,
                         roots, float(lam_[i]), lam_, values)


def damping_discriminant(method, resolution: str = "low") -> sp.Expr | None:
    """Discriminant a_1^2 - 4 a_0 of a constant-coefficient 2nd-order ODE (None otherwise)."""
    a = ode_coefficients(method, resolution)
    if len(a) != 2 or any(c.has(t) for c in a):
        return None
    return sp.factor(a[1] ** 2 - 4 * a[0])


def damping_regimes(method) -> dict[str, sp.Boolean] | None:
    """Under-, critically and over-damped regimes: the sign of the discriminant."""
    disc = damping_discriminant(method)
    if disc is None:
        return None
    return {"underdamped": disc < 0, "critical": sp.Eq(disc, 0), "overdamped": disc > 0}


def decay_exponent(method, resolution: str = "low") -> sp.Expr:
    """alpha(lam) = -Re of the slowest root of the t -> infinity polynomial (symbolic)."""
    a, _ = asymptotic_coefficients(method, resolution)
    if len(a) == 1:
        return a[0]
    return sp.simplify((a[1] - sp.re(sp.sqrt(a[1] ** 2 - 4 * a[0]))) / 2)


def damping_hyper(method) -> Hyper | None:
    """The [ode]'s new hyper-parameter that the low-resolution discriminant depends on (the damping), if one."""
    m = _scaled(method)
    disc = damping_discriminant(m)
    if disc is None:
        return None
    found = [hp for hp in m.ode.new if disc.has(hp.symbol)]
    return found[0] if len(found) == 1 else None


def optimal_damping(method, resolution: str = "low") -> tuple[sp.Expr, sp.Expr] | None:
    """(gamma*, alpha*) in lam = lam_0: critical damping of the slowest mode, discriminant = 0.

    At high resolution the discriminant of the O(h)-corrected ODE is solved instead (for HB,
    gamma^2 (1 + gamma h/2) = 4 lam up to O(h^2); docs/theory.md#ode), the root continuing 2 sqrt(lam).
    """
    check_resolution(resolution)
    return _optimal_damping(_scaled(method), resolution)


@lru_cache(maxsize=None)
def _optimal_damping(m: Method, resolution: str) -> tuple[sp.Expr, sp.Expr] | None:
    hp = damping_hyper(m)
    disc = damping_discriminant(m, resolution)
    if hp is None or disc is None:
        return None
    gam = hp.symbol
    if resolution == "low":
        root = [g for g in sp.solve(sp.Eq(disc, 0), gam) if g.is_positive is not False][0]
    else:
        low = _optimal_damping(m, "low")[0]
        correction = sp.solve(sp.Eq(sp.diff(disc, h).subs(h, 0).subs(gam, low) + sp.Symbol("_g1")
                                    * sp.diff(disc.subs(h, 0), gam).subs(gam, low), 0), sp.Symbol("_g1"))[0]
        root = sp.factor(low + h * correction)
    alpha = sp.factor(ode_coefficients(m, resolution)[1].subs(gam, root) / 2)
    return root, alpha


__all__ = [
    "OdeRateResult", "asymptotic_coefficients", "damping_hyper", "ode_hypers", "damping_regimes", "decay_exponent",
    "expansion", "ode_coefficients", "ode_equation", "ode_polynomial", "ode_rate", "optimal_damping",
    "step_of_eta",
]
