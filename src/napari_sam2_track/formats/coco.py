"""COCO-video / YouTube-VIS JSON: one annotation per object with a COCO RLE per frame.

The JSON is one document, but it is written in a streaming way: each object's per-frame
entries are spooled to a temporary file while the frames are read, then copied into the
document one object at a time.
"""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
from pathlib import Path

from ..errors import StoreError, summarize_list
from ..prompts import ObjectSpec
from ..project import ProjectStore
from ._frames import ExportOptions, LabelSource, ProjectView
from ._rle import bbox_xywh, checked_rle, coco_decode, coco_encode, json_int
from ._registry import FormatRecord, export_target, head, register


def export_ytvis(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
                 video: str | None = None, overwrite: bool = False) -> Path:
    """Write a YouTube-VIS style JSON file (``segmentations`` null where the object is absent)."""
    view = ProjectView(store, options)
    final = Path(out)
    with export_target(store, final, "youtube-vis", overwrite) as out:
        cats = view.schema.category_names()
        cat_id = {name: i + 1 for i, name in enumerate(cats)}
        video = video or store.path.stem
        spool = {obj_id: tempfile.TemporaryFile("w+") for obj_id in view.ids}
        file_names = tempfile.TemporaryFile("w+")
        for fr in view:
            file_names.write(json.dumps(f"{video}/{fr.t:05d}.jpg") + "\n")
            for obj_id in view.ids:
                m = fr.masks.get(obj_id)
                if m is None:
                    entry = [None, None, None, obj_id in fr.occluded]
                else:
                    entry = [coco_encode(m), int(m.sum()), bbox_xywh(m), False]
                spool[obj_id].write(json.dumps(entry) + "\n")
        with open(out, "w") as f:
            f.write("{" + f'"info": {json.dumps(_info(store))}, "licenses": [], ')
            f.write(f'"categories": {json.dumps([_category(view, c, cat_id[c]) for c in cats])}, ')
            f.write('"videos": [{"id": 1, "name": ' + json.dumps(video)
                    + f', "width": {view.width}, "height": {view.height}, "length": {view.num_frames}'
                    + ', "frame_numbers": ' + json.dumps(list(view.frames)) + ', "file_names": [')
            file_names.seek(0)
            for k, line in enumerate(file_names):
                f.write(("," if k else "") + line.strip())
            f.write("]}], \"annotations\": [")
            for k, obj in enumerate(view.objects):
                sp = spool[obj.id]
                sp.seek(0)
                f.write(("," if k else "") + "{" + f'"id": {obj.id}, "video_id": 1, '
                        f'"category_id": {cat_id[view.category_of(obj.id)]}, "iscrowd": 0, '
                        f'"width": {view.width}, "height": {view.height}, "length": 1, '
                        f'"name": {json.dumps(obj.name)}, "attributes": {json.dumps(obj.attributes)}')
                for key, col in (("segmentations", 0), ("areas", 1), ("bboxes", 2), ("occluded", 3)):
                    sp.seek(0)
                    f.write(f', "{key}": [')
                    for i, line in enumerate(sp):
                        f.write(("," if i else "") + json.dumps(json.loads(line)[col]))
                    f.write("]")
                f.write("}")
                sp.close()
            f.write("]}\n")
        file_names.close()
    return final


def _info(store: ProjectStore) -> dict:
    from .._version import __version__

    return {"description": f"exported from {store.path.name}", "version": "1.0",
            "contributor": f"napari-sam2-track {__version__}",
            "date_created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _category(view: ProjectView, name: str, i: int) -> dict:
    c = view.schema.category(name)
    return {"id": i, "name": name, "supercategory": "object", "color": c.color}


def read_ytvis(path: str | Path, video: str | int | None = None) -> LabelSource:
    """Read a YouTube-VIS / COCO-video JSON file (one video; the first unless ``video`` names one)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path} as JSON: {exc}") from None
    if not isinstance(data, dict) or "videos" not in data or "annotations" not in data:
        raise StoreError(f"{path} is not a YouTube-VIS file (needs 'videos' and 'annotations')")
    videos = data["videos"]
    if not isinstance(videos, list) or not all(isinstance(v, dict) for v in videos):
        raise StoreError(f"{path}: 'videos' must be a list of objects")
    if not videos:
        raise StoreError(f"found no videos in {path}; nothing was written")
    vid = next((v for v in videos if video in (v.get("id"), v.get("name"))), None) if video else videos[0]
    if vid is None:
        raise StoreError(f"no video {video!r} in {path}")
    cats = {c["id"]: c["name"] for c in data.get("categories", [])}
    if not isinstance(data["annotations"], list) or not isinstance(vid, dict):
        raise StoreError(f"{path}: 'videos' and 'annotations' must be lists of objects")
    anns = [a for a in data["annotations"] if not isinstance(a, dict) or a.get("video_id") == vid.get("id")]
    h, w = json_int(vid.get("height"), "video height", 1), json_int(vid.get("width"), "video width", 1)
    n = json_int(vid["length"], "video length", 1) if "length" in vid else len(vid.get("file_names") or [])
    objects = []
    for k, a in enumerate(anns):
        if not isinstance(a, dict):
            raise StoreError(f"{path}: annotation {k} is not an object")
        objects.append(ObjectSpec(id=json_int(a.get("id", k + 1), f"annotation {k} id", 1), name=str(a.get("name", "")),
                                  category=cats.get(a.get("category_id"), "object"),
                                  attributes=a.get("attributes") or {}))
    if len({o.id for o in objects}) != len(objects):
        raise StoreError(f"{path}: two annotations of video {vid['id']} have the same id")
    for a in anns:
        if not isinstance(a.get("segmentations"), list):
            raise StoreError(f"{path}: annotation {a.get('id')} has no list of per-frame 'segmentations'")
    dropped = []
    if len(videos) > 1:
        dropped.append(f"the other {len(videos) - 1} video(s) of {Path(path).name} and their annotations "
                       "(import one video at a time)")
    longer = [a.get("id") for a in anns if len(a.get("segmentations") or []) > n]
    if longer:
        dropped.append(f"segmentations after the video's {n} frames (annotations {summarize_list(longer)})")

    def frames():
        for t in range(n):
            masks = {}
            for obj, a in zip(objects, anns):
                segs = a.get("segmentations") or []
                rle = segs[t] if t < len(segs) else None
                if rle is not None:
                    m = coco_decode(checked_rle(rle, h, w, f"{path}: annotation {obj.id}, frame {t}"))
                    if m.any():
                        masks[obj.id] = m
            if masks:
                yield t, masks

    return LabelSource((n, h, w), objects, frames, categories=list(cats.values()), description=str(path),
                       dropped=dropped)


def _is_ytvis(path: Path) -> bool:
    text = head(path, 1 << 20).lstrip()
    return text.startswith(b"{") and b'"videos"' in text


register(FormatRecord("youtube-vis", "YouTube-VIS JSON export", (".json",), _is_ytvis, export_ytvis,
                      importer=read_ytvis, aliases=("coco-video", "ytvis")))
