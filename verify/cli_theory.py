"""`ntkode derive` and `ntkode rates`: the symbolic derivations and their numbers for a spectrum."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ntkode.theory.discrete import check_eigs
from ntkode.theory import (HYPERS, METHODS, NtkodeError, derive, derive_ode, get_method, ode_rate, optimal,
                           rate_function, spectral_radius)

THEORY_CONVENTIONS = """conventions:
  per-eigenvalue analysis of the error e = u - y on the NTK eigenvalues lam (loss 1/2 ||u - y||^2;
  with the 'mean' loss divide the eigenvalues by n).
  discrete "rate" = spectral radius max_lam max|z| of the characteristic polynomial p(z): per step,
  ||e_k|| ~ rate^k; > 1 means unstable. For nag (beta_k = (k-1)/(k+r-1)) it is the asymptotic
  per-step factor of lim_{k->inf} p (beta_k -> 1), i.e. sqrt(1 - lr lam) for 0 < lr lam <= 1.
  ODE: z = exp(s h). GD: h = lr, t = k lr. Momentum methods: h = sqrt(lr), t = k sqrt(lr),
  damping gamma = (1 - beta)/sqrt(lr) (mom2: beta = 1 - beta2 - gamma sqrt(lr)).
  ODE "exponent" alpha: |e(t)| ~ exp(-alpha t) per unit time (0 when the decay is sublinear);
  "order": |e(t)| ~ t^(-order) (r/2 for nag; 0 when linear). High resolution keeps O(h)."""


def _eigs(text: str) -> np.ndarray:
    """--eigs L1,L2,... or @file.npy."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise NtkodeError(f"cannot read eigenvalues from {path}: {err}") from None
        if not isinstance(loaded, np.ndarray):
            raise NtkodeError(f"{path} holds several arrays; --eigs @FILE needs one array saved with numpy.save")
        return loaded.ravel()
    try:
        return np.array([float(x) for x in text.split(",") if x.strip()], dtype=float)
    except ValueError:
        raise NtkodeError(f"--eigs must be comma-separated numbers or @file.npy; got {text!r}") from None


def _hyper(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in HYPERS if getattr(args, name) is not None}


def _pairs(roots) -> list:
    return [[float(np.real(x)), float(np.imag(x))] for x in roots]


def _print(payload: dict, as_json: bool, lines: list[str]) -> None:
    print(json.dumps(payload, indent=2) if as_json else "\n".join(lines))


def run_derive(args: argparse.Namespace) -> int:
    """`ntkode derive`: the symbolic derivation, as text, LaTeX or JSON."""
    get_method(args.method)
    d = derive_ode(args.method, args.resolution) if args.ode else derive(args.method)
    if args.json:
        print(json.dumps(d.to_json(), indent=2))
    elif args.latex:
        print(d.latex())
    else:
        for key, value in d.to_json(parseable=False).items():
            if value not in (None, "", {}):
                print(f"{key}: {value}")
    return 0


def _discrete(args, eigs: np.ndarray) -> tuple[dict, list[str]]:
    res = spectral_radius(args.method, eigs, **_hyper(args))
    status = "stable" if res.stable else "unstable"
    per = [{"lambda": float(l), "roots": _pairs(z), "radius": float(rad)}
           for l, z, rad in zip(res.eigs, res.roots, res.radius)]
    payload = {"method": args.method, "rate": res.rate, "stable": res.stable, "status": status,
               "argmax_lambda": res.argmax_lambda, "hyper": res.hyper, "per_eigenvalue": per}
    lines = [f"{args.method}: rate {res.rate:.10g} per step ({status}), attained at lambda = {res.argmax_lambda:g}"]
    lines += [f"  lambda {p['lambda']:<12g} radius {p['radius']:.10g}" for p in per]
    return payload, lines


def _ode(args, eigs: np.ndarray) -> tuple[dict, list[str]]:
    res = ode_rate(args.method, eigs, args.resolution, **_hyper(args))
    per = [{"lambda": float(l), "roots": _pairs(s), "exponent": float(a)}
           for l, s, a in zip(res.eigs, res.roots, res.per_lambda)]
    payload = {"method": args.method, "resolution": args.resolution, "exponent": res.exponent,
               "order": res.order, "argmin_lambda": res.argmin_lambda, "hyper": res.hyper, "per_eigenvalue": per}
    factors = ([f"t^(-{res.order:g})"] if res.order else []) + ([f"exp(-{res.exponent:.10g} t)"] if res.exponent else [])
    lines = [f"{args.method} ODE ({args.resolution} resolution): |e(t)| ~ {' '.join(factors) or 'no decay'}"]
    lines += [f"  lambda {p['lambda']:<12g} exponent {p['exponent']:.10g}" for p in per]
    return payload, lines


def _optimal(args, eigs: np.ndarray) -> tuple[dict, list[str]]:
    best = optimal(args.method, float(eigs.min()), float(eigs.max()), ode=args.ode)
    if args.ode:
        hyper = {"damping": best["damping"], "momentum2": best.get("momentum2", 0.0), "r": args.r}
        res = ode_rate(args.method, eigs, "low", **{k: v for k, v in hyper.items() if v is not None})
        payload = {"method": args.method, **best, "exponent": res.exponent}
        return payload, [f"{args.method} ODE optimum: damping {best['damping']}, exponent {res.exponent:.10g}"]
    rate = float(np.max(rate_function(args.method)(eigs, best["lr"], best.get("momentum", 0.0),
                                                    best.get("momentum2", 0.0))))
    payload = {"method": args.method, **best, "rate": rate, "stable": rate < 1}
    shown = ", ".join(f"{k} {best[k]:.10g}" for k in ("lr", "momentum", "momentum2") if k in best)
    return payload, [f"{args.method} optimum: {shown}; rate {rate:.10g} per step"]


def _refuse_unused(args: argparse.Namespace) -> None:
    """Hyper-parameter flags the chosen computation would ignore are an error, not silently dropped."""
    m = get_method(args.method)
    if args.optimal:
        used, what = (), "--optimal (it chooses the hyper-parameters)"
    elif args.ode:
        used = m.ode_hyper + (("lr",) if args.resolution == "high" else ())
        what = f"its {args.resolution}-resolution ODE"
    else:
        used, what = m.hyper, "its discrete rate"
    unused = [hp.flag for name, hp in HYPERS.items() if getattr(args, name) is not None and name not in used]
    if unused:
        raise NtkodeError(f"{args.method}: {what} does not use {', '.join(unused)}")


def run_rates(args: argparse.Namespace) -> int:
    """`ntkode rates`: discrete rate, ODE exponent and order, or optimum for a spectrum."""
    _refuse_unused(args)
    eigs = _eigs(args.eigs)
    if args.optimal:
        payload, lines = _optimal(args, check_eigs(eigs))
    else:
        payload, lines = (_ode if args.ode else _discrete)(args, eigs)
    _print(payload, args.json, lines)
    return 0


def _method_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", help=f"one of {', '.join(METHODS)}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `derive` and `rates` to the `ntkode` parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("derive", help="symbolic derivation of a method's rate or limiting ODE",
                       description="Characteristic polynomial, roots, Jury stability, rate and optimum; "
                                   "with --ode the limiting ODE (z = exp(s h) expanded in h).",
                       epilog=THEORY_CONVENTIONS, formatter_class=fmt)
    _method_arg(p)
    p.add_argument("--ode", action="store_true", help="derive the limiting ODE instead")
    p.add_argument("--resolution", choices=("low", "high"), default="low", help="ODE order in h (default low)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--latex", action="store_true", help="print LaTeX")
    out.add_argument("--json", action="store_true", help="print JSON (strings parse with sympy.sympify)")
    p.set_defaults(func=run_derive)

    p = sub.add_parser("rates", help="numeric rates of a method on a spectrum",
                       description="Spectral radius per eigenvalue (discrete), decay exponent and order "
                                   "(--ode), or optimal hyper-parameters (--optimal).",
                       epilog=THEORY_CONVENTIONS, formatter_class=fmt)
    _method_arg(p)
    p.add_argument("--eigs", required=True, help="eigenvalues L1,L2,... (> 0) or @file.npy")
    for hp in HYPERS.values():
        p.add_argument(hp.flag, type=float, default=None, help=f"{hp.help}, in {hp.domain()}")
    p.add_argument("--ode", action="store_true", help="rates of the limiting ODE (per unit time t)")
    p.add_argument("--resolution", choices=("low", "high"), default="low", help="ODE resolution (high needs --lr)")
    p.add_argument("--optimal", action="store_true", help="optimal hyper-parameters for [min eig, max eig]")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_rates)
