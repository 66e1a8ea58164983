"""The `ntkode` command line: derive | rates | methods | simulate | sweep | verify | bench-rates |
bench-simulate | bench-sweep.

Thin by design: each subcommand's module registers its parser and handler; any
NtkodeError becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Sequence

from importlib import import_module

from ntkode import __version__
from ntkode.errors import NtkodeError

#: subcommand -> the module of this package that registers it (imported only when needed)
COMMANDS = {"derive": "cli_theory", "rates": "cli_theory", "methods": "cli_theory", "simulate": "cli_simulate",
            "sweep": "cli_sweep", "verify": "cli_verify", "bench-rates": "bench_rates", "bench-simulate": "bench_simulate",
            "bench-sweep": "bench_sweep"}

#: library parameter -> command-line flag where the two differ (otherwise the flag is --param)
FLAGS = {"widths": "--width", "seed": "--data-seed", "out_dir": "--out"}

CONVENTIONS = """conventions: two-layer ReLU net f(x) = m^(-1/2) sum_r a_r relu(w_r.x), NTK
parametrisation, only W trained unless stated; loss 1/2 ||u - y||^2 (the 'mean'
convention divides the kernel by n); float64. ODE time: t = k*eta for GD,
t = k*sqrt(eta) for momentum methods, damping gamma = (1 - beta)/sqrt(eta)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `ntkode` parser; for a known `command` only its module is imported and registered."""
    parser = argparse.ArgumentParser(
        prog="ntkode",
        description="Convergence rates of linear first-order methods (GD, heavy ball, Nesterov, or any method "
                    "declared in a .toml file) in the NTK regime, checked on finite-width networks.",
        epilog=CONVENTIONS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ntkode {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for name in modules:
        import_module(f".{name}", __package__).register(sub)
    return parser


#: hyper-parameter names that have a flag of their own (the built-ins' aliases); others go through --hyper
HYPER_FLAGS = ("lr", "momentum", "momentum2", "r", "damping")
#: the alias flags each command has (default HYPER_FLAGS); verify takes hyper-parameters only as --hyper
SIMULATE_FLAGS = ("lr", "momentum", "momentum2", "r")
COMMAND_HYPER_FLAGS = {"simulate": SIMULATE_FLAGS, "verify": ()}


def cli_message(err: NtkodeError, command: str | None = None) -> str:
    """The error's message with the parameter it names (`err.param`) replaced by its flag; a
    hyper-parameter ("hyper:NAME") becomes --NAME where `command` has that alias flag, --hyper NAME otherwise."""
    if not err.param:
        return str(err)
    param = err.param
    if param.startswith("hyper:"):
        param = param[len("hyper:"):]
        flag = f"--{param}" if param in COMMAND_HYPER_FLAGS.get(command, HYPER_FLAGS) else f"--hyper {param}"
    else:
        flag = FLAGS.get(param, "--" + param.replace("_", "-"))
    return re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", flag, str(err), count=1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ntkode` on argv; return the exit code (2 for bad input, one line on stderr)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NtkodeError as err:
        print(f"ntkode {args.command}: error: {cli_message(err, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ntkode {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (`ntkode ... | head`) stopped early: silence the flush at exit, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
