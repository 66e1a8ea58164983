"""Property-testing kit for declared methods: hypothesis strategies and assertions (docs/theory.md#property-tests).

A user property-tests their own declaration in their own test suite:

    from hypothesis import given
    from ntkode.testing import spectra, stable_hyper, assert_rates_agree

    @given(spectra(), stable_hyper("my_method.toml"))
    def test_my_method(eigs, hyper):
        assert_rates_agree("my_method.toml", eigs, hyper)

Normalisation: every spectrum and kernel drawn here has lam_max = 1 exactly and lam_0 >= 1/kappa_max
(`KAPPA_MAX` = 1e4 unless given); `stable_hyper` draws hyper-parameters that are Jury-stable on that whole
interval, so spectra and hyper-parameters may be drawn independently. Scale a kernel by c and its step
sizes by 1/c for other units (`assert_scaling_equals_lr` checks that this is the same method).

hypothesis is an optional dependency: `pip install "ntkode[testing]"`.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping

try:
    from hypothesis import assume
    from hypothesis import strategies as st
except ImportError:  # hypothesis is the `testing` extra, not a dependency of ntkode
    raise ImportError('ntkode.testing needs hypothesis; install it with: pip install "ntkode[testing]"') from None

import mpmath
import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from ntkode.declaration import Hyper, Method, load_method
from ntkode.errors import NtkodeError
from ntkode.symbols import h as H_SYM, lam as LAM, t as T_SYM, z as Z_SYM

__all__ = [
    "KAPPA_MAX", "RatesDisagree", "SPECTRUM_KINDS", "any_hyper", "assert_invariant_under_conjugation",
    "assert_ode_rate_agrees", "assert_rates_agree", "assert_scaling_equals_lr", "data_sets", "empirical_kernels",
    "iterated_steps", "kernels", "ode_hyper", "orthogonal_matrices", "spectra", "spectral_kernels",
    "sphere_kernels", "stable_hyper", "well_separated",
]

#: largest condition number lam_max / lam_0 that `spectra` and the kernel strategies draw, and the bottom
#: 1/KAPPA_MAX of the interval on which `stable_hyper` is stable
KAPPA_MAX = 1e4
SPECTRUM_KINDS = ("log-uniform", "clustered", "near-singular", "heavy-tailed")
#: float64 unit round-off
UNIT = np.finfo(float).eps / 2
#: digits of the symbolic reference (the derived polynomial's roots and closed-form rate, evaluated by mpmath)
REFERENCE_DIGITS = 40
#: backward error of a float64 root, in units of UNIT times the polynomial's (or T's) scale: each coefficient
#: of p(z) is a few float64 operations on lam and the hyper-parameters (<= 8 roundings for the shipped
#: declarations), and LAPACK's eig has a backward error of a small multiple of n u ||T||; 64 covers both
ROOT_BACKWARD = 64.0
#: steps of the iterated recurrence; the decay is fitted on the second half
ITERATED_STEPS = 4000
#: |fitted log-decay - log rho| <= ITERATED_ABS / K, K raised for slow modes; see `_iterated_tolerance`
ITERATED_ABS = 12.0
ITERATED_REL = 0.05
#: most steps the iterated route takes to reach ITERATED_REL on a slow mode (about 0.4 s of CPU for a 2-state method)
ITERATED_MAX_STEPS = 8000
#: the iterated route's one retry when the error decays faster than the rate: a slowest mode excited with a
#: small weight w (QHM at beta -> 1 excites its buffer's mode with weight ~ 1 - beta) dominates only after
#: log(1/w) / (log-gap to the next mode) steps, which can exceed ITERATED_MAX_STEPS
ITERATED_RETRY_STEPS = 16 * ITERATED_MAX_STEPS
#: the squared route's largest K = 2^SQUARED_MAX_POWER: it holds |log rho| >= ITERATED_ABS / (ITERATED_REL 2^28)
#: ~ 1e-6 to ITERATED_REL; a slower mode gets no squared route (the step loop's absolute ITERATED_ABS / K holds
#: it): there the squared map's own rounding nears ITERATED_REL |log rho| (4.9e-9 measured on log rho = -4e-8,
#: four-step at beta2 = 0 by the edge; 7.8e-7 against 7.2e-7 allowed on aggmo's -5e-7 at a = 1e-6, K = 2^24)
SQUARED_MAX_POWER = 28
#: points of the grids on which stability and double roots are looked for (log-spaced in lam * step)
STABILITY_GRID = 1201
#: largest lam * step considered when no instability is found below it
STEP_CAP = 1e3


# -- small helpers ------------------------------------------------------------------------------

def _method(method: Any) -> Method:
    return load_method(method)


def _declared(m: Method, hyper: Mapping[str, Any]) -> dict[str, float]:
    """{declared name: float} from names or aliases (NtkodeError for unknown or out-of-domain values)."""
    return m.scalar_hyper(dict(hyper))


def _orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian, signs fixed by diag(R))."""
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def _eigs(eigs: ArrayLike) -> np.ndarray:
    from ntkode.theory.discrete import check_eigs
    return check_eigs(eigs)


# -- strategies: spectra --------------------------------------------------------------------------

def _log_uniform(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(math.log10(low), math.log10(high)).map(lambda u: 10.0**u)


@st.composite
def spectra(draw: st.DrawFn, kinds: tuple[str, ...] = SPECTRUM_KINDS, min_size: int = 2, max_size: int = 8,
            kappa_max: float = KAPPA_MAX) -> np.ndarray:
    """Ascending kernel eigenvalues with lam_max = 1 exactly and lam_0 >= 1/kappa_max, of one of four kinds:

    - log-uniform: kappa log-uniform in [1, kappa_max], log lam uniform on [-log kappa, 0];
    - clustered: one to three centres (log-uniform on [1/kappa_max, 1]), each eigenvalue within a relative
      10^-8 .. 10^-2 of its centre (near-equal eigenvalues mix their modes);
    - near-singular: lam_0 within a factor 10 of 1/kappa_max, the others log-uniform on [0.01, 1];
    - heavy-tailed: Pareto draws (1 - u)^(-1/a), a in [0.3, 3], divided by their maximum (a few large
      eigenvalues over a bulk of small ones, as NTK spectra of data on the sphere), floored at 1/kappa_max.
    """
    if not 1 <= kappa_max or not 1 <= min_size <= max_size:
        raise ValueError("need kappa_max >= 1 and 1 <= min_size <= max_size")
    kind = draw(st.sampled_from(kinds))
    n = draw(st.integers(min_size, max_size))
    floor = 1.0 / kappa_max
    if kind == "log-uniform":
        low = 1.0 / draw(_log_uniform(1.0, kappa_max))
        eigs = [draw(_log_uniform(low, 1.0)) if low < 1 else 1.0 for _ in range(n)]
    elif kind == "clustered":
        centres = [draw(_log_uniform(floor, 1.0)) for _ in range(draw(st.integers(1, 3)))]
        eigs = [draw(st.sampled_from(centres)) * (1 + draw(st.sampled_from([-1, 1])) * draw(_log_uniform(1e-8, 1e-2)))
                for _ in range(n)]
    elif kind == "near-singular":
        eigs = [floor * draw(_log_uniform(1.0, 10.0))] + [draw(_log_uniform(1e-2, 1.0)) for _ in range(n - 1)]
    elif kind == "heavy-tailed":
        a = draw(st.floats(0.3, 3.0))
        eigs = [(1.0 - draw(st.floats(0.0, 1.0 - 1e-9))) ** (-1.0 / a) for _ in range(n)]
    else:
        raise ValueError(f"unknown spectrum kind {kind!r}; choose from {SPECTRUM_KINDS}")
    arr = np.asarray(eigs, dtype=float)
    arr = np.maximum(arr / arr.max(), floor)
    return np.sort(arr / arr.max())


# -- strategies: kernels --------------------------------------------------------------------------

@st.composite
def orthogonal_matrices(draw: st.DrawFn, n: int) -> np.ndarray:
    """A Haar-random n x n orthogonal matrix (from a drawn seed)."""
    return _orthogonal(n, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))


def well_separated(x: np.ndarray, min_angle: float = 0.05) -> bool:
    """No two inputs within `min_angle` radians of parallel or antiparallel (H-inf is then positive definite)."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = np.abs(unit @ unit.T)[np.triu_indices(len(x), 1)]
    return bool(np.all(cos < math.cos(min_angle)))


@st.composite
def data_sets(draw: st.DrawFn, n: tuple[int, int] = (2, 8), d: tuple[int, int] = (3, 6),
              on_sphere: bool | None = None, min_angle: float = 0.05) -> np.ndarray:
    """Gaussian directions in R^d, unit norm (on_sphere=True), or with norms in [0.3, 3] (False), or either
    (None); no two within `min_angle` radians of parallel."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(size=(draw(st.integers(*n)), draw(st.integers(*d))))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    if not (draw(st.booleans()) if on_sphere is None else on_sphere):
        x *= rng.uniform(0.3, 3.0, size=(len(x), 1))
    assume(well_separated(x, min_angle))
    return x


def _normalised(kernel: np.ndarray, kappa_max: float, normalise: bool) -> np.ndarray:
    from ntkode.numerics import kernel_spectrum
    eigs = kernel_spectrum(kernel)[0]
    assume(eigs[0] >= eigs[-1] / kappa_max)
    return kernel / eigs[-1] if normalise else kernel


@st.composite
def sphere_kernels(draw: st.DrawFn, kappa_max: float = KAPPA_MAX, normalise: bool = True,
                   on_sphere: bool | None = True) -> np.ndarray:
    """H-infinity of random data (`data_sets`; on the unit sphere by default), divided by its largest
    eigenvalue unless normalise=False; condition number <= kappa_max."""
    from ntkode.numerics import ntk_infinite
    return _normalised(ntk_infinite(draw(data_sets(on_sphere=on_sphere))), kappa_max, normalise)


@st.composite
def empirical_kernels(draw: st.DrawFn, widths: tuple[int, ...] = (64, 256, 1024), kappa_max: float = 1e3,
                      normalise: bool = True) -> np.ndarray:
    """The empirical NTK H(W_0) of a random two-layer ReLU net of one of `widths` on random data; at these
    small widths lam_0(H(W_0)) can sit far below lam_0(H-inf), so kappa_max defaults to 1e3."""
    from ntkode.numerics import init_network, ntk_empirical
    x = draw(data_sets())
    w, a = init_network(draw(st.sampled_from(widths)), x.shape[1], seed=draw(st.integers(0, 2**31 - 1)))
    return _normalised(ntk_empirical(w, a, x), kappa_max, normalise)


@st.composite
def spectral_kernels(draw: st.DrawFn, kappa_max: float = KAPPA_MAX, max_size: int = 8) -> np.ndarray:
    """Q diag(lam) Q^T: a `spectra` draw with a Haar-random orthogonal Q."""
    eigs = draw(spectra(kappa_max=kappa_max, max_size=max_size))
    q = draw(orthogonal_matrices(len(eigs)))
    kernel = (q * eigs) @ q.T
    return (kernel + kernel.T) / 2


def kernels(kappa_max: float = KAPPA_MAX, normalise: bool = True) -> st.SearchStrategy[np.ndarray]:
    """A kernel from the three families of docs/theory.md#property-tests: H-inf of random data (on or off
    the sphere), Q diag(lam) Q^T of a random spectrum, or H(W_0) of a random finite-width net."""
    if not normalise:
        return st.one_of(sphere_kernels(kappa_max, False, None), empirical_kernels(normalise=False))
    return st.one_of(sphere_kernels(kappa_max, True, None), spectral_kernels(kappa_max),
                     empirical_kernels(kappa_max=min(kappa_max, 1e3)))


# -- strategies: hyper-parameters -----------------------------------------------------------------

def _in_domain(hp: Hyper) -> st.SearchStrategy[float]:
    """A value in hp's declared domain: closed ends exactly, open ends approached to a relative 10^-8,
    interior points; an unbounded side is drawn log-uniformly within 0.1 .. 10 of the finite end."""
    low, high = hp.low, hp.high
    if math.isinf(low) and math.isinf(high):
        return st.floats(-10.0, 10.0)
    if math.isinf(high):
        return _log_uniform(0.1, 10.0).map(lambda u: low + u)
    if math.isinf(low):
        return _log_uniform(0.1, 10.0).map(lambda u: high - u)
    width = high - low
    near_low = _log_uniform(1e-8, 0.1).map(lambda u: low + u * width)
    near_high = _log_uniform(1e-8, 0.1).map(lambda u: high - u * width)
    options = [st.floats(low, high, exclude_min=not hp.low_closed, exclude_max=not hp.high_closed),
               near_low, near_high]
    options += [st.just(low)] if hp.low_closed else []
    options += [st.just(high)] if hp.high_closed else []
    return st.one_of(*options)


@st.composite
def any_hyper(draw: st.DrawFn, method: Any, lam_max: float = 1.0, step_range: tuple[float, float] = (0.05, 2.5)
              ) -> dict[str, float]:
    """Hyper-parameters anywhere in their declared domains, stable or not: each step size (`Method.step_size_hypers`)
    is c / lam_max with c in `step_range`, the others as in `stable_hyper`."""
    m = _method(method)
    out = {}
    for hp in m.hyper:
        if hp.name in m.step_size_hypers:
            out[hp.name] = draw(st.floats(*step_range)) / lam_max
        else:
            out[hp.name] = draw(_in_domain(hp))
    return out


@lru_cache(maxsize=None)
def _stability_function(m: Method):
    """(lam, *hyper) -> Jury's conditions on the rate polynomial, each a numpy boolean (vectorised)."""
    from ntkode.theory import jury_conditions
    from ntkode.theory.discrete import rate_polynomial
    conditions = jury_conditions(rate_polynomial(m))
    parts = conditions.args if isinstance(conditions, sp.And) else (conditions,)
    return [sp.lambdify((LAM, *m.symbols), c, "numpy") for c in parts]


@lru_cache(maxsize=None)
def _discriminant_function(m: Method):
    """(lam, *hyper) -> discriminant of the rate polynomial in z (None for degree 1): 0 at a double root."""
    from ntkode.theory.discrete import rate_polynomial
    poly = sp.Poly(rate_polynomial(m), Z_SYM)
    if poly.degree() < 2:
        return None
    return sp.lambdify((LAM, *m.symbols), sp.discriminant(poly), "numpy")


def _args(m: Method, values: Mapping[str, float], steps: Mapping[str, float], scale) -> list:
    return [scale * steps[n] if n in steps else values[n] for n in m.hyper_names]


def _stable_on(m: Method, values: dict, steps: dict, x) -> np.ndarray:
    """Jury-stable at lam = 1 with step sizes scaled by x (an array), i.e. at lam * step = x."""
    args = _args(m, values, steps, np.asarray(x, dtype=float))
    out = np.ones(np.shape(x), dtype=bool)
    with np.errstate(all="ignore"):
        for condition in _stability_function(m):
            out &= np.asarray(condition(1.0, *args), dtype=bool)
    return out


def _stable_step_edge(m: Method, values: dict, steps: dict, kappa_max: float) -> float:
    """Largest scale s of the step sizes that is Jury-stable at every lam in [1/kappa_max, 1] (checked on a log
    grid of lam * s, the edge bisected to round-off); 0 when even the smallest is unstable."""
    grid = np.geomspace(1e-6 / kappa_max, STEP_CAP, STABILITY_GRID)
    ok = _stable_on(m, values, steps, grid)
    if ok.all():
        return STEP_CAP
    first = int(np.argmin(ok))
    if first == 0:
        return 0.0
    good, bad = grid[first - 1], grid[first]
    for _ in range(60):
        mid = 0.5 * (good + bad)
        good, bad = (mid, bad) if _stable_on(m, values, steps, mid) else (good, mid)
    return float(good)


def _double_root_steps(m: Method, values: dict, steps: dict, edge: float) -> list[float]:
    """Scales s < edge at which the rate polynomial at lam = 1 has a double root (sign changes of the
    discriminant along s, bisected to round-off)."""
    disc = _discriminant_function(m)
    if disc is None or edge <= 0:
        return []
    grid = np.geomspace(edge * 1e-4, edge, STABILITY_GRID)
    with np.errstate(all="ignore"):
        values_on_grid = np.real(disc(1.0, *_args(m, values, steps, grid)))
    sign = np.sign(values_on_grid)
    found = []
    for i in np.flatnonzero(sign[:-1] * sign[1:] < 0):
        a, b = grid[i], grid[i + 1]
        fa = sign[i]
        for _ in range(80):
            mid = 0.5 * (a + b)
            fm = np.sign(np.real(disc(1.0, *_args(m, values, steps, mid))))
            a, b, fa = (mid, b, fm) if fm == fa else (a, mid, fa)
        found.append(float(a))
    return found


def _probes(m: Method) -> dict[str, Hyper]:
    return {hp.name: hp for hp in m.hyper if hp.name not in m.step_size_hypers}


def _probe_values(hp: Hyper) -> list[float]:
    """Points spread over a domain: its closed ends and interior fractions (bounded), or offsets (unbounded)."""
    if math.isinf(hp.low) or math.isinf(hp.high):
        base = hp.high if math.isinf(hp.low) else hp.low
        sign = -1.0 if math.isinf(hp.low) else 1.0
        return [base + sign * u for u in (0.1, 1.0, 10.0)] if not math.isinf(base) else [-1.0, 0.0, 1.0]
    fractions = [0.0] * hp.low_closed + [0.1, 0.5, 0.9] + [1.0] * hp.high_closed
    return [hp.low + f * (hp.high - hp.low) for f in fractions]


@lru_cache(maxsize=None)
def _has_stable_setting(m: Method, kappa_max: float) -> bool:
    """Whether some combination of probe values (`_probe_values`, at most 3^4 of them) has a stable step."""
    import itertools
    probes = _probes(m)
    steps = {n: 1.0 for n in m.step_size_hypers}
    if not steps:
        interval = np.geomspace(1 / kappa_max, 1.0, STABILITY_GRID)
        combos = itertools.islice(itertools.product(*[_probe_values(hp) for hp in probes.values()]), 625)
        return any(_stable_on(m, dict(zip(probes, combo)), steps, interval).all() for combo in combos)
    grids = [_probe_values(hp)[:5] for hp in probes.values()]
    for combo in itertools.islice(itertools.product(*grids), 625):
        if _stable_step_edge(m, dict(zip(probes, combo)), steps, kappa_max) > 0:
            return True
    return False


@st.composite
def stable_hyper(draw: st.DrawFn, method: Any, kappa_max: float = KAPPA_MAX, lam_max: float = 1.0
                 ) -> dict[str, float]:
    """Hyper-parameters (declared names) inside the method's Jury stability region for every lam in
    [lam_max/kappa_max, lam_max]: the whole interval `spectra(kappa_max=...)` draws from (lam_max = 1), so a
    spectrum and a setting drawn independently are always a stable pair.

    Each hyper-parameter that is not a step size is drawn in its declared domain, its ends included or
    approached (`_in_domain`); the step sizes (`Method.step_size_hypers`, which enter p(z) only through
    lam * step) get random relative weights and one common scale s. Stability of p(z) at every lam in the
    interval is then stability at lam = 1 for every scale in [s/kappa_max, s]; Jury's conditions on a
    log grid of 1201 points give the edge s* (bisected to round-off), and s is drawn: anywhere in
    (1e-3 s*, s*) (small steps: rates within 1e-7 of 1 at lam_0), within a relative 10^-12 .. 10^-2 below the
    edge (the boundary), or at/near a double root of p(z) at lam_max (a discriminant zero below the edge).
    Settings with no stable step (s* = 0) are rejected (hypothesis.assume); a method with no stable step at any
    probed setting (a sign error, say) raises NtkodeError saying so. The grid is exact for regions
    that are intervals in lam * step (all shipped methods); a region with holes narrower than the grid's
    0.03 spacing in log10 could be missed.
    """
    m = _method(method)
    if not _has_stable_setting(m, kappa_max):  # before any draw, so that hypothesis has nothing to shrink
        raise NtkodeError(f"method {m.name!r} is Jury-stable for no step size at any of the probed settings "
                          f"({', '.join(f'{n} in {hp.domain()}' for n, hp in _probes(m).items())}) on "
                          f"[1/{kappa_max:g}, 1]: check the sign of its gradient steps")
    values = {hp.name: draw(_in_domain(hp)) for hp in m.hyper if hp.name not in m.step_size_hypers}
    names = m.step_size_hypers
    steps = {n: (draw(st.floats(0.1, 1.0)) if len(names) > 1 else 1.0) for n in names}
    if not names:
        assume(bool(_stable_on(m, values, steps, np.geomspace(1.0 / kappa_max, 1.0, STABILITY_GRID)).all()))
        return values
    edge = _stable_step_edge(m, values, steps, kappa_max)
    assume(edge > 0)
    region = draw(st.sampled_from(["interior", "edge", "double root"]))
    doubles = _double_root_steps(m, values, steps, edge) if region == "double root" else []
    if doubles:
        s = draw(st.sampled_from(doubles)) * (1 + draw(st.sampled_from([0.0, 1e-12, -1e-12, 1e-6, -1e-6, 1e-3])))
    elif region == "edge":
        s = edge * (1 - draw(_log_uniform(1e-12, 1e-2)))
    else:
        s = edge * draw(st.floats(1e-3, 1.0, exclude_max=True))
    assume(0 < s < edge and bool(_stable_on(m, values, steps, np.geomspace(s / kappa_max, s, 257)).all()))
    return {n: (steps[n] * s / lam_max if n in steps else values[n]) for n in m.hyper_names}


def ode_hyper(method: Any, resolution: str = "low", lam_max: float = 1.0) -> st.SearchStrategy[dict]:
    """The hyper-parameters `ode_rate` needs (`ntkode.theory.ode.ode_hypers`): the [ode]'s new names (such as the
    damping gamma, drawn in [0.01, 4] sqrt(lam_max) when its domain is [0, inf)) and declared ones in their
    domains; at high resolution the step size too, c^2/lam_max with c in [0.01, 0.3] (h = c/sqrt(lam_max))."""
    from ntkode.theory.ode import ode_hypers
    m = _method(method)
    if m.ode is None:
        raise ValueError(f"method {m.name!r} declares no [ode]")
    new = {hp.name for hp in m.ode.new}
    fields = {}
    for hp in ode_hypers(m, resolution):
        if hp.name in m.step_size_hypers:
            fields[hp.name] = st.floats(0.01, 0.3).map(lambda c: c * c / lam_max)
        elif hp.name in new and hp.low == 0 and math.isinf(hp.high):
            fields[hp.name] = st.floats(0.01, 4.0).map(lambda g: g * math.sqrt(lam_max))
        else:
            fields[hp.name] = _in_domain(hp)
    return st.fixed_dictionaries(fields)


# -- the symbolic reference ---------------------------------------------------------------------

@lru_cache(maxsize=None)
def _reference_functions(m: Method):
    """(coefficients, closed-form rate or None), both mpmath functions of (lam, *hyper): the monic
    coefficients [c_0 .. c_{q-1}] of the derived rate polynomial, and `derive(m).rate` where sympy has one."""
    from ntkode.theory import derive
    from ntkode.theory.discrete import monic_coefficients, rate_polynomial
    args = (LAM, *m.symbols)
    coeffs = sp.lambdify(args, monic_coefficients(rate_polynomial(m)), "mpmath")
    rate = derive(m).rate
    closed = None if rate.has(sp.nan) or rate == sp.nan else sp.lambdify(args, rate, "mpmath")
    return coeffs, closed


@lru_cache(maxsize=256)
def _setting_reference_function(m: Method, setting: tuple[float, ...]):
    """lam -> monic coefficients of the rate polynomial reduced at `setting` (exact rationals), by mpmath."""
    from ntkode.theory.discrete import monic_coefficients, setting_polynomial
    return sp.lambdify(LAM, monic_coefficients(setting_polynomial(m, setting)), "mpmath")


def _reference(m: Method, lam: float, args: list[float]) -> tuple[list[complex], float | None, list[float]]:
    """(roots, closed-form rate or None, monic coefficients) of the derived rate polynomial at lam, by mpmath
    at REFERENCE_DIGITS digits from the exact float64 inputs; at a setting where more of its modes stop reaching W
    (`ntkode.theory.discrete.setting_polynomial`, QHM at nu = 0) of the reduced one, without a closed form."""
    from ntkode.theory.discrete import setting_polynomial
    setting = tuple(float(a) for a in args)
    coeff_fn, closed_fn = _reference_functions(m)
    reduced = setting_polynomial(m, setting) is not None
    with mpmath.workdps(REFERENCE_DIGITS):
        margs = [mpmath.mpf(float(lam))] + [mpmath.mpf(float(a)) for a in args]
        raw = _setting_reference_function(m, setting)(margs[0]) if reduced else coeff_fn(*margs)
        coeffs = [mpmath.mpmathify(c) for c in raw]
        monic = [mpmath.mpf(1)] + list(reversed(coeffs))
        roots = mpmath.polyroots(monic, maxsteps=400, extraprec=4 * REFERENCE_DIGITS) if len(coeffs) > 1 \
            else [-coeffs[0]]
        closed = None
        if closed_fn is not None and not reduced:
            try:
                closed = float(abs(mpmath.mpmathify(closed_fn(*margs))))
            except (ZeroDivisionError, ValueError, TypeError):  # a closed form singular at this point
                closed = None
        return [complex(r) for r in roots], closed, [float(mpmath.re(c)) for c in coeffs]


def _root_tolerance(roots: list[complex], i: int, delta: float) -> float:
    """How far a backward error delta in p can move root i: eps solving eps * prod_{j != i}(d_j + eps) = delta
    (d_j = |z_i - z_j|), times 4. This is delta / |p'(z_i)| for a simple root and (m! delta / |p^(m)|)^(1/m)
    up to a constant for a root of multiplicity m (the Newton-polygon estimate)."""
    d = [abs(roots[i] - r) for j, r in enumerate(roots) if j != i]

    def g(eps: float) -> float:
        return eps * math.prod(x + eps for x in d) - delta

    low, high = 0.0, max(1.0, delta)
    while g(high) < 0:
        high *= 2
    for _ in range(200):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if g(mid) < 0 else (low, mid)
    return 4 * high


@lru_cache(maxsize=None)
def _transition_function(m: Method):
    """(lam, *hyper) -> T(lam) as a numpy matrix; a time-varying T at its k -> infinity limit."""
    from ntkode.theory.discrete import limit_in_k
    T = m.transition.applyfunc(limit_in_k) if m.time_varying else m.transition
    return sp.lambdify((LAM, *m.symbols), T, "numpy")


# -- assertions: one rate, four routes ----------------------------------------------------------

class RatesDisagree(AssertionError):
    """Two routes to a rate disagree by more than their derived tolerance."""


def _fail(message: str) -> None:
    raise RatesDisagree(message)


def _log_window_norms(E: np.ndarray, scale: np.ndarray, q: int, ks: np.ndarray) -> np.ndarray:
    """log ||(e_k, ..., e_{k-q+1})|| for k in ks (all >= q - 1) from a renormalised iteration, whose true
    e_j = E[j] exp(scale[j]): scale[k] + log sqrt(sum_j ||E[j]||^2 exp(2 (scale[j] - scale[k])))."""
    sq = np.einsum("ij,ij->i", E, E)
    rows = ks[:, None] - np.arange(q)[None, :]
    with np.errstate(divide="ignore"):
        total = np.sum(sq[rows] * np.exp(2 * (scale[rows] - scale[ks][:, None])), axis=1)
        return scale[ks] + 0.5 * np.log(total)


def _ls_slope(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y against t."""
    tc = t - t.mean()
    return float(tc @ (y - y.mean()) / (tc @ tc))


def iterated_steps(log_rho: float, steps: int = ITERATED_STEPS, max_steps: int = ITERATED_MAX_STEPS) -> int:
    """K for the iterated route: `steps`, raised towards ITERATED_ABS / (ITERATED_REL |log rho|) (at most
    `max_steps`) so that a slow mode is held to ITERATED_REL of its log-rate where the budget allows."""
    if log_rho == 0 or not math.isfinite(log_rho):
        return max_steps if log_rho == 0 else steps
    return int(min(max_steps, max(steps, math.ceil(ITERATED_ABS / (ITERATED_REL * abs(log_rho))))))


def _iterated_tolerance(steps: int, richardson: bool) -> float:
    """|fitted log-decay - log rho| allowed after K = steps: ITERATED_ABS / K, four times that for a time-varying
    method. The least-squares slope over [K/2, K] moves by at most 6 R / K for a residual bounded by R (sum of
    |weights| = 3 / (K/2)); the residuals are (i) the other modes, amplitude 1 along every eigenvector
    (e_0 = Q 1), contributing at most max_g g e^{-g K/2} ~ 0.7/K per mode, (ii) the bounded oscillation of a
    complex pair's window norm, and (iii) a Jordan block's k^(m-1), whose slope over [K/2, K] is
    1.39 (m-1)/K <= 2.8/K for q <= 3. ITERATED_ABS = 12 (R = 2) covers these with margin; the former test's
    200 random draws showed at most 5.3/K. A time-varying method's unknown power-law envelope k^p is removed
    by Richardson extrapolation, 2 s[K/2, K] - s[K/4, K/2], whose weights sum to 24/K: four times the budget.
    The squared route's two-point slope (log w(K) - log w(K/2)) / (K/2) moves by at most 2R / (K/2) = 8/K for the
    bounded residuals, plus (m-1) log 2 / (K/2) <= 2.8/K for a Jordan block: within the same ITERATED_ABS / K."""
    return (4.0 if richardson else 1.0) * ITERATED_ABS / steps


def assert_rates_agree(method: Any, eigs: ArrayLike, hyper: Mapping[str, float], steps: int = ITERATED_STEPS,
                       envelope_power: float | None = None) -> None:
    """One rate, four routes (docs/theory.md#property-tests), on every eigenvalue of `eigs`:

    1. symbolic: the derived rate polynomial's roots at 40 digits (mpmath), and `derive(method).rate`, the
       closed form, where sympy has one; they must agree to 1e-15 (both exact up to the reference precision);
    2. compiled: `spectral_radius(method, eigs, **hyper)` (float64) per eigenvalue;
    3. state matrix: every reference root is an eigenvalue of T(lam) (numpy), and max |eig T(lam)| is the rate
       when the declaration keeps no cancelled mode (degree = number of state variables);
    4. iterated: the declared step applied to a quadratic with Hessian Q diag(eigs) Q^T (Q Haar-random, seed 0)
       from e_0 = Q 1 decays like rho^k: the least-squares slope of log||(e_k .. e_{k-q+1})|| over [K/2, K]
       (K = `steps`, raised up to ITERATED_MAX_STEPS for slow modes, `iterated_steps`) is log rho within
       `_iterated_tolerance`; a time-varying method's power-law envelope k^p is removed with the known
       `envelope_power` p (Nesterov: -r/2, docs/theory.md#nesterov) or else by Richardson extrapolation;
       and `stable` is rate < 1. Where that K cannot reach ITERATED_REL |log rho| (slow modes, |log rho| below
       ITERATED_ABS / (ITERATED_REL ITERATED_MAX_STEPS) = 0.03), a time-invariant step is also applied
       K = `squared_steps` times, by repeated squaring of its one-step map (`_squared_slope`), and held to
       ITERATED_ABS / K <= ITERATED_REL |log rho|: relative on every mode with |log rho| >= 1e-6. A time-varying
       step cannot be squared; its slow modes stay held to the absolute ITERATED_ABS / ITERATED_MAX_STEPS.

    Tolerances: routes 2 and 3 differ from the reference by at most 4 eps*, eps* the root perturbation for a
    backward error ROOT_BACKWARD u (sum |c_i| |z|^i) (polynomial) or ROOT_BACKWARD u n ||T|| (|z| + ||T||)^(n-1)
    (matrix) (`_root_tolerance`): 1e-14 for a simple root, ~sqrt(u) at a double root.
    `hyper` uses declared names or aliases. Raises AssertionError saying which routes disagree and by how much.
    """
    from ntkode.theory import iterate, spectral_radius
    m = _method(method)
    kernel, lam_, vectors = _spectrum(eigs)
    values = _declared(m, hyper)
    args = [values[n] for n in m.hyper_names]
    compiled = spectral_radius(m, lam_, **values)
    transition = _transition_function(m)
    ref_rates, ref_tols = [], []
    for i, lam in enumerate(lam_):
        roots, closed, coeffs = _reference(m, float(lam), args)
        dom = int(np.argmax(np.abs(roots)))
        ref = abs(roots[dom])
        ref_rates.append(ref)
        where = f"{m.name} at lam={lam!r} with {values}"
        if closed is not None and abs(closed - ref) > 1e-15 * max(1.0, ref):
            _fail(f"{where}: closed-form rate {closed!r} != max|root| {ref!r} of the derived polynomial "
                  f"(difference {abs(closed - ref):.3g})")
        scale = 1.0 + sum(abs(c) * abs(roots[dom]) ** j for j, c in enumerate(coeffs))
        tol_poly = _root_tolerance(roots, dom, ROOT_BACKWARD * UNIT * scale)
        ref_tols.append(tol_poly)
        if abs(compiled.radius[i] - ref) > tol_poly:
            _fail(f"{where}: compiled spectral radius {compiled.radius[i]!r} != symbolic {ref!r} "
                  f"(difference {abs(compiled.radius[i] - ref):.3g} > tolerance {tol_poly:.3g})")
        T = np.asarray(transition(float(lam), *args), dtype=float)
        n_state = T.shape[0]
        norm_t = float(np.linalg.norm(T))
        eig_t = np.linalg.eigvals(T)
        delta_t = ROOT_BACKWARD * UNIT * n_state * norm_t * (ref + norm_t) ** (n_state - 1)
        for j, root in enumerate(roots):
            tol_t = _root_tolerance(roots, j, delta_t) + _root_tolerance(roots, j, ROOT_BACKWARD * UNIT * scale)
            gap = float(np.min(np.abs(eig_t - root)))
            if gap > tol_t:
                _fail(f"{where}: root {root:.12g} of the derived polynomial is not an eigenvalue of T(lam) "
                      f"(nearest {eig_t[np.argmin(np.abs(eig_t - root))]:.12g}, off by {gap:.3g} > {tol_t:.3g})")
        if n_state == len(roots):
            tol_t = _root_tolerance(roots, dom, delta_t)
            rho_t = float(np.max(np.abs(eig_t)))
            if abs(rho_t - ref) > tol_t:
                _fail(f"{where}: spectral radius of T(lam) {rho_t!r} != symbolic rate {ref!r} "
                      f"(difference {abs(rho_t - ref):.3g} > {tol_t:.3g})")
    top = int(np.argmax(ref_rates))
    rate = ref_rates[top]
    if abs(rate - 1.0) > ref_tols[top] and compiled.stable != (rate < 1):
        _fail(f"{m.name} with {values}: spectral_radius says stable={compiled.stable} but the rate is {rate!r}")
    if kernel is not None:
        _check_one_step_map(m, kernel, values, lam_[top], args)
    if kernel is None:
        kernel = (vectors * lam_) @ vectors.T
    _check_iterated(m, kernel, vectors, values, rate, ref_tols[top], steps, iterate, envelope_power)


def _spectrum(eigs: ArrayLike) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(kernel or None, ascending eigenvalues, orthonormal eigenvectors) of a spectrum (1-D) or a symmetric
    kernel (2-D); for a spectrum the eigenvectors are a Haar-random Q (seed 0)."""
    arr = np.asarray(eigs, dtype=float) if not isinstance(eigs, str) else eigs
    if isinstance(arr, np.ndarray) and arr.ndim == 2:
        if arr.shape[0] != arr.shape[1] or not np.allclose(arr, arr.T, rtol=0, atol=1e-12 * np.abs(arr).max()):
            raise ValueError(f"a kernel must be a symmetric square matrix; got shape {arr.shape}")
        lam_, vectors = np.linalg.eigh(arr)
        return arr, _eigs(lam_), vectors
    lam_ = _eigs(eigs)
    return None, lam_, _orthogonal(len(lam_), np.random.default_rng(0))


#: the step counter at which a time-varying one-step map is taken as its limit; its coefficients are then
#: within O(1/K_LIMIT) of the limit, a backward error TIME_VARYING_BACKWARD / K_LIMIT
K_LIMIT = 10**12
TIME_VARYING_BACKWARD = 100.0


def _check_one_step_map(m: Method, kernel: np.ndarray, values: dict, lam_top: float, args: list[float]) -> None:
    """The declared step on the kernel itself (`apply_step`, column by column over every variable's error
    vector) is a linear map whose spectral radius is the rate when no mode is cancelled (degree = states)."""
    from ntkode.theory.statespace import apply_step
    names = m.state_names
    roots, _, coeffs = _reference(m, float(lam_top), args)
    if len(roots) != len(names):
        return
    n = len(kernel)
    step = K_LIMIT if m.time_varying else 1
    columns = []
    for basis in np.eye(n * len(names)):
        after = apply_step(m, kernel, dict(zip(names, basis.reshape(len(names), n))), step, args)
        columns.append(np.concatenate([after[name] for name in names]))
    M = np.array(columns).T
    rho_map = float(np.max(np.abs(np.linalg.eigvals(M))))
    dom = int(np.argmax(np.abs(roots)))
    norm_m = float(np.linalg.norm(M))
    q = len(names)
    delta = ROOT_BACKWARD * UNIT * n * q * norm_m * (abs(roots[dom]) + norm_m) ** (q - 1)
    if m.time_varying:
        delta += TIME_VARYING_BACKWARD / K_LIMIT * (1 + sum(abs(c) for c in coeffs))
    tol = _root_tolerance(roots, dom, delta)
    rate = abs(roots[dom])
    if abs(rho_map - rate) > tol:
        _fail(f"{m.name} with {values}: the declared step on the kernel has spectral radius {rho_map!r}, the "
              f"symbolic rate is {rate!r} (difference {abs(rho_map - rate):.3g} > {tol:.3g})")


def _check_iterated(m: Method, kernel: np.ndarray, vectors: np.ndarray, values: dict, rate: float, rate_tol: float,
                    steps: int, iterate, envelope_power: float | None) -> None:
    """Route 4 of `assert_rates_agree`: the decay of the declared step iterated on the kernel from e_0 = V 1.
    A float64 iteration resolves the per-step factor only to the float64 root tolerance `rate_tol` (absolute),
    which decides for rates at round-off level (eta lam = 1 in GD, say)."""
    if int(steps) != steps or steps < 40:
        raise ValueError(f"steps must be an integer >= 40; got {steps!r}")
    expected = math.log(rate) if rate > 0 else -math.inf
    steps = iterated_steps(expected, int(steps), max(int(steps), ITERATED_MAX_STEPS))
    where = f"{m.name} with {values} on eigenvalues {np.linalg.eigvalsh(kernel).tolist()}"
    slope, tol = _iterated_slope(m, kernel, vectors, values, rate, steps, iterate, envelope_power, where)
    if slope is not None and slope < expected - tol and steps < ITERATED_RETRY_STEPS:
        steps = ITERATED_RETRY_STEPS
        slope, tol = _iterated_slope(m, kernel, vectors, values, rate, steps, iterate, envelope_power, where)
    if slope is None:
        return
    _judge_iterated(slope, tol, expected, rate, rate_tol, steps, where)
    squared = squared_steps(expected)
    if not m.time_varying and squared > steps:
        M = _one_step_map(m, kernel, [values[n] for n in m.hyper_names])
        if _dominant_mode_reaches_w(M, m.state_names.index("W"), len(kernel)):
            slope = _squared_slope(m, M, vectors, squared)
            _judge_iterated(slope, _iterated_tolerance(squared, False), expected, rate, rate_tol, squared, where)


def _judge_iterated(slope: float, tol: float, expected: float, rate: float, rate_tol: float, steps: int,
                    where: str) -> None:
    """Fail when the iterated log-decay `slope` misses log rho by more than `tol` and rho by more than the float64
    root tolerance `rate_tol`, or decays where rho >= 1 (grows where rho < 1)."""
    if abs(slope - expected) > tol and abs(math.exp(slope) - rate) > rate_tol:
        _fail(f"{where}: iterating the declared step decays like {math.exp(slope)!r} per step, the theory says "
              f"{rate!r} (log difference {abs(slope - expected):.3g} > tolerance {tol:.3g} over {steps} steps)")
    if abs(expected) > tol and (slope < 0) != (rate < 1):
        _fail(f"{where}: rate {rate!r} but the iterated error {'decays' if slope < 0 else 'grows'}")


def squared_steps(log_rho: float) -> int:
    """K of the squared route: the power of 2 at or above ITERATED_ABS / (ITERATED_REL |log rho|); 0 (no squared
    route) for rho = 0, 1 or not finite, and where that K exceeds 2^SQUARED_MAX_POWER."""
    if log_rho == 0 or not math.isfinite(log_rho):
        return 0
    power = max(1, math.ceil(math.log2(ITERATED_ABS / (ITERATED_REL * abs(log_rho)))))
    return 2 ** power if power <= SQUARED_MAX_POWER else 0


def _one_step_map(m: Method, kernel: np.ndarray, args: list[float]) -> np.ndarray:
    """M: the time-invariant declared step on the stacked state (`apply_step` on every basis state)."""
    from ntkode.theory.statespace import apply_step
    names = m.state_names
    n = len(kernel)
    columns = []
    for basis in np.eye(n * len(names)):
        after = apply_step(m, kernel, dict(zip(names, basis.reshape(len(names), n))), 1, args)
        columns.append(np.concatenate([after[name] for name in names]))
    return np.array(columns).T


def _dominant_mode_reaches_w(M: np.ndarray, w: int, n: int) -> bool:
    """Whether an eigenvector of M's largest modulus has a W-part (rows w n .. (w+1) n) above 1e-8 of its norm:
    where only unread states carry M's dominant mode (QHM's or a gated buffer at nu = 0 or c = 0), a normalised
    power of M keeps W's own decay only to round-off relative to it."""
    values, vectors = np.linalg.eig(M)
    top = np.abs(values) >= np.max(np.abs(values)) * (1 - 1e-9)
    return bool(np.linalg.norm(vectors[w * n:(w + 1) * n][:, top]) > 1e-8 * np.linalg.norm(vectors[:, top]))


def _squared_slope(m: Method, M: np.ndarray, vectors: np.ndarray, steps: int) -> float:
    """Log-decay per step of the one-step map M (`_one_step_map`) applied K = `steps` (a power of 2) times from
    e_0 = V 1: (log w(K) - log w(K/2)) / (K/2), w(k) = ||(e_k, ..., e_{k+q-1})|| the W-errors of M^k s_0.
    M^(K/2) comes from repeated squaring, each square divided by its norm (the log of the divisors is carried,
    so nothing leaves float64 range); the normalised power keeps the W-errors only relative to M's dominant
    mode, so the caller uses this route only where that mode is W's own (no faster unread mode); -inf when
    the W-errors vanish exactly."""
    names = m.state_names
    n = len(vectors)
    e0 = vectors @ np.ones(n)
    state = np.concatenate([e0 if init else np.zeros(n) for init in m.initial])
    power, log_scale = M / np.linalg.norm(M), math.log(np.linalg.norm(M))
    for _ in range(int(math.log2(steps)) - 1):
        power = power @ power
        norm = float(np.linalg.norm(power))
        power, log_scale = power / norm, 2 * log_scale + math.log(norm)
    w = names.index("W")

    def log_window(x: np.ndarray) -> float:
        rows = [x]
        for _ in range(max(m.degree, 1) - 1):
            rows.append(M @ rows[-1])
        square = sum(float(r[w * n:(w + 1) * n] @ r[w * n:(w + 1) * n]) for r in rows)
        return 0.5 * math.log(square) if square > 0 else -math.inf

    half = power @ state
    start = log_window(half)
    return -math.inf if start == -math.inf else (log_window(power @ half) - start + log_scale) / (steps // 2)


def _iterated_slope(m: Method, kernel: np.ndarray, vectors: np.ndarray, values: dict, rate: float, steps: int,
                    iterate, envelope_power: float | None, where: str) -> tuple[float | None, float]:
    """(fitted log-decay per step over [K/2, K], its tolerance) for K = steps; None when the iterated error
    vanished exactly (a rate of 0, checked here; `where` names the case in a failure)."""
    E, scale = iterate(m, kernel, vectors @ np.ones(len(kernel)), steps, renormalise=True, **values)
    ks = np.arange(steps // 4, steps + 1)
    logs = _log_window_norms(E, scale, max(m.degree, 1), ks)
    if not np.all(np.isfinite(logs)):
        if rate > 1e-6:
            _fail(f"{where}: the iterated error vanished exactly, but the rate is {rate!r}")
        return None, 0.0
    late = ks >= steps // 2
    slope = _ls_slope(ks[late].astype(float), logs[late])
    richardson = m.time_varying and envelope_power is None
    if richardson:
        early = ks <= steps // 2
        slope = 2 * slope - _ls_slope(ks[early].astype(float), logs[early])
    elif envelope_power:
        slope -= envelope_power * _ls_slope(ks[late].astype(float), np.log(ks[late]))
    return slope, _iterated_tolerance(steps, richardson)


# -- assertions: the ODE limit ------------------------------------------------------------------

#: ODE integration: LSODA at this relative tolerance; the absolute one sits below rtol times the smallest
#: sample, exp(-ODE_HORIZON) ~ 1e-87
ODE_RTOL = 1e-10
ODE_ATOL = 1e-110
#: bound R on the residual of log ||state|| about its exponential (or power-law) trend in the fitted window
ODE_RESIDUAL = 2.0
#: length of the fitted window [T/2, T] in units of 1/exponent, capped in absolute time
ODE_HORIZON, ODE_TIME_CAP = 200.0, 4000.0


@lru_cache(maxsize=None)
def _ode_functions(m: Method, resolution: str):
    """(a(t, lam, *ode hyper, h) -> [a_0 .. a_{d-1}], the ODE hyper symbols, whether a depends on t)."""
    from ntkode.theory.ode import ode_coefficients, ode_hypers
    coeffs = ode_coefficients(m, resolution)
    symbols = tuple(hp.symbol for hp in ode_hypers(m, resolution))
    fn = sp.lambdify((T_SYM, LAM, *symbols, H_SYM), list(coeffs), "numpy")
    return fn, symbols, any(c.has(T_SYM) for c in coeffs)


def _integrate_ode(fn, lam: float, params: list[float], h: float, d: int, t0: float, t_end: float, samples,
                  varying: bool):
    """solve_ivp (LSODA: the overdamped limits are stiff) of X^(d) + sum a_i(t) X^(i) = 0 from X(t0) = 1,
    X^(i)(t0) = 0, at the times `samples`; constant coefficients go in as the companion matrix and its Jacobian."""
    from scipy.integrate import solve_ivp

    def companion(t):
        A = np.eye(d, k=1)
        A[-1, :] = [-float(c) for c in fn(t, lam, *params, h)]
        return A

    fixed = None if varying else companion(t0)
    jac = (lambda t, y: fixed) if fixed is not None else (lambda t, y: companion(t))
    y0 = np.zeros(d)
    y0[0] = 1.0
    sol = solve_ivp(lambda t, y: jac(t, y) @ y, (t0, t_end), y0, method="LSODA", jac=jac, rtol=ODE_RTOL,
                    atol=ODE_ATOL, t_eval=samples)
    if sol.status != 0:
        raise RatesDisagree(f"solve_ivp failed at lam={lam}: {sol.message}")
    return sol.y


def assert_ode_rate_agrees(method: Any, eigs: ArrayLike, ode_hyper: Mapping[str, float],
                           resolution: str = "low") -> None:
    """`ode_rate` = the decay of `scipy.integrate.solve_ivp` on the declared ODE limit, per eigenvalue
    (docs/theory.md#ode, #property-tests).

    For each lam the ODE X^(d) + sum a_i(t) X^(i) = 0 (`ode_coefficients`) is integrated from X = 1 by solve_ivp (LSODA,
    rtol 1e-10) and the norm of the state scaled to one frequency, sqrt(sum (w^(d-1-i) X^(i))^2) with
    w = |a_0(inf)|^(1/d), is sampled on [T/2, T]. Constant coefficients: its least-squares slope against t is
    -exponent, T = 200/exponent (capped at 4000); a residual bounded by R = 2 moves that slope by 6R/T and a
    critical (Jordan) factor t^(d-1) by 1.39 (d-1)/T, so the tolerance is (6R + 1.4 (d-1))/T, 6.7 % of the
    exponent when uncapped. t-dependent coefficients (Nesterov's r/t) with a zero exponent: the slope against
    log t over [T/4, T] (T = 200/w) is -order, within 3R'/log 4 for a residual R' = 0.1 of the Bessel envelope
    (its oscillation is scaled out by w and its 1/t corrections are below 0.1 past t w = 50).
    `ode_hyper`: the ODE's hyper-parameters by name or alias (`ode_hyper` draws them).
    """
    from ntkode.theory import ode_rate
    from ntkode.theory.ode import step_of_eta
    m = _method(method)
    lam_ = _eigs(eigs)
    res = ode_rate(m, lam_, resolution, **ode_hyper)
    fn, symbols, varying = _ode_functions(m, resolution)
    pool = {hp.symbol: hp.name for hp in m.hyper + (m.ode.new if m.ode else ())}
    params = [res.hyper[pool[sym]] for sym in symbols]
    by_symbol = {sym: value for sym, value in zip(symbols, params)}
    h = float(step_of_eta(m).subs(by_symbol)) if resolution == "high" else 0.0
    for i, lam in enumerate(lam_):
        exponent, order = float(res.per_lambda[i]), float(res.order_per_lambda[i])
        a_inf = fn(1e12, float(lam), *params, h)
        d = len(a_inf)
        w = abs(float(a_inf[0])) ** (1.0 / d) or 1.0
        scale = np.array([w ** (d - 1 - j) for j in range(d)])[:, None]
        where = f"{m.name} ODE ({resolution}) at lam={float(lam)!r} with {res.hyper}"
        t0 = 1.0 if varying else 0.0
        if varying and exponent == 0.0:
            t_end = t0 + min(ODE_TIME_CAP, ODE_HORIZON / w)
            ts = np.geomspace(t_end / 4, t_end, 2001)
            y = _integrate_ode(fn, float(lam), params, h, d, t0, t_end, ts, varying)
            measured = -_ls_slope(np.log(ts), np.log(np.linalg.norm(scale * y, axis=0)))
            tol = 3 * 0.1 / math.log(4.0)
            if abs(measured - order) > tol:
                _fail(f"{where}: solve_ivp decays like t^-{measured:.6g}, ode_rate says order {order!r} "
                      f"(difference {abs(measured - order):.3g} > {tol:.3g})")
            continue
        span = min(ODE_TIME_CAP, ODE_HORIZON / exponent) if exponent > 0 else ODE_TIME_CAP
        t_end = t0 + span
        ts = np.linspace(t0 + span / 2, t_end, 4001)
        y = _integrate_ode(fn, float(lam), params, h, d, t0, t_end, ts, varying)
        measured = -_ls_slope(ts, np.log(np.linalg.norm(scale * y, axis=0)))
        tol = (6 * ODE_RESIDUAL + 1.4 * (d - 1)) / span
        if abs(measured - exponent) > tol:
            _fail(f"{where}: solve_ivp decays like exp(-{measured:.6g} t), ode_rate says exponent {exponent!r} "
                  f"(difference {abs(measured - exponent):.3g} > tolerance {tol:.3g} over t <= {t_end:.4g})")


# -- assertions: invariances --------------------------------------------------------------------

#: steps over which transformed trajectories are compared, and their tolerance on log ||state||: each step
#: adds a few n u of relative round-off (n <= 8), amplified by the recursion's transient growth (<= 1e3 for the
#: settings drawn here), so 200 steps stay below 200 * 8 * 4 u * 1e3 ~ 1e-9; 1e-8 leaves a factor 10
TRAJECTORY_STEPS = 200
TRAJECTORY_TOL = 1e-8


def _log_state_norms(m: Method, kernel: np.ndarray, e0: np.ndarray, hyper: Mapping[str, float]) -> np.ndarray:
    from ntkode.theory import iterate
    E, scale = iterate(m, kernel, e0, TRAJECTORY_STEPS, renormalise=True, **hyper)
    q = max(m.degree, 1)
    return _log_window_norms(E, scale, q, np.arange(q - 1, TRAJECTORY_STEPS + 1))


def _radius_tolerance(m: Method, lam_: np.ndarray, values: dict, relative: float) -> np.ndarray:
    """How much each per-eigenvalue radius may move when lam moves by a relative `relative`: twice the larger
    change of the compiled radius at lam (1 +- relative) (this sees the square-root cusp of a double root), plus
    64 u."""
    from ntkode.theory import spectral_radius
    at = spectral_radius(m, lam_, **values).radius
    up = spectral_radius(m, lam_ * (1 + relative), **values).radius
    down = spectral_radius(m, lam_ * (1 - relative), **values).radius
    return 2 * np.maximum(np.abs(up - at), np.abs(down - at)) + 64 * UNIT * np.maximum(1.0, at)


def _compare(what: str, got: np.ndarray, want: np.ndarray, tol) -> None:
    diff = np.abs(np.asarray(got) - np.asarray(want))
    bad = diff > tol
    if np.any(bad):
        i = int(np.argmax(diff - tol))
        _fail(f"{what}: {np.ravel(got)[i]!r} != {np.ravel(want)[i]!r} at index {i} (difference {np.ravel(diff)[i]:.3g}"
              f" > tolerance {np.ravel(np.broadcast_to(tol, diff.shape))[i]:.3g})")


def assert_invariant_under_conjugation(method: Any, kernel: ArrayLike, hyper: Mapping[str, float],
                                       seed: int = 0) -> None:
    """Rates depend only on the spectrum (docs/theory.md#property-tests): for a permutation P and a Haar-random
    orthogonal Q (both from `seed`), the per-eigenvalue radii on P H P^T and Q H Q^T equal those on H, and the
    declared step iterated on Q H Q^T from Q e_0 has the same state norms as on H from e_0 for 200 steps.

    Tolerances: eigvalsh of a conjugated kernel moves each eigenvalue by at most 16 n u ||H|| (backward
    stable), so each radius within `_radius_tolerance` of that relative move; trajectories within
    TRAJECTORY_TOL in log norm."""
    from ntkode.theory import spectral_radius
    m = _method(method)
    H = np.asarray(kernel, dtype=float)
    values = _declared(m, hyper)
    rng = np.random.default_rng(seed)
    lam_ = np.linalg.eigvalsh(H)
    relative = 16 * len(H) * UNIT * lam_[-1] / lam_[0]
    tol = _radius_tolerance(m, lam_, values, relative)
    want = spectral_radius(m, lam_, **values).radius
    perm = rng.permutation(len(H))
    q_mat = _orthogonal(len(H), rng)
    for name, moved in (("permuted", H[np.ix_(perm, perm)]), ("rotated", q_mat @ H @ q_mat.T)):
        got = spectral_radius(m, np.linalg.eigvalsh((moved + moved.T) / 2), **values).radius
        _compare(f"{m.name} with {values}: radius on the {name} kernel", got, want, tol)
    e0 = rng.normal(size=len(H))
    rotated = q_mat @ H @ q_mat.T
    _compare(f"{m.name} with {values}: log state norm iterated on Q H Q^T vs H",
             _log_state_norms(m, (rotated + rotated.T) / 2, q_mat @ e0, values),
             _log_state_norms(m, H, e0, values), TRAJECTORY_TOL)


def assert_scaling_equals_lr(method: Any, kernel: ArrayLike, hyper: Mapping[str, float], c: float) -> None:
    """H -> cH is the same optimiser as multiplying every step size by c (docs/theory.md#property-tests): the
    step sizes are found from the declaration (`Method.step_size_hypers`: the hyper-parameters p(z) depends on
    only through their product with lam), not by name. `kernel`: a spectrum (1-D) or a symmetric kernel.

    Checks the per-eigenvalue radii (within `_radius_tolerance` of a relative move of 4 u, the rounding of the
    two products) and, for a kernel, the declared step's trajectories for 200 steps (TRAJECTORY_TOL).
    Raises ValueError for a method without a step size."""
    from ntkode.theory import spectral_radius
    m = _method(method)
    if not m.step_size_hypers:
        raise ValueError(f"method {m.name!r} has no step size: p(z) depends on no hyper-parameter through lam * it")
    values = _declared(m, hyper)
    scaled = {n: v * c if n in m.step_size_hypers else v for n, v in values.items()}
    H = np.asarray(kernel, dtype=float)
    lam_ = np.linalg.eigvalsh(H) if H.ndim == 2 else _eigs(H)
    tol = _radius_tolerance(m, c * lam_, values, 4 * UNIT)
    _compare(f"{m.name}: radius on c*H (c={c!r}) with {values} vs on H with step sizes {scaled}",
             spectral_radius(m, c * lam_, **values).radius, spectral_radius(m, lam_, **scaled).radius, tol)
    if H.ndim == 2:
        e0 = np.random.default_rng(1).normal(size=len(H))
        _compare(f"{m.name}: log state norm iterated on c*H vs with scaled step sizes (c={c!r})",
                 _log_state_norms(m, c * H, e0, values), _log_state_norms(m, H, e0, scaled), TRAJECTORY_TOL)
