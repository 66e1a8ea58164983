"""Derivation objects: everything theory/ derives for one method, cached, as LaTeX or JSON."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp
from sympy.printing.str import StrPrinter

from .discrete import closed_form_rate, jury_conditions, rate_polynomial
from .methods import get_method
from .nesterov import nag_ode_dsolve
from .ode import (asymptotic_coefficients, check_resolution, damping_regimes, decay_exponent, expansion,
                  ode_equation, ode_polynomial, optimal_damping, step_of_eta)
from .optimal import CLOSED_FORMS
from .symbols import k, s, z


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
    """Discrete analysis of one method (THEORY.md section 2).

    polynomial: p(z) (time-varying for nag); rate_polynomial: the one the rate uses
    (lim_{k->inf} p for nag); roots: its roots in closed form; stability: Jury conditions;
    rate: max |root| in closed form; optimal: closed-form optimum in lam_0, lam_max.
    """

    method: str
    polynomial: sp.Expr
    rate_polynomial: sp.Expr
    roots: list
    stability: sp.Boolean
    rate: sp.Expr
    optimal: dict = field(default_factory=dict)
    notes: str = ""

    def latex(self) -> str:
        """One LaTeX line per result: p(z), roots, stability, rate, optimum."""
        lines = [f"p(z) = {sp.latex(self.polynomial)}"]
        if self.rate_polynomial != self.polynomial:
            lines.append(f"\\lim_{{k\\to\\infty}} p(z) = {sp.latex(self.rate_polynomial)}")
        lines += [f"z_{{{i + 1}}} = {sp.latex(root)}" for i, root in enumerate(self.roots)]
        lines.append(f"\\text{{stable}} \\iff {sp.latex(self.stability)}")
        lines.append(f"\\rho = {sp.latex(self.rate)}")
        lines += [f"{name}^* = {sp.latex(v)}" for name, v in self.optimal.items()]
        return "\n".join(lines)

    def to_json(self, parseable: bool = True) -> dict:
        """Every field as JSON; expressions as strings (`to_string`)."""
        return _json_value({"method": self.method, "polynomial": self.polynomial,
                            "rate_polynomial": self.rate_polynomial, "roots": self.roots,
                            "stability": self.stability, "rate": self.rate, "optimal": self.optimal,
                            "notes": self.notes}, parseable)


@dataclass(frozen=True)
class OdeDerivation:
    """Limiting ODE of one method (THEORY.md sections 3-4) at low or high resolution.

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


@lru_cache(maxsize=None)
def derive(method: str) -> Derivation:
    """Characteristic polynomial, roots, Jury stability, closed-form rate and optimum."""
    m = get_method(method)
    poly = m.char_poly()
    limit = rate_polynomial(method)
    roots = sp.roots(sp.Poly(limit, z), cubics=True, multiple=True)
    notes = m.notes
    if poly.has(k):
        notes = "time-varying: the rate is that of lim_{k->inf} p(z) (beta_k -> 1): sqrt(1 - eta lam) for 0 < eta lam <= 1"
    return Derivation(method, poly, limit, roots, jury_conditions(limit), closed_form_rate(limit),
                      dict(CLOSED_FORMS.get(method, {})), notes)


@lru_cache(maxsize=None)
def derive_ode(method: str, resolution: str = "low") -> OdeDerivation:
    """Limiting ODE by z = exp(s h) expansion, its roots, exponent, order and damping regimes."""
    check_resolution(resolution)
    m = get_method(method)
    order_h, p0, p1 = expansion(method)
    poly = ode_polynomial(method, resolution)
    roots = sp.roots(sp.Poly(poly, s), multiple=True)
    _, first = asymptotic_coefficients(method, resolution)
    order = sp.factor(first[-1] / 2) if len(first) == 2 else sp.Integer(0)
    time = f"h = {step_of_eta(method)}, t = k h, " + ", ".join(f"{a} = {b}" for a, b in m.ode_scaling.items())
    shown = p0 if resolution == "low" else p0 + sp.Symbol("h") * p1
    optimum = optimal_damping(method)
    return OdeDerivation(
        method, resolution, time, sp.Symbol("h") ** order_h * shown, poly, roots,
        decay_exponent(method, resolution), order, ode_equation(method, resolution),
        damping_regimes(method) if resolution == "low" else None,
        {"damping": optimum[0], "exponent": optimum[1]} if optimum else None,
        nag_ode_dsolve() if method == "nag" and resolution == "low" else None,
    )


__all__ = ["Derivation", "OdeDerivation", "derive", "derive_ode"]
