"""Hyper-parameters on the command line: `--hyper name=value,...` for every method, and the built-ins'
aliases as flags of their own (--lr, --momentum, --momentum2, --r, --damping)."""
from __future__ import annotations

import argparse

from ntkode.errors import NtkodeError

from .cli import HYPER_FLAGS

ALIAS_HELP = {
    "lr": "learning rate (alias of eta in the built-ins)",
    "momentum": "momentum (alias of beta)",
    "momentum2": "second momentum of mom2 (alias of beta2)",
    "r": "Nesterov's r in beta_k = (k-1)/(k+r-1)",
    "damping": "ODE damping gamma = (1 - beta)/sqrt(lr) (alias of gamma)",
}


def add_hyper_flags(parser: argparse.ArgumentParser, names=HYPER_FLAGS) -> None:
    """--hyper and the alias flags `names`."""
    parser.add_argument("--hyper", metavar="NAME=VALUE[,...]", default=None,
                        help="hyper-parameters by their declared names, e.g. --hyper alpha=0.5,beta=0.9,nu=0.7")
    for name in names:
        parser.add_argument(f"--{name}", type=float, default=None, help=ALIAS_HELP[name])


def parse_hyper(text: str | None) -> dict[str, float]:
    """{name: value} from 'a=1,b=0.5'; NtkodeError naming the bad pair."""
    out: dict[str, float] = {}
    if text is None:
        return out
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise NtkodeError(f"--hyper takes NAME=VALUE pairs separated by commas; got {pair!r}")
        if name in out:
            raise NtkodeError(f"--hyper gives {name} twice")
        try:
            out[name] = float(value)
        except ValueError:
            raise NtkodeError(f"--hyper {name}: {value.strip()!r} is not a number") from None
    return out


def given_hyper(args: argparse.Namespace, names=HYPER_FLAGS) -> dict[str, float]:
    """The hyper-parameters the command line gives: the alias flags set, then --hyper's pairs."""
    flags = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    pairs = parse_hyper(args.hyper)
    both = sorted(set(flags) & set(pairs))
    if both:
        raise NtkodeError(f"{both[0]} is given both as --{both[0]} and in --hyper")
    return {**flags, **pairs}
