"""Named intensity windows for CT and MR volumes (level/width presets and percentile windows)."""

from __future__ import annotations

from typing import Any

from ..errors import SourceError
from ._base import IntensityWindow, coerce_window

__all__ = ["CT_WINDOWS", "PERCENTILE_WINDOWS", "window_presets", "preset_window"]

#: CT windows as (level, width) in Hounsfield units: the window is level -/+ width / 2.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "ct-brain": (40.0, 80.0),
    "ct-subdural": (75.0, 215.0),
    "ct-soft-tissue": (50.0, 400.0),
    "ct-abdomen": (40.0, 350.0),
    "ct-liver": (30.0, 150.0),
    "ct-mediastinum": (50.0, 350.0),
    "ct-lung": (-600.0, 1500.0),
    "ct-bone": (400.0, 1800.0),
}

#: Windows from percentiles of sampled slices: (low percentile, high percentile).
PERCENTILE_WINDOWS: dict[str, tuple[float, float]] = {
    "auto": (0.5, 99.5),  # the default for non-8-bit data, as for 2D recordings
    "mr-auto": (1.0, 99.0),  # MR: no absolute scale, bright fat and vessels clipped
}


def window_presets() -> list[str]:
    """Names accepted as ``window=`` for volumes."""
    return [*CT_WINDOWS, *PERCENTILE_WINDOWS]


def preset_window(name: str, sample: Any, label: str) -> IntensityWindow:
    """The window named ``name``; ``sample(lo, hi)`` computes a percentile window."""
    key = name.strip().lower()
    if key in CT_WINDOWS:
        level, width = CT_WINDOWS[key]
        return IntensityWindow(level - width / 2, level + width / 2, preset=key)
    if key in PERCENTILE_WINDOWS:
        lo, hi = PERCENTILE_WINDOWS[key]
        window = sample(lo, hi)
        return IntensityWindow(window.low, window.high, preset=key)
    raise SourceError(
        f"{label}: unknown intensity window {name!r}; use one of {', '.join(window_presets())} "
        "or (low, high)"
    )


def resolve_window(
    window: IntensityWindow | tuple[float, float] | str | None,
    *,
    sample: Any,
    default: IntensityWindow | None,
    is_uint8: bool,
    label: str,
) -> IntensityWindow | None:
    """The window of a volume: explicit ``(low, high)``, a preset name, else ``default`` (the
    file's own window, DICOM), else none for uint8 data, else the ``auto`` percentiles."""
    if isinstance(window, str):
        return preset_window(window, sample, label)
    window = coerce_window(window, label)
    if window is not None:
        return window
    if default is not None:
        return default
    if is_uint8:
        return None
    return preset_window("auto", sample, label)
