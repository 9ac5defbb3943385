"""What a volume run is asked to do, checked before a model is loaded or anything written."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import PromptError, SourceError
from ..passes import Direction
from ..prompts import PromptSet

#: Axes a volume can be propagated along, and those available now.
VOLUME_AXES = ("z", "y", "x")
AVAILABLE_AXES = ("z", "y", "x")


@dataclass(frozen=True)
class VolumeRequest:
    """What to propagate through a volume.

    ``direction``: along the slices from the prompts (``both`` by default); ``start``/``end``:
    the timepoints (inclusive; ``None``: all); ``obj_ids``: the objects (``None``: all
    prompted); ``z_range``: the slices ``(first, last)`` (``None``: all); ``stop_after_empty``:
    stop an object's direction after this many consecutive empty slices (``None``: never);
    ``axis``: the propagation axis.
    """

    direction: Direction = "both"
    start: int | None = None
    end: int | None = None
    obj_ids: list[int] | None = None
    z_range: tuple[int, int] | None = None
    stop_after_empty: int | None = None
    axis: str = "z"

    def describe(self) -> dict:
        """What the run record keeps of the request beyond the 2D fields."""
        return {"axis": self.axis or "z", "z_range": list(self.z_range) if self.z_range else None,
                "stop_after_empty": self.stop_after_empty}


def parse_z_range(text: str | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """``"A-B"`` (or a pair) -> ``(A, B)``; :class:`PromptError` for anything else."""
    if text is None:
        return None
    if isinstance(text, (tuple, list)):
        if len(text) != 2:
            raise PromptError(f"z-range {list(text)} must be two slice indices [first, last]")
        a, b = (int(v) for v in text)
    else:
        m = re.fullmatch(r"\s*(\d+)\s*[-:]\s*(\d+)\s*", str(text))
        if not m:
            raise PromptError(f"--z-range {text!r} is not FIRST-LAST (e.g. 10-40, inclusive)")
        a, b = int(m.group(1)), int(m.group(2))
    if a > b:
        raise PromptError(f"--z-range {a}-{b} is empty: the first slice comes after the last")
    return a, b


def check_axis(axis: str | None) -> str:
    """The propagation axis, or one line saying why it cannot be used."""
    axis = "z" if axis is None else str(axis).lower()
    if axis not in VOLUME_AXES:
        raise SourceError(f"--axis {axis!r} does not exist; a volume is propagated along "
                          f"{', '.join(VOLUME_AXES)} (default z)")
    if axis not in AVAILABLE_AXES:
        raise SourceError(f"--axis {axis}: propagation along {axis} is not available yet; "
                          "use --axis z")
    return axis


def check_volume_request(volume, prompts: PromptSet | None, request: VolumeRequest) -> None:
    """Refuse (one line) a request the volume cannot take: an axis, a z-range or timepoints
    outside it, a prompt outside the volume or the z-range, a bad early stop."""
    axis = check_axis(request.axis)
    n_t, n_z, h, w = volume.shape
    if axis != "z":  # the planes across y or x: resampled, prompts mapped onto them
        from .axis_run import check_axis_prompts
        from .reslice import AxisView

        if request.z_range is not None:
            raise PromptError(f"--z-range applies to --axis z; along {axis} every plane is "
                              "tracked (crop the volume instead)")
        check_axis_prompts(AxisView(volume, axis), prompts)
    if request.z_range is not None:
        a, b = request.z_range
        if not (0 <= a <= b < n_z):
            raise PromptError(f"--z-range {a}-{b} is outside the volume's {n_z} slices "
                              f"(0..{n_z - 1})")
    if request.stop_after_empty is not None and int(request.stop_after_empty) < 1:
        raise PromptError(f"--stop-after-empty {request.stop_after_empty} must be at least 1 "
                          "(slices in a row without the object)")
    t_lo = 0 if request.start is None else int(request.start)
    t_hi = n_t - 1 if request.end is None else int(request.end)
    if not 0 <= t_lo <= t_hi < n_t:
        raise PromptError(f"timepoint range {t_lo}-{t_hi} is outside the volume's {n_t} "
                          f"timepoint(s) (0..{n_t - 1})")
    if prompts is None:
        return
    prompts.check_video(n_t, h, w, depth=n_z)
    if request.z_range is not None:
        a, b = request.z_range
        for p in prompts.prompts:
            if not a <= p.z <= b:
                raise PromptError(f"prompt for object {p.object} is on slice z={p.z}, outside "
                                  f"--z-range {a}-{b}; widen the range or move the prompt")
