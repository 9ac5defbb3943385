"""Sampled QC: a verifier judges a seeded random sample of a masklet's frames, not all of them.

:func:`draw_sample` draws the frames of a masklet to judge — ``size`` (or ``fraction``) frames at
random with a recorded ``seed``, plus the worst frame of every flagged run in the masklet, plus
any extra frames the caller mixes in (a dataset's check frames) — and appends a ``sample``
record to ``review/decisions.jsonl``. :func:`judge_frame` records the verifier's decision on one
sampled frame (a decision with ``basis: frame``); once every frame of the sample is judged, the
masklet's verdict is derived by the schema's rule (``review.sample_pass``: the fraction of
sampled frames that must pass) and recorded as a decision on the whole masklet (``basis:
sample``), so exports, the correction queue and ``review`` use it as any other decision.

Nothing here takes the project's write lock (see :mod:`.qc`). ``docs/review.md`` ("Sampled QC")
documents the records and the rule.
"""

from __future__ import annotations

import math
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ReviewError, summarize_list
from ..project import STATE_NOT_RUN, ProjectStore
from ..project._jsonl import append_records, now_iso
from .models import (
    DECISIONS_LOG,
    ROUTINE_FLAGS,
    QCDecision,
    QCStatus,
    ReviewState,
    SampleRecord,
    default_reviewer,
    log_dir,
    log_event,
    read_review,
)
from .qc import decide, masklets, require_object


def _store(project: ProjectStore | str | Path) -> ProjectStore:
    return project if isinstance(project, ProjectStore) else ProjectStore.open(project, mode="r")


def sample_size(num_frames: int, *, size: int | None = None, fraction: float | None = None,
                schema=None) -> int:
    """How many frames to draw from a masklet of ``num_frames`` frames: ``size``, else
    ``fraction`` of them (at least one), else the schema's ``review.sample_fraction`` or
    ``review.sample_size``; never more than the masklet has."""
    if size is not None and fraction is not None:
        raise ReviewError("give a sample size or a fraction, not both")
    if size is not None and size < 1:
        raise ReviewError(f"the sample size must be at least 1, not {size}")
    if fraction is not None and not (0 < fraction <= 1):
        raise ReviewError(f"the sample fraction must be above 0 and at most 1, not {fraction:g}")
    if size is None and fraction is None and schema is not None:
        fraction = schema.review.sample_fraction
        size = None if fraction is not None else schema.review.sample_size
    if fraction is not None:
        size = max(1, math.ceil(fraction * num_frames))
    return min(int(size if size is not None else 10), num_frames)


def _tracked_frames(store: ProjectStore, obj_id: int, start: int, end: int) -> np.ndarray:
    states = store.states(obj_id)[start : end + 1]
    return np.flatnonzero(states != STATE_NOT_RUN) + start


def _flagged_frames(store: ProjectStore, obj_id: int, start: int, end: int) -> list[int]:
    """The worst frame of each flagged run of the object inside ``start..end``."""
    from .flags import find_flags

    flags = find_flags(store, objects=[obj_id]).flags_of(obj_id)
    return sorted({f.frame for f in flags
                   if f.kind not in ROUTINE_FLAGS and start <= f.frame <= end})


def masklet_of(store: ProjectStore, obj_id: int, frame: int | None = None,
               frames: tuple[int, int] | None = None) -> tuple[int, int]:
    """The masklet ``frames`` if given, else the object's presence span holding ``frame`` (its
    first span when ``frame`` is ``None``); one line when there is none."""
    require_object(store, obj_id)
    if frames is not None:
        a, b = frames
        if not 0 <= a <= b < store.num_frames:
            raise ReviewError(f"frames {a}-{b} are not a range inside the video "
                              f"(frames 0-{store.num_frames - 1})")
        return a, b
    spans = [(m.start, m.end) for m in masklets(store, obj_id)]
    if not spans:
        raise ReviewError(f"object {obj_id} has no visible frames; pass --frames A-B")
    if frame is None:
        return spans[0]
    for a, b in spans:
        if a <= frame <= b:
            return a, b
    raise ReviewError(f"frame {frame} is in no presence span of object {obj_id} "
                      f"(spans {summarize_list(f'{a}-{b}' for a, b in spans)}); pass --frames A-B")


def draw_sample(
    project: ProjectStore | str | Path,
    obj_id: int,
    start: int,
    end: int,
    *,
    size: int | None = None,
    fraction: float | None = None,
    seed: int | None = None,
    reviewer: str | None = None,
    extra_frames: list[int] | tuple[int, ...] = (),
    rule: float | None = None,
    record: bool = True,
) -> SampleRecord:
    """Draw the frames of masklet ``obj_id`` ``start..end`` to judge and (with ``record``)
    append the sample to the audit trail; durable on return, no write lock taken.

    Frames are drawn among those the object was tracked on. The same ``seed`` on the same
    masklet and tracked frames draws the same frames. ``extra_frames`` (inside the masklet) are
    added without being told apart from the others.
    """
    store = _store(project)
    a, b = masklet_of(store, obj_id, frames=(start, end))
    tracked = _tracked_frames(store, obj_id, a, b)
    if tracked.size == 0:
        raise ReviewError(f"object {obj_id} was never tracked on frames {a}-{b}; track them first")
    reviewer = (reviewer or default_reviewer()).strip()
    if not reviewer:
        raise ReviewError("the reviewer name is empty; pass --reviewer NAME")
    schema = store.schema
    n = sample_size(int(tracked.size), size=size, fraction=fraction, schema=schema)
    seed = int(seed) if seed is not None else secrets.randbits(32)
    flagged = [f for f in _flagged_frames(store, obj_id, a, b) if f in set(tracked.tolist())]
    tracked_set = set(tracked.tolist())
    extra = sorted({int(f) for f in extra_frames if int(f) in tracked_set})
    rng = np.random.default_rng(seed)
    drawn = sorted(int(f) for f in rng.choice(tracked, size=n, replace=False))
    frames = sorted(set(drawn) | set(flagged) | set(extra))
    sample = SampleRecord(
        object=obj_id, start=a, end=b, id=uuid.uuid4().hex[:12], seed=seed, size=n,
        frames=frames, drawn=drawn, flagged=flagged,
        rule=schema.review.sample_pass if rule is None else rule, reviewer=reviewer, time=now_iso(),
    )
    if record:
        append_records(log_dir(store) / DECISIONS_LOG, [sample.model_dump(mode="json")])
    return sample


def current_sample(state: ReviewState, obj_id: int, start: int | None = None,
                   end: int | None = None, frame: int | None = None) -> SampleRecord | None:
    """The latest sample of an object (on exactly ``start..end``, or holding ``frame``)."""
    for s in reversed(state.samples):
        if s.object != obj_id:
            continue
        if start is not None and (s.start, s.end) != (start, end):
            continue
        if frame is not None and frame not in s.frames:
            continue
        return s
    return None


@dataclass
class Verdict:
    """Where the sampled QC of one masklet stands."""

    sample: str
    object: int
    start: int
    end: int
    frames: list[int]
    passed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    rule: float = 1.0
    #: ``pending`` until every sampled frame has a valid judgment, then the derived status
    status: str = "pending"
    #: the recorded masklet decision carrying the verdict, if any, and whether it still holds
    recorded: str = ""

    @property
    def pass_fraction(self) -> float | None:
        judged = len(self.passed) + len(self.failed)
        return len(self.passed) / judged if judged else None

    def as_dict(self) -> dict:
        return {**asdict(self), "pass_fraction": self.pass_fraction}


def verdict(state: ReviewState, sample: SampleRecord) -> Verdict:
    """The sample's judged, passed and pending frames, and the verdict by its rule."""
    latest: dict[int, QCDecision] = {}
    for s in state.statuses:
        d = s.decision
        if d.sample == sample.id and d.basis == "frame" and s.valid:
            latest[d.start] = d  # statuses are oldest first: the latest judgment wins
    out = Verdict(sample=sample.id, object=sample.object, start=sample.start, end=sample.end,
                  frames=list(sample.frames), rule=sample.rule)
    for f in sample.frames:
        d = latest.get(f)
        if d is None:
            out.pending.append(f)
        elif d.status == "satisfactory":
            out.passed.append(f)
        else:
            out.failed.append(f)
    if not out.pending:
        ok = (out.pass_fraction or 0.0) >= sample.rule - 1e-12
        out.status = "satisfactory" if ok else "unsatisfactory"
    for s in reversed(state.statuses):
        d = s.decision
        if d.sample == sample.id and d.basis == "sample":
            out.recorded = d.status if s.valid else "invalidated"
            break
    return out


def judge_frame(
    project: ProjectStore | str | Path,
    obj_id: int,
    frame: int,
    status: QCStatus,
    *,
    reviewer: str | None = None,
    comment: str = "",
    seconds: float | None = None,
) -> tuple[QCDecision, Verdict]:
    """Record a decision on one frame of the object's current sample holding ``frame``; when
    that completes the sample, record the masklet's derived verdict as well. No write lock.

    Returns the frame's decision and the sample's :class:`Verdict` after it.
    """
    store = _store(project)
    require_object(store, obj_id)
    sample = current_sample(read_review(store), obj_id, frame=frame)
    if sample is None:
        raise ReviewError(f"frame {frame} of object {obj_id} is in no sample; draw one with "
                          f"'review sample {store.path.name} {obj_id}' (or decide the masklet)")
    decision = decide(store, obj_id, frame, frame, status, reviewer=reviewer, comment=comment,
                      log=False, basis="frame", sample=sample.id)
    extra = {} if seconds is None else {"seconds": float(seconds)}
    log_event(store, "review", annotator=decision.reviewer, object=obj_id,
              frames=(sample.start, sample.end), status=status, basis="frame", frame=frame, **extra)
    return decision, record_verdict(store, sample, reviewer=decision.reviewer)


def record_verdict(project: ProjectStore | str | Path, sample: SampleRecord, *,
                   reviewer: str | None = None) -> Verdict:
    """Record the sample's derived verdict on its masklet when every frame is judged and the
    latest recorded verdict differs (or was invalidated); returns the verdict."""
    store = _store(project)
    result = verdict(read_review(store), sample)
    if result.status != "pending" and result.recorded != result.status:
        judged = len(result.passed) + len(result.failed)
        comment = (f"sampled QC: {len(result.passed)} of {judged} frames pass "
                   f"(rule: at least {sample.rule:.0%})")
        decide(store, sample.object, sample.start, sample.end, result.status, reviewer=reviewer,
               comment=comment, log=False, basis="sample", sample=sample.id)
        result.recorded = result.status
    return result


def verdicts(project: ProjectStore | str | Path, obj_id: int | None = None) -> list[Verdict]:
    """The verdict of the latest sample of every masklet (of one object), by object and frame."""
    state = read_review(project)
    latest: dict[tuple[int, int, int], SampleRecord] = {}
    for s in state.samples:
        if obj_id is None or s.object == obj_id:
            latest[(s.object, s.start, s.end)] = s
    return [verdict(state, latest[k]) for k in sorted(latest)]
