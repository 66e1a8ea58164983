"""Data safety of sweep parts: the key covers every input, stale and corrupt parts are recomputed
(never loaded), writes are atomic (ENOSPC leaves nothing), one run per folder (lock)."""
import errno
import importlib
import os
import shutil
import warnings

import numpy as np
import pytest

from ntkode.errors import NtkodeError
from ntkode.numerics import SimulationResult, simulate, sphere_data, sweep
from ntkode.numerics.files import atomic_write, exclusive, is_temporary, temporary_name

sweep_module = importlib.import_module("ntkode.numerics.sweep")
files_module = importlib.import_module("ntkode.numerics.files")

X0, Y0 = sphere_data(5, 3, seed=0)
BASE = dict(method="hb", X=X0, y=Y0, width=8, setting={"lr": 0.5, "momentum": 0.3}, steps=6, seeds=[0, 1],
            options={"loss": "sum"})


def key_of(**change):
    args = {**BASE, **change}
    return sweep_module.part_key(args["method"], args["X"], args["y"], args["width"], args["setting"], args["steps"],
                                 args["seeds"], args["options"])


@pytest.mark.parametrize("change", [
    dict(method="gd"),
    dict(X=X0 * (1 + 1e-15)),
    dict(X=X0.T.copy().reshape(5, 3)),  # same numbers in another layout
    dict(X=X0.reshape(3, 5)),  # same bytes, another shape
    dict(y=Y0 + 1e-15),
    dict(y=Y0[::-1].copy()),
    dict(width=9),
    dict(setting={"lr": 0.5, "momentum": 0.30000000000000004}),
    dict(setting={"lr": 0.5000000000000001, "momentum": 0.3}),
    dict(setting={"lr": 0.5, "momentum2": 0.3}),
    dict(steps=7),
    dict(seeds=[0, 2]),
    dict(seeds=[1, 0]),
    dict(seeds=[0]),
    dict(options={"loss": "mean"}),
    dict(options={"loss": "sum", "train": "both"}),
    dict(options={"loss": "sum", "kappa": 2.0}),
    dict(options={"loss": "sum", "dtype": "float32"}),
    dict(options={"loss": "sum", "space": "w"}),
    dict(options={"loss": "sum", "device": "gpu"}),
    dict(options={"loss": "sum", "drift_steps": (0, 3)}),
    dict(options={"loss": "sum", "keep_weights": True}),
])
def test_changing_any_input_changes_the_key_and_the_name(change):
    base, changed = key_of(), key_of(**change)
    assert changed != base
    width = change.get("width", 8)
    assert sweep_module.part_name("hb", width, changed) != sweep_module.part_name("hb", 8, base)


def test_key_holds_version_and_format(monkeypatch):
    base = key_of()
    monkeypatch.setattr(sweep_module, "__version__", "0.0.1")
    assert key_of() != base
    monkeypatch.undo()
    monkeypatch.setattr(sweep_module, "PART_FORMAT", sweep_module.PART_FORMAT + 1)
    assert key_of() != base


def test_key_of_a_declaration_file_follows_its_contents(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("name = 'mine'\n")
    first = key_of(method=str(path))
    path.write_text("name = 'mine'  # edited\n")
    assert key_of(method=str(path)) != first
    assert sweep_module.part_name(str(path), 8, first).startswith("mine-m8-")


def test_same_inputs_give_the_same_key():
    assert key_of() == key_of(X=X0.copy(), setting={"momentum": 0.3, "lr": 0.5}, seeds=(0, 1))


def test_a_count_of_seeds_is_not_a_list_of_one_seed():
    """seeds=3 means 0, 1, 2 and seeds=[3] means seed 3: different networks, different keys."""
    assert sweep_module.seed_list(3) == [0, 1, 2] and sweep_module.seed_list([3]) == [3]
    assert key_of(seeds=sweep_module.seed_list(3)) != key_of(seeds=sweep_module.seed_list([3]))


class Counter:
    """sweep's simulate, counting the widths it is called with."""

    def __init__(self, monkeypatch):
        self.calls = []
        self.real = sweep_module.simulate
        monkeypatch.setattr(sweep_module, "simulate", self)

    def __call__(self, *args, **kwargs):
        self.calls.append(list(args[3]))
        return self.real(*args, **kwargs)


SWEEP = dict(method="hb", X=X0, y=Y0, widths=[8, 9], steps=6, seeds=2, hyper={"lr": 0.5, "momentum": 0.3})


@pytest.mark.parametrize("change", [
    dict(steps=7), dict(y=Y0 * 2), dict(X=X0[::-1].copy()), dict(seeds=[0, 5]),
    dict(hyper={"lr": 0.5, "momentum": 0.4}), dict(loss="mean"), dict(kappa=0.5), dict(train="both"),
])
def test_sweep_recomputes_when_an_input_changes(change, tmp_path, monkeypatch):
    """End to end: the inputs reach the key (a mutant dropping steps or y from it would reuse parts)."""
    counter = Counter(monkeypatch)
    sweep(**SWEEP, out_dir=tmp_path, progress=False)
    sweep(**SWEEP, out_dir=tmp_path, progress=False)
    assert counter.calls == [[8], [9]]  # the identical rerun computed nothing
    args = {**SWEEP, **change}
    got = sweep(**args, out_dir=tmp_path, progress=False)
    assert counter.calls == [[8], [9], [8], [9]]
    direct = simulate(**args, progress=False)
    np.testing.assert_array_equal(got.error_norm, direct.error_norm)


def part_files(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".npz"))


def test_stale_part_under_another_name_is_recomputed_not_loaded(tmp_path, monkeypatch):
    """The audit's case: width 9's valid part copied under width 8's name."""
    sweep(**SWEEP, out_dir=tmp_path, progress=False)
    name8, name9 = part_files(tmp_path)
    assert "-m8-" in name8 and "-m9-" in name9
    shutil.copy(tmp_path / name9, tmp_path / name8)
    counter = Counter(monkeypatch)
    with pytest.warns(sweep_module.PartWarning, match="different computation"):
        got = sweep(**SWEEP, out_dir=tmp_path, progress=False)
    assert counter.calls == [[8]]
    np.testing.assert_array_equal(got.error_norm, simulate(**SWEEP, progress=False).error_norm)


def test_part_without_key_is_not_trusted(tmp_path, monkeypatch):
    sweep(**SWEEP, out_dir=tmp_path, progress=False)
    name = part_files(tmp_path)[0]
    SimulationResult.load(tmp_path / name).save(tmp_path / name)  # rewritten without its key
    counter = Counter(monkeypatch)
    with pytest.warns(sweep_module.PartWarning):
        sweep(**SWEEP, out_dir=tmp_path, progress=False)
    assert counter.calls == [[8]]


def corruptions(data: bytes):
    """Truncations and single-bit flips spread over the whole file."""
    for cut in (0, 1, len(data) // 3, len(data) // 2, len(data) - 1):
        yield f"truncated to {cut} bytes", data[:cut]
    for pos in np.linspace(0, len(data) - 1, 23).astype(int):
        for bit in (0, 7):
            flipped = bytearray(data)
            flipped[pos] ^= 1 << bit
            yield f"bit {bit} of byte {pos} flipped", bytes(flipped)


def same_result(a: SimulationResult, b: SimulationResult) -> bool:
    return all(np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True) if isinstance(getattr(a, name), np.ndarray)
               else getattr(a, name) == getattr(b, name) for name in vars(a) if name not in ("final_W", "final_a"))


def test_every_corruption_of_a_file_is_refused_by_load(tmp_path):
    """Each truncation is refused; each bit flip is refused unless it hit bytes the contents do not
    depend on (a zip header's timestamp): then what loads equals the original exactly."""
    path = tmp_path / "r.npz"
    original = simulate(**SWEEP, progress=False)
    original.save(path)
    data = path.read_bytes()
    refused = 0
    for what, bad in corruptions(data):
        path.write_bytes(bad)
        try:
            loaded = SimulationResult.load(path)
        except NtkodeError as err:
            assert "r.npz" in str(err) and "\n" not in str(err), what
            refused += 1
            continue
        assert not what.startswith("truncated") and same_result(loaded, original), f"{what}: loaded altered data"
    assert refused >= 5
    stored = np.ascontiguousarray(original.error_norm[:, 0]).tobytes()  # the saved layout of one setting
    where = data.find(stored)
    assert where > 0
    for offset in (0, len(stored) // 2, len(stored) - 1):  # a flip inside the numbers themselves
        flipped = bytearray(data)
        flipped[where + offset] ^= 1
        path.write_bytes(bytes(flipped))
        with pytest.raises(NtkodeError, match="r.npz"):
            SimulationResult.load(path)


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_corrupt_part_is_warned_recomputed_and_never_loaded(how, tmp_path, monkeypatch):
    first = sweep(**SWEEP, out_dir=tmp_path, progress=False)
    name = part_files(tmp_path)[1]
    data = (tmp_path / name).read_bytes()
    if how == "truncate":
        data = data[: len(data) // 2]
    else:
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x10
        data = bytes(flipped)
    (tmp_path / name).write_bytes(data)
    counter = Counter(monkeypatch)
    with pytest.warns(sweep_module.PartWarning, match=name):
        again = sweep(**SWEEP, out_dir=tmp_path, progress=False)
    assert counter.calls == [[9]]
    np.testing.assert_array_equal(again.error_norm, first.error_norm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep(**SWEEP, out_dir=tmp_path, progress=False)  # repaired: no warning, nothing computed
    assert counter.calls == [[9]]


def enospc_on_fsync(monkeypatch, target: str):
    """os.fsync raises ENOSPC for files whose name contains `target` (Linux: /proc/self/fd)."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    real = os.fsync

    def fsync(fd):
        if target in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(files_module.os, "fsync", fsync)


def test_full_disk_leaves_neither_temporary_nor_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    path.write_bytes(b"old contents")
    enospc_on_fsync(monkeypatch, "run.npz")
    with pytest.raises(NtkodeError, match="no space left"):
        simulate(**SWEEP, progress=False).save(path)
    assert os.listdir(tmp_path) == ["run.npz"] and path.read_bytes() == b"old contents"


def test_interrupted_write_removes_its_temporary(tmp_path):
    def write(handle):
        handle.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.bin", write)
    assert os.listdir(tmp_path) == []


def test_sweep_removes_temporaries_of_a_killed_run(tmp_path):
    sweep(**SWEEP, out_dir=tmp_path, progress=False)
    left = temporary_name(str(tmp_path / part_files(tmp_path)[0]))
    open(left, "wb").close()
    assert is_temporary(os.path.basename(left))
    sweep(**SWEEP, out_dir=tmp_path, progress=False)
    assert not os.path.exists(left)


def test_second_sweep_on_a_locked_folder_is_refused(tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    with exclusive(tmp_path / ".lock", "held by the test"):
        with pytest.raises(NtkodeError, match="in use by another ntkode run"):
            sweep(**SWEEP, out_dir=tmp_path, progress=False)
    assert counter.calls == []
    sweep(**SWEEP, out_dir=tmp_path, progress=False)  # released: runs
    assert counter.calls == [[8], [9]] and not (tmp_path / ".lock").exists()


def test_lock_is_exclusive_and_released_on_error(tmp_path):
    lock = tmp_path / "x.lock"
    with pytest.raises(RuntimeError):
        with exclusive(lock, "x"):
            with pytest.raises(NtkodeError, match="x is in use"):
                with exclusive(lock, "x"):
                    pass
            raise RuntimeError
    with exclusive(lock, "x"):
        assert lock.exists()
    assert not lock.exists()


@pytest.mark.parametrize("bad", [dict(widths=[0]), dict(hyper={"lr": -1.0, "momentum": 0.3}), dict(seeds=0),
                                 dict(widths=[10**11]), dict(y=np.zeros(2))])
def test_refused_input_leaves_no_folder(bad, tmp_path):
    out = tmp_path / "parts"
    with pytest.raises(NtkodeError):
        sweep(**{**SWEEP, **bad}, out_dir=out, progress=False)
    assert not out.exists()


def test_sweep_on_an_executor_equals_sequential(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        got = sweep(**SWEEP, out_dir=tmp_path, progress=False, client=pool)
    np.testing.assert_array_equal(got.error_norm, simulate(**SWEEP, progress=False).error_norm)


def test_part_paths_are_absolute_for_remote_workers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    task = sweep_module.make_task("hb", X0, Y0, 8, 6, [0], [{"lr": 0.5, "momentum": 0.3}], {}, "relative")
    assert task.paths[0].startswith(str(tmp_path / "relative") + os.sep)
