"""`ntkode bench-simulate`: time the batched simulator against the loops a user would write.

Presets (NAG with beta_k = (k-1)/(k+r-1), r in {2, 4, 10}, lr = 1/lambda_max(H-inf)):
  cpu        n=64, d=32, widths 512,1024,2048,4096, 8 seeds, 500 steps; reference: a plain
             per-run NumPy W-space loop executing the declaration's statements, one run at a time.
  paper-gpu  n=600, d=784, widths 1000..8000 step 1000, 10 seeds, 200 steps, float64; references:
             the PyTorch loop of the paper's experiments when torch imports, and the GEMM floor.
Data: `sphere_data(n, d, seed=0)`, unit inputs uniform on S^(d-1) and N(0, 1) labels.
The GEMM floor is the time of the bare batched GEMMs the simulator performs, same shapes and count.
All rows are measured in one run, so their ratios are comparable; the simulator records
||e_k|| and the projections every step (weight movement off).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ntkode.numerics import init_network, ntk_infinite, simulate, sphere_data
from ntkode.numerics.backend import get_xp
from ntkode.numerics.network import forward
from ntkode.numerics.simulate import choose_space
from ntkode.declaration import GradOp, load_method
from ntkode.errors import NtkodeError
from ntkode.theory.statespace import combine

PRESETS = {
    "cpu": dict(n=64, d=32, widths=[512, 1024, 2048, 4096], seeds=8, steps=500, rs=[2.0, 4.0, 10.0], device="cpu"),
    "paper-gpu": dict(n=600, d=784, widths=list(range(1000, 8001, 1000)), seeds=10, steps=200, rs=[2.0, 4.0, 10.0],
                      device="gpu"),
}


def numpy_reference(X, y, m: int, seed: int, steps: int, setting: dict, method: str = "nag") -> np.ndarray:
    """One run written plainly in W-space with NumPy, the declaration's ops executed one by one with
    Python sums (what a user's loop over the method's statements does); ||e_k|| for k = 0..steps."""
    spec = load_method(method)
    values = spec.scalar_hyper(setting)
    args = [values[n] for n in spec.hyper_names]
    W0, a = init_network(m, X.shape[1], seed)
    env = {name: W0 if init else np.zeros_like(W0) for name, init in zip(spec.state_names, spec.initial)}
    err = np.empty(steps + 1)
    err[0] = np.linalg.norm(forward(W0, a, X) - y)
    for k in range(1, steps + 1):
        for op, fn, _ in spec.numeric_ops:
            coefs = fn(k, *args)
            if isinstance(op, GradOp):
                Y = combine(env, op.point, coefs[0])
                Z = Y @ X.T
                e = np.maximum(Z, 0).T @ a / np.sqrt(m) - y
                env[op.target] = ((a[:, None] * (Z >= 0)) * e) @ X / np.sqrt(m)
            else:
                new = [combine(env, combo, cs) for combo, cs in zip(op.values, coefs)]
                env.update(zip(op.targets, new))
        err[k] = np.linalg.norm(forward(env["W"], a, X) - y)
    return err


def torch_reference(X, y, widths, seeds: int, steps: int, settings: list[dict]) -> float | None:
    """Seconds for the paper's PyTorch loop (nn.Linear, SGD(nesterov=True) re-created each epoch
    with momentum (k-1)/(k+r-1), loss copied to the host every epoch), or None without torch/CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device("cuda")
    Xt = torch.tensor(X, dtype=torch.float64, device=dev)
    yt = torch.tensor(y, dtype=torch.float64, device=dev)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for m in widths:
        for setting in settings:
            for seed in range(seeds):
                torch.manual_seed(seed)
                hidden = torch.nn.Linear(X.shape[1], m, bias=False).to(dev, torch.float64)
                torch.nn.init.normal_(hidden.weight)
                signs = (torch.randint(0, 2, (m,), device=dev, dtype=torch.float64) * 2 - 1) / m**0.5
                for k in range(1, steps + 1):
                    beta = (k - 1) / (k + setting["r"] - 1)
                    opt = torch.optim.SGD(hidden.parameters(), lr=setting["lr"], momentum=beta, nesterov=True)
                    opt.zero_grad()
                    loss = 0.5 * ((torch.relu(hidden(Xt)) @ signs - yt) ** 2).sum()
                    loss.backward()
                    opt.step()
                    loss.item()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def gemm_floor(xp, n: int, d: int, widths, runs: int, steps: int) -> float:
    """Seconds for the bare float64 batched GEMMs the simulator performs (same shapes and count)."""
    space = choose_space(n, d)
    inner = n if space == "z" else d
    total = 0.0
    for m in widths:
        S = xp.ones((runs, m, n))
        M = xp.ones((runs, n, inner))
        T = xp.empty((runs, m, inner))
        per_step = 1 if space == "z" else 2
        _sync(xp)
        start = time.perf_counter()
        for _ in range(steps * per_step):
            xp.matmul(S, M, out=T)
        _sync(xp)
        total += time.perf_counter() - start
        del S, M, T
    return total


def _sync(xp) -> None:
    if xp is not np:
        xp.cuda.Stream.null.synchronize()


def handle(args: argparse.Namespace) -> int:
    p = dict(PRESETS[args.preset])
    if args.steps is not None:
        if args.steps < 1:
            raise NtkodeError(f"--steps must be a positive integer; got {args.steps}")
        p["steps"] = args.steps
    xp = get_xp(args.device or p["device"])
    X, y = sphere_data(p["n"], p["d"], seed=0)
    lr = 1.0 / np.linalg.eigvalsh(ntk_infinite(X))[-1]
    settings = [{"lr": lr, "r": r} for r in p["rs"]]
    runs = len(settings) * p["seeds"]
    kw = dict(device=args.device or p["device"], progress=False, movement=False)
    simulate("nag", X, y, [p["widths"][0]], 2, p["seeds"], settings, **kw)  # warm-up: compile, allocate
    _sync(xp)
    start = time.perf_counter()
    simulate("nag", X, y, p["widths"], p["steps"], p["seeds"], settings, **kw)
    _sync(xp)
    rows = {"batched simulate": time.perf_counter() - start}
    rows["GEMM floor"] = gemm_floor(xp, p["n"], p["d"], p["widths"], runs, p["steps"])
    if xp is np:
        start = time.perf_counter()
        for m in p["widths"]:
            for setting in settings:
                for seed in range(p["seeds"]):
                    numpy_reference(X, y, m, seed, p["steps"], setting)
        rows["per-run NumPy loop"] = time.perf_counter() - start
    torch_time = torch_reference(X, y, p["widths"], p["seeds"], p["steps"], settings) if xp is not np else None
    if torch_time is not None:
        rows["PyTorch loop"] = torch_time
    base = rows["batched simulate"]
    device = "cpu (NumPy)" if xp is np else f"gpu (CuPy, {xp.cuda.runtime.getDeviceProperties(0)['name'].decode()})"
    shape = (f"n={p['n']} d={p['d']} widths={p['widths'][0]}..{p['widths'][-1]} ({len(p['widths'])}) "
             f"runs/width={runs} steps={p['steps']} space={choose_space(p['n'], p['d'])}")
    if args.json:
        print(json.dumps({"preset": args.preset, "device": device, "shape": shape, "seconds": rows}))
        return 0
    print(f"bench-simulate {args.preset} on {device}: {shape}")
    print(f"{'':22s} {'seconds':>9s} {'x simulate':>11s}")
    for name, secs in rows.items():
        print(f"{name:22s} {secs:9.3f} {secs / base:11.2f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `bench-simulate` to the `ntkode` parser."""
    p = sub.add_parser("bench-simulate", help="time the batched simulator against plain loops",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default=None, help="override the preset's device")
    p.add_argument("--steps", type=int, default=None, help="override the preset's step count")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=handle)
