"""ntkode.theory: symbolic rates of GD, heavy ball and Nesterov in terms of NTK eigenvalues."""
from .derive import Derivation, OdeDerivation, derive, derive_ode
from .discrete import RateResult, jury_conditions, rate_function, roots_function, spectral_radius
from ntkode.errors import NtkodeError
from .methods import HYPERS, METHODS, Hyper, Method, get_method
from .nesterov import nag_discrete_prediction, nag_envelope, nag_ode_dsolve, nag_ode_solution
from .ode import OdeRateResult, ode_rate
from .optimal import optimal

__all__ = [
    "Derivation", "HYPERS", "Hyper", "METHODS", "Method", "NtkodeError", "OdeDerivation", "OdeRateResult",
    "RateResult", "derive", "derive_ode", "get_method", "jury_conditions", "nag_discrete_prediction",
    "nag_envelope", "nag_ode_dsolve", "nag_ode_solution", "ode_rate", "optimal", "rate_function",
    "roots_function", "spectral_radius",
]
