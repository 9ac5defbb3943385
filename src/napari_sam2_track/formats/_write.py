"""Writing imported annotations into a project store, and small shared helpers."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import StoreError, summarize_list
from ..prompts import ObjectSpec, Prompt
from ..schema import PALETTE, Category, Schema
from ..project import STATE_ABSENT, STATE_EDITED, STATE_PROMPTED, ProjectStore
from ..project.placement import CLI_NEW
from ._frames import DroppedWarning, LabelSource


def schema_for(categories: list[str], base: Schema | None = None) -> Schema:
    """A schema with ``categories`` (keeping ``base``'s colours and conventions)."""
    base = base or Schema.default()
    known = {c.name: c for c in base.categories}
    names = list(dict.fromkeys([*categories])) or base.category_names()
    cats = [
        known.get(n) or Category(name=n, color=PALETTE[i % len(PALETTE)]) for i, n in enumerate(names)
    ]
    return base.model_copy(update={"categories": cats})


def write_project(
    source: LabelSource,
    out: str | Path,
    *,
    keyframes: str = "none",
    overwrite: bool = False,
    schema: Schema | None = None,
) -> ProjectStore:
    """Write imported annotations as a project store, all or nothing.

    ``keyframes``: ``"none"`` stores every frame as an edited mask; ``"first"`` additionally
    stores each object's first frame as a mask prompt (a keyframe SAM 2 can track from);
    ``"all"`` stores every frame as a mask prompt (state ``prompted``).

    The project is written beside ``out`` and renamed when complete; ``overwrite`` replaces only
    a previous project. Annotations without any object are refused; whatever the source could
    not represent (``source.dropped``) is reported as a :class:`DroppedWarning` and recorded in
    the project's ``source.dropped``.
    """
    if keyframes not in ("none", "first", "all"):
        raise StoreError(f"unknown keyframes mode {keyframes!r}; use none, first or all")
    n, h, w = source.shape
    if not source.objects:
        raise StoreError(f"found no objects in {source.description}; nothing was written")
    objects = _checked_parents(source)
    meta = {"path": source.description, "kind": "import", **source.info}
    if source.volume is not None:
        building = _building_volume(source, out, meta, overwrite)
    else:
        building = ProjectStore.building(out, num_frames=n, height=h, width=w, source=meta, overwrite=overwrite,
                                         words=CLI_NEW)
    with building as store:
        if source.volume is not None:  # the image's provenance, with what was imported onto it
            meta = {**store.meta["source"], "import": meta, "format": meta.get("format")}
            store.update_meta(source=meta)
        cats = source.categories or sorted({o.category for o in objects if o.category}) or ["object"]
        store.set_schema(schema_for(cats, schema))
        store.set_objects(objects)
        seen = _write_frames(store, source, keyframes)
        if not seen:
            raise StoreError(f"found no masks in {source.description} (it lists objects, but no frame "
                             "holds one); nothing was written")
        unseen = sorted({o.id for o in objects} - seen)
        if unseen:
            source.dropped.append(f"objects listed without any mask (kept, empty): {summarize_list(unseen)}")
        if source.dropped:
            store.update_meta(source={**meta, "dropped": list(source.dropped)})
    for note in source.dropped:
        warnings.warn(note, DroppedWarning, stacklevel=2)
    return store


def _building_volume(source: LabelSource, out, meta: dict, overwrite: bool):
    """``ProjectStore.building`` of a volume project for a volume label set (on its image when given)."""
    volume = project_volume(source)
    shape = tuple(int(v) for v in volume.shape)
    if shape[1:] != tuple(source.volume[1:]) or source.volume[0] not in (1, shape[0]):
        raise StoreError(f"{source.description} is {source.volume} (t, z, y, x) but the image is {shape}; "
                         "nothing was written")
    return ProjectStore.building(out, source=volume, overwrite=overwrite, words=CLI_NEW)


def _checked_parents(source: LabelSource) -> list[ObjectSpec]:
    """The source's objects; lineage links to objects that are not there are dropped (and said)."""
    ids = {o.id for o in source.objects}
    out, unknown = [], []
    for o in source.objects:
        parent = getattr(o, "parent", None)
        if parent is not None and (parent not in ids or parent == o.id):
            unknown.append(f"{o.id}->{parent}")
            o = o.model_copy(update={"parent": None})
        out.append(o)
    if unknown:
        source.dropped.append(f"lineage links to parents that are not in the annotation: {summarize_list(unknown)}")
    return out


def _write_frames(store: ProjectStore, source: LabelSource, keyframes: str) -> set[int]:
    """Write every frame's masks and table rows; returns the objects that have a mask."""
    n, h, w = source.shape
    ids = set(store.object_ids())
    seen: set[int] = set()
    empty = np.zeros((h, w), bool)
    for t, masks in source.frames():
        if not 0 <= t < n:
            raise StoreError(f"{source.description} has masks on frame {t}, outside its {n} frames")
        masks = {obj_id: np.asarray(mask, bool) for obj_id, mask in masks.items()}
        for obj_id, mask in masks.items():
            if obj_id not in ids:
                raise StoreError(f"frame {t} has object {obj_id}, which the annotation does not list")
            if mask.shape != (h, w):
                raise StoreError(
                    f"frame {t} of {source.description} is {mask.shape[1]}x{mask.shape[0]}, but the "
                    f"annotation is {w}x{h}; every frame must have the same size"
                )
        if masks:  # the frame's label layers first, then its rows
            store.merge_labels(t, masks)
        for obj_id, mask in masks.items():
            prompted = keyframes == "all" or (keyframes == "first" and obj_id not in seen)
            if prompted:
                store.put_prompt(Prompt(object=obj_id, frame=t, mask="pending"), mask)
            seen.add(obj_id)
            state = STATE_PROMPTED if prompted else STATE_EDITED
            store.write_row(obj_id, t, mask, presence=10.0, state=state, run=0)
        # Objects known but not in this frame: mark absent once they have appeared.
        for obj_id in seen - set(masks):
            store.write_row(obj_id, t, empty, presence=-10.0, state=STATE_ABSENT, run=0)
    return seen


def objects_from_ids(ids, category: str = "object", names: dict | None = None) -> list[ObjectSpec]:
    names = names or {}
    return [ObjectSpec(id=int(i), name=str(names.get(int(i), "")), category=category) for i in sorted(ids)]


def project_volume(source: LabelSource):
    """The volume source a project of the volume label set ``source`` is built on: its image
    (``info["image"]``), else the label volume itself, else an empty volume of its geometry."""
    from ..sources import open_volume
    from ..sources.geometry import Geometry

    if source.info.get("image"):
        return open_volume(source.info["image"], window=(0, 1))
    if source.volume_source is not None:
        return source.volume_source
    import dask.array as da

    from ..sources.volume import ArrayVolumeSource

    t, z, h, w = source.volume
    geometry = source.geometry or Geometry("tzyx", source.volume, (1.0,) * 4, (None,) * 4)
    empty = ArrayVolumeSource(da.zeros(source.volume, dtype=np.uint8, chunks=(1, 1, h, w)), "TZYX", window=(0, 1))
    empty.geometry = geometry  # the labels' own placement
    return empty
