"""User-facing errors.

Every error a user can cause (bad file, bad prompt, wrong checkpoint, ...) is raised as a
subclass of :class:`Sam2TrackError`. Its message is one line that says what is wrong and what to
do; the CLI prints it without a traceback and the napari widgets show it as a notification.
"""

from __future__ import annotations

import errno as _errno
import os as _os
from collections.abc import Iterable
from typing import Any

#: Longest error line the CLI prints (characters).
MAX_LINE = 400


def first_validation_problem(exc) -> str:
    """One line for a pydantic ``ValidationError``: where, what, and how many more problems."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    msg = " ".join(str(err.get("msg", "invalid value")).removeprefix("Value error, ").split())
    n = exc.error_count()
    more = f" (+{n - 1} more problem{'s' if n > 2 else ''})" if n > 1 else ""
    return f"{loc}: {msg}{more}"


def repeated(values) -> list:
    """Values that occur more than once, sorted (for uniqueness validators)."""
    seen, dupes = set(), set()
    for v in values:
        (dupes if v in seen else seen).add(v)
    return sorted(dupes)


def stripped_name(value: str, what: str) -> str:
    """A name without surrounding blanks; ``ValueError`` if nothing is left."""
    value = value.strip()
    if not value:
        raise ValueError(f"{what} name must not be empty")
    return value


def summarize_list(values: Iterable[Any], limit: int = 10) -> str:
    """``1, 2, 3 ... and 299,990 more``: a readable list of at most ``limit`` items (the
    one list helper of every error line)."""
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    rest = len(values) - limit
    return f"{shown} ... and {rest:,} more" if rest > 0 else shown


def one_line(message: str, limit: int = MAX_LINE) -> str:
    """``message`` on one line of at most ``limit`` characters."""
    text = " ".join(str(message).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 40].rstrip(" ,;")
    return f"{cut} ... ({len(text) - len(cut):,} more characters)"


def describe_os_error(exc: OSError) -> str:
    """What went wrong in an ``OSError``, with the path it concerns, in plain words."""
    reasons = {
        _errno.ENOSPC: "no space left",
        _errno.EDQUOT: "disk quota exceeded",
        _errno.EROFS: "read-only file system",
        _errno.EACCES: "permission denied",
        _errno.EPERM: "operation not permitted",
        _errno.EFBIG: "file too large (file size limit)",
        _errno.ENOTDIR: "not a directory",
        _errno.EISDIR: "is a directory",
        _errno.ENOENT: "no such file or directory",
    }
    reason = reasons.get(exc.errno or -1) or (exc.strerror or str(exc) or type(exc).__name__).lower()
    where = exc.filename if exc.filename is not None else None
    return f"{reason} on {_os.fsdecode(where)}" if where is not None else reason


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG)


class Sam2TrackError(Exception):
    """Base class for errors caused by user input; the message is a single actionable line."""


class SourceError(Sam2TrackError):
    """A frame source cannot be opened or read (missing, corrupt, unsupported dims/dtype)."""


class PromptError(Sam2TrackError):
    """A prompt is invalid: outside the frame or range, empty, or for an unknown object."""


class ModelError(Sam2TrackError):
    """A model cannot be resolved or loaded (offline, bad checkpoint, config mismatch)."""


class StoreError(Sam2TrackError):
    """A project store cannot be created, opened or written."""


class ProjectLockedError(StoreError):
    """Another live process is writing the project."""


class SchemaError(Sam2TrackError):
    """An annotation schema file is invalid."""


class ReviewError(Sam2TrackError):
    """A review or QC request is invalid: unknown object, bad frame range, unknown masklet."""


class Sam2TrackWarning(UserWarning):
    """Something the user should know about, though nothing failed."""


class NothingApprovedWarning(Sam2TrackWarning):
    """An export limited to approved masklets found none approved."""
