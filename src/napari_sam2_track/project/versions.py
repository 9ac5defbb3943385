"""Track versions: what each change of an object replaced, kept in the project to restore it.

Every propagation, correction, hand edit, undo and restore of an object records, *before* it
writes a frame, the object's own mask (from the label layers) and table row on that frame, and
its prompts on the frames it may change. Only the frames the change touches are stored::

    versions/<o>/                  group; attribute ``next``: the next version number
    versions/<o>/<n>/frames        int64 (capacity,): frame of each entry, -1 where unused
    versions/<o>/<n>/mask          bool (capacity, y, x), one chunk per frame (zstd)
    versions/<o>/<n>/table         float64 (capacity, 8): the table rows
    versions/<o>/<n>/prompt_masks/<t>   bool (y, x): mask prompts it replaced
    versions/<o>/<n> attributes    number, kind, who, time, what, state, frames (ranges it
                                   changed), empty (ranges that held no result before),
                                   prompt_span, prompts, target (of a restore), finished

Version ``n`` holds the object as it was just *before* change ``n``; :func:`restore_version`
brings the object back to that state by applying the versions ``latest .. n`` newest first
(an older entry of a frame wins), and records the restore as a version of its own, so nothing
is lost by restoring. A frame's entry is written (mask, row, then its number in ``frames``)
before the change writes the frame, so a change killed half-way can always be taken back:
:func:`recover_versions` (run when a project is opened for writing by a new holder of its lock)
rolls back a correction or hand edit left ``recording``, finishes a restore left
``restoring``, and keeps what an interrupted propagation wrote (``track --resume`` goes on
from it). Legacy single undo snapshots (``undo/<o>``) become the newest version.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ReviewError
from ._jsonl import now_iso
from .layers import masks_from_layers
from .layout import COL, STATE_NOT_RUN, TABLE_COLUMNS, UNDO_GROUP

if TYPE_CHECKING:
    from .store import ProjectStore

VERSIONS_GROUP = "versions"
_STORED = "store:"  # prefix of a mask prompt whose pixels the project keeps
_ROWS_CHUNK = 256
KINDS = ("propagation", "correction", "edit", "undo", "restore")


def _ranges(frames: Iterable[int]) -> list[list[int]]:
    """Sorted frames as ``[[first, last], ...]`` runs."""
    out: list[list[int]] = []
    for t in sorted(set(int(f) for f in frames)):
        if out and t == out[-1][1] + 1:
            out[-1][1] = t
        else:
            out.append([t, t])
    return out


def _frames_of(ranges: Iterable[Sequence[int]]) -> list[int]:
    return [t for a, b in ranges for t in range(int(a), int(b) + 1)]


def _who(who: str | None) -> str:
    if who is not None:
        return who
    from ..review.models import default_reviewer  # the reviewer setting, one rule

    try:
        return default_reviewer()
    except ReviewError:
        return "unknown"


@dataclass(frozen=True)
class VersionInfo:
    """One version of an object: the change it precedes (``kind``, ``who``, ``time``,
    ``what``), the frames that change wrote and the bytes its pre-image takes on disk."""

    object: int
    number: int
    kind: str
    who: str
    time: str
    what: str
    frames: list[list[int]] = field(default_factory=list)
    state: str = "complete"
    bytes: int = 0

    @property
    def span(self) -> tuple[int, int] | None:
        """The first and last frame the change wrote."""
        return (self.frames[0][0], self.frames[-1][1]) if self.frames else None

    def as_json(self) -> dict[str, Any]:
        return {"object": self.object, "version": self.number, "kind": self.kind, "who": self.who,
                "time": self.time, "what": self.what, "frames": self.frames, "state": self.state,
                "bytes": self.bytes}


def _obj_group(store: "ProjectStore", obj_id: int, create: bool = False):
    name = f"{VERSIONS_GROUP}/{obj_id}"
    if name in store.group:
        return store.group[name]
    return store.group.require_group(name) if create else None


def _dir_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


class Recording:
    """One object's version while its change is being written (see :func:`begin_version`)."""

    def __init__(self, store: "ProjectStore", obj_id: int, group, capacity: int,
                 states: tuple[int, np.ndarray] | None):
        self.store = store
        self.object = obj_id
        self.group = group
        self.capacity = capacity
        self._states = states  # (first frame, prior state per planned frame; -1 not planned)
        self._count = 0
        self.captured: set[int] = set()
        self.seen: set[int] = set()  # frames the change computed or wrote

    @property
    def number(self) -> int:
        return int(self.group.attrs["number"])

    def prior_empty(self, t: int) -> bool:
        """Whether frame ``t`` held no result for the object before the change began."""
        if self._states is None:
            return False
        lo, states = self._states
        return 0 <= t - lo < len(states) and states[t - lo] == STATE_NOT_RUN

    def capture(self, t: int, mask: np.ndarray, row: np.ndarray) -> None:
        """Keep the object's mask and row on frame ``t`` (before the change writes it)."""
        self.seen.add(t)
        if t in self.captured or self.prior_empty(t):
            return
        if self._count >= self.capacity:
            self._grow()
        k = self._count
        if mask.any():
            self.group["mask"][k] = mask
        self.group["table"][k] = row
        self.group["frames"][k] = t  # last: an entry counts once its frame number is written
        self._count += 1
        self.captured.add(t)

    def _grow(self) -> None:
        self.capacity = max(16, self.capacity * 2)
        for name in ("frames", "mask", "table"):
            array = self.group[name]
            array.resize((self.capacity, *array.shape[1:]))

    def finish(self, frames: Iterable[int] | None = None, **attrs: Any) -> VersionInfo:
        """Mark the version complete (``frames``: those the change wrote; default: every frame
        it saw) and keep the object's last ``keep_versions`` versions."""
        changed = _ranges(self.seen if frames is None else frames)
        self.group.attrs.update({"frames": changed, "state": "complete", "finished": now_iso(),
                                 **attrs})
        prune_versions(self.store, self.object)
        return _info(self.store, self.object, self.group)

    def discard(self) -> None:
        """Drop the version (the change did not happen)."""
        del self.store.group[f"{VERSIONS_GROUP}/{self.object}/{self.number}"]


def begin_version(store: "ProjectStore", obj_id: int, kind: str, what: str, frames: Iterable[Sequence[int]],
                  *, who: str | None = None, prompt_span: tuple[int, int] | None = None,
                  **attrs: Any) -> Recording:
    """Start a version of ``obj_id`` for a change (``kind``) that may write the frame
    ``ranges`` ``frames``; its prompts on ``prompt_span`` are kept now. Frames that hold no
    result yet are noted (``empty``) instead of copied."""
    from zarr.codecs import ZstdCodec

    n, h, w = store.shape
    frames = [(int(a), int(b)) for a, b in frames]
    lo = min((a for a, _ in frames), default=0)
    hi = max((b for _, b in frames), default=-1)
    states = np.full(max(0, hi - lo + 1), -1, np.int8)  # -1: not planned
    for a, b in frames:
        rows = store.table_rows(obj_id, a, b + 1)
        col = np.full(b - a + 1, np.nan) if rows is None else rows[:, COL["state"]]
        states[a - lo : b - lo + 1] = np.where(np.isfinite(col), col, STATE_NOT_RUN)
    empty = _ranges((np.flatnonzero(states == STATE_NOT_RUN) + lo).tolist())
    planned = int((states >= 0).sum())
    holder = _obj_group(store, obj_id, create=True)
    number = int(holder.attrs.get("next", 1))
    existing = [int(k) for k in holder.group_keys()] if hasattr(holder, "group_keys") else []
    number = max([number, *(k + 1 for k in existing)])
    holder.attrs["next"] = number + 1
    group = holder.require_group(str(number))
    capacity = max(1, min(planned - sum(b - a + 1 for a, b in empty), 1024))
    group.create_array("frames", shape=(capacity,), chunks=(_ROWS_CHUNK,), dtype="int64", fill_value=-1)
    group.create_array("mask", shape=(capacity, h, w), chunks=(1, h, w), dtype="bool", fill_value=False,
                       compressors=ZstdCodec(level=3))
    group.create_array("table", shape=(capacity, len(TABLE_COLUMNS)), chunks=(_ROWS_CHUNK, len(TABLE_COLUMNS)),
                       dtype="float64", fill_value=np.nan)
    prompts: list[dict] = []
    if prompt_span is not None:
        a, b = prompt_span
        prompts = [p for p in store.meta["prompts"] if p["object"] == obj_id and a <= p["frame"] <= b]
        for p in prompts:
            if (p.get("mask") or "").startswith(_STORED):
                group.create_array(f"prompt_masks/{p['frame']}",
                                   data=store.group[p["mask"].removeprefix(_STORED)][:])
    group.attrs.update({"number": number, "kind": kind, "who": _who(who), "time": now_iso(),
                        "what": what, "state": "recording", "empty": empty,
                        "prompt_span": list(prompt_span) if prompt_span else None,
                        "prompts": prompts, "frames": [], **attrs})
    return Recording(store, obj_id, group, capacity, (lo, states))


class RunVersions:
    """The versions of a tracking run, one per object, filled frame by frame: call
    :meth:`capture` with each result before it is written."""

    def __init__(self, recordings: dict[int, Recording], skip=None):
        self.recordings = recordings
        self.skip = skip
        #: ``{object: (mask, row)}`` as stored before the last captured result
        self.before: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._last: int | None = None

    @classmethod
    def begin(cls, store: "ProjectStore", ranges: Iterable[tuple[int, int, int]], kind: str, what: str,
              *, who: str | None = None, skip=None) -> "RunVersions":
        per: dict[int, list[tuple[int, int]]] = {}
        for o, a, b in ranges:
            per.setdefault(int(o), []).append((int(a), int(b)))
        return cls({o: begin_version(store, o, kind, what, r, who=who) for o, r in per.items()}, skip)

    def capture(self, result) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Keep the pre-image of every object of ``result`` on its frame (once per result)."""
        if self._last == id(result):
            return self.before
        self._last = id(result)
        t = int(result.frame)
        objs = [o for o in result.masks if o in self.recordings
                and not (self.skip is not None and self.skip(o, t))]
        self.before = {}
        todo = [o for o in objs if t not in self.recordings[o].captured]
        need = [o for o in todo if not self.recordings[o].prior_empty(t)]
        store = next(iter(self.recordings.values())).store if self.recordings else None
        masks = masks_from_layers(store.layers.read(t), need) if need else {}
        h, w = store.shape[1:] if store is not None else (0, 0)
        for o in todo:
            rec = self.recordings[o]
            rows = store.table_rows(o, t, t + 1) if o in need else None
            row = rows[0] if rows is not None and len(rows) else np.full(len(TABLE_COLUMNS), np.nan)
            mask = masks.get(o, np.zeros((h, w), bool))
            rec.capture(t, mask, row)
            self.before[o] = (mask, row)
        return self.before

    def finish(self, **attrs: Any) -> list[VersionInfo]:
        return [rec.finish(**attrs) for rec in self.recordings.values()]


# ------------------------------------------------------------------------- reading
def _info(store: "ProjectStore", obj_id: int, group) -> VersionInfo:
    a = group.attrs
    path = store.path / VERSIONS_GROUP / str(obj_id) / str(a["number"])
    return VersionInfo(object=obj_id, number=int(a["number"]), kind=str(a.get("kind", "?")),
                       who=str(a.get("who", "")), time=str(a.get("time", "")), what=str(a.get("what", "")),
                       frames=[list(map(int, r)) for r in a.get("frames", [])],
                       state=str(a.get("state", "complete")), bytes=_dir_bytes(path))


def _groups(store: "ProjectStore", obj_id: int) -> list:
    holder = _obj_group(store, obj_id)
    if holder is None:
        return []
    groups = [g for _k, g in holder.groups() if "number" in g.attrs]
    return sorted(groups, key=lambda g: int(g.attrs["number"]))


def list_versions(store: "ProjectStore", obj_id: int) -> list[VersionInfo]:
    """The complete versions of ``obj_id``, oldest first (a legacy undo snapshot is listed as
    version 0 until the project is next opened for writing)."""
    out = [_info(store, obj_id, g) for g in _groups(store, obj_id) if g.attrs.get("state") == "complete"]
    legacy = f"{UNDO_GROUP}/{obj_id}"
    if legacy in store.group and store.group[legacy].attrs.get("complete"):
        a = store.group[legacy].attrs
        out.insert(0, VersionInfo(obj_id, 0, "correction", "", str(a.get("time", "")),
                                  "correction (earlier undo snapshot)", [[int(a["start"]), int(a["end"])]]))
    return out


def newest_version(store: "ProjectStore", obj_id: int) -> VersionInfo | None:
    """The newest complete version of ``obj_id``: what an undo restores."""
    versions = list_versions(store, obj_id)
    return versions[-1] if versions else None


def _entries(group) -> dict[int, int]:
    """frame -> index of the version's entries."""
    frames = group["frames"][:]
    return {int(t): i for i, t in enumerate(frames) if t >= 0}


# ------------------------------------------------------------------------ restoring
def _restore_plan(store: "ProjectStore", obj_id: int, groups: list):
    """Apply ``groups`` newest first: per frame the entry to write (``None``: no result), and
    the object's prompts (each with the group holding its mask pixels)."""
    frames: dict[int, tuple[Any, int] | None] = {}
    prompts = [(p, None) for p in store.meta["prompts"] if p["object"] == obj_id]
    for g in sorted(groups, key=lambda g: -int(g.attrs["number"])):
        for t, i in _entries(g).items():
            frames[t] = (g, i)
        for t in _frames_of(g.attrs.get("empty", [])):
            frames[t] = None
        span = g.attrs.get("prompt_span")
        if span:
            a, b = span
            prompts = [(p, src) for p, src in prompts if not a <= p["frame"] <= b]
            prompts += [(p, g) for p in g.attrs.get("prompts", [])]
    return frames, prompts


def _apply(store: "ProjectStore", obj_id: int, frames: dict, prompts: list) -> list[int]:
    """Write the plan of :func:`_restore_plan`: prompts, then each frame's layers, then the
    table rows. Re-running it gives the same project. Returns the frames written."""
    h, w = store.shape[1:]
    for p, src in prompts:
        if src is not None and (p.get("mask") or "").startswith(_STORED):
            target = p["mask"].removeprefix(_STORED)
            pixels = src[f"prompt_masks/{p['frame']}"][:]
            if target in store.group:
                del store.group[target]
            store.group.create_array(target, data=pixels)
    others = [p for p in store.meta["prompts"] if p["object"] != obj_id]
    store.update_meta(prompts=[*others, *(p for p, _ in prompts)])
    store.ensure_object_table(obj_id)
    written = []
    rows: dict[int, np.ndarray] = {}
    for t in sorted(frames):
        entry = frames[t]
        if entry is None:
            current = store.table_rows(obj_id, t, t + 1)
            if current is None or not np.isfinite(current[0, COL["state"]]) or \
                    current[0, COL["state"]] == STATE_NOT_RUN:
                continue  # held no result then and holds none now
            mask, row = np.zeros((h, w), bool), np.full(len(TABLE_COLUMNS), np.nan)
        else:
            g, i = entry
            mask, row = g["mask"][i], g["table"][i]
        store.merge_labels(t, {obj_id: mask})
        rows[t] = row
        written.append(t)
    for a, b in _ranges(rows):  # rows after the layers: a row never claims a frame not written
        store.write_table_block(obj_id, a, np.stack([rows[t] for t in range(a, b + 1)]))
    return written


def _complete_groups(store: "ProjectStore", obj_id: int) -> list:
    return [g for g in _groups(store, obj_id) if g.attrs.get("state") == "complete"]


def restore_version(store: "ProjectStore", obj_id: int, number: int, *, who: str | None = None,
                    kind: str = "restore") -> VersionInfo:
    """Bring ``obj_id`` back to how it was just before change ``number``: its masks, table
    rows and prompts on every frame a change since then wrote. The restore is itself a
    version (``kind``: ``restore``, or ``undo`` for :func:`undo_newest`); returns it.
    :class:`ReviewError` (one line) if the version does not exist (any more)."""
    _migrate_legacy(store, obj_id)
    groups = [g for g in _complete_groups(store, obj_id) if int(g.attrs["number"]) >= number]
    if not groups or int(groups[0].attrs["number"]) != number:
        kept = [int(g.attrs["number"]) for g in _complete_groups(store, obj_id)]
        have = f"versions {kept[0]}-{kept[-1]} are kept" if kept else "it has no versions"
        raise ReviewError(f"object {obj_id} has no version {number} ({have}); list them with "
                          f"'review history {store.path} {obj_id}'")
    frames, prompts = _restore_plan(store, obj_id, groups)
    spans = [g.attrs["prompt_span"] for g in groups if g.attrs.get("prompt_span")]
    span = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else None
    mine = begin_version(store, obj_id, kind, f"{kind} to before version {number}", _ranges(frames),
                         who=who, prompt_span=span, target=number)
    h, w = store.shape[1:]
    for t in sorted(frames):  # the restore's own pre-image, complete before anything is written
        if not mine.prior_empty(t):
            rows = store.table_rows(obj_id, t, t + 1)
            mine.capture(t, store.mask(obj_id, t), rows[0])
    mine.group.attrs["state"] = "restoring"
    return _finish_restore(store, obj_id, mine.group, groups, frames, prompts)


def _finish_restore(store, obj_id, group, groups, frames, prompts) -> VersionInfo:
    written = _apply(store, obj_id, frames, prompts)
    number = int(group.attrs["target"])
    kind = group.attrs["kind"]
    rec = Recording(store, obj_id, group, 0, None)
    info = rec.finish(written or [])
    if written:
        a, b = written[0], written[-1]
        store.record_changes([(obj_id, a, b)], f"{kind} of object {obj_id} to before version {number}",
                             "undo")
    return info


def undo_newest(store: "ProjectStore", obj_id: int, *, who: str | None = None) -> VersionInfo:
    """Restore the object's newest version (an undo of its last change)."""
    _migrate_legacy(store, obj_id)
    newest = newest_version(store, obj_id)
    if newest is None:
        raise ReviewError(f"object {obj_id} has no change to undo")
    return restore_version(store, obj_id, newest.number, who=who, kind="undo")


def prune_versions(store: "ProjectStore", obj_id: int, keep: int | None = None) -> None:
    """Delete all but the newest ``keep`` complete versions (default: the schema's
    ``review.keep_versions``)."""
    if keep is None:
        keep = int(getattr(store.schema.review, "keep_versions", 10))
    groups = _complete_groups(store, obj_id)
    for g in groups[: max(0, len(groups) - keep)]:
        del store.group[f"{VERSIONS_GROUP}/{obj_id}/{g.attrs['number']}"]


# ------------------------------------------------------------------------ recovery
def _migrate_legacy(store: "ProjectStore", obj_id: int) -> None:
    """An ``undo/<o>`` snapshot of an earlier release becomes the newest version."""
    legacy = f"{UNDO_GROUP}/{obj_id}"
    if store.read_only or legacy not in store.group:
        return
    attrs = store.group[legacy].attrs.asdict()
    if not attrs.get("complete"):
        del store.group[legacy]
        return
    start, end = int(attrs["start"]), int(attrs["end"])
    holder = _obj_group(store, obj_id, create=True)
    numbers = [int(g.attrs["number"]) for g in _groups(store, obj_id)]
    number = max([int(holder.attrs.get("next", 1)), *(k + 1 for k in numbers)])
    src = store.path / UNDO_GROUP / str(obj_id)
    dst = store.path / VERSIONS_GROUP / str(obj_id) / str(number)
    g = store.group[legacy]
    if "frames" not in g:
        g.create_array("frames", data=np.arange(start, end + 1, dtype=np.int64))
    g.attrs.update({"number": number, "kind": "correction", "who": "", "what": "correction",
                    "state": "complete", "empty": [], "prompt_span": [start, end],
                    "frames": [[start, end]], "finished": attrs.get("corrected") or attrs.get("time")})
    holder.attrs["next"] = number + 1
    shutil.move(str(src), str(dst))


def recover_versions(store: "ProjectStore") -> list[str]:
    """Finish what a writer killed half-way left (run when the write lock is newly taken):
    roll back a correction or hand edit still ``recording``, finish a restore still
    ``restoring``, keep an interrupted propagation's version; migrate legacy undo snapshots.
    Returns one line per thing done."""
    done = []
    if UNDO_GROUP in store.group:
        for key in list(store.group[UNDO_GROUP].group_keys()):
            _migrate_legacy(store, int(key))
    if VERSIONS_GROUP not in store.group:
        return done
    for key in list(store.group[VERSIONS_GROUP].group_keys()):
        obj_id = int(key)
        for g in _groups(store, obj_id):
            state, kind, number = g.attrs.get("state"), g.attrs.get("kind"), int(g.attrs["number"])
            if state == "restoring":
                target = int(g.attrs["target"])
                older = [x for x in _complete_groups(store, obj_id) if target <= int(x.attrs["number"]) < number]
                frames, prompts = _restore_plan(store, obj_id, older)
                _finish_restore(store, obj_id, g, older, frames, prompts)
                done.append(f"finished the interrupted {kind} of object {obj_id}")
            elif state == "recording" and kind in ("correction", "edit", "undo", "restore"):
                frames, prompts = _restore_plan(store, obj_id, [g])
                written = _apply(store, obj_id, frames, prompts)
                del store.group[f"{VERSIONS_GROUP}/{obj_id}/{number}"]
                if written:
                    store.record_changes([(obj_id, written[0], written[-1])],
                                         f"interrupted {kind} of object {obj_id} rolled back", "undo")
                done.append(f"rolled back the interrupted {kind} of object {obj_id}")
            elif state == "recording":
                Recording(store, obj_id, g, 0, None).finish(
                    [t for t in _entries(g)] + _frames_of(g.attrs.get("empty", [])), interrupted=True)
    return done


def edit_frame(store: "ProjectStore", t: int, frame_labels: np.ndarray, *, who: str | None = None) -> list[int]:
    """:meth:`~.store.ProjectStore.write_edited_labels` with a version of each object it
    changes (kept before the frame is written); returns the objects changed."""
    frame_labels = np.asarray(frame_labels)
    layers = store.layers.read(t) if store.layers.has_frame(t) else [np.zeros(frame_labels.shape, np.uint32)]
    candidates = sorted((set(np.unique(np.concatenate([np.unique(x) for x in (*layers, frame_labels)])).tolist())
                         - {0}))
    old = masks_from_layers(layers, candidates)
    recordings = {}
    for o in candidates:
        rec = begin_version(store, o, "edit", f"edited by hand on frame {t}", [(t, t)], who=who)
        rows = store.table_rows(o, t, t + 1)
        rec.capture(t, old[o], rows[0] if rows is not None else np.full(len(TABLE_COLUMNS), np.nan))
        rec.seen.add(t)
        recordings[o] = rec
    changed = store.write_edited_labels(t, frame_labels)
    for o, rec in recordings.items():
        if o in changed:
            rec.finish([t])
        else:
            rec.discard()
    return changed
