"""The batched simulator: linear-regime trajectories against each method's characteristic recurrence,
Z-space against W-space, divergence handling, batching, the sweep's resume, and bad input."""
import importlib
import os

import numpy as np
import pytest
import sympy as sp

from ntkode.numerics import SimulationResult, init_network, ntk_empirical, ntk_infinite, simulate, sphere_data, sweep
from ntkode.numerics import backend
from ntkode.errors import NtkodeError
from ntkode.theory.methods import METHODS, get_method
from ntkode.symbols import k, lam, z

from cases import MULTISTEP, SETTINGS

sweep_module = importlib.import_module("ntkode.numerics.sweep")
simulate_module = importlib.import_module("ntkode.numerics.simulate")



def recurrence_errors(method, H, e0, lr, steps, hyper):
    """||e_k|| from iterating p(z) = z^q + sum_j p_j z^(q-1-j) on every eigen-direction of H (sympy route)."""
    m = METHODS[method]
    coeffs = sp.Poly(m.char_poly(), z).all_coeffs()  # leading 1 first
    fn = sp.lambdify((k, lam, *m.symbols), coeffs[1:], modules="numpy")
    values = m.check_hyper({**hyper, "lr": lr})
    lams, U = np.linalg.eigh(H)
    q = len(coeffs) - 1
    hist = [U.T @ e0] * q
    out = [np.linalg.norm(e0)]
    for step in range(1, steps + 1):
        p = fn(step, lams, *[values[n] for n in m.hyper_names])
        new = -sum(np.asarray(p_j) * h for p_j, h in zip(p, hist))
        hist = [new] + hist[:-1]
        out.append(np.linalg.norm(new))
    return np.array(out)


@pytest.mark.parametrize("method", MULTISTEP)  # a scalar recurrence from W_{-j} = W_0; seed-mom2's start-up is
# not one (test_declarations.py's dense-engine test covers every method through its declared step)
@pytest.mark.parametrize("space", ["z", "w"])
def test_trajectory_matches_characteristic_recurrence_when_no_pattern_changes(method, space):
    X, y = sphere_data(6, 4, seed=3)
    W, a = init_network(400, 4, seed=0)
    H0 = ntk_empirical(W, a, X)
    lr = 0.3 / np.linalg.eigvalsh(H0)[-1]
    u0 = np.maximum(W @ X.T, 0).T @ a / np.sqrt(400)
    y = u0 + 1e-3 * y  # a small initial error: the weights barely move, so no activation flips
    hyper = {"lr": lr, **SETTINGS[method]}
    res = simulate(method, X, y, [400], 40, seeds=[0], hyper=hyper, space=space, drift_steps=(40,), progress=False)
    assert res.kernel_drift[0, 0, 0, 0] == 0.0  # the activation pattern never changed: exactly linear
    expected = recurrence_errors(method, H0, u0 - y, lr, 40, hyper)
    np.testing.assert_allclose(res.error_norm[0, 0, 0], expected, rtol=1e-9)
    assert expected[-1] < 0.9 * expected[0]  # the runs do make progress


@pytest.mark.parametrize("method", ["hb", "nag", "mom2"])
@pytest.mark.parametrize("train", ["W", "both"])
def test_z_space_equals_w_space(method, train):
    X, y = sphere_data(10, 7, seed=1)
    hyper = [{"lr": 0.5, **SETTINGS[method]}, {"lr": 1.0, **SETTINGS[method]}]
    kw = dict(seeds=2, hyper=hyper, train=train, drift_steps=(0, 30), keep_weights=True, progress=False)
    rz = simulate(method, X, y, [64, 256], 30, space="z", **kw)
    rw = simulate(method, X, y, [64, 256], 30, space="w", **kw)
    scale = rz.error_norm[..., :1]
    np.testing.assert_allclose(rz.error_norm / scale, rw.error_norm / scale, rtol=1e-9, atol=1e-10)
    np.testing.assert_array_equal(rz.diverged_step, rw.diverged_step)
    np.testing.assert_allclose(rz.weight_movement, rw.weight_movement, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rz.projections, rw.projections, rtol=1e-9, atol=1e-10 * scale.max())
    np.testing.assert_allclose(rz.kernel_drift, rw.kernel_drift, atol=1e-12)
    for Wz, Ww in zip(rz.final_W, rw.final_W):
        np.testing.assert_allclose(Wz, Ww, atol=1e-11)
    assert rz.space == "z" and rw.space == "w"


def test_recorded_quantities_match_direct_computation():
    X, y = sphere_data(8, 5, seed=2)
    res = simulate("hb", X, y, [128], 15, seeds=[4], hyper={"lr": 0.4, "momentum": 0.5}, keep_weights=True,
                   drift_steps=(15,), progress=False)
    W0, a = init_network(128, 5, seed=4)
    W = res.final_W[0][0, 0]
    e = np.maximum(W @ X.T, 0).T @ a / np.sqrt(128) - y
    assert res.error_norm[0, 0, 0, -1] == pytest.approx(np.linalg.norm(e), rel=1e-10)
    assert res.weight_movement[0, 0, 0, -1] == pytest.approx(np.linalg.norm(W - W0, axis=1).max(), rel=1e-10)
    H0, Hk = ntk_empirical(W0, a, X), ntk_empirical(W, a, X)
    assert res.kernel_drift[0, 0, 0, 0] == pytest.approx(np.linalg.norm(Hk - H0, 2) / np.linalg.norm(H0, 2))
    _, U = np.linalg.eigh(ntk_infinite(X))
    np.testing.assert_allclose(res.projections[0, 0, 0, -1], U.T @ e, atol=1e-10)
    np.testing.assert_allclose(res.lam_emp[0, 0], np.linalg.eigvalsh(H0), atol=1e-12)


def test_divergence_is_marked_frozen_and_predicted():
    X, y = sphere_data(8, 5, seed=0)
    hyper = [{"lr": 0.5}, {"lr": 50.0}]
    res = simulate("gd", X, y, [64], 60, seeds=2, hyper=hyper, progress=False)
    assert not res.diverged[0, 0].any() and res.diverged[0, 1].all()
    assert res.predicted_unstable.tolist() == [False, True]
    for s in range(2):
        k = res.diverged_step[0, 1, s]
        assert 0 < k < 60
        assert res.error_norm[0, 1, s, k] > 1e6 * res.error_norm[0, 1, s, 0]
        assert np.all(res.error_norm[0, 1, s, k - 1] <= 1e6 * res.error_norm[0, 1, s, 0])
        assert np.all(np.isnan(res.error_norm[0, 1, s, k + 1 :]))
    assert np.all(np.isfinite(res.error_norm[0, 0]))


def test_drift_between_divergence_checks_stays_nan_for_the_diverged_run():
    """A drift step between two divergence checks: the stable run gets its drift, the run that
    blew up by then keeps NaN (like its other records) instead of failing on a non-finite kernel."""
    X, y = sphere_data(12, 5, seed=0)
    res = simulate("gd", X, y, [64], 12, hyper=[{"lr": 0.5}, {"lr": 40.0}], train="both", drift_steps=(7,),
                   progress=False)
    stable, blown = res.kernel_drift[0, 0, 0, 0], res.kernel_drift[0, 1, 0, 0]
    assert 0 < stable < 1 and np.isnan(blown)
    assert 0 <= res.diverged_step[0, 1, 0] <= 7


def test_batch_splitting_gives_the_same_numbers(monkeypatch):
    X, y = sphere_data(8, 5, seed=0)
    hyper = [{"lr": 0.5, "r": 3.0}, {"lr": 0.8, "r": 4.0}]
    whole = simulate("nag", X, y, [96], 20, seeds=3, hyper=hyper, progress=False)
    monkeypatch.setattr(backend, "HOST_BATCH_BYTES", 1)  # one run per batch
    split = simulate("nag", X, y, [96], 20, seeds=3, hyper=hyper, progress=False)
    np.testing.assert_allclose(split.error_norm, whole.error_norm, rtol=1e-12)


def test_too_little_memory_is_an_error():
    with pytest.raises(NtkodeError, match="GiB"):
        backend.batch_slices(4, 10**9, 10**8)
    assert backend.batch_slices(5, 10, 25) == [slice(0, 2), slice(2, 4), slice(4, 5)]


def test_a_run_that_cannot_fit_is_refused_before_any_network_is_drawn(monkeypatch):
    X, y = sphere_data(5, 3, seed=0)
    monkeypatch.setattr(simulate_module, "memory_budget", lambda xp: 10_000)
    monkeypatch.setattr(simulate_module, "draw_network", lambda *a, **kw: pytest.fail("a network was drawn"))
    with pytest.raises(NtkodeError, match=r"width 64: .* GiB but only 9.31e-06 GiB"):
        simulate("gd", X, y, [16, 64], 3, hyper={"lr": 0.1}, progress=False)


def test_gpu_memory_check_names_the_device_or_the_host(monkeypatch):
    opts = simulate_module.Options(spec=get_method("gd"), steps=3, space="w", train="W", loss="sum", kappa=1.0,
                                   dtype="float64", drift=(), movement=True, projections=True, keep_weights=False,
                                   track_d=False)
    table = simulate_module.RunTable(settings=[{"eta": 0.1}], seeds=np.arange(2))
    gpu = object()  # any array module other than NumPy is a device
    monkeypatch.setattr(simulate_module, "memory_budget", lambda xp: 10**12 if xp is np else 10_000)
    with pytest.raises(NtkodeError, match="width 64: one run on the GPU"):
        simulate_module.check_memory(gpu, opts, table, 64, 5, 3)
    monkeypatch.setattr(simulate_module, "memory_budget", lambda xp: 10_000 if xp is np else 10**12)
    with pytest.raises(NtkodeError, match="width 64: the networks on the host"):
        simulate_module.check_memory(gpu, opts, table, 64, 5, 3)
    monkeypatch.setattr(simulate_module, "memory_budget", lambda xp: 10**12)
    simulate_module.check_memory(gpu, opts, table, 64, 5, 3)


def test_save_load_round_trip_and_single_setting_shape(tmp_path):
    X, y = sphere_data(6, 4, seed=0)
    res = simulate("nag", X, y, [32, 64], 10, seeds=3, hyper={"lr": 0.5, "r": 3.0}, keep_weights=True, progress=False)
    path = tmp_path / "run.npz"
    res.save(path)
    with np.load(path) as f:
        assert f["error_norm"].shape == (2, 3, 11)
        np.testing.assert_array_equal(f["X"], X)
    back = SimulationResult.load(path)
    np.testing.assert_array_equal(back.error_norm, res.error_norm)
    np.testing.assert_array_equal(back.final_W[1], res.final_W[1])
    assert back.settings == res.settings and back.method == "nag"
    with pytest.raises(NtkodeError, match="cannot write"):
        res.save(tmp_path / "no_such_folder" / "run.npz")
    with np.load(path) as f:
        arrays = {name: value for name, value in f.items() if name != "checksum"}  # an unchecked (older) file
    np.savez(tmp_path / "other.npz", **arrays, surplus=np.zeros(1))
    with pytest.raises(NtkodeError, match=r"unknown entries \['surplus'\]"):
        SimulationResult.load(tmp_path / "other.npz")


def test_sweep_resumes_after_interruption(tmp_path, monkeypatch):
    X, y = sphere_data(6, 4, seed=0)
    args = ("hb", X, y, [32, 64, 96], 12, 2, [{"lr": 0.5, "momentum": 0.3}, {"lr": 0.5, "momentum": 0.6}])
    calls = []
    real = sweep_module.simulate

    def interrupted(*a, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(a[3])
        return real(*a, **kw)

    monkeypatch.setattr(sweep_module, "simulate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep(*args, out_dir=tmp_path, progress=False)
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".npz")]) == 4
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    calls.clear()
    monkeypatch.setattr(sweep_module, "simulate", lambda *a, **kw: (calls.append(a[3]), real(*a, **kw))[1])
    resumed = sweep(*args, out_dir=tmp_path, progress=False)
    assert calls == [[96]]  # only the missing width was computed
    direct = simulate(*args, progress=False)
    np.testing.assert_allclose(resumed.error_norm, direct.error_norm, rtol=1e-12)
    assert resumed.error_norm.shape == (3, 2, 2, 13)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="sgd"), "unknown method"),
        (dict(hyper={"lr": -1.0}), "^lr must lie in"),
        (dict(method="hb", hyper={"momentum": 0.5}), "needs lr"),
        (dict(hyper={"lr": 0.1, "beta": 0.5}), "no hyper-parameter 'beta'"),
        (dict(hyper={"lr": 0.1, "eta": 0.2}), "given twice"),
        (dict(hyper={"lr": np.array([0.1, 0.2])}), "single number per setting"),
        (dict(method="no/such/method.toml"), "does not exist"),
        (dict(widths=[0]), "^widths must"),
        (dict(steps=0), "^steps must"),
        (dict(device="tpu"), "^device must"),
        (dict(loss="l1"), "^loss must"),
        (dict(train="a"), "^train must"),
        (dict(drift_steps=(99,)), "drift steps"),
        (dict(y=np.zeros(3)), "labels"),
        (dict(X=np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), y=np.zeros(3)), "parallel"),
        (dict(dtype="float16"), "dtype"),
        (dict(space="x"), "space"),
        (dict(seeds=0), "seeds"),
        (dict(seeds=[-1]), "non-negative"),
        (dict(widths=[10**11]), r"width 100000000000: .* GiB but only .* GiB"),
    ],
)
def test_bad_input_raises_ntkode_error(kwargs, match):
    X, y = sphere_data(5, 3, seed=0)
    call = dict(method="gd", X=X, y=y, widths=[16], steps=3, hyper={"lr": 0.1}, progress=False)
    call.update(kwargs)
    with pytest.raises(NtkodeError, match=match):
        simulate(**call)


def test_gpu_requested_without_gpu_is_an_error():
    if backend._cupy_or_none() is not None:
        pytest.skip("a GPU is present")
    with pytest.raises(NtkodeError, match="gpu"):
        backend.get_xp("gpu")


#: per method: a stable and a diverging setting
GPU_SETTINGS = {name: [{"lr": 0.5, **setting}, {"lr": 50.0, **setting}] for name, setting in SETTINGS.items()}


@pytest.mark.gpu
@pytest.mark.parametrize("method", sorted(GPU_SETTINGS))
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_gpu_and_cpu_agree_to_rounding(method, dtype, rtol):
    """Same seeds, same nets: the stable setting's records agree between CuPy and NumPy up to the
    summation-order rounding of the two BLAS libraries over 40 steps (relative to each record's
    scale: rtol 1e-9 in float64, 1e-4 in float32); the second setting diverges, where rounding is
    amplified without bound, so only where it was marked diverged is compared (with compaction).
    Kernel drift counts activation patterns, which float32 rounding flips for pre-activations
    near 0 (each flip moves H by O(1/m)): it is compared in float64 only."""
    if backend._cupy_or_none() is None:
        pytest.skip("CuPy or a CUDA GPU is missing")
    X, y = sphere_data(12, 8, seed=0)
    kw = dict(seeds=3, hyper=GPU_SETTINGS[method], drift_steps=(0, 20, 40), progress=False, keep_weights=True,
              dtype=dtype)
    for space in ("z", "w"):
        cpu = simulate(method, X, y, [128, 512], 40, device="cpu", space=space, **kw)
        gpu = simulate(method, X, y, [128, 512], 40, device="gpu", space=space, **kw)
        assert gpu.device == "gpu" and gpu.error_norm.dtype == cpu.error_norm.dtype
        np.testing.assert_array_equal(cpu.diverged_step, gpu.diverged_step)
        assert (cpu.diverged_step[:, 1] >= 0).all() and (cpu.diverged_step[:, 0] < 0).all()
        for name in ("error_norm", "projections", "weight_movement") + (("kernel_drift",) if dtype == "float64" else ()):
            want, got = getattr(cpu, name)[:, 0], getattr(gpu, name)[:, 0]
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.max(np.abs(want)), err_msg=f"{name} ({space})")
        for W_gpu, W_cpu in zip(gpu.final_W, cpu.final_W):
            np.testing.assert_allclose(W_gpu[0], W_cpu[0], rtol=rtol, atol=rtol * np.max(np.abs(W_cpu[0])))


@pytest.mark.parametrize("slots", [[0, 1], [0, 3], [1, 4], [0, 1, 2], [0, 2, 3], [1, 2, 4, 5], [2, 5]])
def test_pool_combination_is_the_weighted_sum_of_its_slots(slots):
    """Pool.combine over a strided view (a pair at any distance, or a window with zero weights in its
    gaps) = the explicit weighted sum, and leaves every other slot untouched."""
    engine = importlib.import_module("ntkode.numerics.engine")
    rng = np.random.default_rng(len(slots) * 10 + slots[-1])
    B, shape, P = 3, (4, 5), 7
    pool = engine.Pool(np, B, P, shape, np.float64)
    pool.data[...] = rng.standard_normal(pool.data.shape)
    before = pool.data.copy()
    weights = rng.standard_normal((B, len(slots)))
    out = 6
    pool.combine(slots, engine.window_weights(slots, list(weights.T)), out)
    want = sum(weights[:, j, None, None] * before[:, s] for j, s in enumerate(slots))
    np.testing.assert_allclose(pool.data[:, out], want, rtol=1e-13, atol=1e-13)
    others = [i for i in range(P) if i != out]
    np.testing.assert_array_equal(pool.data[:, others], before[:, others])
