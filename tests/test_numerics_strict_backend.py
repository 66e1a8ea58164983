"""The device path of `simulate` run on the CPU through `strict_xp`, a CuPy stand-in whose arrays refuse
to meet host arrays: every method, both spaces and both trainings must run without mixing host and
device data, without synchronising inside a step, and agree with device="cpu" to rounding."""
import importlib
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import strict_xp

from ntkode.numerics import backend, simulate, sphere_data
from ntkode.errors import NtkodeError

from cases import SETTINGS

engine = importlib.import_module("ntkode.numerics.engine")



@pytest.fixture
def strict_gpu(monkeypatch):
    """device="gpu" gets the strict module; each Batch.step asserts it moved nothing to the host."""
    monkeypatch.setattr(backend, "_cupy_or_none", lambda: strict_xp)
    real_step = engine.Batch.step

    def step(self, k):
        before = strict_xp.TRANSFERS[0]
        real_step(self, k)
        if self.xp is strict_xp:
            assert strict_xp.TRANSFERS[0] == before, f"step {k} synchronised with the device"

    monkeypatch.setattr(engine.Batch, "step", step)


def test_the_double_refuses_host_data():
    dev = strict_xp.asarray(np.arange(6.0).reshape(2, 3))
    host = np.ones((2, 3))
    for mixed in (lambda: dev + host, lambda: host * dev, lambda: np.float64(2.0) * dev, lambda: np.asarray(dev),
                  lambda: np.sqrt(dev), lambda: np.sum(dev), lambda: dev[np.array([0])],
                  lambda: strict_xp.maximum(dev, 0, out=host), lambda: strict_xp.matmul(dev, host.T),
                  lambda: strict_xp.matmul(dev, dev.T, out=strict_xp.empty((2, 2), dtype=np.float32))):
        with pytest.raises(TypeError):
            mixed()
    before = strict_xp.TRANSFERS[0]
    np.testing.assert_array_equal((2.0 * dev + 1).get(), 2.0 * np.arange(6.0).reshape(2, 3) + 1)
    assert float(dev[1, 2]) == 5.0 and strict_xp.TRANSFERS[0] == before + 2


@pytest.mark.parametrize("method", sorted(SETTINGS))
@pytest.mark.parametrize("space", ["z", "w"])
@pytest.mark.parametrize("train", ["W", "both"])
def test_device_path_agrees_with_the_host(strict_gpu, method, space, train):
    X, y = sphere_data(6, 4, seed=0)
    hyper = [{"lr": 0.5, **SETTINGS[method]}, {"lr": 20.0, **SETTINGS[method]}]  # the second setting diverges
    kw = dict(seeds=2, hyper=hyper, space=space, train=train, drift_steps=(0, 10, 20), keep_weights=True,
              progress=False)
    cpu = simulate(method, X, y, [16, 40], 20, device="cpu", **kw)
    gpu = simulate(method, X, y, [16, 40], 20, device="gpu", **kw)
    assert cpu.device == "cpu" and gpu.device == "gpu"
    assert cpu.diverged[:, 1].all() and not cpu.diverged[:, 0].any()  # both the compaction and the survivors run
    np.testing.assert_array_equal(gpu.diverged_step, cpu.diverged_step)
    scale = cpu.error_norm[..., :1]
    np.testing.assert_allclose(gpu.error_norm / scale, cpu.error_norm / scale, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gpu.projections, cpu.projections, rtol=1e-12, atol=1e-13 * scale.max())
    np.testing.assert_allclose(gpu.weight_movement, cpu.weight_movement, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gpu.kernel_drift, cpu.kernel_drift, atol=1e-13)
    for name in ("final_W", "final_a"):
        for got, want in zip(getattr(gpu, name), getattr(cpu, name)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("space", ["z", "w"])
def test_float32_stays_float32_on_the_device(strict_gpu, space):
    """In float32 every device product keeps float32 (the double refuses a float64 matmul into a float32 buffer)."""
    X, y = sphere_data(6, 4, seed=0)
    kw = dict(seeds=2, hyper={"lr": 0.5, "momentum": 0.6}, space=space, dtype="float32", progress=False)
    gpu = simulate("hb", X, y, [32], 15, device="gpu", **kw)
    cpu = simulate("hb", X, y, [32], 15, device="cpu", **kw)
    np.testing.assert_allclose(gpu.error_norm, cpu.error_norm, rtol=1e-5)


def test_a_cupy_that_cannot_compile_is_no_gpu(monkeypatch):
    """CuPy whose first kernel fails (a build that does not match the CUDA toolkit): "auto" falls back
    to NumPy and "gpu" names the failure."""

    def broken(*args, **kwargs):
        raise RuntimeError("nvrtc: cannot compile")

    fake = SimpleNamespace(cuda=SimpleNamespace(runtime=SimpleNamespace(getDeviceCount=lambda: 1)), arange=broken)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    backend._load_cupy.cache_clear()
    try:
        assert backend.get_xp("auto") is np
        with pytest.raises(NtkodeError, match=r"gpu.*RuntimeError: nvrtc: cannot compile"):
            backend.get_xp("gpu")
    finally:
        backend._load_cupy.cache_clear()
