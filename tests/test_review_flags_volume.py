"""Review flags of volume projects: along z within each timepoint (never across a timepoint
boundary) and along t (physical volume, start and end), on a real zarr volume project whose
masks are written plane by plane through the store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sam2_track.cli.main import main
from napari_sam2_track.project import STATE_ABSENT, STATE_EDITED, ProjectStore
from napari_sam2_track.prompts import ObjectSpec
from napari_sam2_track.review.flags import TableSource, find_flags
from napari_sam2_track.review.volume_flags import plane_fields, where
from napari_sam2_track.schema import Schema
from napari_sam2_track.sources.volume import ArrayVolumeSource

T, Z, H, W = 3, 6, 20, 24
SIZES = {"t": (30.0, "s"), "z": (2.0, "µm"), "y": (0.5, "µm"), "x": (0.5, "µm")}


def _square(r0: int, c0: int, side: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[r0 : r0 + side, c0 : c0 + side] = True
    return m


def volume_masks() -> dict:
    """``{(object, t, z): mask}``.

    * object 1: a 6x6 square on slices 1-4 of every timepoint; at t=1 slice 3 shrinks to 2x2
      (an area jump along z); at t=2 the squares are 10x10 (its volume jumps from t=1);
    * object 2: on every slice; 10x10 at t=0, 2x2 at t=1 and 2: constant along z, so the only
      area change is between timepoints (a volume change, never an area change);
    * object 3: slices 2-3 of t=1 only.
    """
    out = {}
    for t in range(T):
        for z in range(Z):
            if 1 <= z <= 4:
                side = 10 if t == 2 else (2 if (t, z) == (1, 3) else 6)
                out[1, t, z] = _square(1, 1, side)
            out[2, t, z] = _square(9, 12, 10 if t == 0 else 2)
            if t == 1 and z in (2, 3):
                out[3, t, z] = _square(2, 16, 3)
    return out


def write_project(path, masks: dict, *, low=()) -> ProjectStore:
    """A volume project with ``masks`` written through the store; planes in ``low`` get a
    presence logit of 0.5 (inside the default band), the others ±5."""
    source = ArrayVolumeSource(np.zeros((T, Z, H, W), np.uint8), "TZYX", sizes=SIZES, window=(0, 1))
    store = ProjectStore.create(path, source=source)
    store.set_schema(Schema.default())
    store.set_objects([ObjectSpec(id=i, name=f"cell {i}") for i in (1, 2, 3)])
    empty = np.zeros((H, W), bool)
    for t in range(T):
        for z in range(Z):
            p = store.plane(t, z)
            plane = {i: masks.get((i, t, z), empty) for i in (1, 2, 3)}
            store.merge_labels(p, {i: m for i, m in plane.items() if m.any()})
            for i, m in plane.items():
                presence = 0.5 if (i, t, z) in low else (5.0 if m.any() else -5.0)
                store.write_row(i, p, m, presence=presence,
                                state=STATE_EDITED if m.any() else STATE_ABSENT, run=1)
    return store


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path / "vol.zarr", volume_masks(), low={(1, 2, 2)})


def _kinds(report, obj: int, kind: str, store) -> list[tuple]:
    return sorted((*store.plane_tz(f.start), *store.plane_tz(f.end))
                  for f in report.flags if f.object == obj and f.kind == kind)


def test_z_flags_stay_inside_each_timepoint(project):
    store = project
    report = find_flags(store)
    # object 1: the shrunken slice 3 of t=1 against slices 2 and 4, and nothing elsewhere
    assert _kinds(report, 1, "area_change", store) == [(1, 3, 1, 4)]
    # object 2 is constant along z: its 10x10 -> 2x2 change between t=0 and t=1 is no area change
    assert _kinds(report, 2, "area_change", store) == []
    assert _kinds(report, 2, "presence_flip", store) == []
    # top and bottom of the structure, per timepoint
    assert _kinds(report, 1, "z_bottom", store) == [(t, 1, t, 1) for t in range(T)]
    assert _kinds(report, 1, "z_top", store) == [(t, 4, t, 4) for t in range(T)]
    assert _kinds(report, 2, "z_bottom", store) == [(t, 0, t, 0) for t in range(T)]
    assert _kinds(report, 2, "z_top", store) == [(t, Z - 1, t, Z - 1) for t in range(T)]
    assert not [f for f in report.flags if f.kind in ("span_start", "span_end")]
    # low presence (the occlusion head's logit) on its own plane
    assert _kinds(report, 1, "low_presence", store) == [(2, 2, 2, 2)]
    # the masklets are the presence spans along z of each timepoint
    assert [(m.object, *store.plane_tz(m.start), *store.plane_tz(m.end)) for m in report.spans
            if m.object == 2] == [(2, t, 0, t, Z - 1) for t in range(T)]


def test_the_2d_rules_on_the_same_planes_would_cross_timepoints(project):
    """The same tables read as one video: object 2's area jump and object 1's span across
    t=0 -> t=1 are flagged, which is what the volume flags must not do."""
    flat = find_flags(TableSource.from_store(project))
    assert any(f.object == 2 and f.kind == "area_change" and f.start == project.plane(1, 0)
               for f in flat.flags)


def test_t_flags_follow_the_physical_volume(project):
    store = project
    report = find_flags(store)
    voxel = 2.0 * 0.5 * 0.5
    np.testing.assert_allclose(store.physical_volume(1), np.array([144, 112, 400]) * voxel)
    changes = [f for f in report.flags if f.kind == "volume_change"]
    got = sorted((f.object, store.plane_tz(f.start)[0]) for f in changes)
    assert got == [(1, 2), (2, 1)]  # 112 -> 400 (72 %) and 600 -> 24 (96 %); 144 -> 112 is 22 %
    f = next(f for f in changes if f.object == 2)
    assert f.start == store.plane(1, 0) and f.end == store.plane(1, Z - 1)
    assert f.score == pytest.approx(1 - 24 / 600)
    assert "µm³" in f.reason
    assert _kinds(report, 3, "t_start", store) == [(1, 0, 1, Z - 1)]
    assert _kinds(report, 3, "t_end", store) == [(1, 0, 1, Z - 1)]
    assert _kinds(report, 1, "t_start", store) == [(0, 0, 0, Z - 1)]
    assert _kinds(report, 1, "t_end", store) == [(2, 0, 2, Z - 1)]
    # the frame to look at is the slice where the object is largest at that timepoint
    start3 = next(f for f in report.flags if f.object == 3 and f.kind == "t_start")
    assert store.plane_tz(start3.frame) == (1, 2)


def test_unreviewed_follows_qc_ranges_per_timepoint(project):
    from napari_sam2_track.review.models import read_review
    from napari_sam2_track.review.qc import approve

    store = project
    approve(store, 2, store.plane(1, 0), store.plane(2, Z - 1), reviewer="a")
    report = find_flags(store, reviewed=read_review(store).reviewed_ranges(), objects=[2])
    assert _kinds(report, 2, "unreviewed", store) == [(0, 0, 0, Z - 1)]


def test_where_and_plane_fields(project):
    store = project
    assert where(store, store.plane(1, 2), store.plane(1, 4)) == "t 1 z 2-4"
    assert where(store, store.plane(1, 2), store.plane(1, 2)) == "t 1 z 2"
    assert where(store, store.plane(1, 0), store.plane(2, Z - 1)) == "t 1-2"
    assert plane_fields(store, store.plane(0, 3), store.plane(2, 1)) == {"t": [0, 2], "z": [3, 1]}


def test_review_json_and_text_say_t_and_z(project, capsys):
    assert main(["review", str(project.path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    flag = next(f for f in out["flags"] if f["object"] == 1 and f["kind"] == "area_change")
    assert (flag["t"], flag["z"]) == ([1, 1], [3, 4])
    assert flag["start"] == project.plane(1, 3)  # plane indices stay
    assert all({"t", "z"} <= set(m) for m in out["masklets"])
    assert main(["review", str(project.path)]) == 0
    text = capsys.readouterr().out
    assert "t 1 z 3-4" in text and "volume_change" in text


def test_a_volume_change_is_a_plane_to_check_and_a_sample_adds_no_routine_flag(project):
    from napari_sam2_track.review.sampling import draw_sample

    store = project
    report = find_flags(store)
    at = [s for s in report.suggestions if s.object == 2 and "volume_change" in s.why]
    assert [store.plane_tz(s.frame) for s in at] == [(1, 0)]  # 2x2 on every slice: the first is largest
    assert len({(s.object, s.frame) for s in report.suggestions}) == len(report.suggestions)
    sample = draw_sample(store, 3, store.plane(1, 2), store.plane(1, 3), size=1, seed=0, reviewer="ann")
    # the worst edited / presence_flip plane is added; z_top (t=1, z=3) is routine, not suspect
    assert sample.flagged == [store.plane(1, 2)]


def test_a_dataset_summary_counts_the_flags_along_z_and_t(project):
    """``dataset status`` counts a volume project's open flags as ``review`` finds them: never
    a jump across a timepoint boundary, and the volume changes along t."""
    from napari_sam2_track.dataset.summary import compute_summary
    from napari_sam2_track.review.models import ROUTINE_FLAGS

    project.close()
    store = ProjectStore.open(project.path, mode="r")
    expected = [f for f in find_flags(store).flags
                if f.kind not in ROUTINE_FLAGS and f.kind != "overlap"]  # no mask is read
    assert any(f.kind == "volume_change" for f in expected)
    summary = compute_summary(project.path)
    assert summary["open_flags"] == len(expected)
    assert summary["frames"] == T * Z
