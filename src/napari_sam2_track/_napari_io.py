"""npe2 readers, writer and sample data (see ``napari.yaml``).

Nothing here imports Qt, torch or sam2. Video and TIFF layers are lazy: a :class:`FrameArray`
reads only the frames napari displays, through a
:class:`~napari_sam2_track.sources.FrameSource`.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import Sam2TrackError, SourceError
from ._lazy_array import LazyArray

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
TIFF_SUFFIXES = (".tif", ".tiff")

#: Layer metadata key under which the plugin records what a layer is.
META_KEY = "napari_sam2_track"


class FrameArray(LazyArray):
    """A lazy ``(t, y, x[, c])`` array over a frame source: ``arr[t]`` decodes frame ``t`` only."""

    def __init__(self, source):
        self.source = source

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.source.dtype

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        tkey, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(tkey, (int, np.integer)):
            t = operator.index(tkey)
            return self.source.read(t + n if t < 0 else t)[rest]
        frames = range(n)[tkey] if isinstance(tkey, slice) else np.asarray(tkey).ravel().tolist()
        if len(frames) == 0:
            return np.zeros((0, *self.shape[1:]), self.dtype)[(slice(None), *rest)]
        return np.stack([self.source.read(int(t))[rest] for t in frames])

    def __repr__(self) -> str:
        return f"FrameArray({self.source!r})"


def image_layer_data(source, name: str | None = None) -> tuple:
    """A lazy napari image layer tuple for a frame source, with its intensity window."""
    from .sources.volume import refuse_volume

    refuse_volume(source, "annotation")  # volumes are shown by volume_layer_data
    kwargs: dict[str, Any] = {
        "name": name or (Path(source.path).stem if source.path else "video"),
        "rgb": source.channels in (3, 4) and source.channel is None,
        "metadata": {META_KEY: {"kind": "video", "path": source.path}},
    }
    if source.dtype == np.uint8:
        kwargs["contrast_limits"] = [0, 255]
    elif source.window is not None:
        kwargs["contrast_limits"] = [float(source.window.low), float(source.window.high)]
    return (FrameArray(source), kwargs, "image")


def labels_colormap(colors: dict[int, str]) -> dict:
    """A napari direct label colormap (dict form) from ``{id: '#rrggbb'}``."""
    return {None: "transparent", 0: "transparent", **{int(k): v for k, v in colors.items()}}


# ------------------------------------------------------------------------------ readers
def _reader(read):
    def reader(path):
        paths = path if isinstance(path, list) else [path]
        layers = []
        for p in paths:
            layers.extend(layer for layer in read(p) if layer[0] is not None)
        return layers or NO_LAYERS

    return reader


#: What a reader returns for a file it accepted but could not read: napari's "no layers, on
#: purpose" value. The reason has been shown to the user (a notification) instead of napari's
#: "returned no data" error with a traceback.
NO_LAYERS = [(None,)]


def _read_source(path) -> list[tuple]:
    from .sources import open_source

    try:
        source = open_source(path)
    except Sam2TrackError as exc:
        from napari.utils.notifications import show_error

        show_error(str(exc))
        return NO_LAYERS
    if not hasattr(source, "read_slice"):
        return [image_layer_data(source)]
    return [volume_layer_data(source)]


def get_video_reader(path):
    """Reader for video files (decoded lazily, frame by frame)."""
    paths = path if isinstance(path, list) else [path]
    if all(str(p).lower().endswith(VIDEO_SUFFIXES) for p in paths):
        return _reader(_read_source)
    return None


def get_tiff_reader(path):
    """Reader for TIFF / OME-TIFF time-lapse stacks (pages read lazily)."""
    paths = path if isinstance(path, list) else [path]
    if all(str(p).lower().endswith(TIFF_SUFFIXES) for p in paths):
        return _reader(_read_source)
    return None


# ------------------------------------------------------------------------------ volumes
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _indices(key, n: int) -> tuple[list[int], bool]:
    """The indices ``key`` selects along an axis of ``n`` and whether it drops the axis."""
    if isinstance(key, (int, np.integer)):
        i = operator.index(key)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for an axis of {n}")
        return [i % n], True
    if isinstance(key, slice):
        return list(range(n)[key]), False
    return [int(i) % n for i in np.asarray(key).ravel()], False


class VolumeArray(LazyArray):
    """A lazy ``(t, z, y, x)`` array over a volume source, ``(z, y, x)`` when it has one
    timepoint: only the 2D slices napari displays are read."""

    def __init__(self, source):
        self.source = source
        self.timepoints = source.num_timepoints > 1

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape if self.timepoints else self.source.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.source.dtype

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        if not self.timepoints:
            key = (0, *key)
        (ts, drop_t), (zs, drop_z) = _indices(key[0], self.source.shape[0]), _indices(
            key[1], self.source.shape[1])
        plane = np.empty(self.source.shape[2:], self.dtype)[key[2:]].shape
        out = np.empty((len(ts), len(zs), *plane), self.dtype)
        for i, t in enumerate(ts):
            for j, z in enumerate(zs):
                out[i, j] = self.source.read_slice(t, z)[key[2:]]
        if drop_z:
            out = out[:, 0]
        return out[0] if drop_t else out

    def __repr__(self) -> str:
        return f"VolumeArray({self.source!r})"


def volume_layer_data(source, name: str | None = None) -> tuple:
    """A lazy napari image layer tuple for a volume source: its voxel ``scale``, axis labels and
    (napari >= 0.6) units, and its intensity window as contrast limits."""
    import inspect

    from napari.layers import Image

    data = VolumeArray(source)
    geometry = source.geometry
    drop = 0 if data.timepoints else 1
    stem = Path(source.path).name.split(".")[0] if source.path else "volume"
    kwargs: dict[str, Any] = {
        "name": name or stem,
        "scale": geometry.scale[drop:],
        "metadata": {META_KEY: {"kind": "volume", "path": source.path,
                                "geometry": geometry.to_dict(), "notes": list(source.notes)}},
    }
    accepted = inspect.signature(Image.__init__).parameters
    if "axis_labels" in accepted:
        kwargs["axis_labels"] = tuple(geometry.axes[drop:])
    if "units" in accepted:
        kwargs["units"] = geometry.napari_units[drop:]
    if source.window is not None:
        kwargs["contrast_limits"] = [float(source.window.low), float(source.window.high)]
    elif source.dtype == np.uint8:
        kwargs["contrast_limits"] = [0, 255]
    if source.notes:
        from napari.utils.notifications import show_info

        show_info(f"{stem}: " + "; ".join(source.notes))
    return (data, kwargs, "image")


def get_volume_reader(path):
    """Reader for NIfTI files and DICOM series folders (slices read lazily)."""
    from .sources.dicom import is_dicom_folder

    paths = path if isinstance(path, list) else [path]
    if all(str(p).lower().endswith(NIFTI_SUFFIXES) or is_dicom_folder(p) for p in paths):
        return _reader(_read_source)
    return None


def is_project(path) -> bool:
    """Whether ``path`` is a napari-sam2-track project store (:func:`.project.is_project`)."""
    from .project import is_project as project_at

    return project_at(path)


def get_project_reader(path):
    """Reader for project stores (``PROJECT.zarr``): the video (if found) and its labels."""
    paths = path if isinstance(path, list) else [path]
    if all(is_project(p) for p in paths):
        return _reader(read_project)
    return None


def _open_for_layers(path) -> tuple[Any, str | None]:
    """The project for writing when possible, else read-only with the reason (a live writer
    holds its lock, or the folder is read-only): viewing never needs the lock."""
    import warnings

    from .errors import StoreError
    from .project import ProjectStore

    try:
        return ProjectStore.open(path, command="napari (project reader)"), None
    except StoreError as exc:
        store = ProjectStore.open(path, "r")  # fails as well if the project itself is unreadable
        reason = str(exc)
    warnings.warn(f"{Path(path).name} is open read-only: {reason}", stacklevel=2)
    return store, reason


def read_project(path) -> list[tuple]:
    """Layers of a project: the source video (lazy, when its file exists) and the labels."""
    from .session import StoreLabelsArray

    store, read_only_reason = _open_for_layers(path)
    layers = []
    src = store.meta.get("source", {})
    src_path = src.get("path")
    if src_path and Path(src_path).exists():
        try:
            from .sources import open_source

            window = src.get("window")
            source = open_source(
                src_path,
                channel=src.get("channel"),
                window=(window["low"], window["high"]) if window else None,
            )
            layers.append(image_layer_data(source))
        except Sam2TrackError:
            pass
    from .schema import object_colors

    colors = object_colors(store.objects, store.schema)
    layers.append(
        (
            StoreLabelsArray(store, autoflush=True, read_only_reason=read_only_reason),
            {
                "name": f"{Path(path).stem} labels" + (" (read-only)" if read_only_reason else ""),
                "colormap": labels_colormap(colors),
                "opacity": 0.6,
                "metadata": {META_KEY: {"kind": "project", "path": str(Path(path))}},
            },
            "labels",
        )
    )
    return layers


# ------------------------------------------------------------------------------- writer
def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write a ``(t, y, x)`` Labels layer into a project store or a new OME-Zarr project.

    An existing project must have the same shape; each changed frame is saved as a hand edit
    (its objects are marked ``edited``). A new path becomes a project store, which is an
    OME-Zarr 0.5 group with the labels under ``labels/masklets``.
    """
    from .project import ProjectStore

    data_shape = tuple(getattr(data, "shape", ()))
    if len(data_shape) != 3:
        raise SourceError(
            f"labels layer {meta.get('name', '')!r} has shape {data_shape}; only (t, y, x) label "
            "videos can be saved to a project"
        )
    p = Path(path)
    if p.exists() and is_project(p):
        store = ProjectStore.open(p)
        if tuple(store.shape) != data_shape:
            raise SourceError(
                f"{p} holds labels of shape {tuple(store.shape)} but the layer has shape "
                f"{data_shape}; save to a new .zarr instead"
            )
    else:
        store = ProjectStore.create(
            p,
            num_frames=data_shape[0],
            height=data_shape[1],
            width=data_shape[2],
            source={"kind": "labels", "name": meta.get("name")},
            overwrite=p.exists(),
        )
    for t in range(data_shape[0]):
        frame = np.asarray(data[t], dtype=np.uint32)
        if not np.array_equal(frame, store.labels[t]):
            store.write_edited_labels(t, frame)
    return [str(p)]


# -------------------------------------------------------------------------- sample data
def _sample_layers(sample, contrast_limits=None) -> list[tuple]:
    from .schema import object_color

    schema = sample.schema()
    colors = {i: object_color(i, cat, schema) for i, cat in sample.categories.items()}
    meta = {META_KEY: {"kind": "sample", "sample": sample.name, "schema": schema.to_dict()}}
    image_kwargs: dict[str, Any] = {"name": sample.name, "metadata": meta}
    if sample.frames.ndim == 4:
        image_kwargs["rgb"] = True
    elif contrast_limits is not None:
        image_kwargs["contrast_limits"] = contrast_limits
    return [
        (sample.frames, image_kwargs, "image"),
        (
            sample.labels,
            {
                "name": f"{sample.name} ground truth",
                "colormap": labels_colormap(colors),
                "opacity": 0.4,
                "visible": False,
                "metadata": {META_KEY: {"kind": "ground_truth", "sample": sample.name}},
            },
            "labels",
        ),
    ]


def sample_cells(n_frames: int = 60, size: tuple[int, int] = (256, 256)) -> list[tuple]:
    """16-bit fluorescence time-lapse of nuclei, with ground-truth labels."""
    from .samples import make_cells

    sample = make_cells(n_frames=n_frames, size=size)
    lo, hi = np.percentile(sample.frames[0], (0.5, 99.5))
    return _sample_layers(sample, [float(lo), float(hi)])


def sample_instruments(n_frames: int = 60, size: tuple[int, int] = (256, 256)) -> list[tuple]:
    """RGB surgical-like video with three instruments, with ground-truth labels."""
    from .samples import make_instruments

    return _sample_layers(make_instruments(n_frames=n_frames, size=size))
