"""The frame iterator shared by every exporter, and the label sources read by importers.

:func:`iter_frames` walks a project store one frame at a time and applies the options common
to every format (frame range, every Nth frame, categories, approved objects only, minimum
visible pixels, occlusion handling). Per-object tables are read in blocks of
``TABLE_CHUNK`` rows, so memory does not grow with the length of the video.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import NothingApprovedWarning, Sam2TrackError, StoreError, one_line
from ..project import COL, TABLE_CHUNK, ProjectStore
from ..project.labels import merge_lowest_id
from ..prompts import ObjectSpec
from ..review.models import read_review
from ..review.visibility import OCCLUDED, VISIBLE, VisibilityRule, iter_visibility, store_row_reader
from ..review.visibility import damaged as store_damaged

Occlusion = Literal["absent", "occluded"]


@dataclass
class ExportOptions:
    """Options every exporter takes.

    Attributes:
        min_visible_pixels: masks with fewer pixels count as absent (``None``: the schema's).
        occlusion: ``"occluded"`` flags frames where an object is hidden inside the view as
            occluded (formats with an occlusion flag keep the track alive there);
            ``"absent"`` treats them like any other absence.
        approved_only: keep only masklets approved as ``satisfactory`` by a valid QC
            decision, on the frames the decision covers.
        every: keep every Nth frame of the range.
        start, end: first and last frame (inclusive); ``None`` for the video's ends.
        categories: keep only objects of these categories (``None``: all).
        progress: called as ``progress(done, total)`` as the exporter goes through the frames
            (see :meth:`ProjectView.walk`), ``done`` counting up to ``total``: the frames
            exported, twice that for an export that goes through them twice (GEFF with its
            labels, OME-Zarr with the image included). It runs on the exporting thread.
        notes: called as ``notes(text)`` with what the user should know though nothing failed
            (e.g. *approved only* with nothing approved); ``None``: issued as warnings
            (:class:`~napari_sam2_track.errors.Sam2TrackWarning`). It runs on the exporting
            thread.

    Visible, occluded and out-of-frame follow :mod:`napari_sam2_track.review.visibility`, the
    rule the review flags use too: under the schema's ``edge_policy: drop`` masks touching the
    image border (within ``border_margin_px``) count as absent, and such an object is out of
    frame, not occluded.
    """

    min_visible_pixels: int | None = None
    occlusion: Occlusion = "occluded"
    approved_only: bool = False
    every: int = 1
    start: int | None = None
    end: int | None = None
    categories: list[str] | None = None
    progress: Callable[[int, int], None] | None = None
    notes: Callable[[str], None] | None = None


def staged(progress: Callable[[int, int], None] | None, stage: int, stages: int):
    """``progress`` for stage ``stage`` (0, 1, ...) of ``stages`` walks over the same frames:
    each walk's ``(done, total)`` is reported as a part of one count up to ``stages * total``."""
    if progress is None:
        return None
    return lambda done, total: progress(stage * total + done, stages * total)


@dataclass
class Frame:
    """One exported frame.

    ``t`` is the frame number in the project, ``index`` its position in the export (0, 1, ...);
    ``masks`` holds the visible objects' masks (overlaps kept); ``occluded`` the objects hidden
    inside the view on this frame (only with ``occlusion="occluded"``).
    """

    t: int
    index: int
    masks: dict[int, np.ndarray]
    occluded: set[int] = field(default_factory=set)
    presence: dict[int, float] = field(default_factory=dict)
    shape: tuple[int, int] = (0, 0)

    def labels(self, dtype=np.uint32) -> np.ndarray:
        """The merged label image; where objects overlap the lowest id wins."""
        return merge_lowest_id(self.masks, self.shape, dtype)


class EmptyExportWarning(UserWarning):
    """The export options leave no object to export (the result holds no masks)."""


class DroppedWarning(UserWarning):
    """An importer could not represent part of its input and left it out."""


_EXPORT_ADVICE = ("nothing was exported — re-track or edit those frames, or export a range "
                  "without them (--start/--end)")


def damaged(store: ProjectStore, name: str, frames: str, exc: BaseException) -> StoreError:
    """The one-line error for a chunk or array of a project that cannot be read (exports)."""
    return store_damaged(store, name, frames, exc, _EXPORT_ADVICE)


def approved_ids(store: ProjectStore) -> set[int]:
    """Objects with frames approved as ``satisfactory`` by a valid QC decision."""
    return set(read_review(store).approved_ranges())


class _Tables:
    """Per-object table rows read in blocks of ``TABLE_CHUNK`` frames."""

    def __init__(self, store: ProjectStore, ids: list[int]):
        self.store = store
        self.ids = ids
        self._read = store_row_reader(store, _EXPORT_ADVICE)
        self._block = -1
        self._rows: dict[int, np.ndarray] = {}

    def row(self, obj_id: int, t: int) -> np.ndarray:
        block = t // TABLE_CHUNK
        if block != self._block:
            self._block = block
            lo, hi = block * TABLE_CHUNK, min((block + 1) * TABLE_CHUNK, self.store.num_frames)
            self._rows = {i: self._read(i, lo, hi) for i in self.ids}
        return self._rows[obj_id][t - block * TABLE_CHUNK]


class ProjectView:
    """A project store seen through :class:`ExportOptions`."""

    def __init__(self, store: ProjectStore, options: ExportOptions | None = None):
        self.store = store
        self.options = opts = options or ExportOptions()
        try:
            self.schema = store.schema
            objects = store.objects
            n, self.height, self.width = store.shape
        except Sam2TrackError:
            raise
        except Exception as exc:  # noqa: BLE001 - metadata edited by hand or damaged
            raise StoreError(one_line(
                f"{store.path} is damaged: its metadata (zarr.json) cannot be read "
                f"({type(exc).__name__}: {exc}); nothing was exported"
            )) from None
        from ..project.check import unmerged_segments

        if (unmerged := unmerged_segments(store)) is not None:  # its rows are not in the tables
            raise StoreError(f"{store.path.name}: {unmerged}; then export; nothing was exported")
        if opts.every < 1:
            raise StoreError(f"--every must be 1 or more, got {opts.every}")
        self.start = 0 if opts.start is None else int(opts.start)
        self.end = n - 1 if opts.end is None else int(opts.end)
        if not (0 <= self.start <= self.end < n):
            raise StoreError(
                f"frame range {self.start}-{self.end} is outside the video (frames 0-{n - 1})"
            )
        self.min_visible = (
            self.schema.min_visible_pixels if opts.min_visible_pixels is None else opts.min_visible_pixels
        )
        if opts.categories:
            known = set(self.schema.category_names())
            unknown = sorted(set(opts.categories) - known)
            if unknown:
                raise StoreError(
                    f"unknown categories {', '.join(unknown)}; the schema has {', '.join(sorted(known))}"
                )
            objects = [o for o in objects if o.category in opts.categories]
        self.approved: dict[int, list[tuple[int, int]]] | None = None
        if opts.approved_only:
            self.approved = read_review(store).approved_ranges()
            objects = [o for o in objects if o.id in self.approved]
            if not objects:
                note = NothingApprovedWarning(
                    f"--approved-only: no object of {store.path.name} is exported because no "
                    "masklet is approved; approve masklets first ('napari-sam2-track review "
                    "approve ...')")
                if opts.notes is not None:
                    opts.notes(str(note))
                else:
                    warnings.warn(note, stacklevel=2)
        self.objects: list[ObjectSpec] = sorted(objects, key=lambda o: o.id)
        self.frames = range(self.start, self.end + 1, opts.every)
        #: ``progress(done, total)`` after each frame of a walk that reads masks (the options')
        self.progress = opts.progress

    @property
    def ids(self) -> list[int]:
        return [o.id for o in self.objects]

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def category_of(self, obj_id: int) -> str:
        category = next((o.category for o in self.objects if o.id == obj_id), None)
        return self.schema.category_for(category)

    def _kept(self, obj_id: int, t: int) -> bool:
        """With ``approved_only``: frame ``t`` of the object lies in an approved range."""
        if self.approved is None:
            return True
        ranges = self.approved.get(obj_id, ())
        i = bisect.bisect_right(ranges, (t, float("inf"))) - 1
        return i >= 0 and ranges[i][0] <= t <= ranges[i][1]

    def walk(self, read_masks: bool = True) -> Iterator[Frame]:
        """Exported frames; with ``read_masks=False`` the masks dict maps ids to ``None``.

        A walk that reads masks reports :attr:`progress` once the caller has finished a frame
        (asks for the next one), and for the last frame as it is handed out.
        """
        ids = self.ids
        progress = self.progress if read_masks else None
        total = self.num_frames
        rule = VisibilityRule.from_schema(self.schema, self.height, self.width, self.min_visible)
        every = self.options.every
        with_occluded = self.options.occlusion == "occluded"
        index = 0
        blocks = iter_visibility(store_row_reader(self.store), ids, rule, self.start, self.end)
        for lo, hi, rows, codes in blocks:
            for t in range(lo, hi):
                if (t - self.start) % every:
                    continue
                visible, occluded, presence = [], set(), {}
                for obj_id in ids:
                    code = codes[obj_id][t - lo]
                    if (code == VISIBLE or code == OCCLUDED) and not self._kept(obj_id, t):
                        continue
                    if code == VISIBLE:
                        visible.append(obj_id)
                        presence[obj_id] = float(rows[obj_id][t - lo, COL["presence"]])
                    elif code == OCCLUDED and with_occluded:
                        occluded.add(obj_id)
                masks = self._masks(t, visible) if read_masks else dict.fromkeys(visible)
                if progress is not None and index + 1 == total:
                    progress(total, total)  # a consumer may stop asking after the last frame
                yield Frame(t, index, masks, occluded, presence, (self.height, self.width))
                index += 1
                if progress is not None and index < total:
                    progress(index, total)

    def _masks(self, t: int, ids: list[int]) -> dict[int, np.ndarray]:
        """The masks of objects ``ids`` on frame ``t``, read once for all of them; a damaged
        chunk is reported by frame and array."""
        if not ids:
            return {}
        try:
            return self.store.frame_masks(t, ids)
        except Sam2TrackError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a damaged store
            raise damaged(self.store, self.store.unreadable_mask_array(t), f"frame {t}", exc) from None

    def __iter__(self) -> Iterator[Frame]:
        return self.walk(True)


def iter_frames(store: ProjectStore, options: ExportOptions | None = None) -> Iterator[Frame]:
    """Frames of a project with the common export options applied."""
    return iter(ProjectView(store, options))


@dataclass
class LabelSource:
    """Annotations read from any supported format: objects and a frame iterator.

    ``frames()`` yields ``(t, {object id: bool mask})`` for frames with at least one object,
    in increasing ``t``; every call starts again from the first frame.
    """

    shape: tuple[int, int, int]
    objects: list[ObjectSpec]
    frames: Callable[[], Iterator[tuple[int, dict[int, np.ndarray]]]]
    categories: list[str] = field(default_factory=list)
    description: str = ""
    #: Facts about the reading recorded in the project (``convention``, ``frame_stride``, ...).
    info: dict = field(default_factory=dict)
    #: What the input held that the project cannot represent (one line each).
    dropped: list[str] = field(default_factory=list)
    #: Volume label sets: ``(T, Z, H, W)``; ``shape`` is then ``(T * Z, H, W)`` and ``frames()``
    #: yields planes ``p = t * Z + z``. ``None`` for a 2D + t label set.
    volume: tuple[int, int, int, int] | None = None
    #: Where the voxels lie (volumes: spacing, units, affine); ``None`` where unknown.
    geometry: Any = None
    #: The volume source the labels were read from (a project is built on it when no image is given).
    volume_source: Any = None

    def labels(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(t, merged uint32 labels)`` for every frame 0..T-1 (lowest id wins)."""
        n, h, w = self.shape
        it = self.frames()
        pending = next(it, None)
        for t in range(n):
            if pending is not None and pending[0] == t:
                yield t, merge_lowest_id(pending[1], (h, w))
                pending = next(it, None)
            else:
                yield t, np.zeros((h, w), np.uint32)


def project_source(store: ProjectStore, options: ExportOptions | None = None) -> LabelSource:
    """A project as a :class:`LabelSource` (frames renumbered 0..K-1 by the options)."""
    view = ProjectView(store, options)

    def frames():
        for fr in view:
            if fr.masks:
                yield fr.index, fr.masks

    volume = tuple(store.volume_shape) if getattr(store, "is_volume", False) else None
    if volume is not None and (view.start, view.options.every, view.num_frames) != (0, 1, store.num_frames):
        raise StoreError(f"{store.path.name} is a volume project: it is read whole (no frame range or --every)")
    return LabelSource(
        (view.num_frames, view.height, view.width),
        view.objects,
        frames,
        categories=view.schema.category_names(),
        description=str(store.path),
        volume=volume,
        geometry=store.geometry if volume is not None else None,
    )


def labels_to_masks(labels: np.ndarray) -> dict[int, np.ndarray]:
    """``{id: mask}`` of a label image, ids in increasing order."""
    ids = np.unique(labels)
    return {int(i): labels == i for i in ids if i != 0}
