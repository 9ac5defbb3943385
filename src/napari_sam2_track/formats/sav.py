"""SA-V style output: one PNG per object per frame (``<video>/<obj:03d>/<frame:05d>.png``),
so overlapping objects keep their full masks; and the SA-V annotation JSON as input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..prompts import ObjectSpec
from ..project import ProjectStore
from ._frames import ExportOptions, LabelSource, ProjectView
from ._rle import coco_decode
from ._write import objects_from_ids, prepare_out
from .davis import save_palette_png


def export_sav(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
               video: str | None = None, overwrite: bool = False) -> Path:
    """Write a binary palette PNG (values 0/1) for every object on every exported frame."""
    view = ProjectView(store, options)
    out = prepare_out(out, overwrite)
    folder = out / (video or store.path.stem)
    for obj_id in view.ids:
        (folder / f"{obj_id:03d}").mkdir(parents=True)
    empty = np.zeros((view.height, view.width), np.uint8)
    for fr in view:
        for obj_id in view.ids:
            m = fr.masks.get(obj_id)
            save_palette_png(folder / f"{obj_id:03d}" / f"{fr.t:05d}.png",
                             empty if m is None else m.astype(np.uint8))
    (out / "objects.json").write_text(json.dumps(
        [{"id": o.id, "name": o.name, "category": view.category_of(o.id), "attributes": o.attributes}
         for o in view.objects], indent=1))
    return out


def read_sav_pngs(path: str | Path) -> LabelSource:
    """Read per-object PNG folders (``<obj>/<frame>.png``, non-zero = object)."""
    from PIL import Image

    folder = Path(path)
    subdirs = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    if subdirs and not any(re.fullmatch(r"\d+", p.name) for p in subdirs):
        folder = sorted(subdirs)[0]
    objs = sorted((int(p.name), p) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    if not objs:
        raise StoreError(f"{path} has no per-object folders (001/, 002/, ...)")
    files: dict[int, dict[int, Path]] = {}
    shape = None
    for obj_id, p in objs:
        for f in p.glob("*.png"):
            if f.stem.isdigit():
                files.setdefault(int(f.stem), {})[obj_id] = f
                if shape is None:
                    shape = np.array(Image.open(f)).shape[:2]
    info = {}
    meta = folder.parent / "objects.json"
    if meta.is_file():
        info = {o["id"]: o for o in json.loads(meta.read_text())}
    objects = [ObjectSpec(id=i, name=info.get(i, {}).get("name", ""),
                          category=info.get(i, {}).get("category", "object"),
                          attributes=info.get(i, {}).get("attributes", {})) for i, _ in objs]

    def frames():
        for t in sorted(files):
            masks = {}
            for obj_id, f in sorted(files[t].items()):
                m = np.array(Image.open(f)) > 0
                if m.any():
                    masks[obj_id] = m
            if masks:
                yield t, masks

    return LabelSource((max(files) + 1, *shape), objects,
                       frames, categories=list(dict.fromkeys(o.category for o in objects)),
                       description=str(folder))


def read_sav_json(path: str | Path, frame_stride: int = 1) -> LabelSource:
    """Read an SA-V annotation file (``masklet``: per annotated frame, one RLE per object).

    The ``i``-th annotated frame becomes frame ``i * frame_stride`` (SA-V annotates every 4th
    frame of its 24 fps videos: pass 4 to keep the original numbering).
    """
    data = json.loads(Path(path).read_text())
    if "masklet" not in data:
        raise StoreError(f"{path} is not an SA-V annotation file (no 'masklet' key)")
    ids = [int(i) + 1 for i in data.get("masklet_id", range(len(data["masklet"][0]) if data["masklet"] else 0))]
    h, w = int(data["video_height"]), int(data["video_width"])
    n = len(data["masklet"])

    def frames():
        for i, rles in enumerate(data["masklet"]):
            masks = {}
            for obj_id, rle in zip(ids, rles):
                if rle is None:
                    continue
                m = coco_decode(rle)
                if m.any():
                    masks[obj_id] = m
            if masks:
                yield i * frame_stride, masks

    return LabelSource(((n - 1) * frame_stride + 1 if n else 0, h, w), objects_from_ids(ids), frames,
                       description=str(path))
