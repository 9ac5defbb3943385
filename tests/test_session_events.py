"""The session's events, its compute thread, coalesced clicks, stale results and prefetching."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_sam2_track.project import STATE_PROMPTED
from napari_sam2_track.samples import first_frame_prompts, make_cells
from napari_sam2_track.session import AnnotationSession, RunFinished, RunStarted
from napari_sam2_track.session.compute import ComputeThread


@pytest.fixture(scope="module")
def cells():
    return make_cells(n_frames=8, size=(96, 96))


@pytest.fixture
def session(cells, tmp_path, test_model):
    s = AnnotationSession.open(cells.frames, tmp_path / "cells.zarr", schema=cells.schema(), model=test_model)
    yield s
    s.close()


def record(session) -> list[tuple]:
    """Every event of the session as ``(name, *args)``, in order."""
    seen: list[tuple] = []
    lock = threading.Lock()
    for name in session.events:
        def make(n):
            def cb(*args):
                with lock:
                    seen.append((n, *args))
            return cb
        getattr(session.events, name).connect(make(name))
    return seen


# ------------------------------------------------------------------ compute thread
def test_compute_thread_coalesces_keys_behind_barriers():
    done, errors = [], []
    gate = threading.Event()
    ct = ComputeThread(errors.append)
    ct.submit(gate.wait)  # the thread is busy
    dropped = []
    assert not ct.submit(lambda: done.append("a1"), key="a", dropped=lambda: dropped.append("a1"))
    assert not ct.submit(lambda: done.append("b1"), key="b")
    assert ct.submit(lambda: done.append("a2"), key="a", dropped=lambda: dropped.append("a2"))
    ct.submit(lambda: done.append("barrier"))
    assert not ct.submit(lambda: done.append("a3"), key="a")  # behind the barrier: kept
    assert ct.submit(lambda: done.append("a4"), key="a")
    assert ct.busy
    gate.set()
    assert ct.wait_idle(10)
    assert done == ["a2", "b1", "barrier", "a4"] and dropped == ["a1"] and not errors
    ct.submit(lambda: 1 / 0)
    assert ct.wait_idle(10) and isinstance(errors[0], ZeroDivisionError)
    ct.close()


def test_compute_thread_prefetches_only_the_newest_frame_when_idle():
    seen = []
    ct = ComputeThread(print, prefetch_delay=0.05)
    gate = threading.Event()
    ct.submit(gate.wait)
    for t in range(5):  # a fast scrub
        ct.prefetch(lambda t=t: seen.append(t))
    gate.set()
    assert ct.wait_idle(10)
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ct.wait_idle(10, prefetch=True) and seen == [4]
    ct.close()


# ------------------------------------------------------------------------ session
def test_event_flow_of_a_click(session, cells):
    session.wait_idle(60)  # setting the model queued a tracker reset
    seen = record(session)
    obj = session.add_object("a")
    assert [e for e in seen if e[0] != "busy_changed"][:2] == [("objects_changed",), ("active_object_changed", obj.id)]
    seen.clear()
    x, y = first_frame_prompts(cells)[1]
    future = session.request_click(0, x, y)
    # recorded at once, before the model ran
    assert session.clicks(obj.id, 0) == [(x, y, 1)] and session.keyframes(obj.id) == [0]
    assert session.prompt(obj.id, 0) is not None
    mask = future.result(120)
    assert session.wait_idle(10)
    assert mask.any() and session.prompt(obj.id, 0).computed
    names = [e[0] for e in seen]
    assert names[:2] == ["prompts_changed", "keyframes_changed"]
    order = [n for n in names if n in ("prompt_started", "labels_changed", "prompt_finished")]
    assert order == ["prompt_started", "labels_changed", "prompt_finished"]
    assert ("labels_changed", 0, 0) in seen and ("busy_changed", True) in seen
    assert seen[-1] == ("busy_changed", False)
    assert session.store.states(obj.id)[0] == STATE_PROMPTED
    assert np.array_equal(session.store.mask(obj.id, 0), mask)
    # navigation events for other views (e.g. a review list)
    seen.clear()
    session.go_to_frame(5)
    assert seen == [("frame_requested", 5)]


def test_click_burst_is_coalesced(session, cells):
    """Clicks made while the model is busy: one model call for the newest prompt."""
    obj = session.add_object("a")
    x, y = first_frame_prompts(cells)[1]
    tracker = session.tracker
    seen = record(session)
    with tracker._lock:  # the model is busy (e.g. a slow first embedding)
        first = session.request_click(0, x, y)
        deadline = time.monotonic() + 10
        while ("prompt_started", obj.id, 0) not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        burst = [session.request_click(0, x + i, y, positive=i % 2 == 0) for i in range(1, 6)]
        assert not session.store.prompts.prompts  # nothing written while computing
    assert session.wait_idle(120)
    assert first.result() is None  # superseded while it computed: dropped
    assert [f.result() for f in burst[:-1]] == [None] * 4  # replaced before they started
    final = burst[-1].result()
    assert final is not None and final.shape == (96, 96)
    assert [e for e in seen if e[0] == "prompt_started"] == [("prompt_started", obj.id, 0)] * 2
    [stored] = session.store.prompts.prompts
    assert stored.points == [(x, y)] + [(x + i, y) for i in range(1, 6)]
    assert stored.labels == [1, 0, 1, 0, 1, 0]
    assert np.array_equal(session.store.mask(obj.id, 0), final)
    assert session.clicks(obj.id, 0) == [(x, y, 1)] + [(x + i, y, int(i % 2 == 0)) for i in range(1, 6)]


def test_stale_result_never_overwrites_a_deletion(session, cells):
    obj = session.add_object("a")
    x, y = first_frame_prompts(cells)[1]
    tracker = session.tracker
    with tracker._lock:
        future = session.request_click(2, x, y)
        time.sleep(0.2)
        session.delete_keyframe(obj.id, 2)
        assert session.keyframes(obj.id) == []
    assert session.wait_idle(120)
    assert future.result() is None
    assert session.store.prompts.prompts == [] and not (session.store.labels[2] == obj.id).any()
    assert session.tracker.keyframes(obj.id) == []


def test_failed_prompt_is_reverted_and_reported(tmp_path, test_model):
    """A frame that cannot be decoded: the click is taken back and the error announced."""
    from conftest import make_blob_video, write_jpeg_folder

    folder = write_jpeg_folder(make_blob_video(6), tmp_path / "jpg")
    session = AnnotationSession.open(folder, tmp_path / "p.zarr", model=test_model)
    broken = sorted(folder.iterdir())[3]
    broken.write_bytes(broken.read_bytes()[:200])  # the file is damaged while the project is open
    try:
        obj = session.add_object("a")
        errors, seen = [], record(session)
        session.events.error.connect(errors.append)
        session.add_click(1, 30, 40)
        future = session.request_click(3, 30, 40)
        assert session.keyframes(obj.id) == [1, 3]  # shown at once
        with pytest.raises(Exception):
            future.result(120)
        assert session.wait_idle(10)
        assert session.keyframes(obj.id) == [1] and session.clicks(obj.id, 3) == []
        assert len(errors) == 1 and ("keyframes_changed", obj.id) in seen
        assert [(p.object, p.frame) for p in session.store.prompts.prompts] == [(obj.id, 1)]
        assert session.add_click(1, 50, 40).any()  # the session goes on
    finally:
        session.close()


def test_prefetch_keeps_a_few_recent_embeddings(session, cells):
    ready = []
    session.events.embedding_ready.connect(ready.append)
    session.add_object("a")
    for t in (1, 2, 3, 4):
        session.set_current_frame(t)
        deadline = time.monotonic() + 60
        while t not in ready and time.monotonic() < deadline:
            time.sleep(0.01)
    assert ready == [1, 2, 3, 4] and session.current_frame == 4
    tracker = session.tracker
    kept = [t for t in range(8) if t in tracker._embedding_cache()]
    assert kept == [2, 3, 4] and tracker.embedding_cache_size == 3
    # a click on a prefetched frame does not compute the embedding again
    assert tracker.prefetch_embedding(4) is False and tracker.prefetch_embedding(0) is True


def test_run_events(session, cells):
    obj = session.add_object("a")
    x, y = first_frame_prompts(cells)[1]
    session.request_click(0, x, y)  # still computing when the run is asked for: it waits
    seen = record(session)
    progress = list(session.propagate_iter("forward"))
    assert [p.frame for p in progress] == list(range(8))
    names = [e[0] for e in seen]
    started = [e[1] for e in seen if e[0] == "run_started"]
    finished = [e[1] for e in seen if e[0] == "run_finished"]
    assert started == [RunStarted(started[0].run_id, "forward", 0, 7, 8)]
    assert finished == [RunFinished(started[0].run_id, "completed", 8, None)]
    assert names.index("prompt_finished") < names.index("run_started")
    assert names.count("run_progressed") == 8
    covered = set()
    for i, e in enumerate(seen):
        if e[0] == "labels_changed" and i > names.index("run_started"):
            covered |= set(range(e[1], e[2] + 1))
    assert covered == set(range(8))
    assert not session.running and session.store.states(obj.id)[7] != 0


EXIT_WHILE_COMPUTING = """
import sys, threading, time
sys.path.insert(0, sys.argv[2])
from conftest import nudge_test_model
from napari_sam2_track.engine.models import load_random_model
from napari_sam2_track.samples import make_cells
from napari_sam2_track.session import AnnotationSession

model = load_random_model(image_size=256, seed=0, device="cpu")
nudge_test_model(model.predictor)
cells = make_cells(n_frames=4, size=(96, 96))
session = AnnotationSession.open(cells.frames, sys.argv[1], model=model)
session.add_object("a")
started = threading.Event()
session.engine.compute.submit(started.set)  # runs first, then the click's model call
session.request_click(0, 40, 40)
started.wait(60)
time.sleep(0.05)  # the click's model call (a fraction of a second or more) is under way
print("exiting while the model computes", flush=True)
"""  # the script ends without closing the session


def test_the_process_exits_cleanly_while_a_prompt_computes(tmp_path):
    """The compute thread finishes its model call at exit instead of being cut inside torch
    (which aborts the process: "terminate called without an active exception")."""
    import subprocess
    import sys
    from pathlib import Path

    from napari_sam2_track.project import ProjectStore

    tests = Path(__file__).parent
    out = subprocess.run([sys.executable, "-c", EXIT_WHILE_COMPUTING, str(tmp_path / "p.zarr"), str(tests)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "exiting while the model computes" in out.stdout
    check = subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", "info", str(tmp_path / "p.zarr"),
                            "--check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr  # the project is left whole
    assert ProjectStore.open(tmp_path / "p.zarr", "r").object_ids() == [1]
