"""Time `ntkode verify` claims with BLAS limited to one thread (the default) and unlimited.

Not collected by pytest. Usage: python tests/mutation/time_verify.py CLAIMS [--burn K]
--burn K starts K busy-loop processes for the duration (a loaded machine) and stops them.
Prints wall and CPU (user+sys of this process and its children) seconds per mode.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

from ntkode.verify import runner


def burn() -> None:
    """Spin forever (the CPU burner; terminated by the parent)."""
    while True:
        pass


def timed(claims: str, threads: int | None) -> tuple[float, float, bool]:
    runner.CLAIM_BLAS_THREADS = threads
    wall, cpu = time.perf_counter(), os.times()
    report = runner.run(claims, device="cpu", progress=False)
    end = os.times()
    used = (end.user - cpu.user) + (end.system - cpu.system)
    return time.perf_counter() - wall, used, report.passed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("claims")
    parser.add_argument("--burn", type=int, default=0)
    args = parser.parse_args()
    burners = [mp.Process(target=burn, daemon=True) for _ in range(args.burn)]
    for p in burners:
        p.start()
    try:
        for label, threads in (("blas=1", 1), ("blas=default", None)):
            wall, cpu, passed = timed(args.claims, threads)
            print(f"{label:13s} burners={args.burn} wall {wall:7.1f} s  cpu {cpu:7.1f} s  passed={passed}", flush=True)
    finally:
        for p in burners:
            p.terminate()
            p.join()


if __name__ == "__main__":
    main()
