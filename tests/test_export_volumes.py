"""Volume projects exported as NIfTI, OME-Zarr, TIFF and CTC 3D: each read back by the format's
own readers (nibabel, ome-zarr-models and ome-zarr-py, tifffile) and checked against the labels
written through the store and against the source image's geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sam2_track.errors import StoreError
from napari_sam2_track.formats import ExportOptions, export, read_labels
from napari_sam2_track.project import STATE_ABSENT, STATE_EDITED, ProjectStore
from napari_sam2_track.prompts import ObjectSpec
from napari_sam2_track.schema import Schema
from napari_sam2_track.sources.volume import ArrayVolumeSource

T, Z, H, W = 3, 6, 20, 24
SIZES = {"t": (30.0, "s"), "z": (4.0, "µm"), "y": (0.5, "µm"), "x": (0.25, "µm")}


def _ball(shape, center, radii):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return sum(((c - m) / r) ** 2 for c, m, r in zip((z, y, x), center, radii)) <= 1.0


def truth(n_t=T, shape=(Z, H, W)):
    """``{(object, t): (Z, H, W) mask}``: objects 1 and 2 move along x and overlap at t=2;
    object 3 appears at t=1 only."""
    z, h, w = shape
    out = {}
    for t in range(n_t):
        out[1, t] = _ball(shape, (z / 2, h / 2, w / 3 + 2 * t), (z / 3, h / 4, w / 6))
        out[2, t] = _ball(shape, (z / 2, h / 2, 2 * w / 3 - t), (z / 4, h / 5, w / 6))
        out[3, t] = _ball(shape, (1, 3, 3), (1, 2, 2)) if t == 1 else np.zeros(shape, bool)
    return out


def write_volume_project(path, volume, masks: dict, objects=(1, 2, 3)) -> ProjectStore:
    """A volume project on ``volume`` with ``masks`` written plane by plane through the store."""
    n_t, depth = volume.shape[:2]
    store = ProjectStore.create(path, source=volume)
    store.set_schema(Schema.default())
    store.set_objects([ObjectSpec(id=i, name=f"organ {i}") for i in objects])
    for t in range(n_t):
        for z in range(depth):
            p = store.plane(t, z)
            plane = {i: masks[i, t][z] for i in objects if (i, t) in masks}
            store.merge_labels(p, {i: m for i, m in plane.items() if m.any()})
            for i, m in plane.items():
                store.write_row(i, p, m, presence=2.0 if m.any() else -2.0,
                                state=STATE_EDITED if m.any() else STATE_ABSENT, run=1)
    return store


def merged(masks: dict, t: int, ids=(1, 2, 3)) -> np.ndarray:
    """The merged labels of timepoint ``t`` (lowest id wins)."""
    shape = next(iter(masks.values())).shape
    out = np.zeros(shape, np.uint32)
    for i in sorted(ids, reverse=True):
        if (i, t) in masks:
            out[masks[i, t]] = i
    return out


@pytest.fixture
def micro(tmp_path):
    """A 3-timepoint anisotropic microscopy volume project (µm voxels, 30 s steps)."""
    data = np.zeros((T, Z, H, W), np.uint8)
    masks = truth()
    store = write_volume_project(tmp_path / "micro.zarr",
                                 ArrayVolumeSource(data, "TZYX", sizes=SIZES, window=(0, 1)), masks)
    return store, masks


def test_store_labels_are_the_truth(micro):
    store, masks = micro
    for t in range(T):
        np.testing.assert_array_equal(store.label_volume(t), merged(masks, t))


# ----------------------------------------------------------------------------------- NIfTI
def test_nifti_of_real_mri_has_the_source_affine(shared_data, tmp_path):
    import nibabel as nib

    from napari_sam2_track.sources import open_source

    image = shared_data / "volumes" / "mni152_t1.nii.gz"
    if not image.exists():
        pytest.skip("mni152_t1.nii.gz not available")
    source = open_source(image)
    _, depth, h, w = source.shape
    masks = {(1, 0): _ball((depth, h, w), (90, 120, 100), (20, 30, 25)),
             (2, 0): _ball((depth, h, w), (60, 100, 60), (10, 12, 14))}
    store = write_volume_project(tmp_path / "mni.zarr", source, masks, objects=(1, 2))
    out = export(store, "nifti", tmp_path / "mni-labels")
    img = nib.load(out / "labels.nii.gz")
    ref = nib.load(image)
    np.testing.assert_allclose(img.affine, ref.affine, atol=1e-5)
    assert img.shape == ref.shape and img.get_data_dtype() == np.uint8
    assert img.header.get_intent()[0] == "label"
    data = np.asarray(img.dataobj)
    # NIfTI (x, y, z) <- the project's (z, y, x): the same voxels as the MRI
    np.testing.assert_array_equal(data.transpose(2, 1, 0), merged(masks, 0, (1, 2)))
    # the world position of a labelled voxel is the MRI's for that voxel
    k, j, i = (int(v) for v in np.argwhere(masks[2, 0])[0])
    np.testing.assert_allclose(img.affine @ [i, j, k, 1], ref.affine @ [i, j, k, 1])
    desc = json.loads((out / "labels.json").read_text())
    assert [d["id"] for d in desc["labels"]] == [1, 2] and desc["labels"][0]["name"] == "organ 1"
    itk = (out / "itksnap_labels.txt").read_text().splitlines()
    assert itk[-1].split()[0] == "2" and '"organ 2' in itk[-1]
    slicer = (out / "slicer_colors.ctbl").read_text().splitlines()
    assert slicer[-1].split()[:2] == ["2", "organ_2"]


def test_nifti_4d_of_real_fmri_keeps_affine_and_time_step(shared_data, tmp_path):
    import nibabel as nib

    from napari_sam2_track.sources import open_source

    image = shared_data / "volumes" / "example4d.nii.gz"
    if not image.exists():
        pytest.skip("example4d.nii.gz not available")
    source = open_source(image)
    n_t, depth, h, w = source.shape
    masks = {(1, t): _ball((depth, h, w), (12, 48, 60 + 5 * t), (5, 15, 20)) for t in range(n_t)}
    store = write_volume_project(tmp_path / "f.zarr", source, masks, objects=(1,))
    out = export(store, "nifti", tmp_path / "f-labels")
    img, ref = nib.load(out / "labels.nii.gz"), nib.load(image)
    assert img.shape == ref.shape  # (x, y, z, t)
    np.testing.assert_allclose(img.affine, ref.affine, atol=1e-5)  # oblique (sheared) sform kept
    np.testing.assert_allclose(img.header.get_zooms(), ref.header.get_zooms(), rtol=1e-6)
    assert img.header.get_xyzt_units() == ("mm", "sec")
    data = np.asarray(img.dataobj)
    for t in range(n_t):
        np.testing.assert_array_equal(data[..., t].transpose(2, 1, 0), masks[1, t].astype(np.uint8))
    # one timepoint exported: a 3-D file
    one = export(store, "nifti", tmp_path / "t1", ExportOptions(start=1, end=1))
    img1 = nib.load(one / "labels.nii.gz")
    assert img1.shape == ref.shape[:3]
    np.testing.assert_array_equal(np.asarray(img1.dataobj).transpose(2, 1, 0), masks[1, 1])


def test_nifti_of_dicom_series_is_in_ras(tmp_path):
    """DICOM's LPS patient coordinates become NIfTI's RAS: each slice's first voxel lies at the
    file's ImagePositionPatient with x and y negated (an oblique series)."""
    import nibabel as nib
    import pydicom

    from napari_sam2_track.sources import open_source
    from test_volumes_dicom import write_series

    c, s = np.cos(0.3), np.sin(0.3)
    write_series(tmp_path / "ct", n=5, orientation=(c, s, 0.0, -s, c, 0.0), step=2.5, shape=(6, 8))
    source = open_source(tmp_path / "ct")
    _, depth, h, w = source.shape
    masks = {(1, 0): _ball((depth, h, w), (2, 3, 4), (2, 2, 3))}
    store = write_volume_project(tmp_path / "ct.zarr", source, masks, objects=(1,))
    out = export(store, "nifti", tmp_path / "ct-labels")
    img = nib.load(out / "labels.nii.gz")
    for k, f in enumerate(source.files):
        ipp = np.asarray(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient, float)
        np.testing.assert_allclose(img.affine @ [0, 0, k, 1], [-ipp[0], -ipp[1], ipp[2], 1], atol=1e-4)
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), masks[1, 0])


def test_nifti_of_microscopy_volume_has_spacing_in_microns(micro, tmp_path):
    import nibabel as nib

    store, masks = micro
    out = export(store, "nifti", tmp_path / "n")
    img = nib.load(out / "labels.nii.gz")
    assert img.shape == (W, H, Z, T)
    np.testing.assert_allclose(np.diag(img.affine)[:3], [0.25, 0.5, 4.0])
    assert img.header.get_xyzt_units() == ("micron", "sec")
    assert img.header.get_zooms()[3] == pytest.approx(30.0)
    data = np.asarray(img.dataobj)
    for t in range(T):
        np.testing.assert_array_equal(data[..., t].transpose(2, 1, 0), merged(masks, t))


def test_nifti_refuses_a_2d_project(tmp_path):
    store = ProjectStore.create(tmp_path / "flat.zarr", num_frames=2, height=8, width=8)
    with pytest.raises(StoreError, match="2D \\+ t project.*volume projects"):
        export(store, "nifti", tmp_path / "x")
    assert not (tmp_path / "x").exists()


# -------------------------------------------------------------------------------- OME-Zarr
@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-zarr-0.4"])
def test_omezarr_volume_validates_and_reads_with_scale(micro, tmp_path, fmt):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models import open_ome_zarr

    store, masks = micro
    out = export(store, fmt, tmp_path / "v.ome.zarr")
    version = "0.5" if fmt == "ome-zarr" else "0.4"
    model = open_ome_zarr(out / "labels" / "masklets", version=version)
    assert type(model).__name__ == "ImageLabel"
    ms = model.ome_attributes.multiscales[0] if version == "0.5" else model.attributes.multiscales[0]
    assert [a.name for a in ms.axes] == ["t", "z", "y", "x"]
    assert [a.unit for a in ms.axes] == ["second", "micrometer", "micrometer", "micrometer"]
    assert list(ms.datasets[0].coordinateTransformations[0].scale) == [30.0, 4.0, 0.5, 0.25]
    nodes = list(Reader(parse_url(str(out / "labels" / "masklets")))())
    data = np.asarray(nodes[0].data[0])
    assert data.shape == (T, Z, H, W)
    for t in range(T):
        np.testing.assert_array_equal(data[t], merged(masks, t))
    back = read_labels(out)  # and our own importer reads it as a volume label set
    assert back.volume == (T, Z, H, W) and back.geometry.spacing[1:] == (4.0, 0.5, 0.25)


def test_omezarr_volume_with_image_included(micro, tmp_path):
    from ome_zarr_models import open_ome_zarr

    store, _ = micro
    import zarr

    data = (np.arange(T * Z * H * W) % 251).astype(np.uint8).reshape(T, Z, H, W)
    arr = zarr.create_array(str(tmp_path / "img.zarr"), shape=data.shape, dtype=data.dtype,
                            dimension_names=["t", "z", "y", "x"])
    arr[:] = data
    out = export(store, "ome-zarr", tmp_path / "i.ome.zarr", image="include",
                 image_path=str(tmp_path / "img.zarr"))
    model = open_ome_zarr(out, version="0.5")
    assert type(model).__name__ == "Image"
    np.testing.assert_array_equal(zarr.open_array(str(out / "0"))[:], data)


# ------------------------------------------------------------------------------------ TIFF
@pytest.mark.parametrize("flavour", ["ome", "imagej"])
def test_tiff_volume_tzyx_and_zyx_with_voxel_size(micro, tmp_path, flavour):
    import tifffile

    store, masks = micro
    out = export(store, "tiff", tmp_path / "v.tif", flavour=flavour)
    with tifffile.TiffFile(out) as tif:
        series = tif.series[0]
        assert series.axes == "TZYX" and series.shape == (T, Z, H, W)
        data = series.asarray()
        if flavour == "ome":
            pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
            assert (pixels["PhysicalSizeX"], pixels["PhysicalSizeY"], pixels["PhysicalSizeZ"]) == (0.25, 0.5, 4.0)
            assert pixels["PhysicalSizeZUnit"] == "µm" and pixels["TimeIncrement"] == 30.0
        else:
            ij = tif.imagej_metadata
            assert ij["spacing"] == 4.0 and ij["unit"] == "micron" and ij["finterval"] == 30.0
            x_res = tif.pages[0].tags["XResolution"].value
            assert x_res[0] / x_res[1] == pytest.approx(4.0)  # pixels per micron
    for t in range(T):
        np.testing.assert_array_equal(data[t], merged(masks, t))
    one = export(store, "tiff", tmp_path / "one.tif", ExportOptions(start=2, end=2), flavour=flavour)
    with tifffile.TiffFile(one) as tif:
        assert tif.series[0].axes == "ZYX"
        np.testing.assert_array_equal(tif.series[0].asarray(), merged(masks, 2))


# ------------------------------------------------------------------------------------- CTC
def test_ctc_3d_masks_and_tracks(micro, tmp_path):
    import tifffile

    store, masks = micro
    out = export(store, "ctc", tmp_path / "ctc")
    files = sorted(out.glob("mask*.tif"))
    assert [f.name for f in files] == ["mask000.tif", "mask001.tif", "mask002.tif"]
    for t, f in enumerate(files):
        np.testing.assert_array_equal(tifffile.imread(f), merged(masks, t))  # ZYX, ids kept
    tracks = sorted(tuple(map(int, line.split())) for line in (out / "res_track.txt").read_text().splitlines())
    assert tracks == [(1, 0, 2, 0), (2, 0, 2, 0), (3, 1, 1, 0)]
    back = read_labels(out)
    assert back.volume == (T, Z, H, W) and sorted(o.id for o in back.objects) == [1, 2, 3]


# ---------------------------------------------------------------------------- the options
def test_approved_only_keeps_the_approved_planes(micro, tmp_path):
    """QC ranges are plane ranges: object 1 approved on timepoint 1's planes only."""
    import tifffile

    from napari_sam2_track.review.qc import approve

    store, masks = micro
    approve(store, 1, store.plane(1, 0), store.plane(1, Z - 1), reviewer="a")
    out = export(store, "tiff", tmp_path / "a.tif", ExportOptions(approved_only=True))
    data = tifffile.imread(out)
    assert data.shape == (T, Z, H, W)
    assert not data[0].any() and not data[2].any()
    np.testing.assert_array_equal(data[1], masks[1, 1].astype(data.dtype))


@pytest.mark.parametrize("fmt", ["nifti", "ome-zarr", "tiff", "ctc"])
def test_progress_counts_each_exported_plane_once(micro, tmp_path, fmt):
    store, _ = micro
    calls = []
    export(store, fmt, tmp_path / ("out.tif" if fmt == "tiff" else "out"), ExportOptions(start=1),
           progress=lambda done, total: calls.append((done, total)))
    total = (T - 1) * Z
    assert calls == [(done, total) for done in range(1, total + 1)]


def test_timepoint_range_outside_is_one_line(micro, tmp_path):
    store, _ = micro
    with pytest.raises(StoreError, match="timepoint range 1-5 is outside the project"):
        export(store, "nifti", tmp_path / "x", ExportOptions(start=1, end=5))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("fmt", ["davis", "youtube-vis", "cvat", "mots", "sav", "geff"])
def test_2d_formats_refuse_a_volume_project(micro, tmp_path, fmt):
    store, _ = micro
    with pytest.raises(StoreError, match="volume project.*export volumes as nifti, ome-zarr"):
        export(store, fmt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_table_of_a_volume_names_timepoint_and_slice(micro, tmp_path):
    import csv

    store, masks = micro
    out = export(store, "table", tmp_path / "t.csv")
    rows = list(csv.DictReader(open(out)))
    row = next(r for r in rows if r["object_id"] == "3" and r["visible"] == "True")
    t, z = int(row["t"]), int(row["z"])
    assert int(row["frame"]) == t * Z + z and t == 1
    assert int(row["area"]) == int(masks[3, 1][z].sum())


def test_cli_export_nifti(micro, tmp_path):
    import subprocess
    import sys

    store, _ = micro
    store.close()
    out = tmp_path / "cli-nifti"
    r = subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", "export", str(store.path), "-f", "nifti",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "labels.nii.gz").is_file() and r.stdout.strip().endswith(str(out))
    r = subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", "export", str(store.path), "-f", "davis",
                        "--out", str(tmp_path / "d")], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "volume project" in r.stderr


def test_omezarr_includes_the_project_image_in_its_own_type(shared_data, tmp_path):
    """The image of a NIfTI-sourced project is found from the project and copied as int16."""
    import zarr

    from napari_sam2_track.sources import open_source

    image = shared_data / "volumes" / "example4d.nii.gz"
    if not image.exists():
        pytest.skip("example4d.nii.gz not available")
    source = open_source(image)
    n_t, depth, h, w = source.shape
    masks = {(1, 0): _ball((depth, h, w), (12, 48, 60), (5, 15, 20))}
    store = write_volume_project(tmp_path / "f.zarr", source, masks, objects=(1,))
    out = export(store, "ome-zarr", tmp_path / "f.ome.zarr", ExportOptions(start=1), image="include")
    arr = zarr.open_array(str(out / "0"))
    assert arr.shape == (1, depth, h, w) and arr.dtype == np.int16
    for z in (0, depth // 2, depth - 1):
        np.testing.assert_array_equal(arr[0, z], source.read_slice(1, z))
    attrs = zarr.open_group(str(out)).attrs["ome"]["multiscales"][0]
    assert attrs["datasets"][0]["coordinateTransformations"][0]["scale"][1:] == pytest.approx(
        [source.geometry.spacing[1], source.geometry.spacing[2], source.geometry.spacing[3]])


def test_a_tracked_volume_exports_and_compares(tmp_path, test_model):
    """A 3D + time project made by tracking (test model) exports as NIfTI with the labels the
    store holds, and ``compare`` scores it against the ground truth imported from a TIFF."""
    import nibabel as nib
    import tifffile
    from _volumes import sphere_volume

    from napari_sam2_track.formats import import_annotations
    from napari_sam2_track.formats.metrics import compare
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import Prompt, PromptSet

    data, gt = sphere_volume(t=2)
    sizes = {"z": (2.0, "µm"), "y": (0.5, "µm"), "x": (0.5, "µm")}
    vol = ArrayVolumeSource(data, "TZYX", sizes=sizes)
    prompts = PromptSet(objects=[ObjectSpec(id=1)],
                        prompts=[Prompt(object=1, frame=0, z=6, points=[(26, 32)], labels=[1])])
    list(track(vol, prompts, tmp_path / "v.zarr", model=test_model))
    store = ProjectStore.open(tmp_path / "v.zarr", "r")
    out = export(store, "nifti", tmp_path / "n")
    img = nib.load(out / "labels.nii.gz")
    assert img.shape == (data.shape[3], data.shape[2], data.shape[1], data.shape[0])
    np.testing.assert_allclose(np.diag(img.affine)[:3], [0.5, 0.5, 2.0])
    for t in range(data.shape[0]):
        np.testing.assert_array_equal(np.asarray(img.dataobj)[..., t].transpose(2, 1, 0), store.label_volume(t))
    tifffile.imwrite(tmp_path / "gt.tif", np.asarray(gt, np.uint16), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TZYX", "spacing": 2.0, "unit": "micron"})
    truth_store = import_annotations(tmp_path / "gt.tif", tmp_path / "gt.zarr")
    r = compare(read_labels(truth_store.path), read_labels(store.path))
    assert r["timepoints"] == data.shape[0] and r["units"] == "µm" and r["spacing"] == [2.0, 0.5, 0.5]
    dice0 = r["objects"][1]["per_timepoint"]["dice"][0]
    found = store.object_volume(1, 0)
    assert dice0 == pytest.approx(2 * (found & gt[0]).sum() / (found.sum() + gt[0].sum()))
