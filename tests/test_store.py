"""Project store: layout, OME-Zarr metadata, overlap rule, edits, writer thread."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_sam2_track.engine.tracker import FrameResult
from napari_sam2_track.errors import StoreError
from napari_sam2_track.prompts import ObjectSpec
from napari_sam2_track.schema import Category, Schema
from napari_sam2_track.project import (
    COL,
    STATE_ABSENT,
    STATE_EDITED,
    STATE_PROMPTED,
    STATE_PROPAGATED,
    ProjectStore,
    StoreWriter,
    is_project,
    mask_stats,
)


def disc(h, w, cx, cy, r):
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 < r**2


@pytest.fixture
def store(tmp_path):
    s = ProjectStore.create(tmp_path / "p.zarr", num_frames=5, height=40, width=50)
    s.set_schema(
        Schema(categories=[Category(name="cell", color="#ff0000"), Category(name="tool", color="#00ff00")])
    )
    s.set_objects([ObjectSpec(id=3, category="cell"), ObjectSpec(id=7, name="probe", category="tool")])
    return s


def write_frame(store, t, masks, presence=None, prompted=()):
    writer = StoreWriter(store, run_id=1)
    writer.submit(
        FrameResult(
            frame=t,
            direction="forward",
            masks=masks,
            presence=presence or {o: 5.0 for o in masks},
            prompted=set(prompted),
        )
    )
    writer.close()


def test_layout_is_readable_with_plain_zarr(store):
    a, b = disc(40, 50, 20, 20, 8), disc(40, 50, 26, 20, 8)
    write_frame(store, 2, {3: a, 7: b}, prompted={3})
    root = zarr.open_group(str(store.path), mode="r")
    labels = root["labels/masklets/0"]
    assert labels.shape == (5, 40, 50) and labels.dtype == np.uint32
    assert labels.chunks == (1, 40, 50)
    # overlap goes to the lowest id; each object's own mask keeps the overlap
    frame = labels[2]
    assert np.array_equal(frame == 3, a)
    assert np.array_equal(frame == 7, b & ~a)
    # object 7's pixels under object 3 are in the first overlap layer (store format 2)
    assert np.array_equal((frame == 7) | (root["overlaps/1"][2] == 7), b)
    assert np.array_equal(store.mask(7, 2), b)
    row = root["objects/3/table"][2]
    assert row[COL["state"]] == STATE_PROMPTED and row[COL["area"]] == a.sum()
    assert root["objects/7/table"][2][COL["state"]] == STATE_PROPAGATED
    assert np.isnan(root["objects/3/table"][0]).all()  # not yet run
    # empty frames are not written at all
    chunk_files = sorted(p.name for p in (store.path / "labels/masklets/0/c").iterdir())
    assert chunk_files == ["2"]


def test_ome_zarr_reader_opens_labels_with_schema_colours(store):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    write_frame(store, 0, {3: disc(40, 50, 20, 20, 8), 7: disc(40, 50, 35, 20, 5)})
    nodes = list(Reader(parse_url(str(store.path / "labels" / "masklets")))())
    label_nodes = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert label_nodes, "ome-zarr-py did not recognise the image-label group"
    node = label_nodes[0]
    assert node.data[0].shape == (5, 40, 50)
    assert [ax["name"] for ax in node.metadata["axes"]] == ["t", "y", "x"]
    colors = node.metadata["color"]
    r3, g3, _, _ = colors[3]
    r7, g7, _, _ = colors[7]
    assert r3 > g3 and g7 > r7  # cell is red, tool is green
    assert np.array_equal(np.asarray(node.data[0][0]), store.labels[0])


def test_absent_when_presence_negative_or_below_min_pixels(store):
    tiny = np.zeros((40, 50), bool)
    tiny[0, 0] = True
    writer = StoreWriter(store, run_id=4, min_visible_pixels=10)
    writer.submit(FrameResult(1, "forward", {3: tiny, 7: disc(40, 50, 20, 20, 6)}, {3: 3.0, 7: -2.0}))
    writer.close()
    assert store.table(3)[1, COL["state"]] == STATE_ABSENT
    assert store.table(7)[1, COL["state"]] == STATE_ABSENT
    assert store.table(7)[1, COL["run"]] == 4
    assert store.table(7)[1, COL["presence"]] == -2.0


def test_edit_persists_and_marks_frame_edited(store):
    a = disc(40, 50, 20, 20, 8)
    write_frame(store, 3, {3: a, 7: disc(40, 50, 40, 20, 5)})
    edited = store.labels[3]
    edited[edited == 3] = 0  # erase object 3
    edited[0:5, 0:5] = 9  # paint a new object
    changed = store.write_edited_labels(3, edited)
    assert changed == [3, 9]
    assert not store.mask(3, 3).any()
    assert store.mask(9, 3).sum() == 25
    assert store.states(3)[3] == STATE_EDITED and store.states(9)[3] == STATE_EDITED
    assert store.states(7)[3] == STATE_PROPAGATED  # untouched object keeps its state
    assert np.array_equal(store.labels[3], edited)


def test_remove_object_clears_its_pixels(store):
    write_frame(store, 1, {3: disc(40, 50, 20, 20, 8), 7: disc(40, 50, 24, 20, 8)})
    store.remove_object(3)
    assert store.object_ids() == [7]
    assert np.array_equal(store.labels[1] == 7, disc(40, 50, 24, 20, 8))


def test_unknown_category_is_refused(store):
    with pytest.raises(StoreError, match="category 'dog'"):
        store.add_object(ObjectSpec(id=11, category="dog"))


def test_existing_project_needs_overwrite(store):
    with pytest.raises(StoreError, match="--resume.*--overwrite"):
        ProjectStore.create(store.path, num_frames=5, height=40, width=50)


def test_is_project_needs_the_project_layout_not_only_its_attribute_key(store, tmp_path):
    assert is_project(store.path) and is_project(str(store.path))
    # a zarr group carrying the project's attribute key but not its layout (an OME-Zarr export of
    # an older version recorded its image reference so)
    other = zarr.open_group(str(tmp_path / "export.zarr"), mode="w")
    other.attrs["napari_sam2_track"] = {"image": "video.mp4", "frames": [0, 4, 1]}
    other.create_group("labels").create_group("masklets").create_array("0", shape=(5, 4, 4), dtype="uint32")
    assert not is_project(tmp_path / "export.zarr")
    with pytest.raises(StoreError, match="not a napari-sam2-track project"):
        ProjectStore.open(tmp_path / "export.zarr", "r")
    # what an interrupted creation of an older version left (labels and objects, no metadata)
    other.create_group("objects")
    del other.attrs["napari_sam2_track"]
    assert is_project(tmp_path / "export.zarr")
    assert not is_project(tmp_path / "missing.zarr") and not is_project(store.path / "objects")


def test_open_rejects_non_project(tmp_path):
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a napari-sam2-track project"):
        ProjectStore.open(tmp_path / "other.zarr")
    with pytest.raises(StoreError, match="not a project store"):
        ProjectStore.open(tmp_path / "missing.zarr")


def test_writer_error_reaches_the_submitter(store):
    writer = StoreWriter(store, run_id=1)
    writer.submit(FrameResult(99, "forward", {3: np.zeros((40, 50), bool)}, {3: 1.0}))
    with pytest.raises(Exception):
        writer.close()


def test_mask_stats():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_stats(m) == (18, (3, 2, 9, 5))
    assert mask_stats(np.zeros((4, 4), bool)) == (0, None)
