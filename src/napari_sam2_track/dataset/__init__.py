"""Datasets: many videos or volumes, several annotators, one shared folder.

Qt-free. A dataset is a folder with a dataset file listing its items and one shared annotation
schema; stages and assignments are append-only records that several processes may write at once.
See ``docs/datasets.md``.

* :mod:`.model` — :class:`Dataset` and :class:`Item`: items, annotators, schema versions,
  project membership, stages and assignments;
* :mod:`.records` — the append-only stage and assignment records;
* :mod:`.summary` — what each project says (frames, objects, flags, QC coverage, effort),
  cached by the project's small files;
* :mod:`.status` — the status table, totals and ETA, assignment plans and the next item.
"""

from .files import DatasetError, project_owner
from .model import Dataset, Item
from .records import ROLES, STAGES, AssignmentRecord, StageRecord

__all__ = [
    "ROLES",
    "STAGES",
    "AssignmentRecord",
    "Dataset",
    "DatasetError",
    "Item",
    "StageRecord",
    "project_owner",
]
