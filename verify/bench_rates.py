"""`ntkode bench-rates`: (eigenvalue, eta, beta) heavy-ball triples per second on the CPU.

Compares the compiled rate (`ntkode.theory.rate_function("hb")`) with a naive reference
measured in the same run: batched numpy.linalg.eigvals of the 2x2 companion matrices.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ntkode.numerics.backend import memory_budget
from ntkode.theory import NtkodeError, rate_function

#: host bytes per timed triple: its three inputs, the rate, the compiled expression's temporaries and the
#: reference's 2x2 companion matrices and complex eigenvalues (tracemalloc peak 112 B for hb at n = 2e5, rounded up)
BYTES_PER_TRIPLE = 128


def _triples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(1e-3, 1.0, n), rng.uniform(1e-3, 2.0, n), rng.uniform(0.0, 0.99, n)


def companion_radius(lam: np.ndarray, eta: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """max |eig| of [[1 + beta - eta lam, -beta], [1, 0]], batched."""
    comp = np.zeros(lam.shape + (2, 2))
    comp[..., 0, 0] = 1 + beta - eta * lam
    comp[..., 0, 1] = -beta
    comp[..., 1, 0] = 1
    return np.abs(np.linalg.eigvals(comp)).max(axis=-1)


def _best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(args: argparse.Namespace) -> int:
    """Time the compiled HB rate and the companion-matrix reference on the same triples."""
    for flag, value in (("--n", args.n), ("--n-reference", args.n_reference), ("--repeats", args.repeats)):
        if value < 1:
            raise NtkodeError(f"{flag} must be a positive integer; got {value}")
    if args.seed < 0:
        raise NtkodeError(f"--seed must be a non-negative integer; got {args.seed}")
    need, free = BYTES_PER_TRIPLE * args.n, memory_budget(np)
    if need > free:
        raise NtkodeError(f"--n {args.n} needs {need / 2**30:.3g} GiB but only {free / 2**30:.3g} GiB is available; "
                          f"give at most --n {free // BYTES_PER_TRIPLE}")
    lam, eta, beta = _triples(args.n, args.seed)
    rate = rate_function("hb")
    fast = rate(lam, eta, beta)
    m = min(args.n, args.n_reference)
    ref = companion_radius(lam[:m], eta[:m], beta[:m])
    err = float(np.max(np.abs(fast[:m] - ref)))
    t_fast = _best_time(lambda: rate(lam, eta, beta), args.repeats)
    t_ref = _best_time(lambda: companion_radius(lam[:m], eta[:m], beta[:m]), args.repeats)
    fast_rate, ref_rate = args.n / t_fast, m / t_ref
    print(f"compiled hb rate: {fast_rate:.3g} triples/s ({args.n} triples, best of {args.repeats})")
    print(f"reference (batched companion eigvals): {ref_rate:.3g} triples/s ({m} triples)")
    print(f"speed-up {fast_rate / ref_rate:.1f}x; max |difference| {err:.2e}; target >= 1e7/s: "
          f"{'met' if fast_rate >= 1e7 else 'NOT met'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `bench-rates` to the `ntkode` parser."""
    p = sub.add_parser(
        "bench-rates", help="heavy-ball rate evaluations per second on the CPU",
        description="Times ntkode's compiled heavy-ball spectral radius on random (eigenvalue, lr, momentum) "
        "triples against a reference measured in the same run (batched numpy.linalg.eigvals of the 2x2 "
        "companion matrices), and prints both speeds, the speed-up and their largest difference.")
    p.add_argument("--n", type=int, default=2_000_000, help="triples in the timed batch (default 2000000)")
    p.add_argument("--n-reference", type=int, default=200_000, help="triples for the reference (default 200000)")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats, the best is kept (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random triples (default 0)")
    p.set_defaults(func=run)
