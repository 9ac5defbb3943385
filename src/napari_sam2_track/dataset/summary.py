"""What a project says about its item: frames, objects, flags, QC coverage, effort, and the
stages that follow from them, cached so that ``dataset status`` reads only small files.

A project's summary is computed from its metadata (``zarr.json``), its per-object tables (never
a mask: the overlap check of the flags is left out) and its review logs. It is cached in the
dataset's ``.cache/summaries.json``, keyed by the size and modification time of the files it was
read from (``zarr.json``, ``review/decisions.jsonl``, ``changes.jsonl``, ``events.jsonl``), so a
cached summary costs five ``stat`` calls. The cache is a convenience: it is written whole under
a temporary name and renamed, and losing it (or a race between two writers) only costs a
recomputation. Tables written in place during a run do not change the key: frame counts of a
running item are those of its last metadata update (the run's start), and are refreshed when
the run ends.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .records import StageRecord

CACHE_DIR = ".cache"
CACHE_FILE = "summaries.json"
CACHE_VERSION = 1
#: summaries to compute per process before :meth:`SummaryCache.prefetch` uses several
PARALLEL_MIN = 50
KEY_FILES = ("zarr.json", "review/decisions.jsonl", "review/changes.jsonl", "review/events.jsonl",
             ".napari_sam2_track.dataset.json")


def project_key(project: Path) -> list | None:
    """Sizes and modification times of the files a summary is read from (``None``: no project)."""
    key = []
    base = str(project)
    for name in KEY_FILES:
        try:
            st = os.stat(os.path.join(base, name))  # strings: cheaper than Paths, 5 per item
        except OSError:
            if name == "zarr.json":
                return None
            key.append(None)
            continue
        key.append([st.st_size, st.st_mtime_ns])
    return key


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.astimezone(_dt.timezone.utc).isoformat()
    return str(value)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _overlap(a: int, b: int, ranges: list[tuple[int, int]]) -> int:
    return sum(max(0, min(b, y) - max(a, x) + 1) for x, y in ranges)


class _MetadataGroup:
    """Stands in for a project's zarr group in a read-only :class:`~..project.ProjectStore`
    that reads small files only: the attributes come from ``zarr.json``; an array is opened
    with zarr only when it is read through zarr (a chunk layout the store does not read
    itself), so a summary costs no zarr import and no zarr open."""

    def __init__(self, path: Path, attrs: dict):
        self.path = path
        self.attrs = attrs

    def __getitem__(self, name: str):
        if not (self.path / name / "zarr.json").is_file():
            raise KeyError(name)
        return _ZarrOnRead(self.path / name)


class _ZarrOnRead:
    """A project array opened with zarr at its first read."""

    def __init__(self, path: Path):
        self.path = path

    def __getitem__(self, key):
        import zarr

        return zarr.open_array(str(self.path), mode="r", zarr_format=3)[key]


def open_metadata_only(project: Path):
    """The project read-only as :meth:`ProjectStore.open` (``mode="r"``) opens it, without
    zarr: its metadata read from ``zarr.json``, its tables by chunk file. A project that
    :meth:`~..project.ProjectStore.open` would refuse is opened by it, which says why."""
    from ..project import ATTR_KEY, FORMAT_VERSION, ProjectStore, is_project
    from ..project.check import metadata_problem

    try:
        doc = json.loads((project / "zarr.json").read_bytes())
        attrs = doc.get("attributes") if isinstance(doc, dict) else None
    except (OSError, ValueError):
        attrs = None
    meta = attrs.get(ATTR_KEY) if isinstance(attrs, dict) else None
    if (not isinstance(meta, dict) or meta.get("building") or not is_project(project)
            or metadata_problem(meta) or int(meta.get("format_version", 1)) > FORMAT_VERSION):
        return ProjectStore.open(project, mode="r")
    return ProjectStore(project, _MetadataGroup(project, attrs), read_only=True)


def compute_summary(project: Path) -> dict[str, Any]:
    """A project's summary (see the module docstring); ``{"error": ...}`` if it cannot be read."""
    from ..errors import Sam2TrackError
    from ..review.analytics import report
    from ..review.flags import TableSource
    from ..review.models import ROUTINE_FLAGS, read_review
    from ..review.visibility import store_row_reader

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store = open_metadata_only(project)
            meta = store.meta
            n, h, w = store.shape
            ids = store.object_ids()
            read_stored = store_row_reader(store)
            tracked = np.zeros(n, bool)

            def read_rows(obj: int, lo: int, hi: int) -> np.ndarray:
                rows = read_stored(obj, lo, hi)  # the flags read every row once: count them
                tracked[lo:lo + len(rows)] |= ~np.isnan(rows[:, 6])
                return rows

            review = read_review(store)
            reviewed = {o: _merge(r) for o, r in review.reviewed_ranges().items()}
            found = _flags(store, TableSource(ids, n, h, w, read_rows, None))
            effort = report(store)["project"]
    except (Sam2TrackError, OSError, ValueError, KeyError) as exc:
        return {"error": " ".join(str(exc).split())[:300]}
    visible = sum(m.end - m.start + 1 for m in found.spans)
    covered = sum(_overlap(m.start, m.end, reviewed.get(m.object, [])) for m in found.spans)
    open_flags = sum(
        1 for f in found.flags
        if f.kind not in ROUTINE_FLAGS
        and _overlap(f.start, f.end, reviewed.get(f.object, [])) < f.end - f.start + 1
    )
    statuses = store.run_statuses()
    runs = [{"status": statuses.get(r["id"], r.get("status")), "finished": r.get("finished"),
             "started": r.get("started"), "host": r.get("host", "")} for r in meta.get("runs", [])]
    valid = [s.decision for s in review.statuses if s.valid]
    rejected = sorted((d for o in {d.object for d in valid} for _, _, d in review.intervals(o)
                       if d.status == "unsatisfactory"), key=lambda d: d.time)
    times = [meta.get("created")] + [r["finished"] or r["started"] for r in runs]
    times += [_iso(c.time) for c in review.changes] + [_iso(d.time) for d in review.decisions]
    times = [t for t in times if t]
    return {
        "frames": int(n),
        "height": int(h),
        "width": int(w),
        "objects": len(ids),
        "prompts": len(meta.get("prompts") or []),
        "created": meta.get("created"),
        "tracked_frames": int(tracked.sum()),
        "runs": runs,
        "visible_frames": int(visible),
        "covered_frames": int(covered),
        "qc_coverage": round(100.0 * covered / visible, 2) if visible else None,
        "open_flags": int(open_flags),
        "decisions": len(valid),
        "first_decision": ({"time": _iso(valid[0].time), "reviewer": valid[0].reviewer}
                           if valid else None),
        "last_decision": ({"time": _iso(valid[-1].time), "reviewer": valid[-1].reviewer}
                          if valid else None),
        "rejected": ({"time": _iso(rejected[-1].time), "reviewer": rejected[-1].reviewer,
                      "count": len(rejected)} if rejected else None),
        "last_change": _iso(review.changes[-1].time) if review.changes else None,
        "active_seconds": float(effort["active_seconds"]),
        "annotated_frames": int(effort["annotated_frames"]),
        "last_activity": max(times, key=_parse) if times else None,
        "schema": meta.get("schema"),
    }


def _flags(store, source):
    """The project's flags as ``review flags`` finds them (its schema's thresholds; a volume
    project along z and t), from the rows ``source`` reads (no mask: no overlap flags)."""
    from ..review.flags import find_flags
    from ..review.visibility import VisibilityRule

    schema = store.schema
    rule = VisibilityRule.from_schema(schema, source.height, source.width)
    if store.is_volume:
        from ..review.volume_flags import find_volume_flags

        return find_volume_flags(store, source, schema.review, rule, find_flags)
    return find_flags(source, schema.review, rule)


def _parse(text: str | None) -> _dt.datetime:
    try:
        value = _dt.datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)


class SummaryCache:
    """Project summaries of a dataset, kept in ``.cache/summaries.json``."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / CACHE_DIR / CACHE_FILE
        self.entries: dict[str, dict] = {}
        self.dirty = False
        self.computed = 0
        #: keys read by :meth:`prefetch`, taken by the next :meth:`get` of their project
        self._keys: dict[str, list | None] = {}
        try:
            data = json.loads(self.path.read_bytes())
            if isinstance(data, dict) and data.get("version") == CACHE_VERSION:
                self.entries = dict(data.get("projects") or {})
        except (OSError, ValueError):
            pass

    def get(self, project: Path) -> dict[str, Any] | None:
        """The project's summary (``None``: there is no project)."""
        key = self._keys.pop(str(project), None) or project_key(project)
        if key is None:
            return None
        entry = self.entries.get(str(project))
        if entry is not None and entry.get("key") == key:
            return entry["summary"]
        return self._computed(project, key, compute_summary(project))

    def _computed(self, project: Path, key: list, summary: dict[str, Any]) -> dict[str, Any]:
        self.computed += 1
        if project_key(project) == key and "error" not in summary:  # unchanged while read
            self.entries[str(project)] = {"key": key, "summary": summary}
            self.dirty = True
        return summary

    def prefetch(self, projects: Sequence[Path]) -> None:
        """Compute the summaries of ``projects`` not cached yet on all cores at once, when
        there are many and this process may fork (no other thread runs: the CLI, not a dock);
        otherwise :meth:`get` computes them one by one as they are asked for."""
        stale = []
        for project in projects:
            key = self._keys[str(project)] = project_key(project)  # read once: get() takes it
            entry = self.entries.get(str(project))
            if key is not None and (entry is None or entry.get("key") != key):
                stale.append((project, key))
        workers = min(os.cpu_count() or 1, len(stale) // PARALLEL_MIN)
        if workers < 2 or threading.active_count() > 1:
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if "fork" not in multiprocessing.get_all_start_methods():
            return
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            chunk = -(-len(stale) // (workers * 4))
            summaries = pool.map(compute_summary, [p for p, _ in stale], chunksize=chunk)
            for (project, key), summary in zip(stale, summaries):
                self._computed(project, key, summary)

    def save(self) -> None:
        """Write the cache if it changed (best effort: a read-only folder keeps no cache)."""
        if not self.dirty:
            return
        tmp = self.path.with_name(f"{CACHE_FILE}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.path.parent.mkdir(exist_ok=True)
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "projects": self.entries}),
                           encoding="utf-8")
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError:
            pass
        finally:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def derived_stages(item, summary: dict | None = None, cache: SummaryCache | None = None
                   ) -> list[StageRecord]:
    """The stage changes an item's project (or its prompts file) shows, oldest first."""
    if summary is None:
        summary = (cache or SummaryCache(item.project.parent)).get(item.project)
    out: list[StageRecord] = []

    def add(stage: str, time, who: str = "", note: str = "") -> None:
        if time:
            out.append(StageRecord(item=item.id, stage=stage, who=who or "", time=_parse(time),
                                   note=note, derived=True))

    if summary is None or "error" in summary:
        if item.prompts is not None and item.prompts.is_file():
            mtime = _dt.datetime.fromtimestamp(item.prompts.stat().st_mtime, _dt.timezone.utc)
            add("prompted", mtime.isoformat(), note="prompts file present")
        return out
    if summary["prompts"] or (item.prompts is not None and item.prompts.is_file()):
        add("prompted", summary["created"], note=f"{summary['prompts']} prompts in the project")
    completed = [r for r in summary["runs"] if r["status"] == "completed"]
    if summary["tracked_frames"] and completed:
        last = max([completed[-1]["finished"] or completed[-1]["started"],
                    summary["last_change"]], key=_parse)
        add("tracked", last, completed[-1]["host"],
            f"{summary['tracked_frames']} of {summary['frames']} frames tracked")
    if summary["first_decision"]:
        add("in_review", summary["first_decision"]["time"], summary["first_decision"]["reviewer"],
            f"QC coverage {summary['qc_coverage']}%")
    if summary["rejected"]:
        add("returned", summary["rejected"]["time"], summary["rejected"]["reviewer"],
            f"{summary['rejected']['count']} masklets unsatisfactory")
    elif summary["qc_coverage"] == 100.0 and summary["last_decision"]:
        add("verified", summary["last_decision"]["time"], summary["last_decision"]["reviewer"],
            "every visible frame approved")
    out.sort(key=lambda r: r.time)
    return out
