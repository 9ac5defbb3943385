"""Label volumes (NIfTI, DICOM series, z-stack TIFF, this package's exports) imported into volume
projects, checked against their image; ``compare`` of volume label sets."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from napari_sam2_track.errors import StoreError
from napari_sam2_track.formats import export, import_annotations, read_labels
from napari_sam2_track.formats.metrics import compare
from napari_sam2_track.project import ProjectStore
from napari_sam2_track.sources.volume import ArrayVolumeSource
from test_export_volumes import SIZES, T, Z, H, W, _ball, merged, truth, write_volume_project

medpy_binary = pytest.importorskip("medpy.metric.binary")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", *map(str, args)],
                          capture_output=True, text=True)


@pytest.fixture
def mni(shared_data):
    path = shared_data / "volumes" / "mni152_t1.nii.gz"
    if not path.exists():
        pytest.skip("mni152_t1.nii.gz not available")
    return path


def _save_nifti(path, labels_zyx, affine, dtype=np.uint16):
    import nibabel as nib

    data = np.asarray(labels_zyx).transpose(2, 1, 0)  # (z, y, x) -> NIfTI's (x, y, z)
    nib.save(nib.Nifti1Image(data.astype(dtype), affine), path)
    return path


def mni_labels(mni):
    import nibabel as nib

    shape = nib.load(mni).shape  # (x, y, z)
    zyx = (shape[2], shape[1], shape[0])
    labels = np.zeros(zyx, np.uint32)
    labels[_ball(zyx, (90, 120, 100), (20, 30, 25))] = 4
    labels[_ball(zyx, (60, 100, 60), (10, 12, 14))] = 9
    return labels, nib.load(mni).affine


def test_nifti_labels_onto_real_mri(mni, tmp_path):
    labels, affine = mni_labels(mni)
    f = _save_nifti(tmp_path / "seg.nii.gz", labels, affine)
    store = import_annotations(f, tmp_path / "p.zarr", image=mni)
    assert store.is_volume and store.volume_shape == (1, *labels.shape)
    assert sorted(o.id for o in store.objects) == [4, 9]
    np.testing.assert_array_equal(store.label_volume(0), labels)
    assert store.meta["source"]["path"] == str(mni)  # the project is on the image
    assert store.meta["source"]["import"]["path"] == str(f)
    np.testing.assert_allclose(store.geometry.affine_matrix(), affine)
    # the CLI says what it wrote
    r = _cli("import", f, "--image", mni, "--out", tmp_path / "q.zarr")
    assert r.returncode == 0, r.stderr
    assert "2 objects, 1 timepoint(s) of 189 slices of 197x233" in r.stdout


def test_labels_of_another_grid_or_place_are_refused(mni, tmp_path):
    labels, affine = mni_labels(mni)
    shifted = affine.copy()
    shifted[0, 3] += 5.0
    f = _save_nifti(tmp_path / "moved.nii.gz", labels, shifted)
    with pytest.raises(StoreError, match="lies elsewhere in space .* differ by up to 5 mm"):
        import_annotations(f, tmp_path / "p.zarr", image=mni)
    g = _save_nifti(tmp_path / "small.nii.gz", labels[:, :, :-1], affine)
    r = _cli("import", g, "--image", mni, "--out", tmp_path / "p.zarr")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "196x233x189" in r.stderr and "not drawn on this image" in r.stderr
    assert not (tmp_path / "p.zarr").exists()


def test_empty_or_fractional_label_volumes_write_nothing(tmp_path):
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    empty = _save_nifti(tmp_path / "empty.nii.gz", np.zeros((4, 6, 5)), affine)
    with pytest.raises(StoreError, match="holds no labels .*every voxel is 0.*nothing was written"):
        import_annotations(empty, tmp_path / "p.zarr")
    frac = np.zeros((4, 6, 5), np.float32)
    frac[1, 2, 2] = 1.5
    f = _save_nifti(tmp_path / "frac.nii.gz", frac, affine, dtype=np.float32)
    with pytest.raises(StoreError, match="non-integer values"):
        import_annotations(f, tmp_path / "p.zarr")
    whole = frac.copy()
    whole[1, 2, 2] = 3.0  # float files of whole numbers are labels
    store = import_annotations(_save_nifti(tmp_path / "whole.nii.gz", whole, affine, dtype=np.float32),
                               tmp_path / "p.zarr")
    assert [o.id for o in store.objects] == [3]
    assert store.geometry.spacing[1:] == pytest.approx((3.0, 0.8, 0.8))  # the labels' own grid
    assert not (tmp_path / "empty.zarr").exists()


def test_dicom_label_series_onto_its_ct(tmp_path):
    from test_volumes_dicom import write_series, write_slice

    from napari_sam2_track.sources import open_source

    uid, _ = write_series(tmp_path / "ct", n=5, step=2.5, shape=(6, 8))
    ct = open_source(tmp_path / "ct")
    labels = np.zeros((5, 6, 8), np.int16)
    labels[1:4, 2:5, 3:7] = 2
    labels[2, 0:2, 0:2] = 7
    seg = tmp_path / "seg"
    seg.mkdir()
    for k, f in enumerate(ct.files):  # the CT's own geometry, label pixels, in a new series
        import pydicom

        ds = pydicom.dcmread(f, stop_before_pixels=True)
        write_slice(seg / f"L{k}", pixels=labels[k], position=[float(v) for v in ds.ImagePositionPatient],
                    series_uid="1.2.3.9", intercept=0.0)
    store = import_annotations(seg, tmp_path / "p.zarr", image=tmp_path / "ct")
    assert sorted(o.id for o in store.objects) == [2, 7]
    np.testing.assert_array_equal(store.label_volume(0), labels)
    # a label series placed 1 mm off
    off = tmp_path / "off"
    off.mkdir()
    for k, f in enumerate(ct.files):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        pos = [float(v) for v in ds.ImagePositionPatient]
        write_slice(off / f"L{k}", pixels=labels[k], position=[pos[0] + 1, pos[1], pos[2]],
                    series_uid="1.2.3.8", intercept=0.0)
    r = _cli("import", off, "--image", tmp_path / "ct", "--out", tmp_path / "q.zarr")
    assert r.returncode == 2 and "lies elsewhere in space" in r.stderr and not (tmp_path / "q.zarr").exists()


@pytest.fixture
def micro_pair(tmp_path):
    """Two volume projects of the same anisotropic volume: the truth, and object 1 moved by one
    slice at timepoint 1."""
    data = np.zeros((T, Z, H, W), np.uint8)
    masks = truth()
    a = write_volume_project(tmp_path / "a.zarr", ArrayVolumeSource(data, "TZYX", sizes=SIZES, window=(0, 1)),
                             masks)
    moved = dict(masks)
    moved[1, 1] = np.roll(masks[1, 1], 1, axis=0)
    b = write_volume_project(tmp_path / "b.zarr", ArrayVolumeSource(data, "TZYX", sizes=SIZES, window=(0, 1)),
                             moved)
    return a, b, masks, moved


def test_compare_volumes_against_medpy(micro_pair):
    a, b, masks, moved = micro_pair
    spacing = (4.0, 0.5, 0.25)
    r = compare(read_labels(a.path), read_labels(b.path))
    assert r["kind"] == "volume" and r["units"] == "µm" and r["spacing"] == list(spacing)
    o1 = r["objects"][1]["per_timepoint"]
    assert o1["dice"][0] == 1.0 and o1["hd95"][0] == 0.0
    assert o1["dice"][1] == pytest.approx(medpy_binary.dc(moved[1, 1], masks[1, 1]))
    # object 1 of "b" at t=1: the merged labels give object 2's overlap to 1 in both; masks kept
    assert o1["hd95"][1] == pytest.approx(medpy_binary.hd95(moved[1, 1], masks[1, 1], voxelspacing=spacing))
    in_voxels = medpy_binary.hd95(moved[1, 1], masks[1, 1])
    assert abs(o1["hd95"][1] - in_voxels) > 0.1  # physical units, not voxels
    assert r["objects"][3]["per_timepoint"]["hd95"] == [None, 0.0, None]


def test_round_trip_nifti_export_import_compare(micro_pair, tmp_path):
    a, _, _, _ = micro_pair
    out = export(a, "nifti", tmp_path / "n")
    back = import_annotations(out, tmp_path / "back.zarr")
    assert [o.name for o in back.objects] == ["organ 1", "organ 2", "organ 3"]
    r = compare(read_labels(a.path), read_labels(tmp_path / "back.zarr"))
    # merged labels lose overlaps: where 1 and 2 overlap at t=2 the export holds 1
    assert r["objects"][1]["mean"]["dice"] == 1.0 and r["objects"][3]["mean"]["hd95"] == 0.0
    assert back.geometry.spacing[1:] == pytest.approx((4.0, 0.5, 0.25))


def test_tiff_zyx_label_stack_imports_as_a_volume(micro_pair, tmp_path):
    a, _, masks, _ = micro_pair
    out = export(a, "tiff", tmp_path / "v.tif")
    store = import_annotations(out, tmp_path / "t.zarr")
    assert store.volume_shape == (T, Z, H, W)
    for t in range(T):
        np.testing.assert_array_equal(store.label_volume(t), merged(masks, t))


def test_cli_compare_volumes(micro_pair):
    a, b, _, _ = micro_pair
    a.close()
    b.close()
    r = _cli("compare", a.path, b.path)
    assert r.returncode == 0, r.stderr
    assert "HD95" in r.stdout and "µm" in r.stdout
    r = _cli("compare", a.path, b.path, "--json")
    data = json.loads(r.stdout)
    assert data["objects"]["2"]["mean"]["dice"] == 1.0
    assert "union" in data["hd95_definition"]


def test_compare_refuses_a_volume_against_frames(micro_pair, tmp_path):
    a, _, _, _ = micro_pair
    flat = ProjectStore.create(tmp_path / "flat.zarr", num_frames=T * Z, height=H, width=W)
    with pytest.raises(StoreError, match="holds 2D frames but the other label set holds volumes"):
        compare(read_labels(a.path), read_labels(flat.path))


@pytest.fixture
def ct3(shared_data, tmp_path):
    """The three contiguous slices of the real CT series."""
    import shutil

    folder = shared_data / "volumes" / "ct_series"
    if not folder.is_dir():
        pytest.skip("ct_series not available")
    out = tmp_path / "ct3"
    out.mkdir()
    for name in ("17136", "17166", "17196"):
        shutil.copy(folder / name, out / name)
    return out


def _seg(images, masks, path, fractional=False):
    """A DICOM SEG written by highdicom (the reference writer) for ``masks`` (frames, rows,
    columns, segments)."""
    hd = pytest.importorskip("highdicom")
    import pydicom
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(f) for f in sorted(images.iterdir())]
    desc = [hd.seg.SegmentDescription(segment_number=i + 1, segment_label=f"lesion {i + 1}",
                                      segmented_property_category=codes.SCT.Tissue,
                                      segmented_property_type=codes.SCT.Tissue,
                                      algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
            for i in range(masks.shape[-1])]
    kind = hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY
    seg = hd.seg.Segmentation(source_images=sources, pixel_array=masks.astype(np.float32 if fractional else bool),
                              segmentation_type=kind, segment_descriptions=desc,
                              series_instance_uid=hd.UID(), series_number=9, sop_instance_uid=hd.UID(),
                              instance_number=1, manufacturer="test", manufacturer_model_name="test",
                              software_versions="1", device_serial_number="1")
    seg.save_as(path)
    return path


def test_dicom_seg_onto_real_ct(ct3, tmp_path):
    from napari_sam2_track.sources import open_source

    ct = open_source(ct3)
    _, depth, h, w = ct.shape
    masks = np.zeros((depth, h, w, 2), bool)
    masks[0, 3:9, 4:12, 0] = True
    masks[2, 3:9, 4:12, 0] = True  # segment 1 skips the middle slice
    masks[2, 6:12, 8:14, 1] = True  # segment 2 overlaps segment 1 on the last slice
    # highdicom sorts nothing: give it the slices in the order the volume reads them
    ordered = tmp_path / "ordered"
    ordered.mkdir()
    for k, f in enumerate(ct.files):
        (ordered / f"{k:02d}").write_bytes(open(f, "rb").read())
    seg = _seg(ordered, masks, tmp_path / "seg.dcm")
    store = import_annotations(seg, tmp_path / "p.zarr", image=ct3)
    assert [(o.id, o.name, o.category) for o in store.objects] == [(1, "lesion 1", "Tissue"), (2, "lesion 2", "Tissue")]
    for i in (1, 2):
        np.testing.assert_array_equal(store.object_volume(i, 0), masks[..., i - 1])  # overlap kept
    r = _cli("import", seg, "--out", tmp_path / "q.zarr")
    assert r.returncode == 2 and "onto the image it segments" in r.stderr


def test_dicom_seg_of_another_image_is_refused(ct3, tmp_path):
    from test_volumes_dicom import write_series

    from napari_sam2_track.sources import open_source

    ct = open_source(ct3)
    _, depth, h, w = ct.shape
    masks = np.zeros((depth, h, w, 1), bool)
    masks[1, 2:5, 2:5, 0] = True
    ordered = tmp_path / "ordered"
    ordered.mkdir()
    for k, f in enumerate(ct.files):
        (ordered / f"{k:02d}").write_bytes(open(f, "rb").read())
    seg = _seg(ordered, masks, tmp_path / "seg.dcm")
    write_series(tmp_path / "other", n=depth, step=1.25, shape=(h, w))
    with pytest.raises(StoreError, match="does not lie on a slice of the image"):
        import_annotations(seg, tmp_path / "p.zarr", image=tmp_path / "other")
    assert not (tmp_path / "p.zarr").exists()


def test_fractional_dicom_seg_keeps_at_least_half(ct3, tmp_path):
    from napari_sam2_track.sources import open_source

    ct = open_source(ct3)
    _, depth, h, w = ct.shape
    frac = np.zeros((depth, h, w, 1), np.float32)
    frac[1, 2:6, 2:6, 0] = 0.8
    frac[1, 6:9, 2:6, 0] = 0.3  # below half: not the object
    ordered = tmp_path / "ordered"
    ordered.mkdir()
    for k, f in enumerate(ct.files):
        (ordered / f"{k:02d}").write_bytes(open(f, "rb").read())
    seg = _seg(ordered, frac, tmp_path / "seg.dcm", fractional=True)
    store = import_annotations(seg, tmp_path / "p.zarr", image=ct3)
    np.testing.assert_array_equal(store.object_volume(1, 0), frac[..., 0] >= 0.5)
    assert store.meta["source"]["import"]["segmentation_type"] == "FRACTIONAL"
