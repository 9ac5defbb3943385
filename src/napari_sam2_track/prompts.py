"""Prompts: which objects to track and the clicks, boxes and masks that define them.

The same models back the CLI's ``--prompts`` JSON file, the project store and the napari
widgets. Coordinates are in pixels of the original video, ``x`` to the right, ``y`` down.

Example::

    {
      "version": 1,
      "objects": [{"id": 1, "name": "left cell", "category": "nucleus"}],
      "prompts": [
        {"object": 1, "frame": 0, "points": [[120, 88]], "labels": [1]},
        {"object": 1, "frame": 40, "box": [100, 70, 150, 110]},
        {"object": 1, "frame": 90, "mask": "masks/obj1_f90.png"}
      ]
    }
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer,
                      model_validator)

from ._input_files import first_line, parse_json, read_text, validation_problem
from .errors import PromptError, repeated, summarize_list

MAX_OBJECT_ID = 2**32 - 1
#: Largest frame index a prompt may name (far beyond any video; keeps messages short).
MAX_FRAME = 2**31 - 1
_FORMAT_HINT = "see docs/prompts.md for the format"


class ObjectSpec(BaseModel):
    """An object (masklet) to track; ``id`` is the value it takes in the labels array.

    ``parent`` is the lineage link: the id of the object this one divided from (CTC's ``P``).
    """

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1, le=MAX_OBJECT_ID)
    name: str = ""
    category: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    parent: int | None = Field(default=None, ge=1, le=MAX_OBJECT_ID)


class Prompt(BaseModel):
    """The complete prompt for one object on one frame (it replaces any earlier one there).

    Either clicks and/or a box, or a mask: a path to an image whose non-zero pixels (or the
    pixels equal to ``mask_value``) are the object, relative to the prompts file.
    In a volume, ``frame`` is the timepoint (0 for a single volume) and ``z`` the slice index
    along the volume's z axis, whatever the propagation axis (``--axis y|x`` maps clicks onto
    the planes through them); ``z`` is left out (``None``) for a 2D video.
    """

    model_config = ConfigDict(extra="forbid")

    object: int = Field(ge=1, le=MAX_OBJECT_ID)
    frame: int = Field(ge=0, le=MAX_FRAME)
    z: int | None = Field(default=None, ge=0, le=MAX_FRAME)
    points: list[tuple[float, float]] = Field(default_factory=list)
    labels: list[Literal[0, 1]] = Field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    mask: str | None = None
    mask_value: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)

    @model_validator(mode="after")
    def _consistent(self) -> "Prompt":
        if len(self.points) != len(self.labels):
            raise ValueError(
                f"{len(self.points)} points but {len(self.labels)} labels; give one label "
                "(1 positive, 0 negative) per point"
            )
        if not self.points and self.box is None and self.mask is None:
            raise ValueError("empty prompt: give points, a box or a mask")
        if self.mask is not None and (self.points or self.box is not None):
            raise ValueError("a mask prompt cannot be combined with points or a box")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (x1 > x0 and y1 > y0):
                raise ValueError(f"box {list(self.box)} must be [x0, y0, x1, y1] with x1>x0, y1>y0")
        return self

    @model_serializer(mode="wrap")
    def _without_z(self, handler):
        """A 2D prompt is written as before: without a ``z`` key."""
        data = handler(self)
        if isinstance(data, dict) and data.get("z", 0) is None:
            del data["z"]
        return data

    @property
    def where(self) -> str:
        """``frame 3``, or ``timepoint 0, slice 12`` for a prompt on a volume slice."""
        return f"frame {self.frame}" if self.z is None else f"timepoint {self.frame}, slice {self.z}"

    @classmethod
    def build(cls, **fields: Any) -> "Prompt":
        """Validate a prompt, raising a one-line :class:`PromptError` if it is invalid."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise PromptError(f"invalid prompt: {validation_problem(exc)}") from None

    @property
    def kind(self) -> str:
        """``points``, ``box``, ``box+points`` or ``mask``."""
        if self.mask is not None:
            return "mask"
        if self.box is not None:
            return "box+points" if self.points else "box"
        return "points"

    def check_frame(self, num_frames: int, height: int, width: int,
                    depth: int | None = None) -> None:
        """Raise :class:`PromptError` if the prompt lies outside the video (``depth``: the
        slices of a volume, whose prompts need ``z``; ``None`` for a 2D video)."""
        if depth is None and self.z is not None:
            raise PromptError(
                f"prompt for object {self.object} on frame {self.frame} gives z={self.z} but the "
                "input is a 2D video; remove 'z' (it is only for volumes)"
            )
        if depth is not None and self.z is None:
            raise PromptError(
                f"prompt for object {self.object} on timepoint {self.frame} has no 'z' but the "
                f"input is a volume of {depth} slices; give the slice index z (0..{depth - 1})"
            )
        if depth is not None and self.z >= depth:
            raise PromptError(
                f"prompt for object {self.object} is on slice z={self.z} but the volume has "
                f"{depth} slices (0..{depth - 1})"
            )
        if self.frame >= num_frames and depth is not None:
            raise PromptError(
                f"prompt for object {self.object} is on timepoint {self.frame} but the volume has "
                f"{num_frames} timepoint(s) (0..{num_frames - 1}); use frame 0 for a single volume"
            )
        if self.frame >= num_frames:
            raise PromptError(
                f"prompt for object {self.object} is on frame {self.frame} but the video has "
                f"{num_frames} frames (0..{num_frames - 1})"
            )
        for x, y in self.points:
            if not (0 <= x < width and 0 <= y < height):
                raise PromptError(
                    f"point ({x:g}, {y:g}) for object {self.object} on {self.where} is "
                    f"outside the {width}x{height} frame"
                )
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                raise PromptError(
                    f"box {list(self.box)} for object {self.object} on {self.where} is "
                    f"outside the {width}x{height} frame"
                )

    def mask_path(self, base_dir: str | Path | None) -> Path:
        """The mask file of a mask prompt (relative paths are relative to ``base_dir``)."""
        path = Path(self.mask)
        return Path(base_dir) / path if not path.is_absolute() and base_dir is not None else path

    def _mask_owner(self, path: Path) -> str:
        return f"mask file {path} for object {self.object} on frame {self.frame}"

    def load_mask(self, base_dir: str | Path | None, height: int, width: int) -> np.ndarray:
        """Read the mask image of a mask prompt as a bool (H, W) array."""
        path = self.mask_path(base_dir)
        data = _read_mask_image(path, self._mask_owner(path), header_only=False)
        if data.ndim == 3:
            data = data[..., 0]
        if data.ndim != 2 or data.shape != (height, width):
            raise PromptError(
                f"mask {path} has shape {tuple(data.shape)} but the video is {width}x{height}; "
                "give a single-plane mask of the frame's size"
            )
        mask = data == self.mask_value if self.mask_value is not None else data != 0
        if not mask.any():
            raise PromptError(f"mask {path} for object {self.object} is empty")
        return mask


def _read_mask_image(path: Path, owner: str, *, header_only: bool) -> np.ndarray | None:
    """The pixels of a mask image (``None`` with ``header_only``: only its header is parsed);
    :class:`PromptError` naming ``owner`` if it is missing, a directory or not an image."""
    if path.is_dir():
        raise PromptError(f"{owner} is a directory; name an image file (PNG or TIFF)")
    if not path.is_file():
        raise PromptError(f"{owner} not found; paths are relative to the prompts file")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            if header_only:
                with tifffile.TiffFile(path) as tif:
                    tif.series[0].shape  # noqa: B018 - parses the header
                return None
            return tifffile.imread(path)
        from PIL import Image

        with Image.open(path) as im:
            return None if header_only else np.asarray(im)
    except Exception as exc:  # unreadable, not an image, truncated, decompression bomb
        raise PromptError(
            f"{owner} is not a readable image ({first_line(exc)}); save the mask as PNG or TIFF"
        ) from None


class PromptSet(BaseModel):
    """All objects and prompts of a project or a ``--prompts`` file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    objects: list[ObjectSpec] = Field(default_factory=list)
    prompts: list[Prompt] = Field(default_factory=list)

    @field_validator("objects")
    @classmethod
    def _unique_ids(cls, objects: list[ObjectSpec]) -> list[ObjectSpec]:
        dupes = repeated(o.id for o in objects)
        if dupes:
            raise ValueError(f"object ids {summarize_list(dupes)} are listed more than once")
        return objects

    @model_validator(mode="after")
    def _known_objects(self) -> "PromptSet":
        known = {o.id for o in self.objects}
        for p in self.prompts:
            if p.object not in known:
                listed = f"known ids: {summarize_list(sorted(known))}" if known else "none is listed"
                raise ValueError(
                    f"prompt on frame {p.frame} refers to unknown object id {p.object}; "
                    f"add it to 'objects' ({listed})"
                )
        dupes = repeated((p.object, p.frame, p.z) for p in self.prompts)
        if dupes:
            obj, frame, z = dupes[0]
            where = f"frame {frame}" if z is None else f"timepoint {frame}, slice {z}"
            more = f" (and {len(dupes) - 1:,} more object/frame pairs)" if len(dupes) > 1 else ""
            raise ValueError(
                f"object {obj} has more than one prompt on {where}{more}; merge them into "
                "one prompt (one prompt holds all the clicks and the box of an object on a frame)"
            )
        return self

    def check_video(self, num_frames: int, height: int, width: int,
                    depth: int | None = None) -> None:
        """Raise :class:`PromptError` for the first prompt outside the video (``depth``: the
        slices of a volume, ``num_frames`` then its timepoints)."""
        for p in self.prompts:
            p.check_frame(num_frames, height, width, depth)

    @classmethod
    def load(cls, path: str | Path) -> "PromptSet":
        """Read and validate a prompts JSON file; errors are one-line :class:`PromptError`."""
        path = Path(path)
        text = read_text(path, "prompts file", PromptError, _FORMAT_HINT)
        data = parse_json(text, f"prompts file {path}", PromptError, _FORMAT_HINT)
        try:
            prompts = cls.model_validate(data)
        except ValidationError as exc:
            raise PromptError(
                f"prompts file {path}: {validation_problem(exc)} ({_FORMAT_HINT})"
            ) from None
        except RecursionError:
            raise PromptError(
                f"prompts file {path} is nested too deeply to be valid; {_FORMAT_HINT}"
            ) from None
        prompts.check_mask_files(path.parent)
        return prompts

    def check_mask_files(self, base_dir: str | Path | None) -> None:
        """Raise :class:`PromptError` unless every mask prompt names a readable image file.

        Only the image headers are read; sizes are checked against the video when tracking.
        """
        for p in self.prompts:
            if p.mask is None or p.mask.startswith("store:"):
                continue
            path = p.mask_path(base_dir)
            _read_mask_image(path, p._mask_owner(path), header_only=True)

    def save(self, path: str | Path) -> None:
        """Write the prompts as indented JSON."""
        Path(path).write_text(self.model_dump_json(indent=2, exclude_defaults=False) + "\n")
