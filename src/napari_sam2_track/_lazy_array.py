"""Array-protocol basics shared by the read-on-demand arrays napari layers display."""

from __future__ import annotations

import numpy as np


class LazyArray:
    """Subclasses provide ``shape``, ``dtype`` and ``__getitem__``; the rest follows."""

    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        out = self[:]  # type: ignore[index]
        return out if dtype is None else out.astype(dtype)
