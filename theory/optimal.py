"""Optimal hyper-parameters for a spectrum in [lam_0, lam_max], for any declared method.

The objective is the worst spectral radius max_{lam in [lam_0, lam_max]} rho(lam; hyper), on a dense
geometric grid of the interval (docs/theory.md#discrete). Closed forms come from the declarations'
[optimum] tables (GD: eta = 2/(lam_0 + lam_max); Polyak's heavy ball; NAG-SC's true minimiser
eta = 4/(3 lam_max + lam_0), beta = (sqrt(3 kappa + 1) - 2)/(sqrt(3 kappa + 1) + 2), rate
1 - 2/sqrt(3 kappa + 1), Lessard, Recht & Packard 2016); named tunings such as NAG-SC's "standard"
(eta = 1/lam_max, beta = (sqrt(kappa) - 1)/(sqrt(kappa) + 1)) from [tuning.NAME] tables. Every other
method is tuned numerically: Nelder-Mead from several starts, in coordinates that keep each
hyper-parameter inside its declared domain. The tests check that the numeric tuner reproduces
every closed form. The search: Nelder-Mead from several starts, restarted from its best point while
it improves, then a Powell polish.
ODE (critical damping of the slowest mode, `optimal_damping`): gamma = 2 sqrt(lam_0) for hb and nag-sc.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.optimize as so
import sympy as sp

from ntkode.declaration import Hyper, Method
from ntkode.errors import NtkodeError
from ntkode.symbols import lam, lam_0, lam_max

from .discrete import rate_function, rate_polynomial
from .methods import get_method
from .ode import _scaled, damping_hyper, decay_exponent, ode_hypers, optimal_damping

GRID_POINTS = 65
#: deterministic starting points of the numeric tuner
STARTS = 12
#: at most this many Nelder-Mead restarts from the best point so far, while each still improves
RESTARTS = 8
#: a rate above this is an unusable (unstable or non-finite) setting for the objective
PENALTY = 1e3


def spectrum_grid(lam_min: float, lam_max_: float, n: int = GRID_POINTS) -> np.ndarray:
    """Geometric grid of [lam_min, lam_max] (its endpoints included)."""
    return np.geomspace(lam_min, lam_max_, n) if lam_max_ > lam_min else np.array([lam_min])


def _check_interval(lam_min: float, lam_max_: float) -> tuple[float, float]:
    try:
        lo, hi = float(lam_min), float(lam_max_)
    except (TypeError, ValueError):
        raise NtkodeError(f"need numbers 0 < lam_min <= lam_max; got {lam_min!r}, {lam_max_!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise NtkodeError(f"need finite 0 < lam_min <= lam_max; got {lam_min!r}, {lam_max_!r}")
    if hi / lo > 1e12:
        raise NtkodeError(f"lam_max/lam_min = {hi / lo:.3g} exceeds 1e12: the tuning problem is ill-posed in float64")
    return lo, hi


def worst_rate(method, grid: np.ndarray, hyper: dict[str, float]) -> float:
    """max over `grid` of the spectral radius at `hyper` (declared names)."""
    m = get_method(method)
    with np.errstate(all="ignore"):
        value = float(np.max(rate_function(m)(grid, *[hyper[n] for n in m.hyper_names])))
    return value if math.isfinite(value) else math.inf


def tuned_hypers(method) -> tuple[Hyper, ...]:
    """The hyper-parameters the rate depends on (others, such as nag's r, do not move the rate)."""
    m = get_method(method)
    free = rate_polynomial(m).free_symbols
    return tuple(hp for hp in m.hyper if hp.symbol in free)


def _evaluate(forms: dict[str, sp.Expr], lo: float, hi: float) -> dict[str, float]:
    return {n: float(e.subs({lam_0: lo, lam_max: hi})) for n, e in forms.items()}


def _result(m: Method, grid, hyper: dict, source: str, extra: dict | None = None) -> dict:
    untuned = [hp.label for hp in m.hyper if hp.name not in hyper]
    out = {"method": m.name, "hyper": hyper, "rate": worst_rate(m, grid, {**dict.fromkeys(m.hyper_names, 1.0), **hyper}),
           "source": source}
    if untuned:
        out["untuned"] = untuned
        out["note"] = f"the rate does not depend on {', '.join(untuned)}"
    return {**out, **(extra or {})}


def named_tuning(method, name: str, lam_min: float, lam_max_: float) -> dict:
    """A tuning the declaration names ([tuning.NAME]), e.g. NAG-SC's "standard": hyper, rate on the grid,
    and the declared rate formula as `rate_formula`."""
    m = get_method(method)
    if name not in m.tunings:
        known = ", ".join(m.tunings) or "none"
        raise NtkodeError(f"method {m.name!r} has no tuning {name!r}; it declares: {known}", param="tuning")
    lo, hi = _check_interval(lam_min, lam_max_)
    values = _evaluate(m.tunings[name], lo, hi)
    formula = values.pop("rate", None)
    return _result(m, spectrum_grid(lo, hi), values, f"tuning {name!r}",
                   {"rate_formula": formula} if formula is not None else None)


class _Box:
    """Unconstrained coordinates u -> hyper-parameters inside their declared domains."""

    def __init__(self, hypers: tuple[Hyper, ...], steps: set[str], hi: float):
        self.hypers = hypers
        self.scale = [1.0 / hi if hp.name in steps else 1.0 for hp in hypers]

    def values(self, u: np.ndarray) -> dict[str, float]:
        out = {}
        for hp, x, scale in zip(self.hypers, u, self.scale):
            if math.isfinite(hp.low) and math.isfinite(hp.high):
                out[hp.name] = hp.low + (hp.high - hp.low) / (1.0 + math.exp(-max(min(x, 700.0), -700.0)))
            elif math.isfinite(hp.low):
                out[hp.name] = hp.low + scale * math.exp(min(x, 700.0))
            elif math.isfinite(hp.high):
                out[hp.name] = hp.high - scale * math.exp(min(x, 700.0))
            else:
                out[hp.name] = scale * x
        return out

    def starts(self, count: int) -> list[np.ndarray]:
        """Deterministic spread of starting points (a scrambled grid of logits and log-scales)."""
        rng = np.random.default_rng(0)
        return [rng.uniform(-3.0, 3.0, size=len(self.hypers)) for _ in range(count)]


def _search(m: Method, grid: np.ndarray, hypers: tuple[Hyper, ...], fixed: dict, hi: float,
            starts: list[np.ndarray] | None = None, count: int = STARTS) -> tuple[dict, float]:
    """Multi-start Nelder-Mead over `hypers` (box coordinates), the others held at `fixed`: (values, rate)."""
    if not hypers:
        return dict(fixed), worst_rate(m, grid, fixed)
    box = _Box(hypers, set(m.step_size_hypers), hi)

    def objective(u: np.ndarray) -> float:
        return min(worst_rate(m, grid, {**fixed, **box.values(u)}), PENALTY)

    rough = {"xatol": 1e-4, "fatol": 1e-7, "maxiter": 200 * len(hypers)}
    best = min((so.minimize(objective, x0, method="Nelder-Mead", options=rough)
                for x0 in (starts if starts is not None else box.starts(count))), key=lambda res: res.fun)
    fine = {"xatol": 1e-11, "fatol": 1e-15, "maxiter": 1000 * len(hypers), "maxfev": 2000 * len(hypers)}
    final = best
    for _ in range(RESTARTS):  # a fresh simplex each time: Nelder-Mead stalls in narrow valleys at a kink
        polished = so.minimize(objective, final.x, method="Nelder-Mead", options=fine)
        if not polished.fun < final.fun - 1e-15:
            break
        final = polished
    powell = so.minimize(objective, final.x, method="Powell", options={"xtol": 1e-12, "ftol": 1e-15,
                                                                       "maxfev": 4000 * len(hypers)})
    if powell.fun < final.fun:  # Powell's line searches follow a curved valley to its kink (QHM's alpha, beta)
        final = powell
    return {**fixed, **box.values(final.x)}, float(final.fun)


def _to_box(hypers: tuple[Hyper, ...], values: dict, m: Method, hi: float) -> np.ndarray:
    """Box coordinates of `values` (the inverse of `_Box.values`), to restart a search where one ended."""
    box = _Box(hypers, set(m.step_size_hypers), hi)
    out = []
    for hp, scale in zip(hypers, box.scale):
        x = values[hp.name]
        if math.isfinite(hp.low) and math.isfinite(hp.high):
            p = min(max((x - hp.low) / (hp.high - hp.low), 1e-12), 1 - 1e-12)
            out.append(math.log(p / (1 - p)))
        elif math.isfinite(hp.low):
            out.append(math.log(max(x - hp.low, 1e-300) / scale))
        elif math.isfinite(hp.high):
            out.append(math.log(max(hp.high - x, 1e-300) / scale))
        else:
            out.append(x / scale)
    return np.array(out)


def numeric_optimum(method, lam_min: float, lam_max_: float, starts: int = STARTS) -> dict:
    """argmin over the declared domains of the worst spectral radius on [lam_min, lam_max] (multi-start
    Nelder-Mead); hyper-parameters the rate does not depend on are left out (`untuned`). A hyper-parameter
    that ends within 1e-3 of a closed end of its domain is tried on that end, the others re-polished
    (the box coordinates only approach an end: QHM's optimum sits at nu = 1, where it is heavy ball)."""
    m = get_method(method)
    lo, hi = _check_interval(lam_min, lam_max_)
    grid = spectrum_grid(lo, hi)
    hypers = tuned_hypers(m)
    fixed = {hp.name: 1.0 for hp in m.hyper if hp not in hypers}
    values, rate = _search(m, grid, hypers, fixed, hi, count=starts)
    for hp in hypers:
        for end, closed in ((hp.low, hp.low_closed), (hp.high, hp.high_closed)):
            if closed and math.isfinite(end) and abs(values[hp.name] - end) <= 1e-3 * max(1.0, abs(end)):
                others = tuple(x for x in hypers if x is not hp)
                trial, trial_rate = _search(m, grid, others, {**values, hp.name: end}, hi,
                                            starts=[_to_box(others, values, m, hi)])
                if trial_rate <= rate:
                    values, rate = trial, trial_rate
    return _result(m, grid, {hp.name: values[hp.name] for hp in hypers}, "numeric")


def optimal(method, lam_min: float, lam_max: float, ode: bool = False, numeric: bool = False) -> dict:
    """Optimal hyper-parameters for spectrum [lam_min, lam_max]: {"hyper": {name: value}, "rate", "source"}.

    The declaration's closed form when it has one (also "rate_formula"), the numeric tuner otherwise
    or with numeric=True. With ode=True, the ODE's critical damping and its decay exponent.
    """
    m = get_method(method)
    lo, hi = _check_interval(lam_min, lam_max)
    if ode:
        return _optimal_ode(m, lo)
    if m.optimum and not numeric:
        values = _evaluate(m.optimum, lo, hi)
        formula = values.pop("rate", None)
        return _result(m, spectrum_grid(lo, hi), values, "closed form",
                       {"rate_formula": formula} if formula is not None else None)
    return numeric_optimum(m, lo, hi)


def _optimal_ode(m: Method, lo: float) -> dict:
    """Critical damping of the slowest mode (any other ODE hyper-parameter set where the exponent is largest)."""
    _scaled(m)
    hp = damping_hyper(m)
    if hp is None:
        needed = ode_hypers(m)
        if needed:
            raise NtkodeError(f"{m.name}'s ODE has no constant damping to tune (it depends on "
                              f"{', '.join(x.label for x in needed)}); no ODE optimum")
        exponent = float(decay_exponent(m).subs(lam, lo))
        return {"method": m.name, "hyper": {}, "exponent": exponent, "note": "no damping to tune: the exponent is fixed"}
    gam, alpha = optimal_damping(m)
    others = [x for x in ode_hypers(m) if x.symbol in alpha.free_symbols and x.symbol != hp.symbol]
    hyper = {}
    for other in others:
        f = sp.lambdify(other.symbol, -alpha.subs(lam, lo), "math")
        top = other.high if math.isfinite(other.high) else other.low + 1e3
        res = so.minimize_scalar(f, bounds=(other.low, top), method="bounded", options={"xatol": 1e-12})
        hyper[other.name] = 0.0 if abs(res.x - other.low) < 1e-6 else float(res.x)
    at = {lam: lo, **{x.symbol: hyper[x.name] for x in others}}
    hyper[hp.name] = float(gam.subs(at))
    out = {"method": m.name, "hyper": hyper, "exponent": float(alpha.subs(at))}
    if others:
        out["note"] = f"exponent {alpha} is largest at " + ", ".join(f"{x.label} = {hyper[x.name]:g}" for x in others)
    return out
