"""Importers and round trips: export -> import -> compare gives J = 1."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.formats import LabelSource, export, import_annotations, read_labels
from napari_sam2_track.formats._frames import labels_to_masks
from napari_sam2_track.formats.metrics import davis_jf
from napari_sam2_track.prompts import ObjectSpec
from napari_sam2_track.project import STATE_EDITED, STATE_PROMPTED, ProjectStore

from test_export import T, build_project, merged


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = tmp_path_factory.mktemp("proj") / "p.zarr"
    store, masks, sample = build_project(path)
    return ProjectStore.open(path, "r"), masks


def source_of(masks, ids, *, merge: bool) -> LabelSource:
    def frames():
        for t in range(T):
            if merge:
                got = labels_to_masks(merged(masks, t, ids))
            else:
                got = {i: masks[i, t] for i in ids if masks[i, t].any()}
            if got:
                yield t, got

    return LabelSource((T, 64, 64), [ObjectSpec(id=i) for i in ids], frames)


# format, output name, keeps overlaps
ROUND_TRIPS = [
    ("ome-zarr", "o.ome.zarr", False),
    ("ome-zarr-0.4", "o4.ome.zarr", False),
    ("ctc", "ctc", False),
    ("tiff", "l.tif", False),
    ("davis", "davis", False),
    ("youtube-vos", "ytvos", False),
    ("sav", "sav", True),
    ("youtube-vis", "v.json", True),
    ("cvat", "c.xml", True),
    ("mots", "m.txt", False),
]


@pytest.mark.parametrize("fmt,name,overlaps", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_round_trip(project, tmp_path, fmt, name, overlaps):
    store, masks = project
    ids = store.object_ids()
    out = export(store, fmt, tmp_path / name)
    imported = import_annotations(out, tmp_path / "back.zarr")
    assert imported.object_ids() == ids
    again = read_labels(tmp_path / "back.zarr")
    result = davis_jf(source_of(masks, ids, merge=not overlaps), again)
    for i in ids:
        assert result["objects"][i]["J"]["mean"] == 1.0, (fmt, i)
    assert result["overall"]["J&F"] == 1.0
    # objects' categories survive where the format carries them
    if fmt in ("ome-zarr", "youtube-vis", "cvat", "davis", "sav"):
        assert [o.category for o in imported.objects] == [o.category for o in store.objects]


def test_merged_formats_lose_overlaps(project, tmp_path):
    """The comparison is not blind: a merged format differs from the per-object masks."""
    store, masks = project
    out = export(store, "davis", tmp_path / "d")
    result = davis_jf(source_of(masks, store.object_ids(), merge=False), read_labels(out))
    assert result["objects"][4]["J"]["mean"] < 1.0
    assert result["objects"][1]["J"]["mean"] == 1.0


def test_import_keyframes_and_states(project, tmp_path):
    store, masks = project
    out = export(store, "youtube-vis", tmp_path / "v.json")
    imported = import_annotations(out, tmp_path / "k.zarr", keyframes="first")
    prompts = imported.prompts.prompts
    assert sorted((p.object, p.frame) for p in prompts) == sorted(
        (i, min(t for t in range(T) if masks[i, t].any())) for i in store.object_ids())
    p = next(p for p in prompts if p.object == 2)
    np.testing.assert_array_equal(imported.prompt_mask(p), masks[2, p.frame])
    assert imported.states(2)[p.frame] == STATE_PROMPTED
    assert imported.states(2)[p.frame + 1] == STATE_EDITED
    np.testing.assert_array_equal(imported.labels[6], merged(masks, 6, store.object_ids()))


def test_import_errors(tmp_path):
    from napari_sam2_track.errors import StoreError

    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(StoreError, match="cannot read"):
        read_labels(bad)
    with pytest.raises(StoreError, match="does not exist"):
        read_labels(tmp_path / "missing")


def test_real_cells_tiff_round_trip(shared_data, tmp_path):
    import tifffile

    labels = tifffile.imread(shared_data / "microscopy" / "cells_labels.tif")
    store = import_annotations(shared_data / "microscopy" / "cells_labels.tif", tmp_path / "c.zarr")
    assert store.shape == labels.shape
    np.testing.assert_array_equal(store.labels[:], labels)
    from ctc_metrics import validate_sequence

    out = export(store, "ctc", tmp_path / "01_RES")
    assert validate_sequence(str(out), threads=1)["Valid"] == 1
    result = davis_jf(read_labels(shared_data / "microscopy" / "cells_labels.tif"), read_labels(out))
    assert result["overall"]["J"]["mean"] == 1.0
