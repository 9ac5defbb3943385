"""Agreement between two annotators of one item, and merging their project copies.

Each annotator works in their own project copy (``Item.copies``). :func:`agreement` compares two
copies object by object with DAVIS J&F (:func:`napari_sam2_track.formats.metrics.davis_jf`, the
first annotator's copy as the reference; J&F is symmetric in practice) and lists, per object,
the frames where they disagree most (lowest ``(J + F) / 2``, frames where neither has the object
left out). :func:`merge` writes a new project taking each object (masks, table rows, prompts)
from the copy a verifier chose, built beside its destination and renamed into place
(:meth:`~napari_sam2_track.project.ProjectStore.building`), so a crash leaves no half project.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .files import DatasetError

#: Frames listed per object where two annotators disagree most.
TOP_FRAMES = 5
#: Rows of tables read per block when copying.
_BLOCK = 4096


def _open(path: str | Path):
    from ..project import ProjectStore

    return ProjectStore.open(path, mode="r")


def agreement(copy_a: str | Path, copy_b: str | Path, *, top: int = TOP_FRAMES,
              names: tuple[str, str] = ("a", "b")) -> dict:
    """Per-object J, F and J&F between two project copies of one item, and the ``top`` frames
    of each object where they disagree most."""
    from ..formats import project_source
    from ..formats.metrics import davis_jf

    a, b = _open(copy_a), _open(copy_b)
    if a.shape != b.shape:
        raise DatasetError(f"{a.path} and {b.path} are not copies of one item: {a.shape} vs {b.shape} "
                           "(t, y, x)")
    result = davis_jf(project_source(a), project_source(b), per_frame=True)
    objects = {}
    for obj_id, stats in result["objects"].items():
        j = np.asarray(result["per_frame"][obj_id]["J"])
        f = np.asarray(result["per_frame"][obj_id]["F"])
        score = (j + f) / 2
        disagree = np.flatnonzero(score < 1.0)
        worst = disagree[np.argsort(score[disagree], kind="stable")[:top]]
        objects[int(obj_id)] = {
            "J": stats["J"]["mean"], "F": stats["F"]["mean"], "J&F": stats["J&F"],
            f"in_{names[0]}": stats["in_reference"], f"in_{names[1]}": stats["in_other"],
            "frames_disagreeing": int(disagree.size),
            "worst_frames": [{"frame": int(t), "J": float(j[t]), "F": float(f[t])} for t in worst],
        }
    return {"annotators": list(names), "copies": [str(a.path), str(b.path)], "frames": result["frames"],
            "J&F": result["overall"]["J&F"], "objects": objects}


def item_agreement(item, *, top: int = TOP_FRAMES) -> dict | None:
    """:func:`agreement` of the first two copies of a dataset item (``None`` with fewer)."""
    names = sorted(item.copies)[:2]
    if len(names) < 2 or not all(item.copies[n].exists() for n in names):
        return None
    return {"item": item.id, **agreement(item.copies[names[0]], item.copies[names[1]], top=top,
                                         names=(names[0], names[1]))}


def parse_take(text: str) -> dict[int, str]:
    """``"1=ann,2=bob"`` as ``{1: "ann", 2: "bob"}``; one line when it is not."""
    out: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        obj, sep, who = part.partition("=")
        try:
            obj_id = int(obj)
        except ValueError:
            obj_id = None
        if not sep or obj_id is None or not who.strip():
            raise DatasetError(f"--take {text!r}: write it as OBJ=ANNOTATOR,... e.g. 1=ann,2=bob")
        if obj_id in out:
            raise DatasetError(f"--take names object {obj_id} twice")
        out[obj_id] = who.strip()
    if not out:
        raise DatasetError("--take names no object; write it as OBJ=ANNOTATOR,... e.g. 1=ann,2=bob")
    return out


def merge(copies: Mapping[str, str | Path], take: Mapping[int, str], out: str | Path, *,
          rest: str | None = None, overwrite: bool = False):
    """Write a project at ``out`` with each object taken from the copy of the annotator
    ``take`` names (the objects not named from ``rest``'s copy, if given); returns it (locked:
    close it when done).

    Refused with one line and nothing written for an unknown annotator, an object the chosen
    copy does not have, objects left without a choice, copies of different items, or an ``out``
    that exists (without ``overwrite``) or is one of the copies.
    """
    from ..errors import StoreError
    from ..project import ProjectStore
    from ..prompts import Prompt

    stores = {}
    for who in {*take.values(), *([rest] if rest else [])}:
        if who not in copies:
            raise DatasetError(f"no copy of annotator {who!r}; copies: {', '.join(sorted(copies)) or 'none'}")
        stores[who] = _open(copies[who])
    shapes = {s.shape for s in stores.values()}
    if len(shapes) > 1:
        raise DatasetError("the copies are not of one item: their sizes differ "
                           f"({', '.join(str(s) for s in sorted(shapes))})")
    everything = sorted({o for s in stores.values() for o in s.object_ids()})
    choice = dict(take)
    for obj_id in everything:
        if obj_id not in choice and rest is not None and obj_id in stores[rest].object_ids():
            choice[obj_id] = rest
    for obj_id, who in choice.items():
        if obj_id not in stores[who].object_ids():
            raise DatasetError(f"{who}'s copy has no object {obj_id} (objects: "
                               f"{', '.join(map(str, stores[who].object_ids())) or 'none'})")
    left = [o for o in everything if o not in choice]
    if left:
        raise DatasetError(f"choose a copy for objects {', '.join(map(str, left))} too "
                           "(--take OBJ=ANNOTATOR, or --rest ANNOTATOR)")
    out = Path(out)
    if any(out.absolute() == Path(p).absolute() for p in copies.values()):
        raise DatasetError(f"{out} is one of the copies; write the merged project elsewhere")
    first = next(iter(stores.values()))
    n, h, w = first.shape
    source = {**(first.meta.get("source") or {}), "merged_from": {o: str(stores[w_].path)
                                                                   for o, w_ in sorted(choice.items())}}
    ids = sorted(choice)
    try:
        with ProjectStore.building(out, num_frames=n, height=h, width=w, source=source,
                                   overwrite=overwrite) as merged:
            merged.set_schema(first.schema)
            merged.set_objects([next(o for o in stores[choice[i]].objects if o.id == i) for i in ids])
            by_copy: dict[str, list[int]] = {}
            for i in ids:
                by_copy.setdefault(choice[i], []).append(i)
            for t in range(n):
                masks = {}
                for who, objs in by_copy.items():
                    masks.update({o: m for o, m in stores[who].frame_masks(t, objs).items() if m.any()})
                if masks:
                    merged.merge_labels(t, masks)
            for i in ids:
                src = stores[choice[i]]
                merged.ensure_object_table(i)
                for lo in range(0, n, _BLOCK):
                    rows = src.table_rows(i, lo, min(n, lo + _BLOCK))
                    if rows is not None:
                        merged.write_table_block(i, lo, rows)
                for p in src.prompts.prompts:
                    if p.object != i:
                        continue
                    if p.mask and p.mask.startswith("store:"):
                        merged.put_prompt(Prompt.model_validate({**p.model_dump(mode="json"),
                                                                 "mask": "pending"}), src.prompt_mask(p))
                    else:
                        merged.put_prompt(p)
    except StoreError as exc:
        raise DatasetError(str(exc)) from None
    return merged


def merge_item(dataset, item_id: str, take: Mapping[int, str], *, rest: str | None = None,
               out: str | Path | None = None, overwrite: bool = False):
    """:func:`merge` of a dataset item's copies, by default into the item's own project."""
    item = dataset.item(item_id)
    if not item.copies:
        raise DatasetError(f"item {item_id!r} has no annotator copies to merge")
    for who in {*take.values(), *([rest] if rest else [])}:
        dataset.require_annotator(who)
    target = Path(out) if out is not None else item.project
    if target.exists() and out is None:
        overwrite = True  # the item's project is the merge's destination
    store = merge(item.copies, take, target, rest=rest, overwrite=overwrite)
    if target == item.project:
        store.close()
        dataset.claim_project(item)
    return store
