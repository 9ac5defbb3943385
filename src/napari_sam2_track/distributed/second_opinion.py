"""What runs on a worker for ``batch --second-opinion M2``: one video's second opinion.

Once a video's project is tracked (or found complete), the client submits
:func:`second_opinion_task` for it: the project is opened for writing (its lock names the
worker), every object is re-tracked from the stored keyframes with the second model
(:func:`~napari_sam2_track.review.second_opinion.run_second_opinion`) and compared. The task is
idempotent: a project that already holds a second opinion of that name is skipped (replaced
with ``overwrite``), and an interrupted attempt stores nothing, so a retry starts clean.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..engine.spec import ModelSpec
from ..errors import Sam2TrackError
from .models import cached_model
from .tasks import PROGRESS_INTERVAL, report, worker_name


def second_opinion_task(index: int, video: str, out: str, spec: ModelSpec, *, name: str | None = None,
                        overwrite: bool = False, topic: str | None = None) -> dict:
    """The second opinion of one project (``out``) by the model ``spec``; returns
    ``{status, name, frames, seconds, disagreeing, error, worker}``: ``status`` is
    ``completed``, ``skipped`` (one of that name exists) or ``failed`` (a user error, with its
    one-line ``error``; not retried). Anything else is raised, so the client retries."""
    from ..project import ProjectStore
    from ..review.second_opinion import (check_name, opinion_info, opinion_name, opinion_path,
                                         project_source, run_second_opinion)
    from .handover import take_over_from_lost_worker

    started = time.perf_counter()
    row = {"status": "failed", "name": name, "frames": 0, "seconds": 0.0, "disagreeing": None,
           "error": None, "worker": worker_name()}
    try:
        take_over_from_lost_worker(Path(out))
        with ProjectStore.open(out, command=f"batch --second-opinion {spec.model}") as store:
            model = cached_model(spec)
            row["name"] = name = check_name(name or opinion_name(model))
            if opinion_path(store, name).exists() and not overwrite:
                row.update(status="skipped", disagreeing=_disagreeing(opinion_info(store, name)))
                return row
            frames, last_sent, key = 0, 0.0, f"second-opinion-{index}"
            with project_source(store, video) as source:
                for p in run_second_opinion(store, source, model, name=name, overwrite=overwrite):
                    frames = p.computed
                    if time.perf_counter() - last_sent >= PROGRESS_INTERVAL:
                        report(topic, {"index": key, "done": frames, "total": p.total})
                        last_sent = time.perf_counter()
            row.update(status="completed", frames=frames,
                       disagreeing=_disagreeing(opinion_info(store, name)))
    except Sam2TrackError as exc:
        row["error"] = str(exc).splitlines()[0]
    row["seconds"] = time.perf_counter() - started
    return row


def _disagreeing(info: dict) -> int:
    """Frames (object-frames) where the second opinion disagrees with the project."""
    return sum(v["disagreeing"] for v in info["objects"].values())
