"""``napari-sam2-track dataset ...``: a dataset of many videos on a shared folder.

Subcommands: ``init``, ``add``, ``annotators``, ``move``, ``status``, ``assign``, ``next``,
``stage``, ``schema``, ``export`` and ``report`` here; ``sample``, ``merge`` and ``checks`` in
:mod:`.dataset_review`. ``batch DIR`` (in :mod:`.batch`) tracks a dataset's items. See
``docs/datasets.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import dataset_review
from ._registry import command

MANIFEST_SUFFIXES = (".csv", ".yaml", ".yml")


def add_parsers(sub) -> None:
    p = sub.add_parser("dataset", help="a dataset of many videos: status, assignment, export",
                       description="Datasets: many videos or volumes, several annotators, one "
                       "shared folder (docs/datasets.md).")
    ds = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND")

    q = ds.add_parser("init", help="create a dataset in a folder")
    q.add_argument("dir")
    q.add_argument("--schema", help="annotation schema (YAML/JSON) shared by every item")
    q.add_argument("--name", help="the dataset's name (default: the folder's)")
    q.add_argument("--annotators", nargs="+", default=[], metavar="NAME",
                   help="people who may be assigned items")

    q = ds.add_parser("add", help="add videos or volumes (or the rows of a batch manifest)")
    q.add_argument("dir")
    q.add_argument("sources", nargs="+", metavar="VIDEO",
                   help="videos, stacks, volumes, or one CSV/YAML manifest as 'batch' reads it")
    q.add_argument("--prompts", help="prompts JSON for the videos given")
    q.add_argument("--project", help="the project of the (one) video given (default: "
                   "projects/<id>.zarr in the dataset)")
    q.add_argument("--check", action="store_true",
                   help="these items hold reference masks (check frames)")

    q = ds.add_parser("annotators", help="list or add the people of the dataset")
    q.add_argument("dir")
    q.add_argument("--add", nargs="+", default=[], metavar="NAME")

    q = ds.add_parser("move", help="an item's video or volume moved: point it at its new path")
    q.add_argument("dir")
    q.add_argument("item")
    q.add_argument("source")

    q = ds.add_parser("status", help="per item: stage, people, progress, QC coverage; totals, ETA")
    q.add_argument("dir")
    q.add_argument("--json", action="store_true", help="print JSON")

    q = ds.add_parser("assign", help="assign items to an annotator (or reviewer)")
    q.add_argument("dir")
    q.add_argument("--annotator", metavar="NAME")
    how = q.add_mutually_exclusive_group(required=True)
    how.add_argument("--items", nargs="+", metavar="ID")
    how.add_argument("--count", type=int, metavar="N", help="the first N items nobody holds")
    how.add_argument("--round-robin", nargs="+", metavar="NAME",
                     help="deal every item nobody holds to these people in turn")
    q.add_argument("--reviewer", action="store_true", help="assign as reviewer, not annotator")
    q.add_argument("--by", help="who assigns (default: $NAPARI_SAM2_TRACK_REVIEWER or the user)")

    q = ds.add_parser("next", help="the next item to work on (assigned to you if it was free)")
    q.add_argument("dir")
    q.add_argument("--annotator", required=True, metavar="NAME")
    q.add_argument("--review", action="store_true", help="the next item to review")
    q.add_argument("--no-claim", action="store_true", help="do not take a free item")
    q.add_argument("--open", action="store_true", help="open it in napari ('annotate')")
    q.add_argument("--json", action="store_true", help="print JSON")

    q = ds.add_parser("stage", help="record an item's stage (who moved it, when)")
    q.add_argument("dir")
    q.add_argument("item")
    q.add_argument("stage", help="new, prompted, tracked, in_review, verified or returned")
    q.add_argument("--who", required=True, metavar="NAME")
    q.add_argument("--note", default="")
    q.add_argument("--history", action="store_true", help="print the item's history after")

    q = ds.add_parser("schema", help="the schema version; --set makes a new one")
    q.add_argument("dir")
    q.add_argument("--set", metavar="SCHEMA", help="YAML/JSON schema to make the next version")

    q = ds.add_parser("export", help="export every tracked (or verified) item, split into sets")
    q.add_argument("dir")
    q.add_argument("--format", "-f", required=True)
    q.add_argument("--out", required=True, help="output folder (outside the dataset)")
    q.add_argument("--verified-only", action="store_true", help="only verified items")
    q.add_argument("--split", help="sets of items, e.g. train=0.8,val=0.2 (default: one set 'all')")
    q.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    q.add_argument("--overwrite", action="store_true", help="replace a previous dataset export")

    q = ds.add_parser("report", help="progress, analytics per annotator, agreement, check frames")
    q.add_argument("dir")
    fmt = q.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--html", metavar="FILE")
    dataset_review.add_parsers(ds)  # sample, merge, checks


def _open(args):
    from ..dataset import Dataset

    return Dataset.open(args.dir)


def _init(args) -> int:
    from ..dataset import Dataset

    ds = Dataset.init(args.dir, args.schema, name=args.name, annotators=args.annotators)
    print(f"created dataset {ds.name} in {ds.folder} (schema version 1)")
    return 0


def _add(args) -> int:
    ds = _open(args)
    sources = [Path(s) for s in args.sources]
    if len(sources) == 1 and sources[0].suffix.lower() in MANIFEST_SUFFIXES and sources[0].is_file():
        from ..distributed.manifest import load_manifest

        if args.prompts or args.project:
            from ..dataset import DatasetError

            raise DatasetError("--prompts and --project go with videos; a manifest names them "
                               "per row (prompts, out)")
        rows = load_manifest(sources[0], ds.folder / "projects")
        bad = next((r for r in rows if r.error), None)
        if bad is not None:
            from ..dataset import DatasetError

            raise DatasetError(f"{sources[0]}: {bad.error}; nothing was added")
        entries = [{"source": r.item.video, "prompts": r.item.prompts, "id": None,
                    "project": r.out if r.item.out else None, "check": args.check} for r in rows]
        for entry, row in zip(entries, rows):
            if row.item.name and row.item.name != Path(row.item.video).stem:
                entry["id"] = row.item.name
    else:
        if args.project and len(sources) > 1:
            from ..dataset import DatasetError

            raise DatasetError("--project names the project of one video; give one video")
        entries = [{"source": s, "prompts": args.prompts, "check": args.check,
                    "project": args.project} for s in sources]
    items = ds.add_many(entries)
    for item in items:
        print(f"added {item.id}: {item.source} -> {item.project}")
    return 0


def _annotators(args) -> int:
    ds = _open(args)
    names = ds.add_annotators(args.add) if args.add else ds.annotators
    print("\n".join(names) if names else "no annotators yet; add them with --add NAME")
    return 0


def _move(args) -> int:
    item = _open(args).move(args.item, args.source)
    print(f"{item.id}: {item.source}")
    return 0


def _status(args) -> int:
    from ..dataset.status import status, status_table

    result = status(_open(args))
    print(json.dumps(result, indent=1) if args.json else status_table(result))
    return 0


def _assign(args) -> int:
    from ..dataset.status import assign

    pairs = assign(_open(args), annotator=args.annotator, items=args.items, count=args.count,
                   round_robin=args.round_robin, role="reviewer" if args.reviewer else "annotator",
                   by=args.by)
    role = "reviewer" if args.reviewer else "annotator"
    for item_id, who in pairs:
        print(f"{item_id}: {role} {who}")
    return 0


def _next(args) -> int:
    from ..dataset.status import next_item

    ds = _open(args)
    row = next_item(ds, args.annotator, review=args.review, claim=not args.no_claim)
    if row is None:
        print(f"nothing to {'review' if args.review else 'do'} for {args.annotator}")
        return 0
    item = ds.item(row["id"])
    if args.json:
        print(json.dumps({**row, "source": str(item.source), "project": str(item.project)}))
    else:
        print(f"{item.id}  {row['stage'].replace('_', ' ')}  {item.source}  {item.project}")
    if args.open:
        open_in_napari(ds, item)
    return 0


def open_in_napari(ds, item) -> None:
    """Open the item as ``annotate`` does (its video, its project, the dataset's schema for a
    new project) and wait until napari closes. The project, created when it opens, is claimed
    for the dataset at once (and again at the end, if the annotator made it later)."""
    from .annotate import open_annotation_viewer

    import napari

    open_annotation_viewer(item.source, project=item.project,
                           schema=ds.schema_path() if not item.project.exists() else None)
    try:
        if item.project.exists():
            ds.claim_project(item)
        napari.run()
    finally:
        if item.project.exists():
            ds.claim_project(item)


def _stage(args) -> int:
    ds = _open(args)
    record = ds.record_stage(args.item, args.stage, args.who, args.note)
    print(f"{record.item}: {record.stage.replace('_', ' ')} by {record.who} at "
          f"{record.time.isoformat(timespec='seconds')}")
    if args.history:
        for r in ds.history(args.item):
            how = "project" if r.derived else (r.who or "?")
            print(f"  {r.time.isoformat(timespec='seconds')}  {r.stage:<10} {how}  {r.note}")
    return 0


def _schema(args) -> int:
    ds = _open(args)
    if args.set:
        version = ds.set_schema(args.set)
        print(f"schema version {version}")
    else:
        print(f"schema version {ds.schema_version}")
    outdated = ds.outdated_projects()
    for item_id, version in outdated:
        made = f"version {version}" if version is not None else "a schema of no version"
        print(f"{item_id}: made with {made}")
    if args.set and not outdated:
        print("no project was made with an older version")
    return 0


def _export(args) -> int:
    from ..dataset.export import export_dataset
    from .export import _warnings_as_lines

    def progress(item_id: str, done: int, total: int) -> None:
        print(f"exported {item_id} ({done}/{total})", file=sys.stderr)

    with _warnings_as_lines():
        manifest = export_dataset(_open(args), args.format, args.out,
                                  verified_only=args.verified_only, split=args.split,
                                  seed=args.seed, overwrite=args.overwrite, progress=progress)
    sets: dict[str, int] = {}
    for entry in manifest["items"]:
        sets[entry["split"]] = sets.get(entry["split"], 0) + 1
    print(f"wrote {args.out} ({', '.join(f'{k}: {v} items' for k, v in sets.items())})")
    return 0


def _report(args) -> int:
    from ..dataset.report import main as report_main

    return report_main(_open(args), json_out=args.json, html=args.html)


SUBCOMMANDS = {"init": _init, "add": _add, "annotators": _annotators, "move": _move,
               "status": _status, "assign": _assign, "next": _next, "stage": _stage,
               "schema": _schema, "export": _export, "report": _report}
SUBCOMMANDS.update(dataset_review.SUBCOMMANDS)  # sample, merge, checks


@command("dataset")
def cmd_dataset(args: argparse.Namespace) -> int:
    from ._registry import EXIT_USER_ERROR

    if args.dataset_command is None:
        print(f"usage: napari-sam2-track dataset SUBCOMMAND ... ({', '.join(SUBCOMMANDS)})",
              file=sys.stderr)
        return EXIT_USER_ERROR
    return SUBCOMMANDS[args.dataset_command](args)
