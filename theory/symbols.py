"""The sympy symbols every derivation shares (names match the CLI's JSON strings).

z: discrete characteristic variable; s: ODE characteristic exponent; lam: an NTK
eigenvalue; eta: learning rate; beta, beta2: momentum coefficients; gamma: ODE
damping; r: Nesterov's momentum parameter; h: ODE step (sqrt(eta) for momentum
methods, eta for GD); t: ODE time; k: step index.
"""
import sympy as sp

z, s = sp.symbols("z s")
lam, eta, h, t, gamma, r = sp.symbols("lam eta h t gamma r", positive=True)
beta, beta2 = sp.symbols("beta beta2", real=True)
k = sp.Symbol("k", positive=True, integer=True)

#: name used in strings and JSON -> symbol
BY_NAME = {str(x): x for x in (z, s, lam, eta, h, t, gamma, r, beta, beta2, k)}
