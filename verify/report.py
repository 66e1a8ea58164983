"""Rendering finished claims: the console table, report.json, report.md and one PNG per claim.

Files are written atomically (temporary file, then os.replace), so an interrupted
`ntkode verify` leaves complete files for the claims that finished.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from .claim import Figure, Outcome  # noqa: E402

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


def to_markdown(outcomes: Sequence[Outcome], setting: str, device: str, seconds: float) -> str:
    """report.md: the summary table, then each claim's statement, notes, figure and tolerances."""
    passed = sum(o.passed for o in outcomes)
    lines = [
        "# ntkode verify report",
        "",
        f"Setting `{setting}` on `{device}`: {passed}/{len(outcomes)} claims passed in {seconds:.1f} s.",
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


def draw_figure(figure: Figure, path: Path) -> None:
    """Draw measured curves solid, predicted ones dashed, markers as points; save a PNG."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for curve in figure.curves:
        if curve.style == "predicted":
            ax.plot(curve.x, curve.y, "--", linewidth=1.5, label=curve.label)
        elif curve.style == "marker":
            ax.plot(curve.x, curve.y, "o", markersize=6, label=curve.label)
        else:
            ax.plot(curve.x, curve.y, "-", linewidth=1.0, alpha=0.85, label=curve.label)
    ax.set_xscale(figure.xscale)
    ax.set_yscale(figure.yscale)
    ax.set_xlabel(figure.xlabel)
    ax.set_ylabel(figure.ylabel)
    ax.set_title(figure.title, fontsize=10)
    if figure.curves:
        ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(outcomes: Sequence[Outcome], out: Path, setting: str, device: str, seconds: float) -> None:
    """DIR/report.json (a list of claim objects) and DIR/report.md for the outcomes so far."""
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "report.json", json.dumps([o.to_json() for o in outcomes], indent=2) + "\n")
    write_text(out / "report.md", to_markdown(outcomes, setting, device, seconds))
