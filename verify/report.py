"""Rendering finished claims: the console table, report.json, report.md and one PNG per claim.

Files are written atomically (temporary file, then os.replace), so an interrupted
`ntkode verify` leaves complete files for the claims that finished.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from .claim import Curve, Figure, Outcome

#: the files every report writes besides one PNG per claim
REPORT_FILES = ("report.json", "report.md")

HEADER = ("claim", "quantity", "predicted", "measured", "tolerance", "result")


def _number(x: float) -> str:
    return f"{x:.4g}"


def table_rows(outcomes: Sequence[Outcome]) -> list[tuple[str, ...]]:
    """One row per check: claim[label], quantity, predicted, measured (+- stderr), tolerance, PASS/FAIL."""
    rows = []
    for outcome in outcomes:
        if not outcome.checks:
            rows.append((outcome.name, "(no measurement)", "-", "-", "-", "FAIL"))
        for check in outcome.checks:
            name = f"{outcome.name}[{check.label}]" if check.label else outcome.name
            measured = _number(check.measured)
            if check.stderr > 0:
                measured += f" +- {check.stderr:.1g}"
            rows.append(
                (name, check.quantity, _number(check.predicted), measured, check.tolerance.describe(),
                 "PASS" if check.passed else "FAIL")
            )
    return rows


def format_table(outcomes: Sequence[Outcome]) -> str:
    """The fixed-width console table of `table_rows`."""
    rows = [HEADER] + table_rows(outcomes)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _status_line(meta: Mapping[str, Any], outcomes: Sequence[Outcome]) -> str:
    """The report's first sentence: a run that did not finish says so, with how far it got."""
    passed = sum(o.passed for o in outcomes)
    requested = len(meta.get("claims_requested", outcomes))
    head = (f"Setting `{meta['setting']}` on `{meta['device']}`, ntkode {meta['ntkode_version']}, "
            f"started {meta['started']}: ")
    if meta["status"] == "complete":
        return head + f"{passed}/{len(outcomes)} claims passed in {meta['seconds']:.1f} s."
    return head + (f"**INCOMPLETE ({meta['status']})**: {len(outcomes)} of {requested} claims finished, "
                   f"{passed} passed, after {meta['seconds']:.1f} s. Rerun with `ntkode verify --resume`.")


def to_markdown(outcomes: Sequence[Outcome], meta: Mapping[str, Any]) -> str:
    """report.md: the status, the summary table, then each claim's statement, notes, figure and tolerances."""
    lines = [
        "# ntkode verify report",
        "",
        _status_line(meta, outcomes),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(outcomes)]
    for outcome in outcomes:
        lines += ["", f"## {outcome.name}: {'PASS' if outcome.passed else 'FAIL'}", "", outcome.statement, ""]
        lines += [f"- {note}" for note in outcome.evidence.notes]
        lines += [f"- tolerance `{c.tolerance.describe()}` on {c.quantity}"
                  f"{f' [{c.label}]' if c.label else ''}: {c.tolerance.reason}" for c in outcome.checks]
        params = ", ".join(f"{k}={v}" for k, v in outcome.params.items())
        lines += [f"- parameters: {params}; {outcome.seconds:.1f} s", "", f"![{outcome.name}]({outcome.name}.png)"]
    return "\n".join(lines) + "\n"


def curve_group(curve: Curve) -> str:
    """The colour key of a curve: its `group`; else a leading "name=value" word of its label
    ("r=2 network" and "r=2 ODE envelope"); else its label up to the first ":" or " ("
    ("gap (seed mean)" and "gap: fitted slope -0.5")."""
    if curve.group:
        return curve.group
    first = curve.label.split(" ")[0].rstrip(",:")
    if re.fullmatch(r"[^\s=]+=[^\s=]+", first):
        return first
    return curve.label.split(":")[0].split(" (")[0].strip()


def _tidy_log_axis(axis, values: list[float]) -> None:
    """On a log axis spanning less than two decades, label a few plain numbers instead of
    matplotlib's minor-tick labels (which overlap: "3x10^3 4x10^3")."""
    positive = [v for v in values if v > 0 and np.isfinite(v)]
    if not positive or max(positive) / min(positive) >= 100:
        return
    distinct = sorted(set(positive))
    if len(distinct) > 6:
        distinct = [float(f"{v:.2g}") for v in np.geomspace(distinct[0], distinct[-1], 5)]
    axis.set_minor_formatter(NullFormatter())
    axis.set_major_locator(FixedLocator(distinct))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.4g}"))


#: line styles of a group's successive measured curves (e.g. one r at several step sizes)
MEASURED_STYLES = ("-", "-.", ":")


def draw_figure(figure: Figure, path: Path) -> None:
    """`render_figure`, saved as a PNG atomically."""
    tmp = path.with_name(path.stem + ".tmp.png")
    render_figure(figure).savefig(tmp, dpi=110)
    os.replace(tmp, path)


def render_figure(figure: Figure) -> MplFigure:
    """Measured curves solid (a group's second and third dash-dotted and dotted), predicted ones dashed,
    markers as points (with error bars when a curve has `yerr`); curves of one `curve_group` share a
    colour. A bare matplotlib Figure: no pyplot, so importing the report leaves the user's backend alone."""
    fig = MplFigure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    palette = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    colours: dict[str, str] = {}
    solid: dict[str, int] = {}
    for curve in figure.curves:
        group = curve_group(curve)
        colour = colours.setdefault(group, palette[len(colours) % len(palette)])
        fmt, width = {"predicted": ("--", 1.5), "marker": ("o", 1.0)}.get(curve.style, ("-", 1.0))
        if curve.style == "measured":
            solid[group] = solid.get(group, -1) + 1
            fmt = MEASURED_STYLES[solid[group] % len(MEASURED_STYLES)]
        ax.errorbar(curve.x, curve.y, yerr=curve.yerr, fmt=fmt, color=colour, linewidth=width, capsize=3,
                    markersize=6 if curve.style == "marker" else 0, label=curve.label,
                    alpha=0.85 if curve.style == "measured" else 1.0)
    ax.set_xscale(figure.xscale)
    ax.set_yscale(figure.yscale)
    if figure.xscale == "log":
        _tidy_log_axis(ax.xaxis, [x for curve in figure.curves for x in curve.x])
    if figure.yscale == "log":
        _tidy_log_axis(ax.yaxis, [y for curve in figure.curves for y in curve.y])
    ax.set_xlabel(figure.xlabel)
    ax.set_ylabel(figure.ylabel)
    ax.set_title(figure.title, fontsize=10)
    if figure.curves:
        ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def report_json(outcomes: Sequence[Outcome], meta: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """report.json's object: the run's metadata (version, setting, device, start, status, seconds, ...)
    and, under "claims", one record per claim with the `key` of its inputs (for --resume)."""
    claims = [dict(o.to_json(), key=key) for o, key in zip(outcomes, keys)]
    return dict(meta, complete=meta["status"] == "complete", claims=claims)


def write_report(outcomes: Sequence[Outcome], out: Path, meta: Mapping[str, Any], keys: Sequence[str]) -> None:
    """DIR/report.json (`report_json`) and DIR/report.md for the outcomes so far."""
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "report.json", json.dumps(report_json(outcomes, meta, keys), indent=2) + "\n")
    write_text(out / "report.md", to_markdown(outcomes, meta))
