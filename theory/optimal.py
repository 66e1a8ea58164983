"""Optimal hyper-parameters for a spectrum in [lam_0, lam_max].

Closed forms (THEORY.md section 2): GD eta = 2/(lam_0 + lam_max); heavy ball (Polyak)
eta = 4/(sqrt(lam_max) + sqrt(lam_0))^2, beta = ((sqrt(kappa)-1)/(sqrt(kappa)+1))^2;
NAG-SC's standard choice eta = 1/lam_max, beta = (sqrt(kappa)-1)/(sqrt(kappa)+1).
`mom2` and `nag` (asymptotic factor, beta_k -> 1) have none: a Nelder-Mead search
minimises the largest spectral radius on a dense geometric grid of [lam_0, lam_max].
ODE (critical damping of the slowest mode): gamma = 2 sqrt(lam_0) for hb and nag-sc.
"""
from __future__ import annotations

import numpy as np
import scipy.optimize as so
import sympy as sp

from .discrete import rate_function
from ntkode.errors import NtkodeError
from .methods import get_method
from .ode import optimal_damping
from .symbols import beta2, lam

LAM_0, LAM_MAX = sp.symbols("lam_0 lam_max", positive=True)
kappa = LAM_MAX / LAM_0
_q = (sp.sqrt(kappa) - 1) / (sp.sqrt(kappa) + 1)

#: closed-form optima: hyper name -> expression in lam_0, lam_max, and the rate they give
CLOSED_FORMS: dict[str, dict[str, sp.Expr]] = {
    "gd": {"lr": 2 / (LAM_0 + LAM_MAX), "rate": (kappa - 1) / (kappa + 1)},
    "hb": {"lr": 4 / (sp.sqrt(LAM_MAX) + sp.sqrt(LAM_0)) ** 2, "momentum": _q**2, "rate": _q},
    "nag-sc": {"lr": 1 / LAM_MAX, "momentum": _q, "rate": 1 - 1 / sp.sqrt(kappa)},
}
GRID_POINTS = 65


def spectrum_grid(lam_min: float, lam_max_: float, n: int = GRID_POINTS) -> np.ndarray:
    """Geometric grid of [lam_min, lam_max] (its endpoints included)."""
    return np.geomspace(lam_min, lam_max_, n) if lam_max_ > lam_min else np.array([lam_min])


def _check_interval(lam_min: float, lam_max_: float) -> tuple[float, float]:
    lo, hi = float(lam_min), float(lam_max_)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise NtkodeError(f"need finite 0 < lam_min <= lam_max; got {lam_min!r}, {lam_max_!r}")
    return lo, hi


def _grid_rate(method: str, grid: np.ndarray, eta_: float, beta_: float = 0.0, beta2_: float = 0.0) -> float:
    return float(np.max(rate_function(method)(grid, eta_, beta_, beta2_)))


def _numeric_mom2(grid: np.ndarray, lo: float, hi: float) -> dict:
    """argmin over (eta, beta, beta2) of the max radius, started at Polyak's point (beta2 = 0)."""
    def objective(x):
        eta_, beta_, beta2_ = x
        if eta_ <= 0 or not (0 <= beta_ < 1) or not (0 <= beta2_ < 1):
            return 2.0
        return _grid_rate("mom2", grid, eta_, beta_, beta2_)

    polyak = {n: float(e.subs({LAM_0: lo, LAM_MAX: hi})) for n, e in CLOSED_FORMS["hb"].items()}
    starts = [(polyak["lr"], polyak["momentum"], 0.0), (1 / hi, 0.5, 0.1)]
    best = min((so.minimize(objective, x0, method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 1500}) for x0 in starts),
               key=lambda res: res.fun)
    eta_, beta_, beta2_ = (float(v) for v in best.x)
    return {"lr": eta_, "momentum": beta_, "momentum2": beta2_, "rate": float(best.fun)}


def _numeric_nag(grid: np.ndarray, hi: float) -> dict:
    """argmin over eta of the asymptotic factor (stable for eta lam < 4/3)."""
    res = so.minimize_scalar(lambda e: _grid_rate("nag", grid, e), bounds=(1e-12 / hi, 4 / (3 * hi)),
                             method="bounded", options={"xatol": 1e-14 / hi})
    return {"lr": float(res.x), "momentum": 1.0, "rate": float(res.fun),
            "note": "momentum beta_k = (k-1)/(k+r-1) -> 1; the asymptotic factor does not depend on r"}


def _optimal_ode(method: str, lo: float) -> dict:
    if method == "gd":
        return {"damping": None, "exponent": lo, "note": "gradient flow: no damping, exponent lam_0"}
    if method == "nag":
        raise NtkodeError("nag's ODE has damping r/t, not a constant: it decays like t^(-r/2), no optimum")
    gam, alpha = optimal_damping(method)
    at = {lam: lo, beta2: 0}
    out = {"damping": float(gam.subs(at)), "exponent": float(alpha.subs(at))}
    if method == "mom2":
        out.update(momentum2=0.0, note="exponent sqrt(lam_0/(1+beta2)) is largest at beta2 = 0")
    return out


def optimal(method: str, lam_min: float, lam_max: float, ode: bool = False) -> dict:
    """Optimal hyper-parameters for spectrum [lam_min, lam_max] and the rate (or ODE exponent)."""
    get_method(method)
    lo, hi = _check_interval(lam_min, lam_max)
    if ode:
        return _optimal_ode(method, lo)
    grid = spectrum_grid(lo, hi)
    if method in CLOSED_FORMS:
        values = {n: float(e.subs({LAM_0: lo, LAM_MAX: hi})) for n, e in CLOSED_FORMS[method].items()}
        bound = values.pop("rate")
        rate = _grid_rate(method, grid, values["lr"], values.get("momentum", 0.0))
        return {**values, "rate": rate, "rate_formula": bound}
    if method == "mom2":
        return _numeric_mom2(grid, lo, hi)
    return _numeric_nag(grid, hi)
