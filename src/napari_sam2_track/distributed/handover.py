"""Handing a project lock over from a dask worker that is gone, on any host.

The project lock (:mod:`napari_sam2_track.project.lock`) can tell a dead writer from a live one
only on its own host. A writer running as a dask task also records its worker's address and its
scheduler's. When that worker dies, wherever it ran, its scheduler drops it from the cluster and
reschedules its task; the retry may land on another machine. Before tracking, the retry (or the
client of a segmented run) asks the scheduler: if the lock names a worker of *this* scheduler
that the scheduler no longer lists, the lock is taken over. A lock whose worker is still listed,
or that was taken under another scheduler (or outside dask), is respected as before and the
writer is refused with the usual one-line error.

A worker lost while it was still *creating* the project leaves a staging folder beside it
(``.NAME.incomplete-…``, see :mod:`napari_sam2_track.project.placement`) whose lock names that
worker. Such folders are deleted by the same check, so they do not pile up on a shared disk.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..project.lock import LockHolder, read_holder, take_over
from ..project.placement import STAGING_TAG, siblings


def lost_worker(holder: LockHolder, schedulers: set[str], workers: set[str]) -> bool:
    """Whether ``holder`` ran on a worker of one of ``schedulers`` that is not in ``workers``
    (the addresses that scheduler lists now)."""
    return (
        holder.worker is not None
        and holder.scheduler in schedulers
        and holder.worker not in workers
    )


def _cluster_view(client) -> tuple[set[str], set[str]]:
    """The scheduler's addresses (as this side knows it, and as it calls itself) and the
    addresses of the workers it lists now."""
    schedulers = {str(client.scheduler.address)}
    info = client.scheduler_info(n_workers=-1)
    if info.get("address"):
        schedulers.add(info["address"])
    return schedulers, set(info.get("workers", {}))


def _cluster_of_this_run(client) -> tuple[set[str], set[str]] | None:
    """Schedulers and listed workers as seen from ``client``, or from this task's worker when
    ``client`` is None; None outside dask."""
    schedulers: set[str] = set()
    if client is None:
        try:
            from distributed import get_client, get_worker

            worker = get_worker()
        except (ImportError, ValueError):
            return None
        schedulers.add(str(worker.scheduler.address))
        client = get_client()
    more, workers = _cluster_view(client)
    return schedulers | more, workers


def _remote_dask_writer(holder: LockHolder | None) -> bool:
    """A lock of a dask task whose death this host cannot see for itself."""
    return holder is not None and holder.worker is not None and holder.is_alive()


def take_over_from_lost_worker(project: str | Path, client=None) -> LockHolder | None:
    """Remove the lock of ``project`` if its holder was a dask worker of this cluster that the
    scheduler no longer lists; returns that holder, or ``None`` when nothing was taken over.
    Staging folders of ``project`` left by such workers are deleted on the way.

    ``client``: the client of the run (client side); inside a task, leave it out and the
    worker's own connection to the scheduler is used. Outside dask, nothing happens.
    """
    project = Path(project)
    holder = read_holder(project)
    staging = [(f, read_holder(f)) for f in siblings(project, STAGING_TAG)]
    staging = [(f, h) for f, h in staging if _remote_dask_writer(h)]
    if not (_remote_dask_writer(holder) or staging):
        return None  # unlocked, not a dask writer, or provably gone (the lock takes it over)
    cluster = _cluster_of_this_run(client)
    if cluster is None:
        return None
    schedulers, workers = cluster
    for folder, owner in staging:
        if lost_worker(owner, schedulers, workers):
            shutil.rmtree(folder, ignore_errors=True)
    if not _remote_dask_writer(holder) or not lost_worker(holder, schedulers, workers):
        return None
    reason = f"its dask worker {holder.worker} is no longer in the cluster of {holder.scheduler}"
    return holder if take_over(project, holder, reason) else None
