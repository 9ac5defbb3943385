"""Annotator analytics from the interaction log, beside the SAM 2 paper's reference rows.

Interactions are appended to ``review/events.jsonl`` by :func:`~.models.log_event` (one JSON line each,
O(1) whatever the length of the log). :func:`report` turns them into the measures of the SAM 2
paper's data-engine table (Table 1) per annotator and for the project. ``docs/review.md``
defines each measure; in short:

* **active time**: the sum of the gaps between an annotator's consecutive events, leaving out
  gaps longer than ``idle_seconds`` (the annotator was away);
* an **annotated frame** is an (object, frame) pair that a prompt, a brush edit or a
  propagation produced; an **edited frame** one that a prompt or brush edit touched;
* a **correction** is a prompt or brush edit on an (object, frame) an earlier propagation
  already produced.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..project import ProjectStore
from .models import Event, log_event, read_events  # noqa: F401 - log_event is used from here too

#: The SAM 2 paper's data-engine table (Table 1): the reference rows of every report.
REFERENCE_ROWS = (
    {"method": "frame by frame (SAM 1), SAM 2 paper", "seconds_per_frame": 37.8,
     "percent_frames_edited": 100.0, "clicks_per_clicked_frame": 4.80},
    {"method": "SAM 2, SAM 2 paper", "seconds_per_frame": 4.5,
     "percent_frames_edited": 19.0, "clicks_per_clicked_frame": 2.68},
)

PROMPT_KINDS = ("click", "box", "mask")
EDIT_KINDS = (*PROMPT_KINDS, "brush")

#: Columns of a report row, in order.
METRICS = (
    "events", "active_seconds", "annotated_frames", "seconds_per_frame", "edited_frames",
    "percent_frames_edited", "clicks", "clicked_frames", "clicks_per_clicked_frame", "prompts",
    "objects", "corrections", "corrections_per_object", "propagated_frames", "propagation_seconds",
    "frames_propagated_per_prompt", "masklets_reviewed", "review_seconds", "review_seconds_per_masklet",
)


class _FrameSet:
    """Sets of (object, frame) pairs, kept as frame ranges per object."""

    def __init__(self):
        self.ranges: dict[int, list[tuple[int, int]]] = {}

    def add(self, obj: int, a: int, b: int) -> None:
        self.ranges.setdefault(obj, []).append((a, b))

    def contains(self, obj: int, t: int) -> bool:
        return any(a <= t <= b for a, b in self.ranges.get(obj, ()))

    def count(self) -> int:
        total = 0
        for ranges in self.ranges.values():
            end = -1
            for a, b in sorted(ranges):
                if b > end:
                    total += b - max(a, end + 1) + 1
                    end = b
        return total


def _objects(e: Event) -> list[int]:
    if e.object is not None:
        return [e.object]
    return [int(o) for o in e.details.get("objects", ())]


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _measures(events: Sequence[Event], idle_seconds: float, corrections: set[tuple[int, int, int]]) -> dict:
    """Measures over ``events`` (one annotator's, or all when active time is summed outside)."""
    annotated, edited = _FrameSet(), _FrameSet()
    clicked: set[tuple[int, int]] = set()
    prompted: set[tuple[int, int]] = set()
    objects: set[int] = set()
    reviewed: set[tuple[int, int, int]] = set()
    active = review_seconds = propagation_seconds = 0.0
    clicks = propagated = 0
    previous: dict[str, _dt.datetime] = {}
    own_corrections = set()
    for e in events:
        gap = (e.time - previous[e.annotator]).total_seconds() if e.annotator in previous else None
        previous[e.annotator] = e.time
        if gap is not None and 0 <= gap <= idle_seconds:
            active += gap
        objs = _objects(e)
        objects.update(objs)
        a, b = e.frames if e.frames is not None else (None, None)
        if e.kind in EDIT_KINDS and a is not None:
            for o in objs:
                annotated.add(o, a, b)
                edited.add(o, a, b)
                own_corrections.update((o, t, id(e)) for t in range(a, b + 1) if (o, t, id(e)) in corrections)
        if e.kind == "click" and a is not None:
            clicks += 1
            clicked.update((o, a) for o in objs)
        if e.kind in PROMPT_KINDS and a is not None:
            prompted.update((o, a) for o in objs)
        if e.kind == "propagate" and a is not None:
            for o in objs:
                annotated.add(o, a, b)
            propagated += (b - a + 1) * len(objs)
            propagation_seconds += float(e.details.get("seconds", 0.0))
        if e.kind == "review":
            seconds = e.details.get("seconds")
            if seconds is None:
                seconds = gap if gap is not None and 0 <= gap <= idle_seconds else 0.0
            review_seconds += float(seconds)
            if a is not None:
                reviewed.update((o, a, b) for o in objs)
    n_annotated, n_edited = annotated.count(), edited.count()
    n_corrections = len({(o, t) for o, t, _ in own_corrections})
    percent = _ratio(100.0 * n_edited, n_annotated)
    return {
        "events": len(events),
        "active_seconds": active,
        "annotated_frames": n_annotated,
        "seconds_per_frame": _ratio(active, n_annotated),
        "edited_frames": n_edited,
        "percent_frames_edited": percent,
        "clicks": clicks,
        "clicked_frames": len(clicked),
        "clicks_per_clicked_frame": _ratio(clicks, len(clicked)),
        "prompts": len(prompted),
        "objects": len(objects),
        "corrections": n_corrections,
        "corrections_per_object": _ratio(n_corrections, len(objects)),
        "propagated_frames": propagated,
        "propagation_seconds": propagation_seconds,
        "frames_propagated_per_prompt": _ratio(propagated, len(prompted)),
        "masklets_reviewed": len(reviewed),
        "review_seconds": review_seconds,
        "review_seconds_per_masklet": _ratio(review_seconds, len(reviewed)),
    }


def _corrections(events: Sequence[Event]) -> set[tuple[int, int, int]]:
    """``(object, frame, id(event))`` of edits on frames an earlier propagation produced."""
    propagated = _FrameSet()
    out = set()
    for e in events:
        if e.frames is None:
            continue
        a, b = e.frames
        if e.kind == "propagate":
            for o in _objects(e):
                propagated.add(o, a, b)
        elif e.kind in EDIT_KINDS:
            for o in _objects(e):
                out.update((o, t, id(e)) for t in range(a, b + 1) if propagated.contains(o, t))
    return out


def report(
    source: ProjectStore | str | Path | Iterable[Event], *, idle_seconds: float | None = None
) -> dict:
    """Analytics per annotator and for the project, with the paper's reference rows.

    ``source`` is a project (its ``review/events.jsonl``) or events. ``idle_seconds`` defaults
    to the project's schema (``review.idle_seconds``), or 60 s for bare events.
    """
    if isinstance(source, (ProjectStore, str, Path)):
        store = source if isinstance(source, ProjectStore) else ProjectStore.open(source, mode="r")
        events = read_events(store)
        if idle_seconds is None:
            idle_seconds = store.schema.review.idle_seconds
    else:
        events = sorted(source, key=lambda e: e.time)
    if idle_seconds is None:
        from ..schema import ReviewThresholds

        idle_seconds = ReviewThresholds().idle_seconds
    corrections = _corrections(events)
    names = sorted({e.annotator for e in events})
    return {
        "idle_seconds": idle_seconds,
        "reference": [dict(r) for r in REFERENCE_ROWS],
        "project": _measures(events, idle_seconds, corrections),
        "annotators": {
            name: _measures([e for e in events if e.annotator == name], idle_seconds, corrections)
            for name in names
        },
    }


def report_rows(result: dict) -> list[dict]:
    """A report as table rows: each annotator, the project, then the reference rows."""
    rows = [{"who": name, **m} for name, m in result["annotators"].items()]
    rows.append({"who": "project", **result["project"]})
    for ref in result["reference"]:
        rows.append({"who": ref["method"], **{k: ref.get(k) for k in METRICS}})
    return rows
