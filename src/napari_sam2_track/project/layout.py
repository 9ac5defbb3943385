"""Names and codes of the project store's layout, shared by the store, its writer and readers.

The layout itself is specified in ``docs/store.md``.
"""

from __future__ import annotations

#: Store format. 1: one full-frame bool array per object (``objects/<id>/mask``).
#: 2: per-object masks as label layers (``labels/masklets/0`` + ``overlaps/<k>``).
#: 3: ``axes`` in the metadata; volume projects (``"tzyx"``: 4-D layers, one chunk per plane).
FORMAT_VERSION = 3
ATTR_KEY = "napari_sam2_track"
LABELS_NAME = "masklets"
LABELS_PATH = f"labels/{LABELS_NAME}/0"
#: Group of the overlap layers ``overlaps/1``, ``overlaps/2``, ... (format 2).
OVERLAPS_GROUP = "overlaps"
#: Per-object full-frame mask array of format 1 (read-only support and migration).
V1_MASK_PATH = "objects/{id}/mask"


def overlap_path(layer: int) -> str:
    """Array of overlap layer ``layer`` (1, 2, ...); layer 0 is :data:`LABELS_PATH`."""
    return f"{OVERLAPS_GROUP}/{layer}"


#: Per-object table: one row per frame.
TABLE_PATH = "objects/{id}/table"


def table_path(obj_id: int) -> str:
    """Array of object ``obj_id``'s per-frame table (for messages; read it with
    :meth:`~.store.ProjectStore.table_rows`)."""
    return TABLE_PATH.format(id=obj_id)


#: Group of the second opinions ``second_opinion/<name>``, each a store of this layout.
SECOND_OPINION_GROUP = "second_opinion"


def compare_path(obj_id: int) -> str:
    """Array, in a second opinion, of object ``obj_id``'s per-frame comparison with the project."""
    return f"objects/{obj_id}/compare"


#: Columns of ``objects/<id>/table``.
TABLE_COLUMNS = ("presence", "area", "x0", "y0", "x1", "y1", "state", "run")
COL = {name: i for i, name in enumerate(TABLE_COLUMNS)}
TABLE_CHUNK = 1024
#: Folder (an empty zarr group) of the append-only JSON-Lines logs, and the change log in it.
REVIEW_GROUP = "review"
CHANGES_LOG = "changes.jsonl"
#: Group of the undo snapshots of earlier releases ``undo/<id>`` (read as track versions: :mod:`.versions`).
UNDO_GROUP = "undo"
#: Group of the part tables of segmented runs ``segment_parts/run-<id>/<segment>`` (:mod:`.parts`).
PARTS_GROUP = "segment_parts"

#: Frame states, as stored in the ``state`` column. A row of NaN means "not yet run".
STATE_NOT_RUN, STATE_PROMPTED, STATE_PROPAGATED, STATE_EDITED, STATE_ABSENT = 0, 1, 2, 3, 4
STATE_NAMES = {
    STATE_NOT_RUN: "not_run",
    STATE_PROMPTED: "prompted",
    STATE_PROPAGATED: "propagated",
    STATE_EDITED: "edited",
    STATE_ABSENT: "absent",
}
