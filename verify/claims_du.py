"""du-width: Du et al.'s sufficient width for GD's linear convergence, next to the width at which it is observed."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ntkode.numerics import lazy_diagnostic
from ntkode.theory import spectral_radius

from .claim import Check, Claim, Curve, Evidence, Figure, Tolerance
from .claims_common import PROBLEM_QUICK, run_simulation, seed_fits, slowest_mode, sphere_problem

#: a measured rate within this relative error of the NTK prediction counts as "linear at the NTK rate"
RATE_TOLERANCE = 0.1


def du_sufficient_width(n: int, lam0: float, delta: float) -> float:
    """Du, Zhai, Poczos & Singh (ICLR 2019), Theorem 3.1: m = Omega(n^6 / (lam_0^4 delta^3)) suffices for
    ||u(t) - y||^2 <= exp(-lam_0 t) ||u(0) - y||^2 with probability 1 - delta (w_r ~ N(0, I)); the
    unstated constant is taken as 1."""
    return n**6 / (lam0**4 * delta**3)


def measure_du_width(params: Mapping[str, Any], device: str) -> Evidence:
    """Du et al.'s sufficient width is far above the width at which GD is observed to converge at the NTK rate.

    Theorem: with m = Omega(n^6/(lam_0^4 delta^3)) neurons (lam_0 = lambda_min(H-inf)),
    gradient flow on the two-layer ReLU net converges linearly, ||e(t)||^2 <= exp(-lam_0 t)
    ||e(0)||^2, with probability 1 - delta; the width is sufficient, not necessary.
    Algorithm: gradient descent, eta = lr_scale/lam_max, only W trained, ||y|| = 1.
    Theoretical guarantee: linear convergence for every m above the sufficient width
    (constant unstated; taken as 1 here, so the reported width is a lower estimate of theirs).
    References: Du, Zhai, Poczos & Singh, "Gradient descent provably optimizes
    over-parameterized neural networks", ICLR 2019 (arXiv 1810.02054), Theorem 3.1.
    Measurement: GD on every width of `widths`; per width the seed-worst relative error of
    the fitted rate (slowest eigen-direction of H-inf) against log(1 - eta lam_0); the
    observed width is the smallest width from which every larger one is within 0.1.
    Also the `lazy_diagnostic` verdicts (before training).
    Tolerance: log10(sufficient width / observed width) >= 0: the theorem would be
    contradicted if the net needed more than its sufficient width (the check can fail only
    that way; it is not a rate check).
    """
    prob = sphere_problem(params)
    widths = np.asarray(params["widths"])
    hyper = [{"lr": params["lr_scale"] / prob.lam_max}]
    sim = run_simulation("gd", prob, params, hyper, params["steps"], device, widths=widths, movement=False)
    theory = spectral_radius("gd", prob.lam, **hyper[0])
    mode = slowest_mode(theory)
    errors = np.array([max(abs(f.value / math.log(theory.rate) - 1) for f in seed_fits(sim, 0, mode, width=w))
                       for w in range(widths.size)])
    ok = errors <= RATE_TOLERANCE
    tail = [i for i in range(widths.size) if ok[i:].all()]
    observed = float(widths[tail[0]]) if tail else math.inf
    sufficient = du_sufficient_width(prob.n, prob.lam0, params["delta"])
    check = Check("log10 ratio", "log10(Du et al. width / observed width)", math.log10(sufficient / widths[-1]),
                  math.log10(sufficient / observed) if tail else -math.inf, 0.0,
                  Tolerance("range", (0.0, math.inf), "a sufficient width must not be below the width needed"))
    verdicts = [lazy_diagnostic(prob.X, prob.y, int(m), seed=0, tolerance=RATE_TOLERANCE).verdict for m in widths]
    curves = [
        Curve("seed-worst relative rate error", widths.tolist(), errors.tolist(), "marker"),
        Curve(f"tolerance {RATE_TOLERANCE:g}", [float(widths[0]), sufficient], [RATE_TOLERANCE] * 2, "predicted"),
        *([Curve(f"observed width {observed:.3g}", [observed] * 2, [float(errors.min()), 1.0], "predicted")]
          if tail else []),
        Curve(f"Du et al. sufficient width {sufficient:.3g}", [sufficient] * 2, [float(errors.min()), 1.0],
              "predicted"),
    ]
    figure = Figure("du-width: width needed vs width Du et al. suffice with", "width m",
                    "relative error of GD's rate vs the NTK prediction", curves, xscale="log")
    notes = [f"n = {prob.n}, lambda_0 = {prob.lam0:.4g}, delta = {params['delta']:g}: sufficient width "
             f"n^6/(lambda_0^4 delta^3) = {sufficient:.3g}; observed {observed:g}",
             f"seed-worst relative rate errors {np.round(errors, 4).tolist()} at m = {widths.tolist()}",
             f"lazy diagnostic verdicts (seed 0, before training): {verdicts}"]
    return Evidence([check], figure, notes)


DU_WIDTH = Claim(
    "du-width",
    "GD converges linearly at the NTK rate at widths many orders below Du et al.'s sufficient width.",
    measure_du_width,
    {
        "quick": {**PROBLEM_QUICK, "widths": (64, 256, 1024, 4096, 16384), "seeds": 3, "steps": 700,
                  "lr_scale": 1.0, "delta": 0.1},
        "full": {**PROBLEM_QUICK, "widths": (64, 256, 1024, 4096, 16384, 65536), "seeds": 8, "steps": 700,
                 "lr_scale": 1.0, "delta": 0.1},
    },
)
