"""The ``napari-sam2-track`` command: one module per subcommand, registered here.

User errors (:class:`~napari_sam2_track.errors.Sam2TrackError`) print one line and exit with
status 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import Sam2TrackError
from ._registry import COMMANDS, EXIT_USER_ERROR

#: Subcommand modules, each with ``add_parsers(subparsers)`` and ``@command`` handlers.
SUBCOMMAND_MODULES = ("track", "info", "export", "annotate", "batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sam2-track",
        description="Video annotation with SAM 2: track, inspect, export.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-sam2-track`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return COMMANDS[args.command](args)
    except Sam2TrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
