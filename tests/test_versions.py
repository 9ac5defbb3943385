"""Track versions: every change of an object keeps what it replaced; restores are exact and
are versions themselves. Early-stopped corrections stop after exactly K agreeing frames."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.engine.tracker import FrameResult
from napari_sam2_track.errors import ReviewError
from napari_sam2_track.passes import plan_passes
from napari_sam2_track.project import ProjectStore
from napari_sam2_track.project.versions import (
    RunVersions,
    edit_frame,
    list_versions,
    prune_versions,
    restore_version,
    undo_newest,
)
from napari_sam2_track.prompts import ObjectSpec, Prompt
from napari_sam2_track.review.segments import EarlyStop, begin_correction

from test_review_segments import chunk_files
from test_store import disc, write_frame

H, W, N = 40, 50, 8


def _project(tmp_path) -> ProjectStore:
    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=N, height=H, width=W)
    store.set_objects([ObjectSpec(id=1), ObjectSpec(id=2)])
    for t in range(N):
        write_frame(store, t, {1: disc(H, W, 15 + t, 20, 8), 2: disc(H, W, 20, 18, 6)})
    return store


def _rewrite(store, rec, frames, cx):
    """A change of object 1 on ``frames`` as a run writes it: pre-image first."""
    versions = RunVersions({1: rec})
    for t in frames:
        result = FrameResult(t, "forward", {1: disc(H, W, cx, 30, 5)}, {1: 4.0})
        versions.capture(result)
        write_frame(store, t, result.masks)


def test_restore_is_byte_for_byte_and_a_version_itself(tmp_path):
    store = _project(tmp_path)
    old = np.zeros((H, W), bool)
    old[2:6, 2:6] = True
    store.put_prompt(Prompt(object=1, frame=3, mask="store:pending"), old)
    before, prompts = chunk_files(store), store.meta["prompts"]
    rec = begin_correction(store, 1, 3, 1, 6)
    store.put_prompt(Prompt(object=1, frame=3, mask="store:pending"), ~old)
    store.put_prompt(Prompt(object=1, frame=4, points=[(3, 3)], labels=[1]))
    _rewrite(store, rec, range(1, 7), 40)
    rec.finish()
    labels = np.asarray(store.labels[6]).copy()
    labels[:4, :4] = 1
    assert edit_frame(store, 6, labels) == [1]  # a hand edit after it: one more version
    changed = chunk_files(store)
    kinds = [(v.kind, v.frames) for v in list_versions(store, 1)]
    assert kinds[-2:] == [("correction", [[1, 6]]), ("edit", [[6, 6]])]

    restored = restore_version(store, 1, rec.number)
    assert chunk_files(store) == before  # masks (label layers) and table rows, to the byte
    assert store.meta["prompts"] == prompts
    assert np.array_equal(store.prompt_mask(store.prompts.prompts[0]), old)
    assert restored.kind == "restore" and list_versions(store, 1)[-1].number == restored.number
    # nothing is lost by restoring: the restore's own version gives the changes back
    restore_version(store, 1, restored.number)
    assert chunk_files(store) == changed
    versions = list_versions(store, 1)
    assert all(v.bytes > 0 for v in versions)
    # storage follows the frames a version changed: the 1-frame edit is smaller than the 6-frame one
    sizes = {v.kind: v.bytes for v in versions}
    assert sizes["edit"] < sizes["correction"]


def test_missing_version_is_one_line_and_changes_nothing(tmp_path, capsys):
    from napari_sam2_track.cli import main

    store = _project(tmp_path)
    original = chunk_files(store)
    labels = np.asarray(store.labels[2]).copy()
    labels[:3, :3] = 1
    edit_frame(store, 2, labels)
    files = chunk_files(store)
    with pytest.raises(ReviewError, match=r"object 1 has no version 99 \(versions 1-1 are kept\)"):
        restore_version(store, 1, 99)
    store.close()
    assert main(["review", "restore", str(store.path), "1", "99"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no version 99" in err[0]
    assert chunk_files(ProjectStore.open(store.path, mode="r")) == files
    assert main(["review", "history", str(store.path), "1", "--json"]) == 0
    import json

    history = json.loads(capsys.readouterr().out)
    assert [(h["version"], h["kind"], h["frames"]) for h in history] == [(1, "edit", [[2, 2]])]
    assert main(["review", "restore", str(store.path), "1", "1"]) == 0
    assert "this restore is version 2" in capsys.readouterr().out
    assert chunk_files(ProjectStore.open(store.path, mode="r")) == original


def test_pruning_keeps_the_last_n(tmp_path):
    store = _project(tmp_path)
    for i in range(6):
        labels = np.asarray(store.labels[2]).copy()
        labels[i, :3] = 1
        edit_frame(store, 2, labels)
    prune_versions(store, 1, keep=3)
    numbers = [v.number for v in list_versions(store, 1)]
    assert numbers == [4, 5, 6]
    with pytest.raises(ReviewError, match="no version 2 "):
        restore_version(store, 1, 2)
    schema = store.schema
    store.set_schema(schema.model_copy(update={"review": schema.review.model_copy(update={"keep_versions": 2})}))
    labels[7, :3] = 1
    edit_frame(store, 2, labels)  # each new version prunes to the schema's keep_versions
    assert [v.number for v in list_versions(store, 1)] == [6, 7]
    undo_newest(store, 1)  # the undo restores the newest version and is one itself
    assert [v.kind for v in list_versions(store, 1)][-1] == "undo"


class _FakeTracker:
    """Yields prepared results pass by pass, as the streaming tracker does."""

    def __init__(self, results):
        self.results = results
        self.computed: list[int] = []

    def run(self, plan, cancel=None):
        for p in plan.passes:
            for t in p.frames:
                self.computed.append(t)
                yield self.results[t]


def test_early_stop_after_exactly_k_agreeing_frames_and_not_on_presence_change(tmp_path):
    store = _project(tmp_path)
    stored = {t: store.mask(1, t) for t in range(N)}
    plan = plan_passes({1: [2]}, N, "both", 0, N - 1, [1])
    agree = {t: FrameResult(t, "forward", {1: stored[t]}, {1: 4.0}, {1} if t == 2 else set())
             for t in range(N)}
    # forward from frame 2: 3 differs, then 4, 5, 6 agree -> stop after 6 with K = 3
    results = dict(agree)
    results[3] = FrameResult(3, "forward", {1: disc(H, W, 45, 35, 4)}, {1: 4.0})
    tracker = _FakeTracker(results)
    rule = EarlyStop(frames=3, iou=0.9)
    rec = begin_correction(store, 1, 2, 0, N - 1)
    out = [r.frame for r in rule.results(tracker, plan, None, RunVersions({1: rec}))]
    assert out == [2, 3, 4, 5, 6, 2, 1, 0]  # backward: 2 prompted, 1 and 0 agree (< 3): to the end
    assert rule.stops == {"forward": 6}

    # the same pixels but absent (presence logit below 0): no agreement, no stop
    results = dict(agree)
    results[5] = FrameResult(5, "forward", {1: stored[5]}, {1: -3.0})
    rule = EarlyStop(frames=3, iou=0.9)
    rec2 = begin_correction(store, 1, 2, 0, N - 1)
    out = [r.frame for r in rule.results(_FakeTracker(results), plan, None, RunVersions({1: rec2}))]
    assert out[:6] == [2, 3, 4, 5, 6, 7] and "forward" not in rule.stops


def test_an_undo_snapshot_of_an_earlier_release_becomes_the_newest_version(tmp_path):
    """``undo/<id>`` (mask, table, prompts of a segment) is migrated when the project is next
    opened for writing, and the undo still restores it byte for byte."""
    store = _project(tmp_path)
    before = chunk_files(store)
    group = store.group.require_group("undo/1")
    group.create_array("mask", data=store.masks(1, 2, 5))
    group.create_array("table", data=store.table_rows(1, 2, 5))
    group.attrs.update({"start": 2, "end": 4, "time": "2026-01-01T00:00:00+00:00", "prompts": [],
                        "complete": True, "corrected": "2026-01-01T00:00:01+00:00"})
    for t in (2, 3, 4):
        write_frame(store, t, {1: disc(H, W, 40, 30, 5)})
    assert [v.number for v in list_versions(store, 1)] == [0]  # listed before it is migrated
    store.close()
    store = ProjectStore.open(store.path)
    assert "undo" not in store.group or "1" not in store.group["undo"]
    newest = list_versions(store, 1)[-1]
    assert (newest.kind, newest.frames) == ("correction", [[2, 4]])
    undo_newest(store, 1)
    assert chunk_files(store) == before
