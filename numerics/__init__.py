"""ntkode.numerics: NTK kernels and batched finite-width training (CuPy or NumPy)."""
from .backend import get_xp
from .data import digits_data, load_data, mnist_data, paper_data, sphere_data, two_class_images
from .diagnostic import LazyDiagnostic, lazy_diagnostic
from .kernels import check_data, kernel_drift, kernel_spectrum, ntk_empirical, ntk_infinite
from .network import forward, init_network
from .result import SimulationResult
from .simulate import simulate
from .grid import load_grid, read_table, run_grid
from .sweep import sweep

__all__ = [
    "LazyDiagnostic", "SimulationResult", "check_data", "digits_data", "forward", "get_xp", "init_network",
    "kernel_drift", "kernel_spectrum", "lazy_diagnostic", "load_data", "load_grid", "mnist_data", "ntk_empirical",
    "ntk_infinite", "paper_data", "read_table", "run_grid", "simulate", "sphere_data", "sweep", "two_class_images",
]
