"""The model options of ``track`` as one picklable value.

The CLI builds a :class:`ModelSpec` from its options and loads it; batch jobs send the same
value to their workers, which load it once per process (``distributed.models``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelSpec:
    """The options that pick a model, as for ``track`` (see :func:`~.models.load_model`)."""

    model: str = "tiny"
    config: str | None = None
    device: str = "auto"
    image_size: int | None = None
    vos_optimized: bool = False
    max_cond_frames: int | None = None

    @classmethod
    def from_args(cls, args) -> "ModelSpec":
        """From parsed ``add_model_options`` arguments."""
        return cls(
            model=str(args.model),
            config=args.config,
            device=args.device,
            image_size=args.image_size,
            vos_optimized=bool(args.compile),
            max_cond_frames=args.max_cond_frames,
        )

    @classmethod
    def coerce(cls, value: "ModelSpec | str | os.PathLike | dict") -> "ModelSpec":
        """A spec from a spec, a model name/path, or a dict of its fields."""
        if isinstance(value, ModelSpec):
            return value
        if isinstance(value, dict):
            return cls(**value)
        return cls(model=str(value))

    def load(self):
        """Load the model now (no cache); returns a :class:`~.models.LoadedModel`."""
        from .models import DEFAULT_MAX_COND_FRAMES, load_model

        return load_model(
            self.model,
            config=self.config,
            device=self.device,
            image_size=self.image_size,
            vos_optimized=self.vos_optimized,
            max_cond_frames=DEFAULT_MAX_COND_FRAMES
            if self.max_cond_frames is None
            else self.max_cond_frames,
        )

    def as_dict(self) -> dict:
        return asdict(self)
