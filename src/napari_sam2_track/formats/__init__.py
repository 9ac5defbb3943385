"""Export a project to annotation formats, import annotations, and compare label sets.

``export(project, fmt, out, options)`` writes one of :data:`FORMATS`; ``read_labels(path, fmt)``
reads any importable format (or a project) as a :class:`LabelSource`;
``import_annotations(path, fmt, out)`` turns one into a project store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..errors import Sam2TrackError, StoreError, one_line
from ..project import ProjectStore
from ._frames import (
    DroppedWarning,
    EmptyExportWarning,
    ExportOptions,
    Frame,
    LabelSource,
    ProjectView,
    iter_frames,
    project_source,
)

#: Export format -> (module, function, extra keyword arguments).
FORMATS = {
    "ome-zarr": ("omezarr", "export_omezarr", {"version": "0.5"}),
    "ome-zarr-0.4": ("omezarr", "export_omezarr", {"version": "0.4"}),
    "ctc": ("ctc", "export_ctc", {}),
    "tiff": ("tiff", "export_tiff", {}),
    "davis": ("davis", "export_davis", {"flavour": "davis"}),
    "youtube-vos": ("davis", "export_davis", {"flavour": "youtube-vos"}),
    "sav": ("sav", "export_sav", {}),
    "youtube-vis": ("coco", "export_ytvis", {}),
    "cvat": ("cvat", "export_cvat", {}),
    "mots": ("mots", "export_mots", {"convention": "motschallenge"}),
    "mots-kitti": ("mots", "export_mots", {"convention": "kitti"}),
    "geff": ("geff_graph", "export_geff", {}),
    "table": ("table", "export_table", {}),
}
FORMAT_ALIASES = {"coco-video": "youtube-vis", "ytvis": "youtube-vis", "ytvos": "youtube-vos",
                  "csv": "table", "parquet": "table", "label-tiff": "tiff", "omezarr": "ome-zarr"}

#: Import format -> (module, reader function).
READERS = {
    "project": None,
    "davis": ("davis", "read_davis"),
    "youtube-vos": ("davis", "read_davis"),
    "youtube-vis": ("coco", "read_ytvis"),
    "sav": ("sav", "read_sav_pngs"),
    "sav-json": ("sav", "read_sav_json"),
    "ctc": ("ctc", "read_ctc"),
    "ome-zarr": ("omezarr", "read_omezarr"),
    "tiff": ("tiff", "read_tiff"),
    "cvat": ("cvat", "read_cvat"),
    "mots": ("mots", "read_mots"),
}


def _module(name: str):
    import importlib

    return importlib.import_module(f"{__name__}.{name}")


def canonical_format(fmt: str) -> str:
    fmt = fmt.lower()
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise StoreError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    return fmt


def export(project: str | Path | ProjectStore, fmt: str, out: str | Path,
           options: ExportOptions | None = None, *,
           progress: Callable[[int, int], None] | None = None, **kwargs) -> Path:
    """Export a project; ``kwargs`` go to the format's function (e.g. ``dtype`` for tiff).

    ``progress(done, total)``: called as the frames are exported (``ExportOptions.progress``).
    """
    if progress is not None:
        options = replace(options or ExportOptions(), progress=progress)
    store = project if isinstance(project, ProjectStore) else ProjectStore.open(project, "r")
    mod, func, extra = FORMATS[canonical_format(fmt)]
    return getattr(_module(mod), func)(store, out, options, **{**extra, **kwargs})


def guess_format(path: str | Path) -> str:
    """The import format of a file or folder, from its name and contents."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p} does not exist")
    try:
        return _guess(p)
    except Sam2TrackError:
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable input
        raise _unreadable(p, "annotations", exc) from None


def _guess(p: Path) -> str:
    if p.is_dir():
        if (p / "zarr.json").is_file():
            import json

            attrs = json.loads((p / "zarr.json").read_text()).get("attributes", {})
            if "napari_sam2_track" in attrs:
                return "project"
            return "ome-zarr"
        if (p / ".zattrs").is_file() or (p / ".zgroup").is_file():
            return "ome-zarr"
        if (p / "Annotations").is_dir() or any(p.glob("[0-9]*.png")):
            return "davis"
        if any(p.glob("mask*.tif")) or (p / "TRA").is_dir() or any(p.glob("man_track*.tif")):
            return "ctc"
        if any(c.is_dir() and c.name.isdigit() for c in p.iterdir()) or any(
                c.is_dir() and any(cc.is_dir() and cc.name.isdigit() for cc in c.iterdir())
                for c in p.iterdir() if c.is_dir()):
            return "sav"
        raise StoreError(f"cannot tell the annotation format of {p}; pass --format")
    suffix = p.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return "tiff"
    if suffix == ".xml":
        return "cvat"
    if suffix == ".txt":
        return "mots"
    if suffix == ".json":
        with open(p, "rb") as f:
            head = f.read(1 << 20)
        return "sav-json" if b'"masklet"' in head else "youtube-vis"
    raise StoreError(f"cannot tell the annotation format of {p}; pass --format")


def _unreadable(path, fmt: str, exc: BaseException) -> StoreError:
    """The one-line error for input a reader failed on (damaged, truncated, not that format)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        from ..errors import describe_os_error

        reason = describe_os_error(exc)
    elif isinstance(exc, (MemoryError, RecursionError)):
        reason = f"{type(exc).__name__} (the file declares sizes or nesting far beyond real annotations)"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return StoreError(one_line(f"cannot import {path} as {fmt}: {reason}; is it a complete {fmt} annotation?"))


def _guarded(source: LabelSource, path, fmt: str) -> LabelSource:
    """``source`` whose frame iterator turns reader failures into one-line errors."""
    frames = source.frames

    def guarded_frames():
        it = frames()
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Sam2TrackError:
                raise
            except Exception as exc:  # noqa: BLE001 - untrusted input: any failure is the input's
                raise _unreadable(path, fmt, exc) from None
            yield item

    source.frames = guarded_frames
    return source


def read_labels(path: str | Path, fmt: str | None = None, options: ExportOptions | None = None,
                **kwargs) -> LabelSource:
    """Read a project or any importable annotation as a :class:`LabelSource`."""
    fmt = (fmt or guess_format(path)).lower()
    if fmt == "mots-kitti":
        kwargs["convention"] = "kitti"
    fmt = {"ytvis": "youtube-vis", "coco-video": "youtube-vis", "ome-zarr-0.4": "ome-zarr",
           "label-tiff": "tiff", "mots-kitti": "mots"}.get(fmt, fmt)
    if fmt not in READERS:
        raise StoreError(f"cannot import format {fmt!r}; choose from {', '.join(READERS)}")
    if fmt == "project":
        return project_source(ProjectStore.open(path, "r"), options)
    if fmt == "mots" and str(kwargs.get("convention", "")).lower() == "":
        kwargs.pop("convention", None)
    mod, func = READERS[fmt]
    reader = getattr(_module(mod), func)
    try:
        source = reader(path, **kwargs)
    except Sam2TrackError:
        raise
    except Exception as exc:  # noqa: BLE001 - untrusted input: any failure is the input's
        raise _unreadable(path, fmt, exc) from None
    check_shape(source.shape, path)
    source.info.setdefault("format", fmt)
    return _guarded(source, path, fmt)


#: Largest label set an importer accepts (far beyond real annotations; guards against sizes
#: declared by damaged or hostile files).
MAX_FRAMES = 10_000_000
MAX_SIDE = 65_535
MAX_PIXELS = 2**28


def check_shape(shape, path) -> None:
    """Refuse label sets with no frames or with sizes no real annotation has."""
    n, h, w = (int(v) for v in shape)
    if n < 1 or h < 1 or w < 1:
        raise StoreError(f"{path} holds no frames (size {n}x{h}x{w}); nothing was written")
    if n > MAX_FRAMES or h > MAX_SIDE or w > MAX_SIDE or h * w > MAX_PIXELS:
        raise StoreError(
            f"{path} declares {n:,} frames of {w:,}x{h:,} pixels, beyond what can be imported "
            f"(at most {MAX_FRAMES:,} frames of {MAX_SIDE:,} pixels a side); is the file damaged?"
        )


def import_annotations(path: str | Path, out: str | Path, fmt: str | None = None, *,
                       keyframes: str = "none", overwrite: bool = False, schema=None, **kwargs) -> ProjectStore:
    """Turn existing annotations into a project store (masks, and optionally keyframes).

    All or nothing: the project is written beside ``out`` and renamed when complete; ``out`` may
    not be, lie inside or contain ``path``, and ``overwrite`` replaces only a previous project.
    """
    from ._atomic import check_separate
    from ._write import write_project

    check_separate(Path(out), [path], "the annotations")
    source = read_labels(path, fmt, **kwargs)
    return write_project(source, out, keyframes=keyframes, overwrite=overwrite, schema=schema,
                         inputs=(path,))


__all__ = ["DroppedWarning", "EmptyExportWarning", "ExportOptions", "FORMATS", "Frame", "LabelSource", "ProjectView", "READERS", "export",
           "guess_format", "import_annotations", "iter_frames", "project_source", "read_labels"]
