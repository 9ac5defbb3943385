"""Store format 3: volume projects (t, z, y, x) stored plane by plane, and the 2 -> 3 migration."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from napari_sam2_track.project import FORMAT_VERSION, ProjectStore, StoreWriter
from napari_sam2_track.project.layout import ATTR_KEY
from napari_sam2_track.prompts import ObjectSpec, Prompt, PromptSet
from napari_sam2_track.sources import ArrayVolumeSource


class _Result:
    """What the writer takes: one plane's masks."""

    def __init__(self, frame, masks, presence=1.0):
        self.frame = frame
        self.masks = masks
        self.presence = {o: presence for o in masks}
        self.prompted = set()


def _volume(t=2, z=5, h=24, w=32, spacing=(2.5, 0.5, 0.5)):
    data = np.random.default_rng(0).integers(0, 255, (t, z, h, w), dtype=np.uint8)
    sizes = {"z": (spacing[0], "µm"), "y": (spacing[1], "µm"), "x": (spacing[2], "µm"),
             "t": (3.0, "s")}
    return ArrayVolumeSource(data, "TZYX", sizes=sizes)


def test_volume_project_layout_on_disk(tmp_path):
    vol = _volume()
    store = ProjectStore.create(tmp_path / "v.zarr", source=vol)
    try:
        assert store.is_volume and store.volume_shape == (2, 5, 24, 32)
        assert store.num_frames == 10 and store.shape == (10, 24, 32)
        assert store.plane(1, 3) == 8 and store.plane_tz(8) == (1, 3)
        with pytest.raises(IndexError):
            store.plane(0, 5)
        assert store.geometry.spacing == (3.0, 2.5, 0.5, 0.5)
        store.set_objects([ObjectSpec(id=1), ObjectSpec(id=2)])
        sphere = np.zeros((24, 32), bool)
        sphere[5:15, 6:20] = True
        writer = StoreWriter(store, 1, low_priority=False)
        for z in range(5):
            writer.submit(_Result(store.plane(1, z), {1: sphere, 2: np.roll(sphere, 3, axis=1)}))
        writer.close()
    finally:
        store.close()
    root = zarr.open_group(str(tmp_path / "v.zarr"), mode="r")
    meta = root.attrs[ATTR_KEY]
    assert meta["format_version"] == 3 and meta["axes"] == "tzyx"
    assert meta["shape"] == [2, 5, 24, 32] and meta["geometry"]["spacing"] == [3.0, 2.5, 0.5, 0.5]
    labels = root["labels/masklets/0"]
    assert labels.shape == (2, 5, 24, 32) and labels.chunks == (1, 1, 24, 32)
    assert list(labels.metadata.dimension_names) == ["t", "z", "y", "x"]
    ms = labels_ms = root["labels/masklets"].attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "z", "y", "x"]
    assert [a.get("unit") for a in labels_ms["axes"]] == ["second", "micrometer", "micrometer",
                                                         "micrometer"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [3.0, 2.5, 0.5, 0.5]
    stored = labels[1]
    assert (stored[:, 5:15, 6:9] == 1).all() and (stored[:, 5:15, 20:23] == 2).all()
    assert not labels[0].any()
    overlap = root["overlaps/1"]
    assert overlap.shape == (2, 5, 24, 32)
    assert (overlap[1][:, 5:15, 9:20] == 2).all()  # object 2 under object 1 where they overlap
    table = root["objects/1/table"]
    assert table.shape == (10, 8) and table.attrs["planes"] == [2, 5]

    store = ProjectStore.open(tmp_path / "v.zarr", mode="r")
    np.testing.assert_array_equal(store.label_volume(1), stored)
    obj2 = store.object_volume(2, 1)
    assert obj2.shape == (5, 24, 32) and obj2[:, 5:15, 9:23].all() and obj2.sum() == 5 * 140
    assert store.mask(2, store.plane(1, 2)).sum() == 140
    volume = store.physical_volume(2)
    assert np.isnan(volume[0]) and volume[1] == pytest.approx(5 * 140 * 2.5 * 0.5 * 0.5)
    from napari_sam2_track.project.check import verify_project

    problems, _ = verify_project(store)
    assert problems == []


def test_volume_prompts_are_keyed_by_plane(tmp_path):
    store = ProjectStore.create(tmp_path / "v.zarr", source=_volume())
    try:
        prompts = PromptSet(objects=[ObjectSpec(id=1)], prompts=[
            Prompt(object=1, frame=0, z=1, points=[(3, 3)], labels=[1]),
            Prompt(object=1, frame=0, z=4, box=(1, 1, 9, 9))])
        store.set_prompts(prompts)
        assert sorted(store.prompt_plane(p) for p in store.meta["prompts"]) == [1, 4]
        mask = np.zeros((24, 32), bool)
        mask[2:5, 2:5] = True
        stored = store.put_prompt(Prompt(object=1, frame=1, z=2, mask="m.png"), mask)
        assert stored.mask == "store:prompt_masks/1/7"
        assert store.prompt_mask(stored).sum() == 9
        store.delete_prompt(1, 0, z=4)
        assert sorted((p["frame"], p["z"]) for p in store.meta["prompts"]) == [(0, 1), (1, 2)]
        assert store.summary()["objects"][0]["keyframes"] == [1, 7]
    finally:
        store.close()


def test_2d_project_is_format_3_with_tyx_axes_and_unchanged_prompts(tmp_path):
    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=4, height=8, width=8)
    try:
        store.set_prompts(PromptSet(objects=[ObjectSpec(id=1)],
                                    prompts=[Prompt(object=1, frame=2, points=[(1, 1)], labels=[1])]))
        assert not store.is_volume and store.volume_shape == (4, 1, 8, 8)
        assert store.geometry.axes == "tyx" and store.geometry.spacing == (1.0, 1.0, 1.0)
        assert "z" not in store.meta["prompts"][0]
    finally:
        store.close()
    meta = zarr.open_group(str(tmp_path / "p.zarr"), mode="r").attrs[ATTR_KEY]
    assert meta["format_version"] == FORMAT_VERSION == 3 and meta["axes"] == "tyx"
    assert zarr.open_array(str(tmp_path / "p.zarr/labels/masklets/0"), mode="r").shape == (4, 8, 8)


def test_format_2_project_is_migrated_when_opened_for_writing(tmp_path):
    path = tmp_path / "old.zarr"
    store = ProjectStore.create(path, num_frames=3, height=8, width=8)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    store.set_objects([ObjectSpec(id=1)])
    store.write_mask(1, 1, mask)
    store.close()
    zarr_json = path / "zarr.json"
    doc = json.loads(zarr_json.read_text())
    doc["attributes"][ATTR_KEY]["format_version"] = 2
    del doc["attributes"][ATTR_KEY]["axes"]
    zarr_json.write_text(json.dumps(doc))
    reader = ProjectStore.open(path, mode="r")
    assert reader.format_version == 2 and reader.mask(1, 1).sum() == 4  # read as it is
    with ProjectStore.open(path) as store:
        meta = store.meta
        assert meta["format_version"] == 3 and meta["axes"] == "tyx"
        assert meta["migrated"][-1]["from"] == 2 and meta["migrated"][-1]["to"] == 3
        assert store.mask(1, 1).sum() == 4


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "new.zarr"
    ProjectStore.create(path, num_frames=2, height=4, width=4).close()
    doc = json.loads((path / "zarr.json").read_text())
    doc["attributes"][ATTR_KEY]["format_version"] = 4
    (path / "zarr.json").write_text(json.dumps(doc))
    from napari_sam2_track.errors import StoreError

    with pytest.raises(StoreError, match="newer"):
        ProjectStore.open(path)
