"""Review flags of a volume project: along z within each timepoint, and along t.

A volume project stores planes ``p = t * Z + z`` (``docs/store.md``). Flags keep plane indices
(``start``, ``end``, ``frame``), but no difference is ever taken across a timepoint boundary:

* **along z**, each timepoint's ``Z`` planes are flagged on their own by the 2D rules
  (:func:`.flags.find_flags` on a view of those planes): ``area_change`` and ``jump`` between
  adjacent slices, ``low_presence``, ``presence_flip``, ``too_small``, ``border``, ``overlap``,
  ``edited``, ``unreviewed``, ``disagreement``; each presence span along z is a masklet, and its
  first and last slices are flagged ``z_bottom`` and ``z_top`` (the structure's ends);
* **along t**, the object's physical volume (:meth:`ProjectStore.physical_volume`) is compared
  between consecutive timepoints (``volume_change``, over the schema's ``area_change``
  threshold), and the first and last timepoints of each run of timepoints where the object is
  present are flagged ``t_start`` and ``t_end``. A t-flag covers the planes of its
  timepoint(s); its ``frame`` is the slice where the object is largest.

:func:`where` and :func:`plane_fields` say a plane range as ``(t, z)`` for the CLI and the docks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..project import COL, ProjectStore
from .models import Flag, Masklet, Suggestion
from .tables import ReviewReport, TableSource

#: Kinds of the structure's ends along z, by the 2D kind they replace.
Z_ENDS = {"span_start": "z_bottom", "span_end": "z_top"}


def _offset_source(source, offset: int, depth: int):
    """A :class:`.tables.TableSource` over planes ``offset .. offset + depth - 1`` of ``source``,
    numbered from 0."""
    def read_rows(o, lo, hi):
        return source.read_rows(o, lo + offset, hi + offset)

    read_shared = None
    if source.read_shared is not None:
        def read_shared(i, j, first, stop, rows, cols):
            return source.read_shared(i, j, first + offset, stop + offset, rows, cols)

    read_compare = None
    if source.read_compare is not None:
        def read_compare(o, lo, hi):
            return source.read_compare(o, lo + offset, hi + offset)

    return TableSource(source.ids, depth, source.height, source.width, read_rows, read_shared,
                       read_compare)


def _cached_rows(read_rows, block: int, rows: int):
    """``read_rows`` of a ``rows``-row table reading whole aligned blocks once (timepoints are
    read a few rows at a time)."""
    cache: dict[int, tuple[int, np.ndarray]] = {}

    def read(o: int, lo: int, hi: int) -> np.ndarray:
        start = lo - lo % block
        if hi - start > block:
            return read_rows(o, lo, hi)
        hit = cache.get(o)
        if hit is None or hit[0] != start:
            hit = cache[o] = (start, read_rows(o, start, min(start + block, rows)))
        return hit[1][lo - start : hi - start]

    return read


def _shift(ranges: Mapping[int, Sequence[tuple[int, int]]] | None, offset: int, depth: int):
    if ranges is None:
        return None
    out: dict[int, list[tuple[int, int]]] = {}
    for o, rs in ranges.items():
        kept = [(max(a, offset) - offset, min(b, offset + depth - 1) - offset)
                for a, b in rs if b >= offset and a < offset + depth]
        if kept:
            out[o] = kept
    return out


def find_volume_flags(store: ProjectStore, base: TableSource, thresholds, rule,
                      plane_flags: Callable[..., ReviewReport], *, reviewed=None,
                      objects: Sequence[int] | None = None) -> ReviewReport:
    """Flags, masklets (presence spans along z, per timepoint) and suggestions of a volume
    project read through ``base``; see the module docstring. ``plane_flags`` is
    :func:`.flags.find_flags`, run on each timepoint's slices; other arguments as there."""
    n_t, n_z = store.volume_shape[:2]
    base.read_rows = _cached_rows(base.read_rows, max(n_z, 1024), n_t * n_z)
    ids = [o for o in base.ids if objects is None or o in objects]
    flags: list[Flag] = []
    spans: list[Masklet] = []
    suggestions: list[Suggestion] = []
    areas: dict[int, np.ndarray] = {o: np.full((n_t, n_z), np.nan) for o in ids}
    for t in range(n_t):
        off = t * n_z
        part = plane_flags(_offset_source(base, off, n_z), thresholds, rule,
                          reviewed=_shift(reviewed, off, n_z), objects=ids, block=n_z)
        for f in part.flags:
            kind = Z_ENDS.get(f.kind, f.kind)
            reason = f.reason.replace("previous frame", "previous slice")
            if kind != f.kind:
                end = "first" if kind == "z_bottom" else "last"
                reason = f"{end} slice of the structure at t={t} (z {f.start})"
            flags.append(f.model_copy(update=dict(start=f.start + off, end=f.end + off,
                                                  frame=f.frame + off, kind=kind, reason=reason)))
        spans += [Masklet(object=m.object, start=m.start + off, end=m.end + off) for m in part.spans]
        suggestions += [Suggestion(object=s.object, frame=s.frame + off,
                                   why=s.why.replace("span ", f"t={t} z span ")
                                   .replace("frame of ", f"slice of t={t} z "))
                        for s in part.suggestions]
        for o in ids:
            areas[o][t] = base.read_rows(o, off, off + n_z)[:, COL["area"]]
    for o in ids:
        along_t = _t_flags(store, o, thresholds, areas[o])
        flags += along_t
        suggestions += [Suggestion(object=o, frame=f.frame, why=f"worst volume_change of t={t}")
                        for f in along_t if f.kind == "volume_change"
                        for t in [store.plane_tz(f.start)[0]]]
    flags.sort(key=lambda f: (f.object, f.start, f.kind))
    merged: dict[tuple[int, int], list[str]] = {}
    for s in suggestions:
        merged.setdefault((s.object, s.frame), []).append(s.why)
    return ReviewReport(flags=flags, spans=sorted(spans, key=lambda m: (m.object, m.start)),
                        suggestions=[Suggestion(object=o, frame=p, why="; ".join(w))
                                     for (o, p), w in sorted(merged.items())])


def _t_flags(store: ProjectStore, obj: int, th, area: np.ndarray) -> list[Flag]:
    """``volume_change``, ``t_start`` and ``t_end`` flags of one object, from its ``(T, Z)``
    areas."""
    n_t, n_z = store.volume_shape[:2]
    volume = store.physical_volume(obj, area)
    seen = np.isfinite(area).any(axis=1)
    largest = np.where(seen, np.nanargmax(np.where(np.isfinite(area), area, -1), axis=1), n_z // 2)
    unit = next((u for a, u in zip(store.geometry.axes, store.geometry.units) if a in "zyx" and u), "")
    unit = f" {unit}³" if unit else " voxels"

    def flag(kind: str, t0: int, t1: int, at: int, score: float, reason: str) -> Flag:
        return Flag(object=obj, start=t0 * n_z, end=t1 * n_z + n_z - 1, kind=kind,
                    frame=at * n_z + int(largest[at]), score=score, reason=reason)

    out: list[Flag] = []
    present = np.nan_to_num(volume) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        for t in range(1, n_t):
            a, b = volume[t - 1], volume[t]
            if not (present[t - 1] and present[t]):
                continue
            change = abs(b - a) / max(a, b)
            if change > th.area_change:
                grows = "grows" if b > a else "shrinks"
                out.append(flag("volume_change", t, t, t, float(change),
                                f"volume {grows} by {change:.0%} from t={t - 1} "
                                f"({a:.4g} to {b:.4g}{unit})"))
    times = np.flatnonzero(present)
    if times.size:
        runs = np.split(times, np.flatnonzero(np.diff(times) != 1) + 1)
        for r in runs:
            first, last = int(r[0]), int(r[-1])
            out.append(flag("t_start", first, first, first, 1.0,
                            f"first timepoint of the object (t {first}-{last})"))
            out.append(flag("t_end", last, last, last, 1.0,
                            f"last timepoint of the object (t {first}-{last})"))
    return out


def plane_fields(store: ProjectStore, start: int, end: int) -> dict:
    """``{"t": [t0, t1], "z": [z0, z1]}`` of planes ``start..end`` of a volume project (``z`` the
    slices of the first and last plane); ``{}`` for a 2D project."""
    if not store.is_volume:
        return {}
    (t0, z0), (t1, z1) = store.plane_tz(start), store.plane_tz(end)
    return {"t": [t0, t1], "z": [z0, z1]}


def where(store: ProjectStore, start: int, end: int) -> str:
    """Planes ``start..end`` as text: ``"frames 3-9"`` for a 2D project, ``"t 2 z 3-9"``
    (or ``"t 1-2 z 0-19"`` across timepoints) for a volume."""
    fields = plane_fields(store, start, end)
    if not fields:
        return f"frames {start}-{end}"
    (t0, t1), (z0, z1) = fields["t"], fields["z"]
    t = f"{t0}" if t0 == t1 else f"{t0}-{t1}"
    if t0 != t1:
        return f"t {t} (planes {start}-{end})" if (z0, z1) != (0, store.volume_shape[1] - 1) else f"t {t}"
    return f"t {t} z {z0}" if z0 == z1 else f"t {t} z {z0}-{z1}"
