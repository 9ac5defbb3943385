"""``dataset merge`` and ``dataset checks``: the verification side of a dataset
(``docs/datasets.md``). Wired into ``napari-sam2-track dataset`` by :mod:`.dataset`."""

from __future__ import annotations

import argparse


def add_parsers(ds) -> None:
    """Add the subcommands to the ``dataset`` subparsers ``ds``."""
    q = ds.add_parser("merge", help="merge two annotators' copies of an item, choosing per object")
    q.add_argument("dir")
    q.add_argument("item")
    q.add_argument("--take", required=True, metavar="OBJ=ANNOTATOR,...",
                   help="whose copy each object comes from, e.g. 1=ann,2=bob")
    q.add_argument("--rest", metavar="ANNOTATOR", help="take the objects --take does not name from this copy")
    q.add_argument("--out", help="write the merged project here (default: the item's project)")
    q.add_argument("--overwrite", action="store_true", help="replace a project at --out")

    q = ds.add_parser("checks", help="import reference masks of an item as its check frames")
    q.add_argument("dir")
    q.add_argument("item")
    q.add_argument("reference", help="annotations in any format 'import' reads")
    q.add_argument("--format", "-f", help="the reference's format (default: guessed)")
    q.add_argument("--frames", help="check frames, e.g. 10,250,900 (default: every annotated frame)")


def _merge(args: argparse.Namespace) -> int:
    from ..dataset import Dataset
    from ..dataset.agreement import merge_item, parse_take

    ds = Dataset.open(args.dir)
    store = merge_item(ds, args.item, parse_take(args.take), rest=args.rest, out=args.out,
                       overwrite=args.overwrite)
    store.close()
    print(f"merged item {args.item} into {store.path} "
          f"({', '.join(f'{o}: {w}' for o, w in sorted(parse_take(args.take).items()))}"
          f"{f', others: {args.rest}' if args.rest else ''})")
    return 0


def _checks(args: argparse.Namespace) -> int:
    from ..dataset import Dataset, DatasetError
    from ..dataset.checks import checks_path, import_checks

    ds = Dataset.open(args.dir)
    item = ds.item(args.item)
    frames = None
    if args.frames is not None:
        try:
            frames = [int(f) for f in args.frames.split(",") if f.strip()]
        except ValueError:
            raise DatasetError(f"--frames {args.frames!r} is not a list of frames like 10,250,900") from None
    shape = None
    if item.project.exists():
        from ..project import ProjectStore

        shape = ProjectStore.open(item.project, mode="r").shape
    checks = import_checks(ds.folder, item.id, args.reference, fmt=args.format, frames=frames, shape=shape)
    print(f"{len(checks.frames)} check frames of item {item.id} in {checks_path(ds.folder, item.id)}")
    return 0


SUBCOMMANDS = {"merge": _merge, "checks": _checks}
