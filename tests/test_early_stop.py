"""Early-stopped corrections on a real video (random-init test model): the frames they
re-propagate equal the full segment's, the frames beyond the stop keep their stored masks, and
a kill -9 in the middle leaves the project as before the correction or after it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from napari_sam2_track.project import ProjectStore, StaleLockWarning

from test_review_segments import chunk_files

END = 24  # frames 0..END of the real clip are tracked


def _tracked_project(path: Path, video: Path, model) -> None:
    from napari_sam2_track.session import AnnotationSession
    from napari_sam2_track.sources import open_source

    source = open_source(video)
    store = ProjectStore.create(path, num_frames=len(source), height=source.height, width=source.width)
    session = AnnotationSession(source, store, prefetch=False)
    session.set_model(model)
    session.add_object("person")
    session.add_click(0, 480, 270, obj_id=1)
    session.add_click(END, 480, 270, obj_id=1)
    list(session.propagate_iter("forward", 0, END))
    session.close()


@pytest.fixture
def project(tmp_path, shared_data, test_model):
    path = tmp_path / "a.zarr"
    _tracked_project(path, shared_data / "video" / "bedroom.mp4", test_model)
    return path


def _correct(path: Path, video: Path, model, stop_early: bool):
    from napari_sam2_track.session import AnnotationSession
    from napari_sam2_track.sources import open_source

    session = AnnotationSession(open_source(video), ProjectStore.open(path), prefetch=False)
    session.set_model(model)
    session.corrections.stop_early = stop_early
    schema = session.store.schema  # a lenient rule so that the random model can agree
    session.store.set_schema(schema.model_copy(update={"review": schema.review.model_copy(
        update={"agree_frames": 3, "agree_iou": 0.5})}))
    correction = session.correct(12, [(480.0, 270.0, 1), (500.0, 300.0, 1)], obj_id=1)
    masks = session.store.masks(1, 0, END + 1)
    session.close()
    return correction, masks


def test_early_stop_equals_the_full_segment_where_it_ran(project, shared_data, test_model, tmp_path):
    video = shared_data / "video" / "bedroom.mp4"
    stored = ProjectStore.open(project, mode="r").masks(1, 0, END + 1)
    full_path = tmp_path / "full.zarr"
    shutil.copytree(project, full_path)
    early, early_masks = _correct(project, video, test_model, True)
    full, full_masks = _correct(full_path, video, test_model, False)
    assert (full.start, full.end) == (1, END - 1) and full.stops == {}
    assert early.segment == (1, END - 1) and early.start >= 1 and early.end <= END - 1
    # the first pass (forward from the corrected frame) is the same computation up to its stop:
    # the same masks, to the pixel. The backward pass reads memory from frames after the
    # corrected one, which differ once the forward pass stopped early (docs/review.md).
    for t in range(12, early.end + 1):
        assert np.array_equal(early_masks[t], full_masks[t]), t
    for t in [*range(1, early.start), *range(early.end + 1, END)]:
        assert np.array_equal(early_masks[t], stored[t]), t  # beyond the stop: as stored
    if "forward" in early.stops:
        assert early.stops["forward"] == early.end


KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import nudge_test_model
    from napari_sam2_track.engine.models import load_random_model
    from napari_sam2_track.project import ProjectStore
    from napari_sam2_track.project import versions
    from napari_sam2_track.session import AnnotationSession
    from napari_sam2_track.sources import open_source

    capture = versions.RunVersions.capture
    def announcing(self, result):
        out = capture(self, result)
        print("frame", result.frame, flush=True)
        return out
    versions.RunVersions.capture = announcing
    model = load_random_model(image_size=256, seed=0, device="cpu")
    nudge_test_model(model.predictor)
    session = AnnotationSession(open_source({video!r}), ProjectStore.open({path!r}), prefetch=False)
    session.set_model(model)
    session.corrections.stop_early = True
    session.correct(12, [(480.0, 270.0, 1), (500.0, 300.0, 0)], obj_id=1)
    print("done", flush=True)
""")


@pytest.mark.slow
def test_kill_during_an_early_stopped_correction_leaves_before_or_after(project, shared_data, tmp_path):
    from napari_sam2_track.project.versions import list_versions
    from napari_sam2_track.review.segments import undo_segment

    before = chunk_files(ProjectStore.open(project, mode="r"))
    prompts = ProjectStore.open(project, mode="r").meta["prompts"]
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), video=str(shared_data / "video" / "bedroom.mp4"),
                                path=str(project))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("frame")
        if seen == 4:  # the prompt's frame and three re-propagated frames are written or on their way
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with pytest.warns(StaleLockWarning):  # the next writer: rolls the half-written correction back
        store = ProjectStore.open(project)
    newest = list_versions(store, 1)[-1]
    if newest.kind == "correction":  # it had finished: after; its undo gives before
        undo_segment(store, 1)
    assert chunk_files(store) == before
    assert store.meta["prompts"] == prompts
    store.close()
