"""One recorded run: tracking results written into a project, with the run's record, its
change records and its track versions, however it ends.

Shared by the video pipeline (:mod:`.pipeline`), volume tracking (:mod:`.volumes.run`) and
second opinions; nothing here loads a model or chooses frames.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import describe_os_error
from .project import ProjectStore, StoreWriter

if TYPE_CHECKING:
    from .engine.models import LoadedModel
    from .project.versions import RunVersions

__all__ = ["Progress", "SpaceReserve", "run_into_store"]


@dataclass
class Progress:
    """State of a running :func:`track` call, after one more frame was computed."""

    run_id: int
    frame: int  # the frame just computed
    computed: int  # frames computed so far in this run
    written: int  # frames durable on disk
    total: int  # frames this run will compute
    elapsed: float  # seconds since tracking started
    state_bytes: int = 0  # bytes held in the tracker's inference state

    @property
    def fps(self) -> float:
        return self.computed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds left at the current speed."""
        return (self.total - self.computed) / self.fps if self.fps > 0 else float("inf")


class SpaceReserve:
    """A few blocks set aside in the project so that a run failing on a full disk can still
    record that it failed."""

    NAME = ".napari_sam2_track.reserve"

    def __init__(self, folder: Path, size: int = 256 * 1024):
        self.path = folder / self.NAME
        try:
            with open(self.path, "wb") as f:
                f.write(b"\0" * size)
        except OSError:
            self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def run_into_store(store: ProjectStore, model: "LoadedModel",
                   results: "Callable[[RunVersions], Iterator]", *, total: int,
                   ranges: list[tuple[int, int, int]], run_info: dict,
                   skip=None, cancel: threading.Event | None = None,
                   state_bytes=lambda: 0,
                   versions: "RunVersions | None" = None) -> Iterator[Progress]:
    """Write tracking results (:class:`~.engine.tracker.FrameResult`, frames being the
    project's frames) into ``store`` as one recorded run, yielding a :class:`Progress` each.

    ``results(versions)`` gives the results once the run's track versions exist; ``ranges``:
    ``(object, first, last)`` the run will rewrite (recorded as changes unless
    ``run_info["resume"]``); ``run_info``: the run record's fields; ``skip(obj, frame)``:
    results not to write (``--resume``); ``versions``: where each frame's pre-image goes (a
    correction's, finished by its caller), by default a ``propagation`` version per object,
    finished here. The run's status is recorded however it ends (an ``OSError`` is re-raised
    once the status is written).
    """
    from .project.versions import RunVersions

    store.update_meta(model=model.describe())
    schema = store.schema
    run_id = store.begin_run(model=model.name, **run_info)
    resume = bool(run_info.get("resume"))
    if not resume:  # every planned frame is rewritten: QC decisions there no longer hold
        store.record_changes(ranges, f"propagation run {run_id}", "propagation",
                             run=run_id)
    own_versions = versions is None
    if own_versions:
        versions = RunVersions.begin(store, ranges, "propagation", f"propagation run {run_id}",
                                     skip=skip)
    frames = results(versions)
    reserve = SpaceReserve(store.path)
    writer = StoreWriter(store, run_id, min_visible_pixels=schema.min_visible_pixels, skip_frames=skip)
    status, error = "failed", None
    started = time.perf_counter()
    computed = 0
    held = 0
    try:
        for result in frames:
            versions.capture(result)  # the frame as stored, kept before it is rewritten
            writer.submit(result)
            computed += 1
            if computed % 25 == 1:  # walking the state costs ~1 ms; sample it
                held = state_bytes()
            yield Progress(
                run_id=run_id,
                frame=result.frame,
                computed=computed,
                written=writer.frames_written,
                total=max(total, computed),
                elapsed=time.perf_counter() - started,
                state_bytes=held,
            )
        status = "cancelled" if cancel is not None and cancel.is_set() else "completed"
    except (GeneratorExit, KeyboardInterrupt):
        status = "cancelled"
        raise
    except OSError as exc:
        error = exc
    finally:
        try:
            writer.close()
        except OSError as exc:
            status, error = "failed", error or exc
        finally:
            reserve.release()
            try:
                store.end_run(run_id, status, frames=computed,
                              **({"error": describe_os_error(error)} if error else {}))
                store.record_changes(
                    [(o, a, b) for o, ranges in writer.written.items() for a, b in ranges],
                    f"propagation run {run_id} wrote these frames", "propagation", run=run_id,
                )
                if own_versions:
                    versions.finish(run=run_id)
            except OSError:
                pass  # shown as interrupted once the lock is given back
    if error is not None:
        raise error
