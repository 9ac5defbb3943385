"""Append-only JSON-Lines logs inside a project: one record per line, durable when written.

Appending costs O(1) whatever the size of the log: the file is opened in append mode, the new
lines are written with one ``os.write`` and, for durable records, ``os.fsync`` runs before the
call returns. Every line of a log is a complete record, so pandas reads it with
``pandas.read_json(path, lines=True)``: a write that fails (a full disk) is cut back off before
the error is raised, and a line torn by a crash (no trailing newline, not a whole record) is
skipped when reading and cut off by the next append. Appends of several processes are serialised
with ``flock``. Lines that are not records (not UTF-8, not JSON, not valid) are skipped when
reading and named in one :class:`LogLinesSkippedWarning`. The logs live in a zarr group (a folder
with a ``zarr.json``), so listing the project's members with zarr stays clean.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import Sam2TrackWarning, summarize_list

_GROUP_JSON = b'{"zarr_format": 3, "node_type": "group", "attributes": {}}'


class LogLinesSkippedWarning(Sam2TrackWarning):
    """Lines of a review log that are not records were skipped (named by line number)."""


def now_iso() -> str:
    """The current UTC time, ISO 8601 with microseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a file created or renamed in it) durable; a no-op where a folder
    cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_log_dir(folder: Path) -> None:
    """Create ``folder`` as an (empty) zarr group if it does not exist yet."""
    marker = folder / "zarr.json"
    if marker.is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"zarr.json.{os.getpid()}-{threading.get_ident()}.tmp"  # one per writer: several may create the folder at once
    with open(tmp, "wb") as f:
        f.write(_GROUP_JSON)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker)
    fsync_dir(folder)
    fsync_dir(folder.parent)


def append_records(path: str | Path, records: Iterable[dict], *, durable: bool = True) -> None:
    """Append records as JSON lines to ``path``; with ``durable`` they are on disk on return.

    A failed write leaves the log as it was; a torn last line left by a crash is cut off first
    (or, if it is a whole record missing only its newline, completed)."""
    path = Path(path)
    data = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records)
    if not data:
        return
    payload = data.encode("utf-8")
    ensure_log_dir(path.parent)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    end = None
    try:
        _flock(fd)
        end = _mend_tail(fd, os.fstat(fd).st_size)
        while payload:
            written = os.write(fd, payload)
            payload = payload[written:]
        if durable:
            os.fsync(fd)
    except BaseException as exc:  # a full disk, Ctrl-C: no partial line stays behind
        if end is not None and payload:
            _truncate(fd, end)
        if isinstance(exc, OSError) and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        os.close(fd)  # also gives back the flock
    if created and durable:
        fsync_dir(path.parent)


def _flock(fd: int) -> None:
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
    except (ImportError, OSError):  # no flock here (Windows, some network file systems)
        pass


def _truncate(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:  # pragma: no cover - readers skip the torn line; the next append cuts it
        pass


def _mend_tail(fd: int, size: int) -> int:
    """Make the log end with a whole line; returns its size. A last line without a newline is
    completed if it is a whole JSON record, else cut off (a crash tore it; readers skip it)."""
    if not size:
        return 0
    tail = os.pread(fd, min(size, 1 << 16), max(0, size - (1 << 16)))
    if tail.endswith(b"\n"):
        return size
    cut = tail.rfind(b"\n")
    if cut < 0 and size > len(tail):  # a torn line longer than 64 KiB: find where it starts
        end = size - len(tail)
        while end > 0 and cut < 0:
            block = os.pread(fd, min(end, 1 << 16), max(0, end - (1 << 16)))
            end -= len(block)
            cut = block.rfind(b"\n")
        start = end + cut + 1 if cut >= 0 else 0
    else:
        start = size - len(tail) + cut + 1
    last = os.pread(fd, size - start, start)
    if _record(last) is not None:
        os.write(fd, b"\n")
        return size + 1
    os.ftruncate(fd, start)
    return start


def _record(line: bytes) -> dict | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_records(path: str | Path, validate: Callable[[dict], Any] | None = None) -> list:
    """All records of a log, oldest first (none if it does not exist), each passed through
    ``validate`` if given. Lines that are not records (not UTF-8, not JSON, refused by
    ``validate``: ``ValueError``) and a last line torn by a crash are skipped; one
    :class:`LogLinesSkippedWarning` names them by line number."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []

    def parse(line: bytes) -> Any:
        """The line's record, validated; ``None`` if it is not one."""
        record = _record(line)
        if record is None or validate is None:
            return record
        try:
            return validate(record)
        except ValueError:  # written by a newer version, or damaged by hand
            return None

    records, skipped = [], []
    lines = data.split(b"\n")
    torn = lines.pop()  # after the last newline: empty, or a line without its newline
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = parse(line)
        if record is None:
            skipped.append(number)
        else:
            records.append(record)
    torn_line = None
    if torn.strip():
        record = parse(torn)
        if record is not None:  # a whole record that lacks only its newline
            records.append(record)
        else:
            torn_line = len(lines) + 1
    if skipped or torn_line:
        parts = []
        if skipped:
            parts.append(f"line{'s' if len(skipped) > 1 else ''} {summarize_list(skipped)} (not "
                         "UTF-8, not JSON or not a valid record)")
        if torn_line:
            parts.append(f"its torn last line {torn_line} (a write cut short by a crash)")
        warnings.warn(
            f"{path}: skipped {' and '.join(parts)}; the other {len(records)} record{'s' if len(records) != 1 else ''} were read",
            LogLinesSkippedWarning, stacklevel=3,
        )
    return records
