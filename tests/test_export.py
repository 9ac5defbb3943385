"""Exporters: each output is read back by the format's reference tools."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from napari_sam2_track.errors import StoreError
from napari_sam2_track.formats import FORMATS, ExportOptions, export, iter_frames, read_labels
from napari_sam2_track.prompts import ObjectSpec
from napari_sam2_track.samples import make_cells
from napari_sam2_track.schema import AttributeSpec, object_color
from napari_sam2_track.project import STATE_ABSENT, STATE_EDITED, ProjectStore

T, H, W = 10, 64, 64
GAP = (3, 4)  # object 1 is absent on these frames (hidden inside the view)


def build_project(path, n_frames=T, size=(H, W)):
    """A project from synthetic ground truth: object 1 has a gap, object 2 overlaps object 4."""
    s = make_cells(n_frames=n_frames, size=size, n_cells=4)
    schema = s.schema().model_copy(
        update={"attributes": [AttributeSpec(name="quality", kind="choice", choices=["good", "bad"])]})
    store = ProjectStore.create(path, num_frames=n_frames, height=size[0], width=size[1])
    store.set_schema(schema)
    store.set_objects([ObjectSpec(id=i, name=f"cell {i}", category=s.categories[i],
                                  attributes={"quality": "good"}) for i in s.object_ids])
    masks = {}
    for t in range(n_frames):
        for i in s.object_ids:
            m = s.labels[t] == i
            if i == 1 and t in GAP:
                m = np.zeros_like(m)
            if i == 4 and m.any():  # grow object 4 under object 2: an overlap only per-object masks keep
                m = m | np.roll(s.labels[t] == 2, 2, axis=1)
            masks[i, t] = m
            store.write_mask(i, t, m)
            store.write_row(i, t, m, presence=2.0 if m.any() else -2.0,
                            state=STATE_EDITED if m.any() else STATE_ABSENT, run=1)
        store.merge_labels(t)
    from napari_sam2_track.review.qc import approve, reject

    approve(store, 1, 0, n_frames - 1, reviewer="a")
    reject(store, 2, 0, n_frames - 1, reviewer="a")
    return store, masks, s


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = tmp_path_factory.mktemp("proj") / "p.zarr"
    store, masks, sample = build_project(path)
    return ProjectStore.open(path, "r"), masks, sample


def merged(masks, t, ids):
    out = np.zeros((H, W), np.uint32)
    for i in sorted(ids, reverse=True):
        out[masks[i, t]] = i
    return out


# ------------------------------------------------------------------ frame iterator options
def test_frame_options(project):
    store, masks, sample = project
    ids = store.object_ids()
    frames = list(iter_frames(store))
    assert [f.t for f in frames] == list(range(T))
    assert 1 not in frames[3].masks and 1 in frames[3].occluded
    np.testing.assert_array_equal(frames[5].masks[4], masks[4, 5])
    sub = list(iter_frames(store, ExportOptions(start=2, end=8, every=3)))
    assert [f.t for f in sub] == [2, 5, 8] and [f.index for f in sub] == [0, 1, 2]
    assert set(next(iter_frames(store, ExportOptions(approved_only=True))).masks) == {1}
    cat = sample.categories[ids[0]]
    keep = {i for i in ids if sample.categories[i] == cat and masks[i, 0].any()}
    assert set(next(iter_frames(store, ExportOptions(categories=[cat]))).masks) == keep
    big = min(int(masks[i, 0].sum()) for i in ids) + 1
    f0 = next(iter_frames(store, ExportOptions(min_visible_pixels=big)))
    assert set(f0.masks) == {i for i in ids if masks[i, 0].sum() >= big}
    absent = list(iter_frames(store, ExportOptions(occlusion="absent")))
    assert not absent[3].occluded
    with pytest.raises(StoreError, match="unknown categories"):
        list(iter_frames(store, ExportOptions(categories=["nope"])))


# ------------------------------------------------------------------------------ OME-Zarr
def test_an_ome_zarr_export_referencing_the_image_is_not_taken_for_a_project(project, tmp_path, capsys):
    """``--image reference`` records the video in the export's root attributes; napari's project
    reader, compare's format guess and ``info`` still see an OME-Zarr export (also one written
    when that record used the project's own attribute key), never a project to replace."""
    from napari_sam2_track._napari_io import get_project_reader
    from napari_sam2_track.cli import main
    from napari_sam2_track.formats import guess_format

    store, masks, _ = project
    out, video = tmp_path / "o.ome.zarr", tmp_path / "video.mp4"
    assert main(["export", str(store.path), "-f", "ome-zarr", "--image", "reference", "--image-path",
                 str(video), "--out", str(out)]) == 0
    doc = json.loads((out / "zarr.json").read_text())
    reference = {"image": str(video), "frames": [0, T - 1, 1]}
    for written_by_older_version in (False, True):
        if written_by_older_version:
            assert doc["attributes"].pop("napari_sam2_track_export") == reference
            doc["attributes"]["napari_sam2_track"] = reference
            (out / "zarr.json").write_text(json.dumps(doc))
        assert get_project_reader(str(out)) is None
        assert guess_format(out) == "ome-zarr"
        labels = read_labels(out)
        assert labels.info["format"] == "ome-zarr" and labels.shape == (T, H, W)
        capsys.readouterr()
        assert main(["info", str(out)]) == 2
        err = capsys.readouterr().err
        assert "not a napari-sam2-track project" in err and err.count("\n") == 1, err
        assert "corrupt" not in err and "--overwrite" not in err
    assert get_project_reader(str(store.path)) is not None and guess_format(store.path) == "project"


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_omezarr_read_by_ome_zarr_py(project, tmp_path, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    store, masks, sample = project
    out = export(store, "ome-zarr", tmp_path / "o.ome.zarr", version=version)
    nodes = list(Reader(parse_url(str(out / "labels" / "masklets")))())
    assert nodes, "ome-zarr-py found no label image"
    node = nodes[0]
    assert node.data[0].shape == (T, H, W)
    assert [a["name"] for a in node.metadata["axes"]] == ["t", "y", "x"]
    colors = node.metadata["color"]
    for o in store.objects:
        want = [int(o_[i : i + 2], 16) / 255 for o_ in [object_color(o.id, o.category, store.schema)] for i in (1, 3, 5)]
        np.testing.assert_allclose(colors[o.id][:3], want)
    np.testing.assert_array_equal(np.asarray(node.data[0][5]), merged(masks, 5, store.object_ids()))
    fmt = json.loads((out / ("zarr.json" if version == "0.5" else ".zgroup")).read_text())["zarr_format"]
    assert fmt == (3 if version == "0.5" else 2)


def test_omezarr_napari_reader(project, tmp_path):
    """napari's OME-Zarr reader plugin (napari-ome-zarr) opens the labels with their colours."""
    napari_ome_zarr = pytest.importorskip("napari_ome_zarr")

    store, masks, _ = project
    out = export(store, "ome-zarr", tmp_path / "o.ome.zarr")
    label_meta = json.loads((out / "labels" / "masklets" / "zarr.json").read_text())["attributes"]["ome"]
    props = {p["label-value"]: p for p in label_meta["image-label"]["properties"]}
    assert props[1]["name"] == "cell 1" and props[1]["quality"] == "good"
    path = str(out / "labels" / "masklets")
    reader = napari_ome_zarr.napari_get_reader(path)
    assert reader is not None
    (data, meta, kind), = reader(path)
    assert kind == "labels"
    assert data[0].shape == (T, H, W)
    assert list(meta["axis_labels"]) == ["t", "y", "x"]
    np.testing.assert_array_equal(np.asarray(data[0][5]), merged(masks, 5, store.object_ids()))
    for o in store.objects:
        hex_color = object_color(o.id, o.category, store.schema)
        want = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        np.testing.assert_allclose(meta["colormap"][o.id][:3], want)


# ------------------------------------------------------------------------------------ CTC
def test_ctc_valid_with_gap_and_self_scores(project, tmp_path):
    from ctc_metrics import validate_sequence

    from napari_sam2_track.formats import metrics

    store, masks, _ = project
    out = export(store, "ctc", tmp_path / "01_RES")
    rows = [list(map(int, line.split())) for line in (out / "res_track.txt").read_text().splitlines()]
    tracks = {r[0]: r[1:] for r in rows}
    # object 1 is visible on 0-2 and 5-9: track 1 (its id), then a new track whose parent is 1
    ids = store.object_ids()
    assert tracks[1] == [0, 2, 0]
    assert tracks[max(ids) + 1] == [5, 9, 1]
    assert len(tracks) == len(ids) + 1
    assert sorted(p.name for p in out.glob("*.tif"))[0] == "mask000.tif"
    img = __import__("tifffile").imread(out / "mask005.tif")
    assert img.dtype == np.uint16
    assert validate_sequence(str(out), threads=1)["Valid"] == 1
    src = read_labels(out)
    res = metrics.ctc_metrics(src, src)
    assert res == {"SEG": 1.0, "TRA": 1.0}


def test_ctc_four_digits_and_track_limit(tmp_path, monkeypatch):
    from napari_sam2_track.formats import ctc

    store = ProjectStore.create(tmp_path / "long.zarr", num_frames=1001, height=8, width=8)
    store.add_object(ObjectSpec(id=1))
    m = np.zeros((8, 8), bool)
    m[2:4, 2:4] = True
    for t in (0, 1000):
        store.write_mask(1, t, m)
        store.write_row(1, t, m, presence=1, state=STATE_EDITED, run=1)
    out = export(store, "ctc", tmp_path / "ctc")
    names = sorted(p.name for p in out.glob("*.tif"))
    assert len(names) == 1001 and names[0] == "mask0000.tif" and names[-1] == "mask1000.tif"
    assert (out / "res_track.txt").read_text().split("\n")[:2] == ["1 0 0 0", "2 1000 1000 1"]
    monkeypatch.setattr(ctc, "MAX_TRACKS", 1)
    with pytest.raises(StoreError, match="more than 1 CTC tracks"):
        export(store, "ctc", tmp_path / "ctc2")
    assert not (tmp_path / "ctc2").exists()


# ------------------------------------------------------------------------------ label TIFF
def test_tiff_imagej_and_ome(project, tmp_path):
    import tifffile

    store, masks, _ = project
    ij = export(store, "tiff", tmp_path / "ij.tif", flavour="imagej")
    with tifffile.TiffFile(ij) as tif:
        assert tif.is_imagej and tif.imagej_metadata["frames"] == T
        data = tif.asarray()
    assert data.dtype == np.uint16 and data.shape == (T, H, W)
    np.testing.assert_array_equal(data[4], merged(masks, 4, store.object_ids()))
    ome = export(store, "tiff", tmp_path / "ome.tif", dtype="uint32")
    with tifffile.TiffFile(ome) as tif:
        assert tif.is_ome and tif.series[0].axes == "TYX"
        assert tif.series[0].dtype == np.uint32
        assert 'Type="uint32"' in tif.ome_metadata
    with pytest.raises(StoreError, match="ImageJ"):
        export(store, "tiff", tmp_path / "bad.tif", flavour="imagej", dtype="uint32")


# ---------------------------------------------------------------------- DAVIS / YouTube-VOS
def test_davis_palette_png(project, tmp_path):
    from PIL import Image

    from napari_sam2_track.formats.davis import pascal_palette

    store, masks, _ = project
    out = export(store, "youtube-vos", tmp_path / "ytvos", video="v")
    img = Image.open(out / "Annotations" / "v" / "00005.png")
    assert img.mode == "P"
    pal = np.array(img.getpalette()[:768]).reshape(-1, 3)
    np.testing.assert_array_equal(pal[:4], [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]])
    np.testing.assert_array_equal(pal, pascal_palette())
    mapping = json.loads((out / "object_ids.json").read_text())["v"]
    ids = store.object_ids()
    assert [mapping[str(k + 1)]["id"] for k in range(len(ids))] == ids
    arr = np.array(img)
    want = merged(masks, 5, ids)
    for k, obj in enumerate(ids):
        np.testing.assert_array_equal(arr == k + 1, want == obj)
    meta = json.loads((out / "meta.json").read_text())["videos"]["v"]["objects"]
    assert meta["1"]["category"] == store.objects[0].category
    assert meta["1"]["frames"] == [f"{t:05d}" for t in range(T) if t not in GAP]


def test_davis_refuses_too_many_objects(tmp_path):
    store = ProjectStore.create(tmp_path / "many.zarr", num_frames=1, height=4, width=4)
    store.set_objects([ObjectSpec(id=i) for i in range(1, 256)])
    with pytest.raises(StoreError, match="at most 254"):
        export(store, "davis", tmp_path / "d")


# ---------------------------------------------------------------------------------- SA-V
def test_sav_keeps_overlaps(project, tmp_path):
    from PIL import Image

    store, masks, _ = project
    out = export(store, "sav", tmp_path / "sav", video="v")
    a = np.array(Image.open(out / "v" / "004" / "00006.png")) > 0
    b = np.array(Image.open(out / "v" / "002" / "00006.png")) > 0
    assert (a & b).any()
    np.testing.assert_array_equal(a, masks[4, 6])
    assert not (np.array(Image.open(out / "v" / "001" / "00003.png")) > 0).any()


# ---------------------------------------------------------------------- YouTube-VIS / COCO
def test_ytvis_rle_decodes_with_pycocotools(project, tmp_path):
    from pycocotools import mask as mask_utils

    store, masks, sample = project
    out = export(store, "youtube-vis", tmp_path / "v.json")
    data = json.loads(out.read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    assert list(cats.values()) == store.schema.category_names()
    assert data["videos"][0]["length"] == T
    for ann in data["annotations"]:
        i = ann["id"]
        assert cats[ann["category_id"]] == sample.categories[i]
        assert ann["attributes"] == {"quality": "good"}
        for t, rle in enumerate(ann["segmentations"]):
            if not masks[i, t].any():
                assert rle is None and ann["areas"][t] is None
                continue
            dec = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
            np.testing.assert_array_equal(dec, masks[i, t])
            assert ann["areas"][t] == int(masks[i, t].sum())
            ys, xs = np.nonzero(masks[i, t])
            assert ann["bboxes"][t] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert data["annotations"][0]["occluded"][3] is True


# ---------------------------------------------------------------------------------- CVAT
def test_cvat_rle_is_row_major_in_box():
    from napari_sam2_track.formats._rle import cvat_decode, cvat_encode

    m = np.zeros((6, 7), bool)
    m[1, 2:4] = True
    m[2, 3] = True
    rle, x, y, w, h = cvat_encode(m)
    # box x 2..3, y 1..2: rows [1 1] [0 1] -> runs: 0 bg, 2 fg, 1 bg, 1 fg
    assert (x, y, w, h) == (2, 1, 2, 2) and rle == "0, 2, 1, 1"
    np.testing.assert_array_equal(cvat_decode(rle, x, y, w, h, m.shape), m)


def test_cvat_structure_and_reimport(project, tmp_path):
    store, masks, _ = project
    out = export(store, "cvat", tmp_path / "a.xml")
    root = ET.parse(out).getroot()
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    task = root.find("meta/task")
    assert task.findtext("size") == str(T) and task.findtext("mode") == "interpolation"
    assert {lab.findtext("type") for lab in task.iter("label")} == {"mask"}
    assert task.findtext("original_size/width") == str(W)
    track1 = next(t for t in root.iter("track") if t.get("id") == "1")
    shapes = {int(s.get("frame")): s for s in track1.findall("mask")}
    assert shapes[3].get("outside") == "1" and shapes[3].get("occluded") == "1" and 4 not in shapes
    assert shapes[5].get("keyframe") == "1" and shapes[5].get("outside") == "0"
    for s in track1.findall("mask"):
        assert set(s.attrib) >= {"frame", "keyframe", "outside", "occluded", "rle", "left", "top", "width", "height"}
    assert track1.find("mask/attribute").get("name") == "quality"
    src = read_labels(out)
    got = dict(src.frames())
    for (i, t), m in masks.items():
        if m.any():
            np.testing.assert_array_equal(got[t][i], m)
        else:
            assert i not in got.get(t, {})


# ---------------------------------------------------------------------------------- MOTS
def test_mots_conventions(project, tmp_path):
    from pycocotools import mask as mask_utils

    store, masks, sample = project
    a = export(store, "mots", tmp_path / "a.txt")
    b = export(store, "mots-kitti", tmp_path / "b.txt")
    la, lb = a.read_text().splitlines(), b.read_text().splitlines()
    assert len(la) == len(lb)
    first_a, first_b = la[0].split(), lb[0].split()
    assert int(first_a[0]) == 1 and int(first_b[0]) == 0
    t, mid, cls, h, w = map(int, first_a[:5])
    assert mid == cls * 1000 + mid % 1000 and (h, w) == (H, W)
    obj = mid % 1000
    want = merged(masks, t - 1, store.object_ids()) == obj
    dec = mask_utils.decode({"size": [h, w], "counts": first_a[5].encode()}).astype(bool)
    np.testing.assert_array_equal(dec, want)
    # masks in one frame never overlap
    per_frame = {}
    for line in la:
        p = line.split()
        d = mask_utils.decode({"size": [H, W], "counts": p[5].encode()})
        per_frame[p[0]] = per_frame.get(p[0], 0) + d
    assert max(v.max() for v in per_frame.values()) == 1


# ---------------------------------------------------------------------------------- geff
def test_geff_graph(project, tmp_path):
    import geff

    store, masks, _ = project
    out = export(store, "geff", tmp_path / "g")
    geff.validate_structure(str(out / "tracks.geff"))
    graph, meta = geff.read(str(out / "tracks.geff"), backend="networkx")
    visible = sum(1 for m in masks.values() if m.any())
    assert graph.number_of_nodes() == visible
    assert graph.number_of_edges() == visible - len(store.object_ids())
    assert meta.related_objects[0].type == "labels"
    node = next(n for n, d in graph.nodes(data=True) if d["track_id"] == 2 and d["t"] == 3)
    ys, xs = np.nonzero(masks[2, 3])
    assert graph.nodes[node]["y"] == pytest.approx(ys.mean()) and graph.nodes[node]["x"] == pytest.approx(xs.mean())
    assert (out / meta.related_objects[0].path.replace("../", "")).is_dir()


# ---------------------------------------------------------------------------------- table
def test_table_csv(project, tmp_path):
    import csv

    store, masks, _ = project
    out = export(store, "table", tmp_path / "t.csv")
    rows = list(csv.DictReader(out.open()))
    r = next(r for r in rows if r["object_id"] == "2" and r["frame"] == "6")
    ys, xs = np.nonzero(masks[2, 6])
    assert int(r["area"]) == masks[2, 6].sum() and float(r["centroid_x"]) == pytest.approx(xs.mean())
    assert (int(r["x0"]), int(r["y1"])) == (xs.min(), ys.max() + 1)
    assert r["qc_status"] == "unsatisfactory" and r["state"] == "edited" and float(r["presence_logit"]) == 2.0
    gap = next(r for r in rows if r["object_id"] == "1" and r["frame"] == "3")
    assert gap["visible"] == "False" and gap["occluded"] == "True" and gap["state"] == "absent"


def test_table_parquet_matches_csv(project, tmp_path):
    import csv

    pq = pytest.importorskip("pyarrow.parquet")
    store, masks, _ = project
    rows = list(csv.DictReader(export(store, "table", tmp_path / "t.csv").open()))
    table = pq.read_table(export(store, "table", tmp_path / "t.parquet")).to_pylist()
    assert len(table) == len(rows) > 0
    assert set(table[0]) == set(rows[0])
    for a, b in zip(rows, table):
        assert int(a["object_id"]) == int(b["object_id"]) and int(a["frame"]) == int(b["frame"])
        assert str(a["state"]) == str(b["state"])


# --------------------------------------------------------------------------------- progress
SUFFIXES = {"tiff": ".tif", "table": ".csv", "youtube-vis": ".json", "cvat": ".xml", "mots": ".txt",
            "mots-kitti": ".txt"}


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - {"nifti"}))  # nifti: volumes only
def test_progress_counts_each_exported_frame_once_up_to_the_total(project, tmp_path, fmt):
    store = project[0]
    calls = []
    export(store, fmt, tmp_path / f"out{SUFFIXES.get(fmt, '')}", ExportOptions(start=1, every=2),
           progress=lambda done, total: calls.append((done, total)))
    frames = len(range(1, T, 2))
    total = 2 * frames if fmt == "geff" else frames  # geff writes its labels in a second walk
    assert calls == [(done, total) for done in range(1, total + 1)]


def test_export_command_prints_progress_lines_and_a_bar_on_a_terminal(project, tmp_path, capsys,
                                                                      monkeypatch):
    from napari_sam2_track.cli import main
    from napari_sam2_track.cli.export import parse_progress_line

    def run(out, *flags):
        capsys.readouterr()
        assert main(["export", str(project[0].path), "-f", "mots", "--out", str(tmp_path / out), *flags]) == 0
        return capsys.readouterr()

    out, err = run("m.txt", "--progress")
    *lines, last = out.splitlines()
    counts = [parse_progress_line(line) for line in lines]
    assert None not in counts and counts[-1] == (T, T) and last == f"wrote {tmp_path / 'm.txt'}"
    done = [d for d, _ in counts]
    assert done == sorted(set(done)) and {n for _, n in counts} == {T} and err == ""
    assert parse_progress_line("wrote x") is None and parse_progress_line("{oops") is None

    # on a terminal: a bar on stderr (and no JSON lines); --quiet: nothing
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    out, err = run("n.txt")
    assert out == f"wrote {tmp_path / 'n.txt'}\n" and "exporting" in err and f"{T}/{T}" in err
    assert run("q.txt", "--quiet").err == ""


def test_progress_counts_the_included_image_as_a_first_pass(project, tmp_path):
    import tifffile

    store, _, sample = project
    video = tmp_path / "video.tif"
    tifffile.imwrite(video, np.stack([np.asarray(f) for f in sample.frames]))
    calls = []
    export(store, "ome-zarr", tmp_path / "o.ome.zarr", image="include", image_path=str(video),
           progress=lambda done, total: calls.append((done, total)))
    assert calls == [(done, 2 * T) for done in range(1, 2 * T + 1)]


def test_edge_policy_drop_removes_masks_cut_by_the_border(tmp_path):
    from napari_sam2_track.formats._frames import ProjectView
    from napari_sam2_track.prompts import ObjectSpec
    from napari_sam2_track.schema import Schema
    from napari_sam2_track.project import STATE_EDITED, ProjectStore

    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=3, height=20, width=20)
    store.set_objects([ObjectSpec(id=1)])
    inside = np.zeros((20, 20), bool)
    inside[8:12, 8:12] = True
    at_edge = np.zeros((20, 20), bool)
    at_edge[8:12, 0:4] = True
    for t, m in enumerate([inside, at_edge, inside]):
        store.write_mask(1, t, m)
        store.write_row(1, t, m, presence=3.0, state=STATE_EDITED, run=1)
        store.merge_labels(t)
    kept = [sorted(f.masks) for f in ProjectView(store)]
    assert kept == [[1], [1], [1]]
    store.set_schema(Schema.model_validate({"edge_policy": "drop"}))
    frames = list(ProjectView(store))
    assert [sorted(f.masks) for f in frames] == [[1], [], [1]]
    assert frames[1].occluded == set()  # last seen away from the border, but now cut by it


def test_the_formats_modules_import_each_other_without_a_cycle():
    """No import among the modules of ``formats`` (and the placement they write through) leads
    back to where it started, type-only imports included."""
    import ast
    from pathlib import Path

    import napari_sam2_track

    root = Path(napari_sam2_track.__file__).parent
    files = {f"formats.{p.stem}": p for p in (root / "formats").glob("*.py") if p.stem != "__init__"}
    files["formats"] = root / "formats" / "__init__.py"
    files["project.placement"] = root / "project" / "placement.py"
    edges = {}
    for name, path in files.items():
        package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    targets.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in files else module)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                targets.add((module or "").removeprefix("napari_sam2_track."))
        edges[name] = targets & set(files) - {name}

    def reaches(start, goal, seen):
        return any(t == goal or (t not in seen and reaches(t, goal, seen | {t})) for t in edges[start])

    assert [name for name in files if reaches(name, name, {name})] == []
    assert edges["formats._registry"] == {"project.placement"}  # the records know no format


def test_a_refused_output_is_worded_for_the_caller(project, tmp_path):
    """The exporter's own refusal names the command line's switches by default and the dock's
    controls when the dock's words are passed."""
    from napari_sam2_track.project.placement import Words

    dock = Words(out="output path", overwrite="'overwrite'", resume=None, verb="tick",
                 again="export again")
    out = tmp_path / "taken.csv"
    out.write_text("not an export\n")
    with pytest.raises(StoreError, match="choose another --out or pass --overwrite"):
        export(project[0], "table", out)
    with pytest.raises(StoreError, match="choose another output path or tick 'overwrite'"):
        export(project[0], "table", out, words=dock)
    with pytest.raises(StoreError, match="'overwrite' only replaces a previous") as refused:
        export(project[0], "table", out, overwrite=True, words=dock)
    assert "--" not in str(refused.value)
    assert out.read_text() == "not an export\n"


@pytest.mark.parametrize("name", ["foo", "sav-json"])
def test_an_unknown_export_format_names_the_export_formats_only(name):
    from napari_sam2_track.formats import canonical_format

    with pytest.raises(StoreError, match=f"unknown export format '{name}'; choose from ") as refused:
        canonical_format(name)
    listed = str(refused.value).split("choose from ", 1)[1].split(", ")
    assert listed == list(FORMATS) and "sav-json" not in listed


def test_notes_go_to_the_callers_hook_instead_of_warnings(tmp_path, recwarn):
    """With ``notes``, *approved only* with nothing approved is told to the hook and issues no
    warning (a GUI collects its notes without touching the process-wide warning state)."""
    from napari_sam2_track.errors import NothingApprovedWarning
    from napari_sam2_track.review.qc import reject

    path = tmp_path / "p.zarr"
    build_project(path)
    reject(path, 1, 0, T - 1, reviewer="b")  # the latest decision counts: nothing approved now

    notes: list[str] = []
    export(path, "table", tmp_path / "a.csv", ExportOptions(approved_only=True), notes=notes.append)
    assert len(notes) == 1 and "no masklet is approved" in notes[0]
    assert not [w for w in recwarn if issubclass(w.category, NothingApprovedWarning)]
    with pytest.warns(NothingApprovedWarning, match="no masklet is approved"):
        export(path, "table", tmp_path / "b.csv", ExportOptions(approved_only=True))
