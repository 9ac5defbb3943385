"""DICOM series (a folder of single-frame files, any file names) read slice by slice.

Only headers are read at open (``stop_before_pixels``); each slice's pixel data is decoded when
it is read. Slices are ordered by ImagePositionPatient projected on the slice normal (the cross
product of the ImageOrientationPatient row and column directions), never by file name or
InstanceNumber. The in-plane spacing is PixelSpacing, the slice spacing comes from the positions
(SliceThickness is not a spacing). RescaleSlope/Intercept are applied (CT in Hounsfield units).
The affine maps ``(x, y, z)`` voxel indices (column, row, slice) to LPS patient millimetres.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._input_files import first_line
from ..errors import SourceError
from ._base import IntensityWindow
from .geometry import Geometry
from .volume import VolumeSource, check_channel

__all__ = ["DicomSeriesSource", "is_dicom_folder", "is_dicom_file"]

_DICOMDIR_SOP = "1.2.840.10008.1.3.10"
_INTEGER_TYPES = [np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32")]


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file with the DICOM preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def is_dicom_folder(path: str | os.PathLike[str], probe: int = 16) -> bool:
    """Whether a folder holds DICOM files (one of its first ``probe`` files is DICOM)."""
    folder = Path(path)
    try:
        return folder.is_dir() and any(is_dicom_file(p) for p in _files(folder)[:probe])
    except OSError:
        return False


@dataclass(frozen=True)
class _Slice:
    path: Path
    series: str
    description: str
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    rows: int
    columns: int
    spacing: tuple[float, float]  # (between rows, between columns)
    slope: float
    intercept: float
    bits_stored: int
    signed: bool

    @property
    def normal(self) -> np.ndarray:
        o = np.asarray(self.orientation)
        n = np.cross(o[:3], o[3:])
        return n / max(float(np.linalg.norm(n)), 1e-12)


def _header(path: Path) -> Any | None:
    """The header of an image file of a series, None for other files."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - not DICOM, or damaged past reading: not part of a series
        return None
    if str(getattr(ds.get("file_meta", {}), "MediaStorageSOPClassUID", "")) == _DICOMDIR_SOP:
        return None
    if "Rows" not in ds or "SeriesInstanceUID" not in ds:
        return None  # reports, structured reports, presentation states, ...
    return ds


def _floats(ds: Any, keyword: str, n: int, path: Path) -> tuple[float, ...]:
    value = ds.get(keyword)
    try:
        out = tuple(float(v) for v in value)
        if len(out) == n:
            return out
    except (TypeError, ValueError):
        pass
    raise SourceError(f"DICOM file {path} has no valid {keyword}; its slices cannot be placed "
                      "in space (a localiser or secondary capture?); remove it from the folder")


def _slice(ds: Any, path: Path) -> _Slice:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise SourceError(f"DICOM file {path} is a multi-frame (enhanced) image of {frames} "
                          "frames; only series of single-frame files are read for now")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise SourceError(f"DICOM file {path} holds colour pixels; only grayscale series "
                          "(CT, MR, PET, ...) are read")
    slope, intercept = ds.get("RescaleSlope", 1), ds.get("RescaleIntercept", 0)
    return _Slice(
        path=path,
        series=str(ds.SeriesInstanceUID),
        description=str(ds.get("SeriesDescription", "") or "").strip(),
        position=_floats(ds, "ImagePositionPatient", 3, path),  # type: ignore[arg-type]
        orientation=_floats(ds, "ImageOrientationPatient", 6, path),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        spacing=_floats(ds, "PixelSpacing", 2, path),  # type: ignore[arg-type]
        slope=float(slope if slope not in (None, "") else 1),
        intercept=float(intercept if intercept not in (None, "") else 0),
        bits_stored=int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16),
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
    )


def _plane_name(orientation: tuple[float, ...]) -> str:
    o = np.asarray(orientation)
    n = np.cross(o[:3], o[3:])
    name = ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(n)))]
    axis_aligned = np.all(np.isclose(np.abs(o), 0, atol=1e-3) | np.isclose(np.abs(o), 1, atol=1e-3))
    return name if axis_aligned else f"oblique {name}"


def _pixel_dtype(slices: list[_Slice]) -> np.dtype:
    """Smallest integer type holding every rescaled value, else float32."""
    if all(s.slope == 1 and float(s.intercept).is_integer() for s in slices):
        lo = min((-(2 ** (s.bits_stored - 1)) if s.signed else 0) + s.intercept for s in slices)
        hi = max((2 ** (s.bits_stored - 1) - 1 if s.signed else 2**s.bits_stored - 1)
                 + s.intercept for s in slices)
        for dt in _INTEGER_TYPES:
            info = np.iinfo(dt)
            if info.min <= lo and hi <= info.max:
                return dt
    return np.dtype(np.float32)


def _series_list(series: dict[str, list[_Slice]]) -> str:
    return "; ".join(
        f"{uid} ({items[0].description or 'no description'}, {len(items)} slice"
        f"{'s' if len(items) != 1 else ''})"
        for uid, items in sorted(series.items(), key=lambda kv: -len(kv[1]))
    )


def _order(slices: list[_Slice], label: str) -> tuple[list[_Slice], np.ndarray]:
    """Slices sorted along their normal and the positions along it; SourceError when they
    lie in several orientations, overlap, or are unevenly spaced (missing slices)."""
    planes = Counter(tuple(round(v, 3) for v in s.orientation) for s in slices)
    if len(planes) > 1:
        listed = ", ".join(f"{_plane_name(o)} {list(o)}: {n} slice{'s' if n != 1 else ''}"
                           for o, n in planes.most_common())
        raise SourceError(f"{label}: holds slices in {len(planes)} orientations ({listed}); a "
                          "volume needs one: move the other slices (localisers?) out of the folder")
    sizes = Counter((s.rows, s.columns, s.spacing) for s in slices)
    if len(sizes) > 1:
        listed = ", ".join(f"{c}x{r} px of {sp[1]:g}x{sp[0]:g} mm: {n}"
                           for (r, c, sp), n in sizes.most_common())
        raise SourceError(f"{label}: slices differ in size or pixel spacing ({listed}); a "
                          "volume needs one grid")
    normal = slices[0].normal
    along = np.array([float(np.dot(s.position, normal)) for s in slices])
    order = np.argsort(along, kind="stable")
    slices, along = [slices[i] for i in order], along[order]
    steps = np.diff(along)
    same = np.flatnonzero(steps < 1e-3)
    if same.size:
        i = int(same[0])
        raise SourceError(
            f"{label}: {same.size + 1} or more slices share a position ({slices[i].path.name} and "
            f"{slices[i + 1].path.name} at {along[i]:.2f} mm); several acquisitions, echoes or "
            "phases in one series are not read as a volume; split them into folders"
        )
    if steps.size:
        typical = float(np.median(steps))
        off = np.flatnonzero(np.abs(steps - typical) > max(0.01 * typical, 1e-2))
        if off.size:
            gaps = ", ".join(
                f"{steps[i]:.2f} mm between {slices[i].path.name} ({along[i]:.2f}) and "
                f"{slices[i + 1].path.name} ({along[i + 1]:.2f})" for i in off[:3]
            )
            more = f" and {off.size - 3} more" if off.size > 3 else ""
            raise SourceError(
                f"{label}: slices are missing or unevenly spaced: {gaps}{more}, where the others "
                f"are {typical:.2f} mm apart; copy the complete series (or remove stray slices)"
            )
    return slices, along


class DicomSeriesSource(VolumeSource):
    """One DICOM series of a folder as a ``(1, z, y, x)`` volume (z along the slice normal)."""

    kind = "dicom"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        series: str | None = None,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | str | None = None,
    ) -> None:
        folder = Path(folder)
        label = f"DICOM folder {folder}"
        if not folder.is_dir():
            raise SourceError(f"{label}: not a folder; open the folder that holds the series")
        found: dict[str, list[_Slice]] = {}
        first_header: dict[str, Any] = {}
        for path in _files(folder):
            ds = _header(path)
            if ds is None:
                continue
            uid = str(ds.SeriesInstanceUID)
            if series is not None and uid != series:
                found.setdefault(uid, [])
                continue
            found.setdefault(uid, []).append(_slice(ds, path))
            first_header.setdefault(uid, ds)
        if not found:
            raise SourceError(f"{label}: holds no DICOM images")
        if series is None and len(found) > 1:
            raise SourceError(f"{label}: holds {len(found)} series; choose one with series=UID: "
                              f"{_series_list(found)}")
        uid = series if series is not None else next(iter(found))
        if not found.get(uid):
            raise SourceError(f"{label}: has no series {uid}; it holds: "
                              f"{', '.join(sorted(found))}")
        slices, along = _order(found[uid], f"{label} series {uid}")
        self._slices = slices
        ds = first_header[uid]
        self.series_uid = uid
        self.description = slices[0].description
        self.modality = str(ds.get("Modality", "") or "")
        geometry = self._geometry(slices, along)
        super().__init__(path=os.fspath(folder), shape=(1, len(slices), slices[0].rows,
                         slices[0].columns), dtype=_pixel_dtype(slices), geometry=geometry,
                         channel=check_channel(channel, 1, label))
        if geometry.oblique:
            self.notes.append(
                f"oblique slices ({_plane_name(slices[0].orientation)}): read in acquisition "
                "order along the slice normal on a rectilinear grid; the world geometry is kept "
                "in the affine"
            )
        self._configure(window, default_window=self._file_window(ds))

    @staticmethod
    def _geometry(slices: list[_Slice], along: np.ndarray) -> Geometry:
        first = slices[0]
        o = np.asarray(first.orientation)
        dz = float(np.median(np.diff(along))) if len(slices) > 1 else 1.0
        step = ((np.asarray(slices[-1].position) - first.position) / (len(slices) - 1)
                if len(slices) > 1 else first.normal)
        affine = np.eye(4)
        affine[:3, 0] = o[:3] * first.spacing[1]  # x: along a row, column spacing
        affine[:3, 1] = o[3:] * first.spacing[0]  # y: down a column, row spacing
        affine[:3, 2] = step
        affine[:3, 3] = first.position
        return Geometry("tzyx", (1, len(slices), first.rows, first.columns),
                        (1.0, dz, first.spacing[0], first.spacing[1]), (None, "mm", "mm", "mm"),
                        affine=affine, space="LPS")

    @staticmethod
    def _file_window(ds: Any) -> IntensityWindow | None:
        """The first window (WindowCenter/WindowWidth) the file recommends, if any."""
        try:
            center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
            center = float(center[0] if hasattr(center, "__len__") and not isinstance(
                center, str) else center)
            width = float(width[0] if hasattr(width, "__len__") and not isinstance(
                width, str) else width)
        except (TypeError, ValueError, IndexError):
            return None
        if not width > 0:
            return None
        return IntensityWindow(center - width / 2, center + width / 2, preset="dicom")

    def _read_slice(self, t: int, z: int) -> np.ndarray:
        import pydicom

        item = self._slices[z]
        try:
            raw = pydicom.dcmread(item.path).pixel_array
        except Exception as exc:  # missing decoder, damaged file
            raise SourceError(
                f"{self._label()}: cannot decode {item.path.name}: {first_line(exc)} (compressed "
                "DICOM may need pylibjpeg or python-gdcm)"
            ) from None
        if self.dtype.kind == "f":
            return (raw.astype(np.float64) * item.slope + item.intercept).astype(self.dtype)
        return (raw.astype(np.int64) + int(item.intercept)).astype(self.dtype)

    @property
    def files(self) -> list[str]:
        """The file of each slice, in slice order."""
        return [os.fspath(s.path) for s in self._slices]

    def _extra_description(self) -> dict[str, Any]:
        return {"axes": "TZYX", "series": self.series_uid, "description": self.description,
                "modality": self.modality}
