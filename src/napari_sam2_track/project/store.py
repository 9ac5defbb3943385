"""The project store: one zarr v3 group per annotated video, the single source of truth.

Layout (see ``docs/store.md``)::

    PROJECT.zarr/
      zarr.json                  attributes["napari_sam2_track"]: provenance, schema, objects,
                                 prompts, runs, review
      labels/masklets/0          uint32 (t, y, x), one chunk per frame: the merged label image,
                                 OME-Zarr 0.5 ``image-label`` metadata; (t, z, y, x), one
                                 chunk per plane, in a volume project (:mod:`.volume`)
      overlaps/<k>               uint32 (t, y, x), k = 1, 2, ...: the k+1-th lowest id where
                                 objects overlap (a shard per frame, 128-px tiles where needed)
      objects/<id>/table         float64 (t, 8): presence, area, x0, y0, x1, y1, state, run
      review/changes.jsonl       append-only record of hand edits, prompts and written runs
      undo/<id>/                 the segment an undo restores (:mod:`.undo`)
      segment_parts/             part tables of a segmented run in progress (:mod:`.parts`)

Overlaps: in the merged ``labels`` image a pixel claimed by several objects goes to the
**lowest object id**; the others claiming it are kept in the overlap layers, so an object's
mask is the union over layers of ``layer == id`` (format 2; see :mod:`.layers` and
:mod:`.masks`). Format-1 projects (one full-frame bool array per object) are read as they are
and upgraded when opened for writing (:mod:`.migrate`).

Empty chunks are not written (zarr's default), so frames without objects cost nothing.
Chunk files are replaced atomically (a temporary file renamed over the chunk). The tracking
writer (:class:`~.writer.StoreWriter`) writes a frame's table rows after its label layers, so
a frame whose row says it was tracked is complete on disk. A hand edit
(:meth:`ProjectStore.write_edited_labels`) writes the frame's layers, then each changed
object's row; an interrupted edit is repaired by saving the frame again.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import StoreError, describe_os_error, summarize_list
from ..prompts import ObjectSpec
from . import placement
from ._chunks import read_table_rows
from .labels import image_label_metadata
from .layer_arrays import LAYER_ZSTD_LEVEL
from .masks import MaskStore, mask_stats  # noqa: F401 - mask_stats is imported from here
from .layout import (
    ATTR_KEY,
    COL,
    FORMAT_VERSION,
    LABELS_NAME,
    LABELS_PATH,
    STATE_NAMES,
    STATE_NOT_RUN,
    TABLE_CHUNK,
    TABLE_COLUMNS,
    table_path,
)
from .check import metadata_problem
from .lock import ProjectLock, live_holder
from .prompt_records import PromptRecords
from .runs import RunRecords, _now
from .volume import VolumeStore, describe_volume, is_volume_source, label_axes, planes_of, plane_shape


def check_object_categories(objects: Iterable[ObjectSpec], schema) -> list[ObjectSpec]:
    """``objects`` sorted by id, each with a category of ``schema`` (the first by default);
    :class:`StoreError` for a category the schema does not define."""
    names = schema.category_names()
    checked = []
    for obj in sorted(objects, key=lambda o: o.id):
        if obj.category is None:
            obj = obj.model_copy(update={"category": names[0]})
        elif obj.category not in names:
            raise StoreError(
                f"object {obj.id} has category {obj.category!r}, which the schema does not "
                f"define ({summarize_list(names)}); add it to the schema or pass --schema"
            )
        checked.append(obj)
    return checked


class ProjectStore(RunRecords, MaskStore, VolumeStore, PromptRecords):
    """Read and write a project store. Use :meth:`create` or :meth:`open`.

    Writes from several threads are not supported: use one :class:`StoreWriter` per store.
    """

    def __init__(self, path: str | Path, group, read_only: bool = False):
        self.path = Path(path)
        self.group = group
        self.read_only = read_only
        self._meta_lock = threading.RLock()
        self._arrays: dict[str, Any] = {}  # opened arrays (opening one reads its zarr.json)
        self._lock: ProjectLock | None = None
        attrs = group.attrs.get(ATTR_KEY, {})
        self.format_version = int(attrs.get("format_version", 1))
        self.planes = planes_of(attrs) if isinstance(attrs, dict) and "shape" in attrs else None
        self._layer_arrays = None

    def _array(self, name: str):
        """An array of the project, opened once."""
        array = self._arrays.get(name)
        if array is None:
            array = self._arrays[name] = self.group[name]
        return array

    # --------------------------------------------------------------- create/open
    @classmethod
    @contextlib.contextmanager
    def building(
        cls,
        path: str | Path,
        *,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        source: Any = None,
        overwrite: bool = False,
        command: str | None = None,
        words: placement.Words = placement.CLI,
    ) -> Iterator["ProjectStore"]:
        """Build a new project beside ``path``; it appears at ``path`` when the block completes.

        Everything written inside the ``with`` block goes to a staging folder
        (:func:`.placement.build_beside`). On normal exit the project is moved into place in one
        rename (``overwrite``: exchanged with the previous project, which is then deleted); on an
        exception the staging folder is deleted and ``path`` is untouched. ``overwrite`` only
        replaces a napari-sam2-track project, and only while no other process writes it.
        ``words``: how refusals name the output and switches. The store stays locked
        after the block: :meth:`close` it when done. ``source``: the description recorded
        (a dict), or a :class:`~..sources.volume.VolumeSource` for a volume project (its shape,
        geometry and description; the sizes are then not given).
        """
        path = Path(path)
        store = None
        try:
            with placement.build_beside(path, placement.PROJECT, overwrite=overwrite,
                                        command=command, words=words) as staging:
                store = cls._create_in(staging, num_frames, height, width, source, command)
                try:
                    yield store
                    store.update_meta(building=False)
                except BaseException:
                    store.close()  # before its staging folder is removed
                    raise
        except BaseException:
            if store is not None:
                store.close()
            raise
        store._moved_to(path)

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        source: Any = None,
        overwrite: bool = False,
        command: str | None = None,
    ) -> "ProjectStore":
        """Create an empty project for a video of ``num_frames`` x ``height`` x ``width``, or
        for the volume ``source`` (a :class:`~..sources.volume.VolumeSource`).

        The project appears at ``path`` complete or not at all (see :meth:`building`); the
        returned store holds the project's write lock until :meth:`close`.
        """
        with cls.building(path, num_frames=num_frames, height=height, width=width,
                          source=source, overwrite=overwrite, command=command) as store:
            pass
        return store

    @classmethod
    def _create_in(cls, path: Path, num_frames, height, width, source, command) -> "ProjectStore":
        import zarr
        from zarr.codecs import ZstdCodec

        extra: dict[str, Any] = {"axes": "tyx"}
        if is_volume_source(source):
            shape = [int(v) for v in source.shape]
            extra = {"axes": "tzyx", "geometry": source.geometry.to_dict()}
            source = describe_volume(source)
        else:
            shape = [int(num_frames), int(height), int(width)]
        lock = ProjectLock(path, command).acquire()  # first: a staging folder is never ownerless
        try:
            root = zarr.open_group(str(path), mode="a", zarr_format=3)
            labels_group = root.create_group("labels")
            labels_group.attrs["ome"] = {"version": "0.5", "labels": [LABELS_NAME]}
            image_label = labels_group.create_group(LABELS_NAME)
            image_label.create_array(
                "0",
                shape=tuple(shape),
                chunks=(*([1] * (len(shape) - 2)), *shape[-2:]),
                dtype="uint32",
                fill_value=0,
                compressors=ZstdCodec(level=LAYER_ZSTD_LEVEL),
                dimension_names=list(extra["axes"]),
            )
            root.create_group("objects")
            store = cls(path, root)
            store.format_version = FORMAT_VERSION
            store.planes = (shape[0], shape[1]) if len(shape) == 4 else None
            store._adopt_lock(lock)
            store._write_meta(
                {
                    "format_version": FORMAT_VERSION,
                    **extra,
                    "package_version": __version__,
                    "created": _now(),
                    "shape": shape,
                    "source": source or {},
                    "model": None,
                    "schema": None,
                    "objects": [],
                    "prompts": [],
                    "runs": [],
                    "review": {},
                    "building": True,
                }
            )
            store._write_label_metadata()
        except OSError as exc:
            lock.release()
            raise StoreError(f"cannot create a project in {path.parent}: {describe_os_error(exc)}; "
                             "choose a writable --out") from None
        except BaseException:
            lock.release()
            raise
        return store

    @classmethod
    def open(cls, path: str | Path, mode: str = "r+", *, command: str | None = None) -> "ProjectStore":
        """Open an existing project (``mode`` ``"r"`` for read-only).

        ``"r+"`` takes the project's write lock (:class:`~.lock.ProjectLock`) and refuses with
        :class:`~napari_sam2_track.errors.ProjectLockedError` while another live process holds
        it; runs left ``running`` by a dead writer are marked ``interrupted``. Readers never
        need the lock. :meth:`close` gives the lock back.
        """
        import zarr

        path = Path(path)
        if mode != "r":
            placement.recover_interrupted_swap(path)
        if not path.exists():
            raise StoreError(f"{path} is not a project store (not found); create it with 'track'")
        if not (path / "zarr.json").is_file():
            raise StoreError(f"{path} is not a project store (no zarr.json); create it with 'track'")
        try:
            root = zarr.open_group(str(path), mode=mode, zarr_format=3)
            attrs = root.attrs.asdict()
        except Exception as exc:  # noqa: BLE001 - any decoding failure of zarr.json
            raise StoreError(f"cannot read the metadata of project {path} "
                             f"({type(exc).__name__}: {exc}); restore zarr.json from a backup") from None
        if not placement.is_project(path):
            raise StoreError(f"{path} is a zarr group but not a napari-sam2-track project")
        if ATTR_KEY not in attrs:
            raise StoreError(f"{path} is an incomplete project (its creation was interrupted); "
                             "create it again with 'track --overwrite'")
        if isinstance(attrs[ATTR_KEY], dict) and attrs[ATTR_KEY].get("building"):
            raise StoreError(f"{path} is an unfinished project (its creation or --overwrite was "
                             "interrupted); run 'track' again to create it")
        problem = metadata_problem(attrs[ATTR_KEY])
        if problem:
            raise StoreError(f"the metadata of project {path} is corrupt ({problem}); "
                             "restore zarr.json from a backup or recreate it with 'track --overwrite'")
        store = cls(path, root, read_only=(mode == "r"))
        if store.format_version > FORMAT_VERSION:
            raise StoreError(f"{path} uses store format {store.format_version}, newer than this "
                             f"napari-sam2-track reads ({FORMAT_VERSION}); upgrade napari-sam2-track")
        if mode != "r":
            store._adopt_lock(ProjectLock(path, command).acquire())
            if store._lock.first_hold:
                store._mark_dead_runs()
            from .migrate import upgrade_store

            upgrade_store(store)  # under the write lock; finishes an interrupted migration too
        return store

    # ------------------------------------------------------------------- locking
    def _adopt_lock(self, lock: ProjectLock) -> None:
        self._lock = lock
        self._finalizer = weakref.finalize(self, lock.release)

    def lock(self, command: str | None = None) -> ProjectLock:
        """Hold this project's write lock; use as ``with store.lock(): ...`` or release it.

        Re-entrant within a process; raises
        :class:`~napari_sam2_track.errors.ProjectLockedError` naming the other writer.
        """
        return ProjectLock(self.path, command).acquire()

    @property
    def locked(self) -> bool:
        """Whether this store holds its project's write lock."""
        return self._lock is not None and self._lock.held

    def close(self) -> None:
        """Give back the write lock (reading still works; writing needs :meth:`open` again)."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "ProjectStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _moved_to(self, path: Path) -> None:
        import zarr

        if self._lock is not None:
            self._lock.moved(path)
        self.path = path
        self.group = zarr.open_group(str(path), mode="r+", zarr_format=3)
        self._arrays.clear()
        self._layer_arrays = None  # its chunk paths named the staging folder

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
        """``(frames, H, W)``: the planes ``T * Z`` of a volume project (see :attr:`volume_shape`)."""
        return plane_shape(self.group.attrs[ATTR_KEY])

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
        objects = check_object_categories(objects, self.schema)
        self.update_meta(objects=[o.model_dump(mode="json") for o in objects])
        for obj in objects:
            self.ensure_object_table(obj.id)
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
        self._arrays.pop(table_path(obj_id), None)
        self.layers.forget(table_path(obj_id))
        for t in frames:
            self.merge_labels(t)
        self._write_label_metadata()

    def ensure_object_table(self, obj_id: int) -> None:
        """Create object ``obj_id``'s per-frame table (all rows not run) unless it has one."""
        name = f"objects/{obj_id}"
        if table_path(obj_id) in self._arrays or name in self.group:
            return
        t = self.num_frames
        grp = self.group.require_group(name)
        table = grp.create_array(
            "table",
            shape=(t, len(TABLE_COLUMNS)),
            chunks=(min(TABLE_CHUNK, t), len(TABLE_COLUMNS)),
            dtype="float64",
            fill_value=np.nan,
            compressors=None,  # rewritten every frame; 64 KiB per 1024 frames uncompressed
            dimension_names=["t" if self.planes is None else "plane", "column"],
        )
        table.attrs["columns"] = list(TABLE_COLUMNS)
        if self.planes is not None:
            table.attrs["planes"] = list(self.planes)
        table.attrs["states"] = {str(k): v for k, v in STATE_NAMES.items()}

    def table(self, obj_id: int) -> np.ndarray:
        """The whole per-frame table of an object, ``(t, 8)`` float64 (see ``TABLE_COLUMNS``)."""
        return self._array(table_path(obj_id))[:]

    def table_rows(self, obj_id: int, lo: int, hi: int) -> np.ndarray | None:
        """Rows ``lo:hi`` of an object's table (``None`` if it has none), read chunk by chunk
        where the layout allows: for scans in blocks, zarr's indexing costs more than the rows."""
        name = table_path(obj_id)
        try:
            array = self._array(name)
        except KeyError:
            return None
        io = self.layers.chunk_io(name)
        if io is not None and io.chunk_shape[1:] == io.shape[1:]:
            return read_table_rows(io, lo, hi)
        return array[lo:hi]

    def write_table_block(self, obj_id: int, start: int, rows: np.ndarray,
                          keep: np.ndarray | None = None) -> None:
        """Write ``rows`` (``(k, 8)``) as rows ``start:start + k`` of an object's table, one
        whole-chunk write per table chunk (for many rows: faster than :meth:`write_rows`).

        ``keep``: bool per row; rows where it is ``False`` keep their stored values.
        """
        name = table_path(obj_id)
        array = self._array(name)
        rows = np.asarray(rows, dtype=np.float64)
        stop = start + len(rows)
        io = self.layers.chunk_io(name)
        if io is None or io.chunk_shape[1:] != io.shape[1:]:
            block = rows if keep is None else np.where(keep[:, None], rows, array[start:stop])
            array[start:stop] = block
            return
        per = io.chunk_shape[0]
        for c in range(start // per, (stop - 1) // per + 1):
            lo, hi = max(start, c * per), min(stop, (c + 1) * per)
            part = rows[lo - start : hi - start]
            want = None if keep is None else keep[lo - start : hi - start]
            if want is not None and not want.any():
                continue
            chunk = io.read((c, 0))
            if chunk is None:
                chunk = np.full(io.chunk_shape, io.fill, dtype=io.dtype)
            target = chunk[lo - c * per : hi - c * per]
            if want is None:
                target[:] = part
            else:
                target[want] = part[want]
            io.write((c, 0), io.encode(chunk))

    def table_column(self, obj_id: int, name: str) -> np.ndarray | None:
        """Column ``name`` (one of ``TABLE_COLUMNS``) of an object's table over every frame,
        float64 (``None`` if the object has no table)."""
        try:
            array = self._array(table_path(obj_id))
        except KeyError:
            return None
        return np.asarray(array[:, COL[name]], dtype=np.float64)

    def states(self, obj_id: int) -> np.ndarray:
        """Per-frame state codes of an object (``STATE_*``; NaN rows read as not run)."""
        col = self._array(table_path(obj_id))[:, COL["state"]]
        return np.where(np.isnan(col), STATE_NOT_RUN, col).astype(np.int8)

    def frames_with_state(self, obj_id: int, exclude: tuple[int, ...] = ()) -> list[int]:
        """Frames whose state is not in ``exclude``."""
        if f"objects/{obj_id}" not in self.group:
            return []
        states = self.states(obj_id)
        return np.flatnonzero(~np.isin(states, exclude)).tolist()

    def _write_label_metadata(self) -> None:
        """OME-Zarr 0.5 ``multiscales`` + ``image-label`` metadata with schema colours (axes
        with units and scale from the geometry in a volume project)."""
        axes, scale = label_axes(self.geometry, self.is_volume)
        self.group[f"labels/{LABELS_NAME}"].attrs["ome"] = {
            "version": "0.5",
            **image_label_metadata(LABELS_NAME, self.objects, self.schema, axes=axes, scale=scale),
        }

    # ------------------------------------------------------------------- summary
    def summary(self) -> dict:
        """Objects, frame states and provenance, for ``napari-sam2-track info``."""
        meta = self.meta
        statuses = self.run_statuses()
        holder = live_holder(self.path)
        objects = []
        for obj in self.objects:
            try:
                table = self.table(obj.id)
            except Exception:  # noqa: BLE001 - missing or damaged: 'info --check' says which
                table = np.full((0, len(TABLE_COLUMNS)), np.nan)
            col = table[:, COL["state"]]
            states = np.where(np.isnan(col), STATE_NOT_RUN, col).astype(np.int8)
            counts = {STATE_NAMES[k]: int((states == k).sum()) for k in STATE_NAMES}
            visible = np.flatnonzero(table[:, COL["area"]] > 0)
            objects.append(
                {
                    "id": obj.id,
                    "name": obj.name,
                    "category": obj.category,
                    "states": counts,
                    "first_frame": int(visible[0]) if visible.size else None,
                    "last_frame": int(visible[-1]) if visible.size else None,
                    "keyframes": sorted(self.prompt_plane(p) for p in meta["prompts"]
                                        if p["object"] == obj.id),
                }
            )
        return {
            "path": str(self.path),
            "shape": meta["shape"],
            "axes": meta.get("axes", "tyx"),
            "geometry": self.geometry.to_dict(),
            "format_version": meta["format_version"],
            "package_version": meta["package_version"],
            "created": meta["created"],
            "source": meta["source"],
            "model": meta["model"],
            "objects": objects,
            "runs": [{**r, "status": statuses.get(r["id"], r.get("status"))} for r in meta["runs"]],
            "lock": holder.__dict__ if holder is not None else None,
        }
