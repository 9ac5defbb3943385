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
from ..project import ProjectStore, is_project
from ..project.placement import CLI_NEW, Words, check_separate
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

# Each format module registers its record(s) when imported; this order is the order of FORMATS.
from . import omezarr, ctc, tiff, nifti, davis, sav, coco, cvat, mots, geff_graph, table  # noqa: E402,F401,I001
from . import dicom_labels  # noqa: E402,F401,I001
from ._registry import MARKER, FormatRecord, check_export_target, export_words, lookup, records  # noqa: E402
from ._volume import VOLUME_FORMATS, refuse_volume_project  # noqa: E402
from ._registry import aliases as _aliases  # noqa: E402

#: Export format name -> its record.
FORMATS: dict[str, FormatRecord] = {r.name: r for r in records() if r.exporter is not None}
#: Other accepted names of formats.
FORMAT_ALIASES: dict[str, str] = _aliases()
#: Import format name -> its record (``project``: a project store, read directly).
READERS: dict[str, FormatRecord | None] = {
    "project": None, **{r.name: r for r in records() if r.importer is not None}}


def canonical_format(fmt: str) -> str:
    """The export format a name or alias stands for."""
    try:
        record = lookup(fmt)
    except StoreError:  # its list names import-only formats too
        record = None
    if record is None or record.exporter is None:
        raise StoreError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    return record.name


def export(project: str | Path | ProjectStore, fmt: str, out: str | Path,
           options: ExportOptions | None = None, *,
           progress: Callable[[int, int], None] | None = None,
           notes: Callable[[str], None] | None = None, words: Words = CLI_NEW, **kwargs) -> Path:
    """Export a project; ``kwargs`` go to the format's function (e.g. ``dtype`` for tiff).

    ``progress(done, total)``: called as the frames are exported (``ExportOptions.progress``).
    ``notes(text)``: called with the exporter's notes instead of issuing them as warnings
    (``ExportOptions.notes``).
    ``words``: how a refused or failed output names the caller's controls (the command line's
    ``--out``/``--overwrite`` by default; a dock passes its own).
    """
    record = FORMATS[canonical_format(fmt)]
    if progress is not None:
        options = replace(options or ExportOptions(), progress=progress)
    if notes is not None:
        options = replace(options or ExportOptions(), notes=notes)
    store = project if isinstance(project, ProjectStore) else ProjectStore.open(project, "r")
    if record.name not in VOLUME_FORMATS:
        refuse_volume_project(store, record.title)
    with export_words(words):
        return record.exporter(store, out, options, **{**record.export_args, **kwargs})


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
        if is_project(p):
            return "project"
        if (p / "labels.nii.gz").is_file():
            return "nifti"
        from ..sources.dicom import is_dicom_folder

        if is_dicom_folder(p):
            return "dicom"
        if (p / "zarr.json").is_file():
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
    if p.name.lower().endswith((".nii", ".nii.gz")):
        return "nifti"
    from ..sources.dicom import is_dicom_file

    if is_dicom_file(p):
        return "dicom"
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
    if fmt == "project":
        return project_source(ProjectStore.open(path, "r"), options)
    try:
        record = lookup(fmt)
    except StoreError:
        record = None
    if record is None or record.importer is None:
        raise StoreError(f"cannot import format {fmt!r}; choose from {', '.join(READERS)}")
    fmt = record.name
    if str(kwargs.get("convention", "x")).lower() == "":
        kwargs.pop("convention")
    kwargs = {**kwargs, **record.import_args}
    reader = record.importer
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
    from ._write import write_project

    check_separate(Path(out), [path], "the annotations")  # before the annotations are read
    source = read_labels(path, fmt, **kwargs)
    return write_project(source, out, keyframes=keyframes, overwrite=overwrite, schema=schema)


__all__ = ["DroppedWarning", "EmptyExportWarning", "ExportOptions", "FORMATS", "FORMAT_ALIASES", "Frame",
           "FormatRecord", "LabelSource", "MARKER", "ProjectView", "READERS", "canonical_format",
           "check_export_target", "export", "guess_format", "import_annotations", "iter_frames", "lookup",
           "project_source", "read_labels"]
