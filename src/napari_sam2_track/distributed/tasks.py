"""What runs on a worker: track one video of a batch into its project.

A task is idempotent: a project whose latest run completed is skipped; a project left behind by
an interrupted attempt (a killed worker, a lost node) is resumed as ``track --resume`` does, so
frames already on disk are kept and the result equals an uninterrupted run. A user error
(:class:`~napari_sam2_track.errors.Sam2TrackError`) ends the task with a ``failed`` result and its
one-line message; it is not retried, since it would fail again. Anything else is raised, so the
client can retry the task.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from ..errors import Sam2TrackError
from .models import ModelSpec, cached_model

#: Seconds between two progress events of one task.
PROGRESS_INTERVAL = 0.5


def report(topic: str | None, message: dict) -> None:
    """Send a progress event to clients subscribed to ``topic`` (no-op outside a worker)."""
    if topic is None:
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    worker.log_event(topic, message)


def worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return socket.gethostname()


def project_state(out: Path) -> str:
    """``missing``, ``completed`` (its latest run completed) or ``partial``."""
    if not out.exists():
        return "missing"
    from ..project import ProjectStore

    try:
        runs = ProjectStore.open(out, "r").meta.get("runs", [])
    except Sam2TrackError:
        return "partial"
    return "completed" if runs and runs[-1].get("status") == "completed" else "partial"


def result_row(index: int, out: Path, status: str, **fields) -> dict:
    row = {
        "index": index,
        "out": str(out),
        "status": status,
        "frames": 0,
        "seconds": 0.0,
        "fps": 0.0,
        "error": None,
        "worker": worker_name(),
    }
    row.update(fields)
    return row


def track_video(
    index: int,
    item: dict,
    out: str,
    spec: ModelSpec,
    *,
    topic: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Track one manifest row (``item``: a :class:`~.manifest.BatchItem` as a dict) into ``out``.

    Returns a summary row: ``status`` is ``completed``, ``resumed`` (completed after an
    interrupted attempt), ``skipped`` (already complete) or ``failed`` (with ``error``);
    ``took_over_lock`` names the holder of a lock taken from a worker that left the cluster.
    """
    from ..pipeline import check_target, track, volume_request
    from ..prompts import PromptSet
    from ..schema import Schema
    from ..sources import open_source

    out_path = Path(out)
    started = time.perf_counter()
    state = "missing" if overwrite else project_state(out_path)
    if state == "completed":
        return result_row(index, out_path, "skipped")
    notes = {}
    # a lock (or a staging folder) left by a worker that died, on whichever host: hand it over
    from .handover import take_over_from_lost_worker

    lost = take_over_from_lost_worker(out_path)
    if lost is not None:
        notes["took_over_lock"] = lost.describe()
    source = None
    try:
        window = item.get("window")
        source = open_source(item["video"], channel=item.get("channel"),
                             window=tuple(window) if isinstance(window, list) else window,
                             axes=item.get("axes"), series=item.get("series"))
        prompts_path = item.get("prompts")
        prompts = PromptSet.load(prompts_path) if prompts_path else None
        volume = volume_request(item.get("direction") or "both", item.get("start"), item.get("end"),
                                None, item.get("z_range"), item.get("stop_after_empty"),
                                item.get("axis"))
        target = check_target(out_path, source, prompts, resume=state == "partial",
                              overwrite=overwrite and out_path.exists(), volume=volume)
        schema = Schema.load(item["schema_"]) if item.get("schema_") else None
        model = cached_model(spec)
        frames, last_sent, total = 0, 0.0, 0
        for progress in track(
            source,
            prompts,
            target,
            model=model,
            direction=item.get("direction") or "both",
            start=item.get("start"),
            end=item.get("end"),
            prompts_dir=Path(prompts_path).parent if prompts_path else None,
            schema=schema,
            z_range=volume.z_range,
            stop_after_empty=volume.stop_after_empty,
            axis=volume.axis,
        ):
            frames, total = progress.computed, progress.total
            now = time.perf_counter()
            if now - last_sent >= PROGRESS_INTERVAL:
                report(topic, {"index": index, "done": frames, "total": total})
                last_sent = now
        report(topic, {"index": index, "done": frames, "total": total})
    except Sam2TrackError as exc:
        return result_row(index, out_path, "failed", error=str(exc).splitlines()[0],
                          seconds=time.perf_counter() - started, **notes)
    finally:
        if source is not None:
            source.close()
    seconds = time.perf_counter() - started
    return result_row(
        index,
        out_path,
        "resumed" if state == "partial" else "completed",
        frames=frames,
        seconds=seconds,
        fps=frames / seconds if seconds > 0 else 0.0,
        **notes,
    )
