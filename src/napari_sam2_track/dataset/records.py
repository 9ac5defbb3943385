"""The dataset's append-only records: stage changes and assignments, one JSON line each.

Both logs are written with :func:`~napari_sam2_track.project._jsonl.append_records` (one
``os.write`` per append under ``flock``, ``fsync`` before returning, a line torn by a crash cut
off by the next append and skipped by readers), so several processes on a shared folder can
append at once without losing or tearing a record. Nothing is ever rewritten: the latest record
of an item counts.
"""

from __future__ import annotations

import datetime as _dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The stages of an item, in order of progress; ``returned`` is a verification that failed.
STAGES = ("new", "prompted", "tracked", "in_review", "verified", "returned")
Stage = Literal["new", "prompted", "tracked", "in_review", "verified", "returned"]
#: Roles an assignment gives.
ROLES = ("annotator", "reviewer")
Role = Literal["annotator", "reviewer"]

#: The logs' folder in the dataset (the log writer marks it as an empty zarr group).
LOG_DIR = "log"
STAGES_LOG = "log/stages.jsonl"
ASSIGNMENTS_LOG = "log/assignments.jsonl"


def stage_name(text: str) -> str:
    """The stage a user typed (``in review``, ``in-review``, ``IN_REVIEW``) as stored."""
    return "_".join(text.strip().lower().replace("-", " ").split())


def _aware(value: _dt.datetime) -> _dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)


class StageRecord(BaseModel):
    """An item's move to a stage: who moved it, when, and why.

    ``derived`` records are not in the log: they are read from the item's project (prompts
    stored, frames tracked, QC decisions), ``who`` then names what the project says (the
    reviewer of the last decision, the host of the run) or is empty.
    """

    model_config = ConfigDict(extra="ignore")

    item: str
    stage: Stage
    who: str = ""
    time: _dt.datetime
    note: str = ""
    derived: bool = False

    _t = field_validator("time")(classmethod(lambda cls, v: _aware(v)))

    @property
    def when(self) -> _dt.datetime:
        """The time of the move (UTC)."""
        return self.time


class AssignmentRecord(BaseModel):
    """``who`` becomes the ``role`` of ``item`` (``who`` ``None``: the role is given back)."""

    model_config = ConfigDict(extra="ignore")

    item: str
    role: Role = "annotator"
    who: str | None = Field(default=None)
    by: str = ""
    time: _dt.datetime

    _t = field_validator("time")(classmethod(lambda cls, v: _aware(v)))
