"""SA-V style output: one PNG per object per frame (``<video>/<obj:03d>/<frame:05d>.png``),
so overlapping objects keep their full masks; and the SA-V annotation JSON as input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import StoreError, summarize_list
from ..prompts import ObjectSpec
from ..project import ProjectStore
from ._frames import ExportOptions, LabelSource, ProjectView
from ._rle import checked_rle, coco_decode, json_int
from ._registry import FormatRecord, export_target, register
from ._write import objects_from_ids
from .davis import save_palette_png


def export_sav(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
               video: str | None = None, overwrite: bool = False) -> Path:
    """Write a binary palette PNG (values 0/1) for every object on every exported frame."""
    view = ProjectView(store, options)
    final = Path(out)
    with export_target(store, final, "sav", overwrite) as out:
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
            [{"id": o.id, "name": o.name, "category": view.category_of(o.id), "attributes": o.attributes,
          "parent": o.parent}
             for o in view.objects], indent=1))
    return final


def read_sav_pngs(path: str | Path) -> LabelSource:
    """Read per-object PNG folders (``<obj>/<frame>.png``, non-zero = object)."""
    from PIL import Image

    folder = Path(path)
    subdirs = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    dropped = []
    if subdirs and not any(re.fullmatch(r"\d+", p.name) for p in subdirs):
        folder = sorted(subdirs)[0]
        if len(subdirs) > 1:
            others = [p.name for p in sorted(subdirs)[1:]]
            dropped.append(f"the other videos of {Path(path).name} ({summarize_list(others)}); import "
                           "each video's folder on its own")
    objs = sorted((int(p.name), p) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    if not objs:
        raise StoreError(f"found no per-object folders (001/, 002/, ...) in {path}; nothing was written")
    files: dict[int, dict[int, Path]] = {}
    shape = None
    for obj_id, p in objs:
        for f in p.glob("*.png"):
            if f.stem.isdigit():
                files.setdefault(int(f.stem), {})[obj_id] = f
                with Image.open(f) as im:
                    size = (im.size[1], im.size[0])
                if shape is None:
                    shape, first = size, f
                elif size != shape:
                    raise StoreError(f"{f} is {size[1]}x{size[0]}, but {first} is {shape[1]}x{shape[0]}; "
                                     "every mask must have the same size")
    if not files:
        raise StoreError(f"found no numbered PNG masks (00000.png, ...) in the object folders of {folder}; "
                         "nothing was written")
    info = {}
    meta = folder.parent / "objects.json"
    if meta.is_file():
        info = {o["id"]: o for o in json.loads(meta.read_text())}
    objects = [ObjectSpec(id=i, name=info.get(i, {}).get("name", ""),
                          category=info.get(i, {}).get("category", "object"),
                          attributes=info.get(i, {}).get("attributes", {}),
                          parent=info.get(i, {}).get("parent")) for i, _ in objs]

    def frames():
        for t in sorted(files):
            masks = {}
            for obj_id, f in sorted(files[t].items()):
                with Image.open(f) as im:
                    m = np.array(im) > 0
                if m.ndim == 3:  # RGB(A): any colour is the object
                    m = m.any(axis=-1)
                if m.any():
                    masks[obj_id] = m
            if masks:
                yield t, masks

    return LabelSource((max(files) + 1, *shape), objects,
                       frames, categories=list(dict.fromkeys(o.category for o in objects)),
                       description=str(folder), dropped=dropped)


#: SA-V's manual annotations: 6 fps on 24 fps videos, every 4th frame.
SAV_STRIDE = 4


def _infer_stride(annotated: int, video_frames: int, path) -> int:
    """The stride that puts ``annotated`` frames 0, s, 2s, ... on a video of ``video_frames``."""
    fits = [s for s in range(1, video_frames + 1) if (annotated - 1) * s < video_frames <= annotated * s]
    if annotated == 1:
        return SAV_STRIDE if video_frames >= 1 else 1
    if not fits:
        raise StoreError(
            f"{path} has {annotated} annotated frames, which do not fit a video of {video_frames} "
            "frames at any fixed stride; pass --frame-stride, or check --video/--video-frames"
        )
    return SAV_STRIDE if SAV_STRIDE in fits else fits[0]


def _video_frames(video) -> int:
    from ..sources import open_source

    source = open_source(video)
    try:
        return int(source.num_frames)
    finally:
        source.close()


def read_sav_json(path: str | Path, frame_stride: int | None = None, *, video_frames: int | None = None,
                  video: str | Path | None = None) -> LabelSource:
    """Read an SA-V annotation file (``masklet``: per annotated frame, one RLE per object).

    SA-V annotates every 4th frame of its 24 fps videos, so annotated frame ``i`` is video frame
    ``i * stride``. The stride is ``frame_stride`` if given, else inferred from the video's frame
    count (``video_frames``, the frame count of ``video``, or the file's ``video_frame_count``);
    without any of these, annotated frame ``i`` becomes frame ``i`` (and the import says so).
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path} is not a file; SA-V annotations are one JSON file per video (*_manual.json)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "masklet" not in data:
        raise StoreError(f"{path} is not an SA-V annotation file (no 'masklet' key)")
    masklet = data["masklet"]
    if not isinstance(masklet, list) or not all(isinstance(f, list) for f in masklet):
        raise StoreError(f"{path}: 'masklet' must be a list (annotated frames) of lists (one RLE per object)")
    if not masklet:
        raise StoreError(f"found no annotated frames in {path} ('masklet' is empty); nothing was written")
    width = max(len(f) for f in masklet)
    raw_ids = data.get("masklet_id", list(range(width)))
    if not isinstance(raw_ids, list) or len(raw_ids) < width or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in raw_ids):
        raise StoreError(f"{path}: 'masklet_id' must list a non-negative integer id for each of the {width} masklets")
    ids = [i + 1 for i in raw_ids[:width]]
    if len(set(ids)) != len(ids):
        raise StoreError(f"{path}: 'masklet_id' lists an id more than once")
    # SA-V's release writes its counts as floats (``"video_height": 848.0``)
    h = json_int(data.get("video_height"), "video_height", 1, integral_float=True)
    w = json_int(data.get("video_width"), "video_width", 1, integral_float=True)
    n_ann = len(masklet)
    info: dict = {"annotated_frames": n_ann}
    dropped: list[str] = []
    if video is not None:
        video_frames = _video_frames(video)
    if video_frames is None and data.get("video_frame_count") is not None:
        video_frames = json_int(data["video_frame_count"], "video_frame_count", 1, integral_float=True)
    if frame_stride is not None:
        if frame_stride < 1:
            raise StoreError(f"--frame-stride must be 1 or more, not {frame_stride}")
        stride = int(frame_stride)
        if video_frames is not None and (n_ann - 1) * stride >= video_frames:
            raise StoreError(
                f"{n_ann} annotated frames every {stride} frames need {(n_ann - 1) * stride + 1} frames, "
                f"but the video has {video_frames}"
            )
    elif video_frames is not None:
        if video_frames < 1:
            raise StoreError(f"the video has {video_frames} frames; nothing to place the annotations on")
        stride = _infer_stride(n_ann, video_frames, path)
    else:
        stride = 1
        dropped.append(
            f"{path.name} gives no video frame count: annotated frame i is placed on frame i "
            "(SA-V annotates every 4th frame; pass --video or --video-frames to place them on the video)"
        )
    n = video_frames if video_frames is not None else (n_ann - 1) * stride + 1
    info["frame_stride"] = stride
    if video_frames is not None:
        info["video_frames"] = int(video_frames)

    def frames():
        for i, rles in enumerate(masklet):
            masks = {}
            for obj_id, rle in zip(ids, rles):
                if rle is None:
                    continue
                m = coco_decode(checked_rle(rle, h, w, f"{path}: annotated frame {i}"))
                if m.any():
                    masks[obj_id] = m
            if masks:
                yield i * stride, masks

    return LabelSource((n, h, w), objects_from_ids(ids), frames, description=str(path), info=info,
                       dropped=dropped)


register(
    FormatRecord("sav", "SA-V export", exporter=export_sav, importer=read_sav_pngs),
    FormatRecord("sav-json", "SA-V JSON", (".json",), importer=read_sav_json),
)
