"""`run`: measure a list of claims, writing the report after each one finishes.

The output directory is checked before anything is computed. report.json records the
run's status ("running", "interrupted", "crashed", "complete"), so a run cut short, even by
SIGKILL, is never mistaken for a finished one; `resume=True` reuses the claims of an earlier
report whose inputs (setting, parameters, device, statement) and ntkode version are unchanged.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ntkode import __version__
from ntkode.errors import NtkodeError
from ntkode.numerics.backend import device_name, get_xp

from .claim import SETTINGS, Check, Claim, Evidence, Figure, Outcome, Tolerance
from .claims import CLAIMS, OPT_IN_CLAIMS, OPT_IN_NEEDS
from .report import REPORT_FILES, draw_figure, format_table, write_report

#: BLAS threads while claims run: their matrices are small (n ~ 10-64), where OpenBLAS's threads
#: only contend for the cores (issue 13 measured 17 min instead of 84 s on a loaded 2-core machine)
CLAIM_BLAS_THREADS = 1

#: the progress bar shows claims done and elapsed time, no ETA: claims differ in cost by 100x
BAR_FORMAT = "{desc}: {n_fmt}/{total_fmt} claims |{bar}| {elapsed} elapsed"


@dataclass
class Report:
    """The outcomes of one `run`, in the order the claims ran (resumed ones included)."""

    outcomes: list[Outcome]
    setting: str
    device: str
    seconds: float
    out: Path | None
    resumed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True only when at least one claim ran and every claim passed."""
        return bool(self.outcomes) and all(o.passed for o in self.outcomes)

    def table(self) -> str:
        return format_table(self.outcomes)

    def to_json(self) -> list[dict]:
        return [o.to_json() for o in self.outcomes]


def claim_registry(claims: str | Sequence[str | Claim] | None) -> dict[str, Claim]:
    """CLAIMS, the opt-in claims (OPT_IN_CLAIMS) and the Claim objects given in `claims` (e.g. the claim of
    `ntkode verify --method`)."""
    given = [] if claims is None or isinstance(claims, str) else [c for c in claims if isinstance(c, Claim)]
    return {**CLAIMS, **OPT_IN_CLAIMS, **{c.name: c for c in given}}


def resolve_claims(claims: str | Sequence[str | Claim] | None,
                   registry: Mapping[str, Claim] | None = None) -> list[str]:
    """Claim names from None (all of CLAIMS), "a,b" or a list of names and Claims, looked up in `registry`
    (default `claim_registry(claims)`); NtkodeError naming unknown ones or an opt-in claim whose extra is
    missing (`OPT_IN_NEEDS`)."""
    if claims is None:
        return list(CLAIMS)
    registry = claim_registry(claims) if registry is None else registry
    items = claims.split(",") if isinstance(claims, str) else [c.name if isinstance(c, Claim) else c for c in claims]
    names = [c.strip() for c in items if c.strip()]
    unknown = [c for c in names if c not in registry]
    if unknown or not names:
        raise NtkodeError(f"unknown claim(s) {', '.join(unknown) or '(none given)'}; choose from "
                          f"{', '.join([*CLAIMS, *OPT_IN_CLAIMS])}")
    for name in names:
        if name in OPT_IN_NEEDS:
            OPT_IN_NEEDS[name]()
    return list(dict.fromkeys(names))


def prepare_out(out: str | Path, names: Sequence[str] = ()) -> Path:
    """The report directory, created if missing and probed for writing, before any claim runs.

    NtkodeError (param "out") when it is empty, an existing file, or not writable
    (read-only filesystem, no permission), or when the name of a report file or of a
    claim's figure (`names`) is taken by a directory.
    """
    if str(out).strip() == "":
        raise NtkodeError("out must name a directory for the report; got an empty path", param="out")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise NtkodeError(f"out {path} exists and is not a directory; choose a directory for the report", param="out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise NtkodeError(f"out directory {path} is not writable: {err.strerror or err}", param="out") from None
    taken = [name for name in (*REPORT_FILES, *(f"{n}.png" for n in names)) if (path / name).is_dir()]
    if taken:
        raise NtkodeError(f"out directory {path} has directories named {', '.join(taken)}; remove them", param="out")
    return path


def input_key(name: str, setting: str, params: dict[str, Any], device: str,
              registry: Mapping[str, Claim] = CLAIMS) -> str:
    """sha256 of everything that determines a claim's numbers: its name, statement, setting,
    parameters, device and the ntkode version (a resumed claim must match all of them)."""
    payload = {"name": name, "statement": registry[name].statement, "setting": setting, "params": params,
               "device": device, "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def outcome_from_json(record: dict[str, Any]) -> Outcome:
    """An Outcome rebuilt from its report.json record (checks and notes; the figure stays on disk)."""
    checks = []
    for c in record["checks"]:
        tol = c["tolerance"]
        value = tuple(tol["value"]) if tol["kind"] == "range" else tol["value"]
        checks.append(Check(c["label"], c["quantity"], _number(c["predicted"]), _number(c["measured"]),
                            _number(c["stderr"]), Tolerance(tol["kind"], value, tol["reason"])))
    figure = Figure(f"{record['name']} (resumed)", "", "", [])
    evidence = Evidence(checks, figure, list(record["notes"]))
    return Outcome(record["name"], record["statement"], record["setting"], record["params"], evidence,
                   float(record["seconds"]))


def resumable(out: Path, names: list[str], keys: dict[str, str]) -> dict[str, Outcome]:
    """Claims of DIR/report.json whose key matches `keys` and whose PNG exists; {} if none or unreadable."""
    try:
        report = json.loads((out / "report.json").read_text())
        records = report["claims"]
        found = {r["name"]: r for r in records if r.get("key") == keys.get(r.get("name"))}
        return {name: outcome_from_json(found[name]) for name in names
                if name in found and (out / f"{name}.png").is_file()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _failed(claim: Claim, setting: str, err: NtkodeError, seconds: float) -> Outcome:
    """A claim whose measurement could not be made (e.g. a fit with no points): failed, with the reason."""
    name = claim.name
    figure = Figure(f"{name}: no measurement", "step", "error", [])
    evidence = Evidence([], figure, [f"measurement failed: {err}"])
    return Outcome(name, claim.statement, setting, claim.params(setting), evidence, seconds)


def _remove_stale_figures(out: Path, keep: set[str]) -> None:
    """Delete DIR/<claim>.png of every known claim not in `keep`: they belong to an older run."""
    for name in [*CLAIMS, *OPT_IN_CLAIMS]:
        if name not in keep:
            (out / f"{name}.png").unlink(missing_ok=True)


def run(
    claims: str | Sequence[str | Claim] | None = None,
    setting: str = "quick",
    device: str = "auto",
    out: str | Path | None = None,
    progress: bool = True,
    resume: bool = False,
) -> Report:
    """Run `claims` (default all of CLAIMS; names, or Claim objects such as `claims_declared.user_claim`)
    at `setting` ("quick" or "full") on `device`.

    With `out`, DIR/report.json, DIR/report.md and DIR/<claim>.png are rewritten after
    every claim, so an interrupted run keeps the claims already finished, marked incomplete.
    With `resume`, claims finished in DIR's report with the same inputs and version are kept.
    BLAS runs single-threaded meanwhile (`CLAIM_BLAS_THREADS`).
    """
    registry = claim_registry(claims)
    names = resolve_claims(claims, registry)
    if setting not in SETTINGS:
        raise NtkodeError(f"setting must be one of {', '.join(SETTINGS)}; got {setting!r}")
    if resume and out is None:
        raise NtkodeError("resume needs out, the directory of the earlier report", param="resume")
    out_dir = prepare_out(out, names) if out is not None else None
    device_used = device_name(get_xp(device))
    keys = {name: input_key(name, setting, registry[name].params(setting), device_used, registry) for name in names}
    done = resumable(out_dir, names, keys) if resume else {}
    meta = {"ntkode_version": __version__, "setting": setting, "device": device_used,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "claims_requested": names,
            "resumed": list(done), "blas_threads": CLAIM_BLAS_THREADS}
    if out_dir is not None:
        _remove_stale_figures(out_dir, set(done))
    start = time.perf_counter()
    outcomes = {name: done[name] for name in names if name in done}

    def save(status: str) -> None:
        if out_dir is not None:
            ordered = [outcomes[n] for n in names if n in outcomes]
            write_report(ordered, out_dir, dict(meta, status=status, seconds=round(time.perf_counter() - start, 3)),
                         [keys[o.name] for o in ordered])

    todo = [name for name in names if name not in done]
    save("running")
    bar = tqdm(todo, file=sys.stderr, disable=not progress, dynamic_ncols=True, bar_format=BAR_FORMAT)
    try:
        with threadpool_limits(limits=CLAIM_BLAS_THREADS, user_api="blas"):
            for name in bar:
                bar.set_description(name)
                outcomes[name] = _measure(registry[name], setting, device)
                if out_dir is not None:
                    draw_figure(outcomes[name].evidence.figure, out_dir / f"{name}.png")
                save("running")
    except KeyboardInterrupt:
        save("interrupted")
        raise
    except BaseException:
        save("crashed")
        raise
    finally:
        bar.close()
    save("complete")
    return Report([outcomes[n] for n in names], setting, device_used, time.perf_counter() - start, out_dir,
                  list(done))


def _measure(claim: Claim, setting: str, device: str) -> Outcome:
    """Run one claim; an NtkodeError from its measurement becomes a failed Outcome with the reason."""
    claim_start = time.perf_counter()
    try:
        return claim.run(setting, device)
    except NtkodeError as err:
        return _failed(claim, setting, err, time.perf_counter() - claim_start)
