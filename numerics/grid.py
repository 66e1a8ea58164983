"""Experiment grids: a TOML file of methods x hyper-parameters x widths x seeds on one data set,
expanded into configurations, run as resumable parts (`sweep.run_tasks`) and collected as one
tidy table with a row per (configuration, seed).

    name = "nag-width"
    method = ["nag"]                       # built-in names or .toml declarations
    dataset = { name = "sphere", n = 64, d = 32, seed = 0 }
    steps = 500
    seeds = 8                              # a count (0..S-1) or a list of seeds
    widths = [512, 1024, 2048, 4096]
    [hyper]                                # lists expand as a Cartesian product
    lr = [0.5]
    r = [2, 4, 10]
    [options]                              # optional: loss, train, kappa, space, dtype, device
    loss = "sum"

Each method takes the [hyper] names it declares; a name no listed method takes is an error.
A configuration is (method, setting, width); it is simulated once, for all seeds.
"""
from __future__ import annotations

import csv
import difflib
import itertools
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ntkode.errors import NtkodeError
from ntkode.theory import spectral_radius
from ntkode.declaration import Method, load_method
from ntkode.verify.fit import fit_linear_rate

from .data import digits_data, load_data, mnist_data, paper_data, sphere_data
from .files import atomic_write, locked_folder
from .result import SimulationResult
from .simulate import hyper_settings
from .sweep import make_task, positive_widths, run_tasks, seed_list

GRID_KEYS = ("name", "method", "dataset", "steps", "seeds", "widths", "hyper", "options")
REQUIRED = ("name", "method", "dataset", "steps", "widths", "hyper")
#: per data set: its loader, the keys it needs and the keys it may take (besides `name`)
DATASETS: dict[str, tuple[Callable, tuple[str, ...], tuple[str, ...]]] = {
    "sphere": (lambda n, d, seed=0: sphere_data(n, d, seed), ("n", "d"), ("seed",)),
    "paper": (lambda n, seed=0, normalise=False: paper_data(n, seed, normalise=normalise), ("n",),
              ("seed", "normalise")),
    "digits": (lambda n, seed=0, classes=(0, 1): digits_data(n, tuple(classes), seed), ("n",), ("seed", "classes")),
    "mnist": (lambda n, seed=0, classes=tuple(range(10)), scaling="unit-interval", labels="digit":
              mnist_data(n, tuple(classes), seed, scaling, labels), ("n",), ("seed", "classes", "scaling", "labels")),
    "file": (lambda path: load_data(path), ("path",), ()),
}
OPTION_KEYS = ("loss", "train", "kappa", "space", "dtype", "device", "parametrization", "preset")
#: the table's columns after the method and the hyper-parameters
COLUMNS = ("width", "seed", "fitted_rate", "fitted_rate_stderr", "predicted_rate_inf", "predicted_rate_w0",
           "initial_error", "final_error", "diverged", "diverged_step", "predicted_unstable", "part")


@dataclass(frozen=True)
class Config:
    """One simulation of a grid: a method, one hyper-parameter setting and one width."""

    method: str
    setting: dict
    width: int


@dataclass(frozen=True)
class Grid:
    """A parsed, validated grid file (`load_grid`)."""

    name: str
    methods: tuple[str, ...]
    dataset: dict
    steps: int
    seeds: tuple[int, ...]
    widths: tuple[int, ...]
    hyper: dict[str, tuple[float, ...]]
    options: dict = field(default_factory=dict)
    source: str = "<grid>"

    @property
    def hyper_names(self) -> list[str]:
        return list(self.hyper)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of the grid's data set."""
        spec = dict(self.dataset)
        loader = DATASETS[spec.pop("name")][0]
        return loader(**spec)

    def configurations(self) -> list[Config]:
        """Method-major, then setting (Cartesian product of [hyper] in file order), then width."""
        out = []
        for method in self.methods:
            for setting in settings_of(method, self.hyper):
                out.extend(Config(method, setting, m) for m in self.widths)
        return out


def settings_of(method: str, hyper: dict[str, Sequence[float]]) -> list[dict]:
    """The distinct settings of `method`: the product of the [hyper] lists it takes, validated."""
    spec = load_method(method)
    names = [name for name in hyper if name in accepted_names(spec)]
    combos = dict.fromkeys(itertools.product(*(hyper[name] for name in names)))
    checked = hyper_settings(spec, [dict(zip(names, values)) for values in combos])
    as_written = {spec.find_hyper(name).name: name for name in names}  # the table keeps the grid file's names
    return [{as_written.get(key, key): value for key, value in setting.items()} for setting in checked]


def accepted_names(spec: Method) -> set[str]:
    """The names a method's hyper-parameters go by: declared names and aliases (lr, momentum, ...)."""
    return {label for hp in spec.hyper for label in (hp.name, hp.alias) if label}


def _fail(source: str, message: str) -> NtkodeError:
    return NtkodeError(f"{source}: {message}")


def _unknown(source: str, where: str, given: Sequence[str], known: Sequence[str]) -> None:
    extra = [key for key in given if key not in known]
    if extra:
        close = difflib.get_close_matches(extra[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _fail(source, f"unknown key {extra[0]!r} in {where}{hint}; known keys: {', '.join(known)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _listed(source: str, where: str, value: Any, check: Callable[[Any], bool], kind: str) -> tuple:
    """A scalar or a non-empty list of values passing `check`, as a tuple."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise _fail(source, f"{where} is an empty list; give at least one value")
    bad = [v for v in values if not check(v)]
    if bad:
        raise _fail(source, f"{where} must be {kind}; got {bad[0]!r}")
    return tuple(values)


def _read_toml(path: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as err:
        raise NtkodeError(f"cannot read grid file {path}: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise NtkodeError(f"{path} is not valid TOML: {err}") from None


def _dataset(source: str, folder: str, value: Any) -> dict:
    if not isinstance(value, dict) or "name" not in value:
        raise _fail(source, "dataset must be a table with a name, e.g. { name = \"sphere\", n = 64, d = 32 }")
    name = value["name"]
    if name not in DATASETS:
        raise _fail(source, f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    _, needed, optional = DATASETS[name]
    _unknown(source, f"dataset {name}", [k for k in value if k != "name"], needed + optional)
    absent = [key for key in needed if key not in value]
    if absent:
        raise _fail(source, f"dataset {name} needs {', '.join(needed)}; missing {absent[0]!r}")
    spec = dict(value)
    if name == "file":
        spec["path"] = os.path.join(folder, str(spec.get("path", "")))
    return spec


def _options(source: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise _fail(source, "options must be a table")
    _unknown(source, "[options]", list(value), OPTION_KEYS)
    return dict(value)


def _method(folder: str, name: Any) -> str:
    """A built-in name as given; a .toml declaration relative to the grid file's folder."""
    if isinstance(name, str) and name.endswith(".toml") and not os.path.isabs(name):
        return os.path.join(folder, name)
    return name


def load_grid(path: str | os.PathLike) -> Grid:
    """Parse and validate a grid file: unknown keys, empty lists, wrong types, unknown methods,
    hyper-parameters out of domain and the data set are all refused here (NtkodeError naming
    the file), before anything is computed."""
    source = os.fspath(path)
    raw = _read_toml(source)
    folder = os.path.dirname(os.path.abspath(source))
    _unknown(source, "the grid", list(raw), GRID_KEYS)
    absent = [key for key in REQUIRED if key not in raw]
    if absent:
        raise _fail(source, f"missing key {absent[0]!r}")
    if not isinstance(raw["name"], str) or not raw["name"] or os.sep in raw["name"]:
        raise _fail(source, f"name must be a non-empty string without {os.sep!r}; got {raw['name']!r}")
    methods = tuple(_method(folder, m) for m in _listed(source, "method", raw["method"],
                                                         lambda v: isinstance(v, str), "method names"))
    steps = _listed(source, "steps", raw["steps"], lambda v: _is_int(v) and v >= 1, "a positive integer")
    if isinstance(raw["steps"], list):
        raise _fail(source, "steps must be one positive integer")
    widths = _listed(source, "widths", raw["widths"], lambda v: _is_int(v) and v >= 1, "positive integers")
    seeds_raw = raw.get("seeds", 1)
    if isinstance(seeds_raw, list):
        seeds = _listed(source, "seeds", seeds_raw, lambda v: _is_int(v) and v >= 0, "non-negative integers")
    else:
        seeds = tuple(seed_list(_listed(source, "seeds", seeds_raw, lambda v: _is_int(v) and v >= 1,
                                        "a positive count or a list of seeds")[0]))
    if len(set(seeds)) != len(seeds):
        raise _fail(source, f"seeds repeat: {list(seeds)}")
    if not isinstance(raw["hyper"], dict):
        raise _fail(source, "hyper must be a table of lists, e.g. [hyper] lr = [0.5]")
    hyper = {name: _listed(source, f"hyper {name}", value, _is_number, "finite numbers")
             for name, value in raw["hyper"].items()}
    known: set[str] = set()
    for method in methods:
        try:
            known.update(accepted_names(load_method(method)))
        except NtkodeError as err:
            raise _fail(source, str(err)) from None
    _unknown(source, "[hyper]", list(hyper), sorted(known))
    grid = Grid(name=raw["name"], methods=methods, dataset=_dataset(source, folder, raw["dataset"]),
                steps=steps[0], seeds=seeds, widths=tuple(positive_widths(list(widths))), hyper=hyper,
                options=_options(source, raw.get("options", {})), source=source)
    for method in methods:
        try:
            settings_of(method, hyper)
        except NtkodeError as err:
            raise _fail(source, f"method {method}: {err}") from None
    return grid


def _check_data(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    try:
        return grid.data()
    except NtkodeError as err:
        raise _fail(grid.source, f"dataset: {err}") from None
    except TypeError as err:  # a value of the wrong type (a string for n, ...)
        raise _fail(grid.source, f"dataset {grid.dataset['name']}: a value has the wrong type ({err})") from None


def _fitted(err: np.ndarray, diverged: bool) -> tuple[float, float]:
    """rho and its standard error from `fit_linear_rate` on the envelope (the error oscillates for
    momentum methods); NaN for a diverged run or one too short to fit."""
    if diverged:
        return math.nan, math.nan
    try:
        fit = fit_linear_rate(err, envelope=True)
    except NtkodeError:
        return math.nan, math.nan
    return fit.rate, fit.rate_stderr


def _predicted(method: str, lam: np.ndarray, setting: dict) -> float:
    """theory's rate on the positive part of a spectrum; NaN where theory gives no finite rate."""
    try:
        return spectral_radius(method, lam[lam > 0], **setting).rate
    except NtkodeError:
        return math.nan


def tabulate(grid: Grid, configs: Sequence[Config], parts: Sequence[SimulationResult],
             files: Sequence[str]) -> dict[str, list]:
    """The tidy table: one row per (configuration, seed), as columns (name -> list); `files`
    names each configuration's part."""
    names = grid.hyper_names
    table: dict[str, list] = {name: [] for name in ("method", *names, *COLUMNS)}
    for config, part, file in zip(configs, parts, files):
        predicted_inf = _predicted(config.method, part.lam_inf, config.setting)
        for s, seed in enumerate(part.seeds):
            err = part.error_norm[0, 0, s]
            diverged = bool(part.diverged[0, 0, s])
            rate, stderr = _fitted(err, diverged)
            row = {
                "method": os.path.basename(config.method),
                **{name: float(config.setting.get(name, math.nan)) for name in names},
                "width": int(config.width), "seed": int(seed), "fitted_rate": rate, "fitted_rate_stderr": stderr,
                "predicted_rate_inf": predicted_inf,
                "predicted_rate_w0": _predicted(config.method, part.lam_emp[0, s], config.setting),
                "initial_error": float(err[0]), "final_error": float(err[-1]),
                "diverged": diverged, "diverged_step": int(part.diverged_step[0, 0, s]),
                "predicted_unstable": bool(part.predicted_unstable[0]), "part": file,
            }
            for name, value in row.items():
                table[name].append(value)
    return table


@dataclass
class GridRun:
    """What `run_grid` did: the table, where it was written, and the computed tasks' seconds."""

    table: dict[str, list]
    table_path: str
    configurations: int
    computed: int
    seconds: list[float]


def table_format() -> str:
    """'parquet' when pyarrow imports, else 'csv'."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return "csv"
    return "parquet"


def write_table(table: dict[str, list], stem: str, fmt: str | None = None) -> str:
    """Write the table atomically to stem.parquet (pyarrow) or stem.csv; the path written."""
    fmt = fmt or table_format()
    path = f"{stem}.{fmt}"
    if fmt == "parquet":
        import pyarrow
        import pyarrow.parquet

        atomic_write(path, lambda handle: pyarrow.parquet.write_table(pyarrow.table(table), handle))
        return path

    def write_csv(handle) -> None:
        import io

        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(list(table))
        writer.writerows(zip(*table.values()))
        text.flush()
        text.detach()

    atomic_write(path, write_csv)
    return path


def read_table(path: str) -> dict[str, list]:
    """A table written by `write_table`, as columns (CSV values parsed back to float/int/bool)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet

        return pyarrow.parquet.read_table(path).to_pydict()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    columns = {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}
    for name, values in columns.items():
        if name in ("method", "part"):
            continue
        if name in ("diverged", "predicted_unstable"):
            columns[name] = [value == "True" for value in values]
        elif name in ("width", "seed", "diverged_step"):
            columns[name] = [int(value) for value in values]
        else:
            columns[name] = [float(value) for value in values]
    return columns


def run_grid(grid: Grid | str | os.PathLike, out_dir: str | os.PathLike, client=None, progress: bool = True,
             fmt: str | None = None) -> GridRun:
    """Run every configuration of the grid (parts in out_dir/parts/, resumable; `client` as for
    `sweep`) and write the table to out_dir/<name>.parquet (or .csv). Holds out_dir's lock."""
    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    X, y = _check_data(grid)
    configs = grid.configurations()
    out_dir = os.fspath(out_dir)
    parts_dir = os.path.join(out_dir, "parts")
    tasks = [make_task(c.method, X, y, c.width, grid.steps, grid.seeds, [c.setting], grid.options, parts_dir)
             for c in configs]
    with locked_folder(out_dir, ".lock"):
        parts, seconds = run_tasks(tasks, parts_dir, client, progress)
        table = tabulate(grid, configs, [row[0] for row in parts], [os.path.basename(t.paths[0]) for t in tasks])
        path = write_table(table, os.path.join(out_dir, grid.name), fmt)
    return GridRun(table, path, len(configs), len(seconds), seconds)


def setting_label(row: dict, names: Sequence[str]) -> str:
    """'hb lr=0.5 momentum=0.6' from a table row."""
    given = [f"{name}={row[name]:g}" for name in names if not math.isnan(row[name])]
    return " ".join([row["method"], *given])


def plot_table(table: dict[str, list], hyper_names: Sequence[str], path: str) -> str:
    """The standard figure: per setting, the final error (left) and the rate gap
    |fitted - predicted(H-inf)| (right) against width, median over the seeds that did not
    diverge, bars from the smallest to the largest; settings that diverged everywhere are
    listed under the plots. Written atomically to `path` (.png)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = [dict(zip(table, values)) for values in zip(*table.values())]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(setting_label(row, hyper_names), []).append(row)
    fig, (ax_err, ax_gap) = plt.subplots(1, 2, figsize=(11, 4.2))
    all_diverged = [label for label, members in groups.items() if all(r["diverged"] for r in members)]
    for label, members in groups.items():
        for ax, value in ((ax_err, lambda r: r["final_error"]),
                          (ax_gap, lambda r: abs(r["fitted_rate"] - r["predicted_rate_inf"]))):
            widths, mid, lo, hi = [], [], [], []
            for m in sorted({r["width"] for r in members}):
                vals = [value(r) for r in members if r["width"] == m and not r["diverged"]]
                vals = [v for v in vals if math.isfinite(v) and v > 0]
                if vals:
                    widths.append(m)
                    mid.append(float(np.median(vals)))
                    lo.append(mid[-1] - min(vals))
                    hi.append(max(vals) - mid[-1])
            if widths:
                ax.errorbar(widths, mid, yerr=[lo, hi], marker="o", capsize=3, label=label)
    ax_err.set(xscale="log", yscale="log", xlabel="width m", ylabel="final ||e||",
               title="final error (median, min-max over seeds)")
    ax_gap.set(xscale="log", yscale="log", xlabel="width m", ylabel="|fitted rate - predicted rate (H-inf)|",
               title="rate gap")
    for ax in (ax_err, ax_gap):
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax_err.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8,
                   bbox_to_anchor=(0.5, 0.04 if all_diverged else 0.0))
    if all_diverged:
        fig.text(0.01, 0.01, "diverged for every seed and width (not drawn): " + "; ".join(all_diverged), fontsize=8)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * (len(labels) // 4) + 0.04 * bool(all_diverged), 1, 1))
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    plt.close(fig)
    return path
