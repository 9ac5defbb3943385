"""Merged label images and their OME-Zarr ``image-label`` metadata, defined once.

Every object keeps its own mask; wherever a single label image is needed (the project's
``labels`` array, exported label images, napari's Labels layer) a pixel claimed by several
objects goes to the **lowest object id**.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ..prompts import ObjectSpec
from ..schema import Schema, object_colors


def merge_lowest_id(
    masks: Mapping[int, np.ndarray],
    shape: tuple[int, int],
    dtype=np.uint32,
    values: Mapping[int, int] | None = None,
) -> np.ndarray:
    """One label image from per-object bool masks; overlaps go to the lowest object id.

    ``values`` maps an object id to the value written for it (default: the id itself).
    """
    out = np.zeros(shape, dtype=dtype)
    for obj_id in sorted(masks, reverse=True):
        out[masks[obj_id]] = obj_id if values is None else values[obj_id]
    return out


def hex_to_rgba255(color: str) -> list[int]:
    """``#rrggbb`` -> ``[r, g, b, 255]``."""
    color = color.lstrip("#")
    return [int(color[i : i + 2], 16) for i in (0, 2, 4)] + [255]


def label_multiscale(name: str, axes: list[tuple[str, str]] | list[dict], version: str = "0.5",
                     scale: list[float] | None = None) -> dict:
    """A single-level OME-Zarr ``multiscales`` entry (unit scale unless ``scale``); ``axes``
    as ``(name, type)`` pairs or as OME axis dicts (with ``unit``)."""
    axes = [a if isinstance(a, dict) else {"name": a[0], "type": a[1]} for a in axes]
    ms = {
        "name": name,
        "axes": axes,
        "datasets": [
            {"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": list(scale) if scale else [1.0] * len(axes)}]}
        ],
    }
    if version == "0.4":
        ms["version"] = "0.4"
    return ms


def image_label_metadata(
    name: str,
    objects: Iterable[ObjectSpec],
    schema: Schema,
    *,
    version: str = "0.5",
    source_image: str | None = None,
    axes: list[dict] | None = None,
    scale: list[float] | None = None,
) -> dict:
    """``multiscales`` + ``image-label`` (colours from the schema, object properties) for a
    ``(t, y, x)`` label image, or with other ``axes`` (OME axis dicts) and ``scale``."""
    objects = list(objects)
    colors = object_colors(objects, schema)
    image_label: dict = {
        "version": version,
        "colors": [{"label-value": o.id, "rgba": hex_to_rgba255(colors[o.id])} for o in objects],
        "properties": [
            {
                "label-value": o.id,
                "name": o.name,
                "category": schema.category_for(o.category),
                **{k: v for k, v in o.attributes.items() if k != "label-value"},
            }
            for o in objects
        ],
    }
    if source_image is not None:
        image_label["source"] = {"image": source_image}
    axes = axes or [("t", "time"), ("y", "space"), ("x", "space")]
    return {"multiscales": [label_multiscale(name, axes, version, scale)], "image-label": image_label}
