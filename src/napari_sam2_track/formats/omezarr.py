"""OME-Zarr labels: NGFF 0.5 (zarr v3) or 0.4 (zarr v2, for Fiji/MoBIE), written a frame at a time.

Layout::

    OUT.ome.zarr/                 root: the image (multiscales) when included
      0                           the image (t, c, y, x) uint8, only with image="include"
      labels/masklets/0           uint32 (t, y, x) merged labels, image-label colours/properties

With ``image="reference"`` the source video's path is recorded in the root attributes
(``napari_sam2_track_export.image``, with the exported ``frames`` as ``[start, end, every]``)
instead of copying the pixels. The key is not the project's own (``napari_sam2_track``): an
export is never taken for a project.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..project import ProjectStore
from ..project.labels import image_label_metadata, label_multiscale
from ._frames import ExportOptions, LabelSource, ProjectView, labels_to_masks, staged
from ._registry import FormatRecord, export_target, register
from ._volume import VolumeView, is_volume_store

LABEL_NAME = "masklets"
#: Root attribute of ``image="reference"``: the source video and the frames exported.
REFERENCE_KEY = "napari_sam2_track_export"


def _put(group, meta: dict, version: str) -> None:
    if version == "0.5":
        group.attrs["ome"] = {"version": "0.5", **meta}
    else:
        group.attrs.update(meta)


def _array(group, name, shape, chunks, dtype, version, dims):
    kw = {"dimension_names": dims} if version == "0.5" else {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
    if version == "0.5":
        from zarr.codecs import ZstdCodec

        kw["compressors"] = ZstdCodec(level=3)
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0, **kw)


def export_omezarr(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
                   version: str = "0.5", image: str = "none", image_path: str | None = None,
                   overwrite: bool = False) -> Path:
    """Write the merged labels as OME-Zarr; ``image`` is ``none``, ``reference`` or ``include``."""
    import zarr

    if version not in ("0.4", "0.5"):
        raise StoreError(f"OME-Zarr version must be 0.4 or 0.5, not {version}")
    if image not in ("none", "reference", "include"):
        raise StoreError(f"image must be none, reference or include, not {image!r}")
    if is_volume_store(store):
        return _export_volume(store, out, options, version=version, image=image, image_path=image_path,
                              overwrite=overwrite)
    view = ProjectView(store, options)
    src_path = image_path or (store.meta.get("source") or {}).get("path")
    source = None
    if image == "include":
        if not src_path:
            raise StoreError("the project records no source video; pass --image-path to include the image")
        from ..sources import open_source

        src = store.meta.get("source") or {}
        window = src.get("window")
        try:
            source = open_source(src_path, window=tuple(window.values()) if isinstance(window, dict) else window)
        except Exception:
            source = open_source(src_path)
    final = Path(out)
    with export_target(store, final, "ome-zarr" if version == "0.5" else "ome-zarr-0.4", overwrite) as out:
        root = zarr.open_group(str(out), mode="w", zarr_format=3 if version == "0.5" else 2)
        n, h, w = view.num_frames, view.height, view.width
        if source is not None:
            first = np.asarray(source.read_rgb(view.start))
            c = first.shape[-1] if first.ndim == 3 else 1
            arr = _array(root, "0", (n, c, h, w), (1, c, h, w), "uint8", version, ["t", "c", "y", "x"])
            _put(root, {"multiscales": [label_multiscale("image", [("t", "time"), ("c", "channel"), ("y", "space"),
                                                              ("x", "space")], version)]}, version)
            image_progress = staged(view.progress, 0, 2)
            view.progress = staged(view.progress, 1, 2)  # the labels: a second pass
            for i, t in enumerate(view.frames):
                frame = np.asarray(source.read_rgb(t))
                arr[i] = np.moveaxis(frame, -1, 0) if frame.ndim == 3 else frame[None]
                if image_progress is not None:
                    image_progress(i + 1, n)
            source.close()
        if image == "reference" and src_path:
            root.attrs[REFERENCE_KEY] = {"image": str(src_path), "frames": [view.start, view.end, view.options.every]}
        labels_group = root.create_group("labels")
        _put(labels_group, {"labels": [LABEL_NAME]}, version)
        lg = labels_group.create_group(LABEL_NAME)
        arr = _array(lg, "0", (n, h, w), (1, h, w), "uint32", version, ["t", "y", "x"])
        _put(lg, image_label_metadata(LABEL_NAME, view.objects, view.schema, version=version,
                                      source_image="../../" if source is not None else None), version)
        for fr in view:
            if fr.masks:  # empty frames stay unwritten (fill value 0)
                arr[fr.index] = fr.labels()
    return final


def _open_volume_image(store: ProjectStore, image_path: str | None):
    """The project's image volume (or ``image_path``), windowed as recorded."""
    from ..sources import open_volume

    src = store.meta.get("source") or {}
    path = image_path or src.get("path")
    if not path:
        raise StoreError("the project records no source volume; pass --image-path to include the image")
    kwargs = {"series": src["series"]} if src.get("series") and not image_path else {}
    if src.get("channel") is not None and not image_path:
        kwargs["channel"] = src["channel"]
    volume = open_volume(path, window=(0, 1), **kwargs)
    if tuple(volume.shape) != tuple(store.volume_shape):
        shape = tuple(volume.shape)
        volume.close()
        raise StoreError(f"{path} is {shape} (t, z, y, x) but the project is {tuple(store.volume_shape)}; "
                         "pass --image-path with the volume the project was made from")
    return volume


def _export_volume(store: ProjectStore, out, options, *, version: str, image: str, image_path: str | None,
                   overwrite: bool) -> Path:
    """A volume project: labels ``(t, z, y, x)`` with the geometry's scale and units; the image
    (``include``) in its own data type, one slice at a time."""
    import zarr

    from ..project.volume import label_axes

    view = VolumeView(store, options)
    volume = _open_volume_image(store, image_path) if image == "include" else None
    axes, scale = label_axes(view.geometry, True)
    n, (depth, h, w) = len(view.timepoints), view.shape[1:]
    final = Path(out)
    try:
        with export_target(store, final, "ome-zarr" if version == "0.5" else "ome-zarr-0.4", overwrite) as out:
            root = zarr.open_group(str(out), mode="w", zarr_format=3 if version == "0.5" else 2)
            dims = ["t", "z", "y", "x"]
            if volume is not None:
                arr = _array(root, "0", (n, depth, h, w), (1, 1, h, w), volume.dtype.name, version, dims)
                _put(root, {"multiscales": [label_multiscale("image", axes, version, scale)]}, version)
                image_progress = staged(view.progress, 0, 2)
                view.progress = staged(view.progress, 1, 2)
                for i, t in enumerate(view.timepoints):
                    for z in range(depth):
                        arr[i, z] = volume.read_slice(t, z)
                        if image_progress is not None:
                            image_progress(i * depth + z + 1, n * depth)
            src_path = image_path or (store.meta.get("source") or {}).get("path")
            if image == "reference" and src_path:
                root.attrs[REFERENCE_KEY] = {"image": str(src_path), "timepoints": [
                    view.timepoints.start, view.timepoints[-1], view.timepoints.step]}
            labels_group = root.create_group("labels")
            _put(labels_group, {"labels": [LABEL_NAME]}, version)
            lg = labels_group.create_group(LABEL_NAME)
            arr = _array(lg, "0", (n, depth, h, w), (1, 1, h, w), "uint32", version, dims)
            _put(lg, image_label_metadata(LABEL_NAME, view.objects, view.schema, version=version,
                                          source_image="../../" if volume is not None else None,
                                          axes=axes, scale=scale), version)
            for index, _t, labels in view.walk():
                for z in range(depth):
                    if labels[z].any():  # empty planes stay unwritten (fill value 0)
                        arr[index, z] = labels[z]
    finally:
        if volume is not None:
            volume.close()
    return final


def read_omezarr(path: str | Path, label: str | None = None) -> LabelSource:
    """Read OME-Zarr labels (0.4 or 0.5): a root with ``labels/``, or the label image itself."""
    import zarr

    path = Path(path)
    try:
        g = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise StoreError(f"cannot open {path} as zarr: {exc}") from None

    def attrs(group) -> dict:
        a = dict(group.attrs)
        return a.get("ome", a)

    if "labels" in g and "labels" in attrs(g["labels"]):
        names = attrs(g["labels"])["labels"]
        name = label or names[0]
        if name not in names:
            raise StoreError(f"no label image {name!r} in {path}; found {', '.join(names)}")
        g = g["labels"][name]
    a = attrs(g)
    if "multiscales" not in a:
        raise StoreError(f"{path} holds no OME-Zarr labels (no multiscales)")
    arr = g[a["multiscales"][0]["datasets"][0]["path"]]
    axes = [x["name"] if isinstance(x, dict) else x for x in a["multiscales"][0].get("axes", [])]
    if arr.ndim not in (3, 4):
        raise StoreError(f"{path}: labels have axes {axes}; expected (t, y, x) or (t, z, y, x)")
    volume = None
    if arr.ndim == 4:
        from ..project.volume import PlaneView

        volume = tuple(int(v) for v in arr.shape)
        geometry = _label_geometry(a["multiscales"][0], volume)
        arr = PlaneView(arr, volume[:2])
    props = {p["label-value"]: p for p in a.get("image-label", {}).get("properties", [])}
    ids: set[int] = set()
    for t in range(arr.shape[0]):
        ids.update(int(i) for i in np.unique(arr[t]) if i)
    from ..prompts import ObjectSpec

    objects = []
    for i in sorted(ids):
        p = dict(props.get(i, {}))
        p.pop("label-value", None)
        objects.append(ObjectSpec(id=i, name=str(p.pop("name", "") or ""), category=p.pop("category", "object"),
                                  attributes=p))

    def frames():
        for t in range(arr.shape[0]):
            masks = labels_to_masks(arr[t])
            if masks:
                yield t, masks

    return LabelSource(tuple(arr.shape), objects, frames,
                       categories=list(dict.fromkeys(o.category for o in objects)), description=str(path),
                       volume=volume, geometry=geometry if volume else None)


def _label_geometry(multiscale: dict, shape: tuple[int, int, int, int]):
    """The :class:`Geometry` of 4-D OME-Zarr labels: the first dataset's scale and the axes' units."""
    from ..sources.geometry import Geometry, normalize_unit

    names = [x["name"] if isinstance(x, dict) else x for x in multiscale.get("axes", [])]
    if names and [str(n).lower() for n in names] != list("tzyx"):
        raise StoreError(f"4-D labels with axes {names}; expected (t, z, y, x)")
    units = [normalize_unit(x.get("unit")) if isinstance(x, dict) else None for x in multiscale.get("axes", [])]
    scale = [1.0] * 4
    for ct in multiscale["datasets"][0].get("coordinateTransformations", []):
        if ct.get("type") == "scale":
            scale = [float(v) for v in ct["scale"]]
    return Geometry("tzyx", shape, tuple(scale), tuple(units or [None] * 4))


register(
    FormatRecord("ome-zarr", "OME-Zarr export", (".ome.zarr", ".zarr"), exporter=export_omezarr,
                 export_args={"version": "0.5"}, importer=read_omezarr, family="ome-zarr",
                 aliases=("omezarr",)),
    FormatRecord("ome-zarr-0.4", "OME-Zarr export", (".ome.zarr", ".zarr"), exporter=export_omezarr,
                 export_args={"version": "0.4"}, importer=read_omezarr, family="ome-zarr"),
)
