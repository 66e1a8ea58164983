"""A linear-rate claim for any declared method: qhm-rate, triple-momentum-rate and `ntkode verify --method`.

The measured per-step rate of a wide net (seed-mean slope of log|u_i^T e_k| along the eigenvector of
H-infinity attaining the spectral radius, `claims_common`) against the declaration's spectral radius on
H-infinity and on each seed's H(W_0) (docs/theory.md#verification).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
import sympy as sp

from ntkode.declaration import Method, load_method
from ntkode.errors import NtkodeError
from ntkode.symbols import lam, z
from ntkode.theory import RateResult, named_tuning, optimal, spectral_radius
from ntkode.theory.discrete import rate_polynomial

from .claim import Claim, Evidence, Figure, Prediction, Tolerance
from .claims_common import (
    PROBLEM_QUICK, Problem, checks_from, diagnostic_note, diagnostics, error_curves, initial_spectra,
    kernel_error_tolerance, mean_and_stderr, run_simulation, seed_fits, sensitivity_note,
    sphere_problem, width_tolerance,
)

#: hyper-parameters (declared names) from the claim's problem, known before training
HyperRule = Callable[[Problem], dict]
#: allowance for fitting rho with a free k^q prefactor (as nag-sc-linear)
POWER_FIT = 0.02
#: the simulation runs until the slowest mode has fallen by about e^-DECAY (then round-off takes over)
DECAY = 28.0
#: the fewest steps a run may have (the fit needs its second half to hold several envelope points)
MIN_STEPS = 40


def _log_rate(method: Method, lam: np.ndarray, hyper: Mapping[str, float]) -> float:
    return math.log(spectral_radius(method, lam, **hyper).rate)


#: relative gap below rho within which a mode counts as attaining it (`fitted_mode`)
ATTAIN = 1e-6


def fitted_mode(theory: RateResult) -> int:
    """The smallest eigenvalue's index among those attaining rho (to a relative ATTAIN): where the labels put
    the error (`slowest_mode` takes the last of tied ends, e.g. triple momentum's -rho at lam_max).

    ATTAIN = 1e-6: a double root's modulus is computed to ~sqrt(eps) = 1.5e-8 relative (Polyak-tuned QHM
    reads rho (1 - 2.8e-8) at lam_0 and rho at lam_max), while modes 1e-6 apart drift apart by at most
    max_steps 1e-6 = 0.2% over a 2000-step run, far below any fit's resolution.
    """
    return int(np.flatnonzero(theory.radius >= theory.rate * (1 - ATTAIN))[0])


def stable_hyper(method: Method, rule: HyperRule, prob: Problem) -> dict:
    """`rule(prob)`, refused (NtkodeError, param "hyper") unless the method converges on H-inf's spectrum."""
    hyper = rule(prob)
    theory = spectral_radius(method, prob.lam, **hyper)
    if not theory.stable:
        raise NtkodeError(
            f"the setting {hyper} makes {method.name} diverge on H-infinity's spectrum [{prob.lam0:.4g}, "
            f"{prob.lam_max:.4g}] (spectral radius {theory.rate:.4g} >= 1); a linear-rate claim needs a "
            "converging hyper",
            param="hyper")
    return hyper


def memory_rate(method: Method, hyper: Mapping[str, float]) -> float:
    """r_0: the largest root modulus of p(z) at lam = 0 once one point mode z = 1 is set aside (0 if none).

    At lam = 0 (weight directions the kernel does not see) a gradient-free step keeps W fixed, so z = 1 is
    a root; the others are the memory of the method's auxiliary states there (heavy ball: beta; AggMo:
    1 - a, 1 - a^2; gd: none). docs/theory.md#verification, memory outside the kernel's spectrum.
    """
    values = method.scalar_hyper(hyper)
    poly = rate_polynomial(method).subs({lam: 0, **{s: values[n] for s, n in zip(method.symbols, method.hyper_names)}})
    roots = np.roots([complex(c) for c in sp.Poly(poly, z).all_coeffs()])
    rest = np.delete(roots, np.argmin(np.abs(roots - 1.0)))
    return float(np.max(np.abs(rest))) if rest.size else 0.0


def memory_steps(method: Method, hyper: Mapping[str, float], prob: Problem, params: Mapping[str, Any]) -> int | None:
    """The last step at which the fitted mode still dominates the memory outside the kernel's spectrum,
    known before training; None when that memory fades at least as fast as rho (r_0 <= rho).

    A finite net's weights have m d - n directions the kernel does not see. Activation flips turn part of
    each gradient into them; there the recursion is the one at lam = 0, whose roots other than z = 1 fade
    like r_0^k, and later flips carry that motion back into the error. So e_k ~ A rho^k + eps r_0^k, and
    when r_0 > rho the second term overtakes the first at k* = log(A/eps)/log(r_0/rho). eps is not given
    by the NTK; it is modelled as the seed-worst kernel error bound delta of the lazy diagnostic (the
    share of the dynamics the tolerances already allow to differ from the NTK recursion), A = 1 (labels
    along the slowest eigenvector): k* = log(1/delta)/log(r_0/rho). This is a model, not a bound: on the
    sphere with AggMo (eta = 0.5, a = 0.1, r_0 = 0.99 > rho = 0.960, m = 65536) the error follows rho^k
    to ~1e-8 and then jumps along a floor, i.e. eps ~1e-6 << delta = 0.03 (docs/theory.md#verification).
    """
    r0 = memory_rate(method, hyper)
    rho = spectral_radius(method, prob.lam, **hyper).rate
    if r0 <= rho:
        return None
    delta = max(d.rate_error_bound for d in diagnostics(prob, params["width"], params["seeds"]))
    return int(math.log(1.0 / delta) / math.log(r0 / rho))


def settle_steps(method: Method, hyper: Mapping[str, float], prob: Problem, share: float) -> float:
    """The first step at which the fitted eigenvalue's other roots have fallen to `share` of its dominant
    one: log(1/share)/log(rho/rho_2), rho_2 the largest of them (0 steps without one; inf at a double root)."""
    theory = spectral_radius(method, prob.lam, **hyper)
    mods = np.abs(np.asarray(theory.roots)[fitted_mode(theory)])
    rest = mods[mods < theory.rate * (1 - 1e-9)]
    if rest.size == 0 or rest.max() == 0.0:
        return 0.0
    gap = math.log(theory.rate / float(rest.max()))
    return math.log(1.0 / share) / gap if gap > 0 else math.inf


def claim_steps(method: Method, hyper: Mapping[str, float], prob: Problem, params: Mapping[str, Any]) -> int:
    """Steps for the slowest mode to fall by e^-DECAY at theory's rate, at most params["max_steps"], and no
    further than `memory_steps`. A run cut there is refused (NtkodeError, param "hyper") unless its fit
    window, the second half, starts after the fitted mode's own transient has fallen to the same share
    delta (`settle_steps`) and it holds MIN_STEPS steps. Both steps are log(1/delta) over a fixed log-gap,
    so apart from MIN_STEPS the verdict does not depend on the width: the refusal reads
    log(rho/rho_2) < 2 log(r_0/rho)."""
    rate = spectral_radius(method, prob.lam, **hyper).rate
    steps = int(min(params["max_steps"], max(MIN_STEPS, math.ceil(DECAY / -math.log(rate)))))
    memory = memory_steps(method, hyper, prob, params)
    if memory is None or memory >= steps:
        return steps
    delta = max(d.rate_error_bound for d in diagnostics(prob, params["width"], params["seeds"]))
    settle = settle_steps(method, hyper, prob, delta)
    if memory < max(MIN_STEPS, 2 * settle):
        raise NtkodeError(
            f"{method.name}'s rate cannot be isolated on a finite net in this setting: its memory outside the "
            f"kernel's spectrum fades like {memory_rate(method, hyper):.4g}^k, slower than rho = {rate:.4g}, and "
            f"activation flips may carry it into the error from step {memory} = log(1/delta)/log(r_0/rho) "
            f"(delta = {delta:.3g}), before the fit window (the run's second half) can start after rho's own "
            f"transient (step {settle:.0f}) (both scale with log(1/delta): in this model no width helps); a "
            "linear-rate claim needs a hyper whose memory fades faster",
            param="hyper")
    return memory


def nearly_double(method: Method, hyper: Mapping[str, float], prob: Problem, steps: int) -> bool:
    """Whether the two largest roots at the eigenvalue attaining rho are too close to separate over the run:
    the second one's share (r2/r1)^k must fall by e^-10 within `steps`, i.e. |r1 - r2| steps >= 10 |r1|
    (docs/theory.md#verification, double roots); else e_k ~ k^q rho^k and the fit needs the k^q prefactor."""
    theory = spectral_radius(method, prob.lam, **hyper)
    roots = np.asarray(theory.roots)[fitted_mode(theory)]
    if roots.size < 2:
        return False
    r1, r2 = sorted(roots, key=abs, reverse=True)[:2]
    return abs(r1 - r2) * steps < 10 * abs(r1)


def rate_tolerances(method: Method, hyper: Mapping[str, float], prob: Problem, params: Mapping[str, Any],
                    lam_emp: np.ndarray) -> tuple[Tolerance, Tolerance, bool]:
    """(tolerance against H-inf, against H(W_0), whether to fit a k^q prefactor), all before training.

    Each relative tolerance on log(rho) is the larger of the existing linear claims' two: 2 sqrt(n/m)
    (`width_tolerance`, hb-linear) and theory's own move of log(rho) for the diagnosed kernel error
    (`kernel_error_tolerance`, nag-sc-linear; `lazy_diagnostic`, Weyl): H-inf absorbs the
    lambda_min(H(W_0)) fluctuation and the drift bound, H(W_0) the drift bound. At a nearly double root
    (`nearly_double`) rho is fitted with a free k^q prefactor and POWER_FIT is added.
    """
    power = nearly_double(method, hyper, prob, claim_steps(method, hyper, prob, params))
    extra, why = (POWER_FIT, f"plus {POWER_FIT} for the k^q fit of a nearly double root") if power else (0.0, "")
    width = width_tolerance(prob.n, params["width"], extra, why)
    diags = diagnostics(prob, params["width"], params["seeds"])
    inf = kernel_error_tolerance(method, prob.lam, hyper, max(d.rate_error for d in diags), extra,
                                 "lambda_min(H(W_0)) fluctuation + drift bound" + (f"; {why}" if why else ""))
    drift = max(d.drift for d in diags)
    emp = max((kernel_error_tolerance(method, lam, hyper, drift, extra, "drift bound" + (f"; {why}" if why else ""))
               for lam in lam_emp), key=lambda t: t.value)
    return max(width, inf, key=lambda t: t.value), max(width, emp, key=lambda t: t.value), power


def declared_predictions(method: Method, rule: HyperRule, params: Mapping[str, Any], scale: float = 1.0,
                         lam_emp: np.ndarray | None = None) -> list[Prediction]:
    """log(rho) on H-inf and on H(W_0) (seed mean), both x scale, hyper-parameters from the unscaled problem."""
    prob = sphere_problem(params)
    hyper = stable_hyper(method, rule, prob)
    lam_emp = initial_spectra(prob, params["width"], params["seeds"]) if lam_emp is None else lam_emp
    tol_inf, tol_emp, _ = rate_tolerances(method, hyper, prob, params, lam_emp)
    emp = float(np.mean([_log_rate(method, scale * lam, hyper) for lam in lam_emp]))
    return [Prediction("H-inf", "log rate per step", _log_rate(method, scale * prob.lam, hyper), tol_inf),
            Prediction("H(W0)", "log rate per step", emp, tol_emp)]


GENERIC_DOC = """{title} converges at the spectral radius of its declared recursion.

    Theorem: in the NTK regime the error follows the declaration's linear recursion on the kernel
    (docs/theory.md#state-space); per eigenvalue lam its characteristic polynomial det(zI - T(lam))
    has roots whose largest modulus over the spectrum, rho, is the per-step rate.
    Algorithm: the declaration {name} ({source}): {step}
    Theoretical guarantee: {guarantee}
    References: {reference}; Lessard, Recht & Packard 2016 (the state-space view).
    Measurement: {setting} on n points of the sphere, labels = H-infinity's bottom eigenvector;
    seed-mean envelope slope of log|u_i^T e_k| along the mode i attaining rho, over enough steps for
    that mode to fall by e^-28 (at most max_steps), or fewer when the recursion's memory outside the
    kernel's spectrum (roots at lam = 0 besides z = 1, largest r_0) fades slower than rho: then the run
    stops by k* = log(1/delta)/log(r_0/rho), delta the lazy diagnostic's kernel error bound, and a setting
    whose k*/2 comes before the fitted mode's other roots have fallen to delta is refused (`memory_steps`,
    `claim_steps`).
    Tolerance: relative on log(rho), the larger of 2 sqrt(n/m) (finite width, as hb-linear) and theory's
    own move of log(rho) for the kernel error the lazy diagnostic predicts before training (as
    nag-sc-linear; square-root sensitivity at a double root); at a nearly double root rho is fitted
    with a free k^q prefactor and 0.02 is added (`rate_tolerances`).
    Sensitivity: the note gives how far each prediction moves, in tolerances, for the spectrum x0.9/x1.1.
    """


def _memory_note(method: Method, hyper: Mapping[str, float], prob: Problem, params: Mapping[str, Any]) -> str:
    memory = memory_steps(method, hyper, prob, params)
    if memory is None:
        return ""
    return (f"; memory outside the kernel's spectrum fades like r_0^k, r_0 = {memory_rate(method, hyper):.4g} > rho: "
            f"the run stops by step {memory} = log(1/delta)/log(r_0/rho) (`memory_steps`)")


def _measure(method: Method, rule: HyperRule) -> Callable[[Mapping[str, Any], str], Evidence]:
    def measure(params: Mapping[str, Any], device: str) -> Evidence:
        prob = sphere_problem(params)
        hyper = stable_hyper(method, rule, prob)
        steps = claim_steps(method, hyper, prob, params)
        sim = run_simulation(method, prob, params, [hyper], steps, device, movement=False)
        theory = spectral_radius(method, prob.lam, **hyper)
        mode = fitted_mode(theory)
        _, _, power = rate_tolerances(method, hyper, prob, params, sim.lam_emp[0])
        fits = seed_fits(sim, 0, mode, envelope=True, power=power)
        measured = mean_and_stderr([f.value for f in fits], fits[0].stderr)
        predictions = declared_predictions(method, rule, params, 1.0, sim.lam_emp[0])
        checks = checks_from(predictions, [measured, measured])
        curves = error_curves(method.name, sim.projections[0, 0, 0, :, mode], fits[0], theory.rate)
        figure = Figure(f"{method.name}: slowest eigen-direction (seed 0)", "step k", "|u_i^T e_k|", curves)
        notes = [f"lambda_0 = {prob.lam0:.4g}, lambda_max = {prob.lam_max:.4g} (H-inf); hyper "
                 + ", ".join(f"{k} = {v:.4g}" for k, v in hyper.items()) + f"; {steps} steps"
                 + ("; k^q prefactor fitted" if power else "") + _memory_note(method, hyper, prob, params),
                 sensitivity_note(lambda p, s: declared_predictions(method, rule, p, s, sim.lam_emp[0]), params),
                 diagnostic_note(diagnostics(prob, params["width"], params["seeds"]))]
        return Evidence(checks, figure, notes)

    return measure


def declared_rate_claim(method: Any, rule: HyperRule, name: str, setting: str, guarantee: str,
                        defaults: Mapping[str, Mapping[str, Any]], statement: str | None = None) -> Claim:
    """The generic linear-rate Claim for `method` (a built-in name, .toml path or Method) at `rule`'s setting."""
    m = load_method(method)
    measure = _measure(m, rule)
    measure.__doc__ = GENERIC_DOC.format(title=m.title or m.name, name=m.name, source=m.source, step="; ".join(m.step),
                                         guarantee=guarantee, reference=m.reference or "(none declared)",
                                         setting=setting)
    return Claim(
        name,
        statement or f"{m.title or m.name} converges at the spectral radius of its declared recursion ({setting}).",
        measure,
        predict=lambda params, scale=1.0: declared_predictions(m, rule, params, scale),
        defaults=defaults,
    )


def _defaults(quick: Mapping[str, Any] = (), full: Mapping[str, Any] = ()) -> dict[str, dict[str, Any]]:
    return {"quick": {**PROBLEM_QUICK, "width": 65536, "seeds": 3, "max_steps": 2000, **dict(quick)},
            "full": {**PROBLEM_QUICK, "width": 262144, "seeds": 8, "max_steps": 4000, **dict(full)}}


def qhm_rule(prob: Problem) -> dict:
    """QHM at alpha = 1/lam_max, beta = 0.3, nu = 0.7: a real dominant root at lam_0, so rho moves with the kernel
    (with complex roots |z|^2 = beta (1 - alpha lam (1 - nu)) barely would)."""
    return {"alpha": 1.0 / prob.lam_max, "beta": 0.3, "nu": 0.7}


def triple_momentum_rule(prob: Problem) -> dict:
    """Triple momentum's standard tuning on H-inf's [lam_0, lam_max] (the declaration's [tuning.standard])."""
    return named_tuning("triple-momentum", "standard", prob.lam0, prob.lam_max)["hyper"]


QHM_RATE = declared_rate_claim(
    "qhm", qhm_rule, "qhm-rate", "alpha = 1/lambda_max, beta = 0.3, nu = 0.7",
    "linear convergence at rho (tight for the linearised dynamics); at nu = 1 QHM is heavy ball with step "
    "alpha(1 - beta) and momentum beta (Ma & Yarats 2019).",
    _defaults(),
    "Quasi-hyperbolic momentum (nu = 0.7) converges at the spectral radius of its declared recursion.")

TRIPLE_MOMENTUM_RATE = declared_rate_claim(
    "triple-momentum", triple_momentum_rule, "triple-momentum-rate", "standard tuning on H-infinity",
    "rho = 1 - 1/sqrt(kappa) at the standard tuning (Van Scoy, Freeman & Lynch 2018), the fastest rate "
    "certifiable for all smooth strongly convex functions; on quadratics it is attained at lam_0 by a simple root.",
    _defaults(),
    "Triple momentum at its standard tuning converges at its predicted rate 1 - 1/sqrt(kappa).")


def user_claim(path: str, hyper: Mapping[str, float] | None = None) -> Claim:
    """`ntkode verify --method FILE.toml [--hyper ...]`: the generic claim for a user's declaration. Without
    hyper-parameters the declaration is tuned on H-infinity's [lam_0, lam_max] (`optimal`: its [optimum] or
    the numeric tuner). Unknown names, missing ones, values outside their domains and a setting that diverges
on H-infinity's spectrum are NtkodeErrors, raised here, before anything runs."""
    m = load_method(path)
    given = dict(hyper or {})
    if given:
        values = m.scalar_hyper(given)

        def rule(prob: Problem) -> dict:
            return dict(values)
        setting = ", ".join(f"{k} = {v:g}" for k, v in values.items())
    else:
        def rule(prob: Problem) -> dict:
            return dict(optimal(m, prob.lam0, prob.lam_max)["hyper"])
        setting = "tuned on H-infinity's [lambda_0, lambda_max] (optimal)"
    stable_hyper(m, rule, sphere_problem(PROBLEM_QUICK))  # bad input is refused before anything runs
    extra = {"method": m.name, "fingerprint": m.fingerprint, "hyper": dict(given)}
    defaults = _defaults(extra, extra)
    _refuse_unfittable(m, rule, defaults)
    guarantee = "linear convergence at rho (the declaration's own polynomial; no literature guarantee is assumed)"
    return declared_rate_claim(m, rule, f"{m.name}-declared-rate", setting, guarantee, defaults)


def _refuse_unfittable(method: Method, rule: HyperRule, defaults: Mapping[str, Mapping[str, Any]]) -> None:
    """`claim_steps`'s refusal, raised before anything runs when every setting (quick, full) refuses; a
    setting that refuses alone (MIN_STEPS) fails at its measurement with the same line."""
    refusals = []
    for params in defaults.values():
        prob = sphere_problem(params)
        try:
            claim_steps(method, rule(prob), prob, params)
        except NtkodeError as err:
            refusals.append(err)
    if len(refusals) == len(defaults):
        raise refusals[0]
