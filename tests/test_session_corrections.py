"""Corrections through the session: a prompt on a tracked frame re-propagates one segment of
one object on the compute thread; undo restores it byte for byte. Real model, random weights."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_sam2_track.errors import PromptError
from napari_sam2_track.project import COL
from napari_sam2_track.review import read_events
from napari_sam2_track.session import AnnotationSession, Correction
from napari_sam2_track.sources import open_source

from conftest import make_blob_video
from test_review_segments import chunk_files, frame_files

N = 10


@pytest.fixture
def tracked(tmp_path, test_model):
    """Object 1 prompted on frames 0 and N-1, object 2 on frame 0, all propagated forward."""
    session = AnnotationSession(open_source(make_blob_video(N)), _store(tmp_path), prefetch=False)
    session.set_model(test_model)
    session.activity.annotator = "ann"
    session.add_object("disc")
    session.add_object("ball")
    session.add_click(0, 30, 40, obj_id=1)
    session.add_click(N - 1, 48, 47, obj_id=1)
    session.add_click(0, 90, 30, obj_id=2)
    list(session.propagate_iter("forward"))
    yield session
    session.close()


def _store(tmp_path):
    from napari_sam2_track.project import ProjectStore

    return ProjectStore.create(tmp_path / "p.zarr", num_frames=N, height=96, width=128)


def test_correction_rewrites_its_segment_only_and_undo_restores_it(tracked):
    session, store = tracked, tracked.store
    before = chunk_files(store)
    tables = {o: store.table(o).copy() for o in (1, 2)}
    masks_before = {o: store.masks(o, 0, N) for o in (1, 2)}
    prompts = session.prompts()
    seen: list = []
    threads: set[str] = set()
    session.events.correction_started.connect(lambda *a: (seen.append(a), threads.add(threading.current_thread().name)))
    session.events.correction_finished.connect(seen.append)

    correction = session.correct(5, [(60.0, 60.0, 0)], obj_id=1)
    assert correction == Correction(1, 5, 1, N - 2, correction.seconds)
    assert seen[0] == (1, 1, N - 2) and seen[1] is correction
    assert threads == {"sam2-prompts"}  # the compute thread, not the caller's
    after = chunk_files(store)
    for t in (0, N - 1):  # the neighbouring keyframes' label layers, to the byte
        assert frame_files(after, t) == frame_files(before, t) != {}
        assert store.table(1)[t].tobytes() == tables[1][t].tobytes()
    assert {k: v for k, v in after.items() if k.startswith("objects/2/")} == \
        {k: v for k, v in before.items() if k.startswith("objects/2/")}
    assert np.array_equal(store.masks(2, 0, N), masks_before[2])  # object 2's masks kept
    assert store.table(2).tobytes() == tables[2].tobytes()
    assert (store.table(1)[1 : N - 1, COL["run"]] > tables[1][1 : N - 1, COL["run"]]).all()
    assert session.undo_segment(1) == (1, N - 2)
    assert session.keyframes(1) == [0, 5, N - 1]

    undone = session.undo_correction(1)
    assert (undone.start, undone.end, undone.undone) == (1, N - 2, True)
    assert chunk_files(store) == before
    for o in (1, 2):
        assert store.table(o).tobytes() == tables[o].tobytes()
    assert session.prompts() == prompts and session.keyframes(1) == [0, N - 1]
    assert session.undo_segment(1) == (1, N - 2)  # the undo is a version: undoing it redoes
    with pytest.raises(PromptError, match="needs clicks or a box"):
        session.request_correction(5, [], obj_id=1)
    session.activity.flush()
    kinds = [e.kind for e in read_events(store)]
    assert kinds[-3:] == ["click", "propagate", "undo"]


def test_a_burst_of_clicks_is_one_correction_and_one_undo(tracked):
    session, store = tracked, tracked.store
    before = chunk_files(store)
    futures = [session.request_correction(4, [(60.0, 60.0, 0)] * (i + 1), obj_id=1) for i in range(3)]
    results = [f.result(timeout=300) for f in futures]
    assert results[-1] is not None and results[-1].frame == 4
    assert session.clicks(1, 4) == [(60.0, 60.0, 0)] * 3
    session.undo_correction(1)
    assert chunk_files(store) == before  # the state before the first click of the burst


def test_auto_correct_only_on_propagated_frames(tracked):
    session, store = tracked, tracked.store
    files = chunk_files(store)
    session.add_click(3, 40, 40, positive=False, obj_id=1)  # auto_correct is off: the prompt only
    assert session.undo_segment(1) == (0, N - 1)  # still the propagation's version
    changed = [t for t in range(N) if frame_files(chunk_files(store), t) != frame_files(files, t)]
    assert changed == [3]
    session.auto_correct = True
    finished: list = []
    session.events.correction_finished.connect(finished.append)
    session.add_click(6, 60, 60, positive=False, obj_id=1)
    session.wait_idle()
    assert [(c.frame, c.start, c.end) for c in finished] == [(6, 4, N - 2)]
    other = session.add_object("new")  # never propagated: a prompt there is not a correction
    session.add_click(6, 20, 20, obj_id=other.id)
    session.wait_idle()
    assert len(finished) == 1


def test_undo_goes_back_one_version_at_a_time(tracked):
    """A hand edit after a correction is a version of its own: the first undo takes the edit
    back, the second the correction, each byte for byte."""
    session, store = tracked, tracked.store
    before = chunk_files(store)
    session.correct(5, [(60.0, 60.0, 0)], obj_id=1)
    corrected = chunk_files(store)
    labels = np.asarray(store.labels[3]).copy()
    labels[:3, :3] = 1
    session.persist_edit(3, labels)  # a hand edit inside the corrected segment, after it
    assert session.undo_segment(1) == (3, 3)
    undone = session.undo_correction(1)
    assert (undone.start, undone.end) == (3, 3)
    assert chunk_files(store) == corrected
    # the undo of the edit is the newest version now; the correction's version is before it
    from napari_sam2_track.review.segments import list_versions, restore_version

    kinds = [(v.number, v.kind) for v in list_versions(store, 1)]
    correction = [n for n, k in kinds if k == "correction"][-1]
    restore_version(store, 1, correction)
    assert chunk_files(store) == before


def test_edits_wait_while_a_correction_runs(tracked):
    session = tracked
    started = threading.Event()
    release = threading.Event()
    session.events.correction_started.connect(lambda *a: (started.set(), release.wait(60)))
    future = session.request_correction(5, [(60.0, 60.0, 0)], obj_id=1)
    assert started.wait(120)
    try:
        with pytest.raises(PromptError, match="re-propagated on frames 1-8"):
            session.persist_edit(5, np.zeros((96, 128), np.int32))
        session.request_click(2, 30, 30, obj_id=1)  # prompts queue behind it
    finally:
        release.set()
    assert future.result(timeout=300).start == 1
    session.wait_idle()
    assert (1, 2) in session.prompts()
