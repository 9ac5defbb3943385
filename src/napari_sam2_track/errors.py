"""User-facing errors.

Every error a user can cause (bad file, bad prompt, wrong checkpoint, ...) is raised as a
subclass of :class:`Sam2TrackError`. Its message is one line that says what is wrong and what to
do; the CLI prints it without a traceback and the napari widgets show it as a notification.
"""

from __future__ import annotations


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
