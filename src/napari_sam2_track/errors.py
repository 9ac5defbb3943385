"""User-facing errors.

Every error a user can cause (bad file, bad prompt, wrong checkpoint, ...) is raised as a
subclass of :class:`Sam2TrackError`. Its message is one line that says what is wrong and what to
do; the CLI prints it without a traceback and the napari widgets show it as a notification.
"""

from __future__ import annotations


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


class SchemaError(Sam2TrackError):
    """An annotation schema file is invalid."""


class ReviewError(Sam2TrackError):
    """A review or QC request is invalid: unknown object, bad frame range, unknown masklet."""


class Sam2TrackWarning(UserWarning):
    """Something the user should know about, though nothing failed."""


class NothingApprovedWarning(Sam2TrackWarning):
    """An export limited to approved masklets found none approved."""
