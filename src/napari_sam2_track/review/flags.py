"""Review flags: pure functions over the per-frame tables, streamed in blocks.

:func:`find_flags` walks each object's table rows (presence, area, bbox, state, run) in blocks
of ``8 * TABLE_CHUNK`` frames, so memory does not grow with the video, and returns runs of
flagged frames (:class:`~.models.Flag`), the presence spans (:class:`~.models.Masklet`) and
frames to check or to add as keyframes (:class:`~.models.Suggestion`). Thresholds come from
the schema's ``review`` section (:class:`~napari_sam2_track.schema.ReviewThresholds`);
``docs/review.md`` defines every kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..project import COL, STATE_EDITED, ProjectStore
from .models import BLOCK, ROUTINE_FLAGS, Flag, Masklet, Suggestion
from .second_opinion import AGREE, ONLY_PROJECT, ONLY_SECOND, disagreeing
from .tables import ReviewReport, SharedReader, TableSource
from .visibility import VISIBLE, VisibilityRule, iter_visibility

__all__ = ["ReviewReport", "SharedReader", "TableSource", "find_flags"]


def _reason(kind: str, score: float, detail: float, thresholds) -> str:
    if kind == "low_presence":
        return f"presence logit {detail:+.2f}, within ±{thresholds.presence_band:g} of 0"
    if kind == "presence_flip":
        return "presence turns on" if detail > 0 else "presence turns off"
    if kind == "area_change":
        return f"area {'grows' if detail > 0 else 'shrinks'} by {score:.0%} from the previous frame"
    if kind == "jump":
        return f"bounding-box centre moves {score:.2f}x the object's size from the previous frame"
    if kind == "too_small":
        return f"{detail:.0f} pixels, fewer than the schema's minimum"
    if kind == "border":
        return "touches the image border"
    if kind == "overlap":
        return f"{score:.0%} of its area overlaps object {int(detail)}"
    if kind == "edited":
        return "edited by hand after the last propagation; SAM 2's memory does not hold the edit"
    if kind == "unreviewed":
        return "not covered by a valid QC decision"
    if kind == "disagreement":
        if detail == ONLY_PROJECT:
            return "visible here, absent in the second opinion"
        if detail == ONLY_SECOND:
            return "absent here, visible in the second opinion"
        return (f"IoU {1 - score:.2f} with the second opinion's mask, below "
                f"{thresholds.disagreement_iou:g}")
    return kind


class _Runs:
    """Runs of consecutive flagged frames per (object, kind), merged across blocks."""

    def __init__(self):
        self.open: dict[tuple[int, str], list] = {}
        self.closed: list[tuple[int, str, list]] = []

    def add(self, obj: int, kind: str, frames: np.ndarray, scores: np.ndarray,
            details: np.ndarray | None = None) -> None:
        if frames.size == 0:
            return
        if details is None:
            details = np.zeros(frames.size)
        bounds = np.r_[0, np.flatnonzero(np.diff(frames) != 1) + 1, frames.size]
        key = (obj, kind)
        for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            k = s + int(np.argmax(scores[s:e]))
            run = [int(frames[s]), int(frames[e - 1]), float(scores[k]), int(frames[k]), float(details[k])]
            cur = self.open.get(key)
            if cur is not None and run[0] == cur[1] + 1:
                cur[1] = run[1]
                if run[2] > cur[2]:
                    cur[2:] = run[2:]
                continue
            if cur is not None:
                self.closed.append((obj, kind, cur))
            self.open[key] = run

    def finish(self) -> list[tuple[int, str, list]]:
        out = self.closed + [(o, k, r) for (o, k), r in self.open.items()]
        self.open, self.closed = {}, []
        return out


def _covered(ranges: Sequence[tuple[int, int]], lo: int, hi: int) -> np.ndarray:
    out = np.zeros(hi - lo, bool)
    for a, b in ranges:
        if b >= lo and a < hi:
            out[max(a, lo) - lo : min(b, hi - 1) - lo + 1] = True
    return out


class _Carry:
    """The previous frame of an object, for differences across block boundaries."""

    __slots__ = ("presence", "visible", "area", "cx", "cy")

    def __init__(self):
        self.presence, self.visible, self.area, self.cx, self.cy = np.nan, False, np.nan, np.nan, np.nan


def _object_block(runs: _Runs, spans: _Runs, obj: int, lo: int, rows: np.ndarray, codes: np.ndarray,
                  carry: _Carry, rule: VisibilityRule, th, reviewed,
                  compare: np.ndarray | None = None) -> None:
    frames = np.arange(lo, lo + len(rows))
    p, area, state = rows[:, COL["presence"]], rows[:, COL["area"]], rows[:, COL["state"]]
    cx = (rows[:, COL["x0"]] + rows[:, COL["x1"]]) / 2
    cy = (rows[:, COL["y0"]] + rows[:, COL["y1"]]) / 2
    vis = codes == VISIBLE
    ran = ~np.isnan(state)
    has_p = ~np.isnan(p)
    prev_p = np.r_[carry.presence, p[:-1]]
    prev_vis = np.r_[carry.visible, vis[:-1]]
    prev_area = np.r_[carry.area, area[:-1]]
    prev_cx, prev_cy = np.r_[carry.cx, cx[:-1]], np.r_[carry.cy, cy[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        if th.presence_band > 0:
            low = has_p & (np.abs(p) < th.presence_band)
            runs.add(obj, "low_presence", frames[low], 1 - np.abs(p[low]) / th.presence_band, p[low])
        flip = has_p & ~np.isnan(prev_p) & ((p > 0) != (prev_p > 0))
        runs.add(obj, "presence_flip", frames[flip], np.abs(p - prev_p)[flip], p[flip])
        pair = vis & prev_vis
        larger = np.maximum(area, prev_area)
        change = np.abs(area - prev_area) / larger
        hit = pair & (change > th.area_change)
        runs.add(obj, "area_change", frames[hit], change[hit], (area - prev_area)[hit])
        move = np.hypot(cx - prev_cx, cy - prev_cy) / np.sqrt(larger)
        hit = pair & (move > th.jump)
        runs.add(obj, "jump", frames[hit], move[hit])
        if rule.min_visible_pixels > 0:
            small = ran & (area > 0) & (area < rule.min_visible_pixels)
            runs.add(obj, "too_small", frames[small], 1 - area[small] / rule.min_visible_pixels, area[small])
        if rule.edge_policy in ("flag", "drop"):
            edge = ran & (area >= max(1, rule.min_visible_pixels)) & rule.touches_border(rows)
            runs.add(obj, "border", frames[edge], np.ones(int(edge.sum())))
    edited = state == STATE_EDITED
    runs.add(obj, "edited", frames[edited], np.ones(int(edited.sum())))
    if reviewed is not None:
        todo = vis & ~_covered(reviewed.get(obj, ()), lo, lo + len(rows))
        runs.add(obj, "unreviewed", frames[todo], np.ones(int(todo.sum())))
    if compare is not None:
        bad = disagreeing(compare, rows, th.disagreement_iou)
        score = np.where(compare[:, 1] != AGREE, 1.0, 1.0 - compare[:, 0])
        runs.add(obj, "disagreement", frames[bad], score[bad], compare[bad, 1])
    spans.add(obj, "span", frames[vis], np.zeros(int(vis.sum())))
    if len(rows):
        carry.presence, carry.visible, carry.area = p[-1], bool(vis[-1]), area[-1]
        carry.cx, carry.cy = cx[-1], cy[-1]


def _overlaps(runs: _Runs, source: TableSource, lo: int, rows: dict, codes: dict, fraction: float) -> None:
    """Overlap flags of one block. Pairs whose boxes never meet in the block are skipped; for
    the others the boxes are compared frame by frame, and shared pixels are counted only where
    boxes intersect enough (once per run of consecutive frames)."""
    if source.read_shared is None:
        return
    vis = {o: codes[o] == VISIBLE for o in source.ids}
    ids = [o for o in source.ids if vis[o].any()]
    x0, y0, x1, y1, area = COL["x0"], COL["y0"], COL["x1"], COL["y1"], COL["area"]
    seen = {o: rows[o][vis[o]] for o in ids}
    extent = {o: (s[:, x0].min(), s[:, y0].min(), s[:, x1].max(), s[:, y1].max())
              for o, s in seen.items()}
    best: dict[int, np.ndarray] = {}
    partner: dict[int, np.ndarray] = {}
    for k, i in enumerate(ids):
        for j in ids[k + 1 :]:
            a, b = extent[i], extent[j]
            if a[0] >= b[2] or b[0] >= a[2] or a[1] >= b[3] or b[1] >= a[3]:
                continue  # their boxes never meet in this block
            both_visible = np.flatnonzero(vis[i] & vis[j])
            ri, rj = rows[i][both_visible], rows[j][both_visible]
            ix0, iy0 = np.maximum(ri[:, x0], rj[:, x0]), np.maximum(ri[:, y0], rj[:, y0])
            ix1, iy1 = np.minimum(ri[:, x1], rj[:, x1]), np.minimum(ri[:, y1], rj[:, y1])
            inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
            cand = np.flatnonzero((inter > 0) & (inter > fraction * np.minimum(ri[:, area], rj[:, area])))
            if cand.size == 0:
                continue
            shared = np.zeros(cand.size)
            bounds = np.r_[0, np.flatnonzero(np.diff(both_visible[cand]) != 1) + 1, cand.size]
            for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                run = cand[s:e]  # positions in both_visible, consecutive frames
                r = slice(int(iy0[run].min()), int(iy1[run].max()))
                c = slice(int(ix0[run].min()), int(ix1[run].max()))
                first = lo + int(both_visible[run[0]])
                shared[s:e] = source.read_shared(i, j, first, first + e - s, r, c)
            at = both_visible[cand]
            for obj, other, own in ((i, j, ri[cand, area]), (j, i, rj[cand, area])):
                share = shared / own
                scores = best.setdefault(obj, np.zeros(len(vis[obj])))
                better = (share > fraction) & (share > scores[at])
                scores[at[better]] = share[better]
                partner.setdefault(obj, np.zeros(len(vis[obj])))[at[better]] = other
    for obj in sorted(best):
        hit = best[obj] > 0
        runs.add(obj, "overlap", lo + np.flatnonzero(hit), best[obj][hit], partner[obj][hit])


def find_flags(
    source: TableSource | ProjectStore,
    thresholds=None,
    rule: VisibilityRule | None = None,
    *,
    reviewed: Mapping[int, Sequence[tuple[int, int]]] | None = None,
    objects: Sequence[int] | None = None,
    block: int = BLOCK,
) -> ReviewReport:
    """Flags, presence spans and suggestions of a project or of in-memory tables.

    Args:
        source: a project store, or a :class:`TableSource`.
        thresholds: a :class:`~napari_sam2_track.schema.ReviewThresholds` (default: the
            project's schema, or the defaults).
        rule: the visibility rule (default: the project's schema, or the defaults).
        reviewed: ``{object: [(first, last), ...]}`` covered by valid QC decisions; frames of a
            span outside them are flagged ``unreviewed`` (``None``: no such flags).
        objects: only these objects.

    A volume project is flagged along z within each timepoint and along t
    (:mod:`.volume_flags`); plane indices stay the frames of the flags.
    """
    from ..schema import Schema

    store = source if isinstance(source, ProjectStore) else None
    if store is not None:
        schema = store.schema
        source = TableSource.from_store(store)
    else:
        schema = Schema.default()
    th = thresholds if thresholds is not None else schema.review
    rule = rule or VisibilityRule.from_schema(schema, source.height, source.width)
    if store is not None and store.is_volume:  # along z per timepoint, and along t
        from .volume_flags import find_volume_flags

        return find_volume_flags(store, source, th, rule, find_flags, reviewed=reviewed,
                                 objects=objects)
    ids = [o for o in source.ids if objects is None or o in objects]
    runs, spans = _Runs(), _Runs()
    carry = {o: _Carry() for o in ids}
    if source.num_frames:
        for lo, hi, rows, codes in iter_visibility(source.read_rows, ids, rule, 0, source.num_frames - 1, block):
            for obj in ids:
                compare = source.read_compare(obj, lo, hi) if source.read_compare else None
                _object_block(runs, spans, obj, lo, rows[obj], codes[obj], carry[obj], rule, th, reviewed,
                              compare)
            _overlaps(runs, source if objects is None else _subset(source, ids), lo, rows, codes, th.overlap)
    return _report(runs.finish(), spans.finish(), th)


def _subset(source: TableSource, ids: list[int]) -> TableSource:
    return TableSource(ids, source.num_frames, source.height, source.width, source.read_rows,
                       source.read_shared, source.read_compare)


def _report(runs, spans, th) -> ReviewReport:
    flags = [
        Flag.model_construct(object=o, start=r[0], end=r[1], kind=k, frame=r[3], score=r[2],
                             reason=_reason(k, r[2], r[4], th))
        for o, k, r in runs
    ]
    masklets = sorted((Masklet(object=o, start=r[0], end=r[1]) for o, _, r in spans),
                      key=lambda m: (m.object, m.start))
    suggestions: dict[tuple[int, int], list[str]] = {}
    previous_end: dict[int, int] = {}
    for m in masklets:
        gap = m.start - previous_end[m.object] - 1 if m.object in previous_end else None
        again = f", re-enters after {gap} frames" if gap is not None else ""
        flags.append(Flag(object=m.object, start=m.start, end=m.start, kind="span_start", frame=m.start,
                          score=1.0, reason=f"first frame of span {m.frames}{again}"))
        flags.append(Flag(object=m.object, start=m.end, end=m.end, kind="span_end", frame=m.end,
                          score=1.0, reason=f"last frame of span {m.frames}"))
        previous_end[m.object] = m.end
        suggestions.setdefault((m.object, (m.start + m.end) // 2), []).append(f"middle of span {m.frames}")
        suggestions.setdefault((m.object, m.end), []).append(f"end of span {m.frames}")
    flags.sort(key=lambda f: (f.object, f.start, f.kind))
    for f in flags:
        if f.kind not in ROUTINE_FLAGS:
            suggestions.setdefault((f.object, f.frame), []).append(f"worst {f.kind} frame of {f.frames}")
    return ReviewReport(
        flags=flags,
        spans=masklets,
        suggestions=[Suggestion(object=o, frame=t, why="; ".join(w)) for (o, t), w in sorted(suggestions.items())],
    )
