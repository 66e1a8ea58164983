"""`ntkode simulate`: train finite-width two-layer ReLU nets by one method and save the run."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np

from ntkode.numerics import digits_data, load_data, paper_data, sphere_data, sweep
from ntkode.errors import NtkodeError
from ntkode.theory.methods import HYPERS, METHODS, Method, get_method

#: the hyper-parameter flags of `ntkode simulate`
HYPER_FLAGS = ("lr", "momentum", "momentum2", "r")


def _widths(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise NtkodeError(f"--width takes integers separated by commas; got {text!r}") from None


def _data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    if args.data is not None:
        return load_data(args.data)
    if args.dataset == "sphere":
        return sphere_data(args.n, args.d, args.data_seed)
    if args.dataset == "paper":
        return paper_data(args.n, args.data_seed)
    return digits_data(args.n, seed=args.data_seed)


def _hyper(args: argparse.Namespace, method: Method) -> dict:
    """The method's hyper-parameters from the flags; NtkodeError naming any flag the method does not take."""
    unused = [HYPERS[name].flag for name in HYPER_FLAGS if name not in method.hyper and getattr(args, name) is not None]
    if unused:
        takes = ", ".join(HYPERS[name].flag for name in method.hyper)
        verb = "does" if len(unused) == 1 else "do"
        raise NtkodeError(f"{', '.join(unused)} {verb} not apply to method {method.name} (it takes {takes})")
    return {name: getattr(args, name) for name in method.hyper}


def _check_out(path: str) -> None:
    """NtkodeError unless `path` can be written: its folder exists and is writable, and it is not a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NtkodeError(f"--out {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise NtkodeError(f"--out {path}: folder {folder} is not writable")
    if os.path.isdir(path):
        raise NtkodeError(f"--out {path} is a folder; give a file name such as RUN.npz")


def handle(args: argparse.Namespace) -> int:
    method = get_method(args.method)
    hyper = _hyper(args, method)
    _check_out(args.out)
    X, y = _data(args)
    quiet = args.quiet or not sys.stderr.isatty()
    parts = f"{args.out}.parts"  # one file per finished width: the same command resumes after an interruption
    result = sweep(
        method.name, X, y, _widths(args.width), args.steps, args.seeds, hyper, out_dir=parts, progress=not quiet,
        device=args.device, loss=args.loss, train=args.train, kappa=args.kappa,
    )
    result.save(args.out)
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
    print(f"{method.name} {result.settings[0]} on n={X.shape[0]}, d={X.shape[1]} ({result.device}, space {result.space}); "
          f"H-inf eigenvalues {summary['lambda_min']:.4g} .. {summary['lambda_max']:.4g}; saved {args.out}")
    for m, row, div in zip(result.widths, final, summary["diverged_step"]):
        status = f"diverged in {sum(s >= 0 for s in div)} of {len(div)} seeds" if max(div) >= 0 else "no divergence"
        print(f"  width {m}: final ||e|| median {np.nanmedian(row) if not np.all(np.isnan(row)) else float('nan'):.3e}, {status}")
    if result.diverged.any() or summary["predicted_unstable"]:
        print(f"  theory predicts {'instability' if summary['predicted_unstable'] else 'stability'} for this setting")
    from ntkode.numerics import lazy_diagnostic  # issue 9: is the NTK rate trustworthy here? (seed 0, W trained)
    for m in result.widths:
        print(f"  {lazy_diagnostic(X, y, int(m), seed=0, kappa=args.kappa).describe()}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `simulate` to the `ntkode` parser."""
    p = sub.add_parser(
        "simulate", help="train finite-width two-layer ReLU nets by one method",
        description="Full-batch training of f(x) = m^(-1/2) sum_r a_r relu(w_r.x) (NTK parametrisation, "
        "w_r ~ N(0, kappa^2 I), a_r = +-1), by one declared method, for every width and seed. "
        "RUN.npz holds error_norm (widths, seeds, steps+1), projections on H-inf's eigenvectors, "
        "weight movement, X, y and the setting (meta). Each finished width is kept in RUN.npz.parts/ "
        "until RUN.npz is written, so rerunning an interrupted command resumes it.",
    )
    p.add_argument("--method", required=True, choices=sorted(METHODS))
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="FILE.npz", help="arrays X (n, d) and y (n,)")
    source.add_argument("--dataset", choices=("sphere", "paper", "digits"), default="sphere")
    p.add_argument("--n", type=int, default=20, help="number of samples (default 20)")
    p.add_argument("--d", type=int, default=5, help="input dimension for sphere (default 5)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--width", required=True, metavar="W[,W2,...]")
    p.add_argument("--steps", type=int, required=True)
    for name in HYPER_FLAGS:
        p.add_argument(HYPERS[name].flag, type=float, help=HYPERS[name].help)
    p.add_argument("--seeds", type=int, default=1, help="networks drawn with seeds 0..S-1")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--loss", default="sum", choices=("sum", "mean"), help="1/2||e||^2 or 1/(2n)||e||^2")
    p.add_argument("--train", default="W", choices=("W", "both"), help="train W only or both layers")
    p.add_argument("--kappa", type=float, default=1.0, help="init scale of W")
    p.add_argument("--out", required=True, metavar="RUN.npz")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handle)
