"""`ntkode verify`: run the claims, print the table, write the report; exit 0 only if all pass."""
from __future__ import annotations

import argparse

from ntkode.errors import NtkodeError

from .claims import CLAIMS, OPT_IN_CLAIMS
from .cli_hyper import parse_hyper

DESCRIPTION = """Check the theory's predictions on finite-width networks.

Each claim compares a prediction of ntkode.theory with a measurement on networks
trained by ntkode.numerics.simulate, within a tolerance fixed in advance; the
table lists every comparison. Writes DIR/report.json, DIR/report.md and one
PNG per claim (rewritten as each claim finishes; a run cut short is marked
INCOMPLETE, and --resume then keeps the claims it finished). The output directory
is checked before anything runs. Exit status: 0 when every claim run passed, 1 when
any failed (a measurement that could not be made fails), 2 on bad input.

--method FILE.toml [--hyper NAME=VALUE,...] runs only the generic linear-rate claim
for that declaration (a built-in name works too): the measured rate of a wide net
against the declaration's spectral radius on H-infinity and on H(W_0). Without
--hyper the method is tuned on H-infinity's [lambda_0, lambda_max] (ntkode.theory.optimal)."""


def _claims(args: argparse.Namespace):
    """--claims' names, or with --method only the generic linear-rate claim for that declaration."""
    if args.method is None:
        if args.hyper is not None:
            raise NtkodeError("--hyper needs --method FILE.toml (the claims of ntkode verify fix their own settings)")
        return args.claims
    if args.claims is not None:
        raise NtkodeError("--method runs only its own claim; leave out --claims")
    from .claims_declared import user_claim

    return [user_claim(args.method, parse_hyper(args.hyper))]


def _handle(args: argparse.Namespace) -> int:
    from .runner import run

    report = run(_claims(args), setting=args.setting, device=args.device, out=args.out, progress=True,
                 resume=args.resume)
    print(report.table())
    passed = sum(o.passed for o in report.outcomes)
    resumed = f", {len(report.resumed)} resumed" if report.resumed else ""
    print(
        f"\n{passed}/{len(report.outcomes)} claims passed ({report.setting}, {report.device}, "
        f"{report.seconds:.1f} s{resumed}); report in {report.out}/"
    )
    return 0 if report.passed else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add `verify` to the `ntkode` parser."""
    parser = sub.add_parser(
        "verify",
        help="run the claims: theory vs finite-width simulation, with a report",
        description=DESCRIPTION,
        epilog="claims: " + ", ".join(CLAIMS) + "\nonly when named (--claims NAME): " + ", ".join(OPT_IN_CLAIMS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--claims", metavar="NAME,...", default=None,
                        help="comma-separated claim names (default: all but the opt-in ones)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="setting", action="store_const", const="quick",
                      help="small nets, minutes on a CPU (default)")
    size.add_argument("--full", dest="setting", action="store_const", const="full",
                      help="wider nets and more seeds, meant for a GPU")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="where to simulate (default auto: GPU if CuPy sees one)")
    parser.add_argument("--out", metavar="DIR", default="ntkode-report",
                        help="report directory (default ./ntkode-report)")
    parser.add_argument("--method", metavar="FILE.toml", default=None,
                        help="run only the generic linear-rate claim for this declared method")
    parser.add_argument("--hyper", metavar="NAME=VALUE[,...]", default=None,
                        help="its hyper-parameters by declared name (default: tuned on H-infinity's interval)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the claims of DIR's earlier report whose inputs and ntkode version are unchanged")
    parser.set_defaults(func=_handle, setting="quick")
