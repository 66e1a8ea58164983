"""The two-layer ReLU network f(x) = m^{-1/2} sum_r a_r relu(w_r.x) in NTK parametrisation."""
from __future__ import annotations

import numpy as np

from ntkode.errors import NtkodeError

from .data import as_seed


def init_network(width: int, d: int, seed: int, kappa: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(W, a) on the host: w_r ~ N(0, kappa^2 I_d) (width, d) then a_r ~ Unif{-1, +1} (width,), float64.

    Drawn with numpy.random.default_rng(seed), so every backend starts from the same net.
    """
    if int(width) != width or width < 1 or int(d) != d or d < 1:
        raise NtkodeError(f"width and d must be positive integers; got width={width!r}, d={d!r}")
    if not np.isfinite(kappa) or kappa <= 0:
        raise NtkodeError(f"kappa must be a positive number; got {kappa!r}", param="kappa")
    rng = np.random.default_rng(as_seed(seed))
    W = kappa * rng.standard_normal((int(width), int(d)))
    a = rng.integers(0, 2, size=int(width)).astype(float) * 2.0 - 1.0
    return W, a


def forward(W: np.ndarray, a: np.ndarray, X: np.ndarray) -> np.ndarray:
    """u_i = m^{-1/2} sum_r a_r relu(w_r.x_i)."""
    return np.maximum(W @ X.T, 0.0).T @ a / np.sqrt(W.shape[0])
