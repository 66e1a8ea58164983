"""Guards against a wrong built-in declaration that theory and simulation would both follow (issue 13).

1. Each shipped time-varying or start-up method's per-step characteristic polynomial equals a closed form
   written here from the literature (gd, hb, nag-sc, mom2 and nag's limit are in tests/test_theory_discrete.py;
   qhm, triple momentum and extragradient in tests/test_library.py):
   - nag (Nesterov 1983; Su, Boyd & Candes, JMLR 2016, eq. 2 with beta_k = (k-1)/(k+r-1)): at step k,
     z^2 - (1 + beta_k)(1 - eta lam) z + beta_k (1 - eta lam), NAG-SC's polynomial with beta = beta_k;
   - seed-nag (PyTorch's SGD(nesterov=True) with momentum mu_k = (k-1)/(k+r-1); Sutskever, Martens, Dahl &
     Hinton, ICML 2013, sec. 3: the same NAG in shifted variables): for k >= 2 nag's polynomial at beta_k = mu_k;
     at k = 1 PyTorch keeps no buffer, a GD step, z (z - (1 - eta lam));
   - seed-mom2 (the seed notebook's Higher_SGD, two buffers with ratios p, q, p + q = beta, p q = -beta2): for
     k >= 2 mom2's z^3 - (1 + beta - eta lam) z^2 + (beta - beta2) z + beta2 (Bu, Xu & Chen, AISTATS 2021);
     at k = 1 only the v buffer moves, z (z^2 - (1 + p - eta lam) z + p).
2. hb and nag-sc trained by ntkode's engine on a tiny two-layer ReLU net follow torch.optim.SGD(momentum) and
   SGD(momentum, nesterov=True) step by step (skipped without torch). PyTorch's Nesterov parameter p_k is the
   look-ahead point Y_{k+1} = W_k + beta (W_k - W_{k-1}); with its buffer b_k, W_k = p_k + lr beta b_k
   (Sutskever et al. 2013, sec. 3.5; docs/theory.md#pytorch), which is where the error is compared.

Tolerance 1e-10 relative on every step's ||e_k|| and on the final W, fixed before running: both sides do the
same float64 arithmetic up to summation order (~1e-16 per operation, a few hundred operations per entry over
40 contracting steps), while a wrong declaration (heavy ball with a look-ahead, a missing momentum term)
changes the trajectory at O(lr beta) per step; test_torch_tells_hb_from_nag_sc shows the gap is > 1e-3.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from ntkode.declaration import load_method
from ntkode.numerics import simulate, sphere_data
from ntkode.symbols import k as K, lam as LAM
from ntkode.theory import derive
from ntkode.theory.discrete import rate_polynomial

Z = sp.Symbol("z")
RTOL = 1e-10


def per_step_polynomial(method: str, k: int) -> tuple[sp.Expr, dict[str, sp.Symbol]]:
    """derive(method).polynomial at step k, and the method's hyper-parameter symbols by name."""
    m = load_method(method)
    return sp.expand(derive(method).polynomial.subs(K, k)), {hp.name: hp.symbol for hp in m.hyper}


def nag_sc_literature(beta, eta, lam) -> sp.Expr:
    return Z**2 - (1 + beta) * (1 - eta * lam) * Z + beta * (1 - eta * lam)


@pytest.mark.parametrize("method", ["nag", "seed-nag"])
@pytest.mark.parametrize("k", [1, 2, 3, 7, 40])
def test_nesterov_per_step_polynomial_equals_literature(method, k):
    poly, s = per_step_polynomial(method, k)
    eta, r = s["eta"], s["r"]
    beta_k = sp.Integer(k - 1) / (k + r - 1)
    want = nag_sc_literature(beta_k, eta, LAM)
    if method == "seed-nag" and k == 1:
        want = Z * (Z - (1 - eta * LAM))  # no momentum buffer yet: a GD step (same as nag at beta_1 = 0 times z)
    assert sp.simplify(poly - sp.expand(want)) == 0


@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_seed_mom2_per_step_polynomial_equals_literature(k):
    poly, s = per_step_polynomial("seed-mom2", k)
    eta, beta, beta2 = s["eta"], s["beta"], s["beta2"]
    if k == 1:
        p = (beta + sp.sqrt(beta**2 + 4 * beta2)) / 2
        want = Z * (Z**2 - (1 + p - eta * LAM) * Z + p)
    else:
        want = Z**3 - (1 + beta - eta * LAM) * Z**2 + (beta - beta2) * Z + beta2
    assert sp.simplify(poly - sp.expand(want)) == 0


@pytest.mark.parametrize("method", ["seed-nag", "seed-mom2"])
def test_rate_polynomial_is_the_literature_limit(method):
    """The polynomial the rates use (k -> infinity): seed-nag's z^2 - 2(1 - eta lam) z + (1 - eta lam)
    (beta_k -> 1), seed-mom2's mom2 polynomial."""
    s = {hp.name: hp.symbol for hp in load_method(method).hyper}
    if method == "seed-nag":
        want = nag_sc_literature(1, s["eta"], LAM)
    else:
        want = Z**3 - (1 + s["beta"] - s["eta"] * LAM) * Z**2 + (s["beta"] - s["beta2"]) * Z + s["beta2"]
    assert sp.simplify(rate_polynomial(method) - sp.expand(want)) == 0


# -- the engine's trajectories against torch.optim.SGD -------------------------------------------------------
N, D, WIDTH, STEPS, LR, BETA = 6, 4, 16, 40, 0.3, 0.6


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="the PyTorch trajectory guard needs torch (pip install torch)")


@pytest.fixture(scope="module")
def tiny(torch):
    """Data on the sphere and an initial net drawn by torch (W ~ N(0, I), a = +-1), float64."""
    X, y = sphere_data(N, D, seed=1)
    gen = torch.Generator().manual_seed(5)
    W0 = torch.randn(WIDTH, D, generator=gen, dtype=torch.float64).numpy()
    a0 = (2.0 * torch.randint(0, 2, (WIDTH,), generator=gen) - 1.0).double().numpy()
    return X, y, W0, a0


def torch_trajectory(torch, X, y, W0, a0, nesterov: bool, train_a: bool, steps: int = STEPS):
    """||f(W_k) - y|| for k = 0..steps and the final (W, a) of torch.optim.SGD(lr, momentum, nesterov) on
    L = 1/2 ||f - y||^2, f(x) = m^{-1/2} sum_r a_r relu(w_r.x); for Nesterov, W_k = p_k + lr beta b_k."""
    W = torch.tensor(W0.copy(), requires_grad=True)
    a = torch.tensor(a0.copy(), requires_grad=train_a)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    params = [W, a] if train_a else [W]
    opt = torch.optim.SGD(params, lr=LR, momentum=BETA, nesterov=nesterov)

    def net(Wv, av):
        return torch.relu(Xt @ Wv.T) @ av / WIDTH**0.5

    def iterate_point():
        """(W_k, a_k) in ntkode's variables: the parameters, shifted back from the look-ahead for Nesterov."""
        if not nesterov or not opt.state:
            return W.detach(), a.detach()
        back = [p.detach() + LR * BETA * opt.state[p]["momentum_buffer"] for p in params]
        return back[0], back[1] if train_a else a.detach()

    norms = []
    for _ in range(steps):
        with torch.no_grad():
            norms.append(float(torch.linalg.norm(net(*iterate_point()) - yt)))
        opt.zero_grad()
        (0.5 * ((net(W, a) - yt) ** 2).sum()).backward()
        opt.step()
    with torch.no_grad():
        W_end, a_end = iterate_point()
        norms.append(float(torch.linalg.norm(net(W_end, a_end) - yt)))
    return np.array(norms), W_end.numpy().copy(), a_end.numpy().copy()


def ntkode_trajectory(method: str, X, y, W0, a0, space: str, train: str):
    result = simulate(method, X, y, [WIDTH], STEPS, [0], {"lr": LR, "momentum": BETA}, train=train, space=space,
                      init=lambda m, s: (W0, a0), keep_weights=True, progress=False, movement=False,
                      projections=False)
    return result.error_norm[0, 0, 0], result.final_W[0][0, 0], result.final_a[0][0, 0]


@pytest.mark.parametrize("train", ["W", "both"])
@pytest.mark.parametrize("space", ["z", "w"])
@pytest.mark.parametrize("method, nesterov", [("hb", False), ("nag-sc", True)])
def test_builtin_trajectory_equals_torch_sgd(method, nesterov, space, train, torch, tiny):
    X, y, W0, a0 = tiny
    theirs, W_t, a_t = torch_trajectory(torch, X, y, W0, a0, nesterov, train == "both")
    ours, W_o, a_o = ntkode_trajectory(method, X, y, W0, a0, space, train)
    assert theirs[-1] < 0.2 * theirs[0], "the comparison run should train (a diverged run compares nothing)"
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)
    np.testing.assert_allclose(W_o, W_t, rtol=RTOL, atol=RTOL * np.abs(W_t).max())
    np.testing.assert_allclose(a_o, a_t, rtol=RTOL, atol=0)


def test_torch_tells_hb_from_nag_sc(torch, tiny):
    """The guard discriminates: heavy ball's and Nesterov's trajectories differ far beyond the tolerance."""
    X, y, W0, a0 = tiny
    hb, _, _ = torch_trajectory(torch, X, y, W0, a0, nesterov=False, train_a=False)
    nag, _, _ = ntkode_trajectory("nag-sc", X, y, W0, a0, "z", "W")
    assert np.max(np.abs(hb - nag) / hb) > 1e-3
