"""ntkode.theory: symbolic and compiled rates of any declared linear first-order method, in terms of NTK eigenvalues."""
from .derive import Derivation, OdeDerivation, derive, derive_ode
from .discrete import RateResult, jury_conditions, rate_function, roots_function, spectral_radius
from ntkode.errors import NtkodeError
from .methods import METHODS, Hyper, Method, get_method
from .nesterov import nag_discrete_prediction, nag_envelope, nag_ode_dsolve, nag_ode_solution
from .ode import OdeRateResult, ode_rate
from .optimal import named_tuning, numeric_optimum, optimal
from .statespace import iterate

__all__ = [
    "Derivation", "Hyper", "METHODS", "Method", "NtkodeError", "OdeDerivation", "OdeRateResult",
    "RateResult", "derive", "derive_ode", "get_method", "jury_conditions", "nag_discrete_prediction",
    "iterate", "nag_envelope", "nag_ode_dsolve", "nag_ode_solution", "named_tuning", "numeric_optimum", "ode_rate",
    "optimal", "rate_function",
    "roots_function", "spectral_radius",
]
