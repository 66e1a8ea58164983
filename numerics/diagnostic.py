"""lazy_diagnostic: will the NTK rate hold for this data, width and label scale? Decided before training.

In the lazy (NTK) regime the error follows the optimiser's linear recursion on the kernel, and
a rate set by lambda_0 is off by the relative error of lambda_0 in the kernel the net trains
with. Two effects move it (docs/theory.md#beyond-lazy):

- fluctuation: lambda_min(H(W_0)) differs from lambda_0(H-inf) by O(sqrt(n/m)) (exact, given W_0);
- drift: training moves every neuron; in the lazy limit the total move is the minimum-norm one,
  W_inf - W_0 = -J^T H(W_0)^{-1} e_0 (J = du/dW at W_0, e_0 = u_0 - y), i.e. per neuron
  dw_r = -(a_r/sqrt(m)) sum_i 1{w_r.x_i >= 0} x_i c_i with c = H(W_0)^{-1} e_0.
  The activation patterns it flips change the kernel to H(W_0 + dW); by Weyl's inequality every
  eigenvalue moves by at most ||H(W_0 + dW) - H(W_0)||_2 (a bound, used for tolerances).

Both are relative to lambda_min, so ill-conditioned data (small lambda_0, large c ~ e_0/lambda_0)
pays twice: the error grows like kappa m^{-1/2} rather than sqrt(n/m). For a simple root the
relative error of log(rho) is that of lambda_0 (GD: log(1 - eta lam_0) ~ -eta lam_0); at a
double root it is amplified to ~ its square root (docs/theory.md#discrete).

The verdict uses both: "lazy" needs the bound within the tolerance, "not lazy" the estimate beyond
it, anything between is "marginal". The estimate: a rate set by lambda_0 follows the bottom eigenvalue
of the kernel the net has while the slow mode decays, i.e. of H(W_0 + s dW) for s between 0 and 1
along the lazy path. Weyl's bound charges the whole norm of the change to that eigenvalue; but the
change is mostly in other directions and partly of opposite signs (flips that add and that remove
a neuron's contribution), so the bottom eigenvalue moves by far less (first order: v_0^T dH v_0,
v_0 its eigenvector). rate_error = max over s in {0, 1/2, 1} of
|lambda_min(H(W_0 + s dW)) / lambda_0(H-inf) - 1|, computed exactly (three n x n kernels).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkode.errors import NtkodeError

from .data import as_labels
from .kernels import as_inputs, kernel_spectrum, ntk_empirical, ntk_infinite
from .network import forward, init_network

VERDICTS = ("lazy", "marginal", "not lazy")


#: points s of the lazy path W_0 + s dW at which the bottom eigenvalue is read
PATH = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class LazyDiagnostic:
    """What `lazy_diagnostic` predicts for one net (all relative errors are fractions, not %).

    kappa: lambda_max/lambda_min of H(W_0). fluctuation: |lambda_min(H(W_0))/lambda_0(H-inf) - 1|.
    drift: ||H(W_0 + dW) - H(W_0)||_2 / lambda_min(H(W_0)) (Weyl bound on any eigenvalue's relative
    move). rate_error_bound = fluctuation + drift: a bound on the relative error of a simple-root
    rate against the NTK (H-inf) prediction (claims size tolerances with it). path_shift: the
    largest |lambda_min(H(W_0 + s dW))/lambda_min(H(W_0)) - 1| over s in PATH (the bottom
    eigenvalue's own move). rate_error: the estimate max_s |lambda_min(H(W_0 + s dW))/lambda_0 - 1|.
    movement: max_r ||dw_r||, the per-neuron move of the lazy limit.
    verdict: "lazy" when rate_error_bound <= tolerance, "not lazy" when rate_error > tolerance, else
    "marginal" (the bound allows more, the estimate expects less: undecided).
    """

    width: int
    kappa: float
    fluctuation: float
    drift: float
    rate_error_bound: float
    path_shift: float
    rate_error: float
    movement: float
    tolerance: float
    verdict: str

    def describe(self) -> str:
        """One line for tables and notes."""
        return (f"lazy diagnostic (m={self.width}): {self.verdict}; predicted rate error {self.rate_error:.3g} "
                f"(bound {self.rate_error_bound:.3g} = lambda_min fluctuation {self.fluctuation:.3g} + drift "
                f"{self.drift:.3g}; bottom eigenvalue's move along the lazy path {self.path_shift:.3g}; kappa "
                f"{self.kappa:.3g}), max neuron move {self.movement:.3g}; tolerance {self.tolerance:g}")


def lazy_move(W: np.ndarray, a: np.ndarray, X: np.ndarray, c: np.ndarray) -> np.ndarray:
    """dW = -J^T c for only W trained: row r is -(a_r/sqrt(m)) sum_i 1{w_r.x_i >= 0} x_i c_i."""
    active = (W @ X.T >= 0).astype(float)
    return -(a[:, None] / np.sqrt(W.shape[0])) * ((active * c[None, :]) @ X)


def verdict_for(bound: float, estimate: float, tolerance: float) -> str:
    """"lazy" when the bound is within the tolerance (the rate cannot be further off), "not lazy" when the
    estimate is beyond it (the rate is expected to be further off), else "marginal" (undecided)."""
    if bound <= tolerance:
        return VERDICTS[0]
    return VERDICTS[2] if estimate > tolerance else VERDICTS[1]


def lazy_diagnostic(X, y, width: int, seed: int = 0, kappa: float = 1.0, tolerance: float = 0.1) -> LazyDiagnostic:
    """Predict, before training, how far a width-`width` net's rate is from the NTK prediction.

    X (n, d), y (n,); the net is `init_network(width, d, seed, kappa)` (what `simulate` trains with
    that seed), only W trained, loss 1/2 ||u - y||^2. `tolerance`: the relative rate error the
    verdict accepts (0.1 = 10%).
    """
    X = as_inputs(X)
    y = as_labels(y, X.shape[0])
    if int(width) != width or width < 1:
        raise NtkodeError(f"width must be a positive integer; got {width!r}", param="width")
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise NtkodeError(f"tolerance must be a positive number; got {tolerance!r}", param="tolerance")
    W, a = init_network(int(width), X.shape[1], seed, kappa)
    H0 = ntk_empirical(W, a, X)
    lam0 = kernel_spectrum(H0)[0]
    lam_inf = kernel_spectrum(ntk_infinite(X))[0]
    if lam0[0] <= 0 or lam_inf[0] <= 0:
        raise NtkodeError("the kernel is singular on these inputs (repeated or parallel points?)", param="X")
    c = np.linalg.solve(H0, forward(W, a, X) - y)
    dW = lazy_move(W, a, X, c)
    drift = float(np.linalg.norm(ntk_empirical(W + dW, a, X) - H0, 2) / lam0[0])
    fluctuation = float(abs(lam0[0] / lam_inf[0] - 1.0))
    bottom = np.array([kernel_spectrum(ntk_empirical(W + s * dW, a, X))[0][0] for s in PATH])
    rate_error = float(np.max(np.abs(bottom / lam_inf[0] - 1.0)))
    return LazyDiagnostic(int(width), float(lam0[-1] / lam0[0]), fluctuation, drift, fluctuation + drift,
                          float(np.max(np.abs(bottom / lam0[0] - 1.0))), rate_error,
                          float(np.max(np.linalg.norm(dW, axis=1))), float(tolerance),
                          verdict_for(fluctuation + drift, rate_error, tolerance))
