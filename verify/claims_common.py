"""What the claims share: the test problem, simulation, per-seed rate fits, checks and curves.

The default problem puts n points uniformly on the sphere S^{d-1} (data seed fixed),
and takes the labels y = the unit eigenvector of H-infinity with the smallest
eigenvalue lam_0. Then every seed's initial error e_0 = u_0 - y has a component of
size about 1 along the slowest direction (docs/theory.md#verification, pitfall 1: the
slowest mode must dominate the fit window), while ||y|| = 1 keeps the net lazy
(pitfall 3). Rates are fitted on the projection of e_k on that eigenvector
(SimulationResult.projections) unless a claim says otherwise. Rate claims also run on a second,
ill-conditioned data set (`digits_problem`, `DIGITS`) through `on_each_dataset`; `roundoff_step`
says where kernels may be read before round-off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ntkode.errors import NtkodeError
from ntkode.numerics import (
    LazyDiagnostic, SimulationResult, digits_data, init_network, kernel_spectrum, lazy_diagnostic, ntk_empirical,
    ntk_infinite, simulate, sphere_data,
)
from ntkode.theory import RateResult, spectral_radius

from .claim import Check, Curve, Evidence, Measure, Prediction, Predict, Tolerance
from .report import curve_group
from .fit import REL_FLOOR, Fit, fit_linear_rate

#: parameters every simulated claim takes
PROBLEM_QUICK = {"n": 10, "d": 10, "data_seed": 0}


@dataclass(frozen=True)
class Problem:
    """Inputs X (n, d), labels y (n,), and the spectrum (ascending) and eigenvectors of H-infinity."""

    X: np.ndarray
    y: np.ndarray
    lam: np.ndarray
    vecs: np.ndarray

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def lam0(self) -> float:
        return float(self.lam[0])

    @property
    def lam_max(self) -> float:
        return float(self.lam[-1])


def sphere_problem(params: Mapping[str, Any]) -> Problem:
    """n points on S^{d-1} from `sphere_data(n, d, data_seed)`, labels = bottom eigenvector of H-inf."""
    X, _ = sphere_data(params["n"], params["d"], params["data_seed"])
    lam, vecs = kernel_spectrum(ntk_infinite(X))
    return Problem(X, vecs[:, 0].copy(), lam, vecs)


#: the digit classes of the second data set
DIGIT_CLASSES = (0, 1)


def digits_problem(params: Mapping[str, Any]) -> Problem:
    """n unit-norm 8x8 digits of classes 0 and 1 (`digits_data(n, (0, 1), data_seed)`), labels -1/+1
    scaled to y/||y|| (unit norm, as the sphere's, so the net stays lazy); d = 64 whatever params say."""
    X, y = digits_data(params["n"], DIGIT_CLASSES, params["data_seed"])
    lam, vecs = kernel_spectrum(ntk_infinite(X))
    return Problem(X, y / np.linalg.norm(y), lam, vecs)


PROBLEMS = {"sphere": sphere_problem, "digits": digits_problem}


def problem(params: Mapping[str, Any]) -> Problem:
    """The claim's problem: params["data"] (default "sphere") picks `sphere_problem` or `digits_problem`."""
    data = params.get("data", "sphere")
    if data not in PROBLEMS:
        raise NtkodeError(f"data must be one of {', '.join(PROBLEMS)}; got {data!r}", param="data")
    return PROBLEMS[data](params)


#: a second data set for the rate claims: digits n = 12 (classes 0, 1) has kappa = 80.8 (H-inf),
#: 10.9x the sphere's 7.43 (n = 10, d = 10); its lambda_0 = 0.0445 is 3.3x smaller, so finite width
#: costs ~3x more there (the lazy diagnostic's kappa m^(-1/2)) and the claims size their width for it
DIGITS = {"data": "digits", "n": 12, "data_seed": 0}


def dataset_params(params: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """[(tag, params)] for every data set a claim runs on: params without "second", then those
    updated by params["second"] (the second data set's overrides: data, n, width, steps, ...)."""
    base = {k: v for k, v in params.items() if k != "second"}
    runs = [(base.get("data", "sphere"), base)]
    if params.get("second"):
        second = {**base, **params["second"]}
        runs.append((second.get("data", "sphere"), second))
    return runs


def _tagged_curve(tag: str, curve: Curve) -> Curve:
    return replace(curve, label=f"{tag}: {curve.label}", group=f"{tag}: {curve_group(curve)}")


DATASETS_DOC = """
    Data sets: the sphere problem above (n = 10, d = 10, kappa 7.4) and, from params["second"], 12 unit-norm
    digits of classes 0/1 with y/||y|| (`digits_problem`, kappa 80.8); each check is tagged with its data set.
    Simple-root tolerances there are `finite_width_tolerance` (the kernel error bound grows like kappa m^(-1/2)).
"""


def on_each_dataset(measure_one: Measure, predict_one: Predict | None = None) -> tuple[Measure, Predict | None]:
    """A claim's measure (and predict) run on every data set of `dataset_params`, checks, curves and notes
    tagged with the data set ("digits: beta=0.1"); the docstring is measure_one's."""
    def measure(params: Mapping[str, Any], device: str) -> Evidence:
        parts = [(tag, measure_one(p, device)) for tag, p in dataset_params(params)]
        checks = [replace(c, label=f"{tag}: {c.label}") for tag, ev in parts for c in ev.checks]
        curves = [_tagged_curve(tag, c) for tag, ev in parts for c in ev.figure.curves]
        notes = [f"[{tag}] {note}" for tag, ev in parts for note in ev.notes]
        figure = replace(parts[0][1].figure, curves=curves,
                         title=parts[0][1].figure.title + f" ({', '.join(tag for tag, _ in parts)})")
        return Evidence(checks, figure, notes)

    def predict(params: Mapping[str, Any], scale: float) -> list[Prediction]:
        return [replace(p, label=f"{tag}: {p.label}") for tag, q in dataset_params(params)
                for p in predict_one(q, scale)]

    measure.__doc__ = (measure_one.__doc__ or "") + DATASETS_DOC
    return measure, (predict if predict_one is not None else None)


def run_simulation(
    method: str, problem: Problem, params: Mapping[str, Any], hyper: Sequence[dict], steps: int, device: str,
    widths: Sequence[int] | None = None, **options: Any,
) -> SimulationResult:
    """`simulate` on the claim's problem: widths (default [params["width"]]), params["seeds"] seeds."""
    return simulate(
        method, problem.X, problem.y, list(widths) if widths is not None else [params["width"]], steps,
        seeds=params["seeds"], hyper=list(hyper), device=device, progress=False, **options,
    )


def final_spectra(sim: SimulationResult, problem: Problem, setting: int = 0, width: int = 0) -> np.ndarray:
    """(seeds, n) spectra of H(W_T), the kernel each net ends with (needs keep_weights=True)."""
    W, a = sim.final_W[width][setting], sim.final_a[width][setting]
    return np.array([kernel_spectrum(ntk_empirical(W[s], a[s], problem.X))[0] for s in range(W.shape[0])])


def slowest_mode(result: RateResult) -> int:
    """Index (into the ascending spectrum) of the eigenvalue attaining the spectral radius."""
    return int(np.argmax(result.radius))


def seed_fits(sim: SimulationResult, setting: int, mode: int, width: int = 0, **fit_options: Any) -> list[Fit]:
    """One `fit_linear_rate` per seed on the projection of e_k on eigenvector `mode` of H-inf."""
    series = sim.projections[width, setting, :, :, mode]
    return [fit_linear_rate(row, **fit_options) for row in series]


def mean_and_stderr(values: Sequence[float], fallback_stderr: float = 0.0) -> tuple[float, float]:
    """Mean over seeds and its standard error std/sqrt(S) (the fit's own stderr for one seed)."""
    arr = np.asarray(values, dtype=float)
    if arr.size < 2:
        return float(arr.mean()), float(fallback_stderr)
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))


def width_tolerance(n: int, m: int, extra: float = 0.0, why: str = "") -> Tolerance:
    """Relative tolerance 2 sqrt(n/m) (+ extra): lambda_min(H(W_0)) and the training drift move the
    rate by O(sqrt(n/m)) (docs/theory.md#verification, pitfall 2)."""
    value = 2.0 * math.sqrt(n / m) + extra
    reason = f"finite width: rates move by O(sqrt(n/m)); 2 sqrt(n/m) = {2 * math.sqrt(n / m):.3g} at n={n}, m={m}"
    return Tolerance("rel", round(value, 4), reason + (f"; {why}" if why else ""))


def log_rate_check(label: str, predicted_rate: float, fits: Sequence[Fit], tol: Tolerance) -> Check:
    """Compare log(rho) per step: theory's spectral radius vs the seed-mean fitted slope."""
    value, err = mean_and_stderr([f.value for f in fits], fits[0].stderr)
    return Check(label, "log rate per step", math.log(predicted_rate), value, err, tol)


def error_curves(label: str, series: np.ndarray, fit: Fit, predicted_rate: float, every: int = 1) -> list[Curve]:
    """|e_k| (measured) and the predicted line rho^k through the fit at the window start."""
    steps = np.arange(series.size)
    keep = steps[:: max(1, every)]
    start = fit.window[0]
    anchor = math.exp(fit.intercept + fit.value * start + (fit.power or 0.0) * math.log(max(start, 1)))
    line = np.arange(start, fit.window[1])
    predicted = anchor * predicted_rate ** (line - start)
    return [
        Curve(label, keep.tolist(), np.abs(series[keep]).tolist(), "measured"),
        Curve(f"{label}: predicted rho={predicted_rate:.4g}", line.tolist(), predicted.tolist(), "predicted"),
    ]


def antisymmetric_net(width: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(W, a) = ([W', W'], [a', -a']) with (W', a') = init_network(width/2, d, seed): paired neurons cancel, so
    u_0 = 0 up to round-off and e_0 = -y; H(W_0) is the kernel of the width/2 distinct neurons (the doubling
    trick of Chizat, Oyallon & Bach, "On lazy training in differentiable programming", NeurIPS 2019)."""
    if int(width) % 2:
        raise NtkodeError(f"width must be even for the antisymmetric initialisation; got {width}", param="width")
    W, a = init_network(int(width) // 2, d, seed)
    return np.vstack([W, W]), np.concatenate([a, -a])


def initial_spectra(problem: Problem, width: int, seeds: int) -> np.ndarray:
    """(seeds, n) spectra of H(W_0) for seeds 0..S-1, drawn as `simulate` draws them (`init_network`)."""
    d = problem.X.shape[1]
    return np.array([kernel_spectrum(ntk_empirical(*init_network(width, d, s), problem.X))[0] for s in range(seeds)])


def sensitivity_note(predict: Predict, params: Mapping[str, Any], scales: Sequence[float] = (0.9, 1.1)) -> str:
    """How far each rate check's prediction moves, in units of its tolerance, when every kernel
    eigenvalue is multiplied by each of `scales` (hyper-parameters fixed): a check can only fail
    for a wrong kernel if this exceeds 1."""
    base = predict(params, 1.0)
    moved = [predict(params, scale) for scale in scales]
    parts = []
    for i, p in enumerate(base):
        shifts = "/".join(f"{p.tolerance.score(m[i].value, p.value):.2g}" for m in moved)
        parts.append(f"{p.label}: {shifts}")
    return (f"sensitivity (prediction shift in tolerances for spectrum x{'/x'.join(f'{s:g}' for s in scales)}): "
            + "; ".join(parts))


def checks_from(predictions: Sequence[Prediction], measured: Sequence[tuple[float, float]]) -> list[Check]:
    """Pair each prediction with its (measured value, stderr)."""
    return [p.check(value, err) for p, (value, err) in zip(predictions, measured, strict=True)]


_DIAGNOSTICS: dict[tuple, list[LazyDiagnostic]] = {}


def diagnostics(problem: Problem, width: int, seeds: int) -> list[LazyDiagnostic]:
    """`lazy_diagnostic` of every seed's net (known before training); remembered per problem and width,
    since a claim's predictions are evaluated on several spectrum scales."""
    key = (problem.X.tobytes(), problem.y.tobytes(), int(width), int(seeds))
    if key not in _DIAGNOSTICS:
        _DIAGNOSTICS[key] = [lazy_diagnostic(problem.X, problem.y, width, seed=s) for s in range(seeds)]
    return _DIAGNOSTICS[key]


def diagnostic_note(diags: Sequence[LazyDiagnostic]) -> str:
    """The worst seed's diagnostic, for a claim's notes."""
    return "seed-worst " + max(diags, key=lambda d: d.rate_error_bound).describe()


def kernel_error_tolerance(method: str, lam: np.ndarray, hyper: Mapping[str, float], delta: float,
                           extra: float = 0.0, why: str = "") -> Tolerance:
    """Relative tolerance on log(rho): how far theory's own log(rho) moves when every eigenvalue moves
    by delta * lambda_min up or down (a kernel error of relative size delta, Weyl), plus `extra`.

    Exact, not linearised: at a double root the move is ~ sqrt(delta), at a simple root ~ delta
    (docs/theory.md#discrete).
    """
    base = math.log(spectral_radius(method, lam, **hyper).rate)
    shift = delta * float(lam[0])
    move = max(abs(math.log(spectral_radius(method, lam + sign * shift, **hyper).rate) / base - 1)
               for sign in (-1.0, 1.0))
    reason = f"log(rho) moves by {move:.3g} for a kernel error {delta:.3g} lambda_min"
    return Tolerance("rel", round(move + extra, 4), reason + (f"; {why}" if why else ""))


def roundoff_step(rate: float, power: float = 0.0, floor: float = REL_FLOOR, cap: int = 10**6) -> int:
    """The first step k >= 1 at which the linearised error k^power rate^k, relative to e_0, falls to
    `floor` (default the fits' round-off floor `fit.REL_FLOOR`), known before training.

    Kernels and weight movements are read there, not at the last step: once ||e|| nears round-off
    (~1e-13 absolute) sub-1e-15 weight updates flip preactivations that sit next to zero and the
    kernel read afterwards depends on the arithmetic's order, not on training. Up to this step the
    remaining movement is the floor's fraction of the total (eta sum_j ||e_j|| is geometric).
    """
    if not 0.0 < rate < 1.0:
        raise NtkodeError(f"rate must lie in (0, 1); got {rate}", param="rate")
    k = np.arange(1, cap + 1, dtype=float)
    below = np.flatnonzero(power * np.log(k) + k * math.log(rate) <= math.log(floor))
    return int(k[below[0]]) if below.size else cap


def finite_width_tolerance(method: str, prob: Problem, hyper: Mapping[str, float], params: Mapping[str, Any],
                           initial: bool = False) -> Tolerance:
    """A simple-root rate's tolerance on log(rho), before training: the larger of 2 sqrt(n/m)
    (`width_tolerance`) and theory's own move of log(rho) for the seed-worst kernel error bound of
    `lazy_diagnostic` (`kernel_error_tolerance`; H-inf: fluctuation + drift, initial=True for H(W_0): the
    drift alone). The second grows like kappa m^(-1/2) and decides on ill-conditioned data."""
    diags = diagnostics(prob, params["width"], params["seeds"])
    delta = max(d.drift if initial else d.rate_error_bound for d in diags)
    width = width_tolerance(prob.n, params["width"])
    kernel = kernel_error_tolerance(method, prob.lam, hyper, delta,
                                    why="seed-worst kernel error bound of the lazy diagnostic (Weyl)")
    return kernel if kernel.value > width.value else width
