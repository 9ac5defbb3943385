"""Damaged, unfinished and unrelated stores: one line, nothing replaced, every chunk checked."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_sam2_track.cli import main
from napari_sam2_track.errors import StoreError
from napari_sam2_track.project import ProjectStore, StoreWriter
from napari_sam2_track.project.lock import LOCK_NAME
from napari_sam2_track.prompts import ObjectSpec

from test_store import disc, write_frame


def files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path) -> Path:
    """Two objects written on frames 0-3 of 6."""
    with ProjectStore.create(tmp_path / "p.zarr", num_frames=6, height=20, width=24) as store:
        store.set_objects([ObjectSpec(id=1), ObjectSpec(id=2)])
        for t in range(4):
            write_frame(store, t, {1: disc(20, 24, 6 + t, 8, 4), 2: disc(20, 24, 16, 12, 3)})
    return tmp_path / "p.zarr"


def cli(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_interrupted_build_leaves_nothing_and_the_old_project_untouched(project):
    before = files(project)
    with pytest.raises(RuntimeError), ProjectStore.building(project, num_frames=2, height=4, width=4,
                                                            overwrite=True) as store:
        store.set_objects([ObjectSpec(id=9)])
        raise RuntimeError("stopped half way")
    assert files(project) == before
    assert sorted(p.name for p in project.parent.iterdir()) == ["p.zarr"]
    new = project.parent / "new.zarr"
    with pytest.raises(RuntimeError), ProjectStore.building(new, num_frames=2, height=4, width=4):
        raise RuntimeError("stopped half way")
    assert not new.exists() and sorted(p.name for p in project.parent.iterdir()) == ["p.zarr"]


def test_staging_folders_of_dead_processes_are_removed(project, tmp_path):
    leftover = tmp_path / ".q.zarr.incomplete-0badcafe"
    leftover.mkdir()
    (leftover / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 17,
                                                  "started": "?", "command": "track"}))
    ProjectStore.create(tmp_path / "q.zarr", num_frames=2, height=4, width=4).close()
    assert not leftover.exists() and (tmp_path / "q.zarr").is_dir()


def test_an_overwrite_cut_between_its_renames_is_put_back(project, tmp_path):
    """Where the two folders cannot be exchanged in one step, a crash between the two renames
    leaves the old project beside its name; the next writer restores it."""
    before = files(project)
    moved = tmp_path / ".p.zarr.replaced-12345678"
    os.rename(project, moved)
    (moved / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 17,
                                               "started": "?", "command": "track --overwrite"}))
    with ProjectStore.open(project) as store:
        assert store.object_ids() == [1, 2]
    assert files(project) == before and not moved.exists()


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda p: (p / "zarr.json").write_bytes(b"\x00garbage{"), "cannot read the metadata"),
        (lambda p: (p / "zarr.json").write_text(""), "cannot read the metadata"),
        (lambda p: _edit_meta(p, lambda m: m.pop("runs")), "'runs' is missing"),
        (lambda p: _edit_meta(p, lambda m: m.update(shape=[6, -1, 24])), "three positive integers"),
        (lambda p: _edit_meta(p, lambda m: m.update(objects=[{"name": "no id"}])), "objects[0] has no integer id"),
        (lambda p: _edit_meta(p, lambda m: m.update(building=True)), "unfinished project"),
    ],
)
def test_corrupt_metadata_is_one_line(project, capsys, damage, match):
    damage(project)
    for args in (["info", project], ["info", project, "--check"]):
        code, out, err = cli(args, capsys)
        assert code == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and match in lines[0] and "Traceback" not in err
    with pytest.raises(StoreError, match="metadata|unfinished"):
        ProjectStore.open(project)


def _edit_meta(path: Path, change) -> None:
    doc = json.loads((path / "zarr.json").read_text())
    change(doc["attributes"]["napari_sam2_track"])
    (path / "zarr.json").write_text(json.dumps(doc))


def test_a_store_created_before_its_metadata_is_called_incomplete(tmp_path, capsys):
    """What an interrupted creation left before creation became atomic."""
    root = zarr.open_group(str(tmp_path / "old.zarr"), mode="w")
    root.create_group("labels").create_group("masklets").create_array("0", shape=(3, 4, 4), dtype="uint32")
    root.create_group("objects")
    code, _, err = cli(["info", tmp_path / "old.zarr"], capsys)
    assert code == 2 and "incomplete project" in err and len(err.strip().splitlines()) == 1


def test_info_check_passes_on_a_sound_project(project, capsys):
    code, out, _ = cli(["info", project, "--check"], capsys)
    assert code == 0
    assert "check    ok: 6 frames x 2 objects, 8 table rows verified" in out


def test_info_check_names_array_and_frame_of_a_corrupt_chunk(project, capsys):
    with ProjectStore.open(project) as store:  # object 2 under object 1: an overlap layer
        write_frame(store, 4, {1: disc(20, 24, 16, 12, 5), 2: disc(20, 24, 16, 12, 3)})
    (project / "overlaps/1/c/4/0/0").write_bytes(os.urandom(64))
    (project / "labels/masklets/0/c/3/0/0").write_bytes(b"")
    code, out, _ = cli(["info", project, "--check"], capsys)
    assert code == 1
    assert "overlaps/1 frame 4: unreadable chunk" in out
    assert "labels/masklets/0 frame 3: unreadable chunk" in out
    assert "2 problems" in out


def test_info_check_verifies_the_overlap_layers(project, capsys):
    with ProjectStore.open(project) as store:
        write_frame(store, 4, {1: disc(20, 24, 16, 12, 5), 2: disc(20, 24, 16, 12, 3)})
    assert cli(["info", project, "--check"], capsys)[0] == 0
    layer = zarr.open_array(str(project / "overlaps/1"), mode="r+")
    frame = layer[4]
    frame[0, 0] = 2  # an overlap pixel where no object lies in the merged labels
    layer[4] = frame
    code, out, _ = cli(["info", project, "--check"], capsys)
    assert code == 1 and "overlaps/1 frame 4: overlap pixels not above a lower id" in out


def test_info_check_verifies_each_table_row(project, capsys):
    store = ProjectStore.open(project)
    table = store.group["objects/1/table"]
    row = table[1]
    row[1] += 5  # area
    table[1] = row
    row = table[2]
    row[6] = 9  # state
    table[2] = row
    row = table[3]
    row[2] += 1  # x0
    table[3] = row
    store.close()
    shutil.rmtree(project / "objects/2/table")
    code, out, _ = cli(["info", project, "--check"], capsys)
    assert code == 1
    assert "objects/1/table row 1: area" in out
    assert "objects/1/table row 2: invalid state 9" in out
    assert "objects/1/table row 3: bounding box does not match the mask" in out
    assert "objects/2: arrays missing or unreadable" in out


def test_info_shows_a_run_whose_writer_is_gone_as_interrupted(project, capsys):
    store = ProjectStore.open(project)
    run = store.begin_run(direction="forward")
    writer = StoreWriter(store, run)
    writer.close()
    store._lock.release()  # the writer disappears without recording an end (as after kill -9)
    code, out, _ = cli(["info", project], capsys)
    assert code == 0 and "#1 interrupted" in out and "running" not in out
    with ProjectStore.open(project) as again:  # the next writer records it
        assert again.meta["runs"][0]["status"] == "interrupted"
    np.testing.assert_array_equal(ProjectStore.open(project, "r").labels[0] > 0,
                                  disc(20, 24, 6, 8, 4) | disc(20, 24, 16, 12, 3))
