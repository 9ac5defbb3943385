"""The ``napari-sam2-track`` command: one module per subcommand, registered here.

User errors (:class:`~napari_sam2_track.errors.Sam2TrackError`) and failures of the file system
(``OSError``: full disk, permissions, read-only folders) print one line of at most
:data:`~napari_sam2_track.errors.MAX_LINE` characters and exit with status 2; no traceback.
SIGTERM ends a command like Ctrl-C, so locks are given back and runs recorded.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from ..errors import Sam2TrackError, describe_os_error, one_line
from ._registry import COMMANDS, EXIT_USER_ERROR

#: Subcommand modules, each with ``add_parsers(subparsers)`` and ``@command`` handlers.
SUBCOMMAND_MODULES = ("track", "info", "export", "review", "batch", "annotate", "dataset")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command's parser. When ``argv`` starts with the name of a subcommand module
    (``dataset ...``), only that module's parsers are built, so a quick command does not pay
    for the imports of the others (export formats, samples)."""
    parser = argparse.ArgumentParser(
        prog="napari-sam2-track",
        description="Video annotation with SAM 2: track, inspect, export.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    first = argv[0] if argv else None
    for name in (first,) if first in SUBCOMMAND_MODULES else SUBCOMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-sam2-track`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.version:
        from .._version import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    with warnings.catch_warnings():
        shown: set[str] = set()  # a log read twice by one command is named once
        warnings.showwarning = functools.partial(_show_warning, shown)
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return COMMANDS[args.command](args)
        except Sam2TrackError as exc:
            print(f"error: {one_line(str(exc))}", file=sys.stderr)
            return EXIT_USER_ERROR
        except OSError as exc:
            print(f"error: {one_line(describe_os_error(exc))}", file=sys.stderr)
            return EXIT_USER_ERROR
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def _show_warning(shown: set[str], message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from the package as one ``note:`` or ``warning:`` line, each once per command
    (``shown``); others as usual."""
    from ..errors import Sam2TrackWarning
    from ..project.lock import StaleLockWarning

    if issubclass(category, (Sam2TrackWarning, StaleLockWarning)):
        kind = "note" if issubclass(category, StaleLockWarning) else "warning"
        text = f"{kind}: {one_line(str(message))}"
        if text not in shown:
            shown.add(text)
            print(text, file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
