"""QC decisions: durability, invalidation by later changes, the correction queue, exports."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from napari_sam2_track.errors import NothingApprovedWarning, ReviewError
from napari_sam2_track.formats import ExportOptions, export, iter_frames
from napari_sam2_track.prompts import ObjectSpec, Prompt, PromptSet
from napari_sam2_track.review import Masklet, read_review
from napari_sam2_track.review.qc import (
    approve,
    correction_queue,
    decide,
    masklet_statuses,
    masklets,
    next_correction,
    previous_correction,
    reject,
)
from napari_sam2_track.project import STATE_PROPAGATED, ProjectStore

from conftest import REPO, make_blob_video

T, H, W = 10, 32, 32


def synthetic_project(path) -> ProjectStore:
    """Object 1 visible on frames 0-9, object 2 on 0-3 and 6-9."""
    store = ProjectStore.create(path, num_frames=T, height=H, width=W)
    store.set_objects([ObjectSpec(id=1), ObjectSpec(id=2)])
    for t in range(T):
        m1 = np.zeros((H, W), bool)
        m1[4:10, 4 + t : 10 + t] = True
        m2 = np.zeros((H, W), bool)
        if t not in (4, 5):
            m2[20:26, 20:26] = True
        for obj, m in ((1, m1), (2, m2)):
            store.write_mask(obj, t, m)
            store.write_row(obj, t, m, presence=5.0 if m.any() else -5.0, state=STATE_PROPAGATED, run=1)
        store.merge_labels(t)
    return store


def status(state, obj, start, end):
    s = state.latest(Masklet(object=obj, start=start, end=end))
    return None if s is None else (s.decision.status, s.invalidated_by.source if s.invalidated_by else None)


def test_decisions_are_validated_and_latest_counts(tmp_path):
    store = synthetic_project(tmp_path / "p.zarr")
    assert [(m.object, m.start, m.end) for m in masklets(store)] == [(1, 0, 9), (2, 0, 3), (2, 6, 9)]
    with pytest.raises(ReviewError, match="object 7 is not in"):
        approve(store, 7, 0, 3)
    with pytest.raises(ReviewError, match="inside the video"):
        approve(store, 1, 5, 10)
    with pytest.raises(ReviewError, match="not a range"):
        approve(store, 1, 5, 4)
    reject(store, 2, 0, 3, reviewer="ann", comment="  leaks   into\nthe background ")
    approve(store, 2, 0, 3, reviewer="bob")
    approve(store, 1, 0, 9, reviewer="ann")
    reject(store, 1, 4, 6, reviewer="bob")
    state = read_review(store.path)
    assert len(state.decisions) == 4  # append-only: the rejection is still in the trail
    assert state.decisions[0].comment == "leaks into the background"
    assert status(state, 2, 0, 3) == ("satisfactory", None)
    assert state.decision_at(2, 2).reviewer == "bob"
    # the later rejection paints over the middle of the earlier approval
    assert state.ranges(1, "satisfactory") == [(0, 3), (7, 9)]
    assert state.ranges(1, "unsatisfactory") == [(4, 6)]
    assert state.approved_ranges() == {1: [(0, 3), (7, 9)], 2: [(0, 3)]}


def test_edit_inside_invalidates_outside_does_not(tmp_path):
    store = synthetic_project(tmp_path / "p.zarr")
    approve(store, 1, 0, 4, reviewer="ann")
    approve(store, 2, 0, 3, reviewer="ann")
    frame = np.array(store.labels[7])
    frame[0, 0] = 1  # object 1 on frame 7: outside its approved 0-4
    assert store.write_edited_labels(7, frame) == [1]
    frame = np.array(store.labels[2])
    frame[30, 30] = 2  # object 2 on frame 2: inside object 2's range, not object 1's
    assert store.write_edited_labels(2, frame) == [2]
    state = read_review(store)
    assert status(state, 1, 0, 4) == ("satisfactory", None)
    assert status(state, 2, 0, 3) == ("satisfactory", "edit")
    frame = np.array(store.labels[3])
    frame[0, 31] = 1
    store.write_edited_labels(3, frame)
    state = read_review(store)
    invalid = state.latest(Masklet(object=1, start=0, end=4))
    assert not invalid.valid and invalid.invalidated_by.reason == "edited by hand on frame 3"
    assert state.approved_ranges() == {}
    row = next(m for m in masklet_statuses(store) if (m["object"], m["start"]) == (1, 0))
    assert row["status"] == "invalidated" and "edited by hand on frame 3" in row["invalidated_by"]
    # a new approval after the edit holds again
    approve(store, 1, 0, 4, reviewer="ann")
    assert read_review(store).approved_ranges() == {1: [(0, 4)]}


def test_prompt_changes_invalidate_only_when_they_change_something(tmp_path):
    store = synthetic_project(tmp_path / "p.zarr")
    store.put_prompt(Prompt(object=1, frame=0, points=[(6, 6)], labels=[1]))
    approve(store, 1, 0, 9, reviewer="ann")
    store.put_prompt(Prompt(object=1, frame=0, points=[(6, 6)], labels=[1]))  # the same again
    store.set_prompts(store.prompts)  # unchanged prompts stored again (track --resume)
    assert status(read_review(store), 1, 0, 9) == ("satisfactory", None)
    store.delete_prompt(1, 5)  # no prompt there: nothing changes
    assert status(read_review(store), 1, 0, 9) == ("satisfactory", None)
    mask = np.zeros((H, W), bool)
    mask[4:10, 4:10] = True
    store.put_prompt(Prompt(object=1, frame=8, mask="store:pending"), mask)
    assert status(read_review(store), 1, 0, 9) == ("satisfactory", "prompt")
    approve(store, 1, 0, 9, reviewer="ann")
    store.put_prompt(Prompt(object=1, frame=8, mask="store:pending"), mask)  # same pixels
    assert status(read_review(store), 1, 0, 9) == ("satisfactory", None)
    mask[20, 20] = True
    store.put_prompt(Prompt(object=1, frame=8, mask="store:pending"), mask)  # other pixels
    assert status(read_review(store), 1, 0, 9) == ("satisfactory", "prompt")


def test_repropagation_and_resume_with_new_prompts(tmp_path, test_model):
    from napari_sam2_track.engine.tracker import StreamingTracker
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.sources import open_source

    frames = make_blob_video(10)
    source = open_source(frames)
    prompts = PromptSet.model_validate({
        "objects": [{"id": 1}, {"id": 2}],
        "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
                    {"object": 2, "frame": 0, "points": [[90, 30]], "labels": [1]}]})
    out = tmp_path / "p.zarr"
    list(track(source, prompts, out, model=test_model, direction="forward"))
    store = ProjectStore.open(out)
    tracker = StreamingTracker(test_model, source)
    for p in store.prompts.prompts:
        tracker.add_prompt(p)
    list(track(source, None, store, model=test_model, direction="forward", tracker=tracker))
    approve(store, 1, 0, 0, reviewer="ann")
    approve(store, 1, 2, 4, reviewer="ann")
    approve(store, 1, 5, 7, reviewer="ann")
    approve(store, 2, 0, 9, reviewer="ann")
    correction = Prompt(object=1, frame=6, points=[(60, 60)], labels=[0])
    store.put_prompt(correction)
    tracker.add_prompt(correction)
    start, end = tracker.correction_range(1, 6)
    assert (start, end) == (1, 9)
    list(track(source, None, store, model=test_model, direction="both", start=start, end=end,
               obj_ids=[1], tracker=tracker))
    state = read_review(store)
    assert status(state, 1, 0, 0) == ("satisfactory", None)  # before the segment
    assert status(state, 1, 2, 4) == ("satisfactory", "propagation")
    assert status(state, 1, 5, 7) == ("satisfactory", "prompt")  # the prompt came first
    assert status(state, 2, 0, 9) == ("satisfactory", None)  # another object
    run_id = store.meta["runs"][-1]["id"]
    assert state.latest(Masklet(object=1, start=2, end=4)).invalidated_by.run == run_id
    # track --resume with a prompts file that adds a correction inside object 2's range
    tracker.close()
    more = PromptSet.model_validate({**store.prompts.model_dump(mode="json"), "prompts": [
        *store.prompts.model_dump(mode="json")["prompts"],
        {"object": 2, "frame": 8, "points": [[90, 40]], "labels": [1]}]})
    list(track(open_source(frames), more, out, model=test_model, direction="forward", resume=True))
    state = read_review(out)
    assert status(state, 2, 0, 9) == ("satisfactory", "prompt")
    assert status(state, 1, 0, 0) == ("satisfactory", None)


def test_correction_queue(tmp_path):
    store = synthetic_project(tmp_path / "p.zarr")
    reject(store, 2, 6, 9, reviewer="ann")
    reject(store, 1, 0, 9, reviewer="ann")
    reject(store, 2, 0, 3, reviewer="ann")
    approve(store, 2, 0, 3, reviewer="bob")  # fixed and approved: leaves the queue
    queue = [(s.decision.object, s.decision.start) for s in correction_queue(store)]
    assert queue == [(1, 0), (2, 6)]
    assert next_correction(store, 1, 0).decision.object == 2
    assert next_correction(store, 2, 6).decision.object == 1  # wraps around
    assert previous_correction(store, 2, 6).decision.object == 1
    assert previous_correction(store, 1, 0).decision.start == 6  # wraps around
    frame = np.array(store.labels[7])
    frame[31, 0] = 2
    store.write_edited_labels(7, frame)  # a correction inside the rejected range
    assert [(s.decision.object, s.decision.start) for s in correction_queue(store)] == [(1, 0)]


def test_approved_only_export_keeps_approved_frames_and_warns_when_none(tmp_path):
    store = synthetic_project(tmp_path / "p.zarr")
    with pytest.warns(NothingApprovedWarning, match="no masklet is approved"):
        frames = list(iter_frames(store, ExportOptions(approved_only=True)))
    assert all(not f.masks for f in frames)
    approve(store, 1, 2, 4, reviewer="ann")
    reject(store, 2, 0, 3, reviewer="bob")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NothingApprovedWarning)
        frames = list(iter_frames(store, ExportOptions(approved_only=True)))
    assert [t for t, f in enumerate(frames) if f.masks] == [2, 3, 4]
    assert all(set(f.masks) == {1} for f in frames if f.masks)
    out = export(store, "table", tmp_path / "t.csv")
    rows = {(int(r["object_id"]), int(r["frame"])): r for r in csv.DictReader(out.open())}
    assert rows[1, 3]["qc_status"] == "satisfactory" and rows[1, 3]["qc_reviewer"] == "ann"
    assert rows[1, 3]["qc_time"] == read_review(store).decision_at(1, 3).time.isoformat()
    assert rows[1, 5]["qc_status"] == "" and rows[2, 1]["qc_status"] == "unsatisfactory"


def test_logs_are_readable_without_the_package(tmp_path):
    pd = pytest.importorskip("pandas")
    store = synthetic_project(tmp_path / "p.zarr")
    approve(store, 1, 0, 9, reviewer="ann", comment="ok")
    frame = np.array(store.labels[1])
    frame[0, 0] = 1
    store.write_edited_labels(1, frame)
    decisions = pd.read_json(store.path / "review" / "decisions.jsonl", lines=True)
    changes = pd.read_json(store.path / "review" / "changes.jsonl", lines=True)
    assert decisions.loc[0, "status"] == "satisfactory" and decisions.loc[0, "reviewer"] == "ann"
    assert changes.iloc[-1]["source"] == "edit" and changes.iloc[-1]["start"] == 1
    # the log folder is a zarr group: listing the project stays clean
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.close()  # the write lock file is not a zarr member
        assert "review" in list(ProjectStore.open(store.path, "r").group.keys())


def test_a_torn_last_line_is_skipped_and_the_next_decision_kept(tmp_path):
    store = synthetic_project(tmp_path / "p.zarr")
    approve(store, 1, 0, 9, reviewer="ann")
    log = store.path / "review" / "decisions.jsonl"
    with open(log, "a") as f:
        f.write('{"object": 2, "start": 0, "end": 3, "stat')  # a write cut short
    assert len(read_review(store).decisions) == 1
    reject(store, 2, 0, 3, reviewer="bob")
    assert [d.reviewer for d in read_review(store).decisions] == ["ann", "bob"]


def test_kill_9_right_after_a_decision_keeps_it(tmp_path):
    synthetic_project(tmp_path / "p.zarr")
    script = textwrap.dedent(f"""
        import sys, time
        from napari_sam2_track.review.qc import approve
        d = approve({str(tmp_path / "p.zarr")!r}, 2, 6, 9, reviewer="kim", comment="killed next")
        print("decided", flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "decided"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    reopened = ProjectStore.open(tmp_path / "p.zarr", "r")
    state = read_review(reopened)
    assert [(d.object, d.start, d.end, d.reviewer, d.comment) for d in state.decisions] == [
        (2, 6, 9, "kim", "killed next")]
    assert state.approved_ranges() == {2: [(6, 9)]}


def test_reviewer_defaults_to_the_setting_then_the_os_user(tmp_path, monkeypatch):
    import getpass

    store = synthetic_project(tmp_path / "p.zarr")
    monkeypatch.setenv("NAPARI_SAM2_TRACK_REVIEWER", "dana")
    assert approve(store, 1, 0, 9).reviewer == "dana"
    monkeypatch.delenv("NAPARI_SAM2_TRACK_REVIEWER")
    assert decide(store, 1, 0, 9, "unsatisfactory").reviewer == getpass.getuser()


def test_a_reviewer_setting_that_is_not_utf8_is_refused_in_one_line(tmp_path, monkeypatch):
    """Bytes that are not UTF-8 in the environment reach Python as surrogate escapes: every
    user of the default reviewer (decisions, the session's activity log) gets one line naming
    the variable, and nothing is written."""
    from napari_sam2_track.session.activity import ActivityLog

    store = synthetic_project(tmp_path / "p.zarr")
    monkeypatch.setenv("NAPARI_SAM2_TRACK_REVIEWER", "m\udcfcller")
    line = r"\$NAPARI_SAM2_TRACK_REVIEWER is not valid UTF-8 text \(byte 0xfc at character 2\)"
    with pytest.raises(ReviewError, match=line):
        approve(store, 1, 0, 9)
    with pytest.raises(ReviewError, match=line):
        ActivityLog(store)
    assert read_review(store).decisions == []
    assert ActivityLog(store, annotator="dana").annotator == "dana"  # a name given is used
