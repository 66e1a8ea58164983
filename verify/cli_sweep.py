"""`ntkode sweep GRID.toml`: run an experiment grid (resumable), collect one tidy table, plot it."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from typing import Iterator

from ntkode.errors import NtkodeError
from ntkode.numerics.cluster import parse_scheduler, scheduler_client
from ntkode.numerics.grid import load_grid, plot_table, run_grid, table_format


@contextlib.contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Show warnings (a recomputed part, ...) as one line 'ntkode COMMAND: warning: ...' on stderr."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"ntkode {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _check_out(out: str) -> None:
    """NtkodeError unless `out` can be (or is) a folder whose parent exists and is writable."""
    if not out:
        raise NtkodeError("out must name a folder; got ''", param="out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise NtkodeError(f"out {out} is a file; give a folder", param="out")
    parent = os.path.dirname(os.path.abspath(out))
    target = out if os.path.isdir(out) else parent
    if not os.path.isdir(parent):
        raise NtkodeError(f"out {out}: folder {parent} does not exist", param="out")
    if not os.access(target, os.W_OK):
        raise NtkodeError(f"out {out}: folder {target} is not writable", param="out")


def handle(args: argparse.Namespace) -> int:
    grid = load_grid(args.grid)
    if args.scheduler is not None:
        parse_scheduler(args.scheduler)
    if args.format == "parquet" and table_format() != "parquet":
        raise NtkodeError('format parquet needs pyarrow: pip install pyarrow (or give --format csv)', param="format")
    out = grid.name if args.out is None else args.out
    _check_out(out)
    quiet = args.quiet or not sys.stderr.isatty()
    with one_line_warnings("sweep"), scheduler_client(args.scheduler, quiet=True) as client:
        done = run_grid(grid, out, client=client, progress=not quiet, fmt=args.format)
    figure = plot_table(done.table, grid.hyper_names, os.path.join(out, f"{grid.name}.png")) if args.plot else None
    summary = {"grid": grid.name, "configurations": done.configurations, "computed": done.computed,
               "reused": done.configurations - done.computed, "rows": len(done.table["width"]),
               "diverged_rows": sum(done.table["diverged"]), "table": done.table_path, "figure": figure}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"grid {grid.name}: {summary['configurations']} configurations ({summary['computed']} computed, "
          f"{summary['reused']} reused from {os.path.join(out, 'parts')}), {summary['rows']} rows "
          f"({summary['diverged_rows']} diverged) in {done.table_path}" + (f"; figure {figure}" if figure else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `sweep` to the `ntkode` parser."""
    p = sub.add_parser(
        "sweep", help="run an experiment grid (TOML) and collect one table",
        description="Expand GRID.toml (methods x [hyper] lists x widths, all seeds) into configurations and "
        "simulate each once. Each finished configuration is written atomically to OUT/parts/ under a hash of "
        "everything that determines it, so rerunning after an interruption recomputes nothing finished. "
        "The table OUT/NAME.parquet (pyarrow) or .csv has one row per (configuration, seed): the "
        "hyper-parameters, width, seed, fitted rate, the rates predicted on H-inf and H(W0), the final error "
        "and the divergence flag.",
    )
    p.add_argument("grid", metavar="GRID.toml")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the grid's name, here)")
    p.add_argument("--scheduler", metavar="S",
                   help="local, local:N (N Dask worker processes; one GPU each when GPUs are visible) or "
                   "tcp://HOST:PORT (a running Dask scheduler; workers must see DIR); needs "
                   "pip install \"ntkode[distributed]\". Default: sequential in this process")
    p.add_argument("--plot", action="store_true", help="also draw OUT/NAME.png: final error and rate gap vs width")
    p.add_argument("--format", choices=("parquet", "csv"), default=None,
                   help="table format (default: parquet when pyarrow imports, else csv)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handle)
