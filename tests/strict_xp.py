"""A strict stand-in for CuPy on the CPU: device arrays that refuse to meet host arrays.

`DeviceArray` wraps a NumPy array the way a CuPy array wraps GPU memory:
- implicit conversion to NumPy (`np.asarray(d)`, any `np.*` function or ufunc) raises TypeError,
  as `cupy.ndarray.__array__` does; `.get()` is the one way back to the host;
- an operation mixing it with a numpy.ndarray or a NumPy scalar raises TypeError (CuPy refuses
  host arrays, and NumPy scalars promote differently across CuPy versions: use Python scalars);
- indexing with a host array raises (CuPy would copy it to the device silently);
- `out=` must be a device array; `matmul` also needs out.dtype == the result dtype (older CuPy raises);
- every device -> host transfer (`.get()`, float(), int(), bool()) is counted in `TRANSFERS`.

Module-level functions are the subset of CuPy's API that ntkode.numerics calls. Not modelled:
asynchronous execution and streams, GPU memory limits (memGetInfo reports a fixed 1 GiB),
rounding differences of cuBLAS, CuPy's internal copies for non-contiguous operands, and the
NumPy functions CuPy does dispatch through __array_function__ (here every np.* call raises).
"""
from __future__ import annotations

import numbers
from types import SimpleNamespace

import numpy as np

#: device -> host transfers so far (each one a synchronisation on a real GPU)
TRANSFERS = [0]

_HOST = (np.ndarray, np.generic)


def _dev(x, what="operand"):
    """The wrapped NumPy array of a device array; a Python scalar as is; TypeError for host data."""
    if isinstance(x, DeviceArray):
        return x._a
    if isinstance(x, _HOST):
        raise TypeError(f"{what} is a host {type(x).__name__} mixed with device arrays")
    if isinstance(x, (bool, numbers.Number)):
        return x
    raise TypeError(f"{what} of type {type(x).__name__} is not a device array or a Python scalar")


def _index(key):
    parts = key if isinstance(key, tuple) else (key,)
    out = []
    for part in parts:
        if isinstance(part, DeviceArray):
            out.append(part._a)
        elif part is None or part is Ellipsis or isinstance(part, (slice, int, np.integer)):
            out.append(part)
        else:
            raise TypeError(f"index of type {type(part).__name__} is host data; move it to the device first")
    return tuple(out) if isinstance(key, tuple) else out[0]


def _wrap(result):
    """A NumPy result as a device array (a scalar too: CuPy returns 0-d device arrays)."""
    return DeviceArray(np.asarray(result)) if isinstance(result, _HOST) else result


def _sync(value):
    TRANSFERS[0] += 1
    return value


class DeviceArray:
    """A NumPy array posing as device memory (see the module docstring)."""

    __array_ufunc__ = None  # NumPy ufuncs and operators defer to us, and we refuse host operands

    def __init__(self, a: np.ndarray):
        self._a = a

    def __array__(self, *args, **kwargs):
        raise TypeError("implicit conversion of a device array to NumPy; call .get()")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} called on a device array; use the xp module")

    def get(self) -> np.ndarray:
        return _sync(self._a.copy())

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    T = property(lambda self: DeviceArray(self._a.T))
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)

    def __repr__(self):
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype})"

    def __float__(self):
        return _sync(float(self._a))

    def __int__(self):
        return _sync(int(self._a))

    def __bool__(self):
        return _sync(bool(self._a))

    def reshape(self, *shape):
        return DeviceArray(self._a.reshape(*shape))

    def swapaxes(self, a1, a2):
        return DeviceArray(self._a.swapaxes(a1, a2))

    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        self._a[_index(key)] = _dev(value, "assigned value")


def _binary(name: str):
    """The operator `name` on the wrapped arrays, refusing host operands."""

    def method(self, other):
        return _wrap(getattr(self._a, name)(_dev(other)))

    method.__name__ = name
    return method


for _name in ("add", "sub", "mul", "truediv", "matmul", "radd", "rsub", "rmul", "rtruediv", "rmatmul", "ge", "gt"):
    setattr(DeviceArray, f"__{_name}__", _binary(f"__{_name}__"))


# -- creation and transfer ---------------------------------------------------------------------
def asarray(x, dtype=None):
    """Host data (or a device array) as a device array: the one host -> device route."""
    if isinstance(x, DeviceArray):
        return x if dtype is None or x.dtype == dtype else DeviceArray(x._a.astype(dtype))
    return DeviceArray(np.array(x, dtype=dtype))


def empty(shape, dtype=float):
    return DeviceArray(np.empty(shape, dtype=dtype))


def full(shape, fill_value, dtype=None):
    return DeviceArray(np.full(shape, _dev(fill_value, "fill value"), dtype=dtype))


def zeros(shape, dtype=float):
    return DeviceArray(np.zeros(shape, dtype=dtype))


def stack(arrays, axis=0):
    return DeviceArray(np.stack([_dev(a) for a in arrays], axis=axis))


def _as_strided(a, shape=None, strides=None):
    """A strided view of device memory (cupy.lib.stride_tricks.as_strided)."""
    return DeviceArray(np.lib.stride_tricks.as_strided(_dev(a), shape=shape, strides=strides))


lib = SimpleNamespace(stride_tricks=SimpleNamespace(as_strided=_as_strided))


def empty_like(a):
    return DeviceArray(np.empty_like(_dev(a)))


def zeros_like(a):
    return DeviceArray(np.zeros_like(_dev(a)))


def ascontiguousarray(a):
    return DeviceArray(np.ascontiguousarray(_dev(a)))


def repeat(a, repeats, axis=None):
    return DeviceArray(np.repeat(_dev(a), repeats, axis=axis))


def broadcast_to(a, shape):
    return DeviceArray(np.broadcast_to(_dev(a), shape))


# -- computation ---------------------------------------------------------------------------------
def _out(out):
    if out is None:
        return None
    if not isinstance(out, DeviceArray):
        raise TypeError(f"out= must be a device array; got {type(out).__name__}")
    return out._a


def _ufunc(fn):
    def call(*args, out=None):
        result = fn(*(_dev(x) for x in args), out=_out(out))
        return out if out is not None else _wrap(result)

    call.__name__ = fn.__name__
    return call


maximum = _ufunc(np.maximum)
greater_equal = _ufunc(np.greater_equal)
multiply = _ufunc(np.multiply)
subtract = _ufunc(np.subtract)
add = _ufunc(np.add)
sqrt = _ufunc(np.sqrt)


def matmul(a, b, out=None):
    """np.matmul on device arrays; out (when given) must have the result's dtype."""
    a, b = _dev(a), _dev(b)
    if out is not None and _out(out).dtype != np.result_type(a, b):
        raise TypeError(f"matmul out dtype {out.dtype} differs from the result dtype {np.result_type(a, b)}")
    result = np.matmul(a, b, out=_out(out))
    return out if out is not None else DeviceArray(result)


def einsum(subscripts, *operands):
    return DeviceArray(np.einsum(subscripts, *(_dev(x) for x in operands)))


def max(a, axis=None):  # CuPy's name; shadows the builtin in this module only
    return _wrap(np.max(_dev(a), axis=axis))


# -- runtime -------------------------------------------------------------------------------------
class _Pool:
    def free_bytes(self) -> int:
        return 0


_POOL = _Pool()


def get_default_memory_pool() -> _Pool:
    return _POOL


cuda = SimpleNamespace(runtime=SimpleNamespace(memGetInfo=lambda: (1 << 30, 1 << 30)))
