"""Dask executors for sweeps (the optional extra `ntkode[distributed]`).

    local[:N]        N worker processes on this machine (a dask.distributed SpecCluster of Nannies,
                     what LocalCluster builds, but with an environment per worker): each worker is
                     pinned to one GPU (CUDA_VISIBLE_DEVICES) when GPUs are visible, N defaulting to
                     their number; otherwise to cpu_count // N BLAS threads, N defaulting to cpu_count.
    tcp://HOST:PORT  an existing scheduler; its workers must see the same output folder.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import Iterator

from ntkode.errors import NtkodeError

EXTRA = 'pip install "ntkode[distributed]"'
#: the BLAS/OpenMP thread variables set in each CPU worker
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_scheduler(spec: str) -> tuple[str, int | str | None]:
    """("local", N or None) for 'local' / 'local:N'; ("tcp", address) for 'tcp://HOST:PORT'."""
    local = re.fullmatch(r"local(?::(\d+))?", spec)
    if local:
        n = local.group(1)
        if n is not None and int(n) < 1:
            raise NtkodeError(f"scheduler local:N needs N >= 1; got {spec!r}", param="scheduler")
        return "local", None if n is None else int(n)
    if re.fullmatch(r"tcp://[^\s:/]+:\d{1,5}", spec):
        return "tcp", spec
    raise NtkodeError(f"scheduler must be local, local:N or tcp://HOST:PORT; got {spec!r}", param="scheduler")


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else CuPy's device count."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids = [part.strip() for part in listed.split(",") if part.strip()]
        return [] if not ids or ids[0].startswith("-") else ids
    try:
        import cupy

        return [str(i) for i in range(cupy.cuda.runtime.getDeviceCount())]
    except Exception:  # no CuPy, no driver, no device: no GPU for the workers
        return []


def worker_environments(n: int | None, gpus: list[str], cpus: int) -> list[dict[str, str]]:
    """Per worker, its environment: one GPU each (round robin) when GPUs are given, N defaulting
    to their number; otherwise no GPU and cpus // N BLAS threads each, N defaulting to cpus."""
    if gpus:
        return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(n or len(gpus))]
    n = n or cpus
    threads = str(max(1, cpus // n))
    return [{"CUDA_VISIBLE_DEVICES": "", **{name: threads for name in THREAD_VARIABLES}} for _ in range(n)]


def _distributed():
    try:
        import distributed
    except ImportError:
        raise NtkodeError(f"scheduler needs Dask: {EXTRA}", param="scheduler") from None
    return distributed


def local_cluster(n: int | None = None, quiet: bool = True):
    """A SpecCluster of len(worker_environments(...)) Nanny processes, one task at a time each."""
    distributed = _distributed()
    envs = worker_environments(n, visible_gpus(), os.cpu_count() or 1)
    level = logging.CRITICAL if quiet else logging.WARNING  # quiet: task errors reach the caller, not the log
    workers = {f"ntkode-{i}": {"cls": distributed.Nanny, "options": {"nthreads": 1, "env": env, "silence_logs": level, "dashboard": False}}
               for i, env in enumerate(envs)}
    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard": False, "dashboard_address": ":0"}}
    return distributed.SpecCluster(workers=workers, scheduler=scheduler, silence_logs=level)


@contextlib.contextmanager
def scheduler_client(spec: str | None, quiet: bool = True, timeout: str = "10s") -> Iterator[object | None]:
    """A dask Client for a --scheduler value (closed afterwards, with its cluster), or None for None.
    `timeout`: how long to try reaching a tcp:// scheduler."""
    if spec is None:
        yield None
        return
    kind, value = parse_scheduler(spec)
    distributed = _distributed()
    if kind == "local":
        with local_cluster(value, quiet) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(value, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise NtkodeError(f"scheduler {value}: cannot connect ({err})", param="scheduler") from None
    with client:
        yield client
