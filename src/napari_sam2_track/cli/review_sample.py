"""Command line of sampled QC: ``review sample``, ``review verdict`` and ``review approve|reject
... --frame F`` (``docs/review.md``, "Sampled QC"). None of them takes the project's write lock.
"""

from __future__ import annotations

import argparse
import json
import math

from ..errors import ReviewError
from .review import parse_frames, refuse_untracked, reviewer_of


def _object(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ReviewError(f"object id {text!r} is not a number") from None


def _open(project: str):
    from ..project import ProjectStore

    return ProjectStore.open(project, mode="r")


def cmd_sample(args: argparse.Namespace) -> int:
    """``review sample PROJECT OBJ [--frames A-B] [--size N | --fraction F] [--seed S] [--new]``:
    print the masklet's current sample, or draw (and record) one."""
    from ..review.models import read_review
    from ..review.sampling import current_sample, draw_sample, masklet_of

    if len(args.target) != 3:
        raise ReviewError("usage: review sample PROJECT OBJ [--frames A-B] [--size N | --fraction F] [--seed S]")
    _, project, obj = args.target
    obj_id = _object(obj)
    if args.fraction is not None and not (math.isfinite(args.fraction) and 0 < args.fraction <= 1):
        raise ReviewError(f"--fraction must be above 0 and at most 1, not {args.fraction:g}")
    if args.size is not None and args.size < 1:
        raise ReviewError(f"--size must be at least 1, not {args.size}")
    reviewer = reviewer_of(args)
    store = _open(project)
    frames = parse_frames(args.frames) if args.frames is not None else None
    a, b = masklet_of(store, obj_id, frames=frames)
    asked = args.new or args.size is not None or args.fraction is not None or args.seed is not None
    sample = None if asked else current_sample(read_review(store), obj_id, a, b)
    if sample is None:
        refuse_untracked(store, obj_id, a, b)
        from ..dataset.checks import hidden_frames

        sample = draw_sample(store, obj_id, a, b, size=args.size, fraction=args.fraction,
                             seed=args.seed, reviewer=reviewer,
                             extra_frames=hidden_frames(store.path, obj_id, a, b))
    if args.json:
        print(json.dumps({"sample": sample.id, "object": sample.object, "start": sample.start,
                          "end": sample.end, "seed": sample.seed, "frames": sample.frames,
                          "rule": sample.rule}, indent=2))
        return 0
    print(f"object {sample.object} frames {sample.start}-{sample.end}: sample {sample.id} (seed {sample.seed}), "
          f"{len(sample.frames)} frames to judge; satisfactory when at least {sample.rule:.0%} pass")
    print("frames " + " ".join(map(str, sample.frames)))
    if store.is_volume:  # --frame takes plane indices: say where each one is
        from ..review.volume_flags import where

        print("planes " + ", ".join(f"{p} = {where(store, p, p)}" for p in sample.frames))
    print(f"judge each: review approve|reject {project} {obj_id} --frame F")
    return 0


def cmd_verdict(args: argparse.Namespace) -> int:
    """``review verdict PROJECT [OBJ] [--json]``: where each masklet's latest sample stands."""
    from ..review.sampling import verdicts

    if len(args.target) not in (2, 3):
        raise ReviewError("usage: review verdict PROJECT [OBJ] [--json]")
    store = _open(args.target[1])
    obj_id = _object(args.target[2]) if len(args.target) == 3 else None
    if obj_id is not None:
        from ..review.qc import require_object

        require_object(store, obj_id)
    results = verdicts(store, obj_id)
    if args.json:
        print(json.dumps([v.as_dict() for v in results], indent=2))
        return 0
    if not results:
        print("no samples drawn yet: review sample PROJECT OBJ")
    for v in results:
        judged = len(v.passed) + len(v.failed)
        print(f"object {v.object} frames {v.start}-{v.end}: {v.status}  ({len(v.passed)} of {judged} judged "
              f"frames pass, {len(v.pending)} pending, rule {v.rule:.0%}; sample {v.sample})")
        if v.failed:
            print(f"  failed frames {' '.join(map(str, v.failed))}")
        if v.pending:
            print(f"  to judge      {' '.join(map(str, v.pending))}")
    return 0


def judge(args: argparse.Namespace) -> int:
    """``review approve|reject PROJECT OBJ --frame F``: judge one sampled frame."""
    from ..review.models import utf8_text
    from ..review.sampling import judge_frame

    if len(args.target) != 3:
        raise ReviewError(f"usage: review {args.target[0]} PROJECT OBJ --frame F")
    if args.frames is not None:
        raise ReviewError("give --frame F (one sampled frame) or --frames A-B (a masklet), not both")
    action, project, obj = args.target
    obj_id = _object(obj)
    comment = utf8_text(args.comment, "--comment", "pass the comment as UTF-8 text")
    reviewer = reviewer_of(args)
    store = _open(project)
    status = "satisfactory" if action == "approve" else "unsatisfactory"
    d, v = judge_frame(store, obj_id, args.frame, status, reviewer=reviewer, comment=comment)
    print(f"object {d.object} frame {d.start}: {d.status} by {d.reviewer} at {d.time.isoformat()}")
    judged = len(v.passed) + len(v.failed)
    if v.status == "pending":
        print(f"sample {v.sample}: {len(v.pending)} frames left to judge ({' '.join(map(str, v.pending))})")
    else:
        print(f"object {v.object} frames {v.start}-{v.end}: {v.status} ({len(v.passed)} of {judged} sampled "
              f"frames pass, rule {v.rule:.0%})")
    return 0
