"""The seed notebook's PyTorch training and ntkode's preset="seed" are the same computation.

Skipped without torch (pip install torch; CPU wheel) or without the mnist extra. The seed's network
(nn.Linear(d, m) with bias, ReLU, nn.Linear(m, 1, bias=False); W ~ N(0, 1/m^2), a ~ U(-1, 1), PyTorch's
default bias) is trained in float64 with nn.MSELoss and torch.optim.SGD exactly as the notebook does
(momentum reset per epoch for its Nesterov runs), and ntkode starts from the same weights.

Tolerance 1e-10 relative on every recorded loss, fixed before running: both sides do the same
float64 arithmetic up to summation order (~1e-16 per operation); over 120 steps of a convergent
run that stays orders of magnitude below 1e-10, while any convention slip (the loss's factor 2,
the second layer's factor m, the bias, the buffer start-up) changes the losses by O(1e-3) or more.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch equivalence needs torch (pip install torch)")

from ntkode.errors import NtkodeError  # noqa: E402
from ntkode.numerics import simulate  # noqa: E402
from ntkode.numerics.data import mnist_data  # noqa: E402

METHODS_DIR = Path(__file__).resolve().parent.parent / "core" / "methods"
N, WIDTH, STEPS, LR, TORCH_SEED = 60, 400, 120, 2e-3, 218
RTOL = 1e-10


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    try:
        return mnist_data(N, seed=0)
    except NtkodeError as err:
        pytest.skip(str(err))


def seed_net(d: int, m: int) -> torch.nn.Sequential:
    """The seed notebook's TwoLayerMLP, in float64."""
    torch.manual_seed(TORCH_SEED)
    net = torch.nn.Sequential(torch.nn.Linear(d, m), torch.nn.ReLU(), torch.nn.Linear(m, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.normal_(0.0, 1.0 / m)
        net[2].weight.uniform_(-1.0, 1.0)
    return net


def weights(net: torch.nn.Sequential) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, b, a) of the net as NumPy arrays (copies)."""
    return (net[0].weight.detach().numpy().copy(), net[0].bias.detach().numpy().copy(),
            net[2].weight.detach().numpy()[0].copy())


class HigherSGD(torch.optim.Optimizer):
    """The seed's two-coefficient optimiser as its notebook describes it: p, q roots of z^2 = beta z + beta2,
    u_k = q u_{k-1} + g_k with u_1 = 0, v_k = p v_{k-1} + u_k with v_1 = g_1, step -lr v_k."""

    def __init__(self, params, lr: float, momentum: float, momentum2: float):
        super().__init__(params, {"lr": lr, "momentum": momentum, "momentum2": momentum2})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            root = math.sqrt(group["momentum"] ** 2 + 4 * group["momentum2"])
            p, q = (group["momentum"] + root) / 2, (group["momentum"] - root) / 2
            for param in group["params"]:
                state = self.state[param]
                if "v" not in state:
                    state["u"], state["v"] = torch.zeros_like(param.grad), param.grad.clone()
                else:
                    state["u"].mul_(q).add_(param.grad)
                    state["v"].mul_(p).add_(state["u"])
                param.add_(state["v"], alpha=-group["lr"])


def train_torch(net, optimizer, X, y, steps: int, nesterov_r: float | None = None) -> np.ndarray:
    """The notebook's loop: per epoch (one full batch) the momentum reset for Nesterov, nn.MSELoss, step.
    Returns the loss at p_0 .. p_steps."""
    Xt, yt = torch.tensor(X), torch.tensor(y).view(-1, 1)
    criterion = torch.nn.MSELoss()
    losses = []
    for epoch in range(1, steps + 1):
        if nesterov_r is not None:
            for group in optimizer.param_groups:
                group["momentum"] = (epoch - 1) / (epoch + nesterov_r - 1)
        optimizer.zero_grad()
        loss = criterion(net(Xt), yt)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(criterion(net(Xt), yt).item())
    return np.array(losses)


def train_ntkode(method: str, hyper: dict, X, y, initial) -> np.ndarray:
    """ntkode's preset="seed" from the same initial weights; the losses ||e_k||^2 / n."""
    result = simulate(method, X, y, [WIDTH], STEPS, [0], hyper, preset="seed", init=lambda m, s: initial,
                      progress=False, movement=False, projections=False)
    return result.error_norm[0, 0, 0] ** 2 / X.shape[0]


CASES = {
    "gd": ("gd", {"lr": LR}, lambda ps: torch.optim.SGD(ps, lr=LR), None),
    "hb": ("hb", {"lr": LR, "momentum": 0.5}, lambda ps: torch.optim.SGD(ps, lr=LR, momentum=0.5), None),
    "seed-nag": ("seed-nag", {"lr": LR, "r": 3.0},
                 lambda ps: torch.optim.SGD(ps, lr=LR, momentum=3.0, nesterov=True), 3.0),
    "seed-mom2": ("seed-mom2", {"lr": LR, "momentum": 0.5, "momentum2": 0.2},
                  lambda ps: HigherSGD(ps, lr=LR, momentum=0.5, momentum2=0.2), None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_seed_torch_losses_match(case: str, data) -> None:
    X, y = data
    method, hyper, make_optimizer, nesterov_r = CASES[case]
    net = seed_net(X.shape[1], WIDTH)
    initial = weights(net)
    theirs = train_torch(net, make_optimizer(net.parameters()), X, y, STEPS, nesterov_r)
    ours = train_ntkode(method, hyper, X, y, initial)
    assert theirs[-1] < 0.5 * theirs[0], "the comparison run should train (a diverged run compares nothing)"
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)


def run_declaration(path: Path, grad, W0: np.ndarray, steps: int, hyper: dict) -> list[np.ndarray]:
    """W_0 .. W_steps by executing a declaration's step lines literally (Python arithmetic, Min = min)."""
    spec = tomllib.loads(path.read_text())
    state = {name: (W0.copy() if init == "W0" else np.zeros_like(W0)) for name, init in spec["state"].items()}
    out = [state["W"].copy()]
    for k in range(1, steps + 1):
        scope = {**hyper, **state, "k": k, "grad": grad, "Min": min, "sqrt": math.sqrt}
        for line in spec["step"]:
            exec(line, {"__builtins__": {}}, scope)
        state = {name: scope[name] for name in state}
        out.append(state["W"].copy())
    return out


def run_torch_quadratic(make_optimizer, A: np.ndarray, b: np.ndarray, W0: np.ndarray, steps: int,
                        nesterov_r: float | None) -> list[np.ndarray]:
    """W_0 .. W_steps of a torch optimiser on L(W) = 1/2 W.A W - b.W."""
    W = torch.tensor(W0.copy(), requires_grad=True)
    At, bt = torch.tensor(A), torch.tensor(b)
    optimizer = make_optimizer([W])
    out = [W0.copy()]
    for k in range(1, steps + 1):
        if nesterov_r is not None:
            for group in optimizer.param_groups:
                group["momentum"] = (k - 1) / (k + nesterov_r - 1)
        optimizer.zero_grad()
        (0.5 * W @ At @ W - bt @ W).backward()
        optimizer.step()
        out.append(W.detach().numpy().copy())
    return out


@pytest.mark.parametrize("name", ["seed-nag", "seed-mom2"])
def test_declarations_are_the_seed_optimisers(name: str) -> None:
    """Each shipped declaration, executed line by line, is the seed's torch optimiser on a quadratic,
    to 1e-12 relative over 60 steps (float64; the iterates stay O(1))."""
    rng = np.random.default_rng(3)
    Q = rng.standard_normal((5, 5))
    A, b, W0 = Q @ Q.T / 5 + 0.1 * np.eye(5), rng.standard_normal(5), rng.standard_normal(5)
    lr = 0.5 / np.linalg.eigvalsh(A)[-1]
    if name == "seed-nag":
        hyper, r = {"eta": lr, "r": 3.0}, 3.0
        make = (lambda ps: torch.optim.SGD(ps, lr=lr, momentum=3.0, nesterov=True))
    else:
        hyper, make, r = ({"eta": lr, "beta": 0.5, "beta2": 0.2},
                          (lambda ps: HigherSGD(ps, lr=lr, momentum=0.5, momentum2=0.2)), None)
    ours = run_declaration(METHODS_DIR / f"{name}.toml", lambda W: A @ W - b, W0, 60, hyper)
    theirs = run_torch_quadratic(make, A, b, W0, 60, r)
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-12, atol=1e-12)
