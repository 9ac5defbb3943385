"""The dataset's status: per item its stage, people, progress and problems; totals with an ETA;
plans of assignment; the next item to work on.

Nothing here takes a project's lock or opens a mask: a project's facts come from its cached
summary (:mod:`.summary`), its lock from reading the lock file.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .files import DatasetError
from .model import Dataset, Item
from .records import STAGES, StageRecord
from .summary import SummaryCache, derived_stages

#: Columns of the status table, in order.
COLUMNS = ("id", "stage", "assignee", "reviewer", "frames", "objects", "open_flags",
           "qc_coverage", "last_activity", "held_by", "problem")
#: In which order an annotator's own items come up in ``next`` (corrections first).
WORK_ORDER = ("returned", "tracked", "prompted", "new")
REVIEW_ORDER = ("in_review", "tracked")


def _holder(project: Path) -> str | None:
    from ..project.lock import live_holder

    try:
        holder = live_holder(project)
    except OSError:
        return None
    if holder is None:
        return None
    return f"PID {holder.pid} on {holder.host}" if holder.pid != -1 else holder.command


def item_problem(dataset: Dataset, item: Item, summary: dict | None,
                 writers: dict[Path, str]) -> str:
    """What is wrong with an item (one line), or ``""``."""
    if not item.source.exists():
        return (f"source {item.source} not found (moved? run 'napari-sam2-track dataset move "
                f"{dataset.folder} {item.id} NEW_PATH')")
    other = writers.get(item.project.resolve())
    if other is not None and other != item.id:
        return f"writes the same project as item {other!r} ({item.project}); give it its own project"
    problem = dataset.ownership_problem(item)
    if problem:
        return problem
    if summary is not None and "error" in summary:
        return f"project unreadable: {summary['error']}"
    if item.prompts is not None and not item.prompts.exists():
        return f"prompts {item.prompts} not found"
    return ""


def item_rows(dataset: Dataset, cache: SummaryCache | None = None) -> list[dict[str, Any]]:
    """One row per item (see :data:`COLUMNS`; also ``stage_by``, ``stage_time``,
    ``tracked_frames``, ``visible_frames``, ``covered_frames``, ``active_seconds``,
    ``annotated_frames``)."""
    own_cache = cache is None
    cache = cache or SummaryCache(dataset.folder)
    recorded = dataset.recorded_stages()
    assignments = dataset.assignments()
    items = dataset.items
    writers: dict[Path, str] = {}
    for item in items:
        writers.setdefault(item.project.resolve(), item.id)
    cache.prefetch([item.project for item in items])
    rows = []
    for item in items:
        summary = cache.get(item.project)
        history = recorded.get(item.id, []) + derived_stages(item, summary)
        stage = sorted(history, key=lambda r: r.time)[-1] if history else None  # ties: the later
        people = assignments.get(item.id, {})
        ok = summary is not None and "error" not in summary
        activity = [r.time for r in history]
        if ok and summary.get("last_activity"):
            activity.append(_dt.datetime.fromisoformat(summary["last_activity"]))
        activity += [r.time for r in people.values()]
        rows.append({
            "id": item.id,
            "stage": stage.stage if stage else "new",
            "stage_by": stage.who if stage else "",
            "stage_time": stage.time.isoformat() if stage else None,
            "assignee": people["annotator"].who if "annotator" in people else None,
            "reviewer": people["reviewer"].who if "reviewer" in people else None,
            "frames": summary["frames"] if ok else None,
            "tracked_frames": summary["tracked_frames"] if ok else 0,
            "objects": summary["objects"] if ok else None,
            "open_flags": summary["open_flags"] if ok else None,
            "qc_coverage": summary["qc_coverage"] if ok else None,
            "visible_frames": summary["visible_frames"] if ok else 0,
            "covered_frames": summary["covered_frames"] if ok else 0,
            "active_seconds": summary["active_seconds"] if ok else 0.0,
            "annotated_frames": summary["annotated_frames"] if ok else 0,
            "last_activity": max(activity).astimezone(_dt.timezone.utc).isoformat(
                timespec="seconds") if activity else None,
            "held_by": _holder(item.project) if summary is not None else None,
            "problem": item_problem(dataset, item, summary, writers),
            "check": item.check,
        })
    if own_cache:
        cache.save()
    return rows


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts per stage, frames, measured seconds per frame and the ETA.

    Seconds per frame: active seconds over annotated (object, frame) pairs of every project's
    interaction log (``review/analytics``). The work left is, per item not verified, its
    (object, frame) pairs not yet under a valid QC decision: visible frames once tracked, else
    frames x objects; an item without a project counts the mean of those that have one. ETA =
    seconds per frame x work left (``None`` until something was measured)."""
    stages = {s: 0 for s in STAGES}
    for r in rows:
        stages[r["stage"]] += 1
    active = sum(r["active_seconds"] for r in rows)
    annotated = sum(r["annotated_frames"] for r in rows)
    spf = active / annotated if annotated else None
    sizes, unknown, left = [], 0, 0
    for r in rows:
        if r["frames"] is None:
            if r["stage"] != "verified":
                unknown += 1
            continue
        size = r["visible_frames"] if r["tracked_frames"] else r["frames"] * max(r["objects"] or 1, 1)
        sizes.append(size)
        if r["stage"] != "verified":
            left += max(size - r["covered_frames"], 0)
    if unknown and sizes:
        left += unknown * sum(sizes) / len(sizes)
    eta = spf * left if spf is not None and (sizes or not unknown) else None
    return {
        "items": len(rows),
        "stages": stages,
        "frames": sum(r["frames"] or 0 for r in rows),
        "tracked_frames": sum(r["tracked_frames"] for r in rows),
        "visible_frames": sum(r["visible_frames"] for r in rows),
        "covered_frames": sum(r["covered_frames"] for r in rows),
        "problems": sum(1 for r in rows if r["problem"]),
        "active_seconds": round(active, 3),
        "seconds_per_frame": round(spf, 4) if spf is not None else None,
        "frames_left": round(left),
        "eta_seconds": round(eta, 1) if eta is not None else None,
    }


def status(dataset: Dataset) -> dict[str, Any]:
    """The status of every item and the totals."""
    rows = item_rows(dataset)
    return {"dataset": str(dataset.folder), "name": dataset.name,
            "schema_version": dataset.schema_version, "items": rows, "totals": totals(rows)}


def _eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (nothing measured yet)"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{seconds / 60:.0f} min"


def status_table(result: dict[str, Any]) -> str:
    """The status as a plain-text table with a totals line."""
    cells = [["id", "stage", "assignee", "reviewer", "frames", "objects", "flags", "qc%",
              "last activity", "held by"]]
    for r in result["items"]:
        cells.append([
            r["id"], r["stage"].replace("_", " "), r["assignee"] or "-", r["reviewer"] or "-",
            "-" if r["frames"] is None else f"{r['tracked_frames']}/{r['frames']}",
            "-" if r["objects"] is None else str(r["objects"]),
            "-" if r["open_flags"] is None else str(r["open_flags"]),
            "-" if r["qc_coverage"] is None else f"{r['qc_coverage']:.0f}",
            (r["last_activity"] or "-").replace("+00:00", "Z"), r["held_by"] or "-",
        ])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    for r in result["items"]:
        if r["problem"]:
            lines.append(f"problem: {r['id']}: {r['problem']}")
    t = result["totals"]
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in t["stages"].items() if n)
    spf = "-" if t["seconds_per_frame"] is None else f"{t['seconds_per_frame']:.2f}"
    lines.append(f"{t['items']} items: {counts or 'none'}; {t['tracked_frames']}/{t['frames']} "
                 f"frames tracked, QC {t['covered_frames']}/{t['visible_frames']} visible frames; "
                 f"{spf} s/frame, ETA {_eta_text(t['eta_seconds'])}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- assignment
def plan_assignment(dataset: Dataset, rows: Sequence[dict], *, annotator: str | None = None,
                    items: Sequence[str] | None = None, count: int | None = None,
                    round_robin: Sequence[str] | None = None, role: str = "annotator"
                    ) -> list[tuple[str, str]]:
    """``(item, person)`` pairs: the given items to ``annotator``; or the first ``count`` items
    nobody holds in that role (not verified) to ``annotator``; or every such item dealt out to
    ``round_robin`` in turn."""
    key = "assignee" if role == "annotator" else "reviewer"
    free = [r["id"] for r in rows if r[key] is None and r["stage"] != "verified"]
    if items:
        if annotator is None:
            raise DatasetError("name the person: --annotator NAME")
        return [(i, annotator) for i in items]
    if count is not None:
        if annotator is None:
            raise DatasetError("name the person: --annotator NAME")
        if count < 1:
            raise DatasetError(f"--count must be 1 or more, not {count}")
        if not free:
            raise DatasetError(f"every item has a{'n' if role == 'annotator' else ''} {role} "
                               "already (or is verified); nothing was assigned")
        return [(i, annotator) for i in free[:count]]
    if round_robin:
        for name in round_robin:
            dataset.require_annotator(name)
        if not free:
            raise DatasetError(f"every item has a{'n' if role == 'annotator' else ''} {role} "
                               "already (or is verified); nothing was assigned")
        return list(zip(free, itertools.cycle(round_robin)))
    raise DatasetError("say which items: --items ID..., --count N or --round-robin NAME...")


def assign(dataset: Dataset, *, by: str | None = None, role: str = "annotator",
           **plan) -> list[tuple[str, str]]:
    """Plan and record an assignment under the dataset's lock (two people assigning at once
    never get the same free item)."""
    for name in [plan.get("annotator")] if plan.get("annotator") else []:
        dataset.require_annotator(name)
    with dataset.locked():
        rows = item_rows(dataset)
        pairs = plan_assignment(dataset, rows, role=role, **plan)
        for person in dict.fromkeys(p for _, p in pairs):
            dataset.assign([i for i, p in pairs if p == person], person, role=role, by=by)
    return pairs


def next_item(dataset: Dataset, annotator: str, *, review: bool = False,
              claim: bool = True) -> dict[str, Any] | None:
    """The status row of the next item for ``annotator``: their own items first (corrections
    first; for ``review``, items waiting for review); else, with ``claim``, the first free
    item, which is assigned to them. ``None`` when there is nothing to do."""
    dataset.require_annotator(annotator)
    role, key, order = (("reviewer", "reviewer", REVIEW_ORDER) if review
                        else ("annotator", "assignee", WORK_ORDER))
    with dataset.locked():
        rows = [r for r in item_rows(dataset) if not r["problem"]]

        def first(candidates):
            ranked = [r for r in candidates if r["stage"] in order]
            return min(ranked, key=lambda r: order.index(r["stage"]), default=None)

        mine = first(r for r in rows if r[key] == annotator)
        if mine is not None or not claim:
            return mine
        free = first(r for r in rows if r[key] is None
                     and not (review and r["assignee"] == annotator))
        if free is None:
            return None
        dataset.assign([free["id"]], annotator, role=role, by=annotator)
        return {**free, key: annotator}


def record_derived(dataset: Dataset, item_id: str, who: str) -> StageRecord | None:
    """Record the stage the item's project now shows, by ``who`` (e.g. after a batch run
    tracked it), unless it is its recorded stage already."""
    item = dataset.item(item_id)
    cache = SummaryCache(dataset.folder)
    derived = derived_stages(item, cache=cache)
    cache.save()
    if not derived:
        return None
    recorded = dataset.recorded_stages().get(item_id, [])
    if recorded and recorded[-1].stage == derived[-1].stage:
        return None
    return dataset.record_stage(item_id, derived[-1].stage, who, derived[-1].note)
