"""ntkode.verify: theory against simulation, reports and the `ntkode` command line.

Public names are imported from their modules on first use (PEP 562), so the command
line starts without loading the claims, the simulator or matplotlib it does not need.
"""
from importlib import import_module

_HOMES = {
    "CLAIMS": "claims", "Claim": "claim", "Outcome": "claim", "Fit": "fit", "fit_linear_rate": "fit",
    "fit_loglog_slope": "fit", "fit_power_law": "fit", "upper_envelope": "fit", "Report": "runner", "run": "runner",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    """The public object `name`, imported from its module on first access."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)


def __dir__() -> list[str]:
    """Module attributes including the lazily imported public names (for completion)."""
    return sorted(set(globals()) | set(_HOMES))
