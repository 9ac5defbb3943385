"""A second opinion by another model: stored apart, compared, flagged, adopted and undone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_blob_video, nudge_test_model, write_jpeg_folder
from napari_sam2_track.errors import ReviewError
from napari_sam2_track.project import ProjectStore
from napari_sam2_track.prompts import PromptSet
from napari_sam2_track.review.flags import find_flags
from napari_sam2_track.review.qc import approve
from napari_sam2_track.review.models import read_review
from napari_sam2_track.review.adopt import adopt
from napari_sam2_track.review.second_opinion import (
    SECOND_OPINION_GROUP,
    image_size_note,
    open_opinion,
    opinion_info,
    opinion_names,
    run_second_opinion,
)
from napari_sam2_track.review.segments import undo_segment
from napari_sam2_track.sources import open_source

N = 10
PROMPTS = {
    "objects": [{"id": 1}, {"id": 2}],
    "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
                {"object": 2, "frame": 0, "box": [78, 18, 102, 42]}],
}


@pytest.fixture(scope="module")
def other_model():
    """The same architecture with other random weights (seed 1): a second opinion that
    disagrees."""
    from napari_sam2_track.engine.models import load_random_model

    model = load_random_model(image_size=256, seed=1, device="cpu")
    nudge_test_model(model.predictor, mask_shift=0.05)
    return model


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_jpeg_folder(make_blob_video(N), tmp_path_factory.mktemp("so") / "jpg")


@pytest.fixture
def project(tmp_path, video, test_model):
    from napari_sam2_track.pipeline import track

    out = tmp_path / "p.zarr"
    with open_source(video) as source:
        list(track(source, PromptSet.model_validate(PROMPTS), out, model=test_model))
    return out


def project_files(path) -> dict[str, bytes]:
    """Every file of the project except the second opinions' and the review logs."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and not p.relative_to(path).parts[0] in (SECOND_OPINION_GROUP, "review")
            and p.name != ".napari_sam2_track.lock" and not p.name.startswith(".")}


def second_opinion(project, video, model, **kw):
    with ProjectStore.open(project) as store, open_source(video) as source:
        return list(run_second_opinion(store, source, model, **kw))


def test_the_same_model_twice_agrees_and_leaves_the_project_untouched(project, video, test_model):
    before = project_files(project)
    progress = second_opinion(project, video, test_model, name="same")
    assert progress and progress[-1].computed == progress[-1].total
    assert project_files(project) == before  # the project's masks and tables, byte for byte
    store = ProjectStore.open(project, mode="r")
    assert opinion_names(store) == ["same"]
    opinion = open_opinion(store)
    for o in (1, 2):
        np.testing.assert_array_equal(opinion.masks(o, 0, N), store.masks(o, 0, N))
    info = opinion_info(store)
    assert all(v["disagreeing"] == 0 and v["compared"] == N for v in info["objects"].values())
    assert not [f for f in find_flags(store).flags if f.kind == "disagreement"]


def test_another_model_gives_disagreement_flags_and_adopting_them_is_an_undoable_correction(
        project, video, other_model):
    before = project_files(project)
    second_opinion(project, video, other_model, name="other")
    assert project_files(project) == before
    store = ProjectStore.open(project)
    flags = [f for f in find_flags(store).flags if f.kind == "disagreement"]
    assert flags, "two different random-init models should disagree somewhere"
    flag = max(flags, key=lambda f: f.score)
    assert "second opinion" in flag.reason
    obj, a, b = flag.object, flag.start, flag.end
    approve(store, obj, a, b, reviewer="ann")
    ours = store.masks(obj, 0, N)
    rows = store.table(obj).copy()
    theirs = open_opinion(store, "other").masks(obj, 0, N)
    assert not np.array_equal(ours[a : b + 1], theirs[a : b + 1])

    assert adopt(store, obj, a, b, name="other") == (a, b)
    after = store.masks(obj, 0, N)
    np.testing.assert_array_equal(after[a : b + 1], theirs[a : b + 1])
    np.testing.assert_array_equal(np.delete(after, range(a, b + 1), 0), np.delete(ours, range(a, b + 1), 0))
    assert not read_review(store).valid_decisions(obj)  # the adoption invalidated the approval
    assert not [f for f in find_flags(store).flags if f.kind == "disagreement" and f.object == obj
                and f.start <= a <= f.end]  # adopted frames agree now

    assert undo_segment(store, obj) == (a, b)
    np.testing.assert_array_equal(store.masks(obj, 0, N), ours)
    np.testing.assert_array_equal(store.table(obj), rows)
    again = [f for f in find_flags(store).flags if f.kind == "disagreement"]
    assert any(f.object == obj and f.start <= flag.frame <= f.end for f in again)
    store.close()


def test_an_existing_second_opinion_is_refused_or_replaced(project, video, test_model, other_model):
    second_opinion(project, video, test_model, name="m2")
    with pytest.raises(ReviewError, match="already exists.*--overwrite"):
        second_opinion(project, video, other_model, name="m2")
    store = ProjectStore.open(project, mode="r")
    assert open_opinion(store, "m2").meta["model"]["name"] == test_model.name
    second_opinion(project, video, other_model, name="m2", overwrite=True)
    assert open_opinion(store, "m2").meta["model"]["name"] == other_model.name
    assert opinion_names(store) == ["m2"]


def test_a_cancelled_second_opinion_stores_nothing(project, video, other_model):
    import threading

    cancel = threading.Event()
    with ProjectStore.open(project) as store, open_source(video) as source:
        for p in run_second_opinion(store, source, other_model, name="x", cancel=cancel):
            cancel.set()
        assert opinion_names(store) == []
        assert not (project / SECOND_OPINION_GROUP / "x").exists()


def test_a_second_opinion_at_another_image_size_is_allowed_and_said(project, test_model):
    store = ProjectStore.open(project, mode="r")
    assert image_size_note(store, test_model) is None
    bigger = type(test_model)(**{**test_model.__dict__, "image_size": 512})
    note = image_size_note(store, bigger)
    assert "512 px" in note and "256 px" in note and "128x96" in note


def test_adopting_without_a_second_opinion_or_outside_it_is_one_line(project):
    with ProjectStore.open(project) as store:
        with pytest.raises(ReviewError, match="has no second opinion"):
            adopt(store, 1, 0, 3)
        with pytest.raises(ReviewError, match="not in p.zarr"):
            adopt(store, 9, 0, 3)


# ------------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory, other_model):
    import torch

    path = tmp_path_factory.mktemp("ckpt2") / "other_tiny.pt"
    torch.save({"model": other_model.predictor.state_dict()}, path)
    return path


def cli(capsys, *argv):
    from napari_sam2_track.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_second_opinion_and_adopt_on_the_command_line(project, other_checkpoint, capsys):
    before = project_files(project)
    code, out, err = cli(capsys, "review", "second-opinion", project, "--model", other_checkpoint,
                         "--image-size", 256, "--device", "cpu", "--quiet")
    assert code == 0, err
    assert "second opinion 'other_tiny-256'" in out and "frames compared disagree" in out
    assert project_files(project) == before
    code, out, _ = cli(capsys, "review", project, "--json")
    flags = [f for f in json.loads(out)["flags"] if f["kind"] == "disagreement"]
    assert flags
    f = flags[0]
    code, out, err = cli(capsys, "review", "adopt", project, f["object"], "--frames", f"{f['start']}-{f['end']}")
    assert code == 0, err
    assert f"object {f['object']} frames {f['start']}-{f['end']}: the second opinion's masks adopted" in out
    store = ProjectStore.open(project, mode="r")
    assert store.meta["runs"][-1]["adopted_from"] == "second_opinion/other_tiny-256"
    # the same again is refused without --overwrite, before anything is tracked
    code, _, err = cli(capsys, "review", "second-opinion", project, "--model", other_checkpoint,
                       "--image-size", 256, "--device", "cpu", "--name", "other_tiny-256")
    assert code == 2 and "already exists" in err and "--overwrite" in err


@pytest.mark.parametrize("model, message", [
    ("missing.pt", "checkpoint .*missing.pt not found"),
    ("facebook/sam2.1-hiera-large", "cannot download facebook/sam2.1-hiera-large"),
])
def test_a_second_model_that_does_not_load_is_one_line_and_writes_nothing(
        project, capsys, monkeypatch, tmp_path, model, message):
    import re

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    before = project_files(project)
    code, _, err = cli(capsys, "review", "second-opinion", project, "--model", tmp_path / model
                       if model.endswith(".pt") else model, "--device", "cpu")
    assert code == 2 and re.search(message, err) and len(err.strip().splitlines()) == 1
    assert project_files(project) == before and not (project / SECOND_OPINION_GROUP).exists()


def test_an_image_size_sam2_cannot_use_is_refused(project, other_checkpoint, capsys):
    code, _, err = cli(capsys, "review", "second-opinion", project, "--model", other_checkpoint,
                       "--image-size", 500, "--device", "cpu")
    assert code == 2 and "image size 500" in err and "multiple of 32" in err


def test_a_second_opinion_while_a_propagation_holds_the_lock_is_refused_naming_it(
        project, other_checkpoint, capsys):
    import subprocess
    import sys

    hold = ("import sys, time\nfrom napari_sam2_track.project import ProjectStore\n"
            "store = ProjectStore.open(sys.argv[1], command='track v.mp4 --resume')\n"
            "print('locked', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(project)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        code, _, err = cli(capsys, "review", "second-opinion", project, "--model", other_checkpoint,
                           "--device", "cpu")
        assert code == 2 and f"PID {proc.pid}" in err and "track v.mp4 --resume" in err
    finally:
        proc.kill()
        proc.wait()
    assert not (project / SECOND_OPINION_GROUP).exists()
