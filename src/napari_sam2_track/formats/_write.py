"""Writing imported annotations into a project store, and small shared helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..prompts import ObjectSpec, Prompt
from ..schema import PALETTE, Category, Schema
from ..project import STATE_ABSENT, STATE_EDITED, STATE_PROMPTED, ProjectStore
from ._frames import LabelSource


def prepare_out(path: str | Path, overwrite: bool = False, *, is_dir: bool = True) -> Path:
    """Check an output path: refuse to replace existing output unless ``overwrite``."""
    import shutil

    path = Path(path)
    if path.exists():
        if not overwrite:
            raise StoreError(f"{path} already exists; choose another --out or pass --overwrite")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if is_dir:
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


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
    """Write imported annotations as a project store.

    ``keyframes``: ``"none"`` stores every frame as an edited mask; ``"first"`` additionally
    stores each object's first frame as a mask prompt (a keyframe SAM 2 can track from);
    ``"all"`` stores every frame as a mask prompt (state ``prompted``).
    """
    if keyframes not in ("none", "first", "all"):
        raise StoreError(f"unknown keyframes mode {keyframes!r}; use none, first or all")
    n, h, w = source.shape
    store = ProjectStore.create(out, num_frames=n, height=h, width=w, overwrite=overwrite,
                                source={"path": source.description, "kind": "import"})
    cats = source.categories or sorted({o.category for o in source.objects if o.category}) or ["object"]
    store.set_schema(schema_for(cats, schema))
    store.set_objects(source.objects)
    ids = store.object_ids()
    seen: set[int] = set()
    empty = np.zeros((h, w), bool)
    last_written: dict[int, int] = {}
    for t, masks in source.frames():
        for obj_id, mask in masks.items():
            if obj_id not in ids:
                raise StoreError(f"frame {t} has object {obj_id}, which the annotation does not list")
            mask = np.asarray(mask, bool)
            store.write_mask(obj_id, t, mask)
            prompted = keyframes == "all" or (keyframes == "first" and obj_id not in seen)
            if prompted:
                store.put_prompt(Prompt(object=obj_id, frame=t, mask="pending"), mask)
            seen.add(obj_id)
            state = STATE_PROMPTED if prompted else STATE_EDITED
            store.write_row(obj_id, t, mask, presence=10.0, state=state, run=0)
            last_written[obj_id] = t
        if masks:
            store.merge_labels(t, masks)
        # Objects known but not in this frame: mark absent once they have appeared.
        for obj_id in seen - set(masks):
            store.write_row(obj_id, t, empty, presence=-10.0, state=STATE_ABSENT, run=0)
    return store


def objects_from_ids(ids, category: str = "object", names: dict | None = None) -> list[ObjectSpec]:
    names = names or {}
    return [ObjectSpec(id=int(i), name=str(names.get(int(i), "")), category=category) for i in sorted(ids)]
