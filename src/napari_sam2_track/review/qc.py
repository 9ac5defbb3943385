"""QC verification: satisfactory/unsatisfactory decisions per masklet, and the correction queue.

A decision is one line appended to ``review/decisions.jsonl`` and made durable (flush +
``fsync``) before :func:`decide` returns, so a crash right after it loses nothing. Decisions
are never rewritten: the latest valid one counts (:class:`~.models.ReviewState`).

Deciding never takes the project's write lock: the log is appended under its own ``flock``,
and the object and frames are checked against what is stored, read without the lock. A
decision taken while a propagation run rewrites the object is recorded with that run's id, so
the run's change records invalidate it (``docs/review.md``, "QC and the write lock").
"""

from __future__ import annotations

from pathlib import Path

from ..project._jsonl import append_records, now_iso
from ..errors import ReviewError
from ..project import ProjectStore
from .models import (
    DECISIONS_LOG,
    DecisionStatus,
    Masklet,
    QCDecision,
    QCStatus,
    default_reviewer,
    log_dir,
    log_event,
    read_review,
)


def _store(project: ProjectStore | str | Path) -> ProjectStore:
    return project if isinstance(project, ProjectStore) else ProjectStore.open(project, mode="r")


def require_object(store: ProjectStore, obj_id: int) -> None:
    """Refuse (one line listing the project's objects) an object that is not in ``store``."""
    if obj_id not in store.object_ids():
        known = ", ".join(map(str, store.object_ids())) or "none"
        raise ReviewError(f"object {obj_id} is not in {store.path.name} (objects: {known})")


def decide(
    project: ProjectStore | str | Path,
    obj_id: int,
    start: int,
    end: int,
    status: QCStatus,
    *,
    reviewer: str | None = None,
    comment: str = "",
    log: bool = True,
    basis: str = "masklet",
    sample: str | None = None,
    seconds: float | None = None,
) -> QCDecision:
    """Record a decision on object ``obj_id`` over frames ``start..end``; durable on return.

    Needs no write lock: another process may track or decide at the same time. With ``log`` a
    ``review`` event is appended to the interaction log as well (the reviewer is its
    annotator; ``seconds`` the time spent, when known), so decisions from the docks, scripts
    and the CLI all count in reports. ``basis`` and ``sample``: see :class:`QCDecision`.
    """
    store = _store(project)
    n = store.num_frames
    if not (0 <= start <= end < n):
        require_object(store, obj_id)
        raise ReviewError(f"frames {start}-{end} are not a range inside the video (frames 0-{n - 1})")
    return _record(store, obj_id, [(start, end)], status, reviewer=reviewer, comment=comment, log=log,
                   basis=basis, sample=sample, seconds=seconds)[0]


def _record(store: ProjectStore, obj_id: int, ranges: list[tuple[int, int]], status: QCStatus, *,
            reviewer: str | None, comment: str, log: bool, basis: str = "masklet",
            sample: str | None = None, seconds: float | None = None) -> list[QCDecision]:
    """One decision per plane range, appended to the log in one durable write."""
    require_object(store, obj_id)
    if status not in ("satisfactory", "unsatisfactory"):
        raise ReviewError(f"status must be satisfactory or unsatisfactory, not {status!r}")
    reviewer = (reviewer or default_reviewer()).strip()
    if not reviewer:
        raise ReviewError("the reviewer name is empty; pass --reviewer NAME")
    time = now_iso()  # before the runs are read: a run begun after this has a later change record
    runs = runs_in_flight(store)
    decisions = [QCDecision(object=obj_id, start=a, end=b, status=status, reviewer=reviewer, time=time,
                            comment=" ".join(comment.split()), basis=basis, sample=sample, runs=runs)
                 for a, b in ranges]
    append_records(log_dir(store) / DECISIONS_LOG, [d.record() for d in decisions])
    if log:
        extra = {} if seconds is None else {"seconds": float(seconds)}
        if basis != "masklet":
            extra["basis"] = basis
        log_event(store, "review", annotator=reviewer, object=obj_id,
                  frames=(ranges[0][0], ranges[-1][1]), status=status, **extra)
    return decisions


def box_ranges(store: ProjectStore, t_range: tuple[int, int] | None,
               z_range: tuple[int, int] | None) -> list[tuple[int, int]]:
    """The plane ranges of the (t range, z range) box of a volume project: one ``(first,
    last)`` per timepoint (``None``: every timepoint, or every slice)."""
    if not store.is_volume:
        raise ReviewError(f"{store.path.name} is not a volume project; give its frames with --frames A-B")
    n_t, n_z = store.volume_shape[:2]
    (t0, t1), (z0, z1) = t_range or (0, n_t - 1), z_range or (0, n_z - 1)
    for (a, b), what, n in (((t0, t1), "timepoints", n_t), ((z0, z1), "slices", n_z)):
        if not 0 <= a <= b < n:
            flag = "--t" if what == "timepoints" else "--z"
            raise ReviewError(f"{flag} {a}-{b} is not a range inside the project's {what} (0-{n - 1})")
    return [(store.plane(t, z0), store.plane(t, z1)) for t in range(t0, t1 + 1)]


def decide_box(
    project: ProjectStore | str | Path,
    obj_id: int,
    t_range: tuple[int, int] | None,
    z_range: tuple[int, int] | None,
    status: QCStatus,
    *,
    reviewer: str | None = None,
    comment: str = "",
    log: bool = True,
    seconds: float | None = None,
) -> list[QCDecision]:
    """Record a decision on a (t range, z range) box of a volume project: one decision per
    timepoint over the box's slices (plane ranges, see :func:`box_ranges`), written together and
    durable on return. A change of a plane invalidates the decision of its timepoint only."""
    store = _store(project)
    ranges = box_ranges(store, t_range, z_range)
    return _record(store, obj_id, ranges, status, reviewer=reviewer, comment=comment, log=log,
                   seconds=seconds)


def runs_in_flight(store: ProjectStore) -> list[int]:
    """Ids of the propagation runs whose writer is alive now (read without the lock)."""
    return sorted(run for run, status in store.run_statuses().items() if status == "running")


def approve(project, obj_id: int, start: int, end: int, **kw) -> QCDecision:
    """Mark a masklet satisfactory (see :func:`decide`)."""
    return decide(project, obj_id, start, end, "satisfactory", **kw)


def reject(project, obj_id: int, start: int, end: int, **kw) -> QCDecision:
    """Mark a masklet unsatisfactory: it joins the correction queue (see :func:`decide`)."""
    return decide(project, obj_id, start, end, "unsatisfactory", **kw)


def masklets(project: ProjectStore | str | Path, obj_id: int | None = None) -> list[Masklet]:
    """The default masklets: each presence span of each object (or of one)."""
    from .flags import find_flags

    store = _store(project)
    objects = None if obj_id is None else [obj_id]
    return find_flags(store, objects=objects).spans


def correction_queue(project: ProjectStore | str | Path) -> list[DecisionStatus]:
    """Masklets whose latest decision is a still-valid ``unsatisfactory``, by object and frame."""
    state = read_review(project)
    latest: dict[tuple[int, int, int], DecisionStatus] = {}
    for s in state.statuses:
        d = s.decision
        latest[(d.object, d.start, d.end)] = s
    queue = [s for s in latest.values() if s.valid and s.decision.status == "unsatisfactory"]
    return sorted(queue, key=lambda s: (s.decision.object, s.decision.start))


def step_in_queue(queue: list[DecisionStatus], obj_id: int, frame: int, *,
                  backwards: bool = False) -> DecisionStatus | None:
    """The masklet of ``queue`` (sorted as :func:`correction_queue` sorts it) after (or
    before) position ``(obj_id, frame)``, wrapping around; ``None`` for an empty queue."""
    if not queue:
        return None
    keys = [(s.decision.object, s.decision.start) for s in queue]
    here = (obj_id, frame)
    if backwards:
        before = [i for i, k in enumerate(keys) if k < here]
        return queue[before[-1] if before else -1]
    after = [i for i, k in enumerate(keys) if k > here]
    return queue[after[0] if after else 0]


def next_correction(project, obj_id: int, frame: int, *, backwards: bool = False) -> DecisionStatus | None:
    """The queued masklet after (or before) position ``(obj_id, frame)``, wrapping around."""
    return step_in_queue(correction_queue(project), obj_id, frame, backwards=backwards)


def previous_correction(project, obj_id: int, frame: int) -> DecisionStatus | None:
    """The queued masklet before position ``(obj_id, frame)``, wrapping around."""
    return next_correction(project, obj_id, frame, backwards=True)


def masklet_statuses(project: ProjectStore | str | Path) -> list[dict]:
    """Every default masklet and every decided range, with its latest decision and validity
    (judgments of single sampled frames are left to :func:`.sampling.verdicts`)."""
    store = _store(project)
    state = read_review(store)
    ranges = {(m.object, m.start, m.end) for m in masklets(store)}
    ranges |= {(d.object, d.start, d.end) for d in state.decisions if d.basis != "frame"}
    out = []
    for o, a, b in sorted(ranges):
        latest = state.latest(Masklet(object=o, start=a, end=b))
        row = {"object": o, "start": a, "end": b, "status": "unreviewed", "reviewer": "", "time": "",
               "comment": "", "invalidated_by": ""}
        if latest is not None:
            d = latest.decision
            row.update(status=d.status if latest.valid else "invalidated", reviewer=d.reviewer,
                       time=d.time.isoformat(), comment=d.comment)
            if not latest.valid:
                row["invalidated_by"] = latest.invalidated_by.describe()
        out.append(row)
    return out
