"""A stand-in for `simulate` that trains no network: every seed's error follows the method's linear
recursion on scale x H-infinity exactly (docs/theory.md#state-space), from the e_0 = u_0 - y of the net
`simulate` draws for that width and seed (its `init`, when a claim passes one), so that every eigenvector is
excited as in a real run. A claim that compares measured rates with theory must pass on scale = 1 and fail on
a kernel 10% off (scale 0.9 or 1.1) unless a check declares itself blind to it.

The fields a claim reads are filled as `simulate` fills them: projections on H-infinity's eigenvectors
(ascending), H(W_0)'s spectrum = the double's kernel, no weight movement or kernel drift, and the drawn
initial weights as the final ones (so a post-hoc H(W_T) row reads H(W_0)).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import numpy as np

from ntkode.numerics import forward, init_network, kernel_spectrum, ntk_infinite
from ntkode.theory import iterate


def recursion_double(scale: float) -> Callable[..., SimpleNamespace]:
    """simulate's signature; the result has error_norm, projections, lam_inf, lam_emp, weight_movement,
    kernel_drift, diverged, final_W and final_a, shaped as `SimulationResult` documents."""

    def fake(method, X, y, widths, steps, seeds=1, hyper=(), device="auto", progress=True, **options):
        H = ntk_infinite(X)
        lam, U = kernel_spectrum(H)
        widths = [widths] if np.ndim(widths) == 0 else list(widths)
        seed_list = list(range(seeds)) if np.ndim(seeds) == 0 else list(seeds)
        settings = [hyper] if isinstance(hyper, dict) else list(hyper)
        draw = options.get("init") if callable(options.get("init")) else lambda m, s: init_network(m, X.shape[1], s)
        nets = [[draw(int(m), s) for s in seed_list] for m in widths]
        errors = [[forward(W, a, X) - np.asarray(y, dtype=float) for W, a in row] for row in nets]
        E = np.array([[[iterate(method, scale * H, e0, steps, **h)[0] for e0 in row] for h in settings]
                      for row in errors])  # (widths, settings, seeds, steps+1, n)
        shape = E.shape[:3]
        return SimpleNamespace(
            error_norm=np.linalg.norm(E, axis=-1), projections=E @ U, lam_inf=lam,
            lam_emp=np.repeat((scale * lam)[None, None], len(seed_list), axis=1).repeat(len(widths), axis=0),
            weight_movement=np.zeros(E.shape[:4]), kernel_drift=np.zeros(shape + (1,)),
            diverged=np.zeros(shape, dtype=bool), diverged_step=-np.ones(shape, dtype=int),
            final_W=[np.stack([[w for w, _ in row]] * len(settings)) for row in nets],
            final_a=[np.stack([[a for _, a in row]] * len(settings)) for row in nets],
        )

    return fake
