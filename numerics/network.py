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


#: how the first layer's weights, bias and the output weights are drawn and scaled
PARAMETRIZATIONS = ("ntk", "standard")


def init_seed_network(
    width: int, d: int, seed: int, w_std: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, b, a) of the seed notebook's standard-parametrised net, drawn with numpy.random.default_rng(seed):
    W ~ N(0, w_std^2) (width, d) with w_std = 1/width by default (the notebook's normal_(0, 1/m)),
    b ~ U(-1/sqrt(d), 1/sqrt(d)) (PyTorch's default nn.Linear bias), a ~ U(-1, 1) (its uniform_(-1, 1)).
    """
    if int(width) != width or width < 1 or int(d) != d or d < 1:
        raise NtkodeError(f"width and d must be positive integers; got width={width!r}, d={d!r}")
    std = 1.0 / width if w_std is None else w_std
    if not np.isfinite(std) or std <= 0:
        raise NtkodeError(f"w_std must be a positive number; got {w_std!r}", param="w_std")
    rng = np.random.default_rng(as_seed(seed))
    W = std * rng.standard_normal((int(width), int(d)))
    bound = 1.0 / np.sqrt(d)
    b = rng.uniform(-bound, bound, size=int(width))
    a = rng.uniform(-1.0, 1.0, size=int(width))
    return W, b, a


def forward_standard(W: np.ndarray, b: np.ndarray, a: np.ndarray, X: np.ndarray) -> np.ndarray:
    """u_i = sum_r a_r relu(w_r.x_i + b_r): standard parametrisation, no m^{-1/2}."""
    return np.maximum(W @ X.T + b[:, None], 0.0).T @ a


def with_bias_column(X: np.ndarray) -> np.ndarray:
    """[X, 1]: the inputs with a ones column, so that w~.x~ = w.x + b for w~ = [w, b]."""
    return np.hstack([X, np.ones((X.shape[0], 1))])


def standard_to_ntk(W: np.ndarray, b: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(W~, a', second-layer step factor) of the NTK-parametrised net on [X, 1] computing the same function.

    sum_r a_r relu(w_r.x + b_r) = m^{-1/2} sum_r a'_r relu(w~_r.x~) with w~ = [w, b], a' = sqrt(m) a.
    The gradients agree for W~ (dL/dw~_r = a'_r m^{-1/2} ... = a_r ...), while dL/da' = m^{-1/2} dL/da,
    so a step of eta on a in standard parametrisation is a step of m eta on a' (factor m); see
    docs/theory.md#pytorch. The effective kernel is then H_W + m H_a.
    """
    m = W.shape[0]
    return np.hstack([W, b[:, None]]), np.sqrt(m) * a, float(m)


def ntk_to_standard(W_aug: np.ndarray, a_prime: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse of `standard_to_ntk`: (W, b, a) from (W~, a')."""
    m = W_aug.shape[-2]
    return W_aug[..., :-1], W_aug[..., -1], a_prime / np.sqrt(m)


#: `preset="seed"`: the conventions of the seed notebook (Bu, Xu & Chen's Colab), applied together
PRESETS: dict[str, dict[str, str]] = {
    "seed": {"parametrization": "standard", "init": "seed", "train": "both", "loss": "mse"},
}
#: the built-in initialisations: "ntk" (`init_network`) and "seed" (`init_seed_network`)
INITS = ("ntk", "seed")


def draw_network(width: int, d: int, seed: int, parametrization: str = "ntk", init="ntk", kappa: float = 1.0,
                 w_std: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(W, a, second-layer step factor) in the NTK variables the engine trains (on [X, 1] when standard).

    init: "ntk" (w ~ N(0, kappa^2), a = +-1), "seed" (`init_seed_network`) or a callable
    (width, seed) -> (W, a) for "ntk" / (W, b, a) for "standard", e.g. a PyTorch net's weights.
    """
    if parametrization not in PARAMETRIZATIONS:
        raise NtkodeError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}; got {parametrization!r}",
                          param="parametrization")
    if callable(init):
        drawn = tuple(np.array(x, dtype=float) for x in init(int(width), int(seed)))
    elif init == "ntk":
        drawn = init_network(width, d, seed, kappa)
    elif init == "seed":
        drawn = init_seed_network(width, d, seed, w_std)
    else:
        raise NtkodeError(f"init must be one of {', '.join(INITS)} or a callable (width, seed); got {init!r}",
                          param="init")
    if parametrization == "standard" and len(drawn) == 2:
        drawn = (drawn[0], np.zeros(int(width)), drawn[1])  # a bias-free draw: the bias starts at 0
    _check_shapes(drawn, int(width), int(d), parametrization)
    if parametrization == "ntk":
        return drawn[0], drawn[1], 1.0
    return standard_to_ntk(*drawn)


def _check_shapes(drawn: tuple, m: int, d: int, parametrization: str) -> None:
    names = ("W", "a") if parametrization == "ntk" else ("W", "b", "a")
    shapes = [(m, d)] + [(m,)] * (len(names) - 1)
    got = [x.shape for x in drawn]
    if len(drawn) != len(names) or got != shapes or not all(np.all(np.isfinite(x)) for x in drawn):
        raise NtkodeError(f"initial weights for width {m} must be finite {', '.join(names)} of shapes "
                          f"{', '.join(map(str, shapes))}; got shapes {got}", param="init")
