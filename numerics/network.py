"""The two-layer ReLU network f(x) = m^{-1/2} sum_r a_r relu(w_r.x) in NTK parametrisation."""
from __future__ import annotations

import numpy as np

from ntkode.errors import NtkodeError

from .data import as_count, as_seed
from .kernels import as_kappa


def init_network(width: int, d: int, seed: int, kappa: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(W, a) on the host: w_r ~ N(0, kappa^2 I_d) (width, d) then a_r ~ Unif{-1, +1} (width,), float64.

    Drawn with numpy.random.default_rng(seed), so every backend starts from the same net.
    """
    width, d = as_count("width", width), as_count("d", d)
    kappa = as_kappa(kappa)
    rng = np.random.default_rng(as_seed(seed))
    try:
        W = kappa * rng.standard_normal((width, d))
    except (MemoryError, ValueError):
        raise NtkodeError(f"width {width} x d {d} weights do not fit in memory; reduce the width",
                          param="width") from None
    a = rng.integers(0, 2, size=width).astype(float) * 2.0 - 1.0
    return W, a


def forward(W: np.ndarray, a: np.ndarray, X: np.ndarray) -> np.ndarray:
    """u_i = m^{-1/2} sum_r a_r relu(w_r.x_i)."""
    return np.maximum(W @ X.T, 0.0).T @ a / np.sqrt(W.shape[0])
