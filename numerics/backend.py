"""Array backend: NumPy on the host or CuPy on a CUDA GPU, chosen once per call.

`device="auto"` takes CuPy when it imports and runs a small product on a GPU, NumPy otherwise;
`"cpu"` forces NumPy; `"gpu"` forces CuPy and raises NtkodeError if it cannot.
Memory is checked before a batch: `batch_slices` splits the runs so that every
batch fits in `memory_budget(xp)` bytes, and refuses a single run that cannot fit.
"""
from __future__ import annotations

import functools
import os
from types import ModuleType

import numpy as np

from ntkode.errors import NtkodeError

DEVICES = ("auto", "cpu", "gpu")
#: fraction of the free memory one batch may use
MEMORY_FRACTION = 0.6
#: on the host, batches are kept about this size so that the work arrays stay in cache
#: (NumPy's elementwise passes are memory-bound; 8 MiB measured 5-15% faster than 16 MiB and
#: more so than one large batch at widths 512-2048, n=64, on a 2-core EPYC with 32 MiB L3)
HOST_BATCH_BYTES = 8 << 20


@functools.lru_cache(maxsize=1)
def _load_cupy() -> ModuleType | str:
    """CuPy once it has compiled a kernel and run a cuBLAS product on a visible GPU; else why not.

    A CuPy build that does not match the CUDA driver or toolkit passes `getDeviceCount` and fails
    only at its first kernel, so a small product is checked here (once per process)."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device is visible"
        probe = cupy.arange(4.0).reshape(2, 2)
        if float((probe @ probe + 1.0).sum()) != 26.0:  # [[0, 1], [2, 3]]^2 = [[2, 3], [6, 11]]
            return "a test product on the GPU came out wrong"
        return cupy
    except Exception as err:  # any import, CUDA, driver or compiler failure means "no usable GPU here"
        return f"{type(err).__name__}: {err}"


def _cupy_or_none() -> ModuleType | None:
    """CuPy when it works on a CUDA device here (`_load_cupy`), else None."""
    found = _load_cupy()
    return found if isinstance(found, ModuleType) else None


def get_xp(device: str = "auto") -> ModuleType:
    """The array module for `device` in ("auto", "cpu", "gpu")."""
    if device not in DEVICES:
        raise NtkodeError(f"device must be one of {', '.join(DEVICES)}; got {device!r}", param="device")
    if device == "cpu":
        return np
    cupy = _cupy_or_none()
    if cupy is None and device == "gpu":
        found = _load_cupy()
        why = found if isinstance(found, str) else "unavailable"
        raise NtkodeError(f"device 'gpu' requested but CuPy cannot use a CUDA GPU here ({why}); use device='cpu'", param="device")
    return np if cupy is None else cupy


def device_name(xp: ModuleType) -> str:
    """'cpu' for NumPy, 'gpu' for CuPy."""
    return "cpu" if xp is np else "gpu"


def to_host(arr) -> np.ndarray:
    """A NumPy copy (or view) of a NumPy or CuPy array."""
    get = getattr(arr, "get", None)
    return get() if callable(get) else np.asarray(arr)


def free_memory(xp: ModuleType) -> int:
    """Bytes free for new arrays: GPU free memory plus the pool's cache, or the host's MemAvailable."""
    if xp is not np:
        free, _total = xp.cuda.runtime.memGetInfo()
        pool = xp.get_default_memory_pool()
        return int(free + pool.free_bytes())
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def batch_target(xp: ModuleType) -> int | None:
    """Preferred batch size in bytes: HOST_BATCH_BYTES for NumPy, None (as large as fits) on a GPU."""
    return HOST_BATCH_BYTES if xp is np else None


def memory_budget(xp: ModuleType) -> int:
    """Bytes one batch may use: MEMORY_FRACTION of `free_memory`."""
    return int(MEMORY_FRACTION * free_memory(xp))


def batch_slices(n_runs: int, bytes_per_run: int, budget: int, target: int | None = None) -> list[slice]:
    """Split range(n_runs) into contiguous slices whose memory stays within `budget` bytes
    (and near `target` bytes when given, at least one run a slice)."""
    if bytes_per_run > budget:
        raise NtkodeError(
            f"one run needs {bytes_per_run / 2**30:.2f} GiB but only {budget / 2**30:.2f} GiB is free; "
            "reduce the width or the number of samples"
        )
    per_batch = min(n_runs, budget // max(bytes_per_run, 1))
    if target is not None:
        per_batch = min(per_batch, target // max(bytes_per_run, 1))
    per_batch = max(1, per_batch)
    return [slice(i, min(i + per_batch, n_runs)) for i in range(0, n_runs, per_batch)]
