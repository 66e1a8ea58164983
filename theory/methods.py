"""Every optimiser, declared once, as data shared by `theory` and `numerics`.

A method is a linear multistep rule with a gradient look-ahead, of memory q.
Step k = 1, 2, ... produces W_k from the q previous iterates (W_{-j} = W_0):

    Y_k = sum_j c_j(k) W_{k-1-j}
    W_k = sum_j a_j(k) W_{k-1-j} - eta * grad L(Y_k)          (j = 0 .. q-1)

`numerics` runs exactly this recursion (`Method.coefficients`); `theory` analyses
it: on a quadratic whose Hessian has eigenvalue lam the recursion is linear, with
characteristic polynomial (`Method.char_poly`)

    p(z) = z^q - sum_j a_j z^(q-1-j) + eta*lam * sum_j c_j z^(q-1-j).

The ODE limits put z = exp(s*h) with the substitution `Method.ode_scaling`
(THEORY.md section 3): h = eta and t = k*eta for GD; h = sqrt(eta), t = k*sqrt(eta)
and damping gamma = (1 - beta)/sqrt(eta) for the momentum methods.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Mapping

import numpy as np
import sympy as sp

from ntkode.errors import NtkodeError
from .symbols import beta, beta2, eta, gamma, h, k, lam, r, t, z


@dataclass(frozen=True)
class Hyper:
    """A hyper-parameter: its name (Python keyword and CLI flag), symbol and domain."""

    name: str
    symbol: sp.Symbol
    low: float
    high: float
    low_closed: bool
    help: str

    @property
    def flag(self) -> str:
        """The CLI flag, --name."""
        return "--" + self.name

    def domain(self) -> str:
        """The admissible interval as text, e.g. [0, 1)."""
        left = "[" if self.low_closed else "("
        high = "inf" if math.isinf(self.high) else f"{self.high:g}"
        return f"{left}{self.low:g}, {high})"

    def check(self, value: float | np.ndarray) -> np.ndarray:
        """Return `value` as a float64 array, or raise NtkodeError naming the flag and domain."""
        arr = np.asarray(value, dtype=float)
        low_ok = arr >= self.low if self.low_closed else arr > self.low
        if not np.all(np.isfinite(arr)) or not np.all(low_ok & (arr < self.high)):
            raise NtkodeError(f"{self.flag} must lie in {self.domain()}; got {value!r}")
        return arr


HYPERS: dict[str, Hyper] = {
    hp.name: hp
    for hp in (
        Hyper("lr", eta, 0.0, math.inf, False, "learning rate eta > 0"),
        Hyper("momentum", beta, 0.0, 1.0, True, "momentum beta in [0, 1)"),
        Hyper("momentum2", beta2, 0.0, 1.0, True, "second momentum beta2 in [0, 1)"),
        Hyper("r", r, 0.0, math.inf, False, "Nesterov's r in beta_k = (k-1)/(k+r-1), r > 0"),
        Hyper("damping", gamma, 0.0, math.inf, True, "ODE damping gamma = (1-beta)/sqrt(eta) >= 0"),
    )
}


@dataclass(frozen=True)
class Method:
    """One optimiser: the coefficients a_j, c_j of its recursion and its ODE scaling."""

    name: str
    title: str
    update: str
    hyper: tuple[str, ...]
    a: tuple[sp.Expr, ...]
    c: tuple[sp.Expr, ...]
    ode_scaling: Mapping[sp.Symbol, sp.Expr]
    ode_hyper: tuple[str, ...]
    reference: str = ""
    notes: str = field(default="", compare=False)

    @property
    def memory(self) -> int:
        """q: how many previous iterates the step reads."""
        return len(self.a)

    @property
    def time_varying(self) -> bool:
        """Whether a coefficient depends on the step k (nag)."""
        return any(coef.has(k) for coef in self.a + self.c)

    def char_poly(self) -> sp.Expr:
        """p(z) = z^q - sum_j a_j z^(q-1-j) + eta*lam * sum_j c_j z^(q-1-j)."""
        q = self.memory
        momentum = sum(a_j * z ** (q - 1 - j) for j, a_j in enumerate(self.a))
        lookahead = sum(c_j * z ** (q - 1 - j) for j, c_j in enumerate(self.c))
        poly = sp.Poly(z**q - momentum + eta * lam * lookahead, z)
        return sum(sp.factor(coef) * z**i for (i,), coef in poly.terms())

    @cached_property
    def _coefficient_fn(self) -> Callable:
        return sp.lambdify((k, beta, beta2, r), (self.a, self.c), modules="numpy")

    def coefficients(self, step: int, **hyper: float | np.ndarray) -> tuple[list, list]:
        """Numeric (a_j, c_j) at step k = `step` (1-based), broadcast over hyper arrays."""
        values = {name: np.asarray(hyper.get(name, 0.0), dtype=float) for name in ("momentum", "momentum2", "r")}
        a, c = self._coefficient_fn(step, values["momentum"], values["momentum2"], values["r"])
        return [np.asarray(x, dtype=float) for x in a], [np.asarray(x, dtype=float) for x in c]

    def check_hyper(self, ode: bool = False, **given: float | np.ndarray | None) -> dict[str, np.ndarray]:
        """Validate the hyper-parameters this method needs (discrete or ODE), ignoring the rest."""
        needed = self.ode_hyper if ode else self.hyper
        missing = [HYPERS[n].flag for n in needed if given.get(n) is None]
        if missing:
            what = "its ODE" if ode else "it"
            raise NtkodeError(f"method {self.name!r} needs {', '.join(missing)} for {what}")
        return {n: HYPERS[n].check(given[n]) for n in needed}


def _heavy_ball_like(b: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(1 + b, -b): the coefficients of W_k + b (W_k - W_{k-1})."""
    return (1 + b, -b)


_nag_beta = (k - 1) / (k + r - 1)

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            name="gd",
            title="gradient descent",
            update="W_k = W_{k-1} - eta grad L(W_{k-1})",
            hyper=("lr",),
            a=(sp.Integer(1),),
            c=(sp.Integer(1),),
            ode_scaling={eta: h},
            ode_hyper=(),
            reference="Du, Zhai, Poczos & Singh 2018",
        ),
        Method(
            name="hb",
            title="Polyak heavy ball",
            update="W_k = W_{k-1} - eta grad L(W_{k-1}) + beta (W_{k-1} - W_{k-2})",
            hyper=("lr", "momentum"),
            a=_heavy_ball_like(beta),
            c=(sp.Integer(1), sp.Integer(0)),
            ode_scaling={eta: h**2, beta: 1 - gamma * h},
            ode_hyper=("damping",),
            reference="Polyak 1964; Bu, Xu & Chen 2021",
        ),
        Method(
            name="nag-sc",
            title="Nesterov, constant momentum",
            update="Y = W_{k-1} + beta (W_{k-1} - W_{k-2}); W_k = Y - eta grad L(Y)",
            hyper=("lr", "momentum"),
            a=_heavy_ball_like(beta),
            c=_heavy_ball_like(beta),
            ode_scaling={eta: h**2, beta: 1 - gamma * h},
            ode_hyper=("damping",),
            reference="Nesterov 1983; Shi, Du, Jordan & Su 2018",
        ),
        Method(
            name="nag",
            title="Nesterov, beta_k = (k-1)/(k+r-1)",
            update="Y = W_{k-1} + beta_k (W_{k-1} - W_{k-2}); W_k = Y - eta grad L(Y)",
            hyper=("lr", "r"),
            a=_heavy_ball_like(_nag_beta),
            c=_heavy_ball_like(_nag_beta),
            ode_scaling={eta: h**2, k: t / h},
            ode_hyper=("r",),
            reference="Su, Boyd & Candes 2016; Bu, Xu & Chen 2021",
        ),
        Method(
            name="mom2",
            title="two-coefficient momentum",
            update="v_k = beta v_{k-1} + beta2 v_{k-2} + grad L(W_{k-1}); W_k = W_{k-1} - eta v_k",
            hyper=("lr", "momentum", "momentum2"),
            a=(1 + beta, beta2 - beta, -beta2),
            c=(sp.Integer(1), sp.Integer(0), sp.Integer(0)),
            ode_scaling={eta: h**2, beta: 1 - beta2 - gamma * h},
            ode_hyper=("damping", "momentum2"),
            reference="Bu, Xu & Chen 2021",
        ),
    )
}


def get_method(name: str) -> Method:
    """The declared method called `name`, or NtkodeError listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise NtkodeError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
