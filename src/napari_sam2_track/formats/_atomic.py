"""Write every export and import beside its destination, then rename it into place.

:func:`atomic_output` is the one way exporters and importers write their result:

- the output may not be, lie inside, or contain any of the inputs (the project exported, the
  annotations imported);
- an existing output is only replaced with ``overwrite``, and only when it is recognisably a
  previous output of the same kind: a folder export carries the marker file :data:`MARKER`,
  a single-file export is recognised by its signature (CSV header, TIFF magic, the JSON/XML of
  its format), a project by its ``zarr.json``; anything else is refused;
- the result is written under a hidden temporary name in the destination's folder
  (``.partial-<pid>-<random>-<name>``) and renamed onto the destination only when complete.
  A file replaces a previous one with one atomic rename; a folder is swapped with the previous
  one in one step where the system allows it (Linux ``renameat2``), else with two renames;
- on any failure (an exception, ``KeyboardInterrupt``) the temporary output is removed and the
  destination is left as it was. A process killed outright leaves only the hidden temporary,
  which the next write to the same destination removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..errors import Sam2TrackError, StoreError, describe_os_error
from ..project.placement import exchange_paths

#: Marker file written into every folder export: ``{"format": <kind>, "writer": "napari-sam2-track"}``.
MARKER = ".napari_sam2_track_export.json"

#: Human names of the output kinds, for messages.
KIND_NAMES = {
    "project": "project store",
    "ome-zarr": "OME-Zarr export",
    "ctc": "CTC export",
    "davis": "DAVIS/YouTube-VOS export",
    "sav": "SA-V export",
    "geff": "geff export",
    "table": "table export (CSV/Parquet)",
    "tiff": "label TIFF export",
    "youtube-vis": "YouTube-VIS JSON export",
    "cvat": "CVAT XML export",
    "mots": "MOTS txt export",
}

_TEMP = re.compile(r"\.(?:partial|replaced)-(?P<host>[^-]*)-(?P<pid>\d+)-[0-9a-f]{8}-(?P<name>.+)")


# ----------------------------------------------------------------------- recognising outputs
def _head(path: Path, size: int = 65536) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _is_csv_or_parquet(path: Path) -> bool:
    head = _head(path)
    if head.startswith(b"PAR1"):
        return True
    from .table import COLUMNS

    return head.split(b"\n", 1)[0].rstrip(b"\r") == ",".join(COLUMNS).encode()


def _is_tiff(path: Path) -> bool:
    return _head(path, 4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _is_ytvis(path: Path) -> bool:
    head = _head(path, 1 << 20).lstrip()
    return head.startswith(b"{") and b'"videos"' in head


def _is_cvat(path: Path) -> bool:
    head = _head(path, 4096)
    return head.lstrip().startswith(b"<?xml") and b"<annotations>" in head


def _is_mots(path: Path) -> bool:
    head = _head(path, 1 << 20)
    if not head.strip():
        return True  # an export without any visible object
    first = head.split(b"\n", 1)[0].decode("ascii", "replace")
    return re.fullmatch(r"-?\d+ \d+ \d+ \d+ \d+ \S+", first.strip()) is not None


#: Single-file outputs: kind -> does this file look like one?
FILE_SIGNATURES: dict[str, Callable[[Path], bool]] = {
    "table": _is_csv_or_parquet,
    "tiff": _is_tiff,
    "youtube-vis": _is_ytvis,
    "cvat": _is_cvat,
    "mots": _is_mots,
}


def is_project(path: Path) -> bool:
    """Whether ``path`` is a project store (a zarr group with the project's attributes)."""
    from ..project.layout import ATTR_KEY

    try:
        meta = json.loads((Path(path) / "zarr.json").read_text())
        return isinstance(meta, dict) and ATTR_KEY in (meta.get("attributes") or {})
    except (OSError, ValueError):
        return False


def is_previous_output(path: Path, kind: str) -> bool:
    """Whether ``path`` is a previous output of ``kind`` that ``--overwrite`` may replace."""
    path = Path(path)
    try:
        if kind == "project":
            return path.is_dir() and is_project(path)
        if kind in FILE_SIGNATURES:
            return path.is_file() and FILE_SIGNATURES[kind](path)
        marker = json.loads((path / MARKER).read_text())
        return path.is_dir() and isinstance(marker, dict) and marker.get("format") == kind
    except (OSError, ValueError):
        return False


# ----------------------------------------------------------------------------- path checks
def check_separate(out: Path, inputs: Iterable[str | Path], what: str = "the input") -> None:
    """Refuse an output equal to, inside, or containing one of the inputs."""
    o = Path(os.path.realpath(out))
    for inp in inputs:
        i = Path(os.path.realpath(inp))
        if o == i:
            relation = "is"
        elif i in o.parents:
            relation = "is inside"
        elif o in i.parents:
            relation = "contains"
        else:
            continue
        raise StoreError(
            f"--out {out} {relation} {what} {inp}; nothing was changed — write to a path outside it"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_temporaries(dest: Path) -> list[Path]:
    """Remove temporaries of ``dest`` left by processes on this host that are gone."""
    removed = []
    host = _host()
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.fullmatch(entry.name)
        if not m or m["name"] != dest.name or m["host"] != host or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            _remove(entry)
            removed.append(entry)
    return removed


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40]


def _temp_name(dest: Path, tag: str = "partial") -> Path:
    return dest.parent / f".{tag}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{dest.name}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _replace(tmp: Path, dest: Path) -> None:
    """Move the complete ``tmp`` onto ``dest``, replacing what is there."""
    if not dest.exists():
        os.rename(tmp, dest)
    elif tmp.is_file() and dest.is_file():
        os.replace(tmp, dest)
    elif exchange_paths(tmp, dest):
        _remove(tmp)  # now holds the previous output
    else:
        old = _temp_name(dest, "replaced")
        os.rename(dest, old)
        os.rename(tmp, dest)
        _remove(old)


def _describe_kind(kind: str) -> str:
    return KIND_NAMES.get(kind, f"{kind} output")


def _check_destination(dest: Path, kind: str, overwrite: bool) -> bool:
    """Whether ``dest`` holds a previous output to replace; errors for anything else."""
    if not (dest.exists() or dest.is_symlink()):
        return False
    name = _describe_kind(kind)
    if not overwrite:
        raise StoreError(f"{dest} already exists; choose another --out or pass --overwrite")
    if kind == "project" and is_project(dest):
        _check_unlocked(dest)
        return True
    if not is_previous_output(dest, kind):
        raise StoreError(
            f"{dest} exists and is not a previous {name}; --overwrite only replaces a previous "
            f"{name} — remove it yourself or choose another --out"
        )
    return True


def _check_unlocked(project: Path) -> None:
    try:
        from ..project.lock import live_holder
    except ImportError:
        return
    holder = live_holder(project)
    if holder is not None:
        from ..errors import ProjectLockedError

        raise ProjectLockedError(
            f"{project} is being written by {holder.describe()}; wait for it to finish before "
            "replacing it"
        )


@contextlib.contextmanager
def atomic_output(
    dest: str | Path,
    kind: str,
    *,
    overwrite: bool = False,
    is_dir: bool = True,
    create: bool = True,
    inputs: Iterable[str | Path] = (),
    input_name: str = "the input",
) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` when the block completes.

    ``kind`` names the output (a key of :data:`KIND_NAMES`); ``is_dir`` says whether it is a
    folder (created empty unless ``create`` is false, e.g. for a zarr store that creates itself)
    or a single file. Folder outputs other than projects get the :data:`MARKER` file.
    """
    dest = Path(dest)
    check_separate(dest, inputs, input_name)
    replaces = _check_destination(dest, kind, overwrite)
    made_parents: list[Path] = []
    tmp = _temp_name(dest)
    try:
        for parent in reversed([dest.parent, *dest.parent.parents]):
            if not parent.exists():
                parent.mkdir()
                made_parents.append(parent)
        remove_stale_temporaries(dest)
        if is_dir and create:
            tmp.mkdir()
    except OSError as exc:
        _cleanup(None, made_parents)
        raise StoreError(f"cannot write {dest}: {describe_os_error(exc)}; choose a writable --out") from None
    try:
        yield tmp
        if is_dir and kind != "project":
            (tmp / MARKER).write_text(json.dumps({"format": kind, "writer": "napari-sam2-track"}) + "\n")
        if replaces and kind == "project":
            _replace_project(tmp, dest)
        else:
            _replace(tmp, dest)
    except BaseException as exc:
        _cleanup(tmp, made_parents)
        if isinstance(exc, OSError) and not isinstance(exc, Sam2TrackError):
            raise StoreError(
                f"cannot write {dest}: {describe_os_error(exc)}; nothing was written — fix that "
                "and run the command again"
            ) from None
        raise


def _replace_project(tmp: Path, dest: Path) -> None:
    """Replace a project, holding its lock so that no writer starts on it meanwhile."""
    try:
        from ..project.lock import ProjectLock
    except ImportError:
        _replace(tmp, dest)
        return
    lock = ProjectLock(dest, command="import --overwrite").acquire()
    try:
        _replace(tmp, dest)  # the lock file leaves with the previous project
    except BaseException:
        lock.release()
        raise
    lock.forget()


def _cleanup(tmp: Path | None, made_parents: list[Path]) -> None:
    if tmp is not None:
        # A writer thread of the failed export (zarr's I/O loop) may still finish a chunk or
        # two after the interruption: remove until nothing comes back.
        absent = 0
        for _attempt in range(100):
            if tmp.exists() or tmp.is_symlink():
                absent = 0
                with contextlib.suppress(OSError):
                    _remove(tmp)
            else:
                absent += 1
                if absent == 3:
                    break
            time.sleep(0.02)
    for parent in reversed(made_parents):
        with contextlib.suppress(OSError):
            parent.rmdir()
