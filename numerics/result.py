"""SimulationResult: what `simulate` measured, with axes (width, setting, seed, step), saved as .npz.

In a saved file the setting axis is dropped when there is a single setting, so
`error_norm` has shape (widths, seeds, steps+1) there; `load` restores it.
Files are written atomically (`files.atomic_write`) and carry a SHA-256 checksum of their
entries, checked on load, so a truncated or bit-flipped file is refused, never half-read.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import MISSING, dataclass, fields

import numpy as np

from ntkode.errors import NtkodeError

from .files import atomic_write

#: arrays whose axis 1 is the setting axis
PER_SETTING = ("error_norm", "projections", "weight_movement", "kernel_drift", "diverged", "diverged_step")
_SCALARS = ("method", "loss", "train", "kappa", "space", "device", "dtype", "steps", "parametrization")
#: entries of a saved file that are not fields: the caller's key (`save(key=...)`) and the checksum
KEY, CHECKSUM = "key", "checksum"


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every entry's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(json.dumps([name, value.dtype.str, list(value.shape)]).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _read_npz(path) -> dict[str, np.ndarray]:
    """Every entry of an .npz file; NtkodeError for a missing, truncated or malformed one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise NtkodeError(f"cannot read simulation file {path}: no such file") from None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise NtkodeError(f"cannot read simulation file {path}: it is corrupt or not an .npz file ({err})") from None


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

    def save(self, path: str | os.PathLike, key: str | None = None) -> None:
        """Write every field to `path` (.npz) atomically, with a checksum; the setting axis is
        dropped for a single setting. `key` (a string) is stored for `load(key=...)` to check.
        NtkodeError when the file cannot be written (no temporary file stays behind)."""
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
        if key is not None:
            arrays[KEY] = np.array(key)
        arrays[CHECKSUM] = np.array(checksum(arrays))
        atomic_write(path, lambda handle: np.savez(handle, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike, key: str | None = None) -> "SimulationResult":
        """Read a file written by `save`: NtkodeError if it is corrupt (checksum), if `key` is
        given and differs from the stored one, or if it does not match this version's fields.
        Files saved without a checksum (by older versions) are read unchecked unless a key is asked for."""
        arrays = _read_npz(path)
        stored = arrays.pop(CHECKSUM, None)
        if stored is not None and str(stored) != checksum(arrays):
            raise NtkodeError(f"simulation file {path} is corrupt: its checksum does not match its contents")
        stored_key = arrays.pop(KEY, None)
        if key is not None and (stored is None or stored_key is None or str(stored_key) != key):
            raise NtkodeError(f"simulation file {path} holds a different computation than its name says "
                              "(its stored key differs)")
        if "meta" not in arrays:
            raise NtkodeError(f"{path} is not a file written by ntkode simulate (no 'meta')")
        try:
            meta = json.loads(str(arrays.pop("meta")))
        except ValueError:
            raise NtkodeError(f"{path} is corrupt: its 'meta' entry is not JSON") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("settings"), list):
            raise NtkodeError(f"{path} is corrupt: its 'meta' entry lacks the settings")
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
