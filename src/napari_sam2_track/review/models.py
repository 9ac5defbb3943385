"""Typed records of review and QC, :func:`read_review` (the one reader every consumer uses), and
the interaction log's writer :func:`log_event` with :func:`default_reviewer`.

Decisions, changes and interaction events are append-only JSON-Lines logs in the project's
``review/`` folder (``docs/store.md``). Nothing is overwritten: the latest valid decision on a
frame counts, and a decision stops being valid once a later change (hand edit, prompt,
propagation, undo) overlaps its frame range.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import getpass
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import ReviewError, first_validation_problem
from ..project import CHANGES_LOG, REVIEW_GROUP, TABLE_CHUNK, ProjectStore
from ..project._jsonl import append_records, read_records

#: Frames of per-object tables read per block: 8 table chunks (8,192 rows, 512 KiB per object).
BLOCK = 8 * TABLE_CHUNK

DECISIONS_LOG = "decisions.jsonl"
EVENTS_LOG = "events.jsonl"
#: Environment variable naming the reviewer (default: the OS user).
REVIEWER_ENV = "NAPARI_SAM2_TRACK_REVIEWER"

QCStatus = Literal["satisfactory", "unsatisfactory"]
FlagKind = Literal[
    "low_presence",
    "presence_flip",
    "area_change",
    "jump",
    "span_start",
    "span_end",
    "too_small",
    "border",
    "overlap",
    "edited",
    "unreviewed",
    "disagreement",
    "z_bottom",
    "z_top",
    "volume_change",
    "t_start",
    "t_end",
]
#: Flags that mark where a span starts or ends, or what is not reviewed: routine, not suspect
#: (sampled QC does not add their frames; they get no "worst frame" suggestion).
ROUTINE_FLAGS = ("span_start", "span_end", "unreviewed", "z_bottom", "z_top", "t_start", "t_end")
EventKind = Literal["click", "box", "mask", "brush", "propagate", "navigate", "review", "undo"]


class _Range(BaseModel):
    """An object over the frames ``start..end`` (inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    object: int
    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.end < self.start:
            raise ValueError(f"frame range {self.start}-{self.end} ends before it starts")
        return self

    @property
    def frames(self) -> str:
        return f"{self.start}-{self.end}"

    def overlaps(self, other: "_Range") -> bool:
        return self.object == other.object and self.start <= other.end and other.start <= self.end


class Masklet(_Range):
    """An object over a frame range: the unit of QC (by default one presence span)."""


class Flag(_Range):
    """Frames of an object that deserve a look: ``kind``, the worst ``frame`` of the run, its
    ``score`` (larger is worse) and a one-line ``reason``."""

    kind: FlagKind
    frame: int
    score: float
    reason: str


class Suggestion(BaseModel):
    """A frame to check, or to add as a keyframe, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    object: int
    frame: int
    why: str


def _aware(value: _dt.datetime) -> _dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)


#: A point in time; read without a zone, it is taken as UTC.
Time = Annotated[_dt.datetime, AfterValidator(_aware)]


class QCDecision(_Range):
    """A reviewer's verdict on a masklet.

    ``basis`` says what it judges: the whole ``masklet`` (the default), one sampled ``frame``
    of the sample ``sample``, or the masklet's verdict derived from that ``sample``'s frames.
    ``runs``: propagation runs in flight when it was taken; a change those runs record on its
    frames invalidates it, whenever that change is recorded (``docs/review.md``).
    """

    status: QCStatus
    reviewer: str = Field(min_length=1)
    time: Time
    comment: str = ""
    basis: Literal["masklet", "frame", "sample"] = "masklet"
    sample: str | None = None
    runs: list[int] = Field(default_factory=list)

    def record(self) -> dict:
        """The JSON record of ``decisions.jsonl`` (fields left at their defaults are omitted,
        so plain masklet decisions read as they always did)."""
        out = self.model_dump(mode="json")
        for key, default in (("basis", "masklet"), ("sample", None), ("runs", [])):
            if out.get(key) == default:
                out.pop(key)
        return out


class SampleRecord(BaseModel):
    """The frames of a masklet drawn for sampled QC: a ``sample`` record of ``decisions.jsonl``.

    ``frames`` are every frame to judge, sorted: ``drawn`` at random with ``seed``, plus the
    flagged frames of the masklet (always included) and any hidden extra frames. ``rule`` is
    the fraction of judged frames that must pass for the masklet to be satisfactory.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sample"] = "sample"
    id: str = Field(min_length=1)
    object: int
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    seed: int
    size: int = Field(ge=0)
    frames: list[int]
    drawn: list[int]
    flagged: list[int] = Field(default_factory=list)
    rule: float = Field(ge=0, le=1)
    reviewer: str = Field(min_length=1)
    time: Time


class Change(_Range):
    """Frames of an object changed by a hand ``edit``, a ``prompt``, a ``propagation`` run or
    an ``undo``; written by the project store."""

    source: Literal["edit", "prompt", "propagation", "undo"]
    reason: str
    time: Time
    run: int | None = None

    def describe(self) -> str:
        return f"{self.reason} (frames {self.frames}, {self.time.isoformat(timespec='seconds')})"


class Event(BaseModel):
    """An interaction: ``kind`` by ``annotator`` at ``time`` on ``object`` over ``frames``
    (``[first, last]``); ``details`` holds kind-specific fields (``seconds``, ``objects``,
    ``positive``, ``status`` ...)."""

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    annotator: str = Field(min_length=1)
    time: Time
    object: int | None = None
    frames: tuple[int, int] | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("frames")
    @classmethod
    def _ordered(cls, v):
        if v is not None and not (0 <= v[0] <= v[1]):
            raise ValueError(f"frames {v[0]}-{v[1]} must be a range first <= last, from 0")
        return v


class DecisionStatus(BaseModel):
    """A decision as read back: whether it still holds and, if not, the change that ended it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: QCDecision
    invalidated_by: Change | None = None

    @property
    def valid(self) -> bool:
        return self.invalidated_by is None


def log_dir(project: ProjectStore | str | Path) -> Path:
    """The project's ``review/`` folder."""
    path = project.path if isinstance(project, ProjectStore) else Path(project)
    return path / REVIEW_GROUP


def _load(model, path: Path) -> list:
    """The records of a log that are valid ``model``s; the others (written by a newer version,
    damaged by hand, not UTF-8) are skipped with one warning naming their lines."""
    return read_records(path, model.model_validate)


class ReviewState:
    """Decisions and changes of a project, with the rules that say which decision counts.

    * a decision is **invalidated** by the first change of the same object, made after it, whose
      frames overlap its range;
    * on each frame, the **latest valid** decision covering it gives the frame's QC status.
    """

    def __init__(self, decisions: list[QCDecision], changes: list[Change],
                 samples: list[SampleRecord] | None = None):
        self.decisions = sorted(decisions, key=lambda d: d.time)
        self.samples = sorted(samples or [], key=lambda r: r.time)
        self.changes = sorted(changes, key=lambda c: c.time)
        self._by_object: dict[int, list[Change]] = {}
        for c in self.changes:
            self._by_object.setdefault(c.object, []).append(c)
        self.statuses = [DecisionStatus(decision=d, invalidated_by=self._invalidation(d))
                         for d in self.decisions]
        self._intervals: dict[int, list[tuple[int, int, QCDecision]]] = {}

    def _invalidation(self, d: QCDecision) -> Change | None:
        changes = self._by_object.get(d.object, [])
        i = bisect.bisect_right([c.time for c in changes], d.time)
        # a change in the same instant as the decision counts as after it (the safe side)
        while i > 0 and changes[i - 1].time == d.time:
            i -= 1
        later = next((c for c in changes[i:] if c.overlaps(d)), None)
        if not d.runs:
            return later
        # a run in flight when the decision was taken rewrites its frames: its start record
        # (before the decision) invalidates it too, even if the run never wrote its end record
        during = next((c for c in changes[:i] if c.run in d.runs and c.overlaps(d)), None)
        return during if during is not None else later

    def valid_decisions(self, obj_id: int | None = None) -> list[QCDecision]:
        """Valid decisions (of one object), oldest first."""
        return [s.decision for s in self.statuses
                if s.valid and (obj_id is None or s.decision.object == obj_id)]

    def latest(self, masklet: _Range) -> DecisionStatus | None:
        """The latest decision on exactly this object and frame range."""
        for s in reversed(self.statuses):
            d = s.decision
            if (d.object, d.start, d.end) == (masklet.object, masklet.start, masklet.end):
                return s
        return None

    def intervals(self, obj_id: int) -> list[tuple[int, int, QCDecision]]:
        """Disjoint ``(first, last, decision)`` ranges: the decision that counts on each frame."""
        if obj_id not in self._intervals:
            painted: list[tuple[int, int, QCDecision]] = []
            for d in self.valid_decisions(obj_id):  # later decisions paint over earlier ones
                kept = []
                for a, b, old in painted:
                    if b < d.start or a > d.end:
                        kept.append((a, b, old))
                        continue
                    if a < d.start:
                        kept.append((a, d.start - 1, old))
                    if b > d.end:
                        kept.append((d.end + 1, b, old))
                kept.append((d.start, d.end, d))
                painted = sorted(kept, key=lambda r: r[0])
            self._intervals[obj_id] = painted
        return self._intervals[obj_id]

    def decision_at(self, obj_id: int, frame: int) -> QCDecision | None:
        """The decision that counts on one frame of an object, if any."""
        intervals = self.intervals(obj_id)
        i = bisect.bisect_right([a for a, _, _ in intervals], frame) - 1
        if i >= 0 and intervals[i][0] <= frame <= intervals[i][1]:
            return intervals[i][2]
        return None

    def ranges(self, obj_id: int, status: QCStatus = "satisfactory") -> list[tuple[int, int]]:
        """Frame ranges of an object whose QC status is ``status`` (merged, sorted)."""
        out: list[tuple[int, int]] = []
        for a, b, d in self.intervals(obj_id):
            if d.status != status:
                continue
            if out and out[-1][1] + 1 == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out

    def approved_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """``{object: [(first, last), ...]}`` of frames approved as satisfactory."""
        objects = sorted({d.object for d in self.valid_decisions()})
        return {o: r for o in objects if (r := self.ranges(o, "satisfactory"))}

    def reviewed_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """``{object: [(first, last), ...]}`` of frames with a valid decision of either kind."""
        out = {}
        for o in sorted({d.object for d in self.valid_decisions()}):
            out[o] = [(a, b) for a, b, _ in self.intervals(o)]
        return out


def _decision_or_sample(record: dict) -> QCDecision | SampleRecord:
    if record.get("kind") == "sample":
        return SampleRecord.model_validate(record)
    return QCDecision.model_validate(record)


def read_review(project: ProjectStore | str | Path) -> ReviewState:
    """The QC state of a project: every decision, sample and change, read from its ``review/``
    logs."""
    folder = log_dir(project)
    records = read_records(folder / DECISIONS_LOG, _decision_or_sample)
    return ReviewState(
        [r for r in records if isinstance(r, QCDecision)],
        _load(Change, folder / CHANGES_LOG),
        [r for r in records if isinstance(r, SampleRecord)],
    )


def read_events(project: ProjectStore | str | Path) -> list[Event]:
    """The interaction events of a project, oldest first."""
    return sorted(_load(Event, log_dir(project) / EVENTS_LOG), key=lambda e: e.time)


def utf8_text(value: str, what: str, fix: str) -> str:
    """``value`` if it is valid UTF-8 text; bytes that are not (kept by Python as surrogate
    escapes in arguments and environment variables) give one line naming the first of them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        try:
            byte = f"byte 0x{value[exc.start].encode('utf-8', 'surrogateescape').hex()}"
        except UnicodeEncodeError:
            byte = f"code point U+{ord(value[exc.start]):04X}"
        raise ReviewError(f"{what} is not valid UTF-8 text ({byte} at character {exc.start + 1}); "
                          f"{fix}") from None
    return value


def default_reviewer() -> str:
    """The reviewer's name: ``$NAPARI_SAM2_TRACK_REVIEWER``, else the OS user.

    Raises :class:`ReviewError` (one line naming the variable) when the name is not valid
    UTF-8 text, as it could not be written to the project's logs."""
    name = os.environ.get(REVIEWER_ENV, "").strip()
    if name:
        return utf8_text(name, f"${REVIEWER_ENV}", "set it to the name as UTF-8 text")
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "unknown"
    return utf8_text(user, "the OS user name", f"set ${REVIEWER_ENV} to the name as UTF-8 text")


def log_event(
    project: ProjectStore | str | Path,
    kind: str,
    *,
    annotator: str | None = None,
    object: int | None = None,  # noqa: A002 - the record's field name
    frames: tuple[int, int] | None = None,
    time: _dt.datetime | None = None,
    durable: bool = True,
    **details,
) -> Event:
    """Append one interaction to the project's event log and return it.

    ``kind`` is ``click``, ``box``, ``mask``, ``brush``, ``propagate``, ``navigate``, ``review``
    or ``undo``; ``details`` are stored as given (e.g. ``seconds=`` and ``objects=`` for a
    propagation, ``positive=`` for a click, ``status=`` for a review). ``durable=False`` skips
    the ``fsync`` (for frequent events such as navigation).
    """
    try:
        event = Event(
            kind=kind,
            annotator=annotator or default_reviewer(),
            time=time or _dt.datetime.now(_dt.timezone.utc),
            object=object,
            frames=frames,
            details=details,
        )
    except ValidationError as exc:
        raise ReviewError(f"cannot log this {kind!r} event: {first_validation_problem(exc)}") from None
    append_records(log_dir(project) / EVENTS_LOG, [event.model_dump(mode="json")], durable=durable)
    return event
