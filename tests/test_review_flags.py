"""Review flags on synthetic per-frame tables with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.review.flags import TableSource, find_flags
from napari_sam2_track.review.visibility import (
    ABSENT,
    NOT_RUN,
    OCCLUDED,
    OUT_OF_FRAME,
    VISIBLE,
    VisibilityRule,
)
from napari_sam2_track.schema import ReviewThresholds, Schema
from napari_sam2_track.project import STATE_ABSENT, STATE_EDITED, STATE_PROMPTED, STATE_PROPAGATED

H = W = 100


def table(n: int) -> np.ndarray:
    return np.full((n, 8), np.nan)


def put(tab, t, box=(40, 40, 50, 50), area=None, presence=6.0, state=STATE_PROPAGATED):
    """A visible row: a bbox (x0, y0, x1, y1) and its area (default: the full box)."""
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0) if area is None else area
    tab[t] = [presence, area, x0, y0, x1, y1, state, 1]


def gone(tab, t, presence=-6.0):
    tab[t] = [presence, 0, np.nan, np.nan, np.nan, np.nan, STATE_ABSENT, 1]


def flags_of(report, kind, obj=1):
    return [(f.start, f.end, f.frame) for f in report.flags if f.kind == kind and f.object == obj]


def run(tables, masks=None, **kw):
    return find_flags(TableSource.from_arrays(tables, H, W, masks), **kw)


def test_no_span_at_all():
    tab = table(10)
    for t in range(3, 10):
        gone(tab, t)
    report = run({1: tab})
    assert report.spans == []
    assert flags_of(report, "span_start") == [] and flags_of(report, "span_end") == []
    assert flags_of(report, "presence_flip") == [] and flags_of(report, "low_presence") == []
    assert report.suggestions == []


def test_one_span_with_not_run_rows_around_it():
    tab = table(12)  # frames 0-1 and 10-11 not run
    for t in range(2, 10):
        put(tab, t)
    report = run({1: tab})
    assert [(m.start, m.end) for m in report.spans] == [(2, 9)]
    assert flags_of(report, "span_start") == [(2, 2, 2)]
    assert flags_of(report, "span_end") == [(9, 9, 9)]
    # a NaN row next to a present one is no flip, no area change and no jump
    assert flags_of(report, "presence_flip") == []
    assert flags_of(report, "area_change") == [] and flags_of(report, "jump") == []
    assert [(s.frame, s.why) for s in report.suggestions] == [
        (5, "middle of span 2-9"), (9, "end of span 2-9")]


def test_many_spans_flips_and_reentry():
    tab = table(20)
    visible = [1, 2, 3, 7, 8, 12, 15, 16, 17, 18]
    for t in range(20):
        put(tab, t) if t in visible else gone(tab, t)
    report = run({1: tab})
    assert [(m.start, m.end) for m in report.spans] == [(1, 3), (7, 8), (12, 12), (15, 18)]
    assert [f[0] for f in flags_of(report, "span_start")] == [1, 7, 12, 15]
    assert [f[0] for f in flags_of(report, "span_end")] == [3, 8, 12, 18]
    flips = [f[:2] for f in flags_of(report, "presence_flip")]  # adjacent flips form one run
    assert flips == [(1, 1), (4, 4), (7, 7), (9, 9), (12, 13), (15, 15), (19, 19)]
    reentry = [f.reason for f in report.flags if f.kind == "span_start"]
    assert reentry[0] == "first frame of span 1-3"
    assert reentry[1].endswith("re-enters after 3 frames")


def test_low_presence_band_and_worst_frame():
    tab = table(10)
    for t, p in enumerate([6, 6, 1.5, 0.3, -1.0, 6, 6, 6, -1.9, 6]):
        put(tab, t, presence=p) if p > 0 else gone(tab, t, presence=p)
    report = run({1: tab}, thresholds=ReviewThresholds(presence_band=2.0))
    assert flags_of(report, "low_presence") == [(2, 4, 3), (8, 8, 8)]
    worst = next(f for f in report.flags if f.kind == "low_presence")
    assert worst.score == pytest.approx(1 - 0.3 / 2)
    assert "+0.30" in worst.reason
    assert any(s.frame == 3 and "worst low_presence" in s.why for s in report.suggestions)


def test_area_change_and_jump_are_relative_to_object_size():
    tab = table(8)
    put(tab, 0, (10, 10, 20, 20))  # 100 px
    put(tab, 1, (10, 10, 20, 21))  # 110 px: +9 %
    put(tab, 2, (10, 10, 20, 26))  # 160 px: +50 px, 31 % of the larger area
    put(tab, 3, (12, 10, 22, 26))  # moves 2 px, size ~12.6
    put(tab, 4, (30, 10, 40, 26))  # moves 18 px: 1.42x
    gone(tab, 5)
    put(tab, 6, (80, 80, 90, 90))  # far away, but after an absent frame: no jump
    put(tab, 7, (80, 80, 90, 90))
    report = run({1: tab}, thresholds=ReviewThresholds(area_change=0.25, jump=0.5))
    assert flags_of(report, "area_change") == [(2, 2, 2)]
    change = next(f for f in report.flags if f.kind == "area_change")
    assert change.score == pytest.approx(50 / 160) and "grows" in change.reason
    assert flags_of(report, "jump") == [(4, 4, 4)]
    assert next(f for f in report.flags if f.kind == "jump").score == pytest.approx(18 / np.sqrt(160))


def test_schema_minimum_border_and_edited():
    tab = table(6)
    put(tab, 0, (40, 40, 50, 50))
    put(tab, 1, (40, 40, 45, 45), area=20)  # fewer than 50 pixels
    put(tab, 2, (0, 40, 10, 50))  # touches the left border
    put(tab, 3, (40, 40, 50, 50), state=STATE_EDITED)
    put(tab, 4, (40, 40, 50, 50), state=STATE_EDITED)
    put(tab, 5, (40, 40, 50, 50), state=STATE_PROMPTED)
    keep = VisibilityRule(H, W, min_visible_pixels=50, edge_policy="keep")
    report = run({1: tab}, rule=keep)
    assert flags_of(report, "too_small") == [(1, 1, 1)]
    assert flags_of(report, "border") == []
    assert flags_of(report, "edited") == [(3, 4, 3)]
    # the small frame is not visible: it splits the spans
    assert [(m.start, m.end) for m in report.spans] == [(0, 0), (2, 5)]
    flag = VisibilityRule(H, W, min_visible_pixels=50, edge_policy="flag")
    assert flags_of(run({1: tab}, rule=flag), "border") == [(2, 2, 2)]
    drop = VisibilityRule(H, W, min_visible_pixels=50, edge_policy="drop")
    report = run({1: tab}, rule=drop)
    assert flags_of(report, "border") == [(2, 2, 2)]
    assert [(m.start, m.end) for m in report.spans] == [(0, 0), (3, 5)]
    assert flags_of(run({1: tab}, rule=VisibilityRule(H, W)), "too_small") == []


def test_overlap_counts_shared_pixels_only_where_boxes_meet():
    n = 4
    masks = {1: np.zeros((n, H, W), bool), 2: np.zeros((n, H, W), bool), 3: np.zeros((n, H, W), bool)}
    masks[1][:, 10:30, 10:30] = True  # 400 px
    masks[2][0, 50:60, 50:60] = True  # far away
    masks[2][1, 25:35, 25:35] = True  # 25 px shared: 6 % of object 1, 25 % of object 2
    masks[2][2, 20:30, 10:30] = True  # inside object 1: 200 px, 50 % / 100 %
    masks[2][3, 15:25, 15:25] = True  # inside object 1's box, in a hole of its mask
    masks[1][3, 15:25, 15:25] = False
    masks[3][:, 80:90, 80:90] = True
    tables = {}
    for o, m in masks.items():
        tab = table(n)
        for t in range(n):
            ys, xs = np.nonzero(m[t])
            put(tab, t, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), area=int(m[t].sum()))
        tables[o] = tab
    reads = []

    source = TableSource.from_arrays(tables, H, W, masks)
    inner = source.read_shared
    source.read_shared = lambda i, j, a, b, *crop: reads.extend((i, j, t) for t in range(a, b)) or inner(
        i, j, a, b, *crop)
    report = find_flags(source, thresholds=ReviewThresholds(overlap=0.2))
    assert flags_of(report, "overlap", 2) == [(1, 2, 2)]
    assert flags_of(report, "overlap", 1) == [(2, 2, 2)]
    assert flags_of(report, "overlap", 3) == []
    f1 = next(f for f in report.flags if f.kind == "overlap" and f.object == 1)
    assert f1.score == pytest.approx(0.5) and f1.reason == "50% of its area overlaps object 2"
    # boxes of 1 and 2 meet on frames 1-3 only; object 3 never meets anyone
    assert sorted(set(reads)) == [(1, 2, 1), (1, 2, 2), (1, 2, 3)]


def test_unreviewed_frames_and_blocks_do_not_change_the_answer():
    rng = np.random.default_rng(3)
    n = 300
    tables = {}
    for o in (1, 2):
        tab = table(n)
        for t in range(20, n):
            if rng.random() < 0.15:
                gone(tab, t, presence=rng.normal(0, 2))
            else:
                x, y = 20 + rng.integers(0, 8), 20 + 30 * o + rng.integers(0, 8)
                put(tab, t, (x, y, x + 10 + rng.integers(0, 12), y + 10), presence=rng.normal(4, 2))
        tables[o] = tab
    reviewed = {1: [(0, 99)], 2: [(150, 299)]}
    whole = run(tables, reviewed=reviewed)
    blocks = run(tables, reviewed=reviewed, block=7)
    assert whole.flags == blocks.flags and whole.spans == blocks.spans
    assert whole.suggestions == blocks.suggestions
    unreviewed = [f for f in whole.flags if f.kind == "unreviewed"]
    assert unreviewed and all(f.start >= 100 for f in unreviewed if f.object == 1)
    assert all(f.end < 150 for f in unreviewed if f.object == 2)
    assert {f.kind for f in whole.flags} >= {"low_presence", "presence_flip", "area_change", "jump", "span_start"}


def test_visibility_rule_codes_carry_across_blocks():
    tab = table(9)
    put(tab, 1)
    gone(tab, 2)  # hidden inside the view: occluded
    put(tab, 3, (0, 40, 10, 50))  # at the border
    gone(tab, 4)  # left the view
    gone(tab, 5)
    put(tab, 7)
    gone(tab, 8)
    rule = VisibilityRule(H, W)
    codes, carry = rule.classify(tab)
    assert codes.tolist() == [NOT_RUN, VISIBLE, OCCLUDED, VISIBLE, OUT_OF_FRAME, OUT_OF_FRAME,
                              NOT_RUN, VISIBLE, OCCLUDED]
    first, c = rule.classify(tab[:4])
    second, _ = rule.classify(tab[4:], c)
    assert np.r_[first, second].tolist() == codes.tolist()
    fresh, _ = rule.classify(tab[2:3])
    assert fresh.tolist() == [ABSENT]


def test_exporter_and_flags_share_the_visibility_rule(tmp_path):
    from napari_sam2_track.formats import ExportOptions, iter_frames
    from napari_sam2_track.prompts import ObjectSpec
    from napari_sam2_track.project import ProjectStore

    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=6, height=20, width=20)
    store.set_schema(Schema.model_validate({"min_visible_pixels": 5}))
    store.set_objects([ObjectSpec(id=1)])
    inside = np.zeros((20, 20), bool)
    inside[8:12, 8:12] = True
    tiny = np.zeros((20, 20), bool)
    tiny[9, 9] = True
    for t, m in enumerate([inside, tiny, inside, np.zeros_like(inside), inside]):
        store.write_mask(1, t, m)
        store.write_row(1, t, m, presence=3.0, state=STATE_PROPAGATED, run=1)
    frames = list(iter_frames(store, ExportOptions()))
    assert [sorted(f.masks) for f in frames] == [[1], [], [1], [], [1], []]
    # frame 5 was never run: not occluded
    assert [sorted(f.occluded) for f in frames] == [[], [1], [], [1], [], []]
    report = find_flags(store)
    assert [(m.start, m.end) for m in report.spans] == [(0, 0), (2, 2), (4, 4)]
    assert flags_of(report, "too_small") == [(1, 1, 1)]
