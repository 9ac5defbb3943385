"""One record per format, registered once by the format's own module, and the one way an
exporter writes its output.

A :class:`FormatRecord` carries everything the rest of the package asks about a format: its
names, its file name endings, how a finished output of it is recognised (a single file by its
signature, a folder by the marker file :data:`MARKER`), its exporter and its importer. Outputs are
put in place by :func:`napari_sam2_track.project.placement.build_beside`, which asks the record
whether an existing destination is a previous output that ``overwrite`` may replace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..project import ProjectStore
from ..project.placement import (
    CLI_NEW,
    Words,
    build_beside,
    cannot_write,
    check_destination,
    check_separate,
)

#: Marker file written into every folder export: ``{"format": <family>, "writer": "napari-sam2-track"}``.
MARKER = ".napari_sam2_track_export.json"


@dataclass(frozen=True)
class FormatRecord:
    """A format: what :mod:`napari_sam2_track.formats` and its callers need to know about it.

    Args:
        name: the ``--format`` name.
        title: its output in messages ("CTC export").
        suffixes: file name endings of its outputs, the usual one first ("" for a folder named
            by the format).
        signature: for a single-file output, whether a file looks like one this exporter wrote;
            ``None`` for a folder output, recognised by its :data:`MARKER`.
        exporter: ``exporter(store, out, options, **kwargs) -> Path``, called with
            ``export_args`` first; ``None`` for a format that is only imported.
        importer: ``importer(path, **kwargs) -> LabelSource``, called with ``import_args``
            first; ``None`` for a format that is only exported.
        family: formats whose outputs may replace each other share it (OME-Zarr 0.5 and 0.4); a
            folder export's marker names it.
        aliases: other names accepted for ``name``.
    """

    name: str
    title: str
    suffixes: tuple[str, ...] = ("",)
    signature: Callable[[Path], bool] | None = None
    exporter: Callable[..., Path] | None = None
    export_args: Mapping[str, Any] = field(default_factory=dict)
    importer: Callable[..., Any] | None = None
    import_args: Mapping[str, Any] = field(default_factory=dict)
    family: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def is_dir(self) -> bool:
        """Whether the output is a folder."""
        return self.signature is None

    def recognises(self, path: Path) -> bool:
        """Whether ``path`` is a finished output of this format (or of its family)."""
        path = Path(path)
        try:
            if self.signature is not None:
                return path.is_file() and self.signature(path)
            marker = json.loads((path / MARKER).read_text())
            return path.is_dir() and isinstance(marker, dict) and marker.get("format") == self.marker
        except (OSError, ValueError):
            return False

    @property
    def marker(self) -> str:
        """The ``format`` a folder export's marker file names."""
        return self.family or self.name

    def default_name(self, stem: str) -> str:
        """``<stem>-<format><usual suffix>``."""
        return f"{stem}-{self.name}{self.suffixes[0]}"


#: How refusals of the export in progress on this thread name the caller's controls (set by
#: :func:`napari_sam2_track.formats.export` for the call, read by :func:`export_target`).
_EXPORT_WORDS: ContextVar[Words] = ContextVar("export_words", default=CLI_NEW)


@contextmanager
def export_words(words: Words) -> Iterator[None]:
    """Within the block, exporters on this thread word their refusals with ``words``."""
    token = _EXPORT_WORDS.set(words)
    try:
        yield
    finally:
        _EXPORT_WORDS.reset(token)


_RECORDS: dict[str, FormatRecord] = {}
_ALIASES: dict[str, str] = {}


def register(*records: FormatRecord) -> None:
    """Register formats (each module registers its own, once)."""
    for record in records:
        if record.name in _RECORDS:
            raise ValueError(f"format {record.name!r} is registered twice")
        _RECORDS[record.name] = record
        _ALIASES.update((alias, record.name) for alias in record.aliases)


def records() -> list[FormatRecord]:
    """Every registered format, in registration order."""
    return list(_RECORDS.values())


def aliases() -> dict[str, str]:
    """Other accepted name -> format name."""
    return dict(_ALIASES)


def lookup(name: str) -> FormatRecord:
    """The record of a format name or alias; one line naming the choices if unknown."""
    key = str(name).lower()
    record = _RECORDS.get(_ALIASES.get(key, key))
    if record is None:
        raise StoreError(f"unknown format {name!r}; choose from {', '.join(_RECORDS)}")
    return record


def head(path: Path, size: int = 65536) -> bytes:
    """The first ``size`` bytes of a file (for signatures)."""
    with open(path, "rb") as f:
        return f.read(size)


def check_export_target(project: str | Path, fmt: str, out: str | Path, *, overwrite: bool = False,
                        words: Words = CLI_NEW) -> None:
    """Refuse, before anything is read or written, an ``out`` that exporting ``project`` as
    ``fmt`` would refuse: one that is, lies inside or contains the project; an existing one
    without ``overwrite``; one that is not a previous output of the format."""
    record = lookup(fmt)
    check_separate(out, [project], "the project", words)
    check_destination(Path(out), overwrite, kind=record, words=words)


@contextmanager
def export_target(store: ProjectStore, out: str | Path, fmt: str, overwrite: bool = False,
                  words: Words | None = None) -> Iterator[Path]:
    """The one way an exporter writes ``out``: yields the staging path (an empty folder, or a
    file name), puts the finished output in place when the block completes (see
    :func:`~napari_sam2_track.project.placement.build_beside`); a folder gets the marker file.

    ``words``: how refusals name the caller's controls (default: those given to the
    :func:`~napari_sam2_track.formats.export` call in progress, else the command line's)."""
    record = lookup(fmt)
    words = words or _EXPORT_WORDS.get()
    try:
        with build_beside(out, record, overwrite=overwrite, inputs=[store.path],
                          input_name="the project", words=words) as staging:
            yield staging
            if record.is_dir:
                (staging / MARKER).write_text(
                    json.dumps({"format": record.marker, "writer": "napari-sam2-track"}) + "\n")
    except OSError as exc:  # a full disk, a file size limit, a permission: one line
        raise cannot_write(out, exc, words) from None
