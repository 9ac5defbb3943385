"""Putting a newly built project in place: beside the destination, then one rename.

A project is built in a staging folder beside its destination, ``.NAME.incomplete-PID-XXXXXXXX``.
When it is complete it is moved into place:

* new project: ``rename(staging, NAME)``. Before the rename only the staging folder exists (a
  reader sees no project); after it the complete project does.
* ``--overwrite``: the staging folder and the old project are **exchanged** in one step
  (Linux ``renameat2(RENAME_EXCHANGE)``), then the old one, now under the staging name, is
  deleted. Where exchange is unsupported, the old project is renamed to
  ``.NAME.replaced-XXXXXXXX`` and the new one renamed into place; a crash between the two renames
  leaves ``NAME`` missing and the old project beside it, and the next writer of ``NAME`` renames
  it back (:func:`recover_interrupted_swap`).

At every instant, kill -9 leaves either the old project or the new one at ``NAME``, never
neither (except in the fallback window, which is repaired as above). Leftover staging folders of
dead processes are removed by the next build of the same name.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from ..errors import StoreError, describe_os_error
from .layout import ATTR_KEY, LABELS_PATH
from .lock import LockHolder, ProjectLock, read_holder

STAGING_TAG = "incomplete"
REPLACED_TAG = "replaced"
_ABANDONED_AFTER_S = 60.0  # a staging folder without a lock this old belongs to nobody


def is_project_dir(path: Path) -> bool:
    """Whether ``path`` holds a napari-sam2-track project (complete, or from an older version
    whose creation was interrupted before its metadata was written)."""
    zarr_json = path / "zarr.json"
    if not zarr_json.is_file():
        return False
    try:
        doc = json.loads(zarr_json.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict):
        return False
    if ATTR_KEY in (doc.get("attributes") or {}):
        return True
    return (path / LABELS_PATH / "zarr.json").is_file() and (path / "objects").is_dir()


def siblings(path: Path, tag: str) -> list[Path]:
    prefix = f".{path.name}.{tag}-"
    try:
        return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix))
    except OSError:
        return []


def _owned_by_nobody(folder: Path) -> bool:
    holder = read_holder(folder)
    if holder is None:  # killed before its lock was written: the PID is in the name
        try:
            pid = int(folder.name.rsplit("-", 2)[-2])
            if not LockHolder("", pid, "", "", None).is_alive_here():
                return True
        except (ValueError, IndexError):
            pass
        try:
            return time.time() - folder.stat().st_mtime > _ABANDONED_AFTER_S
        except OSError:
            return False
    return holder.pid != -1 and not holder.is_alive()


def remove_leftovers(path: Path) -> None:
    """Delete staging and replaced folders of ``path`` left by processes that are gone."""
    for folder in siblings(path, STAGING_TAG) + (siblings(path, REPLACED_TAG) if path.exists() else []):
        if _owned_by_nobody(folder):
            shutil.rmtree(folder, ignore_errors=True)


def recover_interrupted_swap(path: Path) -> bool:
    """If an ``--overwrite`` died between its two renames, put the old project back."""
    if path.exists() or path.is_symlink():
        return False
    for old in siblings(path, REPLACED_TAG):
        if is_project_dir(old) and _owned_by_nobody(old):
            os.rename(old, path)
            return True
    return False


def make_staging_dir(path: Path) -> Path:
    """A fresh staging folder beside ``path``."""
    staging = path.parent / f".{path.name}.{STAGING_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise StoreError(
            f"cannot create {path}: {describe_os_error(exc)}; choose a writable --out"
        ) from None
    return staging


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def place(staging: Path, path: Path, *, replace: bool) -> None:
    """Move the complete project at ``staging`` to ``path`` (replacing the project there)."""
    if not replace:
        try:
            os.rename(staging, path)  # replaces an empty folder; refuses a non-empty one
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise StoreError(
                    f"{path} appeared while the project was being created; choose another --out"
                ) from None
            raise
        return
    if exchange_paths(staging, path):
        shutil.rmtree(staging, ignore_errors=True)  # the old project, now under the staging name
        return
    replaced = path.parent / f".{path.name}.{REPLACED_TAG}-{uuid.uuid4().hex[:8]}"
    os.rename(path, replaced)
    os.rename(staging, path)
    shutil.rmtree(replaced, ignore_errors=True)


def check_destination(path: Path, overwrite: bool, command: str | None) -> ProjectLock | None:
    """Refuse a destination that must not be replaced; lock a project that will be."""
    recover_interrupted_swap(path)
    if not (path.exists() or path.is_symlink()):
        return None
    if not overwrite:
        raise StoreError(
            f"{path} already exists; pass --resume to continue it or --overwrite to replace it"
        )
    if path.is_symlink() or not path.is_dir():
        raise StoreError(f"{path} is not a napari-sam2-track project; --overwrite only replaces "
                         "a project made by napari-sam2-track; choose another --out")
    if not any(path.iterdir()):
        return None  # an empty folder: nothing to lose
    if not is_project_dir(path):
        raise StoreError(f"{path} is not a napari-sam2-track project; --overwrite only replaces "
                         "a project made by napari-sam2-track; choose another --out")
    return ProjectLock(path, command).acquire()
