"""Annotator analytics across many projects: per annotator, per annotator and day, and QC.

Built from each project's own report (:func:`napari_sam2_track.review.analytics.report`, the
measures of ``docs/review.md``): counts are summed over projects and the ratios recomputed, so
an annotator's seconds per frame is their active seconds over all projects divided by their
annotated frames over all projects. Active time is counted inside each project (a switch from
one project to another is not active time). Over time, the same measures per UTC day (a
correction counts in the totals only: it needs the propagation before it, maybe on another
day), with the QC pass rate by the day of the decisions and the accuracy on check frames by the
day of the calls.

QC per annotator: of the masklets of the projects an annotator made, the share whose latest
valid decision (on the whole masklet, or a sampled verdict) is satisfactory — the **QC pass
rate**; per reviewer, their review seconds per masklet and (from :mod:`.checks`) their
accuracy on check frames.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..review.analytics import REFERENCE_ROWS, report

#: Counts summed over projects; the ratios are recomputed from them.
SUMS = ("events", "active_seconds", "annotated_frames", "edited_frames", "clicks", "clicked_frames",
        "prompts", "objects", "corrections", "propagated_frames", "propagation_seconds",
        "masklets_reviewed", "review_seconds")
RATIOS = {
    "seconds_per_frame": ("active_seconds", "annotated_frames", 1.0),
    "percent_frames_edited": ("edited_frames", "annotated_frames", 100.0),
    "clicks_per_clicked_frame": ("clicks", "clicked_frames", 1.0),
    "corrections_per_object": ("corrections", "objects", 1.0),
    "frames_propagated_per_prompt": ("propagated_frames", "prompts", 1.0),
    "review_seconds_per_masklet": ("review_seconds", "masklets_reviewed", 1.0),
}


def _blank() -> dict:
    return {k: 0 for k in SUMS}


def _add(total: dict, measures: dict) -> None:
    for k in SUMS:
        total[k] += measures.get(k) or 0


def _finish(total: dict) -> dict:
    out = dict(total)
    for name, (num, den, scale) in RATIOS.items():
        out[name] = scale * total[num] / total[den] if total[den] else None
    return out


def qc_outcomes(project: str | Path) -> list[tuple[str, str]]:
    """``(outcome, UTC day)`` of each masklet decided in a project: its latest decision's
    ``satisfactory`` / ``unsatisfactory``, or ``invalidated`` (single sampled frames are not
    masklets)."""
    from ..review.models import read_review

    state = read_review(project)
    latest = {}
    for s in state.statuses:
        d = s.decision
        if d.basis != "frame":
            latest[(d.object, d.start, d.end)] = s
    return [(s.decision.status if s.valid else "invalidated", s.decision.time.date().isoformat())
            for s in latest.values()]


def _pass_rate(outcomes: list[str]) -> dict:
    passed, failed = outcomes.count("satisfactory"), outcomes.count("unsatisfactory")
    return {"masklets_passed": passed, "masklets_failed": failed,
            "qc_pass_rate": 100.0 * passed / (passed + failed) if passed + failed else None}


def _project_report(path: Path, idle_seconds: float | None) -> tuple[dict, list]:
    from ..project import ProjectStore
    from ..review.models import read_events

    store = ProjectStore.open(path, mode="r")
    events = read_events(store)
    idle = idle_seconds if idle_seconds is not None else store.schema.review.idle_seconds
    return report(events, idle_seconds=idle), events


def annotator_analytics(projects: Sequence[tuple[str | Path, str | None]], *,
                        idle_seconds: float | None = None) -> dict:
    """Analytics over ``projects``: ``(project path, the annotator who made it or None)``.

    Returns ``{"annotators": {name: measures + qc}, "daily": {name: {day: measures}},
    "dataset": measures, "reference": the paper's rows, "projects": count}``. A project without
    a named annotator counts its masklets for every annotator who edited or propagated in it.
    """
    totals: dict[str, dict] = {}
    daily: dict[str, dict[str, dict]] = {}
    qc: dict[str, list[tuple[str, str]]] = {}
    everyone = _blank()
    read = 0
    for path, owner in projects:
        path = Path(path)
        if not path.exists():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a torn log line is said by the project's own report
            result, events = _project_report(path, idle_seconds)
            outcomes = qc_outcomes(path)
        read += 1
        _add(everyone, result["project"])
        for name, measures in result["annotators"].items():
            _add(totals.setdefault(name, _blank()), measures)
        by_day: dict[str, list] = {}
        for e in events:
            by_day.setdefault(e.time.date().isoformat(), []).append(e)
        for day, day_events in by_day.items():
            day_result = report(day_events, idle_seconds=result["idle_seconds"])
            for name, measures in day_result["annotators"].items():
                _add(daily.setdefault(name, {}).setdefault(day, _blank()), measures)
        makers = [owner] if owner else sorted({e.annotator for e in events
                                               if e.kind not in ("review", "navigate")})
        for name in makers:
            qc.setdefault(name, []).extend(outcomes)
    annotators = {}
    for name in sorted(set(totals) | set(qc)):
        row = _finish(totals.get(name, _blank()))
        row.update(_pass_rate([o for o, _ in qc.get(name, [])]))
        annotators[name] = row
    by_day = {name: {day: _finish(m) for day, m in days.items()} for name, days in daily.items()}
    for name, outcomes in qc.items():
        for day in {d for _, d in outcomes}:
            row = by_day.setdefault(name, {}).setdefault(day, _finish(_blank()))
            row.update(_pass_rate([o for o, d in outcomes if d == day]))
    return {
        "projects": read,
        "annotators": annotators,
        "daily": {name: dict(sorted(days.items())) for name, days in by_day.items()},
        "dataset": _finish(everyone),
        "reference": [dict(r) for r in REFERENCE_ROWS],
    }


def _accuracy_fields(acc: dict) -> dict:
    return {"check_frames_judged": acc["judged"],
            "check_accuracy": None if acc["accuracy"] is None else 100.0 * acc["accuracy"],
            "false_approvals": acc["false_approvals"], "false_rejections": acc["false_rejections"]}


def add_accuracy(analytics: dict, calls: Sequence) -> dict:
    """Put each reviewer's accuracy on check frames (:func:`.checks.reviewer_accuracy` of
    ``calls``) into the annotator rows, in all and per day of the call (reviewers who are not
    annotators get rows of their own)."""
    from .checks import reviewer_accuracy

    for name, acc in reviewer_accuracy(calls).items():
        analytics["annotators"].setdefault(name, _finish(_blank())).update(_accuracy_fields(acc))
    for day in sorted({c.time[:10] for c in calls}):
        for name, acc in reviewer_accuracy([c for c in calls if c.time[:10] == day]).items():
            days = analytics["daily"].setdefault(name, {})
            days.setdefault(day, _finish(_blank())).update(_accuracy_fields(acc))
            analytics["daily"][name] = dict(sorted(days.items()))
    return analytics


def owners(dataset) -> list[tuple[Path, str | None]]:
    """``(project, annotator)`` of every project of a dataset: each item's project with its
    assignee, and each annotator's copy."""
    out: list[tuple[Path, str | None]] = []
    assignments = dataset.assignments()
    for item in dataset.items:
        record = assignments.get(item.id, {}).get("annotator")
        out.append((item.project, record.who if record is not None else None))
        out.extend((path, who) for who, path in sorted(item.copies.items()))
    return out


def iter_rows(analytics: dict) -> Iterable[dict]:
    """Table rows: each annotator, the dataset, then the paper's rows."""
    for name, row in analytics["annotators"].items():
        yield {"who": name, **row}
    yield {"who": "dataset", **analytics["dataset"]}
    for ref in analytics["reference"]:
        yield {"who": ref["method"], **{k: v for k, v in ref.items() if k != "method"}}
