"""When an object is visible, occluded or out of frame: the one rule of exporters and flags.

Per object, frame by frame, from its per-frame table rows (``docs/store.md``):

* **not run** — the row is NaN (the tracker has not reached that frame);
* **visible** — the mask has at least ``max(1, min_visible_pixels)`` pixels and, under the
  schema's ``edge_policy: drop``, does not touch the border (within ``border_margin_px``);
* **out of frame** — a mask cut by the border under ``drop``; or not visible while the object
  was last seen touching the border (it left the view);
* **occluded** — not visible while the object was last seen away from the border (hidden inside
  the view: by another object, smoke, debris);
* **absent** — not visible and never seen since the start of the walk.

The state carries over from one block of rows to the next (:class:`VisibilityRule.classify`),
so a video of any length is classified in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import Sam2TrackError, StoreError, one_line
from ..project import COL, TABLE_CHUNK, TABLE_COLUMNS, ProjectStore, table_path

NOT_RUN, ABSENT, VISIBLE, OCCLUDED, OUT_OF_FRAME = 0, 1, 2, 3, 4
VISIBILITY_NAMES = {
    NOT_RUN: "not_run",
    ABSENT: "absent",
    VISIBLE: "visible",
    OCCLUDED: "occluded",
    OUT_OF_FRAME: "out_of_frame",
}

#: Carry between blocks: the object was last seen at the border (1), away from it (0), never (-1).
NEVER_SEEN = -1

RowReader = Callable[[int, int, int], np.ndarray]
"""``read_rows(object, lo, hi)``: table rows ``[lo, hi)`` of an object, ``(hi - lo, 8)``."""


@dataclass(frozen=True)
class VisibilityRule:
    """The schema's visibility conventions for a ``height`` x ``width`` video."""

    height: int
    width: int
    min_visible_pixels: int = 0
    edge_policy: str = "keep"
    border_margin_px: int = 0

    @classmethod
    def from_schema(
        cls, schema, height: int, width: int, min_visible_pixels: int | None = None
    ) -> "VisibilityRule":
        """The rule of a :class:`~napari_sam2_track.schema.Schema` (``min_visible_pixels``
        overrides the schema's)."""
        return cls(
            height=int(height),
            width=int(width),
            min_visible_pixels=int(
                schema.min_visible_pixels if min_visible_pixels is None else min_visible_pixels
            ),
            edge_policy=schema.edge_policy,
            border_margin_px=int(schema.border_margin_px),
        )

    def touches_border(self, rows: np.ndarray) -> np.ndarray:
        """Per row: the bounding box lies within ``border_margin_px`` of the image border."""
        m = self.border_margin_px
        with np.errstate(invalid="ignore"):
            return (
                (rows[:, COL["x0"]] <= m)
                | (rows[:, COL["y0"]] <= m)
                | (rows[:, COL["x1"]] >= self.width - m)
                | (rows[:, COL["y1"]] >= self.height - m)
            )

    def classify(self, rows: np.ndarray, carry: int = NEVER_SEEN) -> tuple[np.ndarray, int]:
        """Visibility codes (``VISIBLE``, ...) of consecutive rows, and the carry for the next
        block (pass :data:`NEVER_SEEN` for the first)."""
        n = len(rows)
        area = rows[:, COL["area"]]
        ran = ~np.isnan(rows[:, COL["state"]])
        touch = self.touches_border(rows)
        with np.errstate(invalid="ignore"):
            big = area >= max(1, self.min_visible_pixels)
            cut = (self.edge_policy == "drop") & (area > 0) & touch
        visible = ran & big & ~cut
        seen = visible | cut  # frames that tell where the object was last seen
        last = np.maximum.accumulate(np.where(seen, np.arange(n), -1)) if n else np.zeros(0, int)
        where_seen = np.where(cut, 1, touch.astype(np.int8))
        state = np.where(last >= 0, where_seen[np.maximum(last, 0)], carry)
        codes = np.where(ran, ABSENT, NOT_RUN).astype(np.int8)
        hidden = ran & ~seen
        codes[hidden & (state == 0)] = OCCLUDED
        codes[hidden & (state == 1)] = OUT_OF_FRAME
        codes[cut & ran] = OUT_OF_FRAME
        codes[visible] = VISIBLE
        return codes, int(state[-1]) if n else carry


def damaged(store: ProjectStore, name: str, where: str, exc: BaseException,
            advice: str = "re-track or edit those frames") -> StoreError:
    """The one-line error for array ``name`` of a project that cannot be read at ``where``
    (``"frames 0-99"``, ``"frame 7"``), ending with ``advice``."""
    return StoreError(one_line(
        f"{store.path} is damaged: {name} cannot be read at {where} ({type(exc).__name__}: {exc}); "
        f"{advice}"
    ))


def store_row_reader(store: ProjectStore,
                     advice: str = "re-track or edit those frames") -> RowReader:
    """Rows of a project's per-object tables (NaN rows for an object without a table); a
    table that cannot be read raises :func:`damaged` with ``advice``."""

    def read_rows(obj_id: int, lo: int, hi: int) -> np.ndarray:
        try:
            rows = store.table_rows(obj_id, lo, hi)
        except Sam2TrackError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a damaged chunk raises
            raise damaged(store, table_path(obj_id), f"frames {lo}-{hi - 1}", exc, advice) from None
        return np.full((hi - lo, len(TABLE_COLUMNS)), np.nan) if rows is None else rows

    return read_rows


def iter_blocks(start: int, end: int, block: int = TABLE_CHUNK) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` blocks covering frames ``start..end`` (inclusive), aligned to ``block``."""
    lo = start
    while lo <= end:
        hi = min((lo // block + 1) * block, end + 1)
        yield lo, hi
        lo = hi


def iter_visibility(
    read_rows: RowReader,
    ids: Sequence[int],
    rule: VisibilityRule,
    start: int,
    end: int,
    block: int = TABLE_CHUNK,
) -> Iterator[tuple[int, int, dict[int, np.ndarray], dict[int, np.ndarray]]]:
    """``(lo, hi, rows, codes)`` per block of frames ``start..end``; ``rows`` and ``codes``
    map each object to its table rows and visibility codes on ``[lo, hi)``."""
    carry = {i: NEVER_SEEN for i in ids}
    for lo, hi in iter_blocks(start, end, block):
        rows, codes = {}, {}
        for obj_id in ids:
            rows[obj_id] = read_rows(obj_id, lo, hi)
            codes[obj_id], carry[obj_id] = rule.classify(rows[obj_id], carry[obj_id])
        yield lo, hi, rows, codes
