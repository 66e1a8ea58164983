"""Derivation objects: everything theory/ derives for one method, cached, as LaTeX or JSON."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp
from sympy.printing.str import StrPrinter

from ntkode.declaration import Method
from ntkode.symbols import k, s

from .discrete import closed_form_roots, closed_form_rate, jury_conditions, rate_polynomial
from .methods import get_method
from .nesterov import nag_ode_dsolve
from .ode import (_scaled, asymptotic_coefficients, check_resolution, damping_regimes, decay_exponent, expansion,
                  ode_equation, ode_polynomial, optimal_damping, step_of_eta)


class _ParseablePrinter(StrPrinter):
    """str() whose output plain `sympy.sympify` parses back: beta, gamma are symbols here,
    not sympy's beta/gamma functions, so they print as Symbol('beta')."""

    def _print_Symbol(self, expr):
        return f"Symbol('{expr.name}')" if expr.name in _CLASHING else expr.name


_CLASHING = {"beta", "gamma"}


def to_string(expr: sp.Basic, parseable: bool = True) -> str:
    """A string that `sympy.sympify` turns back into `expr` (up to symbol assumptions);
    with parseable=False, plain `str` for people (beta, gamma printed bare)."""
    return _ParseablePrinter().doprint(expr) if parseable else str(expr)


def _json_value(value, parseable: bool):
    if isinstance(value, dict):
        return {key: _json_value(v, parseable) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v, parseable) for v in value]
    if isinstance(value, sp.Basic):
        return to_string(value, parseable)
    return value


@dataclass(frozen=True)
class Derivation:
    """Discrete analysis of one method (docs/theory.md#discrete, #state-space).

    transition: T(lam), one step in error coordinates; polynomial: p(z), det(zI - T) reduced to the
    modes that reach W (time-varying for nag); rate_polynomial: the one the rate uses (lim_{k->inf} p
    for nag); roots: its roots in closed form ([] when sympy finds none: numeric only); stability:
    Jury conditions; rate: max |root| in closed form; optimal: the declared closed-form optimum in
    lam_0, lam_max; tunings: the declared named tunings.
    """

    method: str
    transition: sp.Matrix
    polynomial: sp.Expr
    rate_polynomial: sp.Expr
    roots: list
    stability: sp.Boolean
    rate: sp.Expr
    optimal: dict = field(default_factory=dict)
    tunings: dict = field(default_factory=dict)
    notes: str = ""

    def latex(self) -> str:
        """One LaTeX line per result: T(lam), p(z), roots, stability, rate, optimum."""
        lines = [f"T(\\lambda) = {sp.latex(self.transition)}", f"p(z) = {sp.latex(self.polynomial)}"]
        if self.rate_polynomial != self.polynomial:
            lines.append(f"\\lim_{{k\\to\\infty}} p(z) = {sp.latex(self.rate_polynomial)}")
        lines += [f"z_{{{i + 1}}} = {sp.latex(root)}" for i, root in enumerate(self.roots)]
        lines.append(f"\\text{{stable}} \\iff {sp.latex(self.stability)}")
        lines.append(f"\\rho = {sp.latex(self.rate)}")
        lines += [f"{name}^* = {sp.latex(v)}" for name, v in self.optimal.items()]
        return "\n".join(lines)

    def to_json(self, parseable: bool = True) -> dict:
        """Every field as JSON; expressions as strings (`to_string`)."""
        return _json_value({"method": self.method, "transition": self.transition.tolist(),
                            "polynomial": self.polynomial, "rate_polynomial": self.rate_polynomial,
                            "roots": self.roots, "stability": self.stability, "rate": self.rate,
                            "optimal": self.optimal, "tunings": self.tunings, "notes": self.notes}, parseable)


@dataclass(frozen=True)
class OdeDerivation:
    """Limiting ODE of one method (docs/theory.md#ode, #nesterov) at low or high resolution.

    polynomial: monic characteristic polynomial in s (coefficients may depend on t);
    roots: its roots; exponent: decay exponent alpha(lam) (0 when sublinear); order:
    the sublinear order (r/2 for nag, 0 when linear); equation: the ODE for e(t).
    """

    method: str
    resolution: str
    time: str
    expansion: sp.Expr
    polynomial: sp.Expr
    roots: list
    exponent: sp.Expr
    order: sp.Expr
    equation: sp.Eq
    regimes: dict | None = None
    optimal_damping: dict | None = None
    solution: sp.Expr | None = None

    def latex(self) -> str:
        """One LaTeX line per result: time scale, expansion, ODE, roots, exponent, order."""
        lines = [f"{self.time}", f"p(e^{{sh}}) = {sp.latex(self.expansion)}",
                 f"{sp.latex(self.equation)}", f"P(s) = {sp.latex(self.polynomial)}"]
        lines += [f"s_{{{i + 1}}} = {sp.latex(root)}" for i, root in enumerate(self.roots)]
        lines += [f"\\alpha = {sp.latex(self.exponent)}", f"\\text{{order}} = {sp.latex(self.order)}"]
        if self.optimal_damping:
            lines.append(f"\\gamma^* = {sp.latex(self.optimal_damping['damping'])}, "
                         f"\\alpha^* = {sp.latex(self.optimal_damping['exponent'])}")
        if self.solution is not None:
            lines.append(f"e(t) = {sp.latex(self.solution)}")
        return "\n".join(lines)

    def to_json(self, parseable: bool = True) -> dict:
        """Every field as JSON; expressions as strings (`to_string`)."""
        return _json_value({"method": self.method, "resolution": self.resolution, "time": self.time,
                            "expansion": self.expansion, "polynomial": self.polynomial, "roots": self.roots,
                            "rate": self.exponent, "exponent": self.exponent, "order": self.order,
                            "equation": self.equation, "regimes": self.regimes,
                            "optimal_damping": self.optimal_damping, "solution": self.solution}, parseable)


def derive(method) -> Derivation:
    """Transition matrix, reduced characteristic polynomial, roots, Jury stability, closed-form rate and optimum."""
    return _derive(get_method(method))


@lru_cache(maxsize=None)
def _derive(m: Method) -> Derivation:
    poly = m.char_poly()
    limit = rate_polynomial(m)
    notes = m.notes
    if poly.has(k) and not notes:
        notes = "time-varying: the rate is that of lim_{k->inf} p(z)"
    roots = closed_form_roots(limit)
    if not roots:
        notes = (notes + "; " if notes else "") + f"no closed-form roots at degree {m.degree}: numeric only"
    return Derivation(m.name, m.transition, poly, limit, roots, jury_conditions(limit), closed_form_rate(limit),
                      dict(m.optimum), {n: dict(v) for n, v in m.tunings.items()}, notes)


def derive_ode(method, resolution: str = "low") -> OdeDerivation:
    """Limiting ODE by z = exp(s h) expansion, its roots, exponent, order and damping regimes."""
    check_resolution(resolution)
    return _derive_ode(_scaled(method), resolution)


@lru_cache(maxsize=None)
def _derive_ode(m: Method, resolution: str) -> OdeDerivation:
    order_h, p0, p1 = expansion(m)
    poly = ode_polynomial(m, resolution)
    roots = sp.roots(sp.Poly(poly, s), multiple=True)
    _, first = asymptotic_coefficients(m, resolution)
    order = sp.factor(first[-1] / 2) if len(first) == 2 else sp.Integer(0)
    time = f"h = {step_of_eta(m)}, t = {m.ode.time}, " + ", ".join(f"{a} = {b}" for a, b in m.ode.mapping().items())
    shown = p0 if resolution == "low" else p0 + sp.Symbol("h") * p1
    optimum = optimal_damping(m, resolution)
    solution = nag_ode_dsolve() if m.name == "nag" and m.source == "built-in" and resolution == "low" else None
    return OdeDerivation(
        m.name, resolution, time, sp.Symbol("h") ** order_h * shown, poly, roots,
        decay_exponent(m, resolution), order, ode_equation(m, resolution),
        damping_regimes(m) if resolution == "low" else None,
        {"damping": optimum[0], "exponent": optimum[1]} if optimum else None, solution,
    )


__all__ = ["Derivation", "OdeDerivation", "derive", "derive_ode"]
