"""Cell Tracking Challenge format: ``maskTTT.tif`` (uint16) and ``res_track.txt``.

Every line of ``res_track.txt`` is ``L B E P``: a track label, its first and last frame and its
parent track (0 for none). A label must be present in every frame from ``B`` to ``E``, so an
object that disappears and comes back is split into several tracks, each later one the child
of the one before. An object with a ``parent`` (the lineage field of the object; a division)
starts as a child of that object's last track, and reading a folder back sets ``parent`` from
``P``, so lineage survives import -> project -> export. An object's first track keeps the object id
as its label; later tracks get labels above the largest object id.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import StoreError, summarize_list
from ..project import ProjectStore
from ..project.labels import merge_lowest_id
from ._frames import ExportOptions, LabelSource, ProjectView, labels_to_masks
from ._registry import FormatRecord, export_target, register
from ._volume import VolumeView, is_volume_store
from ._write import objects_from_ids

MAX_TRACKS = 65535


def digits(num_frames: int) -> int:
    """File-name digits: 3 up to 1,000 frames, 4 up to 10,000 and so on."""
    return max(3, len(str(max(num_frames - 1, 0))))


class _Tracks:
    """Split object presence into CTC tracks (label, begin, end, parent)."""

    def __init__(self, parents: dict[int, int], ids: list[int] | None = None):
        self.parents = parents
        # An object's first track keeps the object id; later tracks are numbered after the ids.
        self.fresh = set(ids or [])
        self.current: dict[int, int] = {}  # object -> track label visible on the last frame
        self.last: dict[int, int] = {}  # object -> its latest track label
        self.rows: dict[int, list[int]] = {}  # label -> [B, E, P]
        self.next_label = max(self.fresh, default=0) + 1

    def step(self, index: int, visible: list[int]) -> dict[int, int]:
        now = {}
        for obj_id in visible:
            label = self.current.get(obj_id)
            if label is None:
                if obj_id in self.fresh and obj_id not in self.last:
                    label = obj_id
                else:
                    label = self.next_label
                    self.next_label += 1
                if label > MAX_TRACKS:
                    raise StoreError(
                        f"more than {MAX_TRACKS} CTC tracks (uint16 masks); export fewer objects or "
                        "a shorter frame range (--start/--end, --categories)"
                    )
                if obj_id in self.last:
                    parent = self.last[obj_id]
                else:
                    parent = self.last.get(self.parents.get(obj_id, 0), 0)
                self.rows[label] = [index, index, parent]
                self.last[obj_id] = label
            self.rows[label][1] = index
            now[obj_id] = label
        self.current = now
        return now


def _parents(view: ProjectView) -> dict[int, int]:
    """Object -> parent object: the lineage field, or a ``parent`` attribute of older projects."""
    out = {}
    for o in view.objects:
        p = o.parent if o.parent is not None else o.attributes.get("parent")
        if isinstance(p, int) and not isinstance(p, bool):
            out[o.id] = p
    return out


def export_ctc(store: ProjectStore, out: str | Path, options: ExportOptions | None = None,
               *, overwrite: bool = False, prefix: str = "mask", track_file: str = "res_track.txt") -> Path:
    """Write a CTC result folder (``maskTTT.tif`` + ``res_track.txt``)."""
    import tifffile

    if is_volume_store(store):
        return _export_ctc_volume(store, out, options, overwrite=overwrite, prefix=prefix, track_file=track_file)
    view = ProjectView(store, options)
    # Count tracks first (tables only), so that too many tracks fail before anything is written.
    counter = _Tracks(_parents(view), view.ids)
    for fr in view.walk(read_masks=False):
        counter.step(fr.index, sorted(fr.masks))
    final = Path(out)
    with export_target(store, final, "ctc", overwrite) as out:
        width = digits(view.num_frames)
        tracks = _Tracks(_parents(view), view.ids)
        for fr in view:
            mapping = tracks.step(fr.index, sorted(fr.masks))
            labels = merge_lowest_id(fr.masks, (view.height, view.width), np.uint16, mapping)
            tifffile.imwrite(out / f"{prefix}{fr.index:0{width}d}.tif", labels, compression="zlib")
        write_track_file(out / track_file, tracks.rows)
    return final


def _export_ctc_volume(store: ProjectStore, out, options, *, overwrite: bool, prefix: str, track_file: str) -> Path:
    """CTC 3D: one ``maskTTT.tif`` (uint16, ``ZYX``) per timepoint; an object is in a track on
    every timepoint where it has voxels (the tracks of the 2D export, along t)."""
    import tifffile

    view = VolumeView(store, options)
    parents = {o.id: o.parent for o in view.objects if o.parent is not None}
    # Count tracks first (tables only), so that too many tracks fail before anything is written.
    counter, depth = _Tracks(parents, view.ids), view.depth
    present: dict[int, set[int]] = {}
    for fr in view.view.walk(read_masks=False):
        present.setdefault(fr.t // depth, set()).update(fr.masks)
    for index, t in enumerate(view.timepoints):
        counter.step(index, sorted(present.get(t, ())))
    final = Path(out)
    with export_target(store, final, "ctc", overwrite) as out:
        width = digits(len(view.timepoints))
        tracks = _Tracks(parents, view.ids)
        for index, _t, labels in view.walk():
            ids = [int(i) for i in np.unique(labels) if i]
            mapping = tracks.step(index, ids)
            lut = np.zeros(int(labels.max()) + 1, np.uint16)
            for obj_id, label in mapping.items():
                lut[obj_id] = label
            tifffile.imwrite(out / f"{prefix}{index:0{width}d}.tif", lut[labels], compression="zlib",
                             metadata={"axes": "ZYX"})
        write_track_file(out / track_file, tracks.rows)
    return final


def write_track_file(path: Path, rows: dict[int, list[int]]) -> None:
    with open(path, "w") as f:
        for label in sorted(rows):
            b, e, p = rows[label]
            f.write(f"{label} {b} {e} {p}\n")


def read_track_file(path: Path) -> dict[int, tuple[int, int, int]]:
    """``{label: (B, E, P)}`` of a ``res_track.txt``/``man_track.txt``; {} if there is none."""
    out: dict[int, tuple[int, int, int]] = {}
    if not path.is_file():
        return out
    for k, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise StoreError(f"{path} line {k} is not 'L B E P' (four non-negative integers)")
        label, b, e, p = map(int, parts)
        if label < 1 or b > e or label in out:
            raise StoreError(f"{path} line {k}: track {label} from {b} to {e} is invalid or repeated")
        out[label] = (b, e, p)
    return out


def _mask_files(folder: Path) -> list[tuple[int, Path]]:
    files = []
    for f in folder.iterdir():
        m = re.fullmatch(r"(?:mask|man_track|man_seg)(\d+)\.tiff?", f.name)
        if m:
            files.append((int(m.group(1)), f))
    return sorted(files)


def read_ctc(path: str | Path, *, merge_tracks: bool = True) -> LabelSource:
    """Read a CTC result or ``TRA`` folder, with its lineage.

    With ``merge_tracks`` a track that continues its parent after a gap (the parent ends before
    the child begins and has no other child) is read back as the same object. Every other
    parent link (a division) becomes the child object's ``parent``.
    """
    import tifffile

    folder = Path(path)
    if (folder / "TRA").is_dir():
        folder = folder / "TRA"
    files = _mask_files(folder) if folder.is_dir() else []
    if not files:
        raise StoreError(f"found no CTC mask files (maskTTT.tif or man_trackTTT.tif) in {path}; nothing was written")
    track_file = next((f for f in (folder / "res_track.txt", folder / "man_track.txt") if f.exists()), None)
    tracks = read_track_file(track_file) if track_file is not None else {}
    if track_file is not None and not tracks:
        raise StoreError(f"{track_file} lists no tracks; it must have one 'L B E P' line per label")
    alias: dict[int, int] = {}
    if merge_tracks:
        children: dict[int, list[int]] = {}
        for label, (b, e, p) in tracks.items():
            if p:
                children.setdefault(p, []).append(label)
        for label in sorted(tracks):
            b, e, p = tracks[label]
            if p and p in tracks and len(children[p]) == 1 and tracks[p][1] < b - 1:
                alias[label] = alias.get(p, p)
    first = tifffile.imread(files[0][1])
    if first.ndim not in (2, 3) or first.dtype.kind not in "ui":
        raise StoreError(f"{files[0][1]} is not a label image ({first.dtype} pixels, shape {first.shape}); "
                         "CTC masks are 2-D (or 3-D ZYX) integer TIFFs")
    depth = first.shape[0] if first.ndim == 3 else 1
    n = files[-1][0] + 1
    parents: dict[int, int] = {}
    dropped: list[str] = []
    if track_file is not None:
        ids = {alias.get(label, label) for label in tracks}
        missing = []
        for label, (_b, _e, p) in tracks.items():
            if p and label not in alias:
                if p in tracks:
                    parents[label] = alias.get(p, p)
                else:
                    missing.append(f"{label}->{p}")
        if missing:
            dropped.append(f"parent links to tracks the track file does not list: {summarize_list(missing)}")
    else:
        ids = set()
        for _, f in files:
            ids.update(int(i) for i in np.unique(tifffile.imread(f)) if i)
        dropped.append(f"{path} has no res_track.txt or man_track.txt: each label is one object, without lineage")

    def frames():
        for t, f in files:
            labels = tifffile.imread(f)
            if labels.shape != first.shape:
                raise StoreError(f"{f} is {labels.shape[-1]}x{labels.shape[0]}, but {files[0][1].name} is "
                                 f"{first.shape[-1]}x{first.shape[0]}; every mask must have the same size")
            for z, plane in enumerate(labels.reshape(-1, *labels.shape[-2:])):
                masks: dict[int, np.ndarray] = {}
                for label, m in labels_to_masks(plane).items():
                    obj = alias.get(label, label)
                    masks[obj] = masks[obj] | m if obj in masks else m
                if masks:
                    yield t * depth + z, masks

    objects = [o.model_copy(update={"parent": parents.get(o.id)}) for o in objects_from_ids(ids)]
    volume = (n, depth, *first.shape[-2:]) if first.ndim == 3 else None
    return LabelSource((n * depth, *first.shape[-2:]), objects, frames, description=str(path),
                       info={"lineage_links": len(parents)}, dropped=dropped, volume=volume)


def write_ctc_source(source: LabelSource, out: Path, *, prefix: str = "mask",
                     track_file: str = "res_track.txt") -> Path:
    """Write any :class:`LabelSource` as CTC masks + track file, with its lineage (used by ``compare``)."""
    import tifffile

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = source.shape[0]
    width = digits(n)
    parents = {o.id: o.parent for o in source.objects if o.parent is not None}
    tracks = _Tracks(parents, [o.id for o in source.objects])
    for t, labels in source.labels():
        ids = [int(i) for i in np.unique(labels) if i]
        mapping = tracks.step(t, ids)
        lut = np.zeros(int(labels.max()) + 1, np.uint16)
        for obj_id, label in mapping.items():
            lut[obj_id] = label
        tifffile.imwrite(out / f"{prefix}{t:0{width}d}.tif", lut[labels], compression="zlib")
    write_track_file(out / track_file, tracks.rows)
    return out


register(FormatRecord("ctc", "CTC export", exporter=export_ctc, importer=read_ctc))
