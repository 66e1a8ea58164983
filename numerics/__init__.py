"""ntkode.numerics: NTK kernels and batched finite-width training (CuPy or NumPy)."""
