"""The dataset's files: ``dataset.yaml`` (read it, and change it safely from several
processes), the schema versions in ``schemas/`` and the membership file in each project.

A change takes an exclusive ``flock`` on ``.dataset.lock`` in the dataset folder, reads the
current file, applies the change, writes the result under a temporary name (``fsync``) and
renames it over ``dataset.yaml``. Readers never take the lock: a rename is atomic, so they see
the old file or the new one, never a torn one; two writers are serialised, so neither loses the
other's change. A writer killed with ``kill -9`` gives the ``flock`` back with its process and
leaves at most its temporary file, which the next writer removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ..errors import Sam2TrackError
from ..project._jsonl import fsync_dir

DATASET_FILE = "dataset.yaml"
LOCK_FILE = ".dataset.lock"
#: The file in a project that names the dataset and item it belongs to.
MEMBERSHIP_FILE = ".napari_sam2_track.dataset.json"
FORMAT_NAME = "napari-sam2-track dataset"
FORMAT_VERSION = 1


#: libyaml's safe loader and dumper where PyYAML has them (ten times quicker on a large dataset).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class DatasetError(Sam2TrackError):
    """A dataset cannot be read, or a request about it cannot be done (one line)."""


def read_dataset_file(folder: Path) -> dict[str, Any]:
    """The parsed ``dataset.yaml`` of ``folder``; one line if it is not a dataset."""
    path = folder / DATASET_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        what = "not found" if not folder.exists() else f"no {DATASET_FILE}"
        raise DatasetError(f"{folder} is not a dataset ({what}); create one with "
                           f"'napari-sam2-track dataset init {folder}'") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not UTF-8 text; restore it from a backup") from None
    try:
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise DatasetError(f"{path} is not valid YAML{where}; fix it or restore it from a backup") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise DatasetError(f"{path} is not a napari-sam2-track dataset file (no 'format: "
                           f"{FORMAT_NAME}')")
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatasetError(f"{path} has dataset format version {version!r}; this napari-sam2-track "
                           f"reads version {FORMAT_VERSION} (upgrade napari-sam2-track)")
    return data


def write_dataset_file(folder: Path, data: dict[str, Any]) -> None:
    """Write ``dataset.yaml`` whole: a temporary file, ``fsync``, renamed over the old one."""
    path = folder / DATASET_FILE
    tmp = folder / f".{DATASET_FILE}.{uuid.uuid4().hex[:8]}.tmp"
    text = yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=100)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(folder)


@contextlib.contextmanager
def dataset_lock(folder: Path) -> Iterator[None]:
    """Hold the dataset's exclusive ``flock`` (serialises changes of its files)."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except (ImportError, OSError):  # pragma: no cover - no flock on this file system
            pass
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def changing(folder: Path) -> Iterator[dict[str, Any]]:
    """Read ``dataset.yaml`` under the lock, let the caller change the dict, write it back.

    Nothing is written when the block raises."""
    with dataset_lock(folder):
        for stale in folder.glob(f".{DATASET_FILE}.*.tmp"):  # left by a writer that was killed
            stale.unlink(missing_ok=True)
        data = read_dataset_file(folder)
        yield data
        write_dataset_file(folder, data)


def project_owner(project: Path) -> dict | None:
    """The membership record of a project (which dataset and item), if it has one."""
    try:
        data = json.loads((Path(project) / MEMBERSHIP_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_schema(schema):
    """A Schema, or the schema in a YAML/JSON file."""
    from ..schema import Schema

    return schema if isinstance(schema, Schema) else Schema.load(schema)


def schema_key(schema) -> str:
    """A schema's content as a canonical string (equal schemas, equal keys)."""
    return json.dumps(schema.model_dump(mode="json"), sort_keys=True)


def write_schema(folder: Path, version: int, schema) -> None:
    """Write ``schemas/<version>.json`` whole (a temporary file renamed into place)."""
    path = folder / "schemas" / f"{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(schema.model_dump(mode="json"), indent=1), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
