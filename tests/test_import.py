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


# ---------------------------------------------------------------------- faithful imports
def run_cli(capsys, *argv):
    from napari_sam2_track.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_davis_2016_binary_masks_are_one_object(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "blackswan"
    folder.mkdir()
    truth = {}
    for t in range(4):
        m = np.zeros((24, 32), np.uint8)
        m[4 + t : 12 + t, 5:20] = 255
        truth[t] = m == 255
        Image.fromarray(m, mode="L").save(folder / f"{t:05d}.png")
    rc, out, err = run_cli(capsys, "import", folder, "--out", tmp_path / "b.zarr")
    assert rc == 0, err
    assert "1 objects" in out and "DAVIS-2016" in out
    store = ProjectStore.open(tmp_path / "b.zarr", "r")
    assert store.object_ids() == [1]
    assert store.meta["source"]["convention"].startswith("DAVIS-2016")
    for t in range(4):
        np.testing.assert_array_equal(store.mask(1, t), truth[t])


def test_davis_2017_void_is_dropped_and_said(tmp_path, capsys):
    from napari_sam2_track.formats.davis import save_palette_png

    folder = tmp_path / "davis" / "Annotations" / "cows"
    folder.mkdir(parents=True)
    for t in range(3):
        v = np.zeros((20, 20), np.uint8)
        v[2:8, 2:8] = 1
        v[10:15, 10:15] = 2
        v[0, :] = 255  # void
        save_palette_png(folder / f"{t:05d}.png", v)
    rc, out, err = run_cli(capsys, "import", tmp_path / "davis", "--out", tmp_path / "c.zarr")
    assert rc == 0, err
    assert "DAVIS-2017" in out and "2 objects" in out
    assert err.startswith("warning: pixels of value 255") and err.count("\n") == 1
    store = ProjectStore.open(tmp_path / "c.zarr", "r")
    assert store.object_ids() == [1, 2] and not store.labels[0][0].any()
    assert store.meta["source"]["dropped"]


def test_tiff_written_one_series_per_frame_reads_every_frame(tmp_path):
    import tifffile

    labels = np.zeros((5, 16, 16), np.uint16)
    for t in range(5):
        labels[t, t : t + 4, 2:6] = 3
        labels[t, 10:14, t : t + 3] = 7
    with tifffile.TiffWriter(tmp_path / "frames.tif") as tw:
        for frame in labels:
            tw.write(frame)
    with tifffile.TiffFile(tmp_path / "frames.tif") as tif:
        assert len(tif.series) == 5  # as written: the case that read one frame before
    store = import_annotations(tmp_path / "frames.tif", tmp_path / "f.zarr")
    assert store.shape == (5, 16, 16)
    np.testing.assert_array_equal(store.labels[:], labels)


def write_ctc_ground_truth(root, with_division=True):
    """A CTC ground truth: track 1 divides into 2 and 3 at frame 4; track 4 runs throughout."""
    import tifffile

    gt = root / "01_GT"
    for sub, prefix in (("TRA", "man_track"), ("SEG", "man_seg")):
        (gt / sub).mkdir(parents=True)
        for t in range(8):
            lab = np.zeros((48, 48), np.uint16)
            if t < 4:
                lab[10:20, 10:30] = 1
            else:
                lab[8:16, 10:18] = 2
                lab[24:32, 22:30] = 3
            lab[35:45, 35:45] = 4
            tifffile.imwrite(gt / sub / f"{prefix}{t:03d}.tif", lab)
    parent = 1 if with_division else 0
    (gt / "TRA" / "man_track.txt").write_text(f"1 0 3 0\n2 4 7 {parent}\n3 4 7 {parent}\n4 0 7 0\n")
    return gt


def ctc_scores(res, gt) -> dict:
    import contextlib
    import io
    import warnings

    from ctc_metrics import evaluate_sequence

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = evaluate_sequence(str(res), str(gt), metrics=["SEG", "TRA"], threads=1)
    return {k: float(out[k]) for k in ("SEG", "TRA")}


def test_ctc_lineage_round_trips_with_seg_and_tra_1(tmp_path):
    gt = write_ctc_ground_truth(tmp_path)
    store = import_annotations(gt, tmp_path / "cells.zarr")
    assert {o.id: o.parent for o in store.objects} == {1: None, 2: 1, 3: 1, 4: None}
    reopened = ProjectStore.open(tmp_path / "cells.zarr", "r")
    assert [o.parent for o in reopened.objects] == [None, 1, 1, None]
    res = export(reopened, "ctc", tmp_path / "01_RES")
    assert (res / "res_track.txt").read_text() == (gt / "TRA" / "man_track.txt").read_text()
    assert ctc_scores(res, gt) == {"SEG": 1.0, "TRA": 1.0}
    # Lineage matters to TRA: the same masks without the parent links score lower.
    store = ProjectStore.open(tmp_path / "cells.zarr", "r+")
    store.set_objects([o.model_copy(update={"parent": None}) for o in store.objects])
    flat = export(store, "ctc", tmp_path / "02_RES")
    assert ctc_scores(flat, gt)["TRA"] < 1.0


def sav_json(path, n_annotated, h=16, w=20, frame_count=None):
    import json

    from napari_sam2_track.formats._rle import coco_encode

    masklet = []
    for i in range(n_annotated):
        a = np.zeros((h, w), bool)
        a[i : i + 4, 2:8] = True
        b = np.zeros((h, w), bool)
        b[10:14, i + 5 : i + 9] = True
        masklet.append([coco_encode(a), coco_encode(b)])
    data = {"video_id": "sav_000001", "video_height": h, "video_width": w, "masklet": masklet,
            "masklet_id": [0, 1]}
    if frame_count is not None:
        data["video_frame_count"] = frame_count
    path.write_text(json.dumps(data))
    return path


def test_sav_json_masklets_land_on_their_video_frames(tmp_path, capsys):
    ann = sav_json(tmp_path / "sav_000001_manual.json", 4, frame_count=15)
    rc, out, err = run_cli(capsys, "import", ann, "--out", tmp_path / "a.zarr")
    assert rc == 0, err
    store = ProjectStore.open(tmp_path / "a.zarr", "r")
    assert store.shape == (15, 16, 20) and "frame stride 4" in out
    assert store.meta["source"]["frame_stride"] == 4
    assert store.frames_with_state(1, exclude=(0, 4)) == [0, 4, 8, 12]
    assert store.mask(1, 8)[2:6, 2:8].all()  # annotated frame 2
    # Against the video itself (a folder of 13 frames): stride 4 again, 13 frames.
    from conftest import make_blob_video, write_jpeg_folder

    video = write_jpeg_folder(make_blob_video(13, 16, 20), tmp_path / "video")
    ann2 = sav_json(tmp_path / "b.json", 4)
    rc, out, err = run_cli(capsys, "import", ann2, "-f", "sav-json", "--video", video, "--out", tmp_path / "b.zarr")
    assert rc == 0, err
    assert ProjectStore.open(tmp_path / "b.zarr", "r").shape == (13, 16, 20)
    # Without any frame count: frame i, and the import says so.
    rc, out, err = run_cli(capsys, "import", ann2, "-f", "sav-json", "--out", tmp_path / "c.zarr")
    assert rc == 0 and "pass --video" in err and err.count("\n") == 1
    assert ProjectStore.open(tmp_path / "c.zarr", "r").shape == (4, 16, 20)
    # A stride that does not fit the video is refused.
    rc, out, err = run_cli(capsys, "import", ann2, "-f", "sav-json", "--video-frames", "9", "--frame-stride", "4",
                           "--out", tmp_path / "d.zarr")
    assert rc == 2 and "need 13 frames" in err and not (tmp_path / "d.zarr").exists()


def test_importer_that_finds_nothing_writes_nothing(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((3, 8, 8), np.uint16))
    rc, out, err = run_cli(capsys, "import", tmp_path / "empty.tif", "--out", tmp_path / "e.zarr")
    assert rc == 2 and "found no objects" in err and err.count("\n") == 1
    assert not (tmp_path / "e.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tif"]
