"""Export a project to annotation formats, import annotations, and compare label sets.

``export(project, fmt, out, options)`` writes one of :data:`FORMATS`; ``read_labels(path, fmt)``
reads any importable format (or a project) as a :class:`LabelSource`;
``import_annotations(path, fmt, out)`` turns one into a project store.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import StoreError
from ..project import ProjectStore
from ._frames import ExportOptions, Frame, LabelSource, ProjectView, iter_frames, project_source

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
           options: ExportOptions | None = None, **kwargs) -> Path:
    """Export a project; ``kwargs`` go to the format's function (e.g. ``dtype`` for tiff)."""
    store = project if isinstance(project, ProjectStore) else ProjectStore.open(project, "r")
    mod, func, extra = FORMATS[canonical_format(fmt)]
    return getattr(_module(mod), func)(store, out, options, **{**extra, **kwargs})


def guess_format(path: str | Path) -> str:
    """The import format of a file or folder, from its name and contents."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p} does not exist")
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
        head = p.read_text()[:2000000] if p.stat().st_size < 2_000_000 else ""
        return "sav-json" if '"masklet"' in head else "youtube-vis"
    raise StoreError(f"cannot tell the annotation format of {p}; pass --format")


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
    return getattr(_module(mod), func)(path, **kwargs)


def import_annotations(path: str | Path, out: str | Path, fmt: str | None = None, *,
                       keyframes: str = "none", overwrite: bool = False, schema=None, **kwargs) -> ProjectStore:
    """Turn existing annotations into a project store (masks, and optionally keyframes)."""
    from ._write import write_project

    source = read_labels(path, fmt, **kwargs)
    return write_project(source, out, keyframes=keyframes, overwrite=overwrite, schema=schema)


__all__ = ["ExportOptions", "FORMATS", "Frame", "LabelSource", "ProjectView", "READERS", "export",
           "guess_format", "import_annotations", "iter_frames", "project_source", "read_labels"]
