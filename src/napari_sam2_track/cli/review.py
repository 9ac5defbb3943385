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
                    "[--frames A-B | --frame F | --t A-B --z C-D] [--reviewer NAME] [--comment TEXT]  |  "
                    "review sample PROJECT.zarr OBJ [--frames A-B] [--size N | --fraction F] "
                    "[--seed S]  |  review verdict PROJECT.zarr [OBJ] [--json]  |  review history "
                    "PROJECT.zarr OBJ [--json]  |  review restore PROJECT.zarr OBJ VERSION  |  "
                    f"{SECOND_OPINION_USAGE}",
    )
    p.add_argument("target", nargs="+", metavar="[ACTION] PROJECT [OBJ]",
                   help="a project to list; or an action, a project and an object id")
    p.add_argument("--frames", help="frame range A-B (default: each presence span of the object); "
                   "for a volume project, plane indices t*Z+z")
    p.add_argument("--t", dest="t_range", metavar="A-B",
                   help="volume projects: timepoints A-B of the decision (default: all, with --z)")
    p.add_argument("--z", dest="z_range", metavar="C-D",
                   help="volume projects: slices C-D of the decision (default: all, with --t)")
    p.add_argument("--reviewer", help="reviewer name (default: $NAPARI_SAM2_TRACK_REVIEWER or the OS user)")
    p.add_argument("--comment", default="", help="comment stored with the decision")
    p.add_argument("--object", type=int, help="list only this object")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_sample_arguments(p)
    add_second_opinion_options(p)

    p = sub.add_parser("report", help="annotator analytics beside the SAM 2 paper's reference rows")
    p.add_argument("project", help="PROJECT.zarr")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    p.add_argument("--idle", type=float, help="idle gap in seconds (default: the schema's review.idle_seconds)")


def parse_frames(text: str, option: str = "--frames", example: str = "120-480") -> tuple[int, int]:
    """``"A-B"`` (or ``"A"``) as a frame range."""
    try:
        parts = [int(x) for x in text.split("-")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise ReviewError(f"{option} {text!r} is not a range like {example}")
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
    if args.target[0] in SECOND_OPINION_ACTIONS:
        return second_opinion_command(args)
    if args.target[0] in SAMPLED:
        from .review_sample import cmd_sample, cmd_verdict

        return (cmd_sample if args.target[0] == "sample" else cmd_verdict)(args)
    if args.target[0] in ACTIONS and args.frame is not None:
        from .review_sample import judge

        return judge(args)
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
    box = getattr(args, "t_range", None) is not None or getattr(args, "z_range", None) is not None
    if box and frames is not None:
        raise ReviewError("give --frames A-B or --t A-B/--z C-D, not both")
    store = ProjectStore.open(project, mode="r")  # decisions need no write lock (docs/review.md)
    require_object(store, obj_id)
    status = "satisfactory" if action == "approve" else "unsatisfactory"
    if box:
        return _decide_box(store, obj_id, args, status, reviewer, comment)
    if frames is not None:
        refuse_untracked(store, obj_id, *frames)
        ranges = [frames]
    else:
        ranges = [(m.start, m.end) for m in masklets(store, obj_id)]
        if not ranges:
            raise ReviewError(f"object {obj_id} has no visible frames; pass --frames A-B")
    for a, b in ranges:
        d = decide(store, obj_id, a, b, status, reviewer=reviewer, comment=comment)
        print(f"object {d.object} {_where(store, d.start, d.end)}: {d.status} by {d.reviewer} "
              f"at {d.time.isoformat()}")
    return 0


def _where(store, start: int, end: int) -> str:
    from ..review.volume_flags import where

    return where(store, start, end) if store.is_volume else f"frames {start}-{end}"


def _decide_box(store, obj_id: int, args: argparse.Namespace, status: str, reviewer: str,
                comment: str) -> int:
    """``approve|reject PROJECT OBJ --t A-B --z C-D`` on a volume project: one decision per
    timepoint of the box (plane ranges)."""
    from ..review.qc import box_ranges, decide_box

    t_range = parse_frames(args.t_range, "--t", "0-4") if args.t_range is not None else None
    z_range = parse_frames(args.z_range, "--z", "10-30") if args.z_range is not None else None
    for a, b in box_ranges(store, t_range, z_range):  # refused before anything is written
        refuse_untracked(store, obj_id, a, b)
    for d in decide_box(store, obj_id, t_range, z_range, status, reviewer=reviewer, comment=comment):
        print(f"object {d.object} {_where(store, d.start, d.end)} (planes {d.frames}): {d.status} "
              f"by {d.reviewer} at {d.time.isoformat()}")
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
    from ..review.volume_flags import plane_fields, where
    from ..project import ProjectStore

    store = ProjectStore.open(project, mode="r")
    state = read_review(store)
    objects = None if args.object is None else [args.object]
    result = find_flags(store, reviewed=state.reviewed_ranges(), objects=objects)
    statuses = [m for m in masklet_statuses(store) if args.object is None or m["object"] == args.object]
    if args.json:  # volumes: each range also as (t, z) (plane indices stay)
        print(json.dumps({
            "project": str(store.path),
            "masklets": [{**m, **plane_fields(store, m["start"], m["end"])} for m in statuses],
            "flags": [{**f.model_dump(), **plane_fields(store, f.start, f.end)} for f in result.flags],
            "suggestions": [{**s.model_dump(), **plane_fields(store, s.frame, s.frame)}
                            for s in result.suggestions],
        }, indent=2))
        return 0
    t_n, z_n = store.volume_shape[:2]
    size = f"{t_n} timepoints x {z_n} slices" if store.is_volume else f"{store.num_frames} frames"
    print(f"project  {store.path}  ({size})")
    print(f"masklets {len(statuses)}")
    for m in statuses:
        who = f" by {m['reviewer']} at {m['time']}" if m["reviewer"] else ""
        why = f"  ({m['invalidated_by']})" if m["invalidated_by"] else ""
        comment = f"  \"{m['comment']}\"" if m["comment"] else ""
        at = (f"{where(store, m['start'], m['end']):<19}" if store.is_volume
              else f"frames {m['start']}-{m['end']:<12}")
        print(f"  object {m['object']:>4}  {at} {m['status']}{who}{comment}{why}")
    print(f"flags    {len(result.flags)}")
    for f in result.flags:
        at = f"{where(store, f.start, f.end):<21}" if store.is_volume else f"frames {f.frames:<14}"
        print(f"  object {f.object:>4}  {at} {f.kind:<14} {f.score:6.2f}  {f.reason}")
    print(f"check    {len(result.suggestions)} {'planes' if store.is_volume else 'frames'}")
    for s in result.suggestions:
        at = f"{where(store, s.frame, s.frame):<14}" if store.is_volume else f"frame {s.frame:<8}"
        print(f"  object {s.object:>4}  {at} {s.why}")
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


# ------------------------------------------------------------------ track versions
def _int_arg(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ReviewError(f"{what} {text!r} is not a number") from None


def _versions(args: argparse.Namespace) -> int:
    """``review history PROJECT OBJ [--json]`` and ``review restore PROJECT OBJ VERSION``."""
    from ..project import ProjectStore
    from ..project.versions import list_versions, restore_version
    from ..review.qc import require_object

    action = args.target[0]
    wanted = 3 if action == "history" else 4
    if len(args.target) != wanted:
        raise ReviewError("usage: review history PROJECT OBJ [--json]" if action == "history"
                          else "usage: review restore PROJECT OBJ VERSION")
    obj_id = _int_arg(args.target[2], "object id")
    if action == "history":
        store = ProjectStore.open(args.target[1], mode="r")
        require_object(store, obj_id)
        versions = list_versions(store, obj_id)
        if args.json:
            print(json.dumps([v.as_json() for v in versions], indent=2))
            return 0
        if not versions:
            print(f"object {obj_id} has no versions")
        for v in versions:
            frames = summarize_list(f"{a}-{b}" if a != b else f"{a}" for a, b in v.frames) or "-"
            print(f"{v.number:>5}  {v.kind:<11} {v.time:<26} {v.who:<12} frames {frames:<16} "
                  f"{v.bytes:>9} B  {v.what}")
        return 0
    number = _int_arg(args.target[3], "version")
    store = ProjectStore.open(args.target[1], command="napari-sam2-track review restore")
    try:
        require_object(store, obj_id)
        reviewer = args.reviewer
        info = restore_version(store, obj_id, number, who=reviewer)
    finally:
        store.close()
    print(f"object {obj_id} restored to before version {number} (frames "
          f"{summarize_list(f'{a}-{b}' for a, b in info.frames) or 'none changed'}); "
          f"this restore is version {info.number}")
    return 0


# ------------------------------------------------------------------- second opinion
SECOND_OPINION_ACTIONS = ("second-opinion", "adopt")
SECOND_OPINION_USAGE = ("review second-opinion PROJECT.zarr --model M2 [--image-size N] [--device D] "
                        "[--name NAME] [--overwrite] [--video PATH]  |  review adopt PROJECT.zarr OBJ "
                        "--frames A-B [--name NAME]")


def add_second_opinion_options(p: argparse.ArgumentParser) -> None:
    """Options of ``review second-opinion`` and ``review adopt``."""
    g = p.add_argument_group("second opinion (review second-opinion | adopt)")
    g.add_argument("--model", help="the second model: tiny|small|base-plus|large, a Hugging Face id "
                   "or a local .pt checkpoint")
    g.add_argument("--config", help="sam2 config of the second model (default: inferred)")
    g.add_argument("--image-size", type=int, help="input size of the second model, e.g. 512")
    g.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]|mps (default: auto)")
    g.add_argument("--name", help="name of the second opinion (default: the model's name and input "
                   "size); adopt: which one (default: the most recent)")
    g.add_argument("--overwrite", action="store_true", help="replace a second opinion of the same name")
    g.add_argument("--video", help="the project's video, if it moved since it was tracked")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def second_opinion_command(args: argparse.Namespace) -> int:
    """``review second-opinion PROJECT --model M2`` or ``review adopt PROJECT OBJ --frames A-B``."""
    if args.target[0] == "adopt":
        return _adopt(args)
    if len(args.target) != 2:
        raise ReviewError(f"usage: {SECOND_OPINION_USAGE.split('  |  ')[0]}")
    if not args.model:
        raise ReviewError("review second-opinion needs --model M2 (the model to compare with)")
    from ..engine.spec import ModelSpec
    from ..project import ProjectStore
    from ..review.second_opinion import (check_can_run, check_name, image_size_note, opinion_info,
                                         opinion_name, project_source, run_second_opinion)

    # the project's write lock first: a running propagation is named before a model loads
    with ProjectStore.open(args.target[1], command="review second-opinion") as store:
        if args.name is not None:
            check_can_run(store, check_name(args.name), overwrite=args.overwrite)
        source = project_source(store, args.video)
        try:
            model = ModelSpec(model=args.model, config=args.config, device=args.device,
                              image_size=args.image_size).load()
            name = check_name(args.name or opinion_name(model))
            check_can_run(store, name, overwrite=args.overwrite)
            note = image_size_note(store, model)
            if note:
                print(f"note: {note}", file=sys.stderr)
            _run_second_opinion(run_second_opinion(store, source, model, name=name,
                                                   overwrite=args.overwrite), args.quiet)
        except KeyboardInterrupt:
            print(f"\ninterrupted; no second opinion was stored and {store.path} is unchanged",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            source.close()
        info = opinion_info(store, name)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"second opinion {info['name']!r}: {info['model']} @ {info['image_size']} px, stored in "
          f"{store.path / 'second_opinion' / info['name']}")
    for obj, counts in info["objects"].items():
        print(f"  object {obj:>4}  {counts['disagreeing']} of {counts['compared']} frames compared "
              f"disagree (IoU < {info['threshold']:g} or presence differs)")
    return 0


def _run_second_opinion(progress, quiet: bool) -> None:
    bar = None
    try:
        for p in progress:
            if bar is None and not quiet:
                from tqdm import tqdm

                bar = tqdm(total=p.total, unit="frame", desc="second opinion")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _adopt(args: argparse.Namespace) -> int:
    from ..project import ProjectStore
    from ..review.adopt import adopt

    if len(args.target) != 3 or args.frames is None:
        raise ReviewError(f"usage: {SECOND_OPINION_USAGE.split('  |  ')[1]}")
    try:
        obj_id = int(args.target[2])
    except ValueError:
        raise ReviewError(f"object id {args.target[2]!r} is not a number") from None
    start, end = parse_frames(args.frames)
    with ProjectStore.open(args.target[1], command="review adopt") as store:
        first, last = adopt(store, obj_id, start, end, name=args.name)
    print(f"object {obj_id} frames {first}-{last}: the second opinion's masks adopted "
          "(undo restores the previous ones)")
    return 0
