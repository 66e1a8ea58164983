"""Resumable sweeps: one atomically written file per finished (width, setting), so an
interrupted sweep restarts where it stopped and loses nothing.

A configuration's file name is a hash of everything that determines its numbers
(method, data, width, setting, seeds, steps and the options); files are written to
a temporary name and moved into place with os.replace.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ntkode.errors import NtkodeError
from ntkode.declaration import load_method

from .result import PER_SETTING, SimulationResult
from .simulate import hyper_settings, simulate


def config_name(method: str, X: np.ndarray, y: np.ndarray, width: int, setting: dict, options: dict) -> str:
    """'<method>-m<width>-<sha1 of data, setting and options>.npz'."""
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(X, dtype=float).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=float).tobytes())
    digest.update(json.dumps({"setting": setting, **options}, sort_keys=True, default=str).encode())
    return f"{method}-m{int(width)}-{digest.hexdigest()[:16]}.npz"


def _write_atomically(result: SimulationResult, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    result.save(tmp)
    os.replace(tmp, path)


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
    **options,
) -> SimulationResult:
    """simulate() every width, writing one file per (width, setting) into out_dir; files already
    there are loaded, not recomputed. Returns the whole sweep as one SimulationResult."""
    spec = load_method(method)
    settings = hyper_settings(spec, hyper)
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    os.makedirs(out_dir, exist_ok=True)
    key = {"steps": int(steps), "seeds": np.atleast_1d(seeds).tolist(), "declaration": spec.fingerprint, **options}
    paths = [[os.path.join(out_dir, config_name(spec.name, X, y, m, s, key)) for s in settings] for m in widths]
    for m, row in zip(tqdm(widths, disable=not progress, unit="width", desc="sweep"), paths):
        todo = [i for i, path in enumerate(row) if not os.path.exists(path)]
        if not todo:
            continue
        result = simulate(spec, X, y, [m], steps, seeds, [settings[i] for i in todo], progress=False, **options)
        for j, i in enumerate(todo):
            _write_atomically(select(result, 0, j), row[i])
    parts = [[SimulationResult.load(path) for path in row] for row in paths]
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
