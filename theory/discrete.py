"""Discrete rates: characteristic roots, Jury stability and the spectral radius, for any declared method.

Every quantity comes from `Method.char_poly()`, the reduced det(zI - T(lam)) of degree q:
p(z) = z^q + c_{q-1} z^(q-1) + ... + c_0 per eigenvalue lam (docs/theory.md#discrete). The rate is
rho = max over eigenvalues of max |root of p|. For a time-varying method (a coefficient depends on
the step k, as Nesterov's beta_k = (k-1)/(k+r-1)) the per-step rate is that of lim_{k->inf} p
(docs/theory.md#nesterov). Compiled functions take (lam, *hyper) with the hyper-parameters in their
declared order (`Method.hyper_names`). At a setting where more of p's modes stop reaching W than for generic
hyper-parameters (QHM at nu = 0 is GD), every rate uses p reduced there (`setting_polynomial`,
docs/theory.md#state-space).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from types import ModuleType
from typing import Callable

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from ntkode.declaration import Hyper, Method
from ntkode.errors import NtkodeError
from ntkode.symbols import k, lam, z

from .methods import get_method

#: largest degree with a closed-form numeric root kernel; higher degrees use companion eigenvalues
CLOSED_KERNEL_DEGREE = 3


def rate_polynomial(method, **hyper: float) -> sp.Expr:
    """p(z) with time-varying coefficients replaced by their k -> infinity limit; with `hyper` (declared names or
    aliases, single numbers) the polynomial in lam and z at that setting, floats taken as the exact rationals they
    are, divided by the factor its numerator N and p share there (`setting_polynomial`)."""
    m = get_method(method)
    if not hyper:
        return _rate_polynomial(m)
    values = m.scalar_hyper(hyper)
    setting = tuple(values[n] for n in m.hyper_names)
    reduced = setting_polynomial(m, setting)
    return reduced if reduced is not None else _rate_polynomial(m).subs(
        {s: sp.Rational(v) for s, v in zip(m.symbols, setting)})


@lru_cache(maxsize=None)
def _rate_polynomial(m: Method) -> sp.Expr:
    return _rate_pair(m)[1]


@lru_cache(maxsize=None)
def _rate_degree(m: Method) -> int:
    return int(sp.degree(_rate_polynomial(m), z))


@lru_cache(maxsize=None)
def _rate_pair(m: Method) -> tuple[sp.Expr, sp.Expr]:
    """(N, p), monic in z: W(z) = z N/p (`Method.transfer`); for a time-varying method the k -> infinity limits of
    their coefficients, with a factor the limits share for generic hyper-parameters cancelled as well."""
    num, poly = m.transfer
    if not (num.has(k) or poly.has(k)):
        return num, poly
    num, poly = _limit_in_k_poly(num), _limit_in_k_poly(poly)
    n, d = sp.fraction(sp.cancel(num / poly))
    if sp.degree(d, z) == sp.degree(poly, z):
        return num, poly
    return _limit_in_k_poly(n), _limit_in_k_poly(d)


def _limit_in_k_poly(poly: sp.Expr) -> sp.Expr:
    """The monic polynomial in z whose coefficients are those of `poly` / its leading one, at k -> infinity."""
    coeffs = sp.Poly(poly, z).all_coeffs()
    limits = [sp.factor(limit_in_k(sp.cancel(c / coeffs[0]))) for c in coeffs]
    return sum(c * z**i for i, c in enumerate(reversed(limits)))


def limit_in_k(expr: sp.Expr) -> sp.Expr:
    """lim_{k->inf} expr; Min and Max are continuous, so their limits are taken argument by argument first
    (sympy's limit cannot see through them)."""
    inner = expr.replace(lambda e: isinstance(e, (sp.Min, sp.Max)) and e.has(k),
                         lambda e: e.func(*[limit_in_k(a) for a in e.args]))
    return sp.limit(inner, k, sp.oo)


def monic_coefficients(poly: sp.Expr, var: sp.Symbol = z) -> list[sp.Expr]:
    """[c_0, ..., c_{q-1}] of poly / leading coefficient = var^q + sum c_i var^i."""
    coeffs = sp.Poly(poly, var).all_coeffs()
    lead = coeffs[0]
    return [sp.factor(c / lead) for c in reversed(coeffs[1:])]


# -- cancellation at special settings (docs/theory.md#state-space) -----------------------------

#: a factor of Res_z(N, p) whose coefficients in lam are all within this fraction of the sum of their terms'
#: moduli may vanish at the setting; float rounding of those terms is a few eps of that sum, so an exact zero
#: always passes, and `setting_polynomial` then decides exactly
VANISHING = 1e-9


@dataclass(frozen=True)
class _VanishingTest:
    """Where the resultant Res_var(N, p) may vanish identically in lam at a setting: for some factor of it that
    involves a hyper-parameter, every coefficient in lam is within VANISHING of the sum of its terms' moduli.
    `values(*hyper)` gives (coefficient, bound) pairs flat, group after group of `sizes`; `loci[i]` is
    (name, value) when group i is a factor linear in one hyper-parameter alone (beta, nu, beta2 - 1/2), which then
    vanishes exactly on that hyper-parameter's value, else None."""

    sizes: tuple[int, ...]
    values: Callable
    scalar_values: Callable
    loci: tuple[tuple[str, sp.Rational] | None, ...]

    def flagged(self, *hyper: float) -> list[int]:
        """For single numbers (the common path: a few float operations): the groups that may vanish."""
        try:
            values = self.scalar_values(*hyper)
        except (ArithmeticError, ValueError):  # leave overflow or a domain error to the exact test
            return list(range(len(self.sizes)))
        out = []
        for group, positions in enumerate(self.starts):
            for i in positions:
                if abs(values[i]) > VANISHING * values[i + 1]:
                    break
            else:
                out.append(group)
        return out

    @cached_property
    def starts(self) -> tuple[tuple[int, ...], ...]:
        """Per group, the positions of its coefficients in `values`' output."""
        ends = np.cumsum((0,) + self.sizes)
        return tuple(tuple(range(2 * a, 2 * b, 2)) for a, b in zip(ends[:-1], ends[1:]))

    def array(self, *hyper) -> np.ndarray:
        """Elementwise over broadcast arrays: whether any group may vanish; NaN is left to the exact test."""
        values = iter(self.values(*hyper))
        out = np.zeros((), dtype=bool)
        for size in self.sizes:
            small = np.ones((), dtype=bool)
            for _ in range(size):
                value, bound = next(values), next(values)
                small = small & ~(np.abs(value) > VANISHING * bound)
            out = out | small
        return out


@lru_cache(maxsize=None)
def vanishing_test(num: sp.Expr, poly: sp.Expr, var: sp.Symbol, hypers: tuple[Hyper, ...]) -> _VanishingTest | None:
    """For W's transform N/p in `var` (z, or s for an ODE), monic and coprime for generic values of `hypers`: the
    test of where Res_var(N, p) may vanish for every lam; None when no admissible setting can make it (N constant,
    or every factor of the resultant has a coefficient in lam that no setting zeroes)."""
    if sp.degree(num, var) < 1:
        return None
    res = sp.numer(sp.together(sp.resultant(num, poly, var)))
    groups = []
    for factor, _ in sp.factor_list(res)[1]:
        coeffs = sp.Poly(factor, lam).all_coeffs() if factor.has(lam) else [factor]
        if any(_nonzero_on_domain(hypers, c) for c in coeffs):
            continue  # a number, lam, or a factor such as alpha, 1 - beta, eta lam - 1 that no setting zeroes
        groups.append([(c, sum(sp.Abs(t) for t in sp.Add.make_args(sp.expand(c)))) for c in coeffs])
    if not groups:
        return None
    flat = [part for group in groups for pair in group for part in pair]
    symbols = [hp.symbol for hp in hypers]
    return _VanishingTest(tuple(len(group) for group in groups), sp.lambdify(symbols, flat, modules="numpy"),
                          sp.lambdify(symbols, flat, modules="math"),
                          tuple(_locus(hypers, group[0][0]) if len(group) == 1 else None for group in groups))


def _locus(hypers: tuple[Hyper, ...], factor: sp.Expr) -> tuple[str, sp.Rational] | None:
    """(name, value) when `factor` is linear in one hyper-parameter alone with a rational zero, else None."""
    found = [hp for hp in hypers if factor.has(hp.symbol)]
    if len(found) != 1 or factor.free_symbols != {found[0].symbol}:
        return None
    poly = sp.Poly(factor, found[0].symbol)
    root = -poly.nth(0) / poly.nth(1) if poly.degree() == 1 else None
    return (found[0].name, root) if root is not None and root.is_Rational else None


def _nonzero_on_domain(hypers: tuple[Hyper, ...], factor: sp.Expr) -> bool:
    """Whether `factor`, a number or an expression in one hyper-parameter alone, has no zero in its domain."""
    symbols = factor.free_symbols
    if not symbols:
        return factor != 0
    found = [hp for hp in hypers if hp.symbol in symbols]
    if len(symbols) != 1 or not found:
        return False
    hp = found[0]
    domain = sp.Interval(sp.Float(hp.low) if math.isfinite(hp.low) else -sp.oo,
                         sp.Float(hp.high) if math.isfinite(hp.high) else sp.oo,
                         left_open=not hp.low_closed, right_open=not hp.high_closed)
    return sp.solveset(factor, hp.symbol, domain) is sp.S.EmptySet


def _monic(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    poly = sp.Poly(expr, var)
    return sp.expand(sp.cancel(poly.as_expr() / poly.LC()))


@lru_cache(maxsize=None)
def _restrict(num: sp.Expr, poly: sp.Expr, var: sp.Symbol, hypers: tuple[Hyper, ...], name: str,
              value: sp.Rational) -> tuple[sp.Expr, sp.Expr, tuple[Hyper, ...]]:
    """(N, p, the other hyper-parameters) on the locus name = value, with the factor N and p share for generic
    values of the others there cancelled (there is one: the resultant vanishes on the locus)."""
    symbol = next(hp.symbol for hp in hypers if hp.name == name)
    n, d = sp.fraction(sp.cancel(num.subs(symbol, value) / poly.subs(symbol, value)))
    return _monic(n, var), _monic(d, var), tuple(hp for hp in hypers if hp.name != name)


def reduce_at(num: sp.Expr, poly: sp.Expr, var: sp.Symbol, subs: dict) -> sp.Expr | None:
    """p_h = p / gcd(N, p) at the exact setting `subs` (symbol -> rational), monic in `var` with coefficients
    polynomial in lam; None when N and p share nothing more there than for generic hyper-parameters."""
    num, poly = (sp.Poly(sp.cancel(part.subs(subs)), var, lam, extension=True) for part in (num, poly))
    common = sp.gcd(num, poly)
    if common.degree(var) < 1:
        return None
    reduced = sp.Poly(sp.quo(poly, common).as_expr(), var)
    return sp.expand(reduced.as_expr() / reduced.LC())


def reduction(num: sp.Expr, poly: sp.Expr, var: sp.Symbol, hypers: tuple[Hyper, ...],
              values: dict[str, float]) -> tuple[sp.Expr, tuple[Hyper, ...]] | None:
    """(p reduced at the setting `values`, the hyper-parameters it still depends on), or None where N and p share
    no more than for generic hyper-parameters. A setting on a locus name = value (QHM's nu = 0) uses p restricted
    to that locus, derived once for all its settings, and is reduced further where the restricted pair is special;
    any other setting the test flags is decided exactly (`reduce_at`), its p free of hyper-parameters."""
    test = vanishing_test(num, poly, var, hypers)
    if test is None:
        return None
    flagged = test.flagged(*[values[hp.name] for hp in hypers])
    if not flagged or not all(math.isfinite(values[hp.name]) for hp in hypers):
        return None
    for group in flagged:
        locus = test.loci[group]
        if locus is not None and sp.Rational(values[locus[0]]) == locus[1]:
            restricted = _restrict(num, poly, var, hypers, *locus)
            return reduction(*restricted[:2], var, restricted[2], values) or (restricted[1], restricted[2])
    exact = reduce_at(num, poly, var, {hp.symbol: sp.Rational(values[hp.name]) for hp in hypers})
    return (exact, ()) if exact is not None else None


def setting_polynomial(method, setting: tuple[float, ...]) -> sp.Expr | None:
    """The rate polynomial reduced at the setting `setting` (hyper-parameters in declared order, finite floats),
    exact (each float the rational it is), or None where it is the generic one. W(z) = z N/p has no common factor
    for generic hyper-parameters; at a setting h, N_h and p_h share one exactly when their resultant, a polynomial
    in lam, vanishes for every lam (both are monic in z, so the resultant of the substituted pair is the
    substituted resultant). Then p_h / gcd(N_h, p_h) holds the modes that still reach W, e.g. QHM at nu = 0:
    p = (z - beta)(z - 1 + alpha lam), N = z - beta, reduced to gradient descent's z - 1 + alpha lam. A
    lam-specific coincidence (a root of the resultant at one lam > 0) is not removed: there the mode's amplitude
    is O(|lam - lam*|), lam is a measured eigenvalue, and the rate stays continuous in lam."""
    m = get_method(method)
    setting = tuple(float(v) for v in setting)
    found = _reduced_at(m, setting)
    if found is None:
        return None
    poly, hypers = found
    values = dict(zip(m.hyper_names, setting))
    return _monic(poly.subs({hp.symbol: sp.Rational(values[hp.name]) for hp in hypers}), z)


def _reduced_at(m: Method, setting: tuple[float, ...]) -> tuple[sp.Expr, tuple[Hyper, ...]] | None:
    test = _vanishing_test(m)
    if test is None or not test.flagged(*setting):  # the common path: a few float operations
        return None
    return reduction(*_rate_pair(m), z, m.hyper, dict(zip(m.hyper_names, setting)))


@lru_cache(maxsize=None)
def _vanishing_test(m: Method) -> _VanishingTest | None:
    """The prefilter of `setting_polynomial`, never a verdict (`vanishing_test` of the rate pair)."""
    return vanishing_test(*_rate_pair(m), z, m.hyper)


@lru_cache(maxsize=4096)
def _reduced_function(poly: sp.Expr, hypers: tuple[Hyper, ...], xp_name: str) -> Callable:
    """(lam, *hypers) -> monic coefficients [c_0 ..] of a reduced polynomial, compiled once per locus."""
    return sp.lambdify((lam, *[hp.symbol for hp in hypers]), float_coefficients(poly, z), modules=xp_name)


def _reduced_coefficients(m: Method, xp: ModuleType, found: tuple, setting: tuple[float, ...], lam_at) -> list:
    poly, hypers = found
    values = dict(zip(m.hyper_names, setting))
    fn = _reduced_function(poly, hypers, xp.__name__)
    return _broadcast(xp, fn(xp.asarray(lam_at), *[values[hp.name] for hp in hypers]), lam_at)


def float_coefficients(poly: sp.Expr, var: sp.Symbol) -> list[sp.Expr]:
    """`monic_coefficients` with every exact rational rounded to 40 digits, so that the compiled code reads
    float literals (a subnormal setting's rationals have 1074-bit denominators, which numpy cannot take)."""
    return [sp.N(c, 40) for c in monic_coefficients(poly, var)]


def _host(value) -> np.ndarray:
    return np.asarray(value.get() if hasattr(value, "get") else value, dtype=float)


def _special_settings(m: Method, lam_, hyper: tuple) -> list[tuple[np.ndarray, tuple[float, ...], tuple]]:
    """[(mask over the broadcast shape of (lam, *hyper), setting, its reduction)] for each setting among `hyper` at
    which more cancels than for generic hyper-parameters ([] on the common path, after one vectorised prefilter)."""
    test = _vanishing_test(m)
    if test is None:
        return []
    if all(isinstance(h, (int, float)) for h in hyper):  # single numbers: the tuners' and spectral_radius's path
        setting = tuple(float(h) for h in hyper)
        found = _reduced_at(m, setting)
        return [] if found is None else [(np.ones(np.shape(lam_), dtype=bool), setting, found)]
    host = [_host(h) for h in hyper]
    shape = np.broadcast_shapes(np.shape(lam_), *[h.shape for h in host])
    with np.errstate(all="ignore"):
        flagged = np.asarray(test.array(*host), dtype=bool)
    if not flagged.any():
        return []
    flagged = np.broadcast_to(flagged, shape)
    columns = np.stack([np.broadcast_to(h, shape)[flagged] for h in host], axis=-1)
    out = []
    for setting in {tuple(float(v) for v in row) for row in columns}:
        found = _reduced_at(m, setting)
        if found is not None:
            mask = flagged & np.all([np.broadcast_to(h, shape) == v for h, v in zip(host, setting)], axis=0)
            out.append((mask, setting, found))
    return out


def _at_special_settings(m: Method, xp: ModuleType, lam_, hyper: tuple, generic, kernel: Callable):
    """`generic` (values over the broadcast shape, computed from the generic polynomial) with every entry at a
    special setting replaced by kernel(reduced coefficients at its lam)."""
    special = _special_settings(m, lam_, hyper)
    if not special:
        return generic
    lam_host = _host(lam_)
    for mask, setting, found in special:
        lam_at = np.broadcast_to(lam_host, mask.shape)[mask]
        generic[xp.asarray(mask)] = kernel(_reduced_coefficients(m, xp, found, setting, lam_at))
    return generic


def jury_conditions(poly: sp.Expr, var: sp.Symbol = z) -> sp.Boolean:
    """Jury's criterion: all roots of the real polynomial `poly` lie strictly inside |var| = 1.

    With a = coefficients (a_n > 0 after normalising): P(1) > 0, (-1)^n P(-1) > 0,
    |a_0| < a_n, then on each reduced row b_j = b_0 * b_j - b_last * b_{last-j}
    the first entry dominates the last in modulus, until three entries remain.
    """
    a = list(reversed(sp.Poly(poly, var).all_coeffs()))
    n = len(a) - 1
    a = [sp.expand(c / a[-1]) for c in a]
    conds = [sp.expand(sum(a)) > 0, sp.expand((-1) ** n * sum(c * (-1) ** i for i, c in enumerate(a))) > 0]
    if n == 1:
        return sp.And(*conds, sp.Abs(a[0]) < 1)
    conds.append(sp.Abs(a[0]) < 1)
    row = a
    while len(row) > 3:
        m = len(row) - 1
        row = [sp.expand(row[0] * row[j] - row[m] * row[m - j]) for j in range(m)]
        conds.append(sp.Abs(row[0]) > sp.Abs(row[-1]))
    return sp.And(*conds)


def closed_form_rate(poly: sp.Expr, var: sp.Symbol = z) -> sp.Expr:
    """max |root| of a real monic polynomial, in closed form where it is short.

    Degree 1: |c_0|. Degree 2 (z^2 + b z + c): sqrt(c) if b^2 < 4c (complex pair,
    |z|^2 = c), else (|b| + sqrt(b^2 - 4c))/2. Higher degree: Max of |roots|.
    """
    coeffs = monic_coefficients(poly, var)
    if len(coeffs) == 1:
        return sp.Abs(coeffs[0])
    if len(coeffs) == 2:
        c, b = coeffs
        disc = sp.factor(b**2 - 4 * c)
        return sp.Piecewise((sp.sqrt(c), disc < 0), ((sp.Abs(b) + sp.sqrt(disc)) / 2, True))
    roots = closed_form_roots(poly, var)
    return sp.Max(*[sp.Abs(root) for root in roots]) if roots else sp.nan


def closed_form_roots(poly: sp.Expr, var: sp.Symbol = z) -> list:
    """The roots of `poly` in closed form (with multiplicity), or [] when sympy finds no complete set."""
    p = sp.Poly(poly, var)
    roots = sp.roots(p, cubics=True, quartics=p.degree() <= 4, multiple=True) if p.degree() <= 4 else []
    return roots if len(roots) == p.degree() else []


# -- numeric root kernels, generic in the array module xp (numpy or cupy) --------

def _quadratic_roots(xp: ModuleType, b, c):
    """Roots of z^2 + b z + c: q = -(b + sign(b) sqrt(b^2 - 4c))/2 and c/q (no cancellation)."""
    d = xp.sqrt((b * b - 4 * c).astype(complex))
    q = -(b + xp.where(b >= 0, 1.0, -1.0) * d) / 2
    small = c / xp.where(q == 0, 1.0, q)
    return xp.stack([q, xp.where(q == 0, 0.0, small)], axis=-1)


def _cubic_real_root(xp: ModuleType, a2, a1, a0):
    """One real root of z^3 + a2 z^2 + a1 z + a0 (Cardano or trigonometric), Newton-polished."""
    p = a1 - a2 * a2 / 3
    q = 2 * a2**3 / 27 - a2 * a1 / 3 + a0
    disc = (q / 2) ** 2 + (p / 3) ** 3
    u = xp.cbrt(-q / 2 - xp.where(q >= 0, 1.0, -1.0) * xp.sqrt(xp.maximum(disc, 0)))
    one = u - p / (3 * xp.where(u == 0, 1.0, u))
    m = xp.sqrt(xp.maximum(-p / 3, 0))
    arg = xp.clip(-q / (2 * xp.where(m == 0, 1.0, m) ** 3), -1, 1)
    three = 2 * m * xp.cos(xp.arccos(arg) / 3)
    x = xp.where(disc > 0, one, three) - a2 / 3
    for _ in range(2):
        f = ((x + a2) * x + a1) * x + a0
        df = (3 * x + 2 * a2) * x + a1
        x = x - xp.where(df == 0, 0.0, f / xp.where(df == 0, 1.0, df))
    return x


def _cubic_roots(xp: ModuleType, a2, a1, a0):
    """Roots of z^3 + a2 z^2 + a1 z + a0: a real root x, then the quadratic (z - x) divides off."""
    x = _cubic_real_root(xp, a2, a1, a0)
    b = a2 + x
    quad = _quadratic_roots(xp, b, a1 + b * x)
    return xp.concatenate([x.astype(complex)[..., None], quad], axis=-1)


def companion_roots(xp: ModuleType, coeffs: list) -> object:
    """Roots (..., q) of the monic z^q + sum c_i z^i as the eigenvalues of its batched companion matrix
    (any degree; on the host, since a general eigensolver is a LAPACK routine)."""
    host = [np.asarray(c.get() if hasattr(c, "get") else c, dtype=float) for c in coeffs]
    q = len(host)
    shape = np.broadcast_shapes(*[c.shape for c in host])
    comp = np.zeros(shape + (q, q))
    comp[..., 1:, :-1] = np.eye(q - 1)
    for i, c in enumerate(host):
        comp[..., i, -1] = -c
    finite = np.all(np.isfinite(comp), axis=(-2, -1))
    roots = np.full(shape + (q,), np.nan, dtype=complex)
    roots[finite] = np.linalg.eigvals(comp[finite])
    return xp.asarray(roots)


def poly_roots(xp: ModuleType, coeffs: list) -> object:
    """Roots (..., q) of the monic z^q + sum c_i z^i, coeffs = [c_0, ..., c_{q-1}] arrays: closed-form
    kernels up to degree 3, companion eigenvalues above."""
    if len(coeffs) == 1:
        return (-coeffs[0]).astype(complex)[..., None]
    if len(coeffs) == 2:
        return _quadratic_roots(xp, coeffs[1], coeffs[0])
    if len(coeffs) == 3:
        return _cubic_roots(xp, coeffs[2], coeffs[1], coeffs[0])
    return companion_roots(xp, coeffs)


def _quadratic_radius(xp: ModuleType, b, c):
    """max |root| of z^2 + b z + c in real arithmetic (the closed form of `closed_form_rate`)."""
    disc = b * b - 4 * c
    return xp.where(disc < 0, xp.sqrt(xp.abs(c)), (xp.abs(b) + xp.sqrt(xp.maximum(disc, 0))) / 2)


@lru_cache(maxsize=None)
def _coefficient_function(m: Method, xp_name: str) -> Callable:
    return sp.lambdify((lam, *m.symbols), monic_coefficients(_rate_polynomial(m)), modules=xp_name)


def _broadcast(xp: ModuleType, values: list, *args) -> list:
    shape = np.broadcast_shapes(*[np.shape(a) for a in args])
    return [xp.broadcast_to(xp.asarray(v, dtype=xp.float64), shape) for v in values]


def _coefficients(m: Method, xp: ModuleType) -> Callable:
    """(lam, *hyper) -> [c_0, ..., c_{q-1}] broadcast arrays, checking the argument count."""
    fn = _coefficient_function(m, xp.__name__)
    names = m.hyper_names

    def coefficients(lam_, *hyper):
        if len(hyper) != len(names):
            raise NtkodeError(f"method {m.name!r} takes (lam, {', '.join(names)}); got {len(hyper)} hyper-parameters")
        return _broadcast(xp, fn(lam_, *hyper), lam_, *hyper)

    return coefficients


def roots_function(method, xp: ModuleType = np) -> Callable:
    """Compiled (lam, *hyper) -> complex roots (..., q) of the rate polynomial (hyper in declared order). At a
    setting where the polynomial reduces to degree q' < q (`setting_polynomial`) the last q - q' roots are 0:
    the roots of z^(q - q') p_h(z), which annihilates W's sequence as p_h does and has the same radius."""
    return _roots_function(get_method(method), xp)


@lru_cache(maxsize=None)
def _roots_function(m: Method, xp: ModuleType) -> Callable:
    coefficients = _coefficients(m, xp)
    degree = _rate_degree(m)

    def roots(lam_, *hyper):
        generic = poly_roots(xp, coefficients(lam_, *hyper))
        return _at_special_settings(m, xp, lam_, hyper, generic, lambda coeffs: _padded_roots(xp, coeffs, degree))

    return roots


def _padded_roots(xp: ModuleType, coeffs: list, degree: int):
    """Roots (..., degree) of z^(degree - q) (z^q + sum c_i z^i): those of the monic polynomial, then zeros."""
    roots = poly_roots(xp, coeffs)
    return xp.concatenate([roots, xp.zeros(roots.shape[:-1] + (degree - len(coeffs),), dtype=complex)], axis=-1)


def rate_function(method, xp: ModuleType = np) -> Callable:
    """Compiled, vectorised spectral radius per eigenvalue: (lam, *hyper) -> max |root| (declared order).

    Degree 1: |c_0|; degree 2: the real closed form of `closed_form_rate`; degree 3: real root +
    deflation (`poly_roots`), not Cardano's complex form, whose cube-root branches lose accuracy near
    repeated roots; degree >= 4: batched companion eigenvalues. At a setting where more cancels
    (`setting_polynomial`), the radius of the reduced polynomial.
    """
    return _rate_function(get_method(method), xp)


def _radius(xp: ModuleType, coeffs: list):
    """max |root| of the monic z^q + sum c_i z^i."""
    if len(coeffs) == 1:
        return xp.abs(coeffs[0])
    if len(coeffs) == 2:
        return _quadratic_radius(xp, coeffs[1], coeffs[0])
    return xp.abs(poly_roots(xp, coeffs)).max(axis=-1)


@lru_cache(maxsize=None)
def _rate_function(m: Method, xp: ModuleType) -> Callable:
    coefficients = _coefficients(m, xp)

    def rate(lam_, *hyper):
        generic = _radius(xp, coefficients(lam_, *hyper))
        return _at_special_settings(m, xp, lam_, hyper, generic, lambda coeffs: _radius(xp, coeffs))

    return rate


@dataclass(frozen=True)
class RateResult:
    """Spectral radius of a method on a spectrum: rate = max(radius), stable = rate < 1."""

    method: str
    rate: float
    radius: np.ndarray
    roots: np.ndarray
    stable: bool
    argmax_lambda: float
    eigs: np.ndarray
    hyper: dict


def check_eigs(eigs: ArrayLike) -> np.ndarray:
    """Eigenvalues as a 1-D float64 array, or NtkodeError if empty, complex, non-finite, non-positive,
    subnormal, or spread beyond float64's resolution (lam_max/lam_min > 1/eps, where 1 - eta lam_min
    rounds to 1 at any step size that keeps lam_max stable)."""
    try:
        raw = np.asarray(eigs)
        real = not np.iscomplexobj(raw)
        arr = np.atleast_1d(raw.astype(float)) if real else raw
    except (TypeError, ValueError):
        raise NtkodeError(f"eigenvalues must be numbers; got {eigs!r}") from None
    if not real:
        raise NtkodeError(f"eigenvalues must be real numbers; got {eigs!r}")
    if arr.ndim != 1 or arr.size == 0:
        raise NtkodeError("eigenvalues must be a non-empty 1-D list")
    bad = arr[~np.isfinite(arr) | (arr <= 0)]
    if bad.size:
        raise NtkodeError(f"eigenvalues must be finite and > 0; got {', '.join(f'{b:g}' for b in bad[:5])}")
    tiny, eps = np.finfo(float).tiny, np.finfo(float).eps
    if arr.min() < tiny:
        raise NtkodeError(f"eigenvalue {arr.min():g} is below float64's smallest normal number {tiny:.3g}; "
                          "rescale the spectrum (and the step size with it)")
    if arr.max() / arr.min() > 1 / eps:
        raise NtkodeError(f"eigenvalues spread by {arr.max() / arr.min():.3g}, beyond float64's resolution 1/eps = "
                          f"{1 / eps:.3g}: the slowest rate rounds to 1")
    return arr


def spectral_radius(method, eigs: ArrayLike, **hyper: float) -> RateResult:
    """rho = max over eigs of max |root of p(z)| (time-varying methods: of lim_{k->inf} p, per step), p reduced
    at this setting where more of its modes stop reaching W (`setting_polynomial`; QHM at nu = 0 is GD); there
    `roots` are the reduced polynomial's padded with zeros to p's degree, as `roots_function` gives them.

    `method`: a built-in name, a .toml path or a Method; `hyper`: its hyper-parameters by declared name
    or alias (lr, momentum, momentum2 for the built-ins).
    """
    m = get_method(method)
    lam_ = check_eigs(eigs)
    values = m.scalar_hyper(hyper, hint="rate_function evaluates arrays")
    args = [values[n] for n in m.hyper_names]
    setting = tuple(args)
    with np.errstate(all="ignore"):  # overflow shows up as non-finite radii, refused below
        found = _reduced_at(m, setting)
        if found is None:
            coeffs = _coefficients(m, np)(lam_, *args)
        else:  # only the modes that still reach W at this setting
            coeffs = _reduced_coefficients(m, np, found, setting, lam_)
        roots = np.asarray(_padded_roots(np, coeffs, _rate_degree(m)))
        radius = np.asarray(_radius(np, coeffs), dtype=float)
    if not np.all(np.isfinite(radius)):
        raise NtkodeError(f"non-finite rate for {m.name} with {values}; check the hyper-parameters")
    i = int(np.argmax(radius))
    return RateResult(m.name, float(radius[i]), radius, roots, bool(radius[i] < 1), float(lam_[i]), lam_, values)
