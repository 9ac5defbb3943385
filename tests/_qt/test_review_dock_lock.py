"""QC from the napari docks while another process holds the project's write lock (a run
tracking, another annotator): ``annotate`` opens the project read-only, the Review dock says
so and still records approvals, rejections and sampled-QC verdicts (they need no lock); edits
of masks, prompts and objects are refused with one line. A real napari viewer (under xvfb) and
a second Python process that holds the lock."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from conftest import REPO, write_jpeg_folder  # noqa: E402
from napari_sam2_track.cli.annotate import open_annotation_viewer  # noqa: E402
from napari_sam2_track.errors import ProjectLockedError  # noqa: E402
from napari_sam2_track.project.lock import live_holder  # noqa: E402
from napari_sam2_track.review import read_review  # noqa: E402
from napari_sam2_track.session import AnnotationSession  # noqa: E402
from test_prompt_widget import errors, own_settings  # noqa: E402,F401
from test_review_dock import H, T, W, review_project  # noqa: E402

HOLD = (
    "import sys\n"
    "from napari_sam2_track.project import ProjectStore\n"
    "store = ProjectStore.open(sys.argv[1], command='track (a run of another person)')\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()  # until the test closes our stdin\n"
    "store.close()\n"
)


@pytest.fixture
def held(tmp_path):
    """A project, and a second process holding its write lock (until the test ends)."""
    review_project(tmp_path / "p.zarr").close()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "p.zarr")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        assert proc.stdout.readline().strip() == "held"
        yield tmp_path / "p.zarr", proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


@pytest.fixture
def opened(held, make_napari_viewer, qtbot, tmp_path, errors):  # noqa: F811
    """``annotate VIDEO --project P`` while ``held`` writes P."""
    project, proc = held
    video = write_jpeg_folder(np.zeros((T, H, W, 3), np.uint8), tmp_path / "video")
    viewer = make_napari_viewer(show=True)
    viewer, _schema_dock, prompt_dock, review = open_annotation_viewer(
        video, project=project, viewer=viewer, show=False)
    session = prompt_dock.hub.session
    assert session is not None, errors
    qtbot.waitUntil(lambda: review.data is not None and not review.loading, timeout=10000)
    yield review, session, proc
    prompt_dock.hub.set_session(None)
    session.close()


def test_the_review_dock_decides_while_another_process_writes(opened, qtbot, errors):  # noqa: F811
    review, session, proc = opened
    project = session.store.path
    assert session.read_only and f"PID {proc.pid}" in session.held_by
    assert not errors  # opening read-only is no error
    status = review.status_label.text()
    assert status.startswith("Read-only: masks cannot be edited while PID") and "track (a run" in status
    assert "QC decisions are recorded" in status
    review.select_object(2)
    review.go_to_frame(12)
    assert review.chosen_masklet() == (2, 10, 19)
    review.reviewer_edit.setText("ana")
    with qtbot.waitSignal(review.refreshed, timeout=10000):
        review.approve_button.click()
    review.go_to_frame(2)
    with qtbot.waitSignal(review.refreshed, timeout=10000):
        review.reject_button.click()
    qtbot.waitUntil(lambda: not review.loading, timeout=10000)
    assert live_holder(project).pid == proc.pid  # the other process held the lock throughout
    decisions = read_review(project).decisions
    assert [(d.object, d.start, d.end, d.status, d.reviewer) for d in decisions] == [
        (2, 10, 19, "satisfactory", "ana"), (2, 0, 5, "unsatisfactory", "ana")]
    assert review.queue_label.text() == "1 to correct"
    assert not errors


def test_sampled_qc_verdict_while_another_process_writes(opened, qtbot):
    review, session, proc = opened
    box = review.sample_box
    review.select_object(2)
    review.go_to_frame(12)
    qtbot.waitUntil(lambda: box.masklet == (2, 10, 19) and "no sample" in box.verdict_label.text(),
                    timeout=30000)
    review.reviewer_edit.setText("vera")
    box.draw_button.click()
    qtbot.waitUntil(lambda: box.frames.count() > 0, timeout=30000)
    for i in range(box.frames.count()):
        box.frames.setCurrentRow(i)
        with qtbot.waitSignal(box.judged, timeout=30000):
            box.pass_button.click()
    qtbot.waitUntil(lambda: box.verdict_label.text().startswith("satisfactory"), timeout=30000)
    state = read_review(session.store.path)
    (sample,) = state.samples
    assert sorted(d.start for d in state.decisions if d.basis == "frame") == sample.frames
    (verdict,) = [d for d in state.decisions if d.basis == "sample"]
    assert (verdict.object, verdict.start, verdict.end, verdict.status) == (2, 10, 19, "satisfactory")
    assert live_holder(session.store.path).pid == proc.pid


def test_edits_are_refused_in_one_line_and_nothing_changes(opened):
    _review, session, proc = opened
    store = session.store
    objects = store.object_ids()
    labels = np.asarray(store.labels[3])
    for action in (lambda: session.add_object("new"),
                   lambda: session.rename_object(1, "renamed"),
                   lambda: session.persist_edit(3, np.zeros((H, W), np.uint32)),
                   lambda: session.delete_keyframe(1, 0)):
        with pytest.raises(ProjectLockedError) as info:
            action()
        text = str(info.value)
        assert "\n" not in text and "read-only" in text and f"PID {proc.pid}" in text
    reopened = type(store).open(store.path, mode="r")
    assert reopened.object_ids() == objects
    assert {o.id: o.name for o in reopened.objects}[1] == "runner"
    assert np.array_equal(np.asarray(reopened.labels[3]), labels)
    assert [p.frame for p in reopened.prompts.prompts] == [0]


def test_a_free_project_still_opens_for_writing(tmp_path):
    review_project(tmp_path / "free.zarr").close()
    session = AnnotationSession.open(np.zeros((T, H, W), np.uint8), tmp_path / "free.zarr",
                                     prefetch=False)
    try:
        assert not session.read_only and session.held_by is None
        assert live_holder(tmp_path / "free.zarr").pid == os.getpid()
        session.rename_object(3, "third")
        assert session.object(3).name == "third"
    finally:
        session.close()
