"""The sympy symbols every derivation shares, whatever the method (names match the CLI's JSON strings).

z: discrete characteristic variable; s: ODE characteristic exponent; lam: an NTK eigenvalue;
h: ODE step; t: ODE time; k: the step counter (1-based). Hyper-parameter symbols belong to each
method's declaration (`ntkode.declaration`).
"""
import sympy as sp

z, s = sp.symbols("z s")
lam, h, t = sp.symbols("lam h t", positive=True)
k = sp.Symbol("k", positive=True, integer=True)
lam_0, lam_max = sp.symbols("lam_0 lam_max", positive=True)

#: names a declaration may not use for its variables or hyper-parameters
RESERVED = {"z", "s", "lam", "h", "t", "k", "grad", "sqrt", "lam_0", "lam_max", "time", "pi"}
