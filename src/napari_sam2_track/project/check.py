"""Checking a project: its metadata on open, and every chunk and table row for ``info --check``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .layout import COL, STATE_NAMES, TABLE_CHUNK

_REQUIRED_META = {"format_version": int, "shape": list, "source": dict, "objects": list,
                  "prompts": list, "runs": list}
_BLOCK = 64  # frames read at once; a failing block is re-read frame by frame


def metadata_problem(meta: Any) -> str | None:
    """What is wrong with a project's metadata, or ``None``."""
    if not isinstance(meta, dict):
        return f"expected a mapping, found {type(meta).__name__}"
    for key, kind in _REQUIRED_META.items():
        if key not in meta:
            return f"{key!r} is missing"
        if not isinstance(meta[key], kind):
            return f"{key!r} should be a {kind.__name__}, not {type(meta[key]).__name__}"
    shape = meta["shape"]
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        return f"'shape' should be three positive integers, not {str(shape)[:60]}"
    if meta.get("building"):
        return "its creation did not finish"
    for i, obj in enumerate(meta["objects"]):
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), int):
            return f"objects[{i}] has no integer id"
    for i, run in enumerate(meta["runs"]):
        if not isinstance(run, dict) or not isinstance(run.get("id"), int):
            return f"runs[{i}] has no integer id"
    for i, prompt in enumerate(meta["prompts"]):
        if not isinstance(prompt, dict) or not isinstance(prompt.get("object"), int):
            return f"prompts[{i}] has no integer object id"
    return None


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:120]}"


def _frames(array, n: int, name: str, problems: list[str]) -> Iterator[tuple[int, np.ndarray | None]]:
    """Every frame of ``array`` in blocks; an unreadable frame yields ``None`` and a problem."""
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        try:
            block = array[start:stop]
        except Exception:  # noqa: BLE001 - corrupt chunk: find which frame
            for t in range(start, stop):
                try:
                    yield t, array[t]
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"{name} frame {t}: unreadable chunk ({_error(exc)})")
                    yield t, None
            continue
        yield from ((start + i, block[i]) for i in range(stop - start))


def _table(array, n: int, name: str, problems: list[str]) -> np.ndarray:
    rows = np.full((n, array.shape[1]), np.nan)
    for start in range(0, n, TABLE_CHUNK):
        stop = min(n, start + TABLE_CHUNK)
        try:
            rows[start:stop] = array[start:stop]
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name} rows {start}-{stop - 1}: unreadable chunk ({_error(exc)})")
    return rows


def verify_project(store) -> tuple[list[str], dict]:
    """Read every chunk of a project and check each table row against its mask.

    Returns the problems found (each naming the array and frame) and counts of what was read.
    """
    from .store import mask_stats

    problems: list[str] = []
    n, h, w = store.shape
    meta = store.meta
    ids = sorted(o["id"] for o in meta["objects"])
    arrays: dict[int, tuple[Any, np.ndarray]] = {}
    for obj_id in ids:
        try:
            mask, table = store.group[f"objects/{obj_id}/mask"], store.group[f"objects/{obj_id}/table"]
        except Exception as exc:  # noqa: BLE001 - missing or unreadable array metadata
            problems.append(f"objects/{obj_id}: arrays missing or unreadable ({_error(exc)})")
            continue
        if mask.shape != (n, h, w) or table.shape != (n, len(COL)):
            problems.append(f"objects/{obj_id}: shape {mask.shape}/{table.shape} does not fit {n}x{h}x{w}")
            continue
        arrays[obj_id] = (mask, _table(table, n, f"objects/{obj_id}/table", problems))
    labels_iter = _frames(store.labels, n, "labels/masklets/0", problems)
    mask_iters = {o: _frames(m, n, f"objects/{o}/mask", problems) for o, (m, _) in arrays.items()}
    known = np.asarray([0, *ids], dtype=np.uint64)
    rows_checked = 0
    for t, labels in labels_iter:
        if labels is not None:
            unknown = np.setdiff1d(np.unique(labels).astype(np.uint64), known)
            if unknown.size:
                problems.append(f"labels/masklets/0 frame {t}: ids {unknown[:5].tolist()} are no object")
        for obj_id, frames in mask_iters.items():
            _, mask = next(frames)
            row = arrays[obj_id][1][t]
            name = f"objects/{obj_id}/table row {t}"
            if np.isnan(row).all():
                continue
            rows_checked += 1
            state = row[COL["state"]]
            if np.isnan(state) or int(state) not in STATE_NAMES or state != int(state):
                problems.append(f"{name}: invalid state {state}")
            if mask is None:
                continue
            area, bbox = mask_stats(np.asarray(mask, bool))
            if row[COL["area"]] != area:
                problems.append(f"{name}: area {row[COL['area']]:.0f} but the mask has {area} pixels")
            elif bbox is not None and tuple(row[COL["x0"]:COL["y1"] + 1]) != bbox:
                problems.append(f"{name}: bounding box does not match the mask")
    for p in meta["prompts"]:
        ref = p.get("mask") or ""
        if ref.startswith("store:"):
            try:
                store.group[ref.removeprefix("store:")][:]
            except Exception as exc:  # noqa: BLE001
                problems.append(f"prompt mask {ref} (object {p['object']}, frame {p['frame']}): "
                                f"unreadable ({_error(exc)})")
    return problems, {"frames": n, "objects": len(ids), "rows": rows_checked}
