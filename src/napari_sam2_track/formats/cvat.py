"""CVAT for video 1.1 XML with mask tracks.

Each object is a ``<track>`` of ``<mask>`` shapes. Every frame where the object is visible is
a keyframe (masks do not interpolate); the first frame after it disappears carries
``outside="1"`` (and ``occluded="1"`` when it is hidden inside the view). The ``rle``
attribute is CVAT's own encoding: run lengths over the shape's box read row by row, starting
with background — not COCO RLE. Frames are numbered 0..N-1 in export order.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..errors import StoreError
from ..prompts import ObjectSpec
from ..project import ProjectStore
from ._frames import ExportOptions, LabelSource, ProjectView
from ._rle import cvat_decode, cvat_encode
from ._registry import FormatRecord, export_target, head, register


def _mask_xml(frame, rle, box, *, outside=0, occluded=0, keyframe=1) -> str:
    x, y, w, h = box
    return (f'    <mask frame="{frame}" keyframe="{keyframe}" outside="{outside}" occluded="{occluded}" '
            f'rle="{rle}" left="{x}" top="{y}" width="{w}" height="{h}" z_order="0">\n    </mask>\n')


def export_cvat(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
                overwrite: bool = False) -> Path:
    view = ProjectView(store, options)
    final = Path(out)
    with export_target(store, final, "cvat", overwrite) as out:
        spool = {obj_id: tempfile.TemporaryFile("w+") for obj_id in view.ids}
        last: dict[int, tuple] = {}  # object -> (rle, box) of its last visible mask
        hidden: dict[int, bool] = {}
        for fr in view:
            for obj_id in view.ids:
                m = fr.masks.get(obj_id)
                if m is not None:
                    rle, *box = cvat_encode(m)
                    last[obj_id] = (rle, box)
                    hidden[obj_id] = False
                    spool[obj_id].write(_mask_xml(fr.index, rle, box))
                elif obj_id in last and not hidden[obj_id]:
                    rle, box = last[obj_id]
                    occ = int(obj_id in fr.occluded)
                    spool[obj_id].write(_mask_xml(fr.index, rle, box, outside=1, occluded=occ))
                    hidden[obj_id] = True
        schema = view.schema
        attr_names = [a.name for a in schema.attributes]
        with open(out, "w", encoding="utf-8") as f:
            f.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n')
            f.write("  <meta>\n    <task>\n      <id>0</id>\n")
            f.write(f"      <name>{escape(store.path.stem)}</name>\n      <size>{view.num_frames}</size>\n")
            f.write("      <mode>interpolation</mode>\n      <overlap>0</overlap>\n")
            f.write(f"      <start_frame>{view.start}</start_frame>\n      <stop_frame>{view.frames[-1]}</stop_frame>\n")
            f.write(f"      <frame_filter>{'step=' + str(view.options.every) if view.options.every > 1 else ''}</frame_filter>\n")
            f.write("      <labels>\n")
            for c in schema.categories:
                f.write(f"        <label>\n          <name>{escape(c.name)}</name>\n          <color>{c.color}</color>\n"
                        "          <type>mask</type>\n          <attributes>\n")
                for a in schema.attributes:
                    values = "\n".join(a.choices) if a.kind == "choice" else ("false\ntrue" if a.kind == "bool" else "")
                    kind = {"choice": "select", "bool": "checkbox", "int": "number", "float": "number"}.get(a.kind, "text")
                    f.write(f"            <attribute>\n              <name>{escape(a.name)}</name>\n"
                            f"              <mutable>False</mutable>\n              <input_type>{kind}</input_type>\n"
                            f"              <default_value>{escape(str(a.default if a.default is not None else ''))}</default_value>\n"
                            f"              <values>{escape(values)}</values>\n            </attribute>\n")
                f.write("          </attributes>\n        </label>\n")
            f.write("      </labels>\n")
            f.write(f"      <original_size>\n        <width>{view.width}</width>\n        <height>{view.height}</height>\n"
                    "      </original_size>\n    </task>\n  </meta>\n")
            for obj in view.objects:
                sp = spool[obj.id]
                sp.seek(0)
                f.write(f'  <track id="{obj.id}" label={quoteattr(view.category_of(obj.id))} source="manual">\n')
                attrs = "".join(
                    f"      <attribute name={quoteattr(k)}>{escape(str(obj.attributes[k]).lower() if isinstance(obj.attributes[k], bool) else str(obj.attributes[k]))}</attribute>\n"
                    for k in attr_names if k in obj.attributes
                )
                for line in sp:
                    if attrs and line.rstrip().endswith(">") and line.lstrip().startswith("</mask>"):
                        f.write(attrs)
                    f.write(line)
                f.write("  </track>\n")
                sp.close()
            f.write("</annotations>\n")
    return final


def read_cvat(path: str | Path) -> LabelSource:
    """Read mask tracks of a CVAT for video 1.1 XML file (``outside`` shapes are absences)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise StoreError(f"cannot read {path} as CVAT XML: {exc}") from None
    meta = root.find("meta")
    task = next((meta.find(k) for k in ("task", "job", "project") if meta is not None and meta.find(k) is not None), None)
    size = root.find(".//original_size")
    if size is None:
        raise StoreError(f"{path} has no <original_size>; is it a CVAT for video 1.1 file?")
    h, w = int(size.findtext("height")), int(size.findtext("width"))
    n = int(task.findtext("size")) if task is not None and task.findtext("size") else 0
    objects, by_frame = [], {}
    other_shapes: dict[str, int] = {}
    for k, track in enumerate(root.iter("track")):
        obj_id = int(track.get("id", k)) + (1 if int(track.get("id", k)) == 0 else 0)
        if any(o.id == obj_id for o in objects):
            obj_id = max(o.id for o in objects) + 1
        shapes = track.findall("mask")
        for other in track:
            if other.tag != "mask" and other.tag != "attribute":
                other_shapes[other.tag] = other_shapes.get(other.tag, 0) + 1
        if not shapes:
            continue
        attrs = {a.get("name"): a.text for a in shapes[0].findall("attribute")}
        objects.append(ObjectSpec(id=obj_id, category=track.get("label", "object"), attributes=attrs))
        for s in shapes:
            if s.get("outside") == "1":
                continue
            t = int(s.get("frame"))
            x, y, bw, bh = (int(float(s.get(k))) for k in ("left", "top", "width", "height"))
            if t < 0 or x < 0 or y < 0 or bw < 1 or bh < 1 or x + bw > w or y + bh > h:
                raise StoreError(f"{path}: track {track.get('id')} frame {t}: mask box {x},{y},{bw}x{bh} "
                                 f"lies outside the {w}x{h} frame")
            n = max(n, t + 1)
            by_frame.setdefault(t, []).append((obj_id, s.get("rle") or "", x, y, bw, bh))
    for image in root.iter("image"):
        for shape in image:
            other_shapes[f"{shape.tag} (per-image)"] = other_shapes.get(f"{shape.tag} (per-image)", 0) + 1
    dropped = [f"{count} CVAT {tag} shape(s): only mask tracks are imported"
               for tag, count in sorted(other_shapes.items())]

    def frames():
        for t in sorted(by_frame):
            masks = {}
            for obj_id, rle, x, y, bw, bh in by_frame[t]:
                masks[obj_id] = cvat_decode(rle, x, y, bw, bh, (h, w))
            yield t, masks

    cats = [lab.findtext("name") for lab in root.iter("label") if lab.findtext("name")]
    return LabelSource((n, h, w), objects, frames, categories=cats, description=str(path), dropped=dropped)


def _is_cvat(path: Path) -> bool:
    text = head(path, 4096)
    return text.lstrip().startswith(b"<?xml") and b"<annotations>" in text


register(FormatRecord("cvat", "CVAT XML export", (".xml",), _is_cvat, export_cvat, importer=read_cvat))
