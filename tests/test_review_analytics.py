"""Annotator analytics from a recorded event log with known totals."""

from __future__ import annotations

import datetime as dt

import pytest

from napari_sam2_track.errors import ReviewError
from napari_sam2_track.review import read_events
from napari_sam2_track.review.analytics import REFERENCE_ROWS, log_event, report, report_rows
from napari_sam2_track.project import ProjectStore

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.timezone.utc)

# (seconds after T0, annotator, kind, object, frames, details)
LOG = [
    (0, "ann", "click", 1, (0, 0), {"positive": True}),
    (10, "ann", "click", 1, (0, 0), {"positive": False}),
    (20, "ann", "click", 2, (0, 0), {"positive": True}),
    (30, "ann", "propagate", None, (0, 99), {"objects": [1, 2], "seconds": 25.0}),
    (200, "ann", "navigate", None, (50, 50), {}),  # after 170 s away: idle
    (205, "ann", "click", 1, (50, 50), {"positive": True}),  # a correction of a propagated frame
    (215, "ann", "brush", 1, (50, 50), {}),  # same frame: still one correction
    (230, "ann", "propagate", 1, (50, 99), {"seconds": 10.0}),
    (1000, "bob", "navigate", None, (0, 0), {}),
    (1020, "bob", "review", 1, (0, 99), {"status": "satisfactory"}),  # 20 s since the last event
    (1030, "bob", "review", 2, (0, 99), {"status": "unsatisfactory", "seconds": 45.0}),
    (2000, "bob", "review", 2, (0, 99), {"status": "satisfactory"}),  # after an idle gap: 0 s
]


@pytest.fixture
def project(tmp_path):
    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=100, height=8, width=8)
    for seconds, who, kind, obj, frames, details in reversed(LOG):  # order on disk does not matter
        log_event(store, kind, annotator=who, object=obj, frames=frames,
                  time=T0 + dt.timedelta(seconds=seconds), **details)
    return store


def test_known_totals_with_idle_gaps(project):
    result = report(project.path, idle_seconds=60)
    ann, bob, total = result["annotators"]["ann"], result["annotators"]["bob"], result["project"]
    assert ann["active_seconds"] == 60  # 10 + 10 + 10 + 5 + 10 + 15; the 170 s gap is idle
    assert ann["annotated_frames"] == 200  # two objects over frames 0-99
    assert ann["seconds_per_frame"] == pytest.approx(0.3)
    assert ann["edited_frames"] == 3 and ann["percent_frames_edited"] == pytest.approx(1.5)
    assert ann["clicks"] == 4 and ann["clicked_frames"] == 3
    assert ann["clicks_per_clicked_frame"] == pytest.approx(4 / 3)
    assert ann["corrections"] == 1 and ann["objects"] == 2 and ann["corrections_per_object"] == 0.5
    assert ann["propagated_frames"] == 250 and ann["propagation_seconds"] == 35
    assert ann["prompts"] == 3 and ann["frames_propagated_per_prompt"] == pytest.approx(250 / 3)
    assert bob["active_seconds"] == 30 and bob["seconds_per_frame"] is None
    assert bob["review_seconds"] == 65 and bob["masklets_reviewed"] == 2
    assert bob["review_seconds_per_masklet"] == 32.5
    assert total["active_seconds"] == 90 and total["seconds_per_frame"] == pytest.approx(0.45)
    assert total["events"] == len(LOG) and total["corrections"] == 1
    assert result["reference"] == [dict(r) for r in REFERENCE_ROWS]
    assert result["reference"][1]["seconds_per_frame"] == 4.5


def test_the_idle_threshold_moves_active_time(project):
    assert report(project, idle_seconds=200)["annotators"]["ann"]["active_seconds"] == 230
    assert report(project, idle_seconds=5)["annotators"]["ann"]["active_seconds"] == 5
    # default: the schema's review.idle_seconds (60 s)
    assert report(project)["idle_seconds"] == 60


def test_events_round_trip_and_rows(project):
    events = read_events(project)
    assert [e.kind for e in events] == [row[2] for row in LOG]
    assert events[3].details == {"objects": [1, 2], "seconds": 25.0}
    rows = report_rows(report(project))
    assert [r["who"] for r in rows][:3] == ["ann", "bob", "project"]
    assert rows[-2]["clicks_per_clicked_frame"] == 4.80 and rows[-1]["percent_frames_edited"] == 19.0


def test_bad_events_are_refused_in_one_line(project):
    with pytest.raises(ReviewError, match="cannot log this 'wave' event"):
        log_event(project, "wave", annotator="ann")
    with pytest.raises(ReviewError, match="frames"):
        log_event(project, "click", annotator="ann", object=1, frames=(5, 2))
    assert len(read_events(project)) == len(LOG)
