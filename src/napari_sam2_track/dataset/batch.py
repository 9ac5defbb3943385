"""``batch DIR`` on a dataset: track, on Dask, the items that have prompts and are not tracked.

:func:`batch_rows` turns those items into the rows :func:`~..distributed.run_batch` takes (the
item's video, prompts and project; a new project gets the dataset's current schema);
:func:`record_batch` then claims the projects for the dataset and records the stage each
completed item reached.
"""

from __future__ import annotations

from typing import Any

from .model import Dataset
from .status import item_rows, record_derived


def batch_rows(dataset: Dataset) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """``(rows, skipped)``: manifest rows of the items to track, and ``(item, why)`` of the
    others."""
    rows, skipped = [], []
    status = {r["id"]: r for r in item_rows(dataset)}
    for item in dataset.items:
        row = status[item.id]
        if row["problem"]:
            skipped.append((item.id, row["problem"]))
            continue
        has_project = (item.project / "zarr.json").is_file()
        has_prompts = item.prompts is not None and item.prompts.is_file()
        if row["tracked_frames"] and row["stage"] != "prompted":
            skipped.append((item.id, f"tracked already ({row['stage'].replace('_', ' ')})"))
            continue
        if not has_prompts and not (has_project and row["stage"] == "prompted"):
            skipped.append((item.id, "no prompts yet"))
            continue
        rows.append({
            "video": str(item.source),
            "prompts": str(item.prompts) if has_prompts else None,
            "out": str(item.project),
            "name": item.id,
            "schema": None if has_project else str(dataset.schema_path()),
        })
    return rows, skipped


def record_batch(dataset: Dataset, summary, who: str) -> None:
    """After a batch run: claim each written project and record the stage it reached."""
    for row in summary.rows:
        if row["status"] not in ("completed", "resumed", "skipped"):
            continue
        item = dataset.item(row["name"])
        if (item.project / "zarr.json").is_file():
            dataset.claim_project(item)
            record_derived(dataset, item.id, who)
