"""The project lock: at most one writing process per project; readers never need it.

A writer holds ``PROJECT.zarr/.napari_sam2_track.lock``, a small JSON file naming the host, PID,
process start time, lock time and command. It is created atomically (written under a temporary
name, then hard-linked into place, which fails if a lock exists), removed on release, and
released at interpreter exit. A lock whose holder is gone (same host, PID not running or reused
by another process) is stale: the next writer takes it over and says so. A lock held on another
host cannot be checked and is respected.

A writer running as a dask task also records its dask worker and that worker's scheduler. When a
worker on another host dies, its scheduler stops listing it; the batch and segment runs of
:mod:`napari_sam2_track.distributed` then hand its lock over to the retry (:func:`take_over`).

Inside one process the lock is re-entrant: the napari session, its propagation worker and a
labels layer saving into the same project share the process's hold (counted; the file goes away
with the last release).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import errno
import json
import os
import socket
import sys
import threading
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ProjectLockedError, StoreError, describe_os_error

LOCK_NAME = ".napari_sam2_track.lock"

_registry_lock = threading.RLock()
_held: dict[str, int] = {}  # lock file path -> holds in this process


class StaleLockWarning(UserWarning):
    """A lock left by a process that is gone was taken over."""


def _process_start(pid: int) -> float | None:
    """Start time of a process (seconds since the epoch), ``None`` if unknown or gone."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - gone, zombie or not allowed
        return None
    try:  # Linux without psutil: field 22 of /proc/<pid>/stat, in clock ticks since boot
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _dask_worker() -> tuple[str | None, str | None]:
    """(worker address, scheduler address) when called from a dask task, else (None, None).

    Only looks if dask.distributed is already imported: a plain ``track`` never imports it.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None, None
    try:
        worker = distributed.get_worker()
        return str(worker.address), str(worker.scheduler.address)
    except Exception:  # noqa: BLE001 - not inside a task, or a worker without a scheduler yet
        return None, None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a project lock."""

    host: str
    pid: int
    started: str  # when the lock was taken (ISO 8601 UTC)
    command: str
    process_start: float | None = None
    worker: str | None = None  # address of the dask worker the writer runs in, if any
    scheduler: str | None = None  # that worker's scheduler

    @classmethod
    def current(cls, command: str | None = None) -> "LockHolder":
        if command is None:
            command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
        pid = os.getpid()
        worker, scheduler = _dask_worker()
        return cls(socket.gethostname(), pid, _now(), command, _process_start(pid), worker,
                   scheduler)

    def as_json(self) -> dict:
        """The lock file's content (the dask fields only for a writer in a dask task)."""
        data = asdict(self)
        for key in ("worker", "scheduler"):
            if data[key] is None:
                del data[key]
        return data

    def describe(self) -> str:
        command = self.command if len(self.command) <= 80 else self.command[:77] + "..."
        worker = f"dask worker {self.worker}, " if self.worker else ""
        return f"PID {self.pid} on {self.host} ({worker}{command!r}, since {self.started})"

    def is_alive(self) -> bool:
        """False only when the holder is provably gone (same host, PID not running or reused)."""
        if self.host != socket.gethostname():
            return True
        return self.is_alive_here()

    def is_alive_here(self) -> bool:
        """Whether the PID runs on this host (and, if recorded, is still the same process)."""
        if self.pid == os.getpid():
            return True
        if not 1 <= self.pid <= MAX_PID:  # no process has it (0 and -N name process groups)
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process: it exists
        except OSError:
            return True
        if self.process_start is not None:
            start = _process_start(self.pid)
            if start is not None and abs(start - self.process_start) > 2.0:
                return False  # the PID now belongs to another process
        return True


def lock_path(project: str | Path) -> Path:
    return Path(project) / LOCK_NAME


#: Largest process id any system gives (``pid_t`` is a signed 32-bit integer).
MAX_PID = 2**31 - 1
UNREADABLE = "unreadable lock file"


def read_holder(project: str | Path) -> LockHolder | None:
    """The holder named by a project's lock file, or ``None`` when it is not locked.

    A lock file that cannot be read, or that names no possible process (a PID that is not an
    integer from 1 to :data:`MAX_PID`), is held by an unknown writer: PID -1, and ``command``
    says what is wrong with it."""
    try:
        data = json.loads(lock_path(project).read_bytes())
        pid = data["pid"]
        if not isinstance(pid, int) or isinstance(pid, bool) or not 1 <= pid <= MAX_PID:
            return _unknown_writer(f"{UNREADABLE}: PID {str(pid)[:24]} is not a process id")
        start = data.get("process_start")
        optional = {key: data.get(key) if isinstance(data.get(key), str) else None
                    for key in ("worker", "scheduler")}
        return LockHolder(
            host=str(data["host"]),
            pid=pid,
            started=str(data.get("started", "?")),
            command=str(data.get("command", "?")),
            process_start=float(start) if _is_number(start) else None,
            **optional,
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # Unreadable or half-written by something else: treat as held by an unknown writer.
        return _unknown_writer(UNREADABLE)


def _unknown_writer(command: str) -> LockHolder:
    """The holder of a lock file that names no process we can check: PID -1."""
    return LockHolder(host="?", pid=-1, started="?", command=command)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and abs(value) < float("inf"))


def live_holder(project: str | Path) -> LockHolder | None:
    """The holder of a project's lock if it is still running (or cannot be checked)."""
    holder = read_holder(project)
    if holder is None or (holder.pid != -1 and not holder.is_alive()):
        return None
    return holder


class ProjectLock:
    """The write lock of one project. Use as a context manager or call :meth:`acquire`/:meth:`release`.

    ``took_over`` names the stale holder replaced by :meth:`acquire`, if any.
    """

    def __init__(self, project: str | Path, command: str | None = None):
        self.project = Path(project)
        self.command = command
        self.took_over: LockHolder | None = None
        self.first_hold = False  # this acquire took the lock for the process (not a re-entry)
        self._held = False

    @property
    def path(self) -> Path:
        return lock_path(self.project)

    @property
    def held(self) -> bool:
        return self._held

    def _key(self) -> str:
        return os.path.realpath(self.path)

    def acquire(self) -> "ProjectLock":
        """Take the lock; :class:`ProjectLockedError` if another live process holds it."""
        if self._held:
            return self
        with _registry_lock:
            key = self._key()
            if _held.get(key, 0) > 0 and self.path.exists():
                _held[key] += 1
                self._held, self.first_hold = True, False
                _live_locks.add(self)
                return self
            self._create()
            _held[key] = 1
            self._held, self.first_hold = True, True
        _live_locks.add(self)
        return self

    def _create(self) -> None:
        me = LockHolder.current(self.command)
        data = json.dumps(me.as_json(), indent=1).encode()
        for _attempt in range(20):
            try:
                if self._link_new(data):
                    return
            except OSError as exc:
                raise StoreError(
                    f"cannot lock {self.project} for writing: {describe_os_error(exc)}"
                ) from None
            holder = read_holder(self.project)
            if holder is None:
                continue  # released meanwhile
            if holder.pid == os.getpid() and holder.host == me.host:
                self._remove_if_unchanged(holder)  # left by this process (not counted)
                continue
            if holder.pid != -1 and not holder.is_alive():
                if self._remove_if_unchanged(holder):
                    self.took_over = holder
                    note_stale_lock(
                        f"took over the lock of {self.project}: {holder.describe()} is no longer "
                        "running",
                        stacklevel=4,
                    )
                continue
            if holder.pid == -1:
                raise ProjectLockedError(
                    f"{self.project} is locked, but its lock file names no writer "
                    f"({holder.command}); if no program is writing the project, delete {self.path}"
                )
            raise ProjectLockedError(
                f"{self.project} is being written by {holder.describe()}; wait for it to finish "
                f"(if that process is gone, delete {self.path})"
            )
        raise ProjectLockedError(f"cannot take the lock {self.path}: it keeps changing; try again")

    def _link_new(self, data: bytes) -> bool:
        """Publish the lock file with its content in one step; False if a lock exists."""
        tmp = self.project / f"{LOCK_NAME}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as f:  # on a full disk the write fails: tmp is removed below
                f.write(data)
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            try:  # file systems without hard links
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            except BaseException:  # a full disk: no empty lock file stays behind
                self.path.unlink(missing_ok=True)
                raise
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _remove_if_unchanged(self, holder: LockHolder) -> bool:
        """Remove the lock file if it still names ``holder``; serialised between contenders."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except (ImportError, OSError):
                pass
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                return False
            if not same_file or read_holder(self.project) != holder:
                return False
            self.path.unlink()
            return True
        finally:
            os.close(fd)

    def release(self) -> None:
        """Give the lock back (the file is removed with the process's last hold)."""
        if not self._held:
            return
        self._held = False
        _live_locks.discard(self)
        with _registry_lock:
            key = self._key()
            count = _held.get(key, 0) - 1
            if count > 0:
                _held[key] = count
                return
            _held.pop(key, None)
            holder = read_holder(self.project)
            if holder is not None and holder.pid == os.getpid():
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                except OSError:
                    pass  # a read-only or vanished folder: the lock goes stale with the process

    def moved(self, new_project: str | Path) -> None:
        """The project folder was renamed to ``new_project`` while this lock was held."""
        with _registry_lock:
            count = _held.pop(self._key(), 0) if self._held else 0
            self.project = Path(new_project)
            if self._held:
                _held[self._key()] = _held.get(self._key(), 0) + count

    def forget(self) -> None:
        """Drop this hold without touching the file (its folder was deleted or replaced)."""
        if self._held:
            with _registry_lock:
                key = self._key()
                count = _held.get(key, 0) - 1
                if count > 0:
                    _held[key] = count
                else:
                    _held.pop(key, None)
            self._held = False
            _live_locks.discard(self)

    def __enter__(self) -> "ProjectLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"ProjectLock({str(self.project)!r}, held={self._held})"


_live_locks: "set[ProjectLock]" = set()  # released at interpreter exit


def take_over(project: str | Path, holder: LockHolder, reason: str) -> bool:
    """Remove the lock of ``project`` if it still names ``holder``, whom the caller knows to be
    gone (``reason`` says how); the next writer then takes the lock as usual.

    For holders this module cannot check itself (another host): the distributed runs call it for
    a dask worker that its scheduler no longer lists. Returns whether the lock was removed.
    """
    if not ProjectLock(project)._remove_if_unchanged(holder):
        return False
    note_stale_lock(f"took over the lock of {project}: {holder.describe()} is gone ({reason})",
                    stacklevel=2)
    return True


def note_stale_lock(message: str, stacklevel: int = 1) -> None:
    """Say that a stale lock was taken over: a :class:`StaleLockWarning`, which the CLI shows as
    one ``note:`` line. Inside a dask worker nobody shows the worker's warnings but Python itself,
    in two lines (place and source line): there the note is printed as that one line.
    ``stacklevel`` counts from the caller, as for ``warnings.warn``."""
    if _dask_worker()[0] is not None:
        print(f"note: {' '.join(message.split())}", file=sys.stderr, flush=True)
        return
    warnings.warn(message, StaleLockWarning, stacklevel=stacklevel + 1)


@atexit.register
def _release_all() -> None:
    for lock in list(_live_locks):
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
