"""DAVIS and YouTube-VOS: one palette PNG per frame, object ids 1..N (at most 254).

Project ids are remapped to 1..N in increasing order; ``object_ids.json`` beside the
annotations maps each PNG value back to the project id, name and category. YouTube-VOS adds
``meta.json`` with each object's category and frames.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..prompts import ObjectSpec
from ..project import ProjectStore
from ..project.labels import merge_lowest_id
from ._frames import ExportOptions, LabelSource, ProjectView, labels_to_masks
from ._write import prepare_out

MAX_DAVIS_OBJECTS = 254


def pascal_palette() -> np.ndarray:
    """The PASCAL VOC colour map used by DAVIS and YouTube-VOS, ``(256, 3)`` uint8."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def save_palette_png(path: Path, values: np.ndarray) -> None:
    from PIL import Image

    img = Image.fromarray(values.astype(np.uint8), mode="P")
    img.putpalette(pascal_palette().ravel().tolist())
    img.save(path, optimize=False)


def export_davis(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
                 flavour: str = "davis", video: str | None = None, overwrite: bool = False) -> Path:
    """Write ``Annotations/<video>/<frame:05d>.png`` (+ ``meta.json`` for ``flavour="youtube-vos"``)."""
    if flavour not in ("davis", "youtube-vos"):
        raise StoreError(f"unknown flavour {flavour!r}; use davis or youtube-vos")
    view = ProjectView(store, options)
    if len(view.ids) > MAX_DAVIS_OBJECTS:
        raise StoreError(
            f"{len(view.ids)} objects, but DAVIS/YouTube-VOS PNGs hold at most {MAX_DAVIS_OBJECTS}; "
            "export a category subset (--categories) or use sav/ome-zarr"
        )
    out = prepare_out(out, overwrite)
    video = video or store.path.stem
    folder = out / "Annotations" / video
    folder.mkdir(parents=True)
    remap = {obj_id: i + 1 for i, obj_id in enumerate(view.ids)}
    # Frames where each object is visible, spooled to disk for meta.json.
    spool = tempfile.TemporaryFile("w+") if flavour == "youtube-vos" else None
    for fr in view:
        values = merge_lowest_id(fr.masks, (view.height, view.width), np.uint8, remap)
        save_palette_png(folder / f"{fr.t:05d}.png", values)
        if spool is not None:
            for obj_id in fr.masks:
                spool.write(f"{remap[obj_id]} {fr.t}\n")
    mapping = {
        str(remap[o.id]): {"id": o.id, "name": o.name, "category": view.category_of(o.id),
                           "attributes": o.attributes}
        for o in view.objects
    }
    (out / "object_ids.json").write_text(json.dumps({video: mapping}, indent=1))
    if spool is not None:
        _write_meta(out / "meta.json", video, mapping, spool)
    return out


def _write_meta(path: Path, video: str, mapping: dict, spool) -> None:
    """``meta.json`` of YouTube-VOS, written one object at a time from the spool."""
    with open(path, "w") as f:
        f.write('{"videos": {' + json.dumps(video) + ': {"objects": {')
        for k, key in enumerate(mapping):
            spool.seek(0)
            frames = [line.split()[1] for line in spool if line.split()[0] == key]
            f.write(("," if k else "") + json.dumps(key) + ": ")
            f.write(json.dumps({"category": mapping[key]["category"],
                                "frames": [f"{int(t):05d}" for t in frames]}))
        f.write("}}}}\n")
    spool.close()


def read_davis(path: str | Path, video: str | None = None) -> LabelSource:
    """Read a DAVIS/YouTube-VOS annotation folder (``Annotations/<video>/*.png`` or the video folder)."""
    from PIL import Image

    root = Path(path)
    folder = root
    if (root / "Annotations").is_dir():
        videos = sorted(p for p in (root / "Annotations").iterdir() if p.is_dir())
        if (videos and (videos[0] / "480p").is_dir()) or (root / "Annotations" / "480p").is_dir():
            videos = sorted(p for p in (root / "Annotations" / "480p").iterdir() if p.is_dir())
        if not videos:
            raise StoreError(f"{root / 'Annotations'} holds no video folders")
        match = [v for v in videos if v.name == video] if video else videos[:1]
        if not match:
            raise StoreError(f"no video {video!r} in {root}; found {', '.join(v.name for v in videos)}")
        folder = match[0]
    files = sorted((int(m.group(1)), f) for f in folder.glob("*.png")
                   if (m := re.fullmatch(r"(\d+)\.png", f.name)))
    if not files:
        raise StoreError(f"{folder} has no numbered PNG files (00000.png, ...)")
    # Mapping back to project ids, if this came from our exporter.
    mapping: dict = {}
    for cand in (root / "object_ids.json", folder.parent.parent / "object_ids.json"):
        if cand.is_file():
            mapping = json.loads(cand.read_text()).get(folder.name, {})
            break
    categories: dict[str, str] = {}
    meta = root / "meta.json"
    if meta.is_file():
        objs = json.loads(meta.read_text()).get("videos", {}).get(folder.name, {}).get("objects", {})
        categories = {k: v.get("category", "object") for k, v in objs.items()}
    first = np.array(Image.open(files[0][1]))
    values: set[int] = set()
    for _, f in files:
        values.update(int(v) for v in np.unique(np.array(Image.open(f))) if v not in (0, 255))

    def to_id(v: int) -> int:
        return int(mapping[str(v)]["id"]) if str(v) in mapping else v

    objects = []
    for v in sorted(values):
        info = mapping.get(str(v), {})
        objects.append(ObjectSpec(id=to_id(v), name=info.get("name", ""),
                                  category=info.get("category") or categories.get(str(v), "object"),
                                  attributes=info.get("attributes", {})))
    cats = list(dict.fromkeys(o.category for o in objects))

    def frames():
        for t, f in files:
            arr = np.array(Image.open(f))
            arr[arr == 255] = 0  # DAVIS "void"
            masks = {to_id(v): m for v, m in labels_to_masks(arr).items()}
            if masks:
                yield t, masks

    return LabelSource((files[-1][0] + 1, *first.shape[:2]), objects, frames, categories=cats,
                       description=str(folder))
