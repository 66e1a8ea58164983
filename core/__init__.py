"""ntkode: convergence rates of linear first-order methods in the NTK regime, derived and checked.

Subpackages: `ntkode.theory` (symbolic and compiled rates), `ntkode.numerics` (kernels and
batched finite-width training), `ntkode.verify` (claims, reports, the `ntkode` command line).
This top level holds what every layer shares: the version and the one error type.
"""
from .errors import NtkodeError

__version__ = "0.2.0"

__all__ = ["NtkodeError", "__version__"]
