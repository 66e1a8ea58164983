"""The verify runner's safety: failed measurements, output paths checked first, incomplete
reports marked, --resume, report metadata, and figure drawing (colours, error bars, ticks)."""
import json
import os
from datetime import datetime

import numpy as np
import pytest

from ntkode import __version__
from ntkode.errors import NtkodeError
from ntkode.verify import claims as claims_module
from ntkode.verify import runner
from ntkode.verify.claim import Check, Claim, Curve, Evidence, Figure, Outcome, Tolerance
from ntkode.verify.cli import main
from ntkode.verify.report import curve_group, draw_figure, render_figure, to_markdown

CALLS: list[str] = []


def fake_claim(name, measured=1.0, *, raises=None, params=None):
    """A claim measuring `measured` against 1 +- 0.1, or raising `raises`; counts its calls in CALLS."""

    def measure(p, device):
        """Fake claim."""
        CALLS.append(name)
        if raises is not None:
            raise raises
        check = Check("", "number", 1.0, measured, 0.0, Tolerance("abs", 0.1, "test"))
        return Evidence([check], Figure(name, "x", "y", [Curve("c", [1.0, 2.0], [1.0, 0.5])]), [f"note {name}"])

    defaults = params or {"size": 1}
    return Claim(name, f"{name} statement", measure, {"quick": dict(defaults), "full": dict(defaults)})


@pytest.fixture
def fakes(monkeypatch):
    """Register fake-a (passes), fake-b (passes), fake-err (raises NtkodeError), fake-stop (Ctrl-C)."""
    CALLS.clear()
    for claim in (fake_claim("fake-a"), fake_claim("fake-b"),
                  fake_claim("fake-err", raises=NtkodeError("the fit window is empty")),
                  fake_claim("fake-stop", raises=KeyboardInterrupt())):
        monkeypatch.setitem(claims_module.CLAIMS, claim.name, claim)
    return monkeypatch


def read_report(out):
    return json.loads((out / "report.json").read_text())


def test_a_measurement_error_is_a_fail_row_and_exit_1(fakes, tmp_path, capsys):
    assert main(["verify", "--claims", "fake-a,fake-err", "--device", "cpu", "--out", str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert "fake-err  (no measurement)" in printed and "FAIL" in printed
    record = read_report(tmp_path)["claims"][1]
    assert record["name"] == "fake-err" and record["passed"] is False and record["checks"] == []
    assert record["quantity"] == "(no measurement)" and record["predicted"] is None
    assert "measurement failed: the fit window is empty" in record["notes"]


def test_an_outcome_without_checks_fails_and_serialises():
    outcome = Outcome("x", "s", "quick", {}, Evidence([], Figure("t", "x", "y", []), []), 0.0)
    assert outcome.passed is False and outcome.worst is None
    assert outcome.to_json()["tolerance"] == "-"


def test_worst_is_the_check_furthest_from_its_tolerance():
    tol = Tolerance("abs", 0.1, "")
    near, far = Check("near", "q", 1.0, 1.05, 0.0, tol), Check("far", "q", 1.0, 1.3, 0.0, tol)
    outcome = Outcome("x", "s", "quick", {}, Evidence([near, far], Figure("t", "x", "y", []), []), 0.0)
    assert outcome.worst is far and outcome.to_json()["measured"] == 1.3


def test_existing_file_as_out_is_refused_before_any_claim_runs(fakes, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    assert main(["verify", "--claims", "fake-a", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ntkode verify: error: --out ") and "not a directory" in err and len(err.splitlines()) == 1
    assert CALLS == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_unwritable_out_is_refused_before_any_claim_runs(fakes, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["verify", "--claims", "fake-a", "--out", str(locked / "rep")]) == 2
    finally:
        locked.chmod(0o700)
    assert "not writable" in capsys.readouterr().err and CALLS == []


def test_read_only_filesystem_is_refused_before_any_claim_runs(fakes, tmp_path, capsys):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc (a filesystem nobody can create files in)")
    assert main(["verify", "--claims", "fake-a", "--out", "/proc/self/ntkode-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out" in err and len(err.splitlines()) == 1 and CALLS == []


def test_empty_out_is_refused(fakes, capsys):
    assert main(["verify", "--claims", "fake-a", "--out", ""]) == 2
    assert "empty path" in capsys.readouterr().err and CALLS == []


def test_report_json_has_metadata_and_claims_under_a_key(fakes, tmp_path):
    before = datetime.now().astimezone()
    report = runner.run("fake-a,fake-b", device="cpu", out=tmp_path, progress=False)
    meta = read_report(tmp_path)
    assert report.passed
    assert meta["ntkode_version"] == __version__ and meta["setting"] == "quick" and meta["device"] == "cpu"
    assert meta["status"] == "complete" and meta["complete"] is True
    assert meta["claims_requested"] == ["fake-a", "fake-b"] and meta["resumed"] == []
    started = datetime.fromisoformat(meta["started"])
    assert abs((started - before).total_seconds()) < 60 and meta["seconds"] >= 0
    assert [c["name"] for c in meta["claims"]] == ["fake-a", "fake-b"]
    assert all(len(c["key"]) == 64 for c in meta["claims"])


def test_interrupted_run_is_marked_and_resume_skips_finished_claims(fakes, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        runner.run("fake-a,fake-stop", device="cpu", out=tmp_path, progress=False)
    assert read_report(tmp_path)["status"] == "interrupted"
    assert "INCOMPLETE (interrupted)**: 1 of 2 claims finished" in (tmp_path / "report.md").read_text()
    fakes.setitem(claims_module.CLAIMS, "fake-stop", fake_claim("fake-stop"))
    CALLS.clear()
    report = runner.run("fake-a,fake-stop", device="cpu", out=tmp_path, progress=False, resume=True)
    assert CALLS == ["fake-stop"] and report.resumed == ["fake-a"] and report.passed
    meta = read_report(tmp_path)
    assert meta["status"] == "complete" and [c["name"] for c in meta["claims"]] == ["fake-a", "fake-stop"]
    assert meta["claims"][0]["notes"] == ["note fake-a"]
    assert "2/2 claims passed" in (tmp_path / "report.md").read_text()


def test_resuming_a_finished_run_reruns_nothing_and_stays_complete(fakes, tmp_path):
    runner.run("fake-a,fake-b", device="cpu", out=tmp_path, progress=False)
    CALLS.clear()
    report = runner.run("fake-a,fake-b", device="cpu", out=tmp_path, progress=False, resume=True)
    assert CALLS == [] and report.resumed == ["fake-a", "fake-b"] and report.passed
    meta = read_report(tmp_path)
    assert meta["status"] == "complete" and meta["resumed"] == ["fake-a", "fake-b"] and len(meta["claims"]) == 2


def test_a_run_killed_mid_claim_reads_as_running_not_complete(fakes, tmp_path):
    seen = {}

    def peek(p, device):
        """Looks at the report while the claim is still measuring (as SIGKILL would leave it)."""
        seen.update(read_report(tmp_path))
        return Evidence([Check("", "q", 1.0, 1.0, 0.0, Tolerance("abs", 0.1, ""))], Figure("t", "x", "y", []), [])

    fakes.setitem(claims_module.CLAIMS, "fake-peek", Claim("fake-peek", "s", peek, {"quick": {}, "full": {}}))
    runner.run("fake-a,fake-peek", device="cpu", out=tmp_path, progress=False)
    assert seen["status"] == "running" and seen["complete"] is False
    assert [c["name"] for c in seen["claims"]] == ["fake-a"]


@pytest.mark.parametrize("change", ["params", "version", "setting", "png"])
def test_resume_reruns_a_claim_whose_inputs_changed(fakes, tmp_path, change):
    runner.run("fake-a", device="cpu", out=tmp_path, progress=False)
    CALLS.clear()
    setting = "quick"
    if change == "params":
        fakes.setitem(claims_module.CLAIMS, "fake-a", fake_claim("fake-a", params={"size": 2}))
    elif change == "version":
        fakes.setattr(runner, "__version__", "999.0")
    elif change == "setting":
        setting = "full"
    else:
        (tmp_path / "fake-a.png").unlink()
    report = runner.run("fake-a", setting=setting, device="cpu", out=tmp_path, progress=False, resume=True)
    assert CALLS == ["fake-a"] and report.resumed == []


def test_resume_with_a_corrupt_report_reruns_everything(fakes, tmp_path):
    runner.run("fake-a", device="cpu", out=tmp_path, progress=False)
    (tmp_path / "report.json").write_text("{ not json")
    CALLS.clear()
    runner.run("fake-a", device="cpu", out=tmp_path, progress=False, resume=True)
    assert CALLS == ["fake-a"]


def test_resume_needs_out():
    with pytest.raises(NtkodeError, match="resume needs out"):
        runner.run("gd-linear", resume=True, out=None, progress=False)


def test_fresh_run_drops_figures_of_claims_it_does_not_run(fakes, tmp_path):
    runner.run("fake-a,fake-b", device="cpu", out=tmp_path, progress=False)
    (tmp_path / "notes.png").write_text("user file")
    runner.run("fake-b", device="cpu", out=tmp_path, progress=False)
    assert not (tmp_path / "fake-a.png").exists() and (tmp_path / "fake-b.png").exists()
    assert (tmp_path / "notes.png").exists()


def test_claims_run_with_single_threaded_blas(fakes, tmp_path):
    from threadpoolctl import threadpool_info

    seen = []

    def probe(p, device):
        """Records the BLAS thread counts during the measurement."""
        seen.extend(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")
        return Evidence([Check("", "q", 1.0, 1.0, 0.0, Tolerance("abs", 0.1, ""))], Figure("t", "x", "y", []), [])

    fakes.setitem(claims_module.CLAIMS, "fake-probe", Claim("fake-probe", "s", probe, {"quick": {}, "full": {}}))
    runner.run("fake-probe", device="cpu", progress=False)
    assert seen and set(seen) == {runner.CLAIM_BLAS_THREADS} == {1}


def test_markdown_of_a_complete_run_says_so():
    meta = {"setting": "quick", "device": "cpu", "ntkode_version": "1", "started": "t", "status": "complete",
            "seconds": 1.0, "claims_requested": ["x"]}
    assert "INCOMPLETE" not in to_markdown([], meta)
    assert "INCOMPLETE (crashed)**: 0 of 1" in to_markdown([], dict(meta, status="crashed"))


def test_curve_groups_pair_points_with_their_fit():
    points = Curve("m=100 (seed mean)", [1.0], [1.0], "marker")
    line = Curve("m=100: fitted slope -0.50", [1.0], [1.0])
    other = Curve("m=400 (seed mean)", [1.0], [1.0], "marker")
    assert curve_group(points) == curve_group(line) != curve_group(other)
    assert curve_group(Curve("a", [1.0], [1.0], group="g")) == "g"
    network, ode = Curve("r=2 network / rho^k (seed 0)", [1.0], [1.0]), Curve("r=2 ODE envelope ~ t^(-1)", [1.0], [1.0])
    assert curve_group(network) == curve_group(ode) == "r=2" != curve_group(Curve("r=3 ODE", [1.0], [1.0]))


def _drawn(figure, tmp_path, monkeypatch):
    """The matplotlib Axes of `figure` as rendered; draw_figure writes it as a PNG."""
    draw_figure(figure, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
    return render_figure(figure).axes[0]


def test_importing_the_report_leaves_the_backend_alone():
    """verify.report draws without pyplot: a notebook's inline backend survives `import ntkode.verify.report`."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); import ntkode.verify.report; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"


def test_figure_colours_follow_groups_and_error_bars_are_drawn(tmp_path, monkeypatch):
    curves = [Curve("a (mean)", [1, 2, 3], [1.0, 0.5, 0.2], "marker", yerr=[0.1, 0.05, 0.02]),
              Curve("b (mean)", [1, 2, 3], [2.0, 1.0, 0.4], "marker"),
              Curve("a: fit", [1, 3], [1.0, 0.2]), Curve("b: fit", [1, 3], [2.0, 0.4])]
    ax = _drawn(Figure("t", "x", "y", curves), tmp_path, monkeypatch)
    colours = {c.get_label(): c.lines[0].get_color() for c in ax.containers}
    assert colours["a (mean)"] == colours["a: fit"] != colours["b (mean)"] == colours["b: fit"]
    bars = [c for c in ax.containers if c.get_label() == "a (mean)"][0]
    assert bars.has_yerr and not [c for c in ax.containers if c.get_label() == "b (mean)"][0].has_yerr


@pytest.mark.parametrize("widths", [[3000.0, 4000.0, 6000.0, 8000.0], [512.0, 1024.0, 2048.0, 4096.0, 8192.0]])
def test_log_axis_within_two_decades_labels_the_data_values(tmp_path, monkeypatch, widths):
    curves = [Curve("gap (mean)", widths, np.geomspace(0.02, 0.012, len(widths)).tolist(), "marker")]
    ax = _drawn(Figure("t", "width", "gap", curves, xscale="log"), tmp_path, monkeypatch)
    ax.figure.canvas.draw()
    minor = [t.get_text() for t in ax.xaxis.get_minorticklabels() if t.get_text()]
    major = [t.get_text() for t in ax.xaxis.get_majorticklabels() if t.get_text()]
    assert minor == [] and major == [f"{w:g}" for w in widths]
