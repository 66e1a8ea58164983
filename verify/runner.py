"""`run`: measure a list of claims, writing the report after each one finishes."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ntkode.numerics.backend import device_name, get_xp
from ntkode.errors import NtkodeError

from .claim import SETTINGS, Evidence, Figure, Outcome
from .claims import CLAIMS
from .report import draw_figure, format_table, write_report


@dataclass
class Report:
    """The outcomes of one `run`, in the order the claims ran."""

    outcomes: list[Outcome]
    setting: str
    device: str
    seconds: float
    out: Path | None

    @property
    def passed(self) -> bool:
        """True only when at least one claim ran and every claim passed."""
        return bool(self.outcomes) and all(o.passed for o in self.outcomes)

    def table(self) -> str:
        return format_table(self.outcomes)

    def to_json(self) -> list[dict]:
        return [o.to_json() for o in self.outcomes]


def resolve_claims(claims: str | Sequence[str] | None) -> list[str]:
    """Claim names from None (all), "a,b" or a list; NtkodeError naming unknown ones."""
    if claims is None:
        return list(CLAIMS)
    names = [c.strip() for c in (claims.split(",") if isinstance(claims, str) else claims) if c.strip()]
    unknown = [c for c in names if c not in CLAIMS]
    if unknown or not names:
        raise NtkodeError(f"unknown claim(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CLAIMS)}")
    return list(dict.fromkeys(names))


def _failed(name: str, setting: str, err: NtkodeError, seconds: float) -> Outcome:
    """A claim whose measurement could not be made (e.g. a fit with no points): failed, with the reason."""
    claim = CLAIMS[name]
    figure = Figure(f"{name}: no measurement", "step", "error", [])
    evidence = Evidence([], figure, [f"measurement failed: {err}"])
    return Outcome(name, claim.statement, setting, claim.params(setting), evidence, seconds)


def run(
    claims: str | Sequence[str] | None = None,
    setting: str = "quick",
    device: str = "auto",
    out: str | Path | None = None,
    progress: bool = True,
) -> Report:
    """Run `claims` (default all nine) at `setting` ("quick" or "full") on `device`.

    With `out`, DIR/report.json, DIR/report.md and DIR/<claim>.png are rewritten after
    every claim, so an interrupted run keeps the claims already finished.
    """
    names = resolve_claims(claims)
    if setting not in SETTINGS:
        raise NtkodeError(f"setting must be one of {', '.join(SETTINGS)}; got {setting!r}")
    device_used = device_name(get_xp(device))
    out_dir = Path(out) if out is not None else None
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    bar = tqdm(names, file=sys.stderr, disable=not progress, unit="claim", dynamic_ncols=True)
    for name in bar:
        bar.set_description(name)
        claim_start = time.perf_counter()
        try:
            outcome = CLAIMS[name].run(setting, device)
        except NtkodeError as err:
            outcome = _failed(name, setting, err, time.perf_counter() - claim_start)
        outcomes.append(outcome)
        if out_dir is not None:
            write_report(outcomes, out_dir, setting, device_used, time.perf_counter() - start)
            draw_figure(outcome.evidence.figure, out_dir / f"{name}.png")
    return Report(outcomes, setting, device_used, time.perf_counter() - start, out_dir)
