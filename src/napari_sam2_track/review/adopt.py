"""Adopting a second opinion (:mod:`.second_opinion`): its masks of one object over a frame
range become the project's, as a correction (a track version, a run, a change record)."""

from __future__ import annotations

import numpy as np

from ..errors import ReviewError
from ..project import COL, ProjectStore
from ..project.layout import SECOND_OPINION_GROUP
from ..project.versions import begin_version
from .qc import require_object
from .second_opinion import has_result, open_opinion

__all__ = ["adopt"]

def adopt(store: ProjectStore, obj_id: int, start: int, end: int, name: str | None = None) -> tuple[int, int]:
    """Take the second opinion's masks and table rows of ``obj_id`` on ``start..end`` into
    the project; returns the frames written (those where the second opinion has a result).

    A correction like any other: each frame's mask and row go into a track version before it
    is written (so :func:`~.segments.undo_segment` brings the project's masks back, and a crash
    part-way is rolled back when the project is next opened for writing), the frames are written
    under the caller's write lock, and a change record invalidates QC decisions over them.
    """
    if store.read_only:
        raise ReviewError(f"{store.path} is open read-only; adopting needs the project's write lock")
    require_object(store, obj_id)
    n = store.num_frames
    if not (0 <= start <= end < n):
        raise ReviewError(f"frames {start}-{end} are not a range inside the video (frames 0-{n - 1})")
    opinion = open_opinion(store, name)
    rows = opinion.table_rows(obj_id, start, end + 1)
    have = has_result(rows) if rows is not None else np.zeros(end - start + 1, bool)
    if not have.any():
        raise ReviewError(f"the second opinion {opinion.path.name!r} has no result for object {obj_id} "
                          f"on frames {start}-{end}")
    done = np.flatnonzero(have)
    first, last = start + int(done[0]), start + int(done[-1])
    version = begin_version(store, obj_id, "correction",
                            f"second opinion {opinion.path.name!r} adopted on frames {first}-{last}",
                            [(first, last)], prompt_span=(first, last))
    run_id = store.begin_run(direction=None, start=first, end=last, objects=[obj_id],
                             model=(opinion.meta.get("model") or {}).get("name"),
                             adopted_from=f"{SECOND_OPINION_GROUP}/{opinion.path.name}")
    store.record_changes([(obj_id, first, last)],
                         f"second opinion {opinion.path.name!r} adopted (run {run_id})", "propagation",
                         run=run_id)
    status = "failed"
    try:
        before = store.table_rows(obj_id, first, last + 1)
        if before is None:
            before = np.full((last - first + 1, len(COL)), np.nan)
        written = [t for t in range(first, last + 1) if have[t - start]]
        for t in written:  # the frame as stored goes into the version before it is rewritten
            version.capture(t, store.mask(obj_id, t), before[t - first])
        for t in written:
            store.merge_labels(t, {obj_id: opinion.mask(obj_id, t)})
        block = rows[first - start : last - start + 1].copy()
        block[:, COL["run"]] = run_id
        store.write_table_block(obj_id, first, block, keep=have[first - start : last - start + 1])
        status = "completed"
    finally:
        store.end_run(run_id, status, frames=int(have.sum()))
    version.finish(written, run=run_id)
    return first, last
