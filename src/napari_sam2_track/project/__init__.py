"""The project on disk: a zarr v3 store, its single writer thread and its layout constants.

Only this package knows where things are stored: everything else reads and writes through
:class:`ProjectStore`'s public methods, :mod:`.versions` (track versions) and :mod:`.parts` (the
part tables of segmented runs). See ``docs/store.md`` for the layout specification.
"""

from __future__ import annotations

from .layout import (
    ATTR_KEY,
    CHANGES_LOG,
    COL,
    FORMAT_VERSION,
    LABELS_NAME,
    LABELS_PATH,
    REVIEW_GROUP,
    STATE_ABSENT,
    STATE_EDITED,
    STATE_NAMES,
    STATE_NOT_RUN,
    STATE_PROMPTED,
    STATE_PROPAGATED,
    TABLE_CHUNK,
    TABLE_COLUMNS,
    table_path,
)
from .lock import LockHolder, ProjectLock, StaleLockWarning

#: Names imported on first use, so that reading a project's small files (its lock, a log)
#: does not import the store and what it needs (numpy, the prompt models): ``dataset status``
#: stays quick as a command.
_LAZY = {"is_project": "placement", "ProjectStore": "store", "mask_stats": "store",
         "StoreWriter": "writer", "WriteTarget": "writer"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ATTR_KEY",
    "CHANGES_LOG",
    "COL",
    "FORMAT_VERSION",
    "LABELS_NAME",
    "LABELS_PATH",
    "REVIEW_GROUP",
    "STATE_ABSENT",
    "STATE_EDITED",
    "STATE_NAMES",
    "STATE_NOT_RUN",
    "STATE_PROMPTED",
    "STATE_PROPAGATED",
    "TABLE_CHUNK",
    "TABLE_COLUMNS",
    "LockHolder",
    "ProjectLock",
    "ProjectStore",
    "StaleLockWarning",
    "StoreWriter",
    "WriteTarget",
    "is_project",
    "mask_stats",
    "table_path",
]
