"""Method declarations: any linear first-order method as a state-space recursion with gradient feedback.

A declaration (a TOML file, a dict, or one of the built-ins shipped in `ntkode/methods/`) names
its hyper-parameters with their domains, its state variables with their initial values (`W0` or
`0`; `W`, the weights, is required), optionally its documentation ([about]: algorithm, guarantee,
references), and the statements of one step, executed in order:

    step = ["g = grad(W)", "d = beta*d + (1 - beta)*g", "W = W - alpha*((1 - nu)*g + nu*d)"]

Each statement assigns linear combinations of the variables (and of gradients `grad(y)`, taken at
points y that are themselves linear combinations) to one variable or, as a Python tuple
assignment, to several at once. Coefficients may depend on the hyper-parameters and on the step
counter k = 1, 2, ...

`compile_step` turns the statements into an op program (`GradOp`, `AssignOp`) that both layers
execute: `ntkode.theory` symbolically, with grad(y) = lam * y in error coordinates, which gives the
one-step matrix T(lam) (docs/theory.md#state-space); `ntkode.numerics` on arrays, with the
network's gradient. Validity is checked by weights: a `W0` state is a point (weight 1), a `0` state
a direction (weight 0); every update keeps its state's weight, a temporary is a point or a
direction, and a gradient is taken at a point. This is what makes a minimiser a fixed point and
the error-coordinate analysis exact.
"""
from __future__ import annotations

import ast
import difflib
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any, Mapping

import numpy as np
import sympy as sp

from .errors import NtkodeError
from .symbols import RESERVED, h, k, lam, lam_0, lam_max, t, z

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TOP_KEYS = ("name", "title", "reference", "notes", "about", "step", "hyper", "state", "ode", "optimum", "tuning")
#: the PEPit-style sections of [about] (docs/theory.md#state-space): text, text, list of texts
ABOUT_KEYS = ("algorithm", "guarantee", "references")
INITIAL_VALUES = {"W0": 1, "0": 0}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOMAIN = re.compile(r"^\s*([\[(])\s*([^,]+?)\s*,\s*([^,]+?)\s*([\])])\s*$")


def _suggest(word: str, known) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- hyper-parameters -----------------------------------------------------------------------------

def _bound(text: str, where: str) -> float:
    text = text.strip().lower()
    if text in ("inf", "+inf", "oo"):
        return math.inf
    if text in ("-inf", "-oo"):
        return -math.inf
    try:
        return float(text)
    except ValueError:
        raise NtkodeError(f"{where}: bound {text!r} is not a number or inf") from None


@dataclass(frozen=True)
class Hyper:
    """A hyper-parameter: its declared name and sympy symbol, domain (interval), optional alias and help."""

    name: str
    symbol: sp.Symbol
    low: float
    high: float
    low_closed: bool
    high_closed: bool
    alias: str | None = None
    help: str = ""

    @classmethod
    def parse(cls, name: str, spec: Any, where: str) -> "Hyper":
        """From `"[0, 1)"` or `{domain = "[0, 1)", alias = "momentum", help = "..."}`."""
        if not _IDENT.match(name) or name in RESERVED:
            raise NtkodeError(f"{where}: {name!r} is not a usable hyper-parameter name (reserved or not an identifier)")
        if isinstance(spec, str):
            spec = {"domain": spec}
        if not isinstance(spec, Mapping) or "domain" not in spec:
            raise NtkodeError(f"{where}: hyper-parameter {name!r} needs a domain such as \"(0, inf)\" or \"[0, 1)\"")
        unknown = set(spec) - {"domain", "alias", "help"}
        if unknown:
            raise NtkodeError(f"{where}: hyper-parameter {name!r} has unknown keys {sorted(unknown)}; "
                              "allowed: domain, alias, help")
        match = _DOMAIN.match(str(spec["domain"]))
        if not match:
            raise NtkodeError(f"{where}: domain {spec['domain']!r} of {name!r} is not an interval such as \"[0, 1)\"")
        low, high = _bound(match.group(2), where), _bound(match.group(3), where)
        if not low < high:
            raise NtkodeError(f"{where}: domain {spec['domain']!r} of {name!r} is empty")
        alias = spec.get("alias")
        if alias is not None and (not _IDENT.match(str(alias)) or alias in RESERVED):
            raise NtkodeError(f"{where}: alias {alias!r} of {name!r} is not a usable name")
        positive = low >= 0 and math.isinf(high)
        symbol = sp.Symbol(name, positive=True) if positive else sp.Symbol(name, real=True)
        return cls(name, symbol, low, high, match.group(1) == "[", match.group(4) == "]", alias, str(spec.get("help", "")))

    @property
    def label(self) -> str:
        """The name a user types: the alias when there is one."""
        return self.alias or self.name

    def domain(self) -> str:
        """The admissible interval as text, e.g. [0, 1)."""
        def show(x: float) -> str:
            return ("-inf" if x < 0 else "inf") if math.isinf(x) else f"{x:g}"
        return f"{'[' if self.low_closed else '('}{show(self.low)}, {show(self.high)}{']' if self.high_closed else ')'}"

    def contains(self, value):
        """Elementwise: whether value lies in the domain."""
        arr = np.asarray(value, dtype=float)
        low_ok = arr >= self.low if self.low_closed else arr > self.low
        high_ok = arr <= self.high if self.high_closed else arr < self.high
        return np.isfinite(arr) & low_ok & high_ok

    def check(self, value):
        """`value` as a float64 array, or NtkodeError naming the hyper-parameter and its domain."""
        if isinstance(value, (str, bytes)) or np.iscomplexobj(value) or np.asarray(value).dtype == bool:
            raise NtkodeError(f"{self.label} must be a real number in {self.domain()}; got {value!r}",
                              param=f"hyper:{self.label}")
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise NtkodeError(f"{self.label} must be a real number in {self.domain()}; got {value!r}",
                              param=f"hyper:{self.label}") from None
        if not np.all(self.contains(arr)):
            raise NtkodeError(f"{self.label} must lie in {self.domain()}; got {value!r}", param=f"hyper:{self.label}")
        return arr


# -- statements and the op program ------------------------------------------------------------------

Combo = tuple  # ((variable name, sympy coefficient), ...): sum of coefficient * variable


@dataclass(frozen=True)
class GradOp:
    """target = grad(point), point a linear combination of the variables (a point: weight 1)."""

    target: str
    point: Combo
    statement: int


@dataclass(frozen=True)
class AssignOp:
    """targets = values, all values evaluated before any target is assigned (tuple assignment)."""

    targets: tuple[str, ...]
    values: tuple[Combo, ...]
    statement: int


#: functions a coefficient may use (of hyper-parameters and the step counter k only)
COEFFICIENT_FUNCTIONS = {"sqrt": sp.sqrt, "Min": sp.Min, "Max": sp.Max, "min": sp.Min, "max": sp.Max}


class _Compiler:
    """Turns the step's statements into ops, checking syntax, linearity, symbols and weights."""

    def __init__(self, statements: list[str], hypers: dict[str, Hyper], states: dict[str, int]):
        self.statements, self.hypers, self.states = statements, hypers, states
        self.weight: dict[str, int] = dict(states)  # current variables: name -> 1 (point) or 0 (direction)
        self.ops: list = []
        self.grads = 0
        self.coefficients: dict[str, sp.Expr] = {}  # names defined by 'mu = (k - 1)/(k + r - 1)'
        self.used: set[str] = set()
        self.placeholders: dict[str, sp.Symbol] = {}

    def fail(self, i: int, why: str) -> NtkodeError:
        return NtkodeError(f"statement {i + 1} {self.statements[i]!r}: {why}")

    def placeholder(self, name: str) -> sp.Symbol:
        return self.placeholders.setdefault(name, sp.Dummy(name))

    def run(self) -> tuple:
        for i, text in enumerate(self.statements):
            if not isinstance(text, str) or not text.strip():
                raise NtkodeError(f"statement {i + 1} must be a non-empty string; got {text!r}")
            self.statement(i, text)
        if "W" not in {t for op in self.ops if isinstance(op, AssignOp) for t in op.targets}:
            raise NtkodeError("the step never assigns W, so nothing is trained")
        unused = [n for n in self.hypers if n not in self.used]
        if unused:
            raise NtkodeError(f"hyper-parameter(s) {', '.join(unused)} are declared but never used in the step")
        return tuple(self.ops)

    def statement(self, i: int, text: str) -> None:
        try:
            tree = ast.parse(text.strip(), mode="exec")
        except SyntaxError as err:
            raise self.fail(i, f"syntax error ({err.msg})") from None
        if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.Assign, ast.AugAssign)):
            raise self.fail(i, "must be one assignment such as 'W = W - eta*grad(W)'")
        node = tree.body[0]
        if isinstance(node, ast.AugAssign):
            if not isinstance(node.target, ast.Name) or not isinstance(node.op, (ast.Add, ast.Sub)):
                raise self.fail(i, "only 'x += ...' and 'x -= ...' are allowed as augmented assignments")
            value = ast.BinOp(left=ast.Name(id=node.target.id, ctx=ast.Load()), op=node.op, right=node.value)
            targets, values = [node.target.id], [value]
        else:
            if len(node.targets) != 1:
                raise self.fail(i, "chained assignment (a = b = ...) is not allowed")
            targets, values = self.unpack(i, node.targets[0], node.value)
            if len(targets) == 1 and self.define_coefficient(i, targets[0], values[0]):
                return
        combos = [self.combo(i, v) for v in values]
        weights = [self.combo_weight(i, c) for c in combos]
        for name, w in zip(targets, weights):
            self.assign_weight(i, name, w)
        self.ops.append(AssignOp(tuple(targets), tuple(combos), i))

    def unpack(self, i: int, target, value) -> tuple[list[str], list]:
        if isinstance(target, ast.Name):
            return [target.id], [value]
        if isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
            if not isinstance(value, ast.Tuple) or len(value.elts) != len(target.elts):
                raise self.fail(i, f"assigns {len(target.elts)} names but does not give as many values")
            names = [e.id for e in target.elts]
            if len(set(names)) != len(names):
                raise self.fail(i, "assigns the same name twice")
            return names, list(value.elts)
        raise self.fail(i, "can only assign to names (e.g. 'W' or 'W, W_prev')")

    def define_coefficient(self, i: int, name: str, node) -> bool:
        """`name = expression` without variables or gradients names a coefficient for later statements."""
        if any(isinstance(n, ast.Name) and (n.id in self.weight or n.id == "grad") for n in ast.walk(node)):
            return False
        if name in self.weight or name in self.states or name in self.hypers or name in RESERVED \
                or name in self.coefficients or not _IDENT.match(name):
            raise self.fail(i, f"cannot define the coefficient {name!r}: the name is taken or reserved")
        self.coefficients[name] = self.expr(i, node)
        return True

    def assign_weight(self, i: int, name: str, w: int) -> None:
        if name in self.coefficients:
            raise self.fail(i, f"{name!r} names a coefficient; it cannot also be a variable")
        if name in RESERVED or name in self.hypers or not _IDENT.match(name):
            raise self.fail(i, f"cannot assign to {name!r}: it is reserved or a hyper-parameter")
        if name in self.states and w != self.states[name]:
            kind = "a point (initial value W0)" if self.states[name] else "a direction (initial value 0)"
            raise self.fail(i, f"{name!r} is {kind} but is assigned a combination of weight {w}; "
                               "the coefficients on points must sum to 1 for a point and to 0 for a direction")
        self.weight[name] = w

    def combo(self, i: int, node) -> Combo:
        """A linear combination (name, coefficient) of current variables; grad calls become ops first."""
        expr = sp.expand(self.expr(i, node))
        names = {self.placeholder(n): n for n in self.weight}
        variables = [s for s in expr.free_symbols if s in names]
        if not variables:
            raise self.fail(i, "the right-hand side must involve the variables (a constant is not a valid update)")
        try:
            poly = sp.Poly(expr, *variables)
        except sp.PolynomialError:
            raise self.fail(i, "is not linear in the variables (a variable in a denominator or a function)") from None
        terms = []
        for monom, coef in poly.terms():
            if sum(monom) != 1:
                what = "a constant term" if sum(monom) == 0 else "a product of variables"
                raise self.fail(i, f"is not linear in the variables: it has {what}")
            terms.append((names[variables[monom.index(1)]], sp.factor(sp.cancel(coef))))
        order = {n: j for j, n in enumerate(self.weight)}
        return tuple(sorted(((n, c) for n, c in terms if c != 0), key=lambda nc: order[nc[0]]))

    def combo_weight(self, i: int, combo: Combo) -> int:
        w = sp.simplify(sum(c * self.weight[n] for n, c in combo))
        if w not in (0, 1):
            raise self.fail(i, f"its coefficients on points sum to {w}, so it is neither a point (1) nor a "
                               "direction (0): the minimiser would not be a fixed point")
        return int(w)

    def expr(self, i: int, node) -> sp.Expr:
        if isinstance(node, ast.BinOp):
            ops = {ast.Add: sp.Add, ast.Sub: lambda a, b: a - b, ast.Mult: sp.Mul, ast.Div: lambda a, b: a / b,
                   ast.Pow: sp.Pow}
            if type(node.op) not in ops:
                raise self.fail(i, f"operator {type(node.op).__name__} is not allowed (use + - * / **)")
            return ops[type(node.op)](self.expr(i, node.left), self.expr(i, node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.expr(i, node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return sp.Rational(str(node.value)) if math.isfinite(node.value) else sp.nan
        if isinstance(node, ast.Name):
            return self.name(i, node.id)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            return self.call(i, node)
        raise self.fail(i, f"unsupported syntax {ast.unparse(node)!r}")

    def name(self, i: int, name: str) -> sp.Expr:
        if name in self.weight:
            return self.placeholder(name)
        if name in self.hypers:
            self.used.add(name)
            return self.hypers[name].symbol
        if name == "k":
            return k
        if name in self.coefficients:
            return self.coefficients[name]
        known = list(self.weight) + list(self.hypers) + ["k"]
        assigned_later = any(re.search(rf"\b{re.escape(name)}\s*(,[^=]*)?=", s) for s in self.statements[i + 1:])
        if assigned_later:
            raise self.fail(i, f"{name!r} is read before it is assigned; declare it in [state] with an initial "
                               "value, or assign it earlier in the step")
        raise self.fail(i, f"unknown symbol {name!r}{_suggest(name, known)}; known: {', '.join(known)}")

    def call(self, i: int, node: ast.Call) -> sp.Expr:
        func = node.func.id
        if func in COEFFICIENT_FUNCTIONS:
            args = [self.expr(i, a) for a in node.args]
            if not args or any(s in self.placeholders.values() for a in args for s in a.free_symbols):
                raise self.fail(i, f"{func}(...) takes coefficients (hyper-parameters, k, numbers), not variables")
            return COEFFICIENT_FUNCTIONS[func](*args)
        if func != "grad":
            raise self.fail(i, f"unknown function {func!r}; allowed: grad(...) and, on coefficients, "
                               f"{', '.join(COEFFICIENT_FUNCTIONS)}")
        if len(node.args) != 1:
            raise self.fail(i, "grad takes exactly one argument, the point where the gradient is taken")
        point = self.combo(i, node.args[0])
        if self.combo_weight(i, point) != 1:
            raise self.fail(i, f"grad is taken at {ast.unparse(node.args[0])!r}, which is a direction, not a point "
                               "(its coefficients on points must sum to 1)")
        self.grads += 1
        target = f"grad#{self.grads}"
        self.ops.append(GradOp(target, point, i))
        self.weight[target] = 0
        return self.placeholder(target)


# -- the ODE scaling ------------------------------------------------------------------------------

@dataclass(frozen=True)
class OdeScaling:
    """t = time(k, h) and hyper = f(h, new names) substitutions giving the ODE limit h -> 0."""

    time: sp.Expr
    substitutions: tuple[tuple[sp.Symbol, sp.Expr], ...]
    new: tuple[Hyper, ...]

    def mapping(self) -> dict[sp.Symbol, sp.Expr]:
        """{hyper symbol: expression in h, ...; k: t/h} (k solved from `time`)."""
        solved = sp.solve(sp.Eq(t, self.time), k)
        return {**dict(self.substitutions), k: solved[0]}

    @property
    def step_hyper(self) -> sp.Symbol:
        """The hyper-parameter that fixes h, given the new ODE names: its substitution involves h and
        only new names (eta = h**2 for heavy ball; alpha = h/gamma for QHM)."""
        new = {hp.symbol for hp in self.new}
        return next(sym for sym, expr in self.substitutions if h in expr.free_symbols and expr.free_symbols <= new | {h})


def _parse_ode(spec: Any, hypers: dict[str, Hyper]) -> OdeScaling | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise NtkodeError("[ode] must be a table of substitutions such as time = \"k*h\", eta = \"h**2\"")
    spec = dict(spec)
    new_specs = spec.pop("hyper", {})
    if "time" not in spec:
        raise NtkodeError("[ode] needs time = \"k*h\" (how the step counter k maps to the ODE time t)")
    local = {"k": k, "h": h, **{n: hp.symbol for n, hp in hypers.items()}}
    time = _sympify(spec.pop("time"), local, "[ode] time")
    if not time.has(k) or not time.has(h) or len(sp.solve(sp.Eq(t, time), k)) != 1:
        raise NtkodeError(f"[ode] time = {time} must determine k from t and h, e.g. \"k*h\"")
    if not isinstance(new_specs, Mapping):
        raise NtkodeError("[ode.hyper] must be a table of domains of the new ODE hyper-parameters")
    new: dict[str, Hyper] = {}

    def introduce(name: str) -> sp.Symbol:
        new[name] = Hyper.parse(name, new_specs.get(name, "[0, inf)"), "[ode.hyper]")
        return new[name].symbol

    subs = []
    for name, text in spec.items():
        if name not in hypers:
            raise NtkodeError(f"[ode] substitutes {name!r}, which is not a hyper-parameter{_suggest(name, hypers)}")
        subs.append((hypers[name].symbol, _sympify(text, local, f"[ode] {name}", introduce)))
    unknown = set(new_specs) - set(new)
    if unknown:
        raise NtkodeError(f"[ode.hyper] declares {sorted(unknown)}, which no [ode] substitution introduces")
    new_symbols = {hp.symbol for hp in new.values()}
    if not any(h in e.free_symbols and e.free_symbols <= new_symbols | {h} for _, e in subs):
        raise NtkodeError("[ode] must tie one hyper-parameter (the step size) to h and new names only, "
                          "e.g. eta = \"h**2\"")
    return OdeScaling(time, tuple(subs), tuple(new.values()))


def _sympify(text: Any, local: dict, where: str, introduce=None) -> sp.Expr:
    """sympify `text` with every name bound explicitly (so that beta or gamma never mean sympy's functions);
    a name not in `local` is refused, or bound to `introduce(name)` when that is given."""
    if not isinstance(text, str):
        raise NtkodeError(f"{where}: expected an expression as a string; got {text!r}")
    try:
        names = {node.id for node in ast.walk(ast.parse(text.strip(), mode="eval")) if isinstance(node, ast.Name)}
    except SyntaxError:
        raise NtkodeError(f"{where}: cannot read the expression {text!r}") from None
    for name in sorted(names - set(local) - set(_FUNCTIONS)):
        if introduce is None or not _IDENT.match(name) or name in RESERVED:
            raise NtkodeError(f"{where}: unknown symbol {name!r} in {text!r}{_suggest(name, local)}")
        local[name] = introduce(name)
    try:
        expr = sp.sympify(text, locals={**_FUNCTIONS, **local})
    except (sp.SympifyError, SyntaxError, TypeError, AttributeError, ValueError):
        raise NtkodeError(f"{where}: cannot read the expression {text!r}") from None
    if not isinstance(expr, sp.Expr):
        raise NtkodeError(f"{where}: {text!r} is not an expression")
    return expr


_FUNCTIONS = {"sqrt": sp.sqrt, "pi": sp.pi}


def _closed_forms(spec: Any, hypers: dict[str, Hyper], where: str) -> dict[str, sp.Expr]:
    """{hyper name or 'rate': expression in lam_0, lam_max} from an [optimum] or [tuning.X] table."""
    if not isinstance(spec, Mapping):
        raise NtkodeError(f"[{where}] must be a table of expressions in lam_0 and lam_max")
    out = {}
    for name, text in spec.items():
        if name not in hypers and name != "rate":
            raise NtkodeError(f"[{where}] sets {name!r}, which is not a hyper-parameter{_suggest(name, hypers)}")
        out[name] = _sympify(text, {"lam_0": lam_0, "lam_max": lam_max}, f"[{where}] {name}")
    return out


# -- the method -----------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Method:
    """One declared optimiser (docs/theory.md#state-space).

    Algorithm: the statements `step`, executed in order each step k = 1, 2, ..., on the state
    variables `states` (name, initial value W0 or 0). Everything else derives from `ops`.
    `algorithm`, `guarantee` and `references` are the declaration's [about] sections: its documentation,
    as in PEPit's examples (docs/theory.md#library).
    """

    name: str
    title: str
    reference: str
    notes: str
    step: tuple[str, ...]
    hyper: tuple[Hyper, ...]
    states: tuple[tuple[str, str], ...]
    ops: tuple
    ode: OdeScaling | None
    optimum: Mapping[str, sp.Expr] = field(default_factory=dict)
    tunings: Mapping[str, Mapping[str, sp.Expr]] = field(default_factory=dict)
    source: str = "built-in"
    fingerprint: str = ""
    declaration: Mapping[str, Any] = field(default_factory=dict)
    algorithm: str = ""
    guarantee: str = ""
    references: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Method) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Method({self.name!r}, source={self.source!r})"

    def __reduce__(self):
        """Pickled as its declaration (compiled functions do not travel to worker processes)."""
        return (Method.from_dict, (self.declaration, self.source, self.source == "built-in"))

    # construction --------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], source: str = "dict", builtin: bool = False) -> "Method":
        """A method from a declaration dict (the TOML file's tables); NtkodeError naming what is wrong."""
        if not isinstance(spec, Mapping):
            raise NtkodeError(f"a method declaration must be a table; got {type(spec).__name__}")
        unknown = [key for key in spec if key not in TOP_KEYS]
        if unknown:
            raise NtkodeError(f"unknown key {unknown[0]!r}{_suggest(unknown[0], TOP_KEYS)} in the declaration; "
                              f"allowed: {', '.join(TOP_KEYS)}")
        for key in ("name", "step", "hyper", "state"):
            if key not in spec:
                raise NtkodeError(f"the declaration needs {key!r}")
        name = spec["name"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise NtkodeError(f"name must be letters, digits, '-' or '_'; got {name!r}")
        if not builtin and name in builtin_names():
            raise NtkodeError(f"name {name!r} shadows a built-in method; choose another name")
        step = spec["step"]
        if isinstance(step, str) or not isinstance(step, (list, tuple)) or not step:
            raise NtkodeError("step must be a non-empty list of statements such as [\"W = W - eta*grad(W)\"]")
        if not isinstance(spec["hyper"], Mapping) or not isinstance(spec["state"], Mapping):
            raise NtkodeError("[hyper] and [state] must be tables")
        hypers = {n: Hyper.parse(n, v, "[hyper]") for n, v in spec["hyper"].items()}
        _check_aliases(hypers)
        states = _parse_states(spec["state"], hypers)
        ops = _Compiler(list(step), hypers, dict(states)).run()
        ode = _parse_ode(spec.get("ode"), hypers)
        tunings_spec = spec.get("tuning", {})
        if not isinstance(tunings_spec, Mapping):
            raise NtkodeError("[tuning] must hold named tables, e.g. [tuning.standard]")
        tunings = {n: _closed_forms(v, hypers, f"tuning.{n}") for n, v in tunings_spec.items()}
        optimum = _closed_forms(spec["optimum"], hypers, "optimum") if "optimum" in spec else {}
        about = _parse_about(spec.get("about", {}))
        digest = hashlib.sha256(json.dumps(_plain(spec), sort_keys=True).encode()).hexdigest()
        text = {key: str(spec.get(key, "")) for key in ("title", "reference", "notes")}
        return cls(name=name, title=text["title"] or name, reference=text["reference"], notes=text["notes"],
                   step=tuple(step), hyper=tuple(hypers.values()), states=tuple((n, v) for n, v in spec["state"].items()),
                   ops=ops, ode=ode, optimum=optimum, tunings=tunings, source=source, fingerprint=digest,
                   declaration=_plain(spec), **about)

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "Method":
        """A method from a TOML declaration file."""
        return _load_toml(os.path.abspath(os.fspath(path)))

    # hyper-parameters ----------------------------------------------------------------------------
    @property
    def hyper_names(self) -> tuple[str, ...]:
        """Declared hyper-parameter names, in declaration order."""
        return tuple(hp.name for hp in self.hyper)

    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        """Hyper-parameter symbols, in declaration order (the compiled functions' argument order)."""
        return tuple(hp.symbol for hp in self.hyper)

    def find_hyper(self, key: str, ode: bool = False) -> Hyper:
        """The hyper-parameter called `key` (declared name or alias), or NtkodeError with a suggestion."""
        pool = self.hyper + (self.ode.new if (ode and self.ode) else ())
        for hp in pool:
            if key in (hp.name, hp.alias):
                return hp
        names = [hp.label for hp in pool] + [hp.name for hp in pool if hp.alias]
        raise NtkodeError(f"method {self.name!r} has no hyper-parameter {key!r}{_suggest(key, names)}; "
                          f"it takes {', '.join(hp.label for hp in pool)}", param="hyper")

    def check_hyper(self, given: Mapping[str, Any], needed: tuple[Hyper, ...] | None = None,
                    ode: bool = False) -> dict[str, Any]:
        """{declared name: float array} for `needed` (default: every declared hyper-parameter).

        Keys may be declared names or aliases; an unknown key, one given twice, a missing one
        or a value outside its domain is an NtkodeError naming it.
        """
        values: dict[str, Any] = {}
        for key, value in given.items():
            if value is None:
                continue
            hp = self.find_hyper(key, ode=ode)
            if hp.name in values:
                raise NtkodeError(f"hyper-parameter {hp.label!r} is given twice (as {hp.name} and {hp.alias})",
                                  param=f"hyper:{hp.label}")
            values[hp.name] = hp.check(value)
        needed = self.hyper if needed is None else needed
        missing = [hp.label for hp in needed if hp.name not in values]
        if missing:
            raise NtkodeError(f"method {self.name!r} needs {', '.join(missing)}", param=f"hyper:{missing[0]}")
        extra = [n for n in values if n not in {hp.name for hp in needed}]
        if extra:
            labels = [self.find_hyper(n, ode=ode).label for n in extra]
            raise NtkodeError(f"method {self.name!r} does not use {', '.join(labels)} here; it takes "
                              f"{', '.join(hp.label for hp in needed) or 'none'}", param=f"hyper:{labels[0]}")
        return values

    def scalar_hyper(self, given: Mapping[str, Any], where: str = "here", hint: str = "") -> dict[str, float]:
        """`check_hyper`, each value also a single number: {declared name: float} in declared order."""
        values = self.check_hyper(given)
        for name, value in values.items():
            if np.ndim(value) != 0:
                label = self.find_hyper(name).label
                raise NtkodeError(f"{label} must be a single number {where}; got an array of shape {np.shape(value)}"
                                  + (f" ({hint})" if hint else ""), param=f"hyper:{label}")
        return {name: float(values[name]) for name in self.hyper_names}

    # derived structure ---------------------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.states)

    @property
    def initial(self) -> tuple[int, ...]:
        """Per state: 1 for a point starting at W0, 0 for a direction starting at 0."""
        return tuple(INITIAL_VALUES[v] for _, v in self.states)

    @property
    def time_varying(self) -> bool:
        """Whether a coefficient depends on the step counter k."""
        return any(c.has(k) for op in self.ops for combo in _combos(op) for _, c in combo)

    @cached_property
    def transition(self) -> sp.Matrix:
        """T(lam): one step in error coordinates, grad(y) = lam * y (docs/theory.md#state-space)."""
        names = self.state_names
        basis = {n: sp.Matrix([[1 if j == i else 0 for j in range(len(names))]]) for i, n in enumerate(names)}
        env = dict(basis)

        def value(combo: Combo) -> sp.Matrix:
            return sum((c * env[n] for n, c in combo), sp.zeros(1, len(names)))

        for op in self.ops:
            if isinstance(op, GradOp):
                env[op.target] = lam * value(op.point)
            else:
                new = [value(c) for c in op.values]
                env.update(zip(op.targets, new))
        return sp.Matrix.vstack(*[env[n] for n in names]).applyfunc(lambda e: sp.factor(sp.cancel(e)))

    @cached_property
    def transfer(self) -> tuple[sp.Expr, sp.Expr]:
        """(N(z), D(z)), both monic in z: W's z-transform W(z) = z N/D = z c^T adj(zI - T) x_0 / det(zI - T)
        with the factors common to numerator and denominator for generic hyper-parameters cancelled
        (docs/theory.md#state-space). D is `char_poly`."""
        T = self.transition
        n = T.shape[0]
        x0 = sp.Matrix(self.initial)
        row = sp.Matrix([[1 if name == "W" else 0 for name in self.state_names]])
        M = z * sp.eye(n) - T
        num = sp.expand((row * M.adjugate() * x0)[0])
        den = sp.expand(M.det())
        return tuple(_monic(part) for part in sp.fraction(sp.cancel(num / den)))

    @cached_property
    def _reduced(self) -> tuple[sp.Expr, int]:
        """(monic reduced polynomial in z, full degree): the poles of W's z-transform after cancellation."""
        return self.transfer[1], self.transition.shape[0]

    def char_poly(self) -> sp.Expr:
        """p(z): det(zI - T(lam)) reduced to the modes that reach W from the initial state, monic."""
        return self._reduced[0]

    @property
    def degree(self) -> int:
        """Degree of the reduced characteristic polynomial (the order of W's recurrence)."""
        return int(sp.degree(self.char_poly(), z))

    @cached_property
    def step_size_hypers(self) -> tuple[str, ...]:
        """Hyper-parameters that act as step sizes: p(z) depends on them only through their product with lam,
        so scaling the kernel H -> cH is the same as scaling them by c (docs/theory.md#property-tests)."""
        c = sp.Symbol("c", positive=True)
        p = self.char_poly()
        return tuple(hp.name for hp in self.hyper
                     if sp.simplify(p.subs({hp.symbol: c * hp.symbol, lam: lam / c}, simultaneous=True) - p) == 0)

    @cached_property
    def numeric_ops(self) -> tuple:
        """Per op: (op, fn, varies) with fn(k, *hyper) -> per combination, its coefficients (numbers or arrays
        broadcast over runs), compiled once; varies: whether a coefficient depends on the step k."""
        out = []
        for op in self.ops:
            coefs = [[c for _, c in combo] for combo in _combos(op)]
            fn = sp.lambdify((k, *self.symbols), coefs, modules="numpy")
            out.append((op, fn, any(c.has(k) for row in coefs for c in row)))
        return tuple(out)

    def to_toml(self) -> str:
        """The declaration's TOML text (for `ntkode methods NAME`): the shipped file, or the user's."""
        if self.source == "built-in":
            return _builtin_text(self.name)
        if not os.path.isfile(self.source):
            raise NtkodeError(f"method {self.name!r} was declared from a {self.source}, not a file")
        with open(self.source, encoding="utf-8") as handle:
            return handle.read()


def _monic(expr: sp.Expr) -> sp.Expr:
    """expr / its leading coefficient in z, as sum c_i z^i with each c_i factored."""
    poly = sp.Poly(expr, z)
    coeffs = [sp.factor(sp.cancel(c / poly.LC())) for c in poly.all_coeffs()]
    degree = len(coeffs) - 1
    return sum(c * z ** (degree - i) for i, c in enumerate(coeffs))


def _combos(op) -> tuple:
    return (op.point,) if isinstance(op, GradOp) else op.values


def _check_aliases(hypers: dict[str, Hyper]) -> None:
    labels: dict[str, str] = {}
    for hp in hypers.values():
        for label in filter(None, (hp.name, hp.alias)):
            if label in labels and labels[label] != hp.name:
                raise NtkodeError(f"[hyper]: {label!r} names both {labels[label]!r} and {hp.name!r}")
            labels[label] = hp.name


def _parse_about(spec: Any) -> dict[str, Any]:
    """The [about] sections: algorithm and guarantee as text, references as a list of texts (all optional)."""
    if not isinstance(spec, Mapping):
        raise NtkodeError("[about] must be a table with algorithm, guarantee and references")
    unknown = [key for key in spec if key not in ABOUT_KEYS]
    if unknown:
        raise NtkodeError(f"[about]: unknown key {unknown[0]!r}{_suggest(unknown[0], ABOUT_KEYS)}; "
                          f"allowed: {', '.join(ABOUT_KEYS)}")
    for key in ("algorithm", "guarantee"):
        if not isinstance(spec.get(key, ""), str):
            raise NtkodeError(f"[about] {key} must be a string; got {type(spec[key]).__name__}")
    references = spec.get("references", [])
    if isinstance(references, str) or not isinstance(references, (list, tuple)) \
            or not all(isinstance(r, str) and r.strip() for r in references):
        raise NtkodeError("[about] references must be a list of non-empty strings, e.g. [\"Polyak 1964\"]")
    return {"algorithm": spec.get("algorithm", "").strip(), "guarantee": spec.get("guarantee", "").strip(),
            "references": tuple(r.strip() for r in references)}


def _parse_states(spec: Mapping[str, Any], hypers: dict[str, Hyper]) -> dict[str, int]:
    if "W" not in spec:
        raise NtkodeError("[state] must declare W (the weights), e.g. W = \"W0\"")
    states = {}
    for name, init in spec.items():
        if not _IDENT.match(name) or name in RESERVED or name in hypers or "#" in name:
            raise NtkodeError(f"[state]: {name!r} is not a usable variable name (reserved, a hyper-parameter, "
                              "or not an identifier)")
        if init not in INITIAL_VALUES:
            raise NtkodeError(f"[state]: {name} = {init!r}; an initial value is \"W0\" (a point) or \"0\" (a direction)")
        states[name] = INITIAL_VALUES[init]
    if states["W"] != 1:
        raise NtkodeError("[state]: W must start at \"W0\"")
    return states


def _plain(value: Any) -> Any:
    """JSON-able copy of a declaration (for its fingerprint)."""
    if isinstance(value, Mapping):
        return {str(k_): _plain(v) for k_, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


# -- loading --------------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _parse_toml_text(text: str, source: str, builtin: bool) -> Method:
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise NtkodeError(f"{source}: not valid TOML ({err})") from None
    try:
        return Method.from_dict(spec, source=source, builtin=builtin)
    except NtkodeError as err:
        raise NtkodeError(f"{source}: {err}", param=err.param) from None


def _load_toml(path: str) -> Method:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise NtkodeError(f"method file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NtkodeError(f"cannot read method file {path}: {err}") from None
    return _parse_toml_text(text, path, False)


def _builtin_text(name: str) -> str:
    return resources.files("ntkode").joinpath("methods", f"{name}.toml").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def builtin_names() -> tuple[str, ...]:
    """Names of the methods shipped with ntkode (the .toml files of `ntkode/methods/`)."""
    folder = resources.files("ntkode").joinpath("methods")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))


@lru_cache(maxsize=None)
def builtin(name: str) -> Method:
    """The shipped method `name`."""
    return _parse_toml_text(_builtin_text(name), "built-in", True)


def load_method(spec: "str | os.PathLike | Method | Mapping") -> Method:
    """A Method from a built-in name, a path to a .toml declaration, a dict, or a Method itself."""
    if isinstance(spec, Method):
        return spec
    if isinstance(spec, Mapping):
        return Method.from_dict(spec)
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and (spec.endswith(".toml") or os.sep in spec)):
        return Method.from_toml(spec)
    if isinstance(spec, str) and spec in builtin_names():
        return builtin(spec)
    if isinstance(spec, str):
        raise NtkodeError(f"unknown method {spec!r}{_suggest(spec, builtin_names())}; choose one of "
                          f"{', '.join(builtin_names())}, or give a path to a .toml declaration")
    raise NtkodeError(f"a method is a name, a .toml path, a dict or a Method; got {type(spec).__name__}")
