"""Command line: ``napari-sam2-track review ...`` and ``napari-sam2-track report ...``.

``review PROJECT`` lists flags and masklets with their QC status; ``review approve|reject
PROJECT OBJ [--frames A-B | --frame F]`` records decisions (without the project's write lock);
``review sample PROJECT OBJ`` draws the frames of a sampled QC and ``review verdict PROJECT
[OBJ]`` shows where it stands; ``review history|restore PROJECT OBJ`` lists and restores track
versions; ``report PROJECT`` prints annotator analytics.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys

from ._registry import EXIT_INTERRUPTED, command
from ..errors import ReviewError, summarize_list

ACTIONS = ("approve", "reject")
SAMPLED = ("sample", "verdict")
VERSION_ACTIONS = ("history", "restore")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "review",
        help="list flags and masklets with QC status, or approve/reject a masklet",
        description="review PROJECT.zarr [--json]  |  review approve|reject PROJECT.zarr OBJ "
                    "[--frames A-B | --frame F] [--reviewer NAME] [--comment TEXT]  |  "
                    "review sample PROJECT.zarr OBJ [--frames A-B] [--size N | --fraction F] "
                    "[--seed S]  |  review verdict PROJECT.zarr [OBJ] [--json]  |  review history "
                    "PROJECT.zarr OBJ [--json]  |  review restore PROJECT.zarr OBJ VERSION  |  "
                    f"{SECOND_OPINION_USAGE}",
    )
    p.add_argument("target", nargs="+", metavar="[ACTION] PROJECT [OBJ]",
                   help="a project to list; or an action, a project and an object id")
    p.add_argument("--frames", help="frame range A-B (default: each presence span of the object)")
    p.add_argument("--reviewer", help="reviewer name (default: $NAPARI_SAM2_TRACK_REVIEWER or the OS user)")
    p.add_argument("--comment", default="", help="comment stored with the decision")
    p.add_argument("--object", type=int, help="list only this object")
    p.add_argument("--json", action="store_true", help="print JSON")
                    "[--frames A-B | --frame F] [--reviewer NAME] [--comment TEXT]  |  "
                    "review sample PROJECT.zarr OBJ [--frames A-B] [--size N | --fraction F] "
                    "[--seed S]  |  review verdict PROJECT.zarr [OBJ] [--json]  |  review history "
                    "PROJECT.zarr OBJ [--json]  |  review restore PROJECT.zarr OBJ VERSION  |  "
                    f"{SECOND_OPINION_USAGE}",

    p = sub.add_parser("report", help="annotator analytics beside the SAM 2 paper's reference rows")
    p.add_argument("project", help="PROJECT.zarr")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    p.add_argument("--idle", type=float, help="idle gap in seconds (default: the schema's review.idle_seconds)")


def parse_frames(text: str) -> tuple[int, int]:
    """``"A-B"`` (or ``"A"``) as a frame range."""
    try:
        parts = [int(x) for x in text.split("-")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise ReviewError(f"--frames {text!r} is not a range like 120-480")
    return (parts[0], parts[-1])


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    """The switches of sampled QC (``docs/review.md``, "Sampled QC")."""
    p.add_argument("--frame", type=int, help="approve/reject: one frame of the masklet's sample")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, help="sample: frames to draw (default: the schema's review.sample_size)")
    size.add_argument("--fraction", type=float, help="sample: fraction of the masklet's frames to draw")
    p.add_argument("--seed", type=int, help="sample: seed of the random draw (default: a random one, recorded)")
    p.add_argument("--new", action="store_true", help="sample: draw a new sample even if one exists")


@command("review")
def cmd_review(args: argparse.Namespace) -> int:
                    "[--frames A-B | --frame F] [--reviewer NAME] [--comment TEXT]  |  "
                    "review sample PROJECT.zarr OBJ [--frames A-B] [--size N | --fraction F] "
                    "[--seed S]  |  review verdict PROJECT.zarr [OBJ] [--json]  |  review history "
                    "PROJECT.zarr OBJ [--json]  |  review restore PROJECT.zarr OBJ VERSION  |  "
                    f"{SECOND_OPINION_USAGE}",
    if args.target[0] in ACTIONS:
        return _decide(args)
    if args.target[0] in VERSION_ACTIONS:
        return _versions(args)
    if len(args.target) != 1:
        raise ReviewError("give one project to list, or: review approve|reject PROJECT OBJ --frames A-B")
    return _list(args.target[0], args)


def _decide(args: argparse.Namespace) -> int:
    from ..review.models import utf8_text
    from ..review.qc import decide, masklets, require_object
    from ..project import ProjectStore

    if len(args.target) != 3:
        raise ReviewError(f"usage: review {args.target[0]} PROJECT OBJ [--frames A-B]")
    action, project, obj = args.target
    try:
        obj_id = int(obj)
    except ValueError:
        raise ReviewError(f"object id {obj!r} is not a number") from None
    comment = utf8_text(args.comment, "--comment", "pass the comment as UTF-8 text")
    reviewer = reviewer_of(args)
    frames = parse_frames(args.frames) if args.frames is not None else None
    store = ProjectStore.open(project, mode="r")  # decisions need no write lock (docs/review.md)
    require_object(store, obj_id)
    if frames is not None:
        refuse_untracked(store, obj_id, *frames)
        ranges = [frames]
    else:
        ranges = [(m.start, m.end) for m in masklets(store, obj_id)]
        if not ranges:
            raise ReviewError(f"object {obj_id} has no visible frames; pass --frames A-B")
    status = "satisfactory" if action == "approve" else "unsatisfactory"
    for a, b in ranges:
        d = decide(store, obj_id, a, b, status, reviewer=reviewer, comment=comment)
        print(f"object {d.object} frames {d.frames}: {d.status} by {d.reviewer} at {d.time.isoformat()}")
    return 0


def reviewer_of(args: argparse.Namespace) -> str:
    """``--reviewer`` (UTF-8 text), else the default reviewer (checked there)."""
    from ..review.models import default_reviewer, utf8_text

    if args.reviewer is not None:
        return utf8_text(args.reviewer, "--reviewer", "pass the name as UTF-8 text")
    return default_reviewer()  # checked there: one line naming the variable


def refuse_untracked(store, obj_id: int, start: int, end: int) -> None:
    """A decision on frames the object was never tracked on says nothing: refuse it."""
    import numpy as np

    from ..project import STATE_NOT_RUN

    if not 0 <= start <= end < store.num_frames:
        return  # decide() says what is wrong with the range
    never = np.flatnonzero(store.states(obj_id)[start : end + 1] == STATE_NOT_RUN) + start
    if never.size:
        runs = np.split(never, np.flatnonzero(np.diff(never) != 1) + 1)
        where = summarize_list(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)
        raise ReviewError(f"object {obj_id} was never tracked on frames {where}; track them first, "
                          "or pass --frames within the frames it was tracked on")


def _list(project: str, args: argparse.Namespace) -> int:
    from ..review.flags import find_flags
    from ..review.models import read_review
    from ..review.qc import masklet_statuses
    from ..project import ProjectStore

    store = ProjectStore.open(project, mode="r")
    state = read_review(store)
    objects = None if args.object is None else [args.object]
    result = find_flags(store, reviewed=state.reviewed_ranges(), objects=objects)
    statuses = [m for m in masklet_statuses(store) if args.object is None or m["object"] == args.object]
    if args.json:
        print(json.dumps({
            "project": str(store.path),
            "masklets": statuses,
            "flags": [f.model_dump() for f in result.flags],
            "suggestions": [s.model_dump() for s in result.suggestions],
        }, indent=2))
        return 0
    print(f"project  {store.path}  ({store.num_frames} frames)")
    print(f"masklets {len(statuses)}")
    for m in statuses:
        who = f" by {m['reviewer']} at {m['time']}" if m["reviewer"] else ""
        why = f"  ({m['invalidated_by']})" if m["invalidated_by"] else ""
        comment = f"  \"{m['comment']}\"" if m["comment"] else ""
        print(f"  object {m['object']:>4}  frames {m['start']}-{m['end']:<12} {m['status']}{who}{comment}{why}")
    print(f"flags    {len(result.flags)}")
    for f in result.flags:
        print(f"  object {f.object:>4}  frames {f.frames:<14} {f.kind:<14} {f.score:6.2f}  {f.reason}")
    print(f"check    {len(result.suggestions)} frames")
    for s in result.suggestions:
        print(f"  object {s.object:>4}  frame {s.frame:<8} {s.why}")
    return 0


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    from ..review.analytics import METRICS, report, report_rows
    from ..project import ProjectStore

    if args.idle is not None and not (math.isfinite(args.idle) and args.idle > 0):
        raise ReviewError(f"--idle must be a number of seconds above 0, not {args.idle:g}")
    result = report(ProjectStore.open(args.project, mode="r"), idle_seconds=args.idle)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    rows = report_rows(result)
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=["who", *METRICS], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        return 0
    print(f"idle gaps over {result['idle_seconds']:g} s are not active time")
    print(f"{'who':<40} {'s/frame':>8} {'% edited':>9} {'clicks/clicked frame':>21} "
          f"{'corrections/object':>19} {'review s/masklet':>17} {'frames/prompt':>14}")
    for row in rows:
        cells = [row.get(k) for k in ("seconds_per_frame", "percent_frames_edited", "clicks_per_clicked_frame",
                                      "corrections_per_object", "review_seconds_per_masklet",
                                      "frames_propagated_per_prompt")]
        text = ["-" if v is None else f"{v:.2f}" for v in cells]
        print(f"{row['who']:<40} {text[0]:>8} {text[1]:>9} {text[2]:>21} {text[3]:>19} {text[4]:>17} {text[5]:>14}")
    return 0


                    "[--frames A-B | --frame F] [--reviewer NAME] [--comment TEXT]  |  "
                    "review sample PROJECT.zarr OBJ [--frames A-B] [--size N | --fraction F] "
                    "[--seed S]  |  review verdict PROJECT.zarr [OBJ] [--json]  |  review history "
                    "PROJECT.zarr OBJ [--json]  |  review restore PROJECT.zarr OBJ VERSION  |  "
                    f"{SECOND_OPINION_USAGE}",
    return 0
