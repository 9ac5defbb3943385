"""Reading user-supplied text files (prompts, schemas, model configs) without surprises.

Every failure a hostile or damaged file can cause while it is read and parsed (missing, a
directory, unreadable, not UTF-8, nested too deeply for the parser, a number too long to
convert, a YAML tag naming Python code, ...) becomes one line raised as the caller's
:class:`~napari_sam2_track.errors.Sam2TrackError` subclass. YAML is parsed with the safe loader
only, so tags such as ``!!python/object/apply`` are refused and never executed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import Sam2TrackError

__all__ = [
    "first_line",
    "capped",
    "validation_problem",
    "read_text",
    "parse_json",
    "parse_yaml",
]

#: Longest reason quoted from a library's exception inside one of our error lines.
MAX_REASON_CHARS = 160
#: Longest part of an error line that quotes the user's input (keys, values, locations).
MAX_QUOTED_CHARS = 300


def first_line(exc: BaseException, limit: int = MAX_REASON_CHARS) -> str:
    """The first non-empty line of an exception's message (or its type), at most ``limit`` chars."""
    for line in str(exc).splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."
    return type(exc).__name__


def capped(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` on one line, cut to about ``limit`` characters with a note of what was cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()}... ({len(text) - limit:,} more characters)"


def validation_problem(exc: Any) -> str:
    """:func:`~napari_sam2_track.errors.first_validation_problem`, capped to a readable length."""
    from .errors import first_validation_problem

    return capped(first_validation_problem(exc))


def read_text(path: str | Path, what: str, error: type[Sam2TrackError], hint: str) -> str:
    """The UTF-8 text of ``path`` (a leading BOM is dropped); ``error`` with one line otherwise.

    ``what`` names the file in messages (e.g. ``"prompts file"``), ``hint`` says what to do.
    """
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {path} is a directory, not a file; {hint}")
    if not path.exists():
        raise error(f"{what} {path} not found; {hint}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or first_line(exc)}; {hint}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}, "
            f"offset {exc.start}); save it as UTF-8; {hint}"
        ) from None


def _parse_failure(exc: BaseException, label: str, fmt: str) -> str | None:
    """One line for the failures a parser can raise on hostile input, or None if unexpected."""
    if isinstance(exc, RecursionError):
        return f"{label} is nested too deeply to be a valid {fmt} document"
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return f"{label} holds a number with more digits than any valid value"
    if isinstance(exc, MemoryError):
        return f"{label} is too large to parse"
    return None


def parse_json(text: str, label: str, error: type[Sam2TrackError], hint: str) -> Any:
    """``json.loads(text)`` with every parse failure as one line naming ``label``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{label} is not valid JSON (line {exc.lineno}: {exc.msg}); {hint}"
        ) from None
    except (RecursionError, ValueError, MemoryError) as exc:
        raise error(f"{_parse_failure(exc, label, 'JSON') or first_line(exc)}; {hint}") from None


#: Deepest ``[``/``{`` nesting a YAML document may have. The pure-Python parser needs seconds
#: for a few thousand levels (and libyaml crashes on deeper ones), so deeper text is refused
#: before it is parsed; no schema or model config comes close.
MAX_FLOW_DEPTH = 100

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _flow_depth(text: str) -> int:
    """Deepest nesting of YAML flow collections, ignoring brackets inside quoted strings."""
    depth = deepest = 0
    for ch in _NOT_BRACKET.sub("", _QUOTED.sub("", text)):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


def parse_yaml(
    text: str, label: str, error: type[Sam2TrackError], hint: str, loader: Any = None
) -> Any:
    """``yaml.safe_load(text)`` (never executes tags) with every failure as one line.

    ``loader`` replaces the safe loader by a subclass of it (e.g. OmegaConf's).
    """
    import yaml

    if loader is not None and not issubclass(loader, yaml.SafeLoader):
        raise TypeError("parse_yaml only accepts subclasses of yaml.SafeLoader")
    if _flow_depth(text) > MAX_FLOW_DEPTH:
        raise error(f"{label} is nested too deeply to be a valid YAML document; {hint}")
    try:
        return yaml.load(text, Loader=loader or yaml.SafeLoader)
    except yaml.constructor.ConstructorError as exc:
        tag = getattr(exc, "problem", "") or first_line(exc)
        where = exc.problem_mark.line + 1 if exc.problem_mark is not None else "?"
        raise error(
            f"{label} is refused: line {where}: {first_line(tag)} (only plain YAML values are "
            f"allowed; tags that name Python objects are never run); {hint}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise error(f"{label} is not valid YAML ({where}{first_line(problem)}); {hint}") from None
    except (RecursionError, ValueError, MemoryError, OverflowError) as exc:
        raise error(f"{_parse_failure(exc, label, 'YAML') or first_line(exc)}; {hint}") from None
