"""Where the work runs: an embedded local cluster sized to the machine, or an existing one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import Sam2TrackError


class ClusterError(Sam2TrackError):
    """dask.distributed is missing, the scheduler cannot be reached, or a cluster option
    (``--workers``, ``--retries``) means nothing."""


def require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterError(
            "batch and segment runs need dask.distributed; install napari-sam2-track[distributed]"
        ) from None


def gpu_count() -> int:
    """CUDA devices visible here (0 without torch or CUDA)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover
        return 0


def cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass
class ClusterPlan:
    """The local cluster to start: workers, and torch threads per worker (``None``: default)."""

    n_workers: int
    gpus: int
    torch_threads: int | None


def plan_local_cluster(n_workers: int | None = None) -> ClusterPlan:
    """One worker per GPU (at most ``n_workers``); on CPU, ``n_workers`` (default 1) sharing
    the cores."""
    gpus = gpu_count()
    if gpus:
        n = min(gpus, n_workers or gpus)
        return ClusterPlan(n, n, None)
    n = max(1, n_workers or 1)
    return ClusterPlan(n, 0, max(1, cpu_count() // n))


#: dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off glibc's
#: dynamic mmap threshold: every large tensor is then mapped and unmapped again, and SAM 2 on
#: the CPU ran 1.7-2x slower at 256 px with it (``docs/benchmarks.md``).
#: Embedded clusters keep glibc's default (``None`` removes the variable).
WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def start_local_cluster(plan: ClusterPlan):
    """A ``LocalCluster`` of worker processes with one task slot each; GPU workers are pinned
    to their device through ``CUDA_VISIBLE_DEVICES``."""
    import dask

    with dask.config.set(WORKER_ENVIRON):
        return _start_local_cluster(plan)


def _start_local_cluster(plan: ClusterPlan):
    from distributed import LocalCluster, Nanny

    if not plan.gpus:
        return LocalCluster(
            n_workers=plan.n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            worker_dashboard_address=None,
        )
    cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True,
                           dashboard_address=None, worker_dashboard_address=None)
    for i in range(plan.gpus):
        cluster.worker_spec[f"gpu{i}"] = {
            "cls": Nanny,
            "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": str(i)}, "name": f"gpu{i}"},
        }
    cluster.sync(cluster._correct_state)
    return cluster


@contextlib.contextmanager
def connect(
    client=None, scheduler: str | None = None, n_workers: int | None = None
) -> Iterator[tuple[object, int | None]]:
    """Yield ``(client, torch_threads)``: the given client, one connected to ``scheduler``, or
    one of an embedded local cluster that is closed afterwards."""
    require_distributed()
    from distributed import Client

    if client is not None:
        yield client, None
        return
    if scheduler is not None:
        try:
            remote = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ClusterError(f"cannot reach the scheduler at {scheduler}: {exc}") from None
        with remote:
            yield remote, None
        return
    plan = plan_local_cluster(n_workers)
    with start_local_cluster(plan) as cluster, Client(cluster) as local:
        local.wait_for_workers(plan.n_workers)
        yield local, plan.torch_threads
