"""Part tables of time-parallel runs: where each segment task writes its table rows.

A segment of a run tracked on its own (``track --segments``, see
:mod:`napari_sam2_track.distributed.segments`) never writes the per-object tables, whose
1024-frame chunks segments would share. Its rows go to a part table of its own::

    segment_parts/run-<run>/<segment>   float64 (objects, frames of the segment, 8), NaN = not
                                        written; attributes {objects, start, end}

The client (holding the project's lock) creates the parts before the segments start
(:func:`create_part`) and merges them into the objects' tables when they end
(:func:`merge_parts`). A segment task writes through a :class:`PartWriter`, the
:class:`~.writer.WriteTarget` of a :class:`~.writer.StoreWriter`: its own frames' chunks of
the label layers and its part table's rows, nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import StoreError
from ._chunks import ChunkIO, UnsupportedChunkLayout, write_table_rows
from .layer_arrays import LayerArrays
from .layout import ATTR_KEY, COL, FORMAT_VERSION, PARTS_GROUP, TABLE_COLUMNS, table_path
from .store import ProjectStore
from .volume import plane_shape, planes_of
from .writer import Rows

#: Rows per chunk of a part table.
PART_CHUNK = 1024


def part_path(run_id: int, segment: int) -> str:
    """Array of segment ``segment``'s part table in run ``run_id``."""
    return f"{PARTS_GROUP}/run-{run_id}/{segment}"


def has_parts(store: ProjectStore) -> bool:
    """Whether the project holds part tables not yet merged."""
    return PARTS_GROUP in store.group


def create_part(store: ProjectStore, run_id: int, segment: int, start: int, end: int) -> None:
    """Create the part table of segment ``segment`` (frames ``start..end``) of run ``run_id``
    for every object of the project, unless it exists (client side)."""
    name = part_path(run_id, segment)
    if name in store.group:
        return
    ids = store.object_ids()
    frames = end - start + 1
    part = store.group.create_array(
        name,
        shape=(len(ids), frames, len(TABLE_COLUMNS)),
        chunks=(1, min(PART_CHUNK, frames), len(TABLE_COLUMNS)),
        dtype="float64",
        fill_value=np.nan,
        compressors=None,
    )
    part.attrs.update({"objects": ids, "start": start, "end": end})


def merge_parts(store: ProjectStore) -> int:
    """Copy every part table's rows into the objects' tables and delete the parts (client
    side, after the segments ended). Returns the number of rows (object-frames) merged."""
    if not has_parts(store):
        return 0
    merged = 0
    for _, run_group in list(store.group[PARTS_GROUP].groups()):
        for _, part in run_group.arrays():
            rows = part[:]
            start = int(part.attrs["start"])
            for i, obj_id in enumerate(part.attrs["objects"]):
                have = ~np.isnan(rows[i, :, COL["state"]])
                if have.any():
                    store.write_table_block(int(obj_id), start, rows[i], keep=have)
                    merged += int(have.sum())
    del store.group[PARTS_GROUP]
    return merged


class PartWriter:
    """What one segment task writes, opened with plain zarr next to the client's lock: its own
    frames' chunks of the label layers and its part table's rows. A
    :class:`~.writer.WriteTarget` for :class:`~.writer.StoreWriter`."""

    read_only = False

    def __init__(self, out: str | Path, run_id: int, segment: int):
        import zarr

        # Chunk writes only, under the run the client (the lock holder) recorded for us.
        self.path = Path(out)
        self.group = zarr.open_group(str(out), mode="r+", zarr_format=3)
        meta = self.group.attrs[ATTR_KEY]
        if meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(f"{out} uses store format {meta.get('format_version')}; the client "
                             f"opens it for writing first, which upgrades it to {FORMAT_VERSION}")
        self.shape = plane_shape(meta)
        self.num_frames = self.shape[0]
        name = part_path(run_id, segment)
        self.part = self.group[name]
        try:
            self._part_io: ChunkIO | None = ChunkIO(self.path / name)
        except UnsupportedChunkLayout:
            self._part_io = None
        self.start = int(self.part.attrs["start"])
        self.ids = [int(o) for o in self.part.attrs["objects"]]
        self.row_of = {o: i for i, o in enumerate(self.ids)}
        self.layers = LayerArrays(self.path, self.group, self.shape, create_layers=False,
                                  planes=planes_of(meta))

    def object_ids(self) -> list[int]:
        return list(self.ids)

    def require_current_format(self) -> None:
        """Checked when opened."""

    def ensure_object_table(self, obj_id: int) -> None:
        """Refuse an object the part has no rows for (added after the run started)."""
        if obj_id not in self.row_of:
            raise StoreError(f"object {obj_id} is not part of this run; add it and track again")

    def write_rows(self, rows: Rows) -> None:
        """Write table rows ``{object: [(frame, row), ...]}`` into the part table."""
        for obj_id, obj_rows in rows.items():
            write_table_rows(self._part_io, self.part, [(t - self.start, row) for t, row in obj_rows],
                             lead=(self.row_of[obj_id],))

    def done(self) -> dict[int, set[int]]:
        """Frames per object that this part or the project's table already holds."""
        rows = self.part[:]
        stop = self.start + rows.shape[1]
        out = {}
        for obj_id, i in self.row_of.items():
            in_part = ~np.isnan(rows[i, :, COL["state"]])
            states = self.group[table_path(obj_id)][self.start : stop, COL["state"]]
            in_table = ~np.isnan(states) & (states != 0)
            out[obj_id] = set((np.flatnonzero(in_part | in_table) + self.start).tolist())
        return out
