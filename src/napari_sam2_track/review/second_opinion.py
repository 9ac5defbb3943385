"""A second opinion: every object re-tracked from the project's keyframes by another model,
kept apart from the project's masks, compared with them, and adoptable frame range by frame
range.

:func:`run_second_opinion` seeds a fresh :class:`~napari_sam2_track.engine.tracker.StreamingTracker`
of the second model with the project's stored prompts (the one seeding path,
:mod:`napari_sam2_track.seeding`, through :func:`~napari_sam2_track.pipeline.track_in_store`)
and writes its results into a store of their own inside the project::

    second_opinion/<name>/                 a project store of the same layout (docs/store.md):
      labels/masklets/0, overlaps/<k>      the second model's masks as label layers
      objects/<id>/table                   its per-frame table (presence, area, box, state, run)
      objects/<id>/compare                 float64 (t, 7): iou, presence, area, x0, y0, x1, y1
      prompt_masks/...                     the mask prompts it was seeded with

``compare`` holds, per frame where both have a result, the IoU of the two masks, which of the
two sees the object (``presence``: 0 both or neither, 1 only the project, 2 only the second
opinion), and the project's area and box when compared: a frame whose row changed since (a
correction, an edit, an adoption) is not compared any more until the next second opinion.
The store is built beside its place and moved in when complete, so a cancelled or failed
second opinion leaves nothing, and ``overwrite`` replaces an earlier one only once the new one
is complete. The project's own masks and tables are never written.

:func:`adopt` takes the second model's masks and rows for one object over a frame range: a
correction like any other (snapshot first, so :func:`~.segments.undo_segment` restores the
project's masks; a change record invalidates QC decisions over those frames).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ReviewError, StoreError
from ..project import COL, STATE_EDITED, STATE_NOT_RUN, STATE_PROMPTED, STATE_PROPAGATED, ProjectStore
from ..project._jsonl import now_iso
from ..project.placement import Words
from ..project.layout import SECOND_OPINION_GROUP, compare_path

if TYPE_CHECKING:
    from ..engine.models import LoadedModel
    from ..recorded_run import Progress
    from ..sources import FrameSource

__all__ = [
    "COMPARE_COLUMNS",
    "has_result",
    "SECOND_OPINION_GROUP",
    "compare_reader",
    "image_size_note",
    "latest_opinion",
    "open_opinion",
    "opinion_info",
    "opinion_name",
    "opinion_names",
    "project_source",
    "run_second_opinion",
]

#: Columns of ``objects/<id>/compare`` in a second opinion.
COMPARE_COLUMNS = ("iou", "presence", "area", "x0", "y0", "x1", "y1")
#: ``presence`` column: which of the two sees the object.
AGREE, ONLY_PROJECT, ONLY_SECOND = 0, 1, 2
_COMMAND = "review second-opinion"
_WORDS = Words(out="--name", resume=None)
_VISIBLE_STATES = (STATE_PROMPTED, STATE_PROPAGATED, STATE_EDITED)


def opinion_name(model: "LoadedModel") -> str:
    """The default name of a model's second opinion: its name and input size, as a folder
    name (``sam2.1_hiera_large-1024``)."""
    stem = Path(model.name).name.removesuffix(".pt") if model.checkpoint else model.name
    return check_name(f"{stem}-{model.image_size}")


def check_name(name: str) -> str:
    """``name`` cleaned into a folder name, or :class:`ReviewError`."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.")
    if not clean:
        raise ReviewError(f"{name!r} cannot name a second opinion; use letters, digits, '.', '_' or '-'")
    return clean


def opinion_path(store: ProjectStore, name: str) -> Path:
    return store.path / SECOND_OPINION_GROUP / check_name(name)


def opinion_names(store: ProjectStore) -> list[str]:
    """The complete second opinions of a project, oldest first."""
    from ..project import is_project

    folder = store.path / SECOND_OPINION_GROUP
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if path.name.startswith(".") or not is_project(path):
            continue
        try:
            found.append((open_opinion(store, path.name).meta.get("created", ""), path.name))
        except Exception:  # noqa: BLE001 - a damaged one is left out of the list
            continue
    return [name for _, name in sorted(found)]


def latest_opinion(store: ProjectStore) -> str | None:
    """The most recent complete second opinion, if any."""
    names = opinion_names(store)
    return names[-1] if names else None


def open_opinion(store: ProjectStore, name: str | None = None) -> ProjectStore:
    """A second opinion's store, read-only (``name=None``: the most recent one)."""
    if name is None:
        name = latest_opinion(store)
        if name is None:
            raise ReviewError(f"{store.path.name} has no second opinion; run 'review second-opinion "
                              f"{store.path} --model M2' first")
    path = opinion_path(store, name)
    if not path.is_dir():
        known = ", ".join(opinion_names(store)) or "none"
        raise ReviewError(f"{store.path.name} has no second opinion {name!r} (second opinions: {known})")
    return ProjectStore.open(path, mode="r")


def opinion_info(store: ProjectStore, name: str | None = None) -> dict:
    """Name, model, input size, when it was made, and disagreeing frames per object."""
    opinion = open_opinion(store, name)
    meta = opinion.meta
    reader = compare_reader(store, opinion.path.name)
    threshold = store.schema.review.disagreement_iou
    per_object = {}
    for obj in store.object_ids():
        rows = store.table_rows(obj, 0, store.num_frames)
        cmp = reader(obj, 0, store.num_frames) if reader is not None else None
        if rows is None or cmp is None:
            continue
        bad = disagreeing(cmp, rows, threshold)
        per_object[obj] = {"compared": int(fresh_frames(cmp, rows).sum()), "disagreeing": int(bad.sum())}
    model = meta.get("model") or {}
    return {"name": opinion.path.name, "model": model.get("name"), "image_size": model.get("image_size"),
            "created": meta.get("created"), "compared": meta.get("second_opinion", {}).get("compared"),
            "threshold": threshold, "objects": per_object}


# ------------------------------------------------------------------------------ running one
def project_source(store: ProjectStore, video: str | Path | None = None) -> "FrameSource":
    """The project's video, opened as it was tracked (channel, window); ``video``: the video
    at another path. Refuses a video that is not the project's."""
    from ..pipeline import _check_fits, _describe
    from ..sources import open_source

    described = store.meta.get("source") or {}
    path = video or described.get("path")
    if not path:
        raise ReviewError(f"{store.path.name} does not name its video; pass --video PATH")
    if not Path(path).exists():
        raise ReviewError(f"the project's video {path} is not found; pass --video PATH")
    window = described.get("window")
    source = open_source(path, channel=described.get("channel"),
                         window=(window["low"], window["high"]) if window else None)
    try:
        _check_fits(store, source, _describe(source))
    except StoreError as exc:
        source.close()
        raise ReviewError(str(exc).split(";")[0] + "; pass the project's own video with --video") from None
    return source


def image_size_note(store: ProjectStore, model: "LoadedModel") -> str | None:
    """A note when the second model's input size is not the project's model's: allowed (both
    models' masks are resized to the video before they are compared), but said."""
    stored = (store.meta.get("model") or {}).get("image_size")
    if stored is None or int(stored) == int(model.image_size):
        return None
    _, h, w = store.shape
    return (f"the second model runs at {model.image_size} px, the project's at {stored} px; both "
            f"masks are compared at the video's {w}x{h}")


def check_can_run(store: ProjectStore, name: str, *, overwrite: bool) -> None:
    """Refuse, before a model is loaded, a second opinion that cannot be stored."""
    if store.read_only or not store.locked:
        raise ReviewError(f"{store.path} is open read-only; a second opinion needs the project's write lock")
    if not store.prompts.prompts:
        raise ReviewError(f"{store.path.name} has no keyframes to re-track; add prompts and track first")
    path = opinion_path(store, name)
    if path.exists() and not overwrite:
        raise ReviewError(f"the second opinion {path.name!r} already exists in {store.path.name}; "
                          "pass --overwrite to replace it or --name to keep both")


class _Discard(Exception):
    """Raised inside the second opinion's building block to leave nothing behind."""


def run_second_opinion(
    store: ProjectStore,
    source: "FrameSource",
    model: "LoadedModel",
    *,
    name: str | None = None,
    overwrite: bool = False,
    start: int | None = None,
    end: int | None = None,
    cancel: threading.Event | None = None,
) -> Iterator["Progress"]:
    """Re-track every object of ``store`` from its stored keyframes with ``model`` into
    ``second_opinion/<name>`` and compare; yields the tracking's progress.

    The caller holds the project's write lock (an open :class:`ProjectStore`, or the
    session's). A cancelled run stores nothing (and keeps an earlier second opinion of the
    same name). Memory does not grow with the video: frames stream through the tracker and
    the comparison reads one frame at a time.
    """
    from ..pipeline import Request, track_in_store
    from ..seeding import store_prompts

    name = check_name(name or opinion_name(model))
    check_can_run(store, name, overwrite=overwrite)
    prompts = store.prompts
    masks = {(p.object, p.frame): store.prompt_mask(p) for p in prompts.prompts if p.mask is not None}
    store.group.require_group(SECOND_OPINION_GROUP)
    n, h, w = store.shape
    try:
        with ProjectStore.building(opinion_path(store, name), num_frames=n, height=h, width=w,
                                   source=store.meta.get("source"), overwrite=overwrite,
                                   command=_COMMAND, words=_WORDS) as opinion:
            opinion.set_schema(store.schema)
            store_prompts(opinion, prompts, masks)
            yield from track_in_store(opinion, source, model=model, request=Request("both", start, end),
                                      cancel=cancel)
            if opinion.meta["runs"][-1]["status"] != "completed":
                raise _Discard
            compare(store, opinion)
            opinion.update_meta(second_opinion={"project_model": store.meta.get("model"),
                                                "compared": now_iso()})
    except _Discard:
        return
    opinion.close()


# ------------------------------------------------------------------------------ comparing
def _visible(rows: np.ndarray, min_pixels: int) -> np.ndarray:
    state, area = rows[:, COL["state"]], rows[:, COL["area"]]
    return np.isin(state, _VISIBLE_STATES) & (area >= max(1, min_pixels))


def has_result(rows: np.ndarray) -> np.ndarray:
    """Frames of a table block that hold a result (a state other than not-run)."""
    state = rows[:, COL["state"]]
    return np.isfinite(state) & (state != STATE_NOT_RUN)


def _boxes_meet(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = (COL[k] for k in ("x0", "y0", "x1", "y1"))
    return (a[:, x0] < b[:, x1]) & (b[:, x0] < a[:, x1]) & (a[:, y0] < b[:, y1]) & (b[:, y0] < a[:, y1])


def compare(store: ProjectStore, opinion: ProjectStore) -> None:
    """Write ``objects/<id>/compare`` of ``opinion`` against ``store``'s masks. Tables are
    read in blocks; masks only on frames where both see the object and their boxes meet,
    one frame at a time, so memory does not grow with the video."""
    from zarr.codecs import ZstdCodec

    from .models import BLOCK

    n = store.num_frames
    ids = [o for o in opinion.object_ids() if o in store.object_ids()]
    min_pixels = store.schema.min_visible_pixels
    arrays = {}
    for o in ids:
        name = compare_path(o)
        if name in opinion.group:
            del opinion.group[name]
        arrays[o] = opinion.group.create_array(
            name, shape=(n, len(COMPARE_COLUMNS)), chunks=(min(1024, n), len(COMPARE_COLUMNS)),
            dtype="float64", fill_value=np.nan, compressors=ZstdCodec(level=3))
        arrays[o].attrs["columns"] = list(COMPARE_COLUMNS)
    stats = [COL[k] for k in ("area", "x0", "y0", "x1", "y1")]
    for lo in range(0, n, BLOCK):
        hi = min(n, lo + BLOCK)
        out, need = {}, {}
        for o in ids:
            mine, theirs = store.table_rows(o, lo, hi), opinion.table_rows(o, lo, hi)
            cmp = out[o] = np.full((hi - lo, len(COMPARE_COLUMNS)), np.nan)
            if mine is None or theirs is None:
                continue
            both = has_result(mine) & has_result(theirs)
            a, b = _visible(mine, min_pixels), _visible(theirs, min_pixels)
            cmp[:, 0] = np.where(a == b, 1.0, 0.0)
            cmp[a & b, 0] = 0.0  # boxes apart: no shared pixel; else counted below
            cmp[:, 1] = np.select([a & ~b, b & ~a], [ONLY_PROJECT, ONLY_SECOND], AGREE)
            cmp[:, 2:] = mine[:, stats]
            cmp[~both] = np.nan
            need[o] = both & a & b & _boxes_meet(mine, theirs)
        for i in np.flatnonzero(np.any([need[o] for o in need], axis=0)) if need else ():
            t = lo + int(i)
            objs = [o for o in need if need[o][i]]
            ours, other = store.frame_masks(t, objs), opinion.frame_masks(t, objs)
            for o in objs:
                union = np.count_nonzero(ours[o] | other[o])
                out[o][i, 0] = np.count_nonzero(ours[o] & other[o]) / union if union else 1.0
        for o in ids:
            arrays[o][lo:hi] = out[o]


def fresh_frames(cmp: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Frames compared whose project row (area and box) is still the one compared."""
    now = rows[:, [COL[k] for k in ("area", "x0", "y0", "x1", "y1")]]
    then = cmp[:, 2:]
    same = ((now == then) | (np.isnan(now) & np.isnan(then))).all(axis=1)
    return ~np.isnan(cmp[:, 0]) & same


def disagreeing(cmp: np.ndarray, rows: np.ndarray, threshold: float) -> np.ndarray:
    """Frames where the project and the second opinion disagree: IoU below ``threshold``, or
    one of them sees the object and the other does not (only frames still as compared)."""
    with np.errstate(invalid="ignore"):
        bad = (cmp[:, 1] != AGREE) | (cmp[:, 0] < threshold)
    return fresh_frames(cmp, rows) & bad


def compare_reader(store: ProjectStore, name: str | None = None
                   ) -> Callable[[int, int, int], np.ndarray | None] | None:
    """``read(obj, lo, hi)``: rows ``lo:hi`` of the (most recent) second opinion's
    ``compare`` array of an object (``None``: not compared); ``None`` without a second opinion."""
    name = name or latest_opinion(store)
    if name is None:
        return None
    opinion = open_opinion(store, name)

    def read(obj: int, lo: int, hi: int) -> np.ndarray | None:
        key = compare_path(obj)
        if key not in opinion.group:
            return None
        return np.asarray(opinion.group[key][lo:hi], dtype=np.float64)

    read.opinion = opinion.path.name  # type: ignore[attr-defined]
    return read
