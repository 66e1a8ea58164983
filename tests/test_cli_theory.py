"""`ntkode derive` / `ntkode rates`: JSON contents and one-line errors with exit code 2."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

from ntkode.verify.cli import main


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("argv", [
    ["rates", "sgd", "--eigs", "1", "--lr", "0.1"],
    ["rates", "hb", "--eigs", "1", "--lr", "0.1"],
    ["rates", "gd", "--eigs", "0,1", "--lr", "0.1"],
    ["rates", "gd", "--eigs", "-1", "--lr", "0.1"],
    ["rates", "gd", "--eigs", "nan,1", "--lr", "0.1"],
    ["rates", "gd", "--eigs", "inf", "--lr", "0.1"],
    ["rates", "hb", "--eigs", "1", "--lr", "0.1", "--momentum", "1.0"],
    ["rates", "hb", "--eigs", "1", "--lr", "0.1", "--momentum", "-0.1"],
    ["rates", "nag", "--eigs", "1", "--lr", "0.1", "--r", "0"],
    ["rates", "gd", "--eigs", "1", "--lr", "0"],
    ["rates", "gd", "--eigs", "1", "--lr", "-1"],
    ["rates", "gd", "--eigs", "@/nonexistent.npy", "--lr", "0.1"],
    ["rates", "gd", "--eigs", "1", "--lr", "0.5", "--momentum", "0.9"],
    ["rates", "hb", "--eigs", "1", "--ode", "--damping", "1", "--lr", "0.1"],
    ["rates", "hb", "--eigs", "1", "--optimal", "--lr", "0.1"],
    ["rates", "hb", "--eigs", "1,2", "--ode", "--damping", "1e300"],
    ["rates", "hb", "--eigs", "1e308", "--lr", "1e308", "--momentum", "0.5"],
    ["bench-rates", "--n", "0"],
    ["derive", "sgd"],
])
def test_bad_input_is_one_line_exit_2(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


def test_eigs_from_npz_archive_is_one_line_exit_2(capsys, tmp_path):
    path = tmp_path / "eigs.npz"
    np.savez(path, a=np.ones(3))
    assert main(["rates", "gd", "--eigs", f"@{path}", "--lr", "0.5"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_discrete_json(capsys, tmp_path):
    path = tmp_path / "eigs.npy"
    np.save(path, np.array([0.1, 1.0]))
    out = run_json(capsys, "rates", "hb", "--eigs", f"@{path}", "--lr", "1", "--momentum", "0.5", "--json")
    assert out["rate"] == pytest.approx(np.sqrt(0.5)) and out["stable"]
    first = out["per_eigenvalue"][0]
    assert set(first) == {"lambda", "roots", "radius"} and len(first["roots"]) == 2


def test_unstable_is_reported_not_an_error(capsys):
    out = run_json(capsys, "rates", "gd", "--eigs", "1,3", "--lr", "1", "--json")
    assert out["rate"] == pytest.approx(2.0) and out["status"] == "unstable"


def test_ode_and_optimal_json(capsys):
    out = run_json(capsys, "rates", "nag", "--eigs", "0.5,1", "--r", "3", "--ode", "--json")
    assert (out["exponent"], out["order"]) == (0.0, pytest.approx(1.5))
    out = run_json(capsys, "rates", "hb", "--eigs", "0.25,1", "--optimal", "--json")
    assert out["rate"] == pytest.approx(1 / 3) and set(out["hyper"]) == {"eta", "beta"}
    assert out["hyper"]["eta"] == pytest.approx(16 / 9) and out["hyper"]["beta"] == pytest.approx(1 / 9)  # Polyak
    out = run_json(capsys, "rates", "hb", "--eigs", "0.25,1", "--optimal", "--ode", "--json")
    assert (out["hyper"]["gamma"], out["exponent"]) == (pytest.approx(1.0), pytest.approx(0.5))


@pytest.mark.parametrize("method", ["gd", "hb", "nag-sc", "nag", "mom2"])
def test_derive_json_sympifies(capsys, method):
    for extra in ([], ["--ode"], ["--ode", "--resolution", "high"]):
        out = run_json(capsys, "derive", method, *extra, "--json")
        assert {"polynomial", "roots", "rate"} <= set(out)
        poly = sp.sympify(out["polynomial"])
        assert poly.free_symbols & {sp.Symbol("z"), sp.Symbol("s")}
        [sp.sympify(x) for x in out["roots"]]


def test_real_subprocess():
    """The installed console script (next to this interpreter, as in a virtualenv)."""
    script = os.path.join(os.path.dirname(sys.executable), "ntkode")
    ok = subprocess.run([script, "rates", "gd", "--eigs", "1,2", "--lr", "0.5", "--json"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["rate"] == pytest.approx(0.5)
    bad = subprocess.run([script, "rates", "gd", "--eigs", "1", "--lr", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
