"""Batch manifests: which videos to track, with which prompts, into which projects.

A manifest is a CSV file (one row per video, a header naming the columns) or a YAML file (a list
of rows, or a mapping with ``videos:`` and optional ``defaults:`` applied to every row)::

    video,prompts,out,start,end,direction,channel,window_low,window_high,segments,schema
    videos/a.mp4,prompts/a.json,,,,both,,,,,
    stacks/b.tif,prompts/b.json,b_run2.zarr,0,99,forward,1,100,4000,,cells.yaml

Volumes (z-stacks, NIfTI, DICOM, OME-Zarr) take more columns, as ``track`` does:
``axis`` (``z``, ``y`` or ``x``), ``z_range`` (``A-B``), ``stop_after_empty`` (``N``), ``axes``
(``TZYX``, ...: a TIFF or zarr array's axes), ``series`` (a DICOM SeriesInstanceUID) and
``window`` (a preset name such as ``ct-brain``, instead of ``window_low``/``window_high``);
``start``/``end`` are then timepoints (see docs/volumes.md).

Only ``video`` is required. ``prompts`` may be left out when the project already exists (its
stored prompts are used). ``schema`` is an annotation schema stored in the project as
``track --schema`` does. ``out`` defaults to ``OUT_DIR/<video name>.zarr``. Relative paths are
relative to the manifest's folder (``out``: to ``OUT_DIR``). A row with a problem (a bad value,
two rows writing one project) is kept with its one-line error, so it fails alone in the summary.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._input_files import parse_yaml, read_text
from ..errors import Sam2TrackError, first_validation_problem
from ..project.placement import STAGING_EXTRA


class ManifestError(Sam2TrackError):
    """A manifest cannot be read at all (missing file, unknown columns, not a list of rows)."""


class BatchItem(BaseModel):
    """One video of a batch and its per-video options (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    video: str = Field(min_length=1)
    prompts: str | None = None
    out: str | None = None
    name: str | None = None
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)
    direction: Literal["forward", "backward", "both"] = "both"
    channel: int | None = Field(default=None, ge=0)
    #: ``(low, high)``, or a preset name for volumes (``ct-brain``, ``mr-auto``, ...)
    window: tuple[float, float] | str | None = None
    axes: str | None = None
    series: str | None = None
    segments: int | None = Field(default=None, ge=1)
    schema_: str | None = Field(default=None, alias="schema")
    axis: str | None = None
    z_range: str | None = None
    stop_after_empty: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _range(self) -> "BatchItem":
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if isinstance(self.window, tuple) and not self.window[1] > self.window[0]:
            raise ValueError(f"window {list(self.window)} needs high > low")
        if self.z_range is not None or self.axis is not None:
            from ..errors import Sam2TrackError
            from ..volumes.checks import check_axis, parse_z_range

            try:
                parse_z_range(self.z_range)
                check_axis(self.axis)
            except Sam2TrackError as exc:
                raise ValueError(str(exc).replace("--z-range", "z_range").replace("--axis", "axis")) from None
        return self


@dataclass
class ManifestRow:
    """A row as read: its position, a label for the summary, and the item or its problem."""

    index: int
    label: str
    item: BatchItem | None
    error: str | None = None
    out: Path | None = None


CSV_COLUMNS = {field.alias or name for name, field in BatchItem.model_fields.items()} | {
    "window_low", "window_high"}  # window: a preset name; window_low/high: numbers


#: a CSV row's key for window_low/window_high given beside a window preset (refused)
BOTH_WINDOWS = "window_low/window_high"

#: What to do about a manifest that cannot be read or parsed.
_HINT = "see docs/distributed.md for the manifest format"


def _text(path: Path) -> str:
    """The manifest's text (a leading BOM dropped); one line if it is not UTF-8."""
    return read_text(path, "manifest", ManifestError, _HINT)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with io.StringIO(_text(path), newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        if "video" not in header:
            raise ManifestError(
                f"{path}: the first line must name the columns, with at least 'video'"
            )
        unknown = sorted(set(header) - CSV_COLUMNS)
        if unknown:
            raise ManifestError(
                f"{path}: unknown columns {unknown}; known: {', '.join(sorted(CSV_COLUMNS))}"
            )
        rows = []
        for raw in reader:
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            row = {k: v for k, v in row.items() if v != ""}
            low, high = row.pop("window_low", None), row.pop("window_high", None)
            if low is not None or high is not None:
                row[BOTH_WINDOWS if "window" in row else "window"] = (low, high)
            rows.append(row)
        return rows


def _read_yaml(path: Path) -> list[dict[str, Any]]:
    data = parse_yaml(_text(path), str(path), ManifestError, _HINT)
    defaults: dict = {}
    if isinstance(data, dict):
        defaults = data.get("defaults") or {}
        data = data.get("videos")
    if not isinstance(data, list) or not isinstance(defaults, dict):
        raise ManifestError(
            f"{path}: expected a list of rows, or 'videos:' (a list) and 'defaults:'"
        )
    rows = []
    for entry in data:
        if isinstance(entry, str):
            entry = {"video": entry}
        rows.append({**defaults, **entry} if isinstance(entry, dict) else {"video": entry})
    return rows


def item_from_dict(data: dict[str, Any]) -> BatchItem:
    """Validate one row; raises a one-line :class:`ManifestError`."""
    if BOTH_WINDOWS in data:
        raise ManifestError(f"window {data['window']!r} and window_low/window_high are both set; "
                            "give a preset name or the two numbers")
    try:
        return BatchItem.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(first_validation_problem(exc)) from None


def _absolute(path: str | None, base: Path) -> str | None:
    if not path:
        return None
    resolved = Path(path).expanduser()
    return str(resolved if resolved.is_absolute() else base / resolved)


def resolve_rows(
    rows: list[dict[str, Any] | BatchItem], out_dir: str | Path, base_dir: str | Path | None = None
) -> list[ManifestRow]:
    """Validate rows, make their paths absolute, and give each its output project."""
    out_dir, base = Path(out_dir), Path(base_dir) if base_dir is not None else Path.cwd()
    resolved: list[ManifestRow] = []
    for i, raw in enumerate(rows):
        video = raw.video if isinstance(raw, BatchItem) else raw.get("video")
        label = str(video or f"row {i + 1}")
        try:
            item = raw if isinstance(raw, BatchItem) else item_from_dict(dict(raw))
        except ManifestError as exc:
            resolved.append(ManifestRow(i, label, None, f"row {i + 1}: {exc}"))
            continue
        video = Path(item.video).expanduser()
        video = video if video.is_absolute() else base / video
        prompts, schema = (_absolute(p, base) for p in (item.prompts, item.schema_))
        name = item.name or video.name.removesuffix(video.suffix) or f"video{i + 1}"
        out = Path(item.out).expanduser() if item.out else Path(f"{name}.zarr")
        out = out if out.is_absolute() else out_dir / out
        item = item.model_copy(update={"video": str(video), "prompts": prompts,
                                      "schema_": schema, "name": name})
        problem = _name_problem(out)
        if problem is not None:
            resolved.append(ManifestRow(i, item.name or label, None, f"row {i + 1}: {problem}", out))
            continue
        resolved.append(ManifestRow(i, item.name or label, item, out=out))
    seen: dict[Path, int] = {}
    for row in resolved:
        if row.out is None:
            continue
        key = row.out.resolve()
        if key in seen:
            row.error = (
                f"row {row.index + 1}: writes the same project as row {seen[key] + 1} ({row.out}); "
                "give it another 'out'"
            )
            row.item = None
        else:
            seen[key] = row.index
    return resolved


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or its nearest existing
    parent) allows."""
    for parent in (folder, *folder.parents):
        try:
            return int(os.pathconf(parent, "PC_NAME_MAX"))
        except (OSError, ValueError, AttributeError):
            continue
    return 255


def _name_problem(out: Path) -> str | None:
    """Why the project ``out`` cannot be created, if a name in its path is too long."""
    limit = _name_max(out.parent)
    for part in out.parts[1:-1]:
        if len(os.fsencode(part)) > limit:
            return (f"the folder name {part[:40]!r}... of 'out' is {len(os.fsencode(part))} bytes, "
                    f"longer than the {limit} the file system allows; give a shorter 'out'")
    size = len(os.fsencode(out.name))
    if size + STAGING_EXTRA > limit:
        return (f"the project name {out.name[:40]!r}... is {size} bytes; it can have at most "
                f"{limit - STAGING_EXTRA} (the file system allows {limit} and the project is "
                "built under a longer name first); give a shorter 'out' or 'name'")
    return None


def load_manifest(path: str | Path, out_dir: str | Path) -> list[ManifestRow]:
    """Read a CSV or YAML manifest (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _read_csv(path)
    elif suffix in (".yaml", ".yml"):
        rows = _read_yaml(path)
    else:
        raise ManifestError(f"{path}: a manifest is a .csv or .yaml file")
    if not rows:
        raise ManifestError(f"{path}: the manifest lists no videos")
    return resolve_rows(rows, out_dir, path.parent)
