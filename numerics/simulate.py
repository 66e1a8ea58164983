"""simulate: train ensembles of two-layer ReLU nets by any declared method, batched on CPU or GPU.

The method is a declaration (`ntkode.declaration`: a built-in name, a .toml path or a Method); the
engine executes its statements, the same ones `ntkode.theory` analyses.

Runs = settings x seeds for each width, stacked along a leading batch axis
(`engine.Batch`); the batch is split to fit in memory. The same seed gives the
same network on every width's host draw (`init_network`) and on every backend.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ntkode.declaration import Method, load_method
from ntkode.errors import NtkodeError
from ntkode.theory import spectral_radius

from .backend import batch_slices, batch_target, device_name, get_xp, memory_budget
from .data import as_labels
from .engine import Batch, Problem, pool_slots
from .kernels import (as_inputs, as_kappa, check_data, check_options, empirical_from_preactivations, kernel_drift,
                      kernel_spectrum, loss_factor, ntk_infinite)
from .network import PRESETS, draw_network, with_bias_column
from .result import SimulationResult

SPACES = ("auto", "z", "w")


def hyper_settings(method: Method, hyper: dict | Sequence[dict]) -> list[dict]:
    """The list of settings, each checked by `method.check_hyper` (declared names or aliases, every
    hyper-parameter given, each in its domain), as {declared name: float}."""
    listed = [hyper] if isinstance(hyper, dict) else list(hyper)
    if not listed:
        raise NtkodeError("give at least one hyper-parameter setting", param="hyper")
    out = []
    for setting in listed:
        if not isinstance(setting, dict):
            raise NtkodeError(f"a hyper-parameter setting is a dict of name: value; got {setting!r}", param="hyper")
        out.append(method.scalar_hyper(setting, "per setting", "give a list of settings instead"))
    return out


def choose_space(n: int, d: int, space: str = "auto") -> str:
    """'z' (one m x n x n GEMM a step) when n <= 2 d, else 'w' (two m x n x d GEMMs)."""
    if space not in SPACES:
        raise NtkodeError(f"space must be one of {', '.join(SPACES)}; got {space!r}")
    if space != "auto":
        return space
    return "z" if n <= 2 * d else "w"


def bytes_per_run(m: int, n: int, d: int, slots: int, space: str, steps: int, track_d: bool, both: bool,
                  itemsize: int) -> int:
    """Device memory one run needs: its pools of `slots` variables (`engine.pool_slots`), the work
    arrays of a step, and its records."""
    main = slots * (m * n if space == "z" else m * d)
    pools = main + (slots * m if both else 0) + (slots * m * n if track_d else 0)
    work = m * n * (4 if space == "w" else 3) + m * d * (1 if space == "w" or track_d else 0)
    records = (steps + 1) * (n + 2)
    return itemsize * (pools + work + records + 2 * n * n) + m * n


#: GEMMs of fewer multiply-adds than this run on one BLAS thread. At ~5e9 multiply-adds/s per core such a
#: GEMM takes under ~7 ms on one thread, about one scheduler time slice; a multi-threaded GEMM ends at a
#: barrier that waits for every thread, and on a loaded machine each thread can wait a time slice for a
#: core, so below this size threads cost more than they save (issue 13: n ~ 10-64 runs took 17 min under
#: load with OpenBLAS's threads against 84 s single-threaded). Above it BLAS keeps its own choice.
BLAS_SERIAL_MACS = 2**25


def serial_blas(macs: int) -> contextlib.AbstractContextManager:
    """One BLAS thread for a computation whose largest GEMM has `macs` multiply-adds below
    `BLAS_SERIAL_MACS`; otherwise BLAS's threads are left as they are."""
    if macs < BLAS_SERIAL_MACS:
        return threadpool_limits(limits=1, user_api="blas")
    return contextlib.nullcontext()


def step_macs(m: int, n: int, d: int) -> int:
    """Multiply-adds of the largest GEMM of one training step of width m: m x n x n (space z) or
    m x n x d (space w, and Z = W X^T), bounded by m n max(n, d) in both spaces."""
    return m * n * max(n, d)


def predicted_unstable(method: Method, lam: np.ndarray, settings: list[dict]) -> np.ndarray:
    """Per setting, whether theory's spectral radius on the (positive) H-inf spectrum exceeds stability."""
    positive = lam[lam > 0]
    return np.array([not bool(spectral_radius(method, positive, **setting).stable) for setting in settings])


def _positive_ints(name: str, values) -> np.ndarray:
    """values as a 1-D int array of integers in [1, 2**53], or NtkodeError (strings, bools, huge numbers refused)."""
    try:
        arr = np.atleast_1d(np.asarray(values))
    except (ValueError, TypeError):
        arr = np.array([], dtype=object)
    numeric = arr.dtype.kind in "iuf" and arr.ndim == 1 and arr.size > 0
    if not numeric or not np.all(np.isfinite(arr)) or np.any(np.mod(arr, 1) != 0) or np.any(arr < 1) \
            or np.any(arr > 2**53):
        raise NtkodeError(f"{name} must be positive integers; got {values!r}", param=name)
    return arr.astype(np.int64)


#: the most seeds one call accepts (each is a network held on the host)
MAX_SEEDS = 1_000_000


def seed_array(seeds) -> np.ndarray:
    """seeds=S (int, at most MAX_SEEDS) means range(S); a sequence is taken as the seeds themselves
    (distinct non-negative integers: a repeated seed would be the same network twice)."""
    if np.ndim(seeds) == 0:
        count = _positive_ints("seeds", seeds)[0]
        if count > MAX_SEEDS:
            raise NtkodeError(f"seeds must be at most {MAX_SEEDS} networks; got {count}", param="seeds")
        return np.arange(count)
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
        raise NtkodeError(f"seeds must be a positive count or a list of non-negative integers; got {seeds!r}",
                          param="seeds")
    values, counts = np.unique(arr, return_counts=True)
    if np.any(counts > 1):
        raise NtkodeError(f"seeds {values[counts > 1][:10].tolist()} are repeated: each would train the same "
                          "network twice; give distinct seeds", param="seeds")
    return arr.astype(int)


@dataclass(frozen=True)
class Options:
    """What one `simulate` call fixes for every width: the method, the step count and what is recorded."""

    spec: Method
    steps: int
    space: str
    train: str
    loss: str
    kappa: float
    dtype: str
    drift: tuple[int, ...]
    movement: bool
    projections: bool
    keep_weights: bool
    track_d: bool
    parametrization: str = "ntk"
    init: object = "ntk"  # "ntk", "seed" or a callable (width, seed) -> weights (`network.draw_network`)
    w_std: float | None = None

    def draw(self, m: int, d_net: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(W, a, second-layer step factor) of seed `seed` at width m, in the engine's NTK variables, for
        engine inputs of dimension d_net (the data's d plus the bias column when standard)."""
        d_data = d_net - (self.parametrization == "standard")
        return draw_network(m, d_data, seed, self.parametrization, self.init, self.kappa, self.w_std)

    def run_bytes(self, m: int, n: int, d: int) -> int:
        """Device memory of one run of width m (`bytes_per_run`)."""
        itemsize = np.dtype(self.dtype).itemsize
        return bytes_per_run(m, n, d, pool_slots(self.spec), self.space, self.steps, self.track_d,
                             self.train == "both", itemsize)

    def host_bytes(self, m: int, n: int, d: int, n_seeds: int, n_runs: int) -> int:
        """Host memory of one width: the drawn nets (W, a), the (m, n) temporaries of H(W_0),
        the merged records and, with keep_weights, the final (W, a) of every run (float64)."""
        kept = n_runs * (d + 1) if self.keep_weights else 0
        return 8 * (m * (n_seeds * (d + 1) + 3 * n + kept) + n_runs * (self.steps + 1) * (n + 2))


@dataclass(frozen=True, eq=False)
class RunTable:
    """The runs of every width, setting-major: run i has settings[i // len(seeds)] and seed seeds[i % len(seeds)]."""

    settings: list[dict]
    seeds: np.ndarray

    def hyper(self, part: slice) -> dict[str, np.ndarray]:
        """{declared name: (runs in part,)} hyper-parameter values of the runs in `part`."""
        runs = [setting for setting in self.settings for _ in self.seeds][part]
        return {name: np.array([run[name] for run in runs]) for name in self.settings[0]}

    @property
    def size(self) -> int:
        return len(self.settings) * len(self.seeds)

    @property
    def seed_of_run(self) -> np.ndarray:
        """Index into `seeds` of every run."""
        return np.arange(self.size) % len(self.seeds)


def check_memory(xp, opts: Options, table: RunTable, m: int, n: int, d: int) -> None:
    """NtkodeError naming width m unless one run fits the device's batch budget and the width's
    host arrays (`Options.host_bytes`) fit the host's (on the CPU both share one budget)."""
    run = opts.run_bytes(m, n, d)
    host = opts.host_bytes(m, n, d, len(table.seeds), table.size)
    if xp is np:
        needs = [("one run and the networks", run + host, memory_budget(np))]
    else:
        needs = [("one run on the GPU", run, memory_budget(xp)), ("the networks on the host", host, memory_budget(np))]
    for what, need, free in needs:
        if need > free:
            raise NtkodeError(
                f"width {m}: {what} need {need / 2**30:.3g} GiB but only {free / 2**30:.3g} GiB is available; "
                "reduce the width, the number of samples or the seeds"
            )


def simulate(
    method: str,
    X,
    y,
    widths: int | Sequence[int],
    steps: int,
    seeds: int | Sequence[int] = 1,
    hyper: dict | Sequence[dict] = (),
    device: str = "auto",
    loss: str = "sum",
    train: str = "W",
    kappa: float = 1.0,
    drift_steps: Sequence[int] = (),
    keep_weights: bool = False,
    progress: bool = True,
    *,
    movement: bool = True,
    projections: bool = True,
    space: str = "auto",
    dtype: str = "float64",
    check: bool = True,
    parametrization: str = "ntk",
    init="ntk",
    w_std: float | None = None,
    preset: str | None = None,
) -> SimulationResult:
    """Full-batch training of f(x) = m^{-1/2} sum_r a_r relu(w_r.x) by `method` for every
    (width, setting, seed); see SimulationResult for what is recorded.

    method: a built-in name (gd, hb, nag-sc, nag, mom2), a .toml declaration or a Method.
    hyper: one dict or a list of dicts of the method's hyper-parameters (declared names or aliases,
    e.g. lr, momentum, momentum2, r for the built-ins).
    seeds: a count S (seeds 0..S-1) or explicit seeds. space: "z", "w" or "auto" (cheaper).
    movement/projections: record those every step (movement costs extra passes in space z).
    check=False skips `check_data` (near-singular kernels then go through unreported).
    Every width's memory need is checked before any network is drawn. A width whose GEMMs are small runs
    on one BLAS thread (`serial_blas`).
    parametrization: "ntk" or "standard" (sum_r a_r relu(w_r.x + b_r), bias trained, trained as the NTK net
    on [X, 1] with a' = sqrt(m) a and the second layer's step times m; `network.standard_to_ntk`).
    init: "ntk", "seed" (W ~ N(0, w_std^2), w_std = 1/m by default; b as PyTorch's default; a ~ U(-1, 1))
    or a callable (width, seed) -> (W, a) / (W, b, a) giving the initial weights.
    preset="seed" sets parametrization="standard", init="seed", train="both", loss="mse" (nn.MSELoss);
    a callable init is kept. final_W, final_a are in the engine's variables ([W, b], sqrt(m) a when standard;
    `network.ntk_to_standard` maps them back).
    With the standard parametrisation lam_inf and the projections use the kernel H(W_0) of the first
    width's first seed (it grows with m: there is no width-independent limit).
    """
    spec = load_method(method)
    parametrization, init, train, loss = apply_preset(preset, parametrization, init, train, loss)
    check_options(train, loss)
    kappa = as_kappa(kappa)
    X = as_inputs(X)
    y = as_labels(y, X.shape[0])
    X_net = with_bias_column(X) if parametrization == "standard" else X
    if check:
        check_data(X_net)
    widths_arr = _positive_ints("widths", widths)
    steps = int(_positive_ints("steps", steps)[0])
    seed_arr = seed_array(seeds)
    settings = hyper_settings(spec, hyper)
    if dtype not in ("float64", "float32"):
        raise NtkodeError(f"dtype must be float64 or float32; got {dtype!r}")
    drift = tuple(sorted({int(s) for s in drift_steps}))
    if any(s < 0 or s > steps for s in drift):
        raise NtkodeError(f"drift steps must lie in 0..{steps}; got {list(drift_steps)}")
    xp = get_xp(device)
    n, d = X_net.shape
    chosen = choose_space(n, d, space)
    opts = Options(
        spec=spec, steps=steps, space=chosen, train=train, loss=loss, kappa=kappa, dtype=dtype, drift=drift,
        movement=movement, projections=projections, keep_weights=keep_weights,
        track_d=chosen == "z" and (movement or keep_weights), parametrization=parametrization, init=init,
        w_std=w_std,
    )
    table = RunTable(settings=settings, seeds=seed_arr)
    for m in widths_arr:
        check_memory(xp, opts, table, int(m), n, d)
    if parametrization == "standard":
        first = opts.draw(int(widths_arr[0]), d, int(seed_arr[0]))
        lam_inf, U = kernel_spectrum(initial_kernel(opts, X_net, *first))
    else:
        with serial_blas(n**3):
            lam_inf, U = kernel_spectrum(ntk_infinite(X, train, kappa, loss))
    bar = tqdm(total=len(widths_arr) * steps * table.size, disable=not progress, unit="run-step", leave=False,
               mininterval=0.5)
    per_width = []
    with bar:
        for m in widths_arr:
            with serial_blas(step_macs(int(m), n, d)):  # small GEMMs: one BLAS thread (`BLAS_SERIAL_MACS`)
                per_width.append(_simulate_width(xp, opts, table, X_net, y, U, int(m), bar))
    return _assemble(opts, table, widths_arr, X, y, per_width, lam_inf, device_name(xp))


def apply_preset(preset: str | None, parametrization: str, init, train: str, loss: str) -> tuple:
    """(parametrization, init, train, loss) with `preset`'s values (`network.PRESETS`); NtkodeError when a value
    given explicitly (not the default) contradicts the preset."""
    if preset is None:
        return parametrization, init, train, loss
    if preset not in PRESETS:
        raise NtkodeError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}", param="preset")
    given = {"parametrization": parametrization, "init": init, "train": train, "loss": loss}
    defaults = {"parametrization": "ntk", "init": "ntk", "train": "W", "loss": "sum"}
    fixed = PRESETS[preset]
    for name, value in given.items():
        if callable(value):
            continue  # user-given initial weights replace the preset's draw
        if value not in (defaults[name], fixed[name]):
            raise NtkodeError(f"preset {preset!r} fixes {name} to {fixed[name]!r}; got {value!r}", param=name)
    init = init if callable(init) else fixed["init"]
    return fixed["parametrization"], init, fixed["train"], fixed["loss"]


def initial_kernel(opts: Options, X_net: np.ndarray, W: np.ndarray, a: np.ndarray, a_step: float) -> np.ndarray:
    """H(W_0) of one net in the engine's variables (inputs X_net), with the loss factor and the second layer's
    step factor (m in the standard parametrisation)."""
    return empirical_from_preactivations(W @ X_net.T, a, X_net @ X_net.T, opts.train, opts.loss, a_step)


def _simulate_width(xp, opts: Options, table: RunTable, X, y, U, m: int, bar) -> dict:
    """All runs of width m, in as many batches as memory needs; host records for every run."""
    n, d = X.shape
    dtype = opts.dtype
    scale = float(loss_factor(opts.loss, n)) / math.sqrt(m)  # a Python float: no float32 promotion
    nets = [opts.draw(m, d, int(seed)) for seed in table.seeds]
    prob = Problem(
        xp=xp, X=xp.asarray(X, dtype=dtype), G=xp.asarray(X @ X.T, dtype=dtype), y=xp.asarray(y, dtype=dtype),
        U=xp.asarray(U, dtype=dtype), scale=scale, space=opts.space, train=opts.train, loss=opts.loss,
        dtype=np.dtype(dtype), a_step=nets[0][2],
    )
    seed_of_run = table.seed_of_run
    records = []
    for part in batch_slices(table.size, opts.run_bytes(m, n, d), memory_budget(xp), batch_target(xp)):
        which = seed_of_run[part]
        W0 = xp.asarray(np.stack([nets[s][0] for s in which]), dtype=dtype)
        a0 = xp.asarray(np.stack([nets[s][1] for s in which]), dtype=dtype)
        batch = Batch(prob, W0, a0, opts.spec, table.hyper(part), opts.steps, opts.movement, opts.projections,
                      opts.track_d)
        with np.errstate(over="ignore", invalid="ignore"):
            records.append((part.start, batch.run(opts.drift, on_step=_ticker(bar, batch))))
        del batch
    H0 = [initial_kernel(opts, X, *net) for net in nets]
    merged = _merge_batches(records, opts, seed_of_run, H0, m, d)
    merged["lam_emp"] = np.array([kernel_spectrum(H)[0] for H in H0])
    return merged


def _merge_batches(records, opts: Options, seed_of_run: np.ndarray, H0: list[np.ndarray], m: int, d: int) -> dict:
    """Per-run host arrays (run axis first) from the batches' records."""
    R, n, rows_k = len(seed_of_run), H0[0].shape[0], opts.steps + 1
    out = {
        "error_norm": np.full((R, rows_k), np.nan),
        "projections": None if records[0][1]["projections"] is None else np.full((R, rows_k, n), np.nan),
        "weight_movement": None if records[0][1]["weight_movement"] is None else np.full((R, rows_k), np.nan),
        "diverged_step": np.full(R, -1),
        "kernel_drift": np.full((R, len(opts.drift)), np.nan),
        "final_W": np.full((R, m, d), np.nan) if opts.keep_weights else None,
        "final_a": np.full((R, m), np.nan) if opts.keep_weights else None,
    }
    for start, rec in records:
        rows = slice(start, start + rec["error_norm"].shape[0])
        for name in ("error_norm", "projections", "weight_movement", "diverged_step"):
            if out[name] is not None:
                out[name][rows] = rec[name]
        for col, k in enumerate(opts.drift):
            if k in rec["kernels"]:
                local, kernels = rec["kernels"][k]
                for run, H in zip(start + local, kernels):
                    if 0 <= out["diverged_step"][run] <= k:
                        continue  # diverged by step k (perhaps between checks): its records stay NaN
                    out["kernel_drift"][run, col] = kernel_drift(H, H0[seed_of_run[run]])
        if opts.keep_weights and rec["final"] is not None:
            local, W, a = rec["final"]
            out["final_W"][start + local], out["final_a"][start + local] = W, a
    return out


def _assemble(opts: Options, table: RunTable, widths: np.ndarray, X, y, per_width: list[dict], lam_inf: np.ndarray,
              device: str) -> SimulationResult:
    """Stack the widths and split the run axis into (setting, seed)."""
    ns, nseed = len(table.settings), len(table.seeds)

    def per_width_list(name):
        if per_width[0][name] is None:
            return None
        return [pw[name].reshape((ns, nseed) + pw[name].shape[1:]) for pw in per_width]

    def stacked(name):
        parts = per_width_list(name)
        return None if parts is None else np.stack(parts)

    diverged_step = stacked("diverged_step")
    return SimulationResult(
        method=opts.spec.name, settings=table.settings, widths=widths, seeds=table.seeds, steps=opts.steps, X=X, y=y,
        error_norm=stacked("error_norm"), projections=stacked("projections"),
        weight_movement=stacked("weight_movement"), kernel_drift=stacked("kernel_drift"),
        drift_steps=np.array(opts.drift, dtype=int), diverged=diverged_step >= 0, diverged_step=diverged_step,
        predicted_unstable=predicted_unstable(opts.spec, lam_inf, table.settings), lam_inf=lam_inf,
        lam_emp=np.stack([pw["lam_emp"] for pw in per_width]),
        final_W=per_width_list("final_W"), final_a=per_width_list("final_a"),
        loss=opts.loss, train=opts.train, kappa=float(opts.kappa), space=opts.space, device=device, dtype=opts.dtype,
        parametrization=opts.parametrization,
    )


def _ticker(bar, batch) -> Callable:
    def tick(remaining_steps: int = 1) -> None:
        bar.update(remaining_steps * batch.B)

    return tick
