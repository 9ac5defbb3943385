"""The project store: one zarr v3 group per annotated video, the single source of truth.

Layout (see ``docs/store.md``)::

    PROJECT.zarr/
      zarr.json                  attributes["napari_sam2_track"]: provenance, schema, objects,
                                 prompts, runs, review
      labels/masklets/0          uint32 (t, y, x), one chunk per frame: the merged label image,
                                 OME-Zarr 0.5 ``image-label`` metadata
      overlaps/<k>               uint32 (t, y, x), k = 1, 2, ...: the k+1-th lowest id where
                                 objects overlap (chunks only on frames with overlaps)
      objects/<id>/table         float64 (t, 8): presence, area, x0, y0, x1, y1, state, run

Overlaps: in the merged ``labels`` image a pixel claimed by several objects goes to the
**lowest object id**; the others claiming it are kept in the overlap layers, so an object's
mask is the union over layers of ``layer == id`` (format 2; see :mod:`.layers`). Format-1
projects (one full-frame bool array per object) are read as they are and migrated when
opened for writing.

Empty chunks are not written (zarr's default), so frames without objects cost nothing.
Chunk files are replaced atomically by zarr's local store. The tracking writer
(:class:`~.writer.StoreWriter`) writes a frame's table rows after its label layers, so a frame
whose row says it was tracked is complete on disk. A hand edit
(:meth:`ProjectStore.write_edited_labels`) writes the frame's layers, then each changed
object's row; an interrupted edit is repaired by saving the frame again.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..prompts import ObjectSpec, Prompt, PromptSet
from .labels import image_label_metadata
from .layer_arrays import LAYER_ZSTD_LEVEL, LayerArrays
from .layers import build_layers, mask_box, mask_from_layers, masks_from_layers
from .layout import (
    ATTR_KEY,
    COL,
    FORMAT_VERSION,
    LABELS_NAME,
    LABELS_PATH,
    STATE_EDITED,
    STATE_NAMES,
    STATE_NOT_RUN,
    TABLE_CHUNK,
    TABLE_COLUMNS,
    V1_MASK_PATH,
)

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _package_version() -> str:
    from .. import __version__

    return __version__


def mask_stats(mask: np.ndarray) -> tuple[int, tuple[int, int, int, int] | None]:
    """Area and bounding box ``(x0, y0, x1, y1)`` (end-exclusive) of a bool mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(mask.sum()), (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


class ProjectStore:
    """Read and write a project store. Use :meth:`create` or :meth:`open`.

    Writes from several threads are not supported: use one :class:`StoreWriter` per store.
    """

    def __init__(self, path: str | Path, group, read_only: bool = False):
        self.path = Path(path)
        self.group = group
        self.read_only = read_only
        self._meta_lock = threading.RLock()
        self._arrays: dict[str, Any] = {}  # opened arrays (opening one reads its zarr.json)
        self.format_version = int(group.attrs.get(ATTR_KEY, {}).get("format_version", 1))
        self._layer_arrays: LayerArrays | None = None

    @property
    def layers(self) -> LayerArrays:
        """Chunk-level access to the label layers that hold the masks (format 2)."""
        if self._layer_arrays is None:
            with self._meta_lock:  # one instance, even when writer threads ask at once
                if self._layer_arrays is None:
                    self._layer_arrays = LayerArrays(self.path, self.group, self.shape)
        return self._layer_arrays

    def _array(self, name: str):
        """An array of the project, opened once."""
        array = self._arrays.get(name)
        if array is None:
            array = self._arrays[name] = self.group[name]
        return array

    # --------------------------------------------------------------- create/open
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        num_frames: int,
        height: int,
        width: int,
        source: dict | None = None,
        overwrite: bool = False,
    ) -> "ProjectStore":
        """Create an empty project for a video of ``num_frames`` x ``height`` x ``width``."""
        import zarr
        from zarr.codecs import ZstdCodec

        path = Path(path)
        if path.exists():
            if not overwrite:
                raise StoreError(
                    f"{path} already exists; pass --resume to continue it or --overwrite to replace it"
                )
            if not (path / "zarr.json").is_file() and any(path.iterdir()):
                raise StoreError(f"{path} exists and is not a project store; choose another --out")
            shutil.rmtree(path)
        root = zarr.open_group(str(path), mode="w", zarr_format=3)
        labels_group = root.create_group("labels")
        labels_group.attrs["ome"] = {"version": "0.5", "labels": [LABELS_NAME]}
        image_label = labels_group.create_group(LABELS_NAME)
        image_label.create_array(
            "0",
            shape=(num_frames, height, width),
            chunks=(1, height, width),
            dtype="uint32",
            fill_value=0,
            compressors=ZstdCodec(level=LAYER_ZSTD_LEVEL),
            dimension_names=["t", "y", "x"],
        )
        root.create_group("objects")
        store = cls(path, root)
        store.format_version = FORMAT_VERSION
        store._write_meta(
            {
                "format_version": FORMAT_VERSION,
                "package_version": _package_version(),
                "created": _now(),
                "shape": [num_frames, height, width],
                "source": source or {},
                "model": None,
                "schema": None,
                "objects": [],
                "prompts": [],
                "runs": [],
                "review": {},
            }
        )
        store._write_label_metadata()
        return store

    @classmethod
    def open(cls, path: str | Path, mode: str = "r+") -> "ProjectStore":
        """Open an existing project (``mode`` ``"r"`` for read-only)."""
        import zarr

        path = Path(path)
        if not (path / "zarr.json").is_file():
            raise StoreError(f"{path} is not a project store (no zarr.json); create it with 'track'")
        try:
            root = zarr.open_group(str(path), mode=mode, zarr_format=3)
        except Exception as exc:
            raise StoreError(f"cannot open project {path}: {exc}") from None
        if ATTR_KEY not in root.attrs:
            raise StoreError(f"{path} is a zarr group but not a napari-sam2-track project")
        store = cls(path, root, read_only=(mode == "r"))
        if store.format_version > FORMAT_VERSION:
            raise StoreError(
                f"{path} uses store format {store.format_version}, newer than this "
                f"napari-sam2-track reads ({FORMAT_VERSION}); upgrade napari-sam2-track"
            )
        if not store.read_only:
            from .migrate import upgrade_store

            upgrade_store(store)
        return store

    # ------------------------------------------------------------------ metadata
    @property
    def meta(self) -> dict:
        """The project's metadata (a copy)."""
        return dict(self.group.attrs[ATTR_KEY])

    def _write_meta(self, meta: dict) -> None:
        with self._meta_lock:
            self.group.attrs[ATTR_KEY] = meta

    def update_meta(self, **fields: Any) -> None:
        """Replace top-level metadata fields."""
        with self._meta_lock:
            meta = self.meta
            meta.update(fields)
            self._write_meta(meta)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["shape"])  # type: ignore[return-value]

    @property
    def num_frames(self) -> int:
        return self.shape[0]

    @property
    def labels(self):
        """The merged uint32 label array ``(t, y, x)`` (a zarr array)."""
        return self._array(LABELS_PATH)

    @property
    def schema(self):
        """The project's :class:`~napari_sam2_track.schema.Schema` (default if none stored)."""
        from ..schema import Schema

        data = self.meta.get("schema")
        return Schema.model_validate(data) if data else Schema.default()

    def set_schema(self, schema) -> None:
        """Store the annotation schema and refresh label colours."""
        self.update_meta(schema=schema.model_dump(mode="json"))
        self._write_label_metadata()

    # ------------------------------------------------------------------- objects
    @property
    def objects(self) -> list[ObjectSpec]:
        return [ObjectSpec.model_validate(o) for o in self.meta["objects"]]

    def object_ids(self) -> list[int]:
        return sorted(o["id"] for o in self.group.attrs[ATTR_KEY]["objects"])

    def set_objects(self, objects: Iterable[ObjectSpec]) -> None:
        """Replace the object list (ids, names, categories, attributes)."""
        names = self.schema.category_names()
        checked = []
        for obj in sorted(objects, key=lambda o: o.id):
            if obj.category is None:
                obj = obj.model_copy(update={"category": names[0]})
            elif obj.category not in names:
                raise StoreError(
                    f"object {obj.id} has category {obj.category!r}, which the schema does not "
                    f"define ({', '.join(names)}); add it to the schema or pass --schema"
                )
            checked.append(obj)
        objects = checked
        self.update_meta(objects=[o.model_dump(mode="json") for o in objects])
        for obj in objects:
            self._ensure_object_arrays(obj.id)
        self._write_label_metadata()

    def add_object(self, obj: ObjectSpec) -> None:
        """Add or update one object."""
        others = [o for o in self.objects if o.id != obj.id]
        self.set_objects([*others, obj])

    def remove_object(self, obj_id: int) -> None:
        """Delete an object: its masks, table and prompts, and its pixels in ``labels``."""
        frames = self.frames_with_state(obj_id, exclude=(STATE_NOT_RUN,))
        self.update_meta(
            objects=[o.model_dump(mode="json") for o in self.objects if o.id != obj_id],
            prompts=[p for p in self.meta["prompts"] if p["object"] != obj_id],
        )
        if f"objects/{obj_id}" in self.group:
            del self.group[f"objects/{obj_id}"]
        self._arrays.pop(f"objects/{obj_id}/table", None)
        self.layers.forget(f"objects/{obj_id}/table")
        for t in frames:
            self.merge_labels(t)
        self._write_label_metadata()

    def _require_current_format(self) -> None:
        if self.format_version < FORMAT_VERSION:
            raise StoreError(
                f"{self.path} uses store format {self.format_version}; open it for writing "
                f"(not read-only) to upgrade it to format {FORMAT_VERSION}"
            )

    def _ensure_object_arrays(self, obj_id: int) -> None:
        name = f"objects/{obj_id}"
        if f"{name}/table" in self._arrays or name in self.group:
            return
        t, h, w = self.shape
        grp = self.group.require_group(name)
        table = grp.create_array(
            "table",
            shape=(t, len(TABLE_COLUMNS)),
            chunks=(min(TABLE_CHUNK, t), len(TABLE_COLUMNS)),
            dtype="float64",
            fill_value=np.nan,
            compressors=None,  # rewritten every frame; 64 KiB per 1024 frames uncompressed
            dimension_names=["t", "column"],
        )
        table.attrs["columns"] = list(TABLE_COLUMNS)
        table.attrs["states"] = {str(k): v for k, v in STATE_NAMES.items()}

    def mask(self, obj_id: int, t: int) -> np.ndarray:
        """The bool mask of one object on one frame."""
        if self.format_version < 2:
            return self._array(V1_MASK_PATH.format(id=obj_id))[t]
        return mask_from_layers(self.layers.read(t), obj_id)

    def masks(self, obj_id: int, start: int, stop: int, step: int = 1) -> np.ndarray:
        """One object's bool masks on frames ``start:stop:step``, ``(k, h, w)``."""
        if self.format_version < 2:
            return self._array(V1_MASK_PATH.format(id=obj_id))[start:stop:step]
        frames = range(start, min(stop, self.num_frames), step)
        out = np.zeros((len(frames), *self.shape[1:]), bool)
        for i, t in enumerate(frames):
            if self.layers.has_frame(t):
                out[i] = mask_from_layers(self.layers.read(t), obj_id)
        return out

    def frame_masks(self, t: int, ids: Iterable[int] | None = None) -> dict[int, np.ndarray]:
        """Bool masks of objects on frame ``t``: of ``ids`` (default: the project's objects).

        Reading a frame once for all its objects is the fast way to walk a project.
        """
        ids = self.object_ids() if ids is None else [int(i) for i in ids]
        if self.format_version < 2:
            return {o: self.mask(o, t) for o in ids}
        if not self.layers.has_frame(t):
            return {o: np.zeros(self.shape[1:], bool) for o in ids}
        return masks_from_layers(self.layers.read(t), ids)

    def table(self, obj_id: int) -> np.ndarray:
        """The whole per-frame table of an object, ``(t, 8)`` float64 (see ``TABLE_COLUMNS``)."""
        return self._array(f"objects/{obj_id}/table")[:]

    def states(self, obj_id: int) -> np.ndarray:
        """Per-frame state codes of an object (``STATE_*``; NaN rows read as not run)."""
        col = self._array(f"objects/{obj_id}/table")[:, COL["state"]]
        return np.where(np.isnan(col), STATE_NOT_RUN, col).astype(np.int8)

    def frames_with_state(self, obj_id: int, exclude: tuple[int, ...] = ()) -> list[int]:
        """Frames whose state is not in ``exclude``."""
        if f"objects/{obj_id}" not in self.group:
            return []
        states = self.states(obj_id)
        return np.flatnonzero(~np.isin(states, exclude)).tolist()

    # ------------------------------------------------------------------- prompts
    @property
    def prompts(self) -> PromptSet:
        return PromptSet(objects=self.objects, prompts=self.meta["prompts"])

    def set_prompts(self, prompts: PromptSet) -> None:
        """Store objects and prompts (masks given by path are read when tracking)."""
        self.set_objects(prompts.objects)
        self.update_meta(prompts=[p.model_dump(mode="json") for p in prompts.prompts])

    def put_prompt(self, prompt: Prompt, mask: np.ndarray | None = None) -> Prompt:
        """Add or replace the prompt of one object on one frame.

        A mask prompt's pixels are stored in the project (``prompt_masks/<id>/<frame>``).
        """
        if mask is not None:
            name = f"prompt_masks/{prompt.object}/{prompt.frame}"
            if name in self.group:
                del self.group[name]
            self.group.create_array(name, data=np.asarray(mask, dtype=bool))
            prompt = prompt.model_copy(update={"mask": f"store:{name}"})
        others = [
            p
            for p in self.meta["prompts"]
            if not (p["object"] == prompt.object and p["frame"] == prompt.frame)
        ]
        self.update_meta(prompts=[*others, prompt.model_dump(mode="json")])
        return prompt

    def delete_prompt(self, obj_id: int, frame: int) -> None:
        self.update_meta(
            prompts=[
                p for p in self.meta["prompts"] if not (p["object"] == obj_id and p["frame"] == frame)
            ]
        )

    def prompt_mask(self, prompt: Prompt, base_dir: str | Path | None = None) -> np.ndarray:
        """Pixels of a mask prompt, from the project or from the file it names."""
        if prompt.mask and prompt.mask.startswith("store:"):
            return self.group[prompt.mask.removeprefix("store:")][:]
        _, h, w = self.shape
        return prompt.load_mask(base_dir, h, w)

    # ---------------------------------------------------------------------- runs
    def begin_run(self, **info: Any) -> int:
        """Record the start of a tracking run and return its id."""
        with self._meta_lock:
            runs = list(self.meta["runs"])
            run_id = max((r["id"] for r in runs), default=0) + 1
            runs.append({"id": run_id, "started": _now(), "status": "running", **info})
            self.update_meta(runs=runs)
        return run_id

    def end_run(self, run_id: int, status: str, **info: Any) -> None:
        """Record how a run ended: ``completed``, ``cancelled`` or ``failed``."""
        with self._meta_lock:
            runs = [
                {**r, "status": status, "finished": _now(), **info} if r["id"] == run_id else r
                for r in self.meta["runs"]
            ]
            self.update_meta(runs=runs)

    # ------------------------------------------------------------------- writing
    def write_mask(self, obj_id: int, t: int, mask: np.ndarray) -> None:
        """Write one object's mask on frame ``t`` (and the frame's merged labels).

        To write several objects of a frame, :meth:`merge_labels` with all of them is faster.
        """
        self.merge_labels(t, {obj_id: mask})

    def write_row(
        self, obj_id: int, t: int, mask: np.ndarray, *, presence: float, state: int, run: int
    ) -> None:
        """Write one object's table row on frame ``t`` (area and bounding box from ``mask``)."""
        area, bbox = mask_stats(mask)
        x0, y0, x1, y1 = bbox if bbox is not None else (np.nan,) * 4
        self._array(f"objects/{obj_id}/table")[t] = [presence, area, x0, y0, x1, y1, state, run]

    def merge_labels(self, t: int, masks: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Write the masks ``masks`` of frame ``t`` and recompute its merged label image.

        The other objects' masks are kept as stored. Where objects overlap, the lowest id
        wins in the merged labels and the others are kept in the overlap layers. Returns the
        merged labels.
        """
        masks = {int(o): np.asarray(m, bool) for o, m in (masks or {}).items()}
        self._require_current_format()
        for obj_id in masks:
            self._ensure_object_arrays(obj_id)
        others = [o for o in self.object_ids() if o not in masks]
        if others and self.layers.has_frame(t):
            masks.update(masks_from_layers(self.layers.read(t), others))
        boxes = {o: mask_box(m)[1] for o, m in masks.items()}
        frame = build_layers(masks, boxes, self.shape[1:])
        self.layers.write(t, frame)
        return frame.labels

    def write_edited_labels(self, t: int, frame_labels: np.ndarray, run: int = 0) -> list[int]:
        """Persist a hand-edited label image of frame ``t``; returns the objects changed.

        Each object's mask becomes its pixels in ``frame_labels``; changed objects are marked
        ``edited`` in the table. Unknown ids become new objects.
        """
        frame_labels = np.asarray(frame_labels, dtype=np.uint32)
        self._require_current_format()
        for obj_id in sorted(set(np.unique(frame_labels).tolist()) - {0} - set(self.object_ids())):
            self.add_object(ObjectSpec(id=int(obj_id)))
        ids = self.object_ids()
        layers = self.layers.read(t)
        old = masks_from_layers(layers, ids)
        # Pixels of an object hidden under a lower id stay in its mask where the user left the
        # pixel alone; then the lowest-id merge of the masks is exactly ``frame_labels``.
        untouched = frame_labels == layers[0]
        masks, changed = {}, []
        for obj_id in ids:
            masks[obj_id] = (frame_labels == obj_id) | (old[obj_id] & untouched)
            if not np.array_equal(masks[obj_id], old[obj_id]):
                changed.append(obj_id)
        boxes = {o: mask_box(m)[1] for o, m in masks.items()}
        self.layers.write(t, build_layers(masks, boxes, self.shape[1:]))
        for obj_id in changed:
            presence = self._array(f"objects/{obj_id}/table")[t, COL["presence"]]
            self.write_row(obj_id, t, masks[obj_id], presence=presence, state=STATE_EDITED, run=run)
        return changed

    def _write_label_metadata(self) -> None:
        """OME-Zarr 0.5 ``multiscales`` + ``image-label`` metadata with schema colours."""
        self.group[f"labels/{LABELS_NAME}"].attrs["ome"] = {
            "version": "0.5",
            **image_label_metadata(LABELS_NAME, self.objects, self.schema),
        }

    # ------------------------------------------------------------------- summary
    def summary(self) -> dict:
        """Objects, frame states and provenance, for ``napari-sam2-track info``."""
        meta = self.meta
        objects = []
        for obj in self.objects:
            states = self.states(obj.id) if f"objects/{obj.id}" in self.group else np.zeros(0)
            counts = {STATE_NAMES[k]: int((states == k).sum()) for k in STATE_NAMES}
            table = self.table(obj.id) if f"objects/{obj.id}" in self.group else None
            visible = (
                np.flatnonzero(table[:, COL["area"]] > 0) if table is not None else np.zeros(0)
            )
            objects.append(
                {
                    "id": obj.id,
                    "name": obj.name,
                    "category": obj.category,
                    "states": counts,
                    "first_frame": int(visible[0]) if visible.size else None,
                    "last_frame": int(visible[-1]) if visible.size else None,
                    "keyframes": sorted(p["frame"] for p in meta["prompts"] if p["object"] == obj.id),
                }
            )
        return {
            "path": str(self.path),
            "shape": meta["shape"],
            "format_version": meta["format_version"],
            "package_version": meta["package_version"],
            "created": meta["created"],
            "source": meta["source"],
            "model": meta["model"],
            "objects": objects,
            "runs": meta["runs"],
        }
