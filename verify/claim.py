"""What a claim is: a statement, its default parameters, and a measurement that returns
prediction and measurement side by side (in the spirit of PEPit's examples).

A claim's `measure(params, device)` returns `Evidence`: a list of `Check`s
(one predicted number from `ntkode.theory`, one measured number from
`ntkode.numerics.simulate` through `ntkode.verify.fit`, and a `Tolerance` fixed in
the claim's code before anything runs), a `Figure` to draw, and notes. `Claim.run`
wraps it into an `Outcome`, which is what reports and the CLI consume.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ntkode.errors import NtkodeError

SETTINGS = ("quick", "full")


@dataclass(frozen=True)
class Tolerance:
    """How close is close enough, with the reason, stated before the run.

    kind "rel": |measured - predicted| <= value * |predicted|;
    "abs": |measured - predicted| <= value;
    "range": low <= measured <= high (value = (low, high); predicted is the nominal value).
    """

    kind: str
    value: float | tuple[float, float]
    reason: str

    def __post_init__(self) -> None:
        if self.kind not in ("rel", "abs", "range"):
            raise NtkodeError(f"unknown tolerance kind {self.kind!r}")

    def score(self, predicted: float, measured: float) -> float:
        """Deviation in units of the tolerance: <= 1 passes (inf when measured is not finite)."""
        if not (math.isfinite(measured) and math.isfinite(predicted)):
            return math.inf
        if self.kind == "range":
            low, high = self.value
            half = (high - low) / 2 if math.isfinite(high - low) else 1.0
            outside = max(low - measured, measured - high)
            return 1.0 + outside / half if outside > 0 else 0.0
        scale = abs(predicted) if self.kind == "rel" else 1.0
        return abs(measured - predicted) / (self.value * scale) if self.value * scale > 0 else math.inf

    def describe(self) -> str:
        """The tolerance in a few characters for tables: "rel 0.1", "abs 0.05", "in [a, b]", ">= a", "<= b"."""
        if self.kind == "range":
            low, high = self.value
            if math.isinf(high):
                return f">= {low:g}"
            if math.isinf(low):
                return f"<= {high:g}"
            return f"in [{low:g}, {high:g}]"
        return f"{'rel' if self.kind == 'rel' else 'abs'} {self.value:g}"

    def to_json(self) -> dict[str, Any]:
        """{"kind", "value" (a [low, high] list for "range"), "text" (`describe`), "reason"}."""
        value = list(self.value) if self.kind == "range" else self.value
        return {"kind": self.kind, "value": value, "text": self.describe(), "reason": self.reason}


@dataclass(frozen=True)
class Check:
    """One comparison: `quantity` predicted by theory vs measured on the network."""

    label: str
    quantity: str
    predicted: float
    measured: float
    stderr: float
    tolerance: Tolerance

    @property
    def score(self) -> float:
        """Deviation of measured from predicted in units of the tolerance (`Tolerance.score`)."""
        return self.tolerance.score(self.predicted, self.measured)

    @property
    def passed(self) -> bool:
        """Within tolerance: score <= 1."""
        return self.score <= 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "quantity": self.quantity,
            "predicted": _finite_or_none(self.predicted),
            "measured": _finite_or_none(self.measured),
            "stderr": _finite_or_none(self.stderr),
            "tolerance": self.tolerance.to_json(),
            "passed": self.passed,
        }


def _finite_or_none(x: float) -> float | None:
    """JSON has no inf/nan: map them to null."""
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Curve:
    """One line or point set of a figure; style "measured", "predicted" or "marker".

    yerr: optional error bars (e.g. the standard error across seeds), one per point.
    group: curves sharing a group are drawn in one colour (points and their fitted line);
    empty means one derived from the label (`ntkode.verify.report.curve_group`).
    """

    label: str
    x: list[float]
    y: list[float]
    style: str = "measured"
    yerr: list[float] | None = None
    group: str = ""


@dataclass(frozen=True)
class Figure:
    """Everything needed to draw a claim's figure, as plain data."""

    title: str
    xlabel: str
    ylabel: str
    curves: list[Curve]
    xscale: str = "linear"
    yscale: str = "log"


@dataclass
class Evidence:
    """What a measurement returns: checks, the figure, and notes (e.g. lambda_0, kernel gaps)."""

    checks: list[Check]
    figure: Figure
    notes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """A finished claim: its statement, the parameters it ran at, and the evidence."""

    name: str
    statement: str
    setting: str
    params: dict[str, Any]
    evidence: Evidence
    seconds: float

    @property
    def checks(self) -> list[Check]:
        return self.evidence.checks

    @property
    def passed(self) -> bool:
        """Every check passed, and there was at least one: a claim that measured nothing fails."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def worst(self) -> Check | None:
        """The check that decides: the one furthest from its tolerance (None when nothing was measured)."""
        return max(self.checks, key=lambda c: c.score, default=None)

    def to_json(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "name": self.name,
            "statement": self.statement,
            "quantity": worst.quantity if worst else "(no measurement)",
            "predicted": _finite_or_none(worst.predicted) if worst else None,
            "measured": _finite_or_none(worst.measured) if worst else None,
            "tolerance": worst.tolerance.describe() if worst else "-",
            "passed": self.passed,
            "setting": self.setting,
            "seconds": round(self.seconds, 3),
            "params": self.params,
            "checks": [c.to_json() for c in self.checks],
            "notes": self.evidence.notes,
        }


Measure = Callable[[Mapping[str, Any], str], Evidence]


@dataclass(frozen=True)
class Prediction:
    """One rate check's predicted value and its tolerance, known before training."""

    label: str
    quantity: str
    value: float
    tolerance: Tolerance
    #: spectrum scales this prediction cannot detect (by derivation; the claim's doc says why)
    blind_to: tuple[float, ...] = ()

    def check(self, measured: float, stderr: float) -> Check:
        """The check that compares this prediction with a measurement."""
        return Check(self.label, self.quantity, self.value, measured, stderr, self.tolerance)


#: predict(params, scale): a claim's rate predictions with every kernel eigenvalue (of H-infinity
#: and of H(W_0)) multiplied by `scale`, hyper-parameters held at the values that run (tuned on
#: the unscaled spectrum); no training.
Predict = Callable[[Mapping[str, Any], float], list[Prediction]]


@dataclass(frozen=True)
class Claim:
    """A named theorem about the optimisers, checked by `measure` at per-setting defaults.

    The measurement's docstring is the claim's documentation (theorem, algorithm,
    theoretical guarantee, references, how it is measured, tolerance and why).
    `predict`, for claims with rate checks, gives those checks' predictions on a scaled
    spectrum: each must leave its tolerance when the spectrum moves by 10%
    (tests/test_verify_claims_sensitivity.py), so a check can fail if the kernel is wrong.
    """

    name: str
    statement: str
    measure: Measure
    defaults: Mapping[str, Mapping[str, Any]]
    predict: Predict | None = None

    @property
    def doc(self) -> str:
        return self.measure.__doc__ or ""

    def params(self, setting: str = "quick", **overrides: Any) -> dict[str, Any]:
        """The default parameters of `setting`, updated by `overrides` (unknown keys refused)."""
        if setting not in SETTINGS:
            raise NtkodeError(f"setting must be one of {', '.join(SETTINGS)}; got {setting!r}")
        params = dict(self.defaults[setting])
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            raise NtkodeError(f"claim {self.name!r} has no parameters {unknown}; known: {sorted(params)}")
        params.update(overrides)
        return params

    def run(self, setting: str = "quick", device: str = "auto", **overrides: Any) -> Outcome:
        """Measure the claim and return prediction and measurement together."""
        params = self.params(setting, **overrides)
        start = time.perf_counter()
        evidence = self.measure(params, device)
        return Outcome(self.name, self.statement, setting, params, evidence, time.perf_counter() - start)
