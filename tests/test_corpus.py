"""Bad-input corpus (issue 13): every case must end in one clear line, never a traceback,
a silent cast, a NaN result or a leaked warning.

API cases expect NtkodeError with a one-line message containing the given text; CLI cases
expect exit code 2, one line `ntkode CMD: error: ...` on stderr containing the text, and
nothing on stdout. Warnings are recorded with the "always" filter and must be none.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from ntkode.errors import NtkodeError
from ntkode.numerics import (check_data, init_network, load_data, ntk_empirical, ntk_infinite, paper_data, simulate,
                             sphere_data)
from ntkode.verify import runner
from ntkode.verify.cli import main

X_OK, Y_OK = sphere_data(6, 4, seed=0)
UNIT = X_OK  # unit rows


def refuses(call, match: str) -> NtkodeError:
    """Run `call`; assert NtkodeError with a one-line message containing `match`, and no warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(NtkodeError) as info:
            call()
    message = str(info.value)
    assert match in message, message
    assert len(message.splitlines()) == 1 and "allow_pickle" not in message, message
    assert not caught, [str(w.message) for w in caught]
    return info.value


def cli_refuses(argv: list[str], match: str, capsys) -> str:
    """Run `ntkode argv`; assert exit 2, one stderr line containing `match`, empty stdout, no warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ntkode {argv[0]}: error: "), err
    assert match in lines[0] and "Traceback" not in err and "allow_pickle" not in err, err
    assert out == "" and not caught, (out, [str(w.message) for w in caught])
    return lines[0]


# ---------------------------------------------------------------- bad data files

def _npz_bytes(tmp: Path, **arrays) -> bytes:
    path = tmp / "scratch.npz"
    np.savez(path, **arrays)
    return path.read_bytes()


def _write(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """name -> (path, text the refusal must contain)."""
    tmp = tmp_path_factory.mktemp("bad-data")
    good = _npz_bytes(tmp, X=X_OK, y=Y_OK)
    big = X_OK * 1e308 / np.abs(X_OK).max()
    files = {
        "empty": (_write(tmp, "empty.npz", b""), "is empty"),
        "truncated-half": (_write(tmp, "half.npz", good[: len(good) // 2]), "corrupt"),
        "truncated-tail": (_write(tmp, "tail.npz", good[:-10]), "corrupt"),
        "truncated-head": (_write(tmp, "head.npz", good[:30]), "corrupt"),
        "text": (_write(tmp, "text.npz", b"X,y\n1,2\n"), "corrupt"),
        "string-X": (_write(tmp, "sx.npz", _npz_bytes(tmp, X=np.array([["a", "b"]]), y=np.ones(1))), "dtype <U1"),
        "bytes-X": (_write(tmp, "bx.npz", _npz_bytes(tmp, X=np.array([[b"a"]]), y=np.ones(1))), "dtype |S1"),
        "object-X": (_write(tmp, "ox.npz", _npz_bytes(tmp, X=np.array([[1.0, 2.0]], dtype=object), y=np.ones(1))),
                     "pickled"),
        "object-y": (_write(tmp, "oy.npz", _npz_bytes(tmp, X=X_OK, y=Y_OK.astype(object))), "pickled"),
        "complex-X": (_write(tmp, "cx.npz", _npz_bytes(tmp, X=X_OK + 1e-3j, y=Y_OK)), "must be real"),
        "complex-y": (_write(tmp, "cy.npz", _npz_bytes(tmp, X=X_OK, y=Y_OK + 0j)), "must be real"),
        "overflow-X-1e308": (_write(tmp, "big.npz", _npz_bytes(tmp, X=big, y=Y_OK)), "overflow"),
        "overflow-X-1e200": (_write(tmp, "big2.npz", _npz_bytes(tmp, X=UNIT * 1e200, y=Y_OK)), "overflow"),
        "underflow-X-1e-200": (_write(tmp, "tiny.npz", _npz_bytes(tmp, X=UNIT * 1e-200, y=Y_OK)), "underflow"),
        "huge-y": (_write(tmp, "bigy.npz", _npz_bytes(tmp, X=X_OK, y=Y_OK * 1e308)), "rescale y"),
        "nan-X": (_write(tmp, "nanx.npz", _npz_bytes(tmp, X=np.where(np.eye(6, 4) > 0, np.nan, X_OK), y=Y_OK)),
                  "NaN or inf"),
        "inf-y": (_write(tmp, "infy.npz", _npz_bytes(tmp, X=X_OK, y=np.r_[np.inf, Y_OK[1:]])), "NaN or inf"),
        "1-D-X": (_write(tmp, "x1.npz", _npz_bytes(tmp, X=np.ones(4), y=np.ones(4))), "2-D"),
        "empty-X": (_write(tmp, "x0.npz", _npz_bytes(tmp, X=np.ones((0, 3)), y=np.ones(0))), "non-empty"),
        "short-y": (_write(tmp, "ys.npz", _npz_bytes(tmp, X=X_OK, y=Y_OK[:3])), "shape (6,)"),
        "2-D-y": (_write(tmp, "y2.npz", _npz_bytes(tmp, X=X_OK, y=Y_OK[:, None])), "shape (6,)"),
        "missing-y": (_write(tmp, "noy.npz", _npz_bytes(tmp, X=X_OK)), "missing array(s) y"),
        "missing-both": (_write(tmp, "none.npz", _npz_bytes(tmp, a=X_OK)), "missing array(s) X, y"),
        "single-npy": (str(tmp / "single.npy"), "single array"),
        "no-such-file": (str(tmp / "absent.npz"), "No such file"),
        "directory": (str(tmp), "cannot read"),
    }
    np.save(tmp / "single.npy", X_OK)
    return files


BAD_FILES = ["empty", "truncated-half", "truncated-tail", "truncated-head", "text", "string-X", "bytes-X",
             "object-X", "object-y", "complex-X", "complex-y", "overflow-X-1e308", "overflow-X-1e200",
             "underflow-X-1e-200", "huge-y", "nan-X", "inf-y", "1-D-X", "empty-X", "short-y", "2-D-y", "missing-y",
             "missing-both", "single-npy", "no-such-file", "directory"]


@pytest.mark.parametrize("name", BAD_FILES)
def test_load_data_refuses(bad_files, name):
    path, match = bad_files[name]
    refuses(lambda: load_data(path), match)


@pytest.mark.parametrize("name", BAD_FILES)
def test_cli_simulate_data_refuses(bad_files, name, tmp_path, capsys):
    path, match = bad_files[name]
    out = tmp_path / "run.npz"
    cli_refuses(["simulate", "--method", "gd", "--width", "8", "--steps", "3", "--lr", "0.5", "--quiet",
                 "--data", path, "--out", str(out)], match, capsys)
    assert not out.exists() and not Path(f"{out}.parts").exists()


@pytest.mark.parametrize("position", np.linspace(0.0, 0.999, 12).tolist())
def test_bit_flipped_archive_is_refused_or_loads_unchanged(tmp_path, position):
    """A flipped bit either makes the file unreadable (one clear NtkodeError) or lies in a field
    nobody reads, in which case X and y load bit for bit; never different numbers, never a traceback."""
    data = bytearray(_npz_bytes(tmp_path, X=X_OK, y=Y_OK))
    data[int(position * len(data))] ^= 0x10
    path = _write(tmp_path, "flip.npz", bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            X, y = load_data(path)
        except NtkodeError as err:
            assert len(str(err).splitlines()) == 1 and "allow_pickle" not in str(err)
        else:
            np.testing.assert_array_equal(X, X_OK)
            np.testing.assert_array_equal(y, Y_OK)
    assert not caught


# ---------------------------------------------------------------- kernels

@pytest.mark.parametrize(
    "X, match",
    [
        ("abc", "real numeric array"),
        ([["a", "b"], ["c", "d"]], "real numeric array"),
        (np.array([[1.0, 2.0]], dtype=object), "dtype object"),
        ([[1.0, 2.0], [3.0]], "numeric array"),
        (X_OK + 1j, "must be real"),
        (X_OK.astype(np.complex64), "must be real"),
        (UNIT * 1e308, "overflow"),
        (UNIT * 1e200, "overflow"),
        (UNIT * 1e-200, "underflow"),
        (np.ones(3), "2-D"),
        (np.ones((0, 3)), "non-empty"),
        (np.ones((3, 0)), "non-empty"),
        (np.ones((2, 2, 2)), "2-D"),
        ([[np.nan, 1.0]], "NaN or inf"),
        ([[np.inf, 1.0]], "NaN or inf"),
        (None, "dtype object"),
    ],
)
def test_ntk_infinite_refuses_inputs(X, match):
    refuses(lambda: ntk_infinite(X), match)


@pytest.mark.parametrize("kappa", ["x", None, -1.0, 0.0, np.nan, np.inf, 1e200, True, [1.0], 1j])
def test_ntk_infinite_refuses_kappa(kappa):
    refuses(lambda: ntk_infinite(X_OK, train="both", kappa=kappa), "kappa")


@pytest.mark.parametrize("options, match", [({"train": "a"}, "train"), ({"loss": "max"}, "loss"),
                                            ({"train": None}, "train")])
def test_kernel_options_refused(options, match):
    refuses(lambda: ntk_infinite(X_OK, **options), match)


def test_huge_but_representable_inputs_give_a_finite_kernel():
    """Rows of norm 1e140 are accepted (||x||^2 = 1e280 is finite) and give the scaled kernel."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        H = ntk_infinite(UNIT * 1e140)
    np.testing.assert_allclose(H / 1e280, ntk_infinite(UNIT), rtol=1e-13)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.r_[UNIT, UNIT[:1]], "duplicate"),
        (np.r_[UNIT, 2 * UNIT[:1]], "parallel"),
        (np.r_[UNIT, np.zeros((1, 4))], "zero vectors"),
        (UNIT + 0j, "must be real"),
        ("x", "real numeric array"),
    ],
)
def test_check_data_refuses(X, match):
    refuses(lambda: check_data(X), match)


@pytest.mark.parametrize(
    "args, match",
    [
        (("a", 3, 0), "width"),
        ((0, 3, 0), "width"),
        ((2.5, 3, 0), "width"),
        ((True, 3, 0), "width"),
        ((10**30, 3, 0), "width"),
        ((4, "d", 0), "d must"),
        ((4, 0, 0), "d must"),
        ((4, 3, -1), "seed"),
        ((4, 3, 1.5), "seed"),
        ((4, 3, "0"), "seed"),
    ],
)
def test_init_network_refuses(args, match):
    refuses(lambda: init_network(*args), match)


@pytest.mark.parametrize("kappa", ["x", -2.0, np.nan, None])
def test_init_network_refuses_kappa(kappa):
    refuses(lambda: init_network(4, 3, 0, kappa), "kappa")


def test_empirical_kernel_refuses_complex_inputs():
    W, a = init_network(8, 4, 0)
    refuses(lambda: ntk_empirical(W, a, X_OK + 1j), "must be real")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sphere_data("a", 3), "n must"),
        (lambda: sphere_data(10**30, 3), "at most"),
        (lambda: sphere_data(np.inf, 3), "n must"),
        (lambda: sphere_data(10**6, 10**6), "exceed"),
        (lambda: sphere_data(5, 3, seed=-1), "seed"),
        (lambda: paper_data(0), "n must"),
        (lambda: paper_data(None), "n must"),
    ],
)
def test_generated_data_refuses(call, match):
    refuses(call, match)


# ---------------------------------------------------------------- simulate (API)

def _simulate(**change):
    kwargs = dict(method="gd", X=X_OK, y=Y_OK, widths=8, steps=3, seeds=1, hyper={"lr": 0.5}, device="cpu",
                  progress=False)
    kwargs.update(change)
    return simulate(**kwargs)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"X": "abc"}, "real numeric array"),
        ({"y": "abc"}, "real numeric array"),
        ({"y": ["a"] * 6}, "real numeric array"),
        ({"X": X_OK + 1j}, "must be real"),
        ({"y": Y_OK + 1j}, "must be real"),
        ({"X": X_OK.astype(object)}, "dtype object"),
        ({"X": UNIT * 1e308}, "overflow"),
        ({"y": Y_OK * 1e308}, "rescale y"),
        ({"y": Y_OK * 1e200}, "rescale y"),
        ({"kappa": "x"}, "kappa"),
        ({"kappa": -1.0}, "kappa"),
        ({"seeds": [0, 0]}, "repeated"),
        ({"seeds": [3, 1, 3]}, "[3] are repeated"),
        ({"seeds": 10**9}, "at most"),
        ({"seeds": -1}, "seeds"),
        ({"seeds": "2"}, "seeds"),
        ({"seeds": [0.5]}, "seeds"),
        ({"widths": 10**30}, "widths"),
        ({"widths": "abc"}, "widths"),
        ({"widths": True}, "widths"),
        ({"widths": [8, 0]}, "widths"),
        ({"widths": np.nan}, "widths"),
        ({"steps": 10**30}, "steps"),
        ({"steps": "5"}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"train": "x"}, "train"),
        ({"loss": "x"}, "loss"),
    ],
)
def test_simulate_refuses(change, match):
    refuses(lambda: _simulate(**change), match)


# ---------------------------------------------------------------- CLI: simulate and verify flags

SIM = ["simulate", "--method", "gd", "--width", "8", "--steps", "3", "--lr", "0.5", "--quiet"]


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--kappa", "-1"], "--kappa"),
        (["--kappa", "nan"], "--kappa"),
        (["--kappa", "inf"], "--kappa"),
        (["--seeds", "1000000000"], "--seeds must be at most"),
        (["--seeds", "0"], "--seeds"),
        (["--width", "1000000000000000000000000000000"], "--width"),
        (["--n", "0"], "--n must"),
        (["--d", "0"], "--d must"),
        (["--n", "1000000", "--d", "1000000"], "exceed"),
    ],
)
def test_cli_simulate_refuses(extra, match, tmp_path, capsys):
    argv = SIM + ["--out", str(tmp_path / "run.npz")]
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    cli_refuses(argv, match, capsys)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["verify", "--claims", "no-such"], "unknown claim(s) no-such"),
        (["verify", "--claims", ","], "(none given)"),
        (["verify", "--claims", "gd-linear", "--out", ""], "--out must name a directory"),
        (["verify", "--claims", "gd-linear", "--out", "/proc/self/ntkode-report"], "--out"),
    ],
)
def test_cli_verify_refuses(argv, match, capsys):
    cli_refuses(argv, match, capsys)


def test_cli_verify_refuses_a_file_as_out(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    cli_refuses(["verify", "--claims", "gd-linear", "--out", str(target)], "--out", capsys)


def test_cli_verify_refuses_a_directory_named_report_json(tmp_path, capsys):
    (tmp_path / "report.json").mkdir()
    cli_refuses(["verify", "--claims", "gd-linear", "--out", str(tmp_path)], "report.json", capsys)


def test_cli_verify_refuses_a_directory_named_like_a_figure(tmp_path, capsys):
    (tmp_path / "gd-linear.png").mkdir()
    cli_refuses(["verify", "--claims", "gd-linear", "--out", str(tmp_path)], "gd-linear.png", capsys)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--data", "GOOD", "--n", "50"], "--n do not apply with --data"),
        (["--data", "GOOD", "--d", "99"], "--d do not apply with --data"),
        (["--data", "GOOD", "--n", "50", "--d", "99"], "--n and --d do not apply with --data"),
        (["--dataset", "paper", "--d", "7"], "--d applies to --dataset sphere only; paper fixes"),
        (["--dataset", "digits", "--d", "7"], "--d applies to --dataset sphere only; digits fixes"),
        (["--dataset", "mnist", "--d", "5"], "--d applies to --dataset sphere only; mnist fixes"),
    ],
)
def test_cli_simulate_refuses_flags_that_would_be_ignored(extra, match, tmp_path, capsys):
    """--n and --d where the data source fixes them were ignored silently (exit 0); now one line, exit 2,
    before any file is written."""
    good = tmp_path / "good.npz"
    np.savez(good, X=X_OK, y=Y_OK)
    argv = SIM + ["--out", str(tmp_path / "run.npz")] + [str(good) if word == "GOOD" else word for word in extra]
    cli_refuses(argv, match, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.npz"]


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--seed", "-1"], "--seed must be a non-negative integer; got -1"),
        (["--n", "1000000000000"], "--n 1000000000000 needs"),
        (["--n", "-5"], "--n must be a positive integer"),
        (["--n-reference", "0"], "--n-reference must be a positive integer"),
        (["--repeats", "0"], "--repeats must be a positive integer"),
    ],
)
def test_cli_bench_rates_refuses(extra, match, capsys):
    """Refused before any array is drawn: the huge --n by its memory need, not by an allocation failure."""
    cli_refuses(["bench-rates", "--n", "10", "--n-reference", "10", "--repeats", "1", *extra], match, capsys)


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_cli_bench_simulate_refuses_steps(steps, capsys):
    """--steps 0 used to mean 'the preset's steps' and ran the whole benchmark."""
    cli_refuses(["bench-simulate", "--steps", steps], "--steps must be a positive integer", capsys)


# ---------------------------------------------------------------- theory API (issue 13: raw exceptions, silent casts)

def _theory():
    from ntkode import theory

    return theory


THEORY_CASES = {
    "lr-string": (lambda t: t.spectral_radius("hb", [1, 2], lr="abc", momentum=0.5), "lr must be a real number"),
    "lr-array": (lambda t: t.spectral_radius("hb", [1, 2], lr=np.array([0.1, 0.2]), momentum=0.5),
                 "lr must be a single number"),
    "lr-array-of-one": (lambda t: t.spectral_radius("hb", [1, 2], lr=np.array([0.1]), momentum=0.5),
                        "lr must be a single number"),
    "unknown-name": (lambda t: t.spectral_radius("hb", [1], lr=0.1, momentum=0.5, r=3), "no hyper-parameter 'r'"),
    "typo": (lambda t: t.spectral_radius("hb", [1], lr=0.1, momentun=0.5), "did you mean 'momentum'?"),
    "name-and-alias": (lambda t: t.spectral_radius("hb", [1], lr=0.1, eta=0.2, momentum=0.5), "given twice"),
    "missing": (lambda t: t.spectral_radius("hb", [1], lr=0.1), "needs momentum"),
    "open-end": (lambda t: t.spectral_radius("hb", [1], lr=0.1, momentum=1.0), "momentum must lie in [0, 1)"),
    "lr-nan": (lambda t: t.spectral_radius("gd", [1], lr=float("nan")), "lr must lie in (0, inf)"),
    "lr-inf": (lambda t: t.spectral_radius("gd", [1], lr=float("inf")), "lr must lie in (0, inf)"),
    "lr-zero": (lambda t: t.spectral_radius("gd", [1], lr=0), "lr must lie in (0, inf)"),
    "lr-complex": (lambda t: t.spectral_radius("gd", [1], lr=0.1 + 1j), "lr must be a real number"),
    "eigs-empty": (lambda t: t.spectral_radius("gd", [], lr=0.1), "non-empty 1-D"),
    "eigs-zero": (lambda t: t.spectral_radius("gd", [0, 1], lr=0.1), "finite and > 0"),
    "eigs-nan": (lambda t: t.spectral_radius("gd", [float("nan")], lr=0.1), "finite and > 0"),
    "eigs-string": (lambda t: t.spectral_radius("gd", "abc", lr=0.1), "eigenvalues must be numbers"),
    "eigs-2d": (lambda t: t.spectral_radius("gd", [[1, 2], [3, 4]], lr=0.1), "1-D"),
    "unknown-method": (lambda t: t.spectral_radius("sgd", [1], lr=0.1), "did you mean 'gd'?"),
    "overflow": (lambda t: t.spectral_radius("hb", [1e308], lr=1e308, momentum=0.5), "non-finite rate"),
    "optimal-strings": (lambda t: t.optimal("hb", "a", "b"), "need numbers"),
    "optimal-reversed": (lambda t: t.optimal("hb", 2, 1), "lam_min <= lam_max"),
    "optimal-ill-posed": (lambda t: t.optimal("hb", 1e-300, 1e300), "ill-posed"),
    "optimal-mom2-ill-posed": (lambda t: t.optimal("mom2", 1e-9, 1e9), "ill-posed"),
    "ode-resolution": (lambda t: t.ode_rate("hb", [1], "medium", damping=1), "resolution must be one of"),
    "ode-high-needs-lr": (lambda t: t.ode_rate("hb", [1], "high", damping=1), "needs lr"),
    "ode-negative-damping": (lambda t: t.ode_rate("hb", [1], damping=-1), "damping must lie in [0, inf)"),
    "iterate-non-square": (lambda t: t.iterate("gd", np.ones((2, 3)), np.ones(2), 5, lr=0.1), "square H"),
    "iterate-zero-steps": (lambda t: t.iterate("gd", np.eye(2), np.ones(2), 0, lr=0.1), "steps must be"),
    "unknown-tuning": (lambda t: t.named_tuning("hb", "standard", 1, 10), "no tuning 'standard'"),
}


@pytest.mark.parametrize("name", sorted(THEORY_CASES))
def test_theory_api_refuses(name):
    call, match = THEORY_CASES[name]
    refuses(lambda: call(_theory()), match)


def test_complex_eigenvalues_are_refused():
    refuses(lambda: _theory().spectral_radius("gd", np.array([1 + 1j, 2.0]), lr=0.1), "real")


def test_eigenvalues_below_float64_resolution_are_refused():
    refuses(lambda: _theory().spectral_radius("gd", [1e-320, 1.0], lr=0.5), "eigenvalue")
    refuses(lambda: _theory().spectral_radius("gd", [1e-17, 1.0], lr=0.5), "resolution")
    refuses(lambda: _theory().spectral_radius("gd", [1.0, 2.0 + 0j], lr=0.5), "real")
    assert _theory().spectral_radius("gd", [1e-15, 1.0], lr=1.0).rate == 1 - 1e-15  # inside the resolution
    eps, tiny = np.finfo(float).eps, np.finfo(float).tiny
    assert _theory().spectral_radius("gd", [1.01 * eps, 1.0], lr=1.0).rate < 1   # spread just below 1/eps
    refuses(lambda: _theory().spectral_radius("gd", [0.99 * eps, 1.0], lr=0.5), "resolution")
    assert _theory().spectral_radius("gd", [tiny], lr=1.0).argmax_lambda == tiny  # smallest normal: kept
    refuses(lambda: _theory().spectral_radius("gd", [tiny / 2], lr=1.0), "smallest normal")


def test_boolean_hyper_parameter_is_refused():
    refuses(lambda: _theory().spectral_radius("gd", [1.0, 2.0], lr=True), "lr")
    refuses(lambda: _theory().spectral_radius("gd", [1.0, 2.0], lr=np.array([True])), "lr")


@pytest.mark.parametrize("setting", ["medium", "", None])
def test_runner_refuses_settings(setting):
    refuses(lambda: runner.run("gd-linear", setting=setting, progress=False), "setting")


def test_corpus_size():
    """The issue asks for a corpus of at least 80 cases in this file."""
    import inspect
    import sys

    module = sys.modules[__name__]
    count = 0
    for name, func in inspect.getmembers(module, inspect.isfunction):
        if name.startswith("test_") and name != "test_corpus_size":
            marks = getattr(func, "pytestmark", [])
            sizes = [len(m.args[1]) for m in marks if m.name == "parametrize"]
            count += int(np.prod(sizes)) if sizes else 1
    assert count >= 80, count
    assert os.path.basename(__file__) == "test_corpus.py"
