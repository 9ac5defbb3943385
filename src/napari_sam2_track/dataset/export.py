"""One export of a dataset: each item's project through its format's exporter, into a folder
per split.

Layout of ``OUT`` (see ``docs/datasets.md``)::

    OUT/
      dataset_export.json        format, seed, split, schema version, and each item's split and path
      train/<item id>/...        the format's export of that item's project (a folder, or
      val/<item id>.json         a file for single-file formats such as COCO)
      all/...                    without --split

Items are split, not frames, so frames of one video never land in two sets. The split is drawn
with ``random.Random(seed)`` over the item ids in sorted order, so the same seed and items give
the same split on any machine. Projects are exported one after another, each by its streaming
exporter, so memory does not grow with the number of items. The export is built beside ``OUT``
and renamed into place when complete.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import DatasetError
from .model import Dataset
from .status import item_rows

MANIFEST = "dataset_export.json"


@dataclass(frozen=True)
class _DatasetExport:
    """The output kind of :func:`export_dataset` for :func:`~..project.placement.build_beside`."""

    title: str = "dataset export"
    is_dir: bool = True

    def recognises(self, path: Path) -> bool:
        return (Path(path) / MANIFEST).is_file()


def parse_split(text: str | None) -> dict[str, float]:
    """``train=0.8,val=0.2`` -> ``{"train": 0.8, "val": 0.2}`` (fractions summing to 1)."""
    if not text:
        return {"all": 1.0}
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not sep or not name or not 0 < fraction <= 1:
            raise DatasetError(f"--split {text!r}: each part is NAME=FRACTION with a fraction in "
                               "(0, 1], e.g. train=0.8,val=0.2")
        if name in out or not name.replace("-", "").replace("_", "").isalnum():
            raise DatasetError(f"--split {text!r}: set names are distinct letters, digits, '-', '_'")
        out[name] = fraction
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise DatasetError(f"--split {text!r}: the fractions add up to {sum(out.values()):g}, not 1")
    return out


def split_items(ids: list[str], fractions: dict[str, float], seed: int = 0) -> dict[str, list[str]]:
    """Deal ``ids`` into the sets (sizes by largest remainder); refused if a set stays empty."""
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n = len(order)
    exact = {k: f * n for k, f in fractions.items()}
    sizes = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - sizes[k], reverse=True)[: n - sum(sizes.values())]:
        sizes[k] += 1
    empty = [k for k, s in sizes.items() if s == 0]
    if empty:
        raise DatasetError(
            f"the split leaves {', '.join(repr(k) for k in empty)} empty ({n} item"
            f"{'s' if n != 1 else ''} to export); export more items or change --split")
    out, start = {}, 0
    for k in fractions:
        out[k] = sorted(order[start:start + sizes[k]])
        start += sizes[k]
    return out


def export_dataset(dataset: Dataset, fmt: str, out: str | Path, *, verified_only: bool = False,
                   split: str | dict[str, float] | None = None, seed: int = 0,
                   overwrite: bool = False, options=None,
                   progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Export the dataset's tracked (or, ``verified_only``, verified) items; returns the
    manifest written to ``OUT/dataset_export.json``. ``progress(item, done, total)`` is called
    after each item."""
    from ..formats import FORMATS, canonical_format, export
    from ..project.placement import build_beside

    name = canonical_format(fmt)
    record = FORMATS[name]
    out = Path(out).expanduser().absolute()
    folder = dataset.folder.resolve()
    target = out.resolve()
    if target == folder or folder in target.parents:
        raise DatasetError(f"{out} is inside the dataset folder {dataset.folder}; export to a "
                           "folder outside it")
    if target in folder.parents:
        raise DatasetError(f"{out} contains the dataset folder {dataset.folder}; export to a "
                           "folder beside it")
    fractions = split if isinstance(split, dict) else parse_split(split)
    rows = item_rows(dataset)
    problems = [r for r in rows if r["problem"]]
    wanted = [r for r in rows if not r["problem"]
              and (r["stage"] == "verified" if verified_only else r["tracked_frames"] > 0)]
    if not wanted:
        what = "verified" if verified_only else "tracked"
        raise DatasetError(f"no item of {dataset.folder} is {what} yet; nothing to export")
    sets = split_items([r["id"] for r in wanted], fractions, seed)
    items = {i.id: i for i in dataset.items}
    manifest: dict[str, Any] = {
        "dataset": dataset.id, "name": dataset.name, "format": name,
        "schema_version": dataset.schema_version, "verified_only": verified_only,
        "split": fractions, "seed": seed, "items": [],
        "skipped": [{"id": r["id"], "problem": r["problem"]} for r in problems],
    }
    total = len(wanted)
    done = 0
    with build_beside(out, _DatasetExport(), overwrite=overwrite) as staging:
        for set_name, ids in sets.items():
            (staging / set_name).mkdir(parents=True, exist_ok=True)
            for item_id in ids:
                item = items[item_id]
                dest = staging / set_name / (item_id if record.is_dir
                                             else f"{item_id}{record.suffixes[0]}")
                export(item.project, name, dest, options)
                manifest["items"].append({"id": item_id, "split": set_name,
                                          "path": dest.relative_to(staging).as_posix()})
                done += 1
                if progress is not None:
                    progress(item_id, done, total)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest
