"""Append-only JSON-Lines logs inside a project: one record per line, durable when written.

Appending costs O(1) whatever the size of the log: the file is opened in append mode, the new
lines are written with one ``os.write`` and, for durable records, ``os.fsync`` runs before the
call returns. A line torn by a crash (no trailing newline) is skipped when reading, and the next
append starts on a fresh line. The logs live in a zarr group (a folder with a ``zarr.json``), so
listing the project's members with zarr stays clean; pandas reads them with
``pandas.read_json(path, lines=True)``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable
from pathlib import Path

_GROUP_JSON = b'{"zarr_format": 3, "node_type": "group", "attributes": {}}'


def now_iso() -> str:
    """The current UTC time, ISO 8601 with microseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def _fsync_dir(path: Path) -> None:
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
    tmp = folder / "zarr.json.tmp"
    with open(tmp, "wb") as f:
        f.write(_GROUP_JSON)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker)
    _fsync_dir(folder)
    _fsync_dir(folder.parent)


def append_records(path: str | Path, records: Iterable[dict], *, durable: bool = True) -> None:
    """Append records as JSON lines to ``path``; with ``durable`` they are on disk on return."""
    path = Path(path)
    data = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records)
    if not data:
        return
    ensure_log_dir(path.parent)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and _last_byte(path, size) != b"\n":  # a line torn by a crash: start afresh
            data = "\n" + data
        payload = data.encode("utf-8")
        while payload:
            written = os.write(fd, payload)
            payload = payload[written:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if created and durable:
        _fsync_dir(path.parent)


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1)


def read_records(path: str | Path) -> list[dict]:
    """All complete records of a log (none if it does not exist); torn lines are skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn by a crash while it was written
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records
