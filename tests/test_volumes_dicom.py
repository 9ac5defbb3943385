"""DICOM series as volumes: ordering along the normal, spacing, rescale, refusals, real data.

Folders are written in tmp_path with pydicom (from scratch, or by copying and modifying the real
CT series in ../shared/data/volumes/ct_series); pixel values are checked against pydicom's own
``pixel_array`` and the header's rescale.
"""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from napari_sam2_track.errors import SourceError
from napari_sam2_track.sources import DicomSeriesSource, open_source, open_volume

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def write_slice(path, *, pixels, position, orientation=AXIAL, series_uid, description="Test CT",
                instance=1, spacing=(0.5, 0.75), slope=1.0, intercept=-1024.0):
    """One single-frame CT file (int16 stored values) with the given geometry."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesDescription = "CT", series_uid, description
    ds.StudyInstanceUID = "1.2.3.4"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.PixelSpacing = [str(spacing[0]), str(spacing[1])]
    ds.SliceThickness = "9.0"  # deliberately not the spacing
    ds.RescaleSlope, ds.RescaleIntercept = str(slope), str(intercept)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = pixels.astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_series(folder, n=5, *, orientation=AXIAL, step=2.5, uid=None, start=(10.0, -20.0, 30.0),
                 skip=(), description="Test CT", names=None, shape=(6, 8)):
    """``n`` slices along the normal of ``orientation``; files named in reverse order with
    reversed InstanceNumbers so that neither gives the slice order. Returns the stored arrays
    in slice order."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or generate_uid()
    o = np.asarray(orientation)
    normal = np.cross(o[:3], o[3:])
    stored = []
    for k in range(n):
        if k in skip:
            continue
        pixels = (np.arange(np.prod(shape)).reshape(shape) + 100 * k).astype(np.int16)
        name = names[k] if names else f"IM{n - k:04d}"
        write_slice(folder / name, pixels=pixels, position=np.asarray(start) + k * step * normal,
                    orientation=orientation, series_uid=uid, description=description,
                    instance=n - k)
        stored.append(pixels)
    return uid, stored


def test_slices_are_ordered_by_position_not_by_name_or_instance(tmp_path):
    _, stored = write_series(tmp_path / "ct", n=5)
    (tmp_path / "ct" / "README.txt").write_text("not a DICOM file")
    with open_volume(tmp_path / "ct") as vol:
        assert isinstance(vol, DicomSeriesSource)
        assert vol.shape == (1, 5, 6, 8) and vol.dtype == np.int32  # 16 bits stored - 1024
        for z in range(5):
            np.testing.assert_array_equal(vol.read_slice(0, z), stored[z].astype(np.int32) - 1024)
        g = vol.geometry
        assert g.spacing == (1.0, 2.5, 0.5, 0.75) and g.units == (None, "mm", "mm", "mm")
        assert g.space == "LPS" and not g.oblique
        affine = g.affine_matrix()
        # voxel (x=0, y=0, z=k) is the position of slice k; x steps along a row (column spacing)
        for z in range(5):
            np.testing.assert_allclose(affine @ [0, 0, z, 1], [10, -20, 30 + 2.5 * z, 1])
        np.testing.assert_allclose(affine @ [1, 1, 0, 1], [10.75, -19.5, 30, 1])
        np.testing.assert_allclose(g.ras_affine() @ [0, 0, 0, 1], [-10, 20, 30, 1])
        assert [p.split("/")[-1] for p in vol.files] == [f"IM{5 - k:04d}" for k in range(5)]
        assert vol.describe()["series"] == vol.series_uid


def test_hounsfield_units_match_pydicom_with_float_rescale(tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    uid = generate_uid()
    for k in range(3):
        pixels = np.full((4, 4), 10 * k, np.int16)
        write_slice(folder / f"s{k}", pixels=pixels, position=(0, 0, 2.0 * k), series_uid=uid,
                    slope=0.5, intercept=-10.25)
    with open_volume(folder) as vol:
        assert vol.dtype == np.float32
        for k in range(3):
            ds = pydicom.dcmread(folder / f"s{k}")
            expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            np.testing.assert_allclose(vol.read_slice(0, k), expected)


def test_two_series_are_listed_and_one_can_be_chosen(tmp_path):
    folder = tmp_path / "mixed"
    uid_a, stored_a = write_series(folder, n=4, description="Head axial")
    uid_b, _ = write_series(folder, n=3, description="Head thin", names=["b0", "b1", "b2"])
    with pytest.raises(SourceError) as err:
        open_source(folder)
    message = str(err.value)
    assert "2 series" in message and "\n" not in message
    assert f"{uid_a} (Head axial, 4 slices)" in message
    assert f"{uid_b} (Head thin, 3 slices)" in message
    with open_source(folder, series=uid_a) as vol:
        assert vol.shape == (1, 4, 6, 8)
        np.testing.assert_array_equal(vol.read_slice(0, 0), stored_a[0].astype(np.int32) - 1024)
    with pytest.raises(SourceError, match="has no series 9.9.9"):
        open_source(folder, series="9.9.9")


def test_series_elsewhere_is_refused_in_one_line_naming_the_input(tmp_path):
    with pytest.raises(SourceError) as err:
        open_source(np.zeros((4, 8, 8)), series="1.2.3")
    assert str(err.value) == ("open_source: series= only applies to a folder of DICOM files, "
                              "not to an object of type ndarray")
    missing = tmp_path / "no-such-folder"
    with pytest.raises(SourceError, match=r"no-such-folder: file not found$"):
        open_source(missing, series="1.2.3")
    stack = tmp_path / "stack.npy"
    stack.write_bytes(b"")
    with pytest.raises(SourceError, match=r"stack.npy: series= only applies to a folder of DICOM"):
        open_source(stack, series="1.2.3")
    folder = tmp_path / "ct"
    uid, _ = write_series(folder, n=3)
    with open_volume(folder) as vol:
        with pytest.raises(SourceError, match="channel/window/axes/series cannot be changed"):
            open_source(vol, series=uid)


def test_mixed_orientations_are_refused(tmp_path):
    folder = tmp_path / "ct"
    uid, _ = write_series(folder, n=4)
    write_slice(folder / "localizer", pixels=np.zeros((6, 8), np.int16), position=(0, 0, 0),
                orientation=(0, 1, 0, 0, 0, -1), series_uid=uid)
    expected = r"2 orientations \(axial .*4 slices, sagittal .*1 slice\)"
    with pytest.raises(SourceError, match=expected):
        open_source(folder)


def test_missing_slice_is_named(tmp_path):
    folder = tmp_path / "ct"
    write_series(folder, n=6, skip=(3,))
    with pytest.raises(SourceError) as err:
        open_source(folder)
    message = str(err.value)
    assert "missing or unevenly spaced" in message and "5.00 mm between IM0004" in message
    assert "2.50 mm apart" in message


def test_overlapping_slices_are_refused(tmp_path):
    folder = tmp_path / "ct"
    uid, _ = write_series(folder, n=3)
    write_slice(folder / "again", pixels=np.zeros((6, 8), np.int16), position=(10, -20, 32.5),
                series_uid=uid)
    with pytest.raises(SourceError, match="share a position"):
        open_source(folder)


def test_oblique_series_is_read_along_its_normal_with_the_affine(tmp_path):
    a = np.deg2rad(30)
    orientation = (1.0, 0.0, 0.0, 0.0, np.cos(a), np.sin(a))
    _, stored = write_series(tmp_path / "ob", n=4, orientation=orientation, step=3.0)
    with open_volume(tmp_path / "ob") as vol:
        assert vol.geometry.oblique
        assert vol.notes and "oblique axial" in vol.notes[0] and "affine" in vol.notes[0]
        assert vol.geometry.spacing[1] == pytest.approx(3.0, abs=1e-3)
        for z in range(4):
            np.testing.assert_array_equal(vol.read_slice(0, z), stored[z].astype(np.int32) - 1024)
        normal = np.cross(orientation[:3], orientation[3:])
        np.testing.assert_allclose(vol.geometry.affine_matrix()[:3, 2], 3.0 * normal, atol=1e-3)


def test_one_dicom_file_and_a_single_slice_are_refused(tmp_path):
    write_series(tmp_path / "one", n=1)
    with pytest.raises(SourceError, match="single slice"):
        open_source(tmp_path / "one")
    with pytest.raises(SourceError, match="open the folder that holds its series"):
        open_source(tmp_path / "one" / "IM0001")


def test_window_presets_and_the_file_window(tmp_path):
    write_series(tmp_path / "ct", n=3)
    with open_volume(tmp_path / "ct", window="ct-lung") as vol:
        assert (vol.window.low, vol.window.high) == (-1350.0, 150.0)
        assert vol.describe()["window"] == {"low": -1350.0, "high": 150.0, "preset": "ct-lung"}
        rgb = vol.read_slice_rgb(0, 0)
        expected = vol.window.apply(vol.read_slice(0, 0))
        assert rgb.shape == (6, 8, 3) and np.array_equal(rgb[..., 1], expected)
    with open_volume(tmp_path / "ct", window=(-1000, 0)) as vol:
        assert (vol.window.low, vol.window.high, vol.window.preset) == (-1000.0, 0.0, None)
    expected = "unknown intensity window 'ct-heart'; use one of ct-brain"
    with pytest.raises(SourceError, match=expected):
        open_volume(tmp_path / "ct", window="ct-heart")


# -- the real CT series -----------------------------------------------------------------------


@pytest.fixture
def ct_series(shared_data):
    folder = shared_data / "volumes" / "ct_series"
    if not folder.is_dir():
        pytest.skip("ct_series not available")
    return folder


def test_real_series_with_a_stray_slice_is_refused(ct_series):
    with pytest.raises(SourceError) as err:
        open_source(ct_series)
    message = str(err.value)
    assert "202.50 mm between 17106 (-99.48) and 17136 (103.02)" in message
    assert "1.25 mm apart" in message


def test_real_contiguous_slices_read_in_hounsfield_units(ct_series, tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    for name in ("17196", "17136", "17166"):  # copied out of order on purpose
        shutil.copy(ct_series / name, folder / name)
    with open_volume(folder) as vol:
        assert vol.shape == (1, 3, 16, 16) and vol.modality == "CT"
        assert vol.geometry.spacing == pytest.approx((1.0, 1.25, 0.488281, 0.488281), abs=1e-5)
        assert [f.rsplit("/", 1)[-1] for f in vol.files] == ["17136", "17166", "17196"]
        for z, name in enumerate(["17136", "17166", "17196"]):
            ds = pydicom.dcmread(folder / name)
            hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
            np.testing.assert_array_equal(vol.read_slice(0, z), hu)
        # the series' own window (WindowCenter 30, WindowWidth 100) is the default
        assert (vol.window.low, vol.window.high, vol.window.preset) == (-20.0, 80.0, "dicom")


def test_real_series_mixed_with_a_second_series_lists_both(ct_series, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(ct_series, folder)
    other = generate_uid()
    for name in ("17166", "17196"):
        ds = pydicom.dcmread(folder / name)
        ds.SeriesInstanceUID, ds.SeriesDescription = other, "Bone recon"
        ds.save_as(folder / name)
    with pytest.raises(SourceError) as err:
        open_source(folder)
    message = str(err.value)
    assert f"{other} (Bone recon, 2 slices)" in message
    assert "(Routine Brain, 2 slices)" in message
    with open_source(folder, series=other) as vol:
        assert vol.shape == (1, 2, 16, 16)
