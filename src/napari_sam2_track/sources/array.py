"""In-memory or lazy N-d arrays (numpy, dask, zarr.Array, other array-likes) as frame sources."""

from __future__ import annotations

from typing import Any

from ._base import IntensityWindow, LayoutSource, guess_axes

__all__ = ["ArraySource"]


class ArraySource(LayoutSource):
    """Frames of an array-like indexed lazily as ``data[t]`` (dask: only that frame is computed).

    ``axes`` (e.g. ``"tyx"``, ``"tyxc"``, ``"tcyx"``, ``"yx"``) overrides the guess: 2-D is one
    frame, 3-D is (T,H,W), 4-D with last dim <= 4 is (T,H,W,C). Numpy frames are read-only views.
    """

    kind = "array"

    def __init__(
        self,
        data: Any,
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | None = None,
        axes: str | None = None,
        path: str | None = None,
    ) -> None:
        if axes is None:
            axes = guess_axes(data.shape)
        super().__init__(
            data,
            axes.lower(),
            path=path,
            channel=channel,
            window=window,
            what=f"array of type {type(data).__module__}.{type(data).__name__}",
        )
