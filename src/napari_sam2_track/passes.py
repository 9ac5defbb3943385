"""What a propagation request means: its passes, and the frames a correction affects.

Pure rules over keyframes (an object's prompted frames), shared by the engine
(:meth:`~.engine.tracker.StreamingTracker.plan`), the interactive session (which refuses a bad
request before any work starts), the pipeline and the review package (undo segments). Nothing
here touches a model, a store or Qt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from .errors import PromptError, summarize_list

__all__ = ["Direction", "Pass", "Plan", "correction_range", "plan_passes"]

Direction = Literal["forward", "backward", "both"]


class Pass(NamedTuple):
    """One sweep over the video: ``frames`` in the order computed; ``entry[obj]`` is the frame
    where the object joins the sweep (one of its own keyframes)."""

    reverse: bool
    frames: list[int]
    entry: dict[int, int]

    def objects_on(self, t: int) -> list[int]:
        """The objects tracked on frame ``t`` of this pass."""
        return [o for o, e in self.entry.items() if (t <= e if self.reverse else t >= e)]

    def stop(self, obj_id: int) -> None:
        """Track ``obj_id`` on no later frame of this pass (an early stop: the frames the
        pass still has to compute no longer ask for it; :meth:`Plan.ranges` forgets it)."""
        self.entry.pop(obj_id, None)


@dataclass(frozen=True)
class Plan:
    """A checked propagation request: the resolved range, the objects and the passes."""

    direction: Direction
    start: int
    end: int
    objects: list[int]
    passes: list[Pass]

    @property
    def total(self) -> int:
        """Frames the run computes (a frame computed by two passes counts twice)."""
        return sum(len(p.frames) for p in self.passes)

    def ranges(self) -> list[tuple[int, int, int]]:
        """``(object, first, last)``: the frames each object's masks are written on."""
        out = []
        for p in self.passes:
            last = p.frames[-1]
            for obj, e in p.entry.items():
                out.append((obj, last, e) if p.reverse else (obj, e, last))
        return out


def plan_passes(
    keyframes: Mapping[int, Iterable[int]],
    num_frames: int,
    direction: str = "both",
    start: int | None = None,
    end: int | None = None,
    obj_ids: Iterable[int] | None = None,
) -> Plan:
    """Check a propagation request against the prompted frames and plan its passes.

    ``keyframes[obj]`` are the frames on which ``obj`` is prompted; by default the objects are
    tracked in the mapping's order (the engine's order of its objects). Each object is tracked from one of its own keyframes on, never before it
    was prompted:

    * forward: from each object's earliest keyframe in ``[start, end]`` to ``end``;
    * backward: from each object's latest keyframe in ``[start, end]`` down to ``start``;
    * both: forward from each object's earliest keyframe, then backward from it, so every
      frame is computed once.

    Raises :class:`~.errors.PromptError` (one line) for a range outside the video, an unknown
    direction, objects without prompts, or no prompt of the chosen objects in the range.
    """
    start = 0 if start is None else int(start)
    end = num_frames - 1 if end is None else int(end)
    if not (0 <= start <= end < num_frames):
        raise PromptError(f"frame range {start}-{end} is outside the video (0..{num_frames - 1})")
    if direction not in ("forward", "backward", "both"):
        raise PromptError(f"direction must be forward, backward or both, not {direction!r}")
    known = {o: sorted(set(frames)) for o, frames in keyframes.items()}
    known = {o: frames for o, frames in known.items() if frames}
    if not known:
        raise PromptError("no prompts yet: click on an object or draw a box first")
    prompted = list(known)
    chosen = prompted if obj_ids is None else [int(o) for o in obj_ids]
    unknown = [o for o in chosen if o not in known]
    if unknown:
        raise PromptError(f"objects {summarize_list(unknown)} have no prompts "
                          f"(prompted objects: {summarize_list(prompted)})")
    keys = {o: [k for k in known[o] if start <= k <= end] for o in chosen}
    keys = {o: k for o, k in keys.items() if k}
    if not keys:
        raise PromptError(
            f"no prompt for objects {summarize_list(chosen)} in frames {start}-{end}; "
            "add a prompt there first"
        )
    passes = []
    if direction in ("forward", "both"):
        entry = {o: k[0] for o, k in keys.items()}
        passes.append(Pass(False, list(range(min(entry.values()), end + 1)), entry))
    if direction in ("backward", "both"):
        entry = {o: (k[-1] if direction == "backward" else k[0]) for o, k in keys.items()}
        first = max(entry.values())
        if direction == "backward" or first > start:
            passes.append(Pass(True, list(range(first, start - 1, -1)), entry))
    return Plan(direction, start, end, chosen, passes)  # type: ignore[arg-type]


def correction_range(keyframes: Iterable[int], frame: int, num_frames: int) -> tuple[int, int]:
    """The frames a prompt on ``frame`` affects: up to (not including) the object's
    neighbouring keyframes, or the ends of the video."""
    others = [k for k in keyframes if k != frame]
    before = max((k for k in others if k < frame), default=-1)
    after = min((k for k in others if k > frame), default=num_frames)
    return before + 1, after - 1
