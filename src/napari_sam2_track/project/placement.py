"""What a project is, and putting any new output in place: built beside it, then one rename.

Every output napari-sam2-track writes whole — a project (``track``, ``import``, a labels layer
saved from napari) and every export — is built in a hidden staging file or folder beside its
destination, ``.NAME.incomplete-HOST-PID-XXXXXXXX``, and moved into place only when complete
(:func:`build_beside`):

* new output: ``rename(staging, NAME)``. Before the rename only the staging entry exists (a
  reader sees nothing); after it the complete output does.
* replacing (``--overwrite``): a file is replaced in one atomic rename; a folder is **exchanged**
  with the staging folder in one step (Linux ``renameat2(RENAME_EXCHANGE)``), then the old one,
  now under the staging name, is deleted. Where exchange is unsupported, the old output is renamed
  to ``.NAME.replaced-HOST-PID-XXXXXXXX`` and the new one renamed into place; a crash between the
  two renames leaves ``NAME`` missing and the old output beside it, and the next writer of
  ``NAME`` renames it back (:func:`recover_interrupted_swap`).

At every instant, kill -9 leaves either the old output or the new one at ``NAME``, never neither
(except in the fallback window, which is repaired as above). Staging entries of processes that
are gone (a lock inside names its writer; else the host and PID in the name do) are removed by the
next build of the same name. Only a previous output of the same kind is ever replaced
(:class:`OutputKind`); a project only while no other process holds its lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import StoreError, describe_os_error
from .layout import ATTR_KEY, LABELS_PATH
from .lock import LockHolder, ProjectLock, read_holder

STAGING_TAG = "incomplete"
REPLACED_TAG = "replaced"
_ABANDONED_AFTER_S = 60.0  # a staging folder named by nobody and without a lock, this old
#: ``.NAME.TAG-[HOST-]PID-XXXXXXXX`` (the host is missing from names of older versions).
_OWNER = re.compile(r"-(?:(?P<host>[A-Za-z0-9_.]+)-)?(?P<pid>\d+)-[0-9a-f]{8}$")
_SETTLE_S = 60.0  # longest wait for writes still in flight before a discarded output is removed


# ---------------------------------------------------------------------------- what a project is
def is_project(path: str | Path) -> bool:
    """Whether ``path`` holds a napari-sam2-track project: a zarr group with the project's
    ``objects`` group and its metadata (or, from versions whose creation was not yet atomic, its
    label image without metadata). An export that merely shares the zarr layout is not one."""
    path = Path(path)
    try:
        doc = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict) or not (path / "objects").is_dir():
        return False
    attrs = doc.get("attributes")
    if isinstance(attrs, dict) and ATTR_KEY in attrs:
        return True
    return (path / LABELS_PATH / "zarr.json").is_file()


# --------------------------------------------------------------------------- kinds of output
class OutputKind(Protocol):
    """What is being written, as the mechanism needs it: its name in messages, whether it is
    a folder, and how to recognise a previous one that ``overwrite`` may replace."""

    title: str
    is_dir: bool

    def recognises(self, path: Path) -> bool: ...


@dataclass(frozen=True)
class _Project:
    title: str = "napari-sam2-track project"
    is_dir: bool = True

    def recognises(self, path: Path) -> bool:
        return path.is_dir() and is_project(path)


#: A project store (:func:`is_project`).
PROJECT: OutputKind = _Project()


# ------------------------------------------------------------------------------ the refusals
@dataclass(frozen=True)
class Words:
    """How a front end names its output and its switches, for the refusals below."""

    out: str = "--out"
    overwrite: str = "--overwrite"
    resume: str | None = "--resume"  # None where there is nothing to resume
    verb: str = "pass"  # how a switch is given: "pass --overwrite", "tick 'overwrite'"
    again: str = "run the command again"


#: The command line's words (``track``, ``batch``); :data:`CLI_NEW` where nothing is resumed.
CLI = Words()
CLI_NEW = Words(resume=None)


def already_exists(path: str | Path, words: Words = CLI) -> StoreError:
    """The refusal of an existing destination without ``overwrite``."""
    if words.resume:
        return StoreError(f"{path} already exists; {words.verb} {words.resume} to continue it or "
                          f"{words.overwrite} to replace it")
    return StoreError(f"{path} already exists; choose another {words.out} or {words.verb} "
                      f"{words.overwrite}")


def not_replaceable(path: str | Path, kind: OutputKind, words: Words = CLI) -> StoreError:
    """The refusal of an existing destination that is not a previous output of ``kind``."""
    return StoreError(f"{path} exists and is not a previous {kind.title}; {words.overwrite} only "
                      f"replaces a previous {kind.title} — remove it yourself or choose another "
                      f"{words.out}")


def cannot_write(path: str | Path, exc: OSError, words: Words = CLI) -> StoreError:
    """The refusal of an output whose writing failed (nothing of it is left)."""
    return StoreError(f"cannot write {path}: {describe_os_error(exc)}; nothing was written — fix "
                      f"that and {words.again}")


def overlap(out: str | Path, inputs: Iterable[str | Path]) -> tuple[str, str | Path] | None:
    """``(relation, input)`` when ``out`` is (``"is"``), lies inside (``"is inside"``) or
    contains (``"contains"``) one of ``inputs``; ``None`` when it is apart from all."""
    o = Path(os.path.realpath(out))
    for inp in inputs:
        i = Path(os.path.realpath(inp))
        if o == i:
            return "is", inp
        if i in o.parents:
            return "is inside", inp
        if o in i.parents:
            return "contains", inp
    return None


def check_separate(out: str | Path, inputs: Iterable[str | Path], what: str = "the input",
                   words: Words = CLI) -> None:
    """Refuse an output equal to, inside, or containing one of the inputs."""
    found = overlap(out, inputs)
    if found is not None:
        relation, inp = found
        raise StoreError(f"{words.out} {out} {relation} {what} {inp}; nothing was changed — write "
                         "to a path outside it")


def check_destination(path: Path, overwrite: bool, command: str | None = None, *,
                      kind: OutputKind = PROJECT, words: Words = CLI) -> ProjectLock | None:
    """Refuse a destination that must not be replaced; lock a project that will be.

    Returns the lock of the project to be replaced (held until it is swapped out), else None.
    """
    path = Path(path)
    recover_interrupted_swap(path)
    if not (path.exists() or path.is_symlink()):
        return None
    if not overwrite:
        raise already_exists(path, words)
    if kind.is_dir and path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return None  # an empty folder: nothing to lose
    if path.is_symlink() or not kind.recognises(path):
        raise not_replaceable(path, kind, words)
    if kind is PROJECT:
        return ProjectLock(path, command).acquire()
    return None


# ----------------------------------------------------------------- staging entries and sweeping
#: The longest host name a staging name carries (longer ones are cut).
_HOST_MAX = 40

#: The most bytes a staging name adds to the destination's name
#: (``.NAME.incomplete-HOST-PID-XXXXXXXX``: a host of up to 40 characters, a PID of up to 10
#: digits): a name longer than the file system's limit less this cannot be built beside it.
STAGING_EXTRA = len(f"..{STAGING_TAG}-") + _HOST_MAX + len("--") + 10 + 8


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:_HOST_MAX]


def _beside(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{tag}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def siblings(path: Path, tag: str) -> list[Path]:
    """The staging (``tag`` :data:`STAGING_TAG`) or replaced entries beside ``path``."""
    prefix = f".{path.name}.{tag}-"
    try:
        return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix))
    except OSError:
        return []


def _owned_by_nobody(entry: Path) -> bool:
    holder = read_holder(entry) if entry.is_dir() else None
    if holder is not None:
        return holder.pid != -1 and not holder.is_alive()
    owner = _OWNER.search(entry.name)
    if owner is not None:
        if owner["host"] not in (None, _host()):
            return False  # another host's: it cannot be checked from here
        if not LockHolder("", int(owner["pid"]), "", "", None).is_alive_here():
            return True
        if owner["host"] is not None:
            return False
    try:  # killed before its lock was written, and named by an older version
        return time.time() - entry.stat().st_mtime > _ABANDONED_AFTER_S
    except OSError:
        return False


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def remove_leftovers(path: Path) -> None:
    """Delete staging and replaced entries of ``path`` left by processes that are gone."""
    for entry in siblings(path, STAGING_TAG) + (siblings(path, REPLACED_TAG) if path.exists() else []):
        if _owned_by_nobody(entry):
            _remove(entry)


def recover_interrupted_swap(path: Path) -> bool:
    """If a replacement died between its two renames, put the old output back."""
    if path.exists() or path.is_symlink():
        return False
    for old in siblings(path, REPLACED_TAG):
        if _owned_by_nobody(old):
            os.rename(old, path)
            return True
    return False


def make_staging_dir(path: Path, is_dir: bool = True, words: Words = CLI) -> Path:
    """A fresh staging entry beside ``path``: a folder, or only the name of a file."""
    staging = _beside(path, STAGING_TAG)
    if is_dir:
        try:
            staging.mkdir()
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {describe_os_error(exc)}; choose a writable "
                             f"{words.out}") from None
    return staging


# ------------------------------------------------------------------------------- the swap
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


def place(staging: Path, path: Path, *, replace: bool, words: Words = CLI) -> None:
    """Move the complete output at ``staging`` to ``path`` (replacing what is there)."""
    if not replace:
        if staging.is_file() and (path.exists() or path.is_symlink()):
            raise StoreError(f"{path} appeared while it was being written; choose another {words.out}")
        try:
            os.rename(staging, path)  # replaces an empty folder; refuses a non-empty one
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise StoreError(f"{path} appeared while it was being written; choose another "
                                 f"{words.out}") from None
            raise
        return
    if staging.is_file() and path.is_file():
        os.replace(staging, path)
        return
    if exchange_paths(staging, path):
        _remove(staging)  # the old output, now under the staging name
        return
    replaced = _beside(path, REPLACED_TAG)
    os.rename(path, replaced)
    os.rename(staging, path)
    _remove(replaced)


def settle_writes(timeout: float = _SETTLE_S) -> None:
    """Wait for the writes zarr's I/O thread was given and has not finished.

    An output interrupted in the middle of a zarr write (Ctrl-C) leaves that write running on
    zarr's own thread; it is waited for here, so that the discarded output is removed once and
    whole instead of reappearing chunk by chunk.
    """
    sync = sys.modules.get("zarr.core.sync")
    loop = getattr(sync, "loop", [None])[0] if sync is not None else None
    if loop is None or loop.is_closed() or not loop.is_running():
        return
    if threading.current_thread() is getattr(sync, "iothread", [None])[0]:
        return

    async def in_flight() -> None:
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            await asyncio.wait(pending)

    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(in_flight(), loop).result(timeout)


def _make_parents(dest: Path, words: Words) -> list[Path]:
    made: list[Path] = []
    try:
        for parent in reversed([dest.parent, *dest.parent.parents]):
            if not parent.exists():
                parent.mkdir()
                made.append(parent)
    except OSError as exc:
        _remove_parents(made)
        raise StoreError(f"cannot write {dest}: {describe_os_error(exc)}; choose a writable "
                         f"{words.out}") from None
    return made


def _remove_parents(made: list[Path]) -> None:
    for parent in reversed(made):
        with contextlib.suppress(OSError):
            parent.rmdir()


@contextlib.contextmanager
def build_beside(dest: str | Path, kind: OutputKind = PROJECT, *, overwrite: bool = False,
                 inputs: Iterable[str | Path] = (), input_name: str = "the input",
                 command: str | None = None, words: Words = CLI) -> Iterator[Path]:
    """Yield a staging path beside ``dest``; move it onto ``dest`` when the block completes.

    Refused first, with one line and nothing written: a ``dest`` that is, lies inside or
    contains one of ``inputs``; an existing ``dest`` without ``overwrite``; one that is not a
    previous output of ``kind``; a project that another process writes (a project to be
    replaced stays locked until it is swapped out). Missing parent folders are created. The
    staging path is an empty folder when ``kind.is_dir``, else a file name to write. On any
    failure the staging entry (and the parents made) are removed and ``dest`` stays as it was;
    an ``OSError`` of the block itself is passed on as it is (the caller knows what it wrote).
    """
    dest = Path(dest)
    check_separate(dest, inputs, input_name, words)
    held = check_destination(dest, overwrite, command, kind=kind, words=words)
    try:
        made = _make_parents(dest, words)
        try:
            remove_leftovers(dest)
            staging = make_staging_dir(dest, kind.is_dir, words)
        except BaseException:
            _remove_parents(made)
            raise
        try:
            yield staging
            try:
                place(staging, dest, replace=dest.exists() or dest.is_symlink(), words=words)
            except OSError as exc:
                raise cannot_write(dest, exc, words) from None
        except BaseException:
            settle_writes()
            _remove(staging)
            _remove_parents(made)
            raise
        if held is not None:
            held.forget()  # its file left with the replaced project
            held = None
    finally:
        if held is not None:
            held.release()
