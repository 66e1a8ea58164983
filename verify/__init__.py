"""ntkode.verify: theory against simulation, reports and the `ntkode` command line."""
from .claim import Claim, Outcome
from .claims import CLAIMS
from .fit import Fit, fit_linear_rate, fit_loglog_slope, fit_power_law, upper_envelope
from .runner import Report, run

__all__ = [
    "CLAIMS", "Claim", "Fit", "Outcome", "Report", "fit_linear_rate", "fit_loglog_slope", "fit_power_law",
    "run", "upper_envelope",
]
