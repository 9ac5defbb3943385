"""Checking a project: its metadata on open, and every chunk and table row for ``info --check``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .layout import COL, PARTS_GROUP, STATE_NAMES, TABLE_CHUNK

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
    size = 4 if meta.get("axes") == "tzyx" else 3
    if len(shape) != size or not all(isinstance(v, int) and v > 0 for v in shape):
        count = "three" if size == 3 else "four"
        return f"'shape' should be {count} positive integers, not {str(shape)[:60]}"
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


def unmerged_segments(store) -> str | None:
    """What interrupted ``--segments`` runs left unmerged (their segments wrote masks and
    table rows, their client died before merging them), and how to resume them, one clause per
    run joined by ``"; "``; ``None`` if nothing is left."""
    try:
        if PARTS_GROUP not in store.group:
            return None
        runs = list(store.group[PARTS_GROUP].groups())
    except Exception:  # noqa: BLE001 - a damaged group is reported by what reads it
        return None
    found = [_unmerged_run(store, name, group) for name, group in sorted(runs, key=_run_order)]
    return "; ".join(found) or None


def _run_order(item: tuple[str, Any]) -> tuple[int, str]:
    """Parts groups by run id (``run-2`` before ``run-10``); odd names last."""
    run_id = item[0].removeprefix("run-")
    return (int(run_id), "") if run_id.isdigit() else (1 << 62, item[0])


def _unmerged_run(store, run_name: str, run_group) -> str:
    """What one run's parts hold, and whether it runs or was interrupted."""
    rows, first, last = 0, None, None
    for _, part in run_group.arrays():
        try:
            states = np.asarray(part[:, :, COL["state"]])
            start = int(part.attrs["start"])
        except Exception:  # noqa: BLE001 - an unreadable part: frames unknown
            continue
        have = ~np.isnan(states)
        rows += int(have.sum())
        frames = np.flatnonzero(have.any(axis=0)) + start
        if frames.size:
            first = int(frames[0]) if first is None else min(first, int(frames[0]))
            last = int(frames[-1]) if last is None else max(last, int(frames[-1]))
    run_id = run_name.removeprefix("run-")
    n = next((len(r.get("segments") or ()) for r in store.meta.get("runs", [])
              if str(r.get("id")) == run_id), 0)
    held = f"{rows} table rows of frames {first}-{last}" if rows else "no table rows yet"
    try:
        running = store.run_statuses().get(int(run_id)) == "running"
    except Exception:  # noqa: BLE001 - a run id or metadata edited by hand
        running = False
    if running:
        return (f"segment run {run_id} is still running: {PARTS_GROUP}/{run_name} holds {held}, "
                "not yet in the object tables; wait for the run to finish")
    return (f"segment run {run_id} was interrupted before merging its segments: "
            f"{PARTS_GROUP}/{run_name} holds {held}, not yet in the object tables; resume the "
            f"segment run (on the command line: track VIDEO --out {store.path.name} --segments "
            f"{n or 'N'} --resume, or the same batch again)")


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:120]}"


def _frames(array, n: int, name: str, problems: list[str],
            block: int = _BLOCK) -> Iterator[tuple[int, np.ndarray | None]]:
    """Every frame of ``array`` in blocks; an unreadable frame yields ``None`` and a problem."""
    for start in range(0, n, block):
        stop = min(n, start + block)
        try:
            frames = array[start:stop]
        except Exception:  # noqa: BLE001 - corrupt chunk: find which frame
            for t in range(start, stop):
                try:
                    yield t, array[t]
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"{name} frame {t}: unreadable chunk ({_error(exc)})")
                    yield t, None
            continue
        yield from ((start + i, frames[i]) for i in range(stop - start))


def _table(array, n: int, name: str, problems: list[str]) -> np.ndarray:
    rows = np.full((n, array.shape[1]), np.nan)
    for start in range(0, n, TABLE_CHUNK):
        stop = min(n, start + TABLE_CHUNK)
        try:
            rows[start:stop] = array[start:stop]
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name} rows {start}-{stop - 1}: unreadable chunk ({_error(exc)})")
    return rows


def _frame_block(h: int, w: int) -> int:
    """Frames of a full-frame uint32 array read at once: at most 64, at most ~64 MB."""
    return max(1, min(_BLOCK, (64 << 20) // max(1, h * w * 4)))


def _mask_frames(store, ids: list[int], problems: list[str]) -> Iterator[tuple[int, dict | None]]:
    """Every frame's masks of ``ids`` (``None`` where a chunk is unreadable), reading every
    chunk of the arrays that hold masks: the label layers (format 2) or, in a format-1
    project, the per-object mask arrays."""
    from .layers import masks_from_layers
    from .layout import LABELS_PATH, V1_MASK_PATH, overlap_path
    from .volume import PlaneView

    n, h, w = store.shape
    if store.format_version < 2:
        arrays = {}
        for obj_id in ids:
            name = V1_MASK_PATH.format(id=obj_id)
            try:
                arrays[obj_id] = _frames(store.group[name], n, name, problems)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{name}: array missing or unreadable ({_error(exc)})")
        for t in range(n):
            masks = {o: next(frames)[1] for o, frames in arrays.items()}
            yield t, None if any(m is None for m in masks.values()) else masks
        return
    block = _frame_block(h, w)
    names = [LABELS_PATH, *(overlap_path(k) for k in range(1, store.layers.num_overlap_layers + 1))]
    iters = []
    for name in names:
        try:
            array = store.group[name]
        except Exception as exc:  # noqa: BLE001 - missing or unreadable array metadata
            problems.append(f"{name}: array missing or unreadable ({_error(exc)})")
            return
        if store.planes is not None and array.shape == (*store.planes, h, w):
            array = PlaneView(array, store.planes)
        if array.shape != (n, h, w):
            problems.append(f"{name}: shape {array.shape} does not fit {n}x{h}x{w}")
            return
        iters.append(_frames(array, n, name, problems, block))
    known = np.asarray([0, *ids], dtype=np.uint64)
    for t in range(n):
        layers = [next(frames)[1] for frames in iters]
        if any(layer is None for layer in layers):
            yield t, None
            continue
        for k, layer in enumerate(layers):
            unknown = np.setdiff1d(np.unique(layer).astype(np.uint64), known)
            if unknown.size:
                problems.append(f"{names[k]} frame {t}: ids {unknown[:5].tolist()} are no object")
            if k and ((layer != 0) & ((layers[k - 1] == 0) | (layer <= layers[k - 1]))).any():
                problems.append(f"{names[k]} frame {t}: overlap pixels not above a lower id "
                                f"in {names[k - 1]}")
        yield t, masks_from_layers(layers, ids)


def verify_project(store) -> tuple[list[str], dict]:
    """Read every chunk of a project and check each table row against its mask.

    Returns the problems found (each naming the array and frame) and counts of what was read.
    """
    from .masks import mask_stats

    problems: list[str] = []
    unmerged = unmerged_segments(store)
    if unmerged is not None:
        problems.append(unmerged)
    n, h, w = store.shape
    meta = store.meta
    ids = sorted(o["id"] for o in meta["objects"])
    tables: dict[int, np.ndarray] = {}
    for obj_id in ids:
        try:
            table = store.group[f"objects/{obj_id}/table"]
        except Exception as exc:  # noqa: BLE001 - missing or unreadable array metadata
            problems.append(f"objects/{obj_id}: arrays missing or unreadable ({_error(exc)})")
            continue
        if table.shape != (n, len(COL)):
            problems.append(f"objects/{obj_id}: shape {table.shape} does not fit {n} frames")
            continue
        tables[obj_id] = _table(table, n, f"objects/{obj_id}/table", problems)
    if store.format_version < 2:  # the merged labels are an array of their own here
        known = np.asarray([0, *ids], dtype=np.uint64)
        for t, labels in _frames(store.labels, n, "labels/masklets/0", problems, _frame_block(h, w)):
            unknown = np.setdiff1d(np.unique(labels).astype(np.uint64), known) if labels is not None else []
            if len(unknown):
                problems.append(f"labels/masklets/0 frame {t}: ids {unknown[:5].tolist()} are no object")
    rows_checked = 0
    for t, masks in _mask_frames(store, ids, problems):
        for obj_id, table in tables.items():
            row = table[t]
            name = f"objects/{obj_id}/table row {t}"
            if np.isnan(row).all():
                continue
            rows_checked += 1
            state = row[COL["state"]]
            if np.isnan(state) or int(state) not in STATE_NAMES or state != int(state):
                problems.append(f"{name}: invalid state {state}")
            if masks is None or obj_id not in masks:
                continue
            area, bbox = mask_stats(np.asarray(masks[obj_id], bool))
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
