"""MOTS txt: ``frame id class_id height width rle`` with ``id = class_id * 1000 + instance``.

Frames are numbered from 1 in the MOTSChallenge convention and from 0 in KITTI MOTS. Masks
must not overlap, so the merged labels are used (the lowest id wins).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import StoreError
from ..prompts import ObjectSpec
from ..project import ProjectStore
from ._frames import ExportOptions, LabelSource, ProjectView
from ._rle import checked_rle, coco_decode, coco_encode
from ._registry import FormatRecord, export_target, head, register

#: Class ids of the benchmarks, used when a category has one of these names.
KNOWN_CLASSES = {"car": 1, "pedestrian": 2, "person": 2}


def class_ids(categories: list[str]) -> dict[str, int]:
    """Category -> MOTS class id: 1 car, 2 pedestrian, others 3, 4, ... in schema order."""
    out, nxt = {}, 3
    for name in categories:
        if name.lower() in KNOWN_CLASSES:
            out[name] = KNOWN_CLASSES[name.lower()]
        else:
            out[name] = nxt
            nxt += 1
    return out


def export_mots(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
                convention: str = "motschallenge", overwrite: bool = False) -> Path:
    """Write one MOTS txt file; ``convention`` is ``motschallenge`` (frames from 1) or ``kitti`` (from 0)."""
    if convention not in ("motschallenge", "kitti"):
        raise StoreError(f"unknown MOTS convention {convention!r}; use motschallenge or kitti")
    view = ProjectView(store, options)
    if view.ids and max(view.ids) > 999:
        raise StoreError(f"object id {max(view.ids)} is too large for MOTS (instance ids 1-999)")
    classes = class_ids(view.schema.category_names())
    base = 1 if convention == "motschallenge" else 0
    with export_target(store, out, "mots", overwrite) as tmp, open(tmp, "w") as f:
        for fr in view:
            labels = fr.labels()
            for obj_id in sorted(fr.masks):
                m = labels == obj_id
                if not m.any():
                    continue
                cls = classes[view.category_of(obj_id)]
                rle = coco_encode(m)
                f.write(f"{fr.t + base} {cls * 1000 + obj_id} {cls} {view.height} {view.width} {rle['counts']}\n")
    return Path(out)


def read_mots(path: str | Path, convention: str = "motschallenge") -> LabelSource:
    """Read a MOTS txt file; object id = the MOTS id (``class * 1000 + instance``).

    Every line must be ``frame id class_id height width rle`` with one size for all lines;
    ignore regions (id 10000) are left out, and the import says so.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path} is not a file; MOTS annotations are one txt file per sequence")
    base = 1 if convention == "motschallenge" else 0
    rows = []
    ignored = 0
    size = None
    with open(path, encoding="ascii") as f:
        for k, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6 or not all(p.lstrip("-").isdigit() for p in parts[:5]):
                raise StoreError(f"{path} line {k} is not 'frame id class_id height width rle' (truncated or not MOTS?)")
            t, i, c, h, w = map(int, parts[:5])
            if size is None:
                size = (h, w)
            elif (h, w) != size:
                raise StoreError(f"{path} line {k} is {w}x{h}, but earlier lines are {size[1]}x{size[0]}")
            if t - base < 0 or i < 0 or c < 0:
                raise StoreError(f"{path} line {k}: frame {t}, id {i}, class {c} out of range "
                                 f"(frames start at {base} in the {convention} convention)")
            if i == 10000:  # ignore regions
                ignored += 1
                continue
            rows.append((t - base, i, c, h, w, parts[5]))
    if not rows:
        raise StoreError(f"found no MOTS objects in {path}; nothing was written")
    h, w = size
    for t, i, _c, hh, ww, counts in rows:
        checked_rle({"size": [hh, ww], "counts": counts}, h, w, f"{path}: frame {t + base}, id {i}")
    mots_ids = sorted({r[1] for r in rows})
    instances = [i % 1000 for i in mots_ids]
    # Instance ids unique across classes (as this exporter writes them) become the object ids.
    to_id = dict(zip(mots_ids, instances)) if len(set(instances)) == len(instances) and 0 not in instances \
        else {i: i for i in mots_ids}
    objects = [ObjectSpec(id=to_id[i], category=f"class{i // 1000}") for i in mots_ids]
    dropped = [f"{ignored} ignore region(s) (id 10000) of {path.name}"] if ignored else []

    def frames():
        cur, masks = None, {}
        for t, i, _c, hh, ww, counts in sorted(rows):
            if t != cur and masks:
                yield cur, masks
                masks = {}
            cur = t
            masks[to_id[i]] = coco_decode({"size": [hh, ww], "counts": counts})
        if masks:
            yield cur, masks

    n = max(r[0] for r in rows) + 1
    return LabelSource((n, h, w), objects, frames, categories=sorted({o.category for o in objects}),
                       description=str(path), dropped=dropped)


def _is_mots(path: Path) -> bool:
    text = head(path, 1 << 20)
    if not text.strip():
        return True  # an export without any visible object
    first = text.split(b"\n", 1)[0].decode("ascii", "replace")
    return re.fullmatch(r"-?\d+ \d+ \d+ \d+ \d+ \S+", first.strip()) is not None


register(
    FormatRecord("mots", "MOTS txt export", (".txt",), _is_mots, export_mots,
                 {"convention": "motschallenge"}, read_mots),
    FormatRecord("mots-kitti", "MOTS txt export", (".txt",), _is_mots, export_mots,
                 {"convention": "kitti"}, read_mots, {"convention": "kitti"}),
)
