"""`ntkode simulate` through the real dispatcher: output file layout and one-line errors."""
import importlib
import json

import numpy as np
import pytest

from ntkode.verify import cli_simulate
from ntkode.verify.cli import main


def test_simulate_writes_run_file(tmp_path, capsys):
    out = tmp_path / "run.npz"
    code = main(["simulate", "--method", "nag", "--dataset", "sphere", "--n", "8", "--d", "4", "--width", "32,64",
                 "--steps", "15", "--lr", "0.5", "--r", "3", "--seeds", "3", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["error_norm_shape"] == [2, 3, 16]
    with np.load(out) as f:
        assert f["error_norm"].shape == (2, 3, 16)
        assert f["X"].shape == (8, 4) and f["y"].shape == (8,)
        assert json.loads(str(f["meta"]))["settings"] == [{"eta": 0.5, "r": 3.0}]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--method", "nag", "--width", "32", "--steps", "5", "--lr", "0.5"], "--r"),
        (["--method", "gd", "--width", "32,x", "--steps", "5", "--lr", "0.5"], "--width"),
        (["--method", "gd", "--width", "32", "--steps", "5", "--lr", "-1"], "--lr"),
        (["--method", "gd", "--width", "32", "--steps", "5", "--lr", "1", "--data", "/no/such.npz"], "cannot read"),
        (["--method", "gd", "--width", "32", "--steps", "0", "--lr", "1"], "--steps"),
        (["--method", "gd", "--width", "32", "--steps", "5", "--lr", "1", "--data-seed", "-1"], "--data-seed"),
        (["--method", "gd", "--width", "100000000000", "--steps", "5", "--lr", "1"], "width 100000000000"),
        (["--method", "gd", "--width", "32", "--steps", "5", "--lr", "1", "--momentum", ".5"],
         "method 'gd' has no hyper-parameter 'momentum'"),
        (["--method", "hb", "--width", "32", "--steps", "5", "--lr", "1", "--momentum", ".5", "--r", "3"],
         "method 'hb' has no hyper-parameter 'r'"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, match, tmp_path, capsys):
    code = main(["simulate", *argv, "--out", str(tmp_path / "r.npz"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and match in err


@pytest.mark.parametrize("out, match", [("no_such_folder/r.npz", "does not exist"), (".", "is a folder")])
def test_unwritable_out_is_refused_before_simulating(out, match, tmp_path, capsys, monkeypatch):
    simulated = []
    monkeypatch.setattr(cli_simulate, "sweep", lambda *a, **kw: simulated.append(a))
    code = main(["simulate", "--method", "gd", "--width", "32", "--steps", "5", "--lr", "1",
                 "--out", str(tmp_path / out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and match in err
    assert not simulated


def test_interrupted_simulate_resumes_without_recomputing_finished_widths(tmp_path, capsys, monkeypatch):
    """Ctrl-C during the second width: the first width's file survives in RUN.npz.parts/; the same
    command then simulates only the second width, writes RUN.npz equal to an uninterrupted run,
    and removes the parts folder."""
    sweep_module = importlib.import_module("ntkode.numerics.sweep")
    real = sweep_module.simulate
    argv = ["simulate", "--method", "hb", "--dataset", "sphere", "--n", "8", "--d", "4", "--width", "32,64",
            "--steps", "10", "--lr", "0.5", "--momentum", "0.5", "--seeds", "2", "--quiet"]
    calls = []

    def interrupted(method, X, y, widths, *args, **kwargs):
        calls.append(list(widths))
        if widths == [64]:
            raise KeyboardInterrupt
        return real(method, X, y, widths, *args, **kwargs)

    out = tmp_path / "run.npz"
    monkeypatch.setattr(sweep_module, "simulate", interrupted)
    assert main(argv + ["--out", str(out)]) == 130
    assert not out.exists() and len(list((tmp_path / "run.npz.parts").iterdir())) == 1

    def counted(method, X, y, widths, *args, **kwargs):
        calls.append(list(widths))
        return real(method, X, y, widths, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "simulate", counted)
    assert main(argv + ["--out", str(out)]) == 0
    assert calls == [[32], [64], [64]]
    assert not (tmp_path / "run.npz.parts").exists()
    assert main(argv + ["--out", str(tmp_path / "whole.npz")]) == 0
    with np.load(out) as resumed, np.load(tmp_path / "whole.npz") as whole:
        np.testing.assert_array_equal(resumed["error_norm"], whole["error_norm"])


SMALL = ["simulate", "--method", "hb", "--dataset", "sphere", "--n", "6", "--d", "3", "--width", "8,9",
         "--steps", "5", "--lr", "0.5", "--momentum", "0.3", "--seeds", "2", "--quiet"]


def test_empty_out_is_refused_before_simulating(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    simulated = []
    monkeypatch.setattr(cli_simulate, "sweep", lambda *a, **kw: simulated.append(a))
    assert main(SMALL + ["--out", ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out must name a file" in err
    assert not simulated and list(tmp_path.iterdir()) == []


def test_refused_input_leaves_no_parts_folder(tmp_path, capsys):
    """A width whose memory need is refused is found only inside the sweep: nothing stays behind."""
    out = tmp_path / "r.npz"
    argv = [a if a != "8,9" else "100000000000,8" for a in SMALL]
    assert main(argv + ["--out", str(out)]) == 2
    assert "width 100000000000" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_second_run_on_the_same_out_is_refused_while_the_first_holds_it(tmp_path, capsys, monkeypatch):
    from ntkode.numerics.files import exclusive

    out = tmp_path / "r.npz"
    simulated = []
    monkeypatch.setattr(cli_simulate, "sweep", lambda *a, **kw: simulated.append(a))
    with exclusive(f"{out}.lock", "the first run"):
        assert main(SMALL + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is in use by another ntkode run" in err and str(out) in err
    assert not simulated and not out.exists()
    monkeypatch.undo()
    assert main(SMALL + ["--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]  # no lock, no parts, no temporaries


def test_full_disk_at_the_final_write_leaves_no_run_file_and_resumes(tmp_path, capsys, monkeypatch):
    """ENOSPC while writing RUN.npz: exit 2 with one line, no RUN.npz and no temporary; the parts stay,
    so the rerun (disk freed) computes nothing and writes the file."""
    import errno
    import os

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    files_module = importlib.import_module("ntkode.numerics.files")
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / ".r.npz.")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    out = tmp_path / "r.npz"
    monkeypatch.setattr(files_module.os, "fsync", fsync)
    assert main(SMALL + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz.parts"]
    assert len([p for p in (tmp_path / "r.npz.parts").iterdir()]) == 2
    monkeypatch.undo()
    sweep_module = importlib.import_module("ntkode.numerics.sweep")
    calls = []
    monkeypatch.setattr(sweep_module, "simulate", lambda *a, **kw: calls.append(a))
    assert main(SMALL + ["--out", str(out)]) == 0
    assert calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]


def _blas_threads() -> int:
    """The BLAS thread count now (the largest over the loaded BLAS libraries)."""
    from threadpoolctl import threadpool_info

    return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


@pytest.fixture
def blas_two_threads():
    """BLAS set to 2 threads around the test (skip where the BLAS cannot run 2)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        if _blas_threads() != 2:
            pytest.skip("this BLAS cannot run 2 threads")
        yield


@pytest.mark.parametrize("serial_below, expected", [(None, 1), (0, 2)])
def test_simulate_runs_small_gemms_on_one_blas_thread(serial_below, expected, blas_two_threads, tmp_path, capsys,
                                                      monkeypatch):
    """A width-16, n = 8 run (GEMMs of 16 x 8 x 8 multiply-adds) trains, and its lazy diagnostic runs, on one BLAS
    thread, through the CLI;
    with the threshold at 0 (every GEMM 'large') the 2 threads set outside are left alone; afterwards the
    outer setting is back."""
    simulate_module = importlib.import_module("ntkode.numerics.simulate")
    if serial_below is not None:
        monkeypatch.setattr(simulate_module, "BLAS_SERIAL_MACS", serial_below)
    seen = []
    original = simulate_module._simulate_width

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(simulate_module, "_simulate_width", spy)
    numerics = importlib.import_module("ntkode.numerics")
    diagnostic = numerics.lazy_diagnostic

    def diagnostic_spy(*args, **kwargs):
        seen.append(("diagnostic", _blas_threads()))
        return diagnostic(*args, **kwargs)

    monkeypatch.setattr(numerics, "lazy_diagnostic", diagnostic_spy)
    argv = ["simulate", "--method", "gd", "--n", "8", "--d", "4", "--width", "16,32", "--steps", "3", "--lr", "0.5",
            "--quiet", "--out", str(tmp_path / "run.npz")]
    assert main(argv) == 0
    capsys.readouterr()
    assert seen == [expected, expected, ("diagnostic", expected), ("diagnostic", expected)]
    assert _blas_threads() == 2


def test_serial_blas_threshold_is_strict(blas_two_threads):
    """serial_blas(macs) limits BLAS to one thread exactly when macs < BLAS_SERIAL_MACS; step_macs is the
    largest GEMM of a step, m n max(n, d)."""
    simulate_module = importlib.import_module("ntkode.numerics.simulate")
    limit = simulate_module.BLAS_SERIAL_MACS
    with simulate_module.serial_blas(limit - 1):
        assert _blas_threads() == 1
    with simulate_module.serial_blas(limit):
        assert _blas_threads() == 2
    assert simulate_module.step_macs(100, 20, 5) == 100 * 20 * 20
    assert simulate_module.step_macs(100, 20, 50) == 100 * 20 * 50
