"""Resumable sweeps: one atomically written part file per finished (width, setting), so an
interrupted sweep restarts where it stopped and loses nothing, on one process or on many.

A part's file name is a hash of its key: everything that determines its numbers (the ntkode
version and part format, the method (a declaration file by its contents), X and y with their
shapes, the width, setting, seeds, steps and the options). The key is also stored inside the
part and checked on load, with the part's checksum: a stale, truncated or bit-flipped part is
warned about and recomputed, never loaded. Parts are computed by `compute`, in this process or
by any executor (`client`: a concurrent.futures.Executor or a dask.distributed.Client).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from ntkode import __version__
from ntkode.errors import NtkodeError
from ntkode.declaration import Method, load_method

from .data import as_labels
from .files import locked_folder, remove_temporaries
from .kernels import as_inputs, as_kappa
from .result import PER_SETTING, SimulationResult
from .simulate import hyper_settings, seed_array, simulate

#: the layout of a part file; part of every key, so a change of layout recomputes old parts
PART_FORMAT = 2
#: the lock file a sweep holds inside its folder
LOCK_NAME = ".lock"


class PartWarning(UserWarning):
    """A part file that could not be used (corrupt, stale or unreadable) and is recomputed."""


def _array_digest(arr: np.ndarray) -> str:
    arr = np.ascontiguousarray(arr, dtype=float)
    return hashlib.sha256(json.dumps(list(arr.shape)).encode() + arr.tobytes()).hexdigest()


def method_identity(method: str | Method) -> str:
    """The method's name, or for a declaration file its name and the SHA-256 of its contents
    (editing the file changes every key that uses it); a Method object by its declaration's fingerprint."""
    if isinstance(method, Method):
        return f"declaration {method.name} sha256:{method.fingerprint}"
    if os.path.isfile(method):
        with open(method, "rb") as handle:
            return f"file {os.path.basename(method)} sha256:{hashlib.sha256(handle.read()).hexdigest()}"
    return method


def _plain(value: Any) -> Any:
    """JSON-ready copies of option values (numpy scalars and arrays, tuples)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple, list)):
        return [_plain(v) for v in value]
    return value


def part_key(method: str, X: np.ndarray, y: np.ndarray, width: int, setting: dict, steps: int,
             seeds: Sequence[int], options: dict) -> str:
    """Canonical JSON of everything that determines one part's numbers."""
    key = {
        "format": PART_FORMAT, "ntkode": __version__, "method": method_identity(method),
        "X": _array_digest(X), "y": _array_digest(y), "width": int(width),
        "setting": {name: float(value) for name, value in setting.items()}, "steps": int(steps),
        "seeds": [int(s) for s in seeds], "options": {name: _plain(v) for name, v in options.items()},
    }
    return json.dumps(key, sort_keys=True, allow_nan=False)


def part_name(method: str | Method, width: int, key: str) -> str:
    """'<method>-m<width>-<first 20 hex digits of sha256(key)>.npz'."""
    base = method.name if isinstance(method, Method) else os.path.splitext(os.path.basename(method))[0]
    label = re.sub(r"[^A-Za-z0-9_-]+", "_", base) or "method"
    return f"{label}-m{int(width)}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """The seeds a `seeds` argument means (`simulate.seed_array`: a count S is 0..S-1, a sequence the seeds)."""
    return seed_array(seeds).tolist()


def positive_widths(widths: int | Sequence[int]) -> list[int]:
    """widths as a list of positive ints, or NtkodeError."""
    arr = np.atleast_1d(np.asarray(widths))
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1):
        raise NtkodeError(f"widths must be positive integers; got {widths!r}", param="widths")
    return [int(m) for m in arr]


@dataclass(frozen=True)
class Task:
    """One `simulate` call of one width and some settings, and where each setting's part goes."""

    method: str
    X: np.ndarray
    y: np.ndarray
    width: int
    steps: int
    seeds: tuple[int, ...]
    settings: tuple[dict, ...]
    options: dict
    paths: tuple[str, ...]
    keys: tuple[str, ...]

    def only(self, which: Sequence[int]) -> "Task":
        """The same task restricted to the settings at indices `which`."""
        return replace(self, settings=tuple(self.settings[i] for i in which),
                       paths=tuple(self.paths[i] for i in which), keys=tuple(self.keys[i] for i in which))


def make_task(method: str, X: np.ndarray, y: np.ndarray, width: int, steps: int, seeds: Sequence[int],
              settings: Sequence[dict], options: dict, out_dir: str) -> Task:
    """The task of one width: each setting's key and part path under out_dir (made absolute: a
    remote worker's working folder is not ours)."""
    keys = tuple(part_key(method, X, y, width, s, steps, seeds, options) for s in settings)
    paths = tuple(os.path.join(os.path.abspath(out_dir), part_name(method, width, key)) for key in keys)
    return Task(method, X, y, int(width), int(steps), tuple(seeds), tuple(settings), dict(options), paths, keys)


def compute(task: Task) -> float:
    """Simulate the task and save each setting's part atomically, with its key; the seconds it took.
    Runs wherever the executor puts it: it needs only the task and the shared folder."""
    start = time.perf_counter()
    result = simulate(task.method, task.X, task.y, [task.width], task.steps, list(task.seeds), list(task.settings),
                      progress=False, **task.options)
    for j, (path, key) in enumerate(zip(task.paths, task.keys)):
        select(result, 0, j).save(path, key=key)
    return time.perf_counter() - start


def load_part(path: str, key: str) -> SimulationResult | None:
    """The part at `path` if it exists, is intact and holds `key`; else None (with a PartWarning
    when a file was there but unusable)."""
    if not os.path.exists(path):
        return None
    try:
        return SimulationResult.load(path, key=key)
    except NtkodeError as err:
        warnings.warn(f"{err}; recomputing it", PartWarning, stacklevel=2)
        return None


def execute(tasks: Sequence[Task], client=None, progress: bool = True) -> list[float]:
    """Run `compute` on every task: in order in this process (client None), or on `client`, a
    concurrent.futures.Executor or a dask.distributed.Client. The seconds each task took."""
    bar = tqdm(total=len(tasks), disable=not progress, unit="part", desc="sweep", mininterval=0.5)
    with bar:
        if client is None:
            seconds = []
            for task in tasks:
                seconds.append(compute(task))
                bar.update()
            return seconds
        executor = client.get_executor(pure=False) if hasattr(client, "get_executor") else client
        futures = [executor.submit(compute, task) for task in tasks]
        try:
            for future in concurrent.futures.as_completed(futures):
                future.result()
                bar.update()
        finally:
            for future in futures:
                future.cancel()
        return [future.result() for future in futures]


def run_tasks(tasks: Sequence[Task], out_dir: str | os.PathLike, client=None,
              progress: bool = True) -> tuple[list[list[SimulationResult]], list[float]]:
    """Every task's parts, per task and setting: loaded where an intact part with the right key
    exists, computed (`execute`) otherwise. Holds out_dir's lock throughout; a folder this call
    created is removed again if it stays empty (refused input leaves nothing behind).
    Also returns the seconds of each computed task."""
    out_dir = os.fspath(out_dir)
    if not out_dir:
        raise NtkodeError("out_dir must name a folder; got ''", param="out_dir")
    with locked_folder(out_dir, LOCK_NAME):
        remove_temporaries(out_dir)
        loaded: dict[str, SimulationResult] = {}
        todo = []
        for task in tasks:
            for path, key in zip(task.paths, task.keys):
                part = load_part(path, key)
                if part is not None:
                    loaded[path] = part
            missing = [j for j, path in enumerate(task.paths) if path not in loaded]
            if missing:
                todo.append(task.only(missing))
        seconds = execute(todo, client, progress)
        for task in todo:
            for path, key in zip(task.paths, task.keys):
                loaded[path] = SimulationResult.load(path, key=key)
        return [[loaded[path] for path in task.paths] for task in tasks], seconds


def sweep(
    method: str,
    X,
    y,
    widths: Sequence[int],
    steps: int,
    seeds: int | Sequence[int] = 1,
    hyper: dict | Sequence[dict] = (),
    out_dir: str | os.PathLike = ".",
    progress: bool = True,
    client=None,
    **options,
) -> SimulationResult:
    """simulate() every width, writing one part per (width, setting) into out_dir; intact parts
    already there are loaded, not recomputed. `client`: None (in this process, in order), a
    concurrent.futures.Executor or a dask.distributed.Client (one task per width; workers must see
    out_dir). Returns the whole sweep as one SimulationResult."""
    settings = hyper_settings(load_method(method), hyper)
    if "kappa" in options:  # checked before it enters a part's key (NaN has no JSON form)
        options = {**options, "kappa": as_kappa(options["kappa"])}
    X = as_inputs(X)
    y = as_labels(y, X.shape[0])
    seeds_ = seed_list(seeds)
    tasks = [make_task(method, X, y, m, steps, seeds_, settings, options, os.fspath(out_dir))
             for m in positive_widths(widths)]
    parts, _ = run_tasks(tasks, out_dir, client, progress)
    return combine(parts)


def select(result: SimulationResult, width: int, setting: int) -> SimulationResult:
    """The sub-result of one width index and one setting index."""
    picked = {name: getattr(result, name)[width : width + 1, setting : setting + 1]
              for name in PER_SETTING if getattr(result, name) is not None}
    return SimulationResult(
        **{**vars(result), **picked, "settings": [result.settings[setting]],
           "widths": result.widths[width : width + 1], "lam_emp": result.lam_emp[width : width + 1],
           "predicted_unstable": result.predicted_unstable[setting : setting + 1],
           "final_W": None if result.final_W is None else [result.final_W[width][setting : setting + 1]],
           "final_a": None if result.final_a is None else [result.final_a[width][setting : setting + 1]]}
    )


def combine(parts: list[list[SimulationResult]]) -> SimulationResult:
    """One result from a grid parts[width][setting] of single-width, single-setting results."""
    first = parts[0][0]
    if any(p.steps != first.steps or p.method != first.method for row in parts for p in row):
        raise NtkodeError("cannot combine simulations of different methods or step counts")
    joined = {}
    for name in PER_SETTING:
        if getattr(first, name) is None:
            continue
        joined[name] = np.concatenate([np.concatenate([getattr(p, name) for p in row], axis=1) for row in parts])
    weights = {}
    for name in ("final_W", "final_a"):
        if getattr(first, name) is not None:
            weights[name] = [np.concatenate([getattr(p, name)[0] for p in row]) for row in parts]
    return SimulationResult(
        **{**vars(first), **joined, **weights, "settings": [row_part.settings[0] for row_part in parts[0]],
           "widths": np.array([row[0].widths[0] for row in parts]),
           "lam_emp": np.concatenate([row[0].lam_emp for row in parts]),
           "predicted_unstable": np.concatenate([p.predicted_unstable for p in parts[0]])}
    )
