"""pl-star: the PL* condition (Liu, Zhu & Belkin) certifies GD's rate on the net actually drawn."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import numpy as np

from ntkode.errors import NtkodeError
from ntkode.numerics import forward, init_network, kernel_spectrum, ntk_empirical
from ntkode.theory import spectral_radius

from .claim import Claim, Curve, Evidence, Figure, Prediction, Tolerance
from .claims_common import (
    DIGITS, Problem, antisymmetric_net, finite_width_tolerance, kernel_error_tolerance, mean_and_stderr,
    on_each_dataset, problem, run_simulation, sensitivity_note, width_tolerance,
)
from .fit import MIN_POINTS, REL_FLOOR, fit_linear_rate

#: candidate PL* constants mu = lambda_min(H(W_0)) x these fractions, largest first
MU_GRID = np.linspace(1.0, 0.02, 50)

#: the nets the claim trains: `init_network`'s draw, or its antisymmetric doubling (`antisymmetric_net`)
INITS = ("ntk", "antisymmetric")

#: float64 must resolve every GD step's preactivation update to 1/UPDATE_RESOLUTION (`resolution_floor`)
UPDATE_RESOLUTION = 1e4


@dataclass(frozen=True)
class PLCertificate:
    """What `pl_certificate` proves for one drawn net (seed) before training.

    mu: PL* constant on the ball (0 when no candidate is self-consistent: the certificate is vacuous).
    radius: per-neuron ball radius R(mu) the GD trajectory provably stays in. flip: the bound on
    ||H(W) - H(W_0)||_2 over that ball. beta: smoothness bound lambda_max(H(W_0)) + flip.
    lam_min0: lambda_min(H(W_0)); e0: the initial error u_0 - y.
    """

    mu: float
    radius: float
    flip: float
    beta: float
    lam_min0: float
    e0: np.ndarray

    @property
    def e0_norm(self) -> float:
        """||u_0 - y||."""
        return float(np.linalg.norm(self.e0))

    def loss_rate(self, eta: float) -> float:
        """Per-step factor of the loss, 1 - 2 eta mu (1 - beta eta/2) (= 1 - eta mu at eta = 1/beta)."""
        return 1.0 - 2.0 * eta * self.mu * (1.0 - self.beta * eta / 2.0)


def net_drawer(params: Mapping[str, Any], d: int) -> Callable[[int, int], tuple[np.ndarray, np.ndarray]]:
    """(width, seed) -> (W, a) of params["init"] (default "ntk": `init_network`; "antisymmetric": `antisymmetric_net`),
    passed to `simulate` as its init, so that the certified net is the trained one."""
    init = params.get("init", "ntk")
    if init not in INITS:
        raise NtkodeError(f"init must be one of {', '.join(INITS)}; got {init!r}", param="init")
    if init == "antisymmetric":
        return lambda width, seed: antisymmetric_net(width, d, seed)
    return lambda width, seed: init_network(width, d, seed)


def plstar_problem(params: Mapping[str, Any]) -> Problem:
    """The claim's `problem` with its labels times params["label_scale"] (default 1)."""
    scale = params.get("label_scale", 1.0)
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise NtkodeError(f"label_scale must be a positive number; got {scale!r}", param="label_scale")
    prob = problem(params)
    return replace(prob, y=float(scale) * prob.y)


def flip_bound(Z: np.ndarray, G: np.ndarray, radius: float) -> float:
    """max ||H(W) - H(W_0)||_2 over {W: ||w_r - w_r(0)|| <= radius for all r}, bounded entrywise.

    Z = W_0 X^T (m, n), G = X X^T with unit rows. H_ij = (x_i.x_j/m) sum_r 1{w_r.x_i >= 0} 1{w_r.x_j >= 0};
    neuron r's product for (i, j) is fixed unless neither point is surely inactive (w_r(0).x < -R) and not
    both surely active (> R). |dH_ij| <= |G_ij| C_ij/m with C_ij the count of such neurons; for a
    matrix dominated entrywise by a non-negative B, ||dH||_2 <= ||B||_2 (Perron-Frobenius).
    """
    reach = (Z >= -radius).astype(float)
    sure = (Z > radius).astype(float)
    count = reach.T @ reach - sure.T @ sure
    return float(np.linalg.eigvalsh(np.abs(G) * count / Z.shape[0])[-1])


def trajectory_radius(grad_scale: float, e0_norm: float, width: int, mu: float) -> float:
    """R(mu) = 2 g ||e_0|| / (sqrt(m) mu), g = sqrt(lambda_max(X X^T)).

    While the loss contracts by (1 - eta mu) per step, ||e_k|| <= (1 - eta mu)^(k/2) ||e_0|| and
    ||grad_{w_r} L|| = ||sum_i e_i 1{w_r.x_i >= 0} x_i|| / sqrt(m) <= g ||e_k|| / sqrt(m), so neuron r
    moves at most eta g ||e_0|| / (sqrt(m) (1 - sqrt(1 - eta mu))) <= R(mu), as 1 - sqrt(1 - x) >= x/2.
    """
    return 2.0 * grad_scale * e0_norm / (math.sqrt(width) * mu)


def pl_certificate(X: np.ndarray, y: np.ndarray, W: np.ndarray, a: np.ndarray) -> PLCertificate:
    """The largest mu in lambda_min(H(W_0)) x MU_GRID with lambda_min(H(W_0)) - flip_bound(R(mu)) >= mu, for the
    net (W, a) = W_0: then lambda_min(H(W)) >= mu on the ball of radius R(mu), which the trajectory cannot leave
    while the PL* inequality holds (docs/theory.md#verification). Rows of X must have unit norm."""
    if not np.allclose(np.linalg.norm(X, axis=1), 1.0):
        raise NtkodeError("the PL* certificate assumes unit-norm inputs", param="X")
    width = W.shape[0]
    lam = kernel_spectrum(ntk_empirical(W, a, X))[0]
    e0 = forward(W, a, X) - y
    e0_norm = float(np.linalg.norm(e0))
    G = X @ X.T
    g = math.sqrt(float(np.linalg.eigvalsh(G)[-1]))
    Z = W @ X.T
    for mu in lam[0] * MU_GRID:
        radius = trajectory_radius(g, e0_norm, width, float(mu))
        flip = flip_bound(Z, G, radius)
        if lam[0] - flip >= mu:
            return PLCertificate(float(mu), radius, flip, float(lam[-1] + flip), float(lam[0]), e0)
    radius = trajectory_radius(g, e0_norm, width, float(lam[0]) / 2)
    return PLCertificate(0.0, radius, flip_bound(Z, G, radius), math.inf, float(lam[0]), e0)


_CERTIFICATES: dict[tuple, list[PLCertificate]] = {}


def certificates(params: Mapping[str, Any]) -> list[PLCertificate]:
    """`pl_certificate` of every seed's net (`net_drawer`), remembered per problem, init and width."""
    prob = plstar_problem(params)
    draw = net_drawer(params, prob.X.shape[1])
    key = (prob.X.tobytes(), prob.y.tobytes(), params.get("init", "ntk"), int(params["width"]), int(params["seeds"]))
    if key not in _CERTIFICATES:
        _CERTIFICATES[key] = [pl_certificate(prob.X, prob.y, *draw(int(params["width"]), s))
                              for s in range(params["seeds"])]
    return _CERTIFICATES[key]


def _eta(certs: list[PLCertificate]) -> float:
    """eta = 1/beta for the seed-worst smoothness bound (every seed then has eta <= 1/beta)."""
    beta = max(c.beta for c in certs)
    if not math.isfinite(beta):
        raise NtkodeError("the PL* certificate is vacuous at this width (no self-consistent mu); widen the net",
                          param="width")
    return 1.0 / beta


def resolution_floor(width: int, eta: float, gram_max: float) -> float:
    """The error norm UPDATE_RESOLUTION eps sqrt(m) / (eta lambda_max(X X^T)) below which float64 blurs GD's steps.

    A step moves preactivation z_rj = w_r.x_j by eta m^(-1/2) |sum_i e_i 1{z_ri >= 0} G_ij| <= eta lambda_max(G)
    ||e|| / sqrt(m), while float64 holds z = O(1) to about eps (ulp); at this floor every update still spans
    UPDATE_RESOLUTION ulps. It is absolute: tiny labels (small ||e_0||) reach it after less relative decay.
    Measured (digits, n = 12, m = 2^14, y of norm 1e-3): GD's error leaves the exact linear recursion on
    H(W_0) by 2e-4 where that ratio is 1e3 and by 6% where it is 1e2.
    """
    return UPDATE_RESOLUTION * float(np.finfo(float).eps) * math.sqrt(width) / (eta * gram_max)


def read_step(prob: Problem, certs: list[PLCertificate], eta: float, width: int, cap: int) -> int:
    """The first step k <= cap at which some seed's linearised error on H-inf, ||(I - eta H-inf)^k e_0||, falls to
    max(REL_FLOOR ||e_0||, `resolution_floor`), known before training; cap if none does by then. NtkodeError when
    that leaves fewer than 2 MIN_POINTS steps (the fit's window is the second half)."""
    gram_max = float(np.linalg.eigvalsh(prob.X @ prob.X.T)[-1])
    k = np.arange(cap + 1)
    factors = (1.0 - eta * prob.lam)[:, None] ** (2 * k[None, :])  # (n, k)
    first = cap
    for c in certs:
        floor = max(REL_FLOOR * c.e0_norm, resolution_floor(width, eta, gram_max))
        linear = np.sqrt(((c.e0 @ prob.vecs) ** 2) @ factors)
        below = np.flatnonzero(linear <= floor)
        first = min(first, int(below[0]) if below.size else cap)
    if first < 2 * MIN_POINTS:
        raise NtkodeError(f"the error meets float64's read floor after {first} steps, too few to fit a rate; raise "
                          "label_scale or steps", param="label_scale")
    return first


def ntk_tolerance(prob: Problem, certs: list[PLCertificate], eta: float, params: Mapping[str, Any]) -> Tolerance:
    """The NTK check's tolerance on log(1 - eta lam_0), before training.

    init "ntk": `finite_width_tolerance` (the lazy diagnostic of the same draw). init "antisymmetric": the lazy
    diagnostic draws another net, so the certificate's own bound is used: on the ball every eigenvalue of H(W) is
    within flip of H(W_0)'s (Weyl), so |lambda_min(H(W)) - lambda_0| <= |lambda_min(H(W_0)) - lambda_0| + flip
    (seed-worst, `kernel_error_tolerance`), or 2 sqrt(n/(m/2)) (`width_tolerance`, m/2 distinct neurons) if larger.
    """
    hyper = {"lr": eta}
    if params.get("init", "ntk") != "antisymmetric":
        return finite_width_tolerance("gd", prob, hyper, params)
    delta = max((abs(c.lam_min0 - prob.lam0) + c.flip) / prob.lam0 for c in certs)
    kernel = kernel_error_tolerance("gd", prob.lam, hyper, delta, why="the certificate's bound on lambda_min(H(W)) "
                                    "over the ball: |lambda_min(H(W_0)) - lambda_0| + flip (Weyl), seed-worst")
    width = width_tolerance(prob.n, int(params["width"]) // 2, why="antisymmetric net: m/2 distinct neurons")
    return kernel if kernel.value > width.value else width


def plstar_predictions(params: Mapping[str, Any], scale: float = 1.0) -> list[Prediction]:
    """Certified per-step log bound on ||e_k|| (seed-worst), certified radius, and the NTK log rate
    log(1 - eta lam_0), with every kernel quantity (mu, beta, lam_0) x scale."""
    prob = plstar_problem(params)
    certs = certificates(params)
    eta = _eta(certs)
    bound = max(0.5 * math.log(1.0 - 2 * eta * scale * c.mu * (1 - scale * c.beta * eta / 2)) for c in certs)
    radius = max(c.radius / scale for c in certs)
    one_sided = ("a proof's one-sided bound, fixed before training; it is loose by construction (worst case over "
                 "the ball), so a 10% kernel error cannot be seen in it (blind to x0.9 and x1.1): it fails only if "
                 "the certificate is wrong")
    return [
        Prediction("PL* bound", "max_k log(||e_k|| / ||e_0||) / k", bound,
                   Tolerance("range", (-math.inf, bound),
                             "Liu, Zhu & Belkin: L_k <= (1 - eta mu)^k L_0 at every step; " + one_sided),
                   blind_to=(0.9, 1.1)),
        Prediction("ball", "max_r ||w_r(T) - w_r(0)||", radius,
                   Tolerance("range", (-math.inf, radius), "the trajectory stays in the certified ball; "
                             + one_sided), blind_to=(0.9, 1.1)),
        Prediction("NTK", "log rate per step", math.log(spectral_radius("gd", scale * prob.lam, lr=eta).rate),
                   ntk_tolerance(prob, certs, eta, params)),
    ]


def _worst_average_rate(norms: np.ndarray, stop: int) -> float:
    """max over 1 <= k < stop of log(||e_k|| / ||e_0||) / k."""
    k = np.arange(1, stop)
    return float(np.max(np.log(norms[1:stop] / norms[0]) / k))


def _unit_label_note(params: Mapping[str, Any]) -> str:
    """Why the labels are scaled: seed 0's certificate with the other claims' unit labels, at mu = lambda_min/2."""
    prob = problem(params)
    W, a = net_drawer(params, prob.X.shape[1])(int(params["width"]), 0)
    lam_min = kernel_spectrum(ntk_empirical(W, a, prob.X))[0][0]
    G = prob.X @ prob.X.T
    e0 = float(np.linalg.norm(forward(W, a, prob.X) - prob.y))
    radius = trajectory_radius(math.sqrt(np.linalg.eigvalsh(G)[-1]), e0, int(params["width"]), lam_min / 2)
    flip = flip_bound(W @ prob.X.T, G, radius)
    verdict = "vacuous" if flip > lam_min / 2 else "not vacuous"
    return (f"labels of norm {params['label_scale']:g}, not 1: the ball's radius R = 2 g ||e_0|| / (sqrt(m) mu) "
            f"scales with ||e_0|| (= ||y|| up to round-off for the antisymmetric net), the flip bound with R, while "
            f"the PL* theorem holds for any labels and the lazy rate does not depend on their scale; with the "
            f"other claims' unit labels (||y|| = 1, ||e_0|| = {e0:.3g}) seed 0's certificate is {verdict} at this "
            f"width: at mu = lambda_min/2 = {lam_min / 2:.3g} the radius is {radius:.3g} and the flip bound "
            f"{flip:.3g} ({'>' if flip > lam_min / 2 else '<='} lambda_min/2)")


def measure_plstar(params: Mapping[str, Any], device: str) -> Evidence:
    """GD's error obeys the rate certified by the PL* condition on the ball it provably stays in.

    Theorem: for L = 1/2 ||u - y||^2, 1/2 ||grad L||^2 = 1/2 e^T H(W) e >= lambda_min(H(W)) L, so L is mu-PL*
    wherever lambda_min(H(W)) >= mu. If that holds on a ball around W_0 large enough to hold the whole
    trajectory, GD with eta <= 1/beta (beta: smoothness on the ball) keeps L_k <= (1 - 2 eta mu (1 -
    beta eta/2))^k L_0 (= (1 - eta mu)^k at eta = 1/beta), for any labels y.
    Algorithm: gradient descent, only W trained, eta = 1/beta.
    Theoretical guarantee: the bound above at every step (upper bound); with the NTK rate
    1 - eta lam_0 per step on ||e|| as the linearised (tight) rate, every measured rate lies between them.
    References: Liu, Zhu & Belkin, "Loss landscapes and optimization in over-parameterized non-linear
    systems and neural networks", ACHA 2022 (PL*, Theorem 6); Du, Zhai, Poczos & Singh, ICLR 2019
    (the per-neuron ball, Lemma 3.2).
    Measurement: before training, on each seed's drawn net (`pl_certificate`): the ball is per neuron,
    ||w_r - w_r(0)|| <= R(mu) = 2 sqrt(lambda_max(X X^T)) ||e_0|| / (sqrt(m) mu), which GD cannot leave
    while L contracts by (1 - eta mu) (`trajectory_radius`); on it lambda_min(H(W)) >= lambda_min(H(W_0)) -
    flip(R), flip(R) counting, entrywise, the neurons whose activation on x_i or x_j can change
    (`flip_bound`); mu is the largest grid value with lambda_min(H(W_0)) - flip(R(mu)) >= mu, and beta =
    lambda_max(H(W_0)) + flip(R(mu)). ReLU's loss is piecewise quadratic (Hessian J^T J, norm <= beta,
    inside each activation region); the descent step across region boundaries is not bounded here, so
    the measurement tests that too. Then GD at eta = 1/beta up to `read_step` (where theory's linearised
    error meets the fits' floor or float64's resolution of a step, known before training): (i) max_k
    log(||e_k||/||e_0||)/k against 1/2 log(1 - eta mu) (seed-worst), (ii) max_r ||w_r(T) - w_r(0)|| against R,
    (iii) the seed-mean fitted rate of ||e_k|| against log(1 - eta lam_0) on H-infinity.
    Tolerance: (i), (ii) one-sided, the certified bound itself (nothing added: it is a proof);
    (iii) `ntk_tolerance` (2 sqrt(n/m) or a kernel error bound, whichever is larger).
    The certificate is a worst case over the ball, so it needs far wider nets than the NTK rate does:
    at n = 4, d = 4 (kappa 3.8) it is vacuous at m = 2^18 and certifies mu ~ 0.77 lambda_min at 2^20.
    Its radius scales with ||e_0||: on the digits (kappa 80.8, 21x the sphere's) the net is the antisymmetric
    doubling (u_0 = 0, so ||e_0|| = ||y||) and the labels have norm 1e-4, which certifies mu = 0.96-0.98
    lambda_min(H(W_0)) at m = 2^15 (seeds 0, 1), where unit labels leave it vacuous (note).
    """
    prob = plstar_problem(params)
    certs = certificates(params)
    predictions = plstar_predictions(params)
    eta = _eta(certs)
    steps = read_step(prob, certs, eta, int(params["width"]), int(params["steps"]))
    sim = run_simulation("gd", prob, params, [{"lr": eta}], steps, device, projections=False,
                         init=net_drawer(params, prob.X.shape[1]))
    norms = sim.error_norm[0, 0]
    worst = max(_worst_average_rate(row, steps + 1) for row in norms)
    moved = float(np.max(sim.weight_movement[0, 0, :, -1]))
    fits = [fit_linear_rate(row) for row in norms]
    rate = mean_and_stderr([f.value for f in fits], fits[0].stderr)
    checks = [predictions[0].check(worst, 0.0), predictions[1].check(moved, 0.0), predictions[2].check(*rate)]
    k = np.arange(steps + 1)
    bound_curve = np.exp(predictions[0].value * k)
    ntk_curve = np.exp(predictions[2].value * k)
    curves = [Curve(f"seed {s}: ||e_k|| / ||e_0||", k.tolist(), (row / row[0]).tolist()) for s, row in enumerate(norms)]
    curves += [Curve("PL* certified bound", k.tolist(), bound_curve.tolist(), "predicted"),
               Curve("NTK rate (1 - eta lam_0)^k", k.tolist(), ntk_curve.tolist(), "predicted")]
    figure = Figure("pl-star: GD error between the PL* certificate and the NTK rate", "step k",
                    "||e_k|| / ||e_0||", curves)
    c0 = certs[0]
    notes = [f"{params.get('init', 'ntk')} net, seed 0 certificate: mu = {c0.mu:.4g} (lambda_min(H(W0)) = "
             f"{c0.lam_min0:.4g}, lambda_0(H-inf) = {prob.lam0:.4g}, kappa {prob.lam_max / prob.lam0:.3g}), "
             f"ball radius {c0.radius:.3g} per neuron, flip bound {c0.flip:.3g}, beta = {c0.beta:.4g}, "
             f"||e_0|| = {c0.e0_norm:.3g}; "
             f"eta = 1/beta = {eta:.4g}; run to the read step {steps}"]
    if params.get("label_scale", 1.0) != 1.0:
        notes.append(_unit_label_note(params))
    notes.append(sensitivity_note(plstar_predictions, params))
    return Evidence(checks, figure, notes)


_measure, _predict = on_each_dataset(measure_plstar, plstar_predictions)

_PROBLEM = {"data": "sphere", "n": 4, "d": 4, "data_seed": 0, "init": "ntk", "label_scale": 1.0}
#: the ill-conditioned data set: digits (kappa 80.8), the antisymmetric net (e_0 = -y) and labels of norm 1e-4
#: (`_unit_label_note`). m = 2^15: 2 sqrt(n/(m/2)) = 0.054 keeps a 10% kernel error ~2 tolerances away (2^14: 1.3);
#: one GD step costs m n^2, so its ~800 steps to the read floor take a few seconds
_DIGITS = {**DIGITS, "init": "antisymmetric", "label_scale": 1e-4, "steps": 3000}

PL_STAR = Claim(
    "pl-star",
    "GD's error stays below the rate that the PL* condition certifies on the drawn net, and converges at the NTK rate.",
    _measure,
    predict=_predict,
    defaults={
        "quick": {**_PROBLEM, "width": 2**20, "seeds": 1, "steps": 200,
                  "second": {**_DIGITS, "width": 2**15, "seeds": 2}},
        "full": {**_PROBLEM, "width": 2**21, "seeds": 4, "steps": 200,
                 "second": {**_DIGITS, "width": 2**16, "seeds": 4}},
    },
)
