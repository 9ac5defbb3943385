"""``dataset sample``, ``dataset merge`` and ``dataset checks``: the verification side of a
dataset (``docs/datasets_review.md``). Wired into ``napari-sam2-track dataset`` by :mod:`.dataset`."""

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

    q = ds.add_parser("sample", help="draw the sampled-QC frames of every masklet of an item")
    q.add_argument("dir")
    q.add_argument("item")
    q.add_argument("--reviewer", help="the verifier (default: $NAPARI_SAM2_TRACK_REVIEWER or the user)")
    size = q.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, help="frames per masklet (default: the schema's review.sample_size)")
    size.add_argument("--fraction", type=float, help="fraction of each masklet's frames")
    q.add_argument("--seed", type=int, help="the item's seed (default: a random one; each sample records its own)")
    q.add_argument("--new", action="store_true", help="draw new samples even where one exists")
    q.add_argument("--json", action="store_true", help="print JSON")

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


def _sample(args: argparse.Namespace) -> int:
    import json

    from ..dataset import Dataset
    from ..dataset.sampling import sample_item
    from .review import reviewer_of

    ds = Dataset.open(args.dir)
    samples = sample_item(ds, args.item, reviewer=reviewer_of(args), size=args.size,
                          fraction=args.fraction, seed=args.seed, redraw=args.new)
    project = ds.item(args.item).project
    if args.json:
        print(json.dumps([{"sample": s.id, "object": s.object, "start": s.start, "end": s.end,
                           "seed": s.seed, "frames": s.frames} for s in samples], indent=2))
        return 0
    for s in samples:
        print(f"object {s.object} frames {s.start}-{s.end}: sample {s.id}, frames {' '.join(map(str, s.frames))}")
    print(f"judge each: napari-sam2-track review approve|reject {project} OBJ --frame F")
    return 0


SUBCOMMANDS = {"sample": _sample, "merge": _merge, "checks": _checks}
