"""What the Review dock shows, read from a project in one go (off the GUI thread).

:func:`load_review_data` reads the flags, presence spans, QC state, keyframes, the presence
logits and edited frames of every object, and the analytics report; the dock and its timeline
only draw the result. Nothing here imports Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..project import STATE_EDITED, ProjectStore
from ..prompts import ObjectSpec
from ..review import Flag, Masklet, ReviewState, read_review
from ..review.analytics import report, report_rows
from ..review.flags import ReviewReport, find_flags
from ..review.models import ROUTINE_FLAGS
from ..review.segments import segment_snapshot



@dataclass
class ObjectTrack:
    """One object's rows of the track table and timeline."""

    spec: ObjectSpec
    presence: np.ndarray  # float32 logits per frame, NaN where not run
    visible: np.ndarray  # bool per frame: inside a presence span
    edited: np.ndarray  # int frames edited by hand
    keyframes: list[int]
    flags: list[Flag]
    spans: list[Masklet]
    approved: list[tuple[int, int]]
    rejected: list[tuple[int, int]]
    invalidated: list[str] = field(default_factory=list)  # "a-b: the change that ended it"
    undo: tuple[int, int] | None = None  # frames an undo of the last correction restores

    @property
    def id(self) -> int:
        return self.spec.id

    @property
    def frames_present(self) -> int:
        return int(self.visible.sum())

    @property
    def first_frame(self) -> int | None:
        return self.spans[0].start if self.spans else None

    @property
    def last_frame(self) -> int | None:
        return self.spans[-1].end if self.spans else None

    @cached_property
    def flag_ranges(self) -> np.ndarray:
        """``(k, 2)`` first and last frame of every flagged run (for drawing)."""
        return np.array([(f.start, f.end) for f in self.flags], np.int64).reshape(-1, 2)

    def flag_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.flags:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out

    def worst_flag(self) -> Flag | None:
        """The flag with the largest score, preferring likely errors over span markers."""
        problems = [f for f in self.flags if f.kind not in ROUTINE_FLAGS]
        pool = problems or self.flags
        return max(pool, key=lambda f: (f.score, -f.frame)) if pool else None

    def flag_frames(self) -> list[int]:
        """The worst frame of every flagged run, sorted and distinct."""
        return sorted({f.frame for f in self.flags})

    def span_at(self, frame: int) -> Masklet | None:
        return next((s for s in self.spans if s.start <= frame <= s.end), None)

    def qc_status(self) -> str:
        """``approved``, ``rejected``, ``partly approved`` or ``unreviewed`` over its spans,
        with the number of decisions a later change invalidated."""
        status = self._decided_status()
        return f"{status}, {len(self.invalidated)} invalidated" if self.invalidated else status

    def _decided_status(self) -> str:
        if not self.spans:
            return "no spans"
        total = sum(s.end - s.start + 1 for s in self.spans)
        ok = _covered(self.spans, self.approved)
        bad = _covered(self.spans, self.rejected)
        if bad:
            return f"rejected ({bad}/{total} frames)"
        if ok == total:
            return "approved"
        if ok:
            return f"partly approved ({ok}/{total} frames)"
        return "unreviewed"


def _covered(spans: list[Masklet], ranges: list[tuple[int, int]]) -> int:
    n = 0
    for s in spans:
        for a, b in ranges:
            lo, hi = max(a, s.start), min(b, s.end)
            n += max(0, hi - lo + 1)
    return n


@dataclass
class ReviewData:
    """Everything the Review dock draws, for one project at one moment."""

    num_frames: int
    tracks: list[ObjectTrack]
    state: ReviewState
    flags: ReviewReport
    queue: list  # DecisionStatus of the correction queue
    report_rows: list[dict] = field(default_factory=list)
    report_error: str = ""
    report_plot: np.ndarray | None = None  # RGBA image of the report, drawn off the GUI thread

    def track(self, obj_id: int) -> ObjectTrack | None:
        return next((t for t in self.tracks if t.id == obj_id), None)


def _invalidated(state: ReviewState, obj_id: int) -> list[str]:
    """Ranges of ``obj_id`` whose latest decision a later change invalidated, and why."""
    out = []
    for a, b in sorted({(d.start, d.end) for d in state.decisions if d.object == obj_id}):
        latest = state.latest(Masklet(object=obj_id, start=a, end=b))
        if latest is not None and not latest.valid:
            out.append(f"{a}-{b}: {latest.invalidated_by.describe()}")
    return out


def _column(store: ProjectStore, obj_id: int, name: str, n: int) -> np.ndarray:
    column = store.table_column(obj_id, name)
    return np.full(n, np.nan) if column is None else column


def load_review_data(store: ProjectStore) -> ReviewData:
    """Read the review state of ``store``: flags, spans, QC, keyframes, presence and report."""
    from ..review.qc import correction_queue

    n = store.num_frames
    state = read_review(store)
    flags = find_flags(store, reviewed=state.reviewed_ranges())
    prompts = store.prompts.prompts
    tracks = []
    for spec in store.objects:
        obj = spec.id
        spans = [s for s in flags.spans if s.object == obj]
        visible = np.zeros(n, bool)
        for s in spans:
            visible[s.start : s.end + 1] = True
        states = _column(store, obj, "state", n)
        tracks.append(ObjectTrack(
            spec=spec,
            presence=_column(store, obj, "presence", n).astype(np.float32),
            visible=visible,
            edited=np.flatnonzero(states == STATE_EDITED),
            keyframes=sorted({p.frame for p in prompts if p.object == obj}),
            flags=flags.flags_of(obj),
            spans=spans,
            approved=state.ranges(obj, "satisfactory"),
            rejected=state.ranges(obj, "unsatisfactory"),
            invalidated=_invalidated(state, obj),
            undo=segment_snapshot(store, obj),
        ))
    for track in tracks:
        track.flag_ranges  # computed here, off the GUI thread
    data = ReviewData(n, tracks, state, flags, correction_queue(store))
    try:
        data.report_rows = report_rows(report(store))
    except Exception as exc:  # noqa: BLE001 - a damaged event log must not hide the review
        data.report_error = f"{type(exc).__name__}: {exc}"
    return data
