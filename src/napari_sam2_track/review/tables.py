"""What the review flags read (:class:`TableSource`: the objects' table rows and shared pixels)
and what they give (:class:`ReviewReport`), apart from :mod:`.flags` so that the flags of volume
projects (:mod:`.volume_flags`) use them without importing the finder that calls them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import StoreError
from ..project import ProjectStore
from .models import Flag, Masklet, Suggestion
from .visibility import RowReader, damaged, store_row_reader

__all__ = ["ReviewReport", "SharedReader", "TableSource"]


SharedReader = Callable[[int, int, int, int, slice, slice], np.ndarray]
"""``read_shared(i, j, first, stop, rows, cols)``: the pixels objects ``i`` and ``j`` share on
each frame of ``[first, stop)``, shape ``(stop - first,)``; every shared pixel lies in the
crop ``[rows, cols]``."""


@dataclass
class TableSource:
    """What the flags read: the objects' table rows and, for overlaps, their shared pixels."""

    ids: list[int]
    num_frames: int
    height: int
    width: int
    read_rows: RowReader
    read_shared: SharedReader | None = None
    #: ``read_compare(obj, lo, hi)``: the second opinion's ``compare`` rows of an object
    #: (:mod:`.second_opinion`), for ``disagreement`` flags; ``None``: no second opinion.
    read_compare: Callable[[int, int, int], np.ndarray | None] | None = None

    @classmethod
    def from_store(cls, store: ProjectStore) -> "TableSource":
        n, h, w = store.shape
        if store.format_version < 2:  # one bool array per object: count in crops

            def read_shared(i: int, j: int, first: int, stop: int, rows: slice, cols: slice):
                try:
                    crops = store.mask_crops((i, j), first, stop, rows, cols)
                except Exception:  # noqa: BLE001 - a damaged chunk: find its frame
                    for t in range(first, stop):
                        try:
                            store.mask_crops((i, j), t, t + 1, rows, cols)
                        except Exception as exc:  # noqa: BLE001
                            raise _damaged(store, t, exc) from None
                    raise
                return np.count_nonzero(crops[i] & crops[j], axis=(1, 2))

        else:  # the overlap layers hold exactly the shared pixels; a frame is read for all pairs
            cached = lru_cache(maxsize=256)(store.shared_pixels)

            def pairs(t: int) -> dict[tuple[int, int], int]:
                try:
                    return cached(t)
                except Exception as exc:  # noqa: BLE001 - whatever a damaged chunk raises
                    raise _damaged(store, t, exc) from None

            def read_shared(i: int, j: int, first: int, stop: int, rows: slice, cols: slice):
                key = (min(i, j), max(i, j))
                return np.array([pairs(t).get(key, 0) for t in range(first, stop)], dtype=np.int64)

        from .second_opinion import compare_reader

        return cls(store.object_ids(), n, h, w, store_row_reader(store), read_shared,
                   compare_reader(store))

    @classmethod
    def from_arrays(
        cls, tables: Mapping[int, np.ndarray], height: int, width: int,
        masks: Mapping[int, np.ndarray] | None = None,
    ) -> "TableSource":
        """Tables (and optionally ``(t, h, w)`` masks) held in memory, e.g. for tests."""
        ids = sorted(tables)
        n = len(tables[ids[0]]) if ids else 0
        read_shared = None
        if masks is not None:
            def read_shared(i, j, first, stop, rows, cols):
                a, b = (np.asarray(masks[o][first:stop, rows, cols], bool) for o in (i, j))
                return np.count_nonzero(a & b, axis=(1, 2))
        return cls(ids, n, height, width, lambda o, lo, hi: np.asarray(tables[o][lo:hi], float),
                   read_shared)


def _damaged(store: ProjectStore, t: int, exc: BaseException) -> StoreError:
    """The one-line error for masks of frame ``t`` that cannot be read (for overlap flags)."""
    return damaged(store, store.unreadable_mask_array(t), f"frame {t}", exc,
                   "re-track or edit that frame")


@dataclass
class ReviewReport:
    """Flags, presence spans and suggested frames of a project (or of some objects)."""

    flags: list[Flag] = field(default_factory=list)
    spans: list[Masklet] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)

    def flags_of(self, obj_id: int) -> list[Flag]:
        return [f for f in self.flags if f.object == obj_id]

    def counts(self, obj_id: int | None = None) -> dict[str, int]:
        """Number of flagged runs by kind."""
        out: dict[str, int] = {}
        for f in self.flags:
            if obj_id is None or f.object == obj_id:
                out[f.kind] = out.get(f.kind, 0) + 1
        return out
