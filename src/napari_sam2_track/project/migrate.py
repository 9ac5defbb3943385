"""Upgrading older project stores to the current format when they are opened for writing."""

from __future__ import annotations

import shutil

from .layers import build_layers
from .layout import ATTR_KEY, FORMAT_VERSION, V1_MASK_PATH


def upgrade_store(store) -> None:
    """Bring a store opened for writing to :data:`FORMAT_VERSION` (in place, resumable).

    Format 1 -> 2: every frame with a stored per-object mask is rewritten as label layers
    (``labels/masklets/0`` + ``overlaps/<k>``); then the format version is recorded, and only
    then are the per-object ``objects/<id>/mask`` arrays deleted. A migration that is killed
    part-way is redone (or its clean-up finished) the next time the project is opened.
    Format 2 -> 3: the metadata gains ``axes: "tyx"`` and the version (nothing else changes;
    volume projects exist only from format 3).
    """
    if store.format_version == 1:
        _migrate_v1(store)
    if store.format_version == 2:
        _delete_v1_masks(store)  # a 1 -> 2 migration killed before its clean-up
        _record_version(store, 2, {"axes": "tyx"})
    if store.format_version == FORMAT_VERSION:
        _delete_v1_masks(store)


def _record_version(store, old: int, fields: dict, **details) -> None:
    """Write the metadata ``fields`` and the new format version in one metadata write."""
    with store._meta_lock:
        meta = dict(store.group.attrs[ATTR_KEY])
        meta.update(fields)
        meta["format_version"] = old + 1
        meta.setdefault("migrated", []).append({"from": old, "to": old + 1, **details})
        store.group.attrs[ATTR_KEY] = meta
    store.format_version = old + 1


def _v1_ids(store) -> list[int]:
    objects = store.path / "objects"
    if not objects.is_dir():
        return []
    return sorted(
        int(p.name) for p in objects.iterdir() if p.name.isdigit() and (p / "mask" / "zarr.json").is_file()
    )


def _migrate_v1(store) -> None:
    ids = _v1_ids(store)
    arrays = {o: store.group[V1_MASK_PATH.format(id=o)] for o in ids}
    frames = sorted({t for o in ids for t in store.layers.v1_frames(o)})
    shape = store.shape[1:]
    for t in frames:
        masks = {o: arrays[o][t] for o in ids}
        store.layers.write(t, build_layers(masks, shape))
    _record_version(store, 1, {}, frames=len(frames))


def _delete_v1_masks(store) -> None:
    for obj_id in _v1_ids(store):
        shutil.rmtree(store.path / V1_MASK_PATH.format(id=obj_id))
