"""SimulationResult: what `simulate` measured, with axes (width, setting, seed, step), saved as .npz.

In a saved file the setting axis is dropped when there is a single setting, so
`error_norm` has shape (widths, seeds, steps+1) there; `load` restores it.
"""
from __future__ import annotations

import json
import os
from dataclasses import MISSING, dataclass, fields

import numpy as np

from ntkode.errors import NtkodeError

#: arrays whose axis 1 is the setting axis
PER_SETTING = ("error_norm", "projections", "weight_movement", "kernel_drift", "diverged", "diverged_step")
_SCALARS = ("method", "loss", "train", "kappa", "space", "device", "dtype", "steps", "parametrization")


@dataclass
class SimulationResult:
    """Measurements of one `simulate` call.

    error_norm (nw, ns, nseed, steps+1): ||e_k||, NaN after a run diverged.
    projections (nw, ns, nseed, steps+1, n): U^T e_k on the eigenvectors of H-inf (ascending), or None.
    weight_movement (nw, ns, nseed, steps+1): max_r ||w_r(k) - w_r(0)||, or None.
    kernel_drift (nw, ns, nseed, len(drift_steps)): ||H(W_k) - H(W_0)||_2 / ||H(W_0)||_2.
    diverged, diverged_step (nw, ns, nseed): whether and at which step (-1: never) a run blew up.
    predicted_unstable (ns,): theory's verdict (spectral radius on H-inf > 1) per setting.
    lam_inf (n,): eigenvalues of H-inf; lam_emp (nw, nseed, n): of H(W_0), both with the loss convention.
    final_W, final_a: per width, arrays (ns, nseed, m, d) and (ns, nseed, m) when keep_weights.
    """

    method: str
    settings: list[dict]
    widths: np.ndarray
    seeds: np.ndarray
    steps: int
    X: np.ndarray
    y: np.ndarray
    error_norm: np.ndarray
    kernel_drift: np.ndarray
    drift_steps: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    predicted_unstable: np.ndarray
    lam_inf: np.ndarray
    lam_emp: np.ndarray
    projections: np.ndarray | None = None
    weight_movement: np.ndarray | None = None
    final_W: list[np.ndarray] | None = None
    final_a: list[np.ndarray] | None = None
    loss: str = "sum"
    train: str = "W"
    kappa: float = 1.0
    space: str = "z"
    device: str = "cpu"
    dtype: str = "float64"
    parametrization: str = "ntk"  # "standard": lam_inf is H(W_0) of the first width's first seed; final_W is [W, b]

    def save(self, path: str | os.PathLike) -> None:
        """Write every field to `path` (.npz); the setting axis is dropped for a single setting.
        NtkodeError when the file cannot be written."""
        squeeze = len(self.settings) == 1
        arrays: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name in _SCALARS or f.name == "settings":
                continue
            if f.name in ("final_W", "final_a"):
                arrays.update({f"{f.name}_{i}": v for i, v in enumerate(value)})
                continue
            value = np.asarray(value)
            arrays[f.name] = value[:, 0] if squeeze and f.name in PER_SETTING else value
        meta = {name: getattr(self, name) for name in _SCALARS}
        meta.update(settings=self.settings)
        arrays["meta"] = np.array(json.dumps(meta))
        try:
            with open(path, "wb") as handle:
                np.savez(handle, **arrays)
        except OSError as err:
            raise NtkodeError(f"cannot write simulation file {path}: {err.strerror or err}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SimulationResult":
        """Read a file written by `save`."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as err:
            raise NtkodeError(f"cannot read simulation file {path}: {err}") from None
        if "meta" not in arrays:
            raise NtkodeError(f"{path} is not a file written by ntkode simulate (no 'meta')")
        meta = json.loads(str(arrays.pop("meta")))
        squeeze = len(meta["settings"]) == 1
        kwargs: dict = {**meta}
        for name in ("final_W", "final_a"):
            keys = sorted((k for k in arrays if k.startswith(name + "_")), key=lambda k: int(k.rsplit("_", 1)[1]))
            kwargs[name] = [arrays.pop(k) for k in keys] or None
        for name, value in arrays.items():
            kwargs[name] = value[:, None] if squeeze and name in PER_SETTING else value
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(kwargs) - set(known))
        missing = sorted(name for name, f in known.items() if f.default is MISSING and name not in kwargs)
        if unknown or missing:
            raise NtkodeError(f"{path} does not match this version's simulation files: "
                              f"unknown entries {unknown}, missing entries {missing}")
        return cls(**kwargs)
