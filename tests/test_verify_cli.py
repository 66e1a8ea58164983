"""`ntkode verify`: report files, exit codes, unknown claims, interrupted runs."""
import json
import shutil
import subprocess

import pytest

from ntkode.verify import claims as claims_module
from ntkode.verify.claim import Check, Claim, Evidence, Figure, Tolerance
from ntkode.verify.cli import main


def _fake_claim(name, measured):
    def measure(params, device):
        """Fake claim for the exit-code test."""
        check = Check("", "number", 1.0, measured, 0.0, Tolerance("abs", 0.1, "test"))
        return Evidence([check], Figure(name, "x", "y", []), [])

    return Claim(name, f"{name} statement", measure, {"quick": {}, "full": {}})


def test_two_real_claims_write_the_report(tmp_path, capsys):
    out = tmp_path / "rep"
    code = main(["verify", "--claims", "width-convergence,mom2-rate", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "complete" and report["complete"] is True
    records = report["claims"]
    assert [r["name"] for r in records] == ["width-convergence", "mom2-rate"]
    for record in records:
        assert {"name", "statement", "predicted", "measured", "tolerance", "passed"} <= set(record)
        assert record["passed"] is True
        assert (out / f"{record['name']}.png").stat().st_size > 1000
    assert "width-convergence" in (out / "report.md").read_text()
    assert "PASS" in printed and "FAIL" not in printed


def test_failing_claim_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(claims_module.CLAIMS, "fake-pass", _fake_claim("fake-pass", 1.05))
    monkeypatch.setitem(claims_module.CLAIMS, "fake-fail", _fake_claim("fake-fail", 2.0))
    assert main(["verify", "--claims", "fake-pass", "--out", str(tmp_path / "a")]) == 0
    assert main(["verify", "--claims", "fake-pass,fake-fail", "--out", str(tmp_path / "b")]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_interrupted_run_keeps_finished_claims(tmp_path, monkeypatch):
    def interrupt(params, device):
        """Stands for Ctrl-C during a claim."""
        raise KeyboardInterrupt

    monkeypatch.setitem(claims_module.CLAIMS, "fake-pass", _fake_claim("fake-pass", 1.0))
    monkeypatch.setitem(claims_module.CLAIMS, "fake-stop", Claim("fake-stop", "s", interrupt, {"quick": {}, "full": {}}))
    assert main(["verify", "--claims", "fake-pass,fake-stop", "--out", str(tmp_path)]) == 130
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["name"] for r in report["claims"]] == ["fake-pass"]
    assert report["status"] == "interrupted" and report["complete"] is False
    assert "INCOMPLETE (interrupted)" in (tmp_path / "report.md").read_text()


def test_unknown_claim_is_one_line_exit_2(tmp_path, capsys):
    assert main(["verify", "--claims", "gd-linear,no-such-claim", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no-such-claim" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv", [["verify", "--quick", "--full"], ["verify", "--device", "tpu"]])
def test_bad_flags_are_usage_errors(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_console_script_help():
    script = shutil.which("ntkode")
    if script is None:
        pytest.skip("the ntkode console script is not installed (pip install -e .)")
    proc = subprocess.run([script, "verify", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--claims" in proc.stdout and "report.json" in proc.stdout
