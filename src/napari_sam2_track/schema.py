"""Annotation schema: object categories, per-object attributes and annotation conventions.

A :class:`Schema` is a small, versioned document (YAML or JSON) that says *what* is being
annotated: the categories (with display colours), optional attributes per object, and the
conventions for re-entry, occlusion, minimum size and objects cut by the image border.
This module is Qt-free and only depends on pydantic and PyYAML.
"""

from __future__ import annotations

import colorsys
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._input_files import parse_json, parse_yaml, read_text, validation_problem
from .errors import SchemaError, repeated, stripped_name, summarize_list

__all__ = [
    "AttributeSpec",
    "Category",
    "ReviewThresholds",
    "Schema",
    "label_colors",
    "object_color",
    "object_colors",
]

_HEX_RE = re.compile(r"^#([0-9a-fA-F]{6})$")

DEFAULT_OCCLUDED = (
    "inside the field of view but hidden by another object or by smoke/debris; "
    "presence score <= 0 while the last visible bbox is away from the border"
)
#: Upper bound of pixel counts and margins (keeps values storable in any table or format).
MAX_PIXELS = 2**31 - 1
#: Range of ``int`` attribute values (64-bit signed, as stored in tables and exports).
INT_ATTRIBUTE_RANGE = (-(2**63), 2**63 - 1)

DEFAULT_OUT_OF_FRAME = "outside the field of view: last seen touching the image border"

# Colours cycled by helpers that create categories without an explicit colour.
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#008080",
    "#9a6324",
)


def _short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (values quoted in one-line errors)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "a number with thousands of digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hex_to_rgb(color: str) -> tuple[float, float, float]:
    return tuple(int(color[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


def _rgb_to_hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{int(round(min(max(c, 0.0), 1.0) * 255)):02x}" for c in rgb)


class Category(BaseModel):
    """An object category with a display colour (``#rrggbb``, stored lowercase)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    color: str = "#e6194b"
    description: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        return stripped_name(v, "category")

    @field_validator("color")
    @classmethod
    def _check_color(cls, v: str) -> str:
        v = v.strip()
        if not _HEX_RE.match(v):
            raise ValueError(f"colour {v!r} is not a hex colour like '#1f77b4'")
        return v.lower()

    def rgba(self) -> tuple[float, float, float, float]:
        """The colour as an RGBA tuple with components in 0..1 (alpha 1)."""
        r, g, b = _hex_to_rgb(self.color)
        return (r, g, b, 1.0)


AttributeKind = Literal["bool", "int", "float", "text", "choice"]


class AttributeSpec(BaseModel):
    """A per-object attribute (e.g. ``truncated: bool`` or ``side: choice[left, right]``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: AttributeKind
    choices: list[str] = Field(default_factory=list)
    default: Any = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        return stripped_name(v, "attribute")

    @model_validator(mode="after")
    def _check_consistency(self) -> AttributeSpec:
        if self.kind == "choice":
            if not self.choices:
                raise ValueError(
                    f"attribute {self.name!r} of kind 'choice' needs a non-empty 'choices' list"
                )
            if len(set(self.choices)) != len(self.choices):
                raise ValueError(f"attribute {self.name!r} has duplicate choices")
        elif self.choices:
            raise ValueError(
                f"attribute {self.name!r}: 'choices' is only allowed for kind 'choice'"
            )
        if self.default is not None:
            self.default = self.validate_value(self.default)
        return self

    def validate_value(self, value: Any) -> Any:
        """Check ``value`` against this attribute's kind and return it (ints coerced to float for
        ``float``). Raises ``ValueError`` with a message naming the attribute."""
        where = f"attribute {self.name!r} ({self.kind})"
        if value is None:
            return None
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{where}: expected true/false, got {_short_repr(value)}")
            return value
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where}: expected an integer, got {_short_repr(value)}")
            low, high = INT_ATTRIBUTE_RANGE
            if not low <= value <= high:
                raise ValueError(f"{where}: {_short_repr(value)} is outside the 64-bit range")
            return value
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}: expected a number, got {_short_repr(value)}")
            return float(value)
        if self.kind == "text":
            if not isinstance(value, str):
                raise ValueError(f"{where}: expected text, got {_short_repr(value)}")
            return value
        # choice
        if value not in self.choices:
            raise ValueError(
                f"{where}: {_short_repr(value)} is not one of {summarize_list(self.choices)}"
            )
        return value


class ReviewThresholds(BaseModel):
    """Thresholds of the review flags and of the analytics' idle gaps (``docs/review.md``)."""

    model_config = ConfigDict(extra="forbid")

    presence_band: float = Field(default=2.0, ge=0)
    """Flag presence logits within this distance of 0 (tracked objects score about +6 to +8)."""
    area_change: float = Field(default=0.4, ge=0)
    """Flag area changes between adjacent visible frames above this fraction of the larger area."""
    jump: float = Field(default=0.5, ge=0)
    """Flag bounding-box centre moves above this multiple of the object's size (sqrt of area)."""
    overlap: float = Field(default=0.2, ge=0, le=1)
    """Flag overlaps with another object above this fraction of the object's area."""
    disagreement_iou: float = Field(default=0.5, ge=0, le=1)
    """Flag frames where the IoU with the second opinion's mask is below this (or where one of
    the two sees the object and the other does not)."""
    idle_seconds: float = Field(default=60.0, gt=0)
    """Analytics: gaps between interactions longer than this are idle, not active time."""
    sample_size: int = Field(default=10, ge=1)
    """Sampled QC: frames drawn at random from each masklet (flagged frames come on top)."""
    sample_fraction: float | None = Field(default=None, gt=0, le=1)
    """Sampled QC: draw this fraction of the masklet's frames instead (at least one)."""
    sample_pass: float = Field(default=1.0, ge=0, le=1)
    """Sampled QC: the masklet is satisfactory when at least this fraction of its sampled
    frames pass (1.0: all of them)."""
    correction_stop: Literal["agree", "segment"] = "agree"
    """Corrections: re-propagate each direction until ``agree_frames`` consecutive frames agree
    with the stored masks (``agree``), or always the whole segment between the keyframes."""
    agree_frames: int = Field(default=5, ge=1, le=10_000)
    """Corrections stop a direction after this many consecutive agreeing frames."""
    agree_iou: float = Field(default=0.9, gt=0, le=1)
    """A re-propagated frame agrees when its IoU with the stored mask is at least this and the
    presence (visible or not) is the same."""
    keep_versions: int = Field(default=10, ge=1, le=1000)
    """Track versions kept per object (propagations, corrections, edits, undos, restores)."""


def _default_categories() -> list[Category]:
    return [Category(name="object", color=PALETTE[0])]


class Schema(BaseModel):
    """Annotation schema: categories, attributes and annotation conventions (version 1)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    name: str = "untitled"
    categories: list[Category] = Field(default_factory=_default_categories, min_length=1)
    attributes: list[AttributeSpec] = Field(default_factory=list)
    reentry_identity: Literal["same_id", "new_linked_id"] = "same_id"
    """When an object leaves the view and re-enters: keep its id, or a new id linked to the old."""
    occluded_definition: str = DEFAULT_OCCLUDED
    out_of_frame_definition: str = DEFAULT_OUT_OF_FRAME
    min_visible_pixels: int = Field(default=0, ge=0, le=MAX_PIXELS)
    """Masks with fewer pixels than this count as absent."""
    edge_policy: Literal["keep", "drop", "flag"] = "keep"
    """Objects cut by the frame border: keep them, drop border-touching masks, or flag them."""
    border_margin_px: int = Field(default=0, ge=0, le=MAX_PIXELS)
    review: ReviewThresholds = Field(default_factory=ReviewThresholds)
    """Thresholds of the review flags and analytics."""

    @field_validator("categories")
    @classmethod
    def _unique_categories(cls, v: list[Category]) -> list[Category]:
        dupes = repeated(c.name for c in v)
        if dupes:
            raise ValueError(f"duplicate category names: {summarize_list(dupes)}")
        return v

    @field_validator("attributes")
    @classmethod
    def _unique_attributes(cls, v: list[AttributeSpec]) -> list[AttributeSpec]:
        dupes = repeated(a.name for a in v)
        if dupes:
            raise ValueError(f"duplicate attribute names: {summarize_list(dupes)}")
        return v

    # -- lookups -----------------------------------------------------------------------------

    @classmethod
    def default(cls) -> Schema:
        """The default schema: one category ``object``."""
        return cls()

    def category_names(self) -> list[str]:
        """Category names in schema order."""
        return [c.name for c in self.categories]

    def category(self, name: str) -> Category:
        """The category called ``name``; ``KeyError`` listing the known names otherwise."""
        for c in self.categories:
            if c.name == name:
                return c
        raise KeyError(
            f"unknown category {name!r}; known categories: {summarize_list(self.category_names())}"
        )

    def category_for(self, category_name: str | None) -> str:
        """``category_name`` if the schema defines it, else the first category (the fallback
        for objects without a category or with one the schema no longer has)."""
        names = self.category_names()
        return category_name if category_name in names else names[0]

    def color_of(self, category_name: str) -> str:
        """Hex colour of a category."""
        return self.category(category_name).color

    def attribute(self, name: str) -> AttributeSpec:
        """The attribute spec called ``name``; ``KeyError`` otherwise."""
        for a in self.attributes:
            if a.name == name:
                return a
        known = summarize_list(a.name for a in self.attributes) or "(none)"
        raise KeyError(f"unknown attribute {name!r}; known attributes: {known}")

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """YAML text (keys in field order)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write to ``path``; format from the suffix (``.yaml``/``.yml``/``.json``)."""
        path = Path(path)
        fmt = _fmt_from_suffix(path)
        text = self.to_json() if fmt == "json" else self.to_yaml()
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def from_text(
        cls, text: str, fmt: Literal["yaml", "json"] = "yaml", *, source: str = "<text>"
    ) -> Schema:
        """Parse schema text (``fmt`` is ``"yaml"`` or ``"json"``); ``SchemaError`` if invalid."""
        hint = "fix the file or create a new schema"
        fmt_l = fmt.lower()
        if fmt_l == "yml":
            fmt_l = "yaml"
        if fmt_l not in ("yaml", "json"):
            raise SchemaError(f"{source}: unknown schema format {fmt!r} (use yaml or json); {hint}")
        if fmt_l == "json":
            data = parse_json(text, source, SchemaError, hint)
        else:
            data = parse_yaml(text, source, SchemaError, hint)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SchemaError(
                f"{source}: expected a mapping at the top level, got {type(data).__name__}; {hint}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SchemaError(f"{source}: {validation_problem(exc)}; {hint}") from None
        except RecursionError:
            raise SchemaError(f"{source} is nested too deeply to be a schema; {hint}") from None

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """Read a schema file (``.yaml``/``.yml``/``.json``); ``SchemaError`` (one line) if the file
        is missing, unreadable or invalid."""
        path = Path(path)
        hint = "fix the file or create a new schema"
        try:
            fmt = _fmt_from_suffix(path)
        except ValueError as exc:
            raise SchemaError(f"{path.name}: {exc}; {hint}") from None
        text = read_text(path, "schema file", SchemaError, hint)
        return cls.from_text(text, fmt, source=path.name)


def _fmt_from_suffix(path: Path) -> Literal["yaml", "json"]:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    raise ValueError(
        f"unsupported schema file extension {path.suffix!r} (use .yaml, .yml or .json)"
    )


# -- colours ---------------------------------------------------------------------------------


def object_color(obj_id: int, category: str, schema: Schema) -> str:
    """Hex colour for object ``obj_id`` of ``category``: the category's hue with lightness (and a
    touch of saturation) varied deterministically per id, so objects of one category are
    distinguishable yet recognisably that category."""
    base = schema.color_of(category)
    h, light, sat = colorsys.rgb_to_hls(*_hex_to_rgb(base))
    # Deterministic, well-spread offsets: golden-ratio sequence in [-0.5, 0.5).
    frac = (int(obj_id) * 0.6180339887498949) % 1.0 - 0.5
    # Keep lightness in a band where the hue stays visible.
    lo, hi = 0.25, 0.75
    center = min(max(light, lo + 0.12), hi - 0.12)
    new_l = min(max(center + 0.24 * frac, lo), hi)
    if abs(new_l - light) < 0.04:  # make sure the id-specific colour differs from the base
        new_l = min(max(light + (0.08 if frac >= 0 else -0.08), lo), hi)
    new_s = sat if sat < 0.05 else min(max(sat * (1.0 - 0.2 * abs(frac)), 0.2), 1.0)
    return _rgb_to_hex(colorsys.hls_to_rgb(h, new_l, new_s))


def object_colors(objects: Iterable, schema: Schema) -> dict[int, str]:
    """Object id -> hex colour for objects with ``id`` and ``category`` (unknown categories
    fall back to the schema's first)."""
    return {o.id: object_color(o.id, schema.category_for(o.category), schema) for o in objects}


def label_colors(objects: Mapping[int, str], schema: Schema) -> dict[int, str]:
    """Map object id -> hex colour of its category (``objects`` maps id -> category name)."""
    return {int(obj_id): schema.color_of(cat) for obj_id, cat in objects.items()}
