"""A declared method iterated on a quadratic: the linearised NTK dynamics in error coordinates.

On the loss 1/2 e^T H e (docs/theory.md#state-space) the gradient at a point y is H y, every point
variable holds its error and every direction variable its image; the declaration's ops
(`Method.numeric_ops`, the same compiled coefficients the engine uses) then act linearly. Iterating
them is the independent route that property tests compare with the characteristic roots.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ntkode.declaration import GradOp
from ntkode.errors import NtkodeError

from .methods import get_method


def combine(env: dict, combo, coefs):
    """sum_j coef_j * env[variable_j] for a combination of the op program and its coefficients."""
    return sum(float(c) * env[name] for (name, _), c in zip(combo, coefs))


def apply_step(method, H: np.ndarray, state: dict, k: int, args: list[float]) -> dict:
    """The state after step k: every variable of `state` (name -> error vector) advanced by the declared ops,
    with grad(y) = H y; `args` the hyper-parameters in declared order."""
    m = get_method(method)
    local = dict(state)
    for op, fn, _ in m.numeric_ops:
        coefs = fn(k, *args)
        if isinstance(op, GradOp):
            local[op.target] = H @ combine(local, op.point, coefs[0])
        else:
            local.update(zip(op.targets, [combine(local, c, cs) for c, cs in zip(op.values, coefs)]))
    return {name: local[name] for name in m.state_names}


def _scaled_combination(env: dict, combo, coefs) -> tuple[np.ndarray, float]:
    """sum_j coef_j * env[variable_j] for variables held as (vector, log scale), value = vector * exp(scale):
    (vector, log scale) of the sum, formed relative to its largest scale. A term with coefficient exactly 0 is
    left out, so a variable that W does not read never limits W's range however it grows or decays."""
    terms = []
    top = -math.inf
    for (name, _), c in zip(combo, coefs):
        c = float(c)
        if c != 0.0:
            vector, scale = env[name]
            terms.append((c, vector, scale))
            top = max(top, scale)
    if not terms:
        vector, scale = env[combo[0][0]]
        return np.zeros_like(vector), scale
    out = None
    for c, vector, scale in terms:
        term = (c if scale == top else c * math.exp(scale - top)) * vector
        out = term if out is None else out + term
    return out, top


def _unit(vector: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """(vector / ||vector||, scale + log ||vector||); a zero or non-finite vector is kept as it is."""
    norm = math.sqrt(float(vector @ vector))
    if norm > 0 and math.isfinite(norm):
        return vector / norm, scale + math.log(norm)
    return vector, scale


def _apply_scaled_step(m, H: np.ndarray, state: dict, k: int, args: list[float]) -> dict:
    """`apply_step` on variables held as (unit vector, log scale), each renormalised after every assignment."""
    local = dict(state)
    for op, fn, _ in m.numeric_ops:
        coefs = fn(k, *args)
        if isinstance(op, GradOp):
            vector, scale = _scaled_combination(local, op.point, coefs[0])
            local[op.target] = _unit(H @ vector, scale)
        else:
            values = [_unit(*_scaled_combination(local, c, cs)) for c, cs in zip(op.values, coefs)]
            local.update(zip(op.targets, values))
    return {name: local[name] for name in m.state_names}


def iterate(method, H: ArrayLike, e0: ArrayLike, steps: int, renormalise: bool = False, **hyper: float):
    """W's error e_k for k = 0..steps under the method on the quadratic with Hessian H, from e_0.

    Returns (E, log_scale): E (steps+1, n) and, with renormalise=True, every variable held as a unit vector
    times its own scale, each combination formed relative to its largest term, so that neither decay nor growth
    leaves float64 range, not even that of a variable W does not read (QHM's buffer at nu = 0); then the true
    error is E[k] * exp(log_scale[k]) (log_scale is all zeros otherwise).
    """
    m = get_method(method)
    values = m.scalar_hyper(hyper)
    args = [values[n] for n in m.hyper_names]
    H = np.asarray(H, dtype=float)
    e0 = np.asarray(e0, dtype=float)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or e0.shape != (H.shape[0],):
        raise NtkodeError(f"need a square H (n, n) and e0 (n,); got {H.shape} and {e0.shape}")
    if int(steps) != steps or steps < 1:
        raise NtkodeError(f"steps must be a positive integer; got {steps!r}", param="steps")
    env = {name: e0.copy() if init else np.zeros_like(e0) for name, init in zip(m.state_names, m.initial)}
    E = np.empty((int(steps) + 1, e0.size))
    scale = np.zeros(int(steps) + 1)
    E[0] = e0
    if renormalise:
        env = {name: (vector, 0.0) for name, vector in env.items()}
    for k in range(1, int(steps) + 1):
        if renormalise:
            env = _apply_scaled_step(m, H, env, k, args)
            E[k], scale[k] = env["W"]
        else:
            env = apply_step(m, H, env, k, args)
            E[k] = env["W"]
    return E, scale
