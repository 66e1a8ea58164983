"""`ntkode bench-sweep`: the same grid sequentially in this process and on a local Dask cluster.

The grid: heavy ball, lr in {0.25, 0.5, 1} x momentum in {0.3, 0.6, 0.8, 0.9} x widths
{64, 128, 256, 512} = 48 configurations (default), `--seeds` seeds, `--steps` steps, on
`sphere_data(n, d, seed=0)`. Reported, for local:N:
  speed-up          T_sequential / T_dask (the grid alone; the cluster's start-up is reported apart);
  overhead/config   (N * T_dask - sum of the tasks' own compute seconds) / configurations: worker
                    time per configuration not spent in `simulate` (scheduling, transfer, writing
                    idle tails), an upper bound on what the scheduler costs each configuration.
Both runs write their own parts and tables; the tables are compared to 1e-12.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from ntkode.errors import NtkodeError
from ntkode.numerics.cluster import local_cluster
from ntkode.numerics.grid import Grid, run_grid


def bench_grid(n: int, d: int, steps: int, seeds: int) -> Grid:
    """The benchmark's 48-configuration heavy-ball grid."""
    return Grid(name="bench", methods=("hb",), dataset={"name": "sphere", "n": n, "d": d, "seed": 0}, steps=steps,
                seeds=tuple(range(seeds)), widths=(64, 128, 256, 512),
                hyper={"lr": (0.25, 0.5, 1.0), "momentum": (0.3, 0.6, 0.8, 0.9)}, options={"device": "cpu"})


def max_table_difference(a: dict[str, list], b: dict[str, list]) -> float:
    """The largest relative difference between two tables' numeric columns (NaN where both are NaN counts 0);
    inf when the text columns differ."""
    worst = 0.0
    for name, column in a.items():
        if isinstance(column[0], str):
            if column != b[name]:
                return float("inf")
            continue
        x, y = np.asarray(column, dtype=float), np.asarray(b[name], dtype=float)
        same_nan = np.isnan(x) & np.isnan(y)
        diff = np.abs(x - y)[~same_nan] / np.maximum(np.abs(x), 1e-300)[~same_nan]
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


def bench(workers: int, n: int, d: int, steps: int, seeds: int) -> dict:
    """Time the grid both ways (fresh output folders) and return the figures."""
    grid = bench_grid(n, d, steps, seeds)
    with tempfile.TemporaryDirectory(prefix="ntkode-bench-sweep-") as tmp:
        start = time.perf_counter()
        sequential = run_grid(grid, os.path.join(tmp, "sequential"), progress=False)
        t_seq = time.perf_counter() - start
        start = time.perf_counter()
        with local_cluster(workers) as cluster:
            from distributed import Client

            with Client(cluster) as client:
                client.wait_for_workers(workers)
                t_start = time.perf_counter() - start
                start = time.perf_counter()
                parallel = run_grid(grid, os.path.join(tmp, "dask"), client=client, progress=False)
                t_par = time.perf_counter() - start
    configs = sequential.configurations
    return {
        "configurations": configs, "workers": workers, "n": n, "d": d, "steps": steps, "seeds": seeds,
        "sequential_s": t_seq, "dask_s": t_par, "cluster_start_s": t_start, "speedup": t_seq / t_par,
        "speedup_with_start": t_seq / (t_par + t_start),
        "compute_s_sequential": sum(sequential.seconds), "compute_s_dask": sum(parallel.seconds),
        "overhead_per_config_s": (workers * t_par - sum(parallel.seconds)) / configs,
        "max_table_difference": max_table_difference(sequential.table, parallel.table),
        "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
    }


def handle(args: argparse.Namespace) -> int:
    for name in ("workers", "n", "d", "steps", "seeds"):
        if getattr(args, name) < 1:
            raise NtkodeError(f"{name} must be a positive integer; got {getattr(args, name)}", param=name)
    result = bench(args.workers, args.n, args.d, args.steps, args.seeds)
    if args.json:
        print(json.dumps(result))
        return 0
    r = result
    print(f"{r['configurations']} configurations (hb, n={r['n']}, d={r['d']}, {r['steps']} steps, {r['seeds']} seeds), "
          f"{r['cpu_count']} CPUs, load average {r['load_average'][0]:.2f} at the end")
    print(f"  sequential      {r['sequential_s']:8.2f} s  (simulate {r['compute_s_sequential']:.2f} s)")
    print(f"  dask local:{r['workers']}    {r['dask_s']:8.2f} s  (simulate {r['compute_s_dask']:.2f} s summed over "
          f"workers; cluster start {r['cluster_start_s']:.2f} s)")
    print(f"  speed-up {r['speedup']:.2f}x ({r['speedup_with_start']:.2f}x with the start), scheduler overhead "
          f"{1e3 * r['overhead_per_config_s']:.1f} ms per configuration; tables agree to {r['max_table_difference']:.1e}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `bench-sweep` to the `ntkode` parser."""
    p = sub.add_parser("bench-sweep", help="time a 48-configuration grid sequentially and on local Dask workers",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    p.add_argument("--n", type=int, default=32, help="samples (default 32)")
    p.add_argument("--d", type=int, default=16, help="input dimension (default 16)")
    p.add_argument("--steps", type=int, default=300, help="steps per run (default 300)")
    p.add_argument("--seeds", type=int, default=4, help="seeds per configuration (default 4)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=handle)
