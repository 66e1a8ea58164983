"""`ntkode derive`, `ntkode rates` and `ntkode methods`: derivations, their numbers for a spectrum, and the
declared methods."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ntkode.declaration import builtin_names
from ntkode.errors import NtkodeError
from ntkode.theory import (derive, derive_ode, get_method, named_tuning, numeric_optimum, ode_rate, optimal,
                           spectral_radius)
from ntkode.theory.discrete import check_eigs
from ntkode.theory.ode import ode_hypers

from .cli_hyper import add_hyper_flags, given_hyper

THEORY_CONVENTIONS = """conventions:
  METHOD is a built-in name (`ntkode methods` lists them) or a path to a .toml declaration (README:
  "Declaring a method"). Hyper-parameters: --hyper name=value,... for any method; the built-ins also take --lr,
  --momentum, --momentum2, --r (and --damping for the ODE).
  Per-eigenvalue analysis of the error e = u - y on the NTK eigenvalues lam (loss 1/2 ||u - y||^2;
  with the 'mean' loss divide the eigenvalues by n).
  discrete "rate" = spectral radius max_lam max|z| of the characteristic polynomial p(z) = det(zI - T(lam)),
  reduced to the modes that reach W: per step, ||e_k|| ~ rate^k; > 1 means unstable. For a time-varying
  method (nag: beta_k = (k-1)/(k+r-1)) it is the asymptotic per-step factor of lim_{k->inf} p.
  ODE: z = exp(s h) with the declaration's [ode] scaling. GD: h = lr, t = k lr. Momentum methods:
  h = sqrt(lr), t = k sqrt(lr), damping gamma = (1 - beta)/sqrt(lr) (mom2: beta = 1 - beta2 - gamma sqrt(lr)).
  ODE "exponent" alpha: |e(t)| ~ exp(-alpha t) per unit time (0 when the decay is sublinear);
  "order": |e(t)| ~ t^(-order) (r/2 for nag; 0 when linear). High resolution keeps O(h).
  --optimal minimises the worst radius over [min eig, max eig]: the declaration's closed form where it
  has one (GD, Polyak's heavy ball, NAG-SC's true minimiser), else a multi-start numeric search."""


def _eigs(text: str) -> np.ndarray:
    """--eigs L1,L2,... or @file.npy (a 1-D array)."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise NtkodeError(f"cannot read eigenvalues from {path}: {err}") from None
        if not isinstance(loaded, np.ndarray):
            raise NtkodeError(f"{path} holds several arrays; --eigs @FILE needs one array saved with numpy.save")
        if loaded.ndim != 1:
            raise NtkodeError(f"{path} holds an array of shape {loaded.shape}; --eigs @FILE needs a 1-D array")
        return loaded
    try:
        return np.array([float(x) for x in text.split(",") if x.strip()], dtype=float)
    except ValueError:
        raise NtkodeError(f"--eigs must be comma-separated numbers or @file.npy; got {text!r}") from None


def _pairs(roots) -> list:
    return [[float(np.real(x)), float(np.imag(x))] for x in roots]


def _print(payload: dict, as_json: bool, lines: list[str]) -> None:
    print(json.dumps(payload, indent=2) if as_json else "\n".join(lines))


def _shown(hyper: dict) -> str:
    return ", ".join(f"{name} {value:.10g}" for name, value in hyper.items())


def run_derive(args: argparse.Namespace) -> int:
    """`ntkode derive`: the symbolic derivation, as text, LaTeX or JSON."""
    if args.resolution != "low" and not args.ode:
        raise NtkodeError("--resolution applies to the ODE only; add --ode")
    m = get_method(args.method)
    d = derive_ode(m, args.resolution) if args.ode else derive(m)
    if args.json:
        print(json.dumps(d.to_json(), indent=2))
    elif args.latex:
        print(d.latex())
    else:
        for key, value in d.to_json(parseable=False).items():
            if value not in (None, "", {}, []):
                print(f"{key}: {value}")
    return 0


def _discrete(m, args, eigs: np.ndarray, hyper: dict) -> tuple[dict, list[str]]:
    res = spectral_radius(m, eigs, **hyper)
    status = "stable" if res.stable else "unstable"
    per = [{"lambda": float(l), "roots": _pairs(z), "radius": float(rad)}
           for l, z, rad in zip(res.eigs, res.roots, res.radius)]
    payload = {"method": m.name, "rate": res.rate, "stable": res.stable, "status": status,
               "argmax_lambda": res.argmax_lambda, "hyper": res.hyper, "per_eigenvalue": per}
    lines = [f"{m.name}: rate {res.rate:.10g} per step ({status}), attained at lambda = {res.argmax_lambda:g}"]
    lines += [f"  lambda {p['lambda']:<12g} radius {p['radius']:.10g}" for p in per]
    return payload, lines


def _ode(m, args, eigs: np.ndarray, hyper: dict) -> tuple[dict, list[str]]:
    res = ode_rate(m, eigs, args.resolution, **hyper)
    per = [{"lambda": float(l), "roots": _pairs(s), "exponent": float(a)}
           for l, s, a in zip(res.eigs, res.roots, res.per_lambda)]
    payload = {"method": m.name, "resolution": args.resolution, "exponent": res.exponent,
               "order": res.order, "argmin_lambda": res.argmin_lambda, "hyper": res.hyper, "per_eigenvalue": per}
    factors = ([f"t^(-{res.order:g})"] if res.order else []) + ([f"exp(-{res.exponent:.10g} t)"] if res.exponent else [])
    lines = [f"{m.name} ODE ({args.resolution} resolution): |e(t)| ~ {' '.join(factors) or 'no decay'}"]
    lines += [f"  lambda {p['lambda']:<12g} exponent {p['exponent']:.10g}" for p in per]
    return payload, lines


def _optimal(m, args, eigs: np.ndarray) -> tuple[dict, list[str]]:
    lo, hi = float(eigs.min()), float(eigs.max())
    if args.ode:
        best = optimal(m, lo, hi, ode=True)
        return best, [f"{m.name} ODE optimum: {_shown(best['hyper']) or 'nothing to tune'}; "
                      f"exponent {best['exponent']:.10g}"]
    if args.tuning:
        best = named_tuning(m, args.tuning, lo, hi)
    elif args.numeric:
        best = numeric_optimum(m, lo, hi)
    else:
        best = optimal(m, lo, hi)
    payload = {**best, "stable": best["rate"] < 1}
    what = f"tuning {args.tuning!r}" if args.tuning else f"optimum ({best['source']})"
    line = f"{m.name} {what}: {_shown(best['hyper'])}; rate {best['rate']:.10g} per step over [{lo:g}, {hi:g}]"
    lines = [line] + ([f"  {best['note']}"] if "note" in best else [])
    return payload, lines


def _used(m, args) -> tuple[tuple, str]:
    """The hyper-parameters the chosen computation reads, and its name for messages."""
    if args.optimal or args.tuning:
        return (), "--optimal (it chooses the hyper-parameters)"
    if args.ode:
        return ode_hypers(m, args.resolution), f"its {args.resolution}-resolution ODE"
    return m.hyper, "its discrete rate"


def run_rates(args: argparse.Namespace) -> int:
    """`ntkode rates`: discrete rate, ODE exponent and order, or optimum for a spectrum."""
    m = get_method(args.method)
    if args.resolution != "low" and not args.ode:
        raise NtkodeError("--resolution applies to the ODE only; add --ode")
    if (args.numeric or args.tuning) and not args.optimal:
        raise NtkodeError("--numeric and --tuning go with --optimal")
    given = given_hyper(args)
    used, what = _used(m, args)
    if given and not used:
        raise NtkodeError(f"{m.name}: {what} does not use {', '.join('--' + n for n in given)}")
    if used:
        m.check_hyper(given, used, ode=args.ode)  # unknown, missing or out-of-domain: one line, before any work
    eigs = check_eigs(_eigs(args.eigs))
    if args.optimal or args.tuning:
        payload, lines = _optimal(m, args, eigs)
    else:
        payload, lines = (_ode if args.ode else _discrete)(m, args, eigs, given)
    _print(payload, args.json, lines)
    return 0


def _methods_table(names) -> list[str]:
    """One row per hyper-parameter: method, `name (alias) in domain`, the method's reference on its first row."""
    rows = [("method", "hyper-parameters", "reference")]
    for name in names:
        m = get_method(name)
        hypers = [f"{hp.name}{f' ({hp.alias})' if hp.alias else ''} in {hp.domain()}" for hp in m.hyper]
        rows += [(name if i == 0 else "", hyper, m.reference if i == 0 else "") for i, hyper in enumerate(hypers)]
    widths = [max(len(row[col]) for row in rows) for col in range(2)]
    return [f"{a:{widths[0]}}  {b:{widths[1]}}  {c}".rstrip() for a, b, c in rows]


def run_methods(args: argparse.Namespace) -> int:
    """`ntkode methods [NAME]`: a table of the shipped methods with their hyper-parameters, domains and references,
    or one declaration as TOML (its [about] sections: algorithm, guarantee, references)."""
    if args.name is not None:
        print(get_method(args.name).to_toml(), end="")
        return 0
    names = builtin_names()
    print("\n".join(_methods_table(names)))
    print(f"\n{len(names)} methods; `ntkode methods NAME` prints one declaration with its algorithm, "
          "theoretical guarantee and references.")
    return 0


def _method_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", metavar="METHOD",
                        help=f"a built-in ({', '.join(builtin_names())}) or a path to a .toml declaration")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `derive`, `rates` and `methods` to the `ntkode` parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("derive", help="symbolic derivation of a method's rate or limiting ODE",
                       description="T(lam), the characteristic polynomial reduced to the modes that reach W, roots, "
                                   "Jury stability, rate and declared optima; with --ode the limiting ODE "
                                   "(z = exp(s h) expanded in h).",
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
    add_hyper_flags(p)
    p.add_argument("--ode", action="store_true", help="rates of the limiting ODE (per unit time t)")
    p.add_argument("--resolution", choices=("low", "high"), default="low", help="ODE resolution (high needs --lr)")
    p.add_argument("--optimal", action="store_true",
                   help="hyper-parameters minimising the worst radius over [min eig, max eig]")
    p.add_argument("--numeric", action="store_true", help="with --optimal: the numeric tuner even where a closed "
                                                          "form exists")
    p.add_argument("--tuning", metavar="NAME", default=None,
                   help="with --optimal: a tuning the declaration names instead (e.g. nag-sc's 'standard')")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_rates)

    p = sub.add_parser("methods", help="list the declared methods, or print one declaration",
                       description="Without NAME: a table of every shipped method with its hyper-parameters, their "
                                   "domains and its reference. With NAME (or a .toml path): the declaration itself, "
                                   "with its [about] sections (algorithm, theoretical guarantee, references).")
    p.add_argument("name", nargs="?", default=None, metavar="NAME")
    p.set_defaults(func=run_methods)
