"""Validation of `ntkode.numerics.lazy_diagnostic` (run by hand; a small version runs in the tests).

For each data set (condition numbers from ~7 to ~400), label scale and width: the diagnostic's
verdict for seed 0, made before training, against whether GD's measured rate along H-inf's
slowest eigenvector is within the same tolerance of the NTK prediction log(1 - eta lam_0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ntkode.numerics import digits_data, kernel_spectrum, lazy_diagnostic, ntk_infinite, paper_data, simulate, sphere_data

from .fit import fit_linear_rate

DataSet = Callable[[int], tuple[np.ndarray, np.ndarray]]

#: name -> loader (argument: the data seed); labels are rescaled to unit norm before the label scale is applied
DATASETS: dict[str, DataSet] = {
    "sphere n=10 d=10": lambda seed: sphere_data(10, 10, seed),
    "sphere n=20 d=5": lambda seed: sphere_data(20, 5, seed),
    "digits n=20 (0,1)": lambda seed: digits_data(20, (0, 1), seed),
    "paper n=12 normalised": lambda seed: paper_data(12, seed, normalise=True),
}


@dataclass(frozen=True)
class Case:
    """One grid point: what the diagnostic said and what training measured."""

    data: str
    kappa: float
    label_scale: float
    width: int
    verdict: str
    predicted_error: float
    measured_error: float
    #: the verdict of the earlier rule (bound alone: lazy <= tolerance < marginal <= 2 tolerance < not lazy)
    bound_verdict: str = ""

    @property
    def within(self) -> bool:
        return self.measured_error <= TOLERANCE


TOLERANCE = 0.1


def measured_rate_error(X: np.ndarray, y: np.ndarray, width: int, steps: int) -> float:
    """|log rho_fit / log(1 - eta lam_0) - 1| for GD at eta = 1/lam_max (seed 0), rho fitted on the
    projection of e_k on H-inf's slowest eigenvector over steps [steps/4, steps]."""
    lam = kernel_spectrum(ntk_infinite(X))[0]
    eta = 1.0 / lam[-1]
    sim = simulate("gd", X, y, [width], steps, seeds=1, hyper={"lr": eta}, device="cpu", progress=False,
                   movement=False)
    fit = fit_linear_rate(sim.projections[0, 0, 0, :, 0], window=(steps // 4, steps + 1))
    return abs(fit.value / math.log(1 - eta * lam[0]) - 1)


def bound_only_verdict(bound: float) -> str:
    """The verdict before issue 9's revision, for comparison: the bound alone, marginal up to twice the tolerance."""
    return "lazy" if bound <= TOLERANCE else "marginal" if bound <= 2 * TOLERANCE else "not lazy"


def diagnostic_grid(datasets: Sequence[str] = tuple(DATASETS), widths: Sequence[int] = (1024, 8192, 65536),
                    label_scales: Sequence[float] = (1.0, 4.0), steps: int = 200, data_seed: int = 0) -> list[Case]:
    """Every (data set, label scale, width): the diagnostic's verdict and the measured rate error.
    data_seed 0 is the grid the verdict rule was revised on; other seeds are fresh data for it."""
    cases = []
    for name in datasets:
        X, y0 = DATASETS[name](data_seed)
        lam = kernel_spectrum(ntk_infinite(X))[0]
        for scale in label_scales:
            y = scale * y0 / np.linalg.norm(y0)
            for m in widths:
                diag = lazy_diagnostic(X, y, m, seed=0, tolerance=TOLERANCE)
                cases.append(Case(name, float(lam[-1] / lam[0]), scale, m, diag.verdict, diag.rate_error,
                                  measured_rate_error(X, y, m, steps),
                                  bound_only_verdict(diag.rate_error_bound)))
    return cases


def confusion_table(cases: Sequence[Case], bound: bool = False) -> str:
    """Rows: verdict; columns: measured within / outside the tolerance; and the agreement on
    decisive verdicts ("lazy" should be within, "not lazy" outside; "marginal" is listed apart).
    bound=True: the earlier rule's verdicts (`Case.bound_verdict`)."""
    verdicts = [c.bound_verdict if bound else c.verdict for c in cases]
    lines = [f"{'verdict':<10} {'within ' + str(TOLERANCE):>12} {'outside':>8}"]
    for verdict in ("lazy", "marginal", "not lazy"):
        row = [c for c, v in zip(cases, verdicts) if v == verdict]
        lines.append(f"{verdict:<10} {sum(c.within for c in row):>12} {sum(not c.within for c in row):>8}")
    decisive = [(c, v) for c, v in zip(cases, verdicts) if v != "marginal"]
    agree = sum((v == "lazy") == c.within for c, v in decisive)
    lines.append(f"agreement on decisive verdicts: {agree}/{len(decisive)}"
                 + (f" = {agree / len(decisive):.0%}" if decisive else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    grid = diagnostic_grid(data_seed=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for case in grid:
        print(f"{case.data:<24} kappa {case.kappa:7.1f} |y| {case.label_scale:g} m {case.width:>6}: "
              f"{case.verdict:<9} predicted {case.predicted_error:.3g} measured {case.measured_error:.3g} "
              f"(bound's verdict {case.bound_verdict})")
    print("verdict (bound for lazy, estimate for not lazy):")
    print(confusion_table(grid))
    print("earlier verdict (bound alone):")
    print(confusion_table(grid, bound=True))
