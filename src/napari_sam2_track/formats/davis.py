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

from ..errors import StoreError, summarize_list
from ..prompts import ObjectSpec
from ..project import ProjectStore
from ..project.labels import merge_lowest_id
from ._frames import ExportOptions, LabelSource, ProjectView, labels_to_masks
from ._registry import FormatRecord, export_target, register

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
    final = Path(out)
    with export_target(store, final, flavour, overwrite) as out:
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
    return final


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
    """Read a DAVIS/YouTube-VOS annotation folder (``Annotations/<video>/*.png`` or the video folder).

    Two conventions are told apart: DAVIS-2017/YouTube-VOS (palette PNGs, one value per
    object, 255 "void") and DAVIS-2016 (binary masks where 255 is the single object). A set of
    frames holding only 0 and 255 is read as DAVIS-2016; the convention used is recorded.
    """
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
    else:
        videos = []
    files = sorted((int(m.group(1)), f) for f in folder.glob("*.png")
                   if (m := re.fullmatch(r"(\d+)\.png", f.name)))
    if not files:
        raise StoreError(f"found no numbered PNG files (00000.png, ...) in {folder}; nothing was written")
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
    shape, values = _scan(files)
    convention = _convention(values, bool(mapping))
    dropped = []
    others = [v.name for v in videos if v != folder]
    if others:
        dropped.append(f"the other videos of {root.name} ({summarize_list(others)}); import each "
                       "Annotations/<video> folder on its own")
    if convention == DAVIS_2016:
        values = {1}
    elif VOID in values:
        dropped.append(f"pixels of value {VOID} in {folder.name}: DAVIS-2017 'void' (not an object)")
    values.discard(VOID)
    values.discard(0)

    def to_id(v: int) -> int:
        return int(mapping[str(v)]["id"]) if str(v) in mapping else v

    objects = []
    for v in sorted(values):
        info = mapping.get(str(v), {})
        objects.append(ObjectSpec(id=to_id(v), name=info.get("name", ""),
                                  category=info.get("category") or categories.get(str(v), "object"),
                                  attributes=info.get("attributes", {}), parent=info.get("parent")))
    cats = list(dict.fromkeys(o.category for o in objects))

    def frames():
        for t, f in files:
            arr = _read_png(f, shape)
            if convention == DAVIS_2016:
                masks = {1: arr == VOID} if (arr == VOID).any() else {}
            else:
                arr[arr == VOID] = 0
                masks = {to_id(v): m for v, m in labels_to_masks(arr).items()}
            if masks:
                yield t, masks

    return LabelSource((files[-1][0] + 1, *shape), objects, frames, categories=cats,
                       description=str(folder), info={"convention": convention}, dropped=dropped)


VOID = 255
DAVIS_2016 = "DAVIS-2016 (binary masks: 255 is the one object)"
DAVIS_2017 = "DAVIS-2017 (one value per object, 255 is void)"


def _convention(values: set[int], from_export: bool) -> str:
    """DAVIS-2016 when every frame holds only 0 and 255 (an annotation of void alone means
    nothing), else DAVIS-2017."""
    if not from_export and VOID in values and values <= {0, VOID}:
        return DAVIS_2016
    return DAVIS_2017


def _read_png(f: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The values of one annotation PNG: palette indices or 8-bit gray levels."""
    from PIL import Image

    with Image.open(f) as im:
        if im.mode not in ("P", "L", "1"):
            raise StoreError(
                f"{f} is a {im.mode} image; DAVIS/YouTube-VOS annotations are palette (P) or 8-bit "
                "grayscale PNGs holding one value per object — save the masks as indexed PNGs"
            )
        arr = np.array(im.convert("L") if im.mode == "1" else im)
    if shape is not None and arr.shape != shape:
        raise StoreError(f"{f} is {arr.shape[1]}x{arr.shape[0]}, but the first frame is {shape[1]}x{shape[0]}; "
                         "every annotation PNG of a video must have the same size")
    return arr


def _scan(files: list[tuple[int, Path]]) -> tuple[tuple[int, int], set[int]]:
    """The frame size (the same for every file) and the values used."""
    shape = None
    values: set[int] = set()
    for _, f in files:
        arr = _read_png(f, shape)
        shape = arr.shape
        values.update(int(v) for v in np.unique(arr))
    return shape, values


register(
    FormatRecord("davis", "DAVIS/YouTube-VOS export", exporter=export_davis,
                 export_args={"flavour": "davis"}, importer=read_davis, family="davis"),
    FormatRecord("youtube-vos", "DAVIS/YouTube-VOS export", exporter=export_davis,
                 export_args={"flavour": "youtube-vos"}, importer=read_davis, family="davis",
                 aliases=("ytvos",)),
)
