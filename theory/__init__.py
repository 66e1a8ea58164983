"""ntkode.theory: symbolic rates of GD, heavy ball and Nesterov in terms of NTK eigenvalues."""
from .errors import NtkodeError
from .methods import HYPERS, METHODS, Hyper, Method, get_method

__all__ = ["HYPERS", "METHODS", "Hyper", "Method", "NtkodeError", "get_method"]
