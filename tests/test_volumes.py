"""Volume sources: NIfTI (real and written here), TIFF/OME-TIFF, OME-Zarr, arrays; geometry,
windows, laziness, the napari reader and the refusal of volumes by the tracking pipeline.

Slices are checked against nibabel's own reading (``get_fdata`` transposed), never a mock.
"""

from __future__ import annotations

import tracemalloc

import nibabel as nib
import numpy as np
import pytest
import tifffile
import zarr

from napari_sam2_track.errors import SourceError
from napari_sam2_track.sources import (
    ArrayVolumeSource,
    FrameSource,
    NiftiSource,
    TiffVolumeSource,
    VolumeSource,
    ZarrSource,
    ZarrVolumeSource,
    open_source,
    open_volume,
)


def _nifti(path, data, *, affine=None, zooms=None, endianness="<", slope=None, units=None):
    """Write ``data`` as stored (no rescaling by nibabel); ``slope`` = (scl_slope, scl_inter) is
    then written into the header of the file."""
    header = nib.Nifti1Header(endianness=endianness)
    header.set_data_dtype(data.dtype)
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine, header=header)
    if zooms is not None:
        img.header.set_zooms(zooms)
    if units is not None:
        img.header.set_xyzt_units(*units)
    nib.save(img, path)
    if slope is not None:
        with open(path, "r+b") as f:
            stored = nib.Nifti1Header.from_fileobj(f)
            stored["scl_slope"], stored["scl_inter"] = slope
            f.seek(0)
            stored.write_to(f)
    return path


# -- NIfTI: real volumes -----------------------------------------------------------------------


@pytest.fixture
def volumes(shared_data):
    folder = shared_data / "volumes"
    if not folder.is_dir():
        pytest.skip("volumes not available")
    return folder


def test_mni152_slices_match_nibabel(volumes):
    path = volumes / "mni152_t1.nii.gz"
    img = nib.load(path)
    with open_source(path) as vol:
        assert isinstance(vol, NiftiSource)
        assert vol.shape == (1, 189, 233, 197) and vol.dtype == np.uint8
        g = vol.geometry
        assert g.axes == "tzyx" and g.spacing == (1.0, 1.0, 1.0, 1.0) and g.space == "RAS"
        assert g.units == (None, "mm", "mm", "mm")  # 'unknown' in the header is read as mm
        np.testing.assert_array_equal(g.affine_matrix(), img.affine)
        data = np.asarray(img.dataobj)
        for z in (0, 94, 188):
            np.testing.assert_array_equal(vol.read_slice(0, z), data[:, :, z].T)
        assert vol.window is None  # uint8 is fed as is, like 8-bit video
        assert vol.read_slice_rgb(0, 94)[..., 0].tolist() == data[:, :, 94].T.tolist()


def test_example4d_is_t_z_y_x_with_its_voxel_sizes(volumes):
    path = volumes / "example4d.nii.gz"
    img = nib.load(path)
    data = img.get_fdata()
    with open_volume(path) as vol:
        assert vol.shape == (2, 24, 96, 128) and vol.dtype == np.int16
        assert vol.geometry.spacing == pytest.approx((2000.0, 2.2, 2.0, 2.0), abs=1e-5)
        assert vol.geometry.units == ("s", "mm", "mm", "mm")  # the header's TR and unit as written
        assert vol.geometry.scale == pytest.approx((1.0, 2.2, 2.0, 2.0), abs=1e-5)
        assert vol.geometry.oblique and "affine" in vol.notes[0]
        for t, z in ((0, 0), (1, 3), (1, 23)):
            np.testing.assert_array_equal(vol.read_slice(t, z), data[:, :, z, t].T)
        # voxel (x, y, z) goes through the file's affine
        np.testing.assert_allclose(vol.geometry.affine_matrix() @ [3, 5, 7, 1],
                                   img.affine @ [3, 5, 7, 1])
        assert vol.window.preset == "auto" and vol.window.high > vol.window.low


# -- NIfTI: written here -----------------------------------------------------------------------


def test_big_endian_scaled_nifti_matches_nibabel(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.integers(-500, 500, (7, 5, 4), dtype=np.int16)
    path = _nifti(tmp_path / "be.nii", raw.astype(">i2"), endianness=">", slope=(2.0, 10.0),
                  zooms=(0.5, 0.6, 3.0), units=("micron", "sec"))
    assert nib.load(path).header.endianness == ">"
    expected = nib.load(path).get_fdata()
    with open_source(path) as vol:
        assert vol.describe()["file_dtype"] == ">i2" and vol.dtype.byteorder in "=|"
        assert vol.dtype.kind == "f"
        assert vol.shape == (1, 4, 5, 7)
        assert vol.geometry.spacing[1:] == pytest.approx((3.0, 0.6, 0.5))
        assert vol.geometry.units[1:] == ("µm", "µm", "µm")
        for z in range(4):
            np.testing.assert_allclose(vol.read_slice(0, z), expected[:, :, z].T)
            np.testing.assert_allclose(vol.read_slice(0, z), raw[:, :, z].T * 2.0 + 10.0)


def test_float_nifti_nan_and_inf_go_to_the_window_low_end(tmp_path):
    data = np.linspace(0, 100, 8 * 6 * 3, dtype=np.float32).reshape(8, 6, 3)
    data[0, 0, :] = np.nan
    data[1, 0, :] = np.inf
    data[2, 0, :] = -np.inf
    path = _nifti(tmp_path / "f.nii.gz", data)
    with open_source(path) as vol:
        assert vol.dtype == np.float32
        assert np.isfinite([vol.window.low, vol.window.high]).all()
        assert 0 <= vol.window.low < vol.window.high <= 100
    with open_source(path, window=(0.0, 50.0)) as vol:
        rgb = vol.read_slice_rgb(0, 1)
        # (y=0, x=0..2) hold NaN, +Inf, -Inf
        assert rgb[0, :3, 0].tolist() == [0, 0, 0]
        expected = np.rint(np.clip(data[3, 0, 1] / 50.0, 0, 1) * 255)
        assert rgb[0, 3, 0] == expected


class _RecordingNifti(NiftiSource):
    """The real NIfTI source, recording which slices it reads."""

    def __init__(self, path, **kwargs):
        self.reads = []
        super().__init__(path, **kwargs)

    def _read_slice(self, t, z):
        self.reads.append((t, z))
        return super()._read_slice(t, z)


def test_nifti_gz_auto_window_reads_forward_only_up_to_the_middle_slice(tmp_path):
    data = np.arange(6 * 5 * 40 * 2, dtype=np.int16).reshape(6, 5, 40, 2)
    gz = _RecordingNifti(_nifti(tmp_path / "v.nii.gz", data))
    with gz:
        assert gz.reads == sorted(gz.reads) and len(gz.reads) == 16
        assert max(gz.reads) == (0, 19)  # before the middle slice napari shows first
        gz.reads.clear()
        np.testing.assert_array_equal(gz.read_slice(0, 20), data[:, :, 20, 0].T)
    plain = _RecordingNifti(_nifti(tmp_path / "v.nii", data))
    with plain:  # files read at random stay sampled over all of (t, z)
        assert plain.reads[0] == (0, 0) and plain.reads[-1] == (1, 39)


def test_one_slice_and_2d_nifti_are_refused(tmp_path):
    for shape in ((8, 6, 1), (8, 6), (8, 6, 1, 5)):
        path = _nifti(tmp_path / f"s{len(shape)}.nii", np.zeros(shape, np.int16))
        with pytest.raises(SourceError, match="single slice .*a volume needs at least 2 slices"):
            open_source(path)


def test_damaged_nifti_files_give_one_line(tmp_path, volumes):
    (tmp_path / "noise.nii").write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(SourceError, match="cannot read NIfTI .*noise.nii"):
        open_source(tmp_path / "noise.nii")
    whole = _nifti(tmp_path / "whole.nii", np.zeros((20, 20, 20), np.int16))
    cut = tmp_path / "cut.nii"
    cut.write_bytes(whole.read_bytes()[:8000])
    with pytest.raises(SourceError, match="is truncated: its header needs 16,352 bytes"):
        open_source(cut)
    gz = (volumes / "mni152_t1.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(gz[: len(gz) // 3])
    with open_source(tmp_path / "cut.nii.gz") as vol:  # uint8: no slice is read at open
        vol.read_slice(0, 0)
        with pytest.raises(SourceError, match=r"cannot read slice \(t=0, z=188\): Compressed file"):
            vol.read_slice(0, 188)


def test_5d_nifti_needs_a_component(tmp_path):
    data = np.arange(6 * 5 * 4 * 1 * 3, dtype=np.float32).reshape(6, 5, 4, 1, 3)
    path = _nifti(tmp_path / "vec.nii", data)
    with pytest.raises(SourceError, match=r"has 3 channels; .*channel=K \(0..2\)"):
        open_source(path)
    with open_source(path, channel=2) as vol:
        assert vol.shape == (1, 4, 5, 6)
        np.testing.assert_array_equal(vol.read_slice(0, 3), data[:, :, 3, 0, 2].T)


def test_nifti_slice_read_does_not_load_the_volume(tmp_path):
    data = np.random.default_rng(1).integers(0, 4000, (96, 96, 160), dtype=np.int16)
    for name in ("big.nii", "big.nii.gz"):
        path = _nifti(tmp_path / name, data)
        tracemalloc.start()
        try:
            with open_source(path, window=(0, 4000)) as vol:
                image = vol.read_slice(0, 150)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        np.testing.assert_array_equal(image, data[:, :, 150].T)
        assert peak < data.nbytes / 4, (name, peak, data.nbytes)


# -- TIFF, zarr, arrays ------------------------------------------------------------------------


def test_ome_tiff_tzyx_with_physical_sizes(tmp_path):
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    path = tmp_path / "v.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "TZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 2.0,
        "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm", "PhysicalSizeZUnit": "µm",
        "TimeIncrement": 30.0})
    with open_source(path) as vol:
        assert isinstance(vol, TiffVolumeSource) and vol.shape == (2, 3, 4, 5)
        assert vol.geometry.spacing == (30.0, 2.0, 0.25, 0.5)
        assert vol.geometry.units == ("s", "µm", "µm", "µm")
        assert vol.geometry.scale == (1.0, 2.0, 0.25, 0.5)
        np.testing.assert_array_equal(vol.read_slice(1, 2), data[1, 2])


def test_tiff_tzcyx_needs_a_channel(tmp_path):
    data = np.arange(2 * 3 * 2 * 4 * 5, dtype=np.uint16).reshape(2, 3, 2, 4, 5)
    path = tmp_path / "c.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "TZCYX"})
    with pytest.raises(SourceError, match=r"has 2 channels; .*channel=K \(0..1\)"):
        open_source(path)
    with open_source(path, channel=1) as vol:
        assert vol.shape == (2, 3, 4, 5)
        np.testing.assert_array_equal(vol.read_slice(1, 2), data[1, 2, 1])


def test_axes_override_and_bad_overrides(tmp_path):
    data = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data)
    assert isinstance(open_source(path), FrameSource)  # no metadata: a time-lapse
    with open_volume(path, axes="ZYX") as vol:
        assert vol.shape == (1, 5, 6, 7)
        np.testing.assert_array_equal(vol.read_slice(0, 3), data[3])
    with pytest.raises(SourceError, match="4 axes for 3 dimensions"):
        open_volume(path, axes="TZYX")
    with pytest.raises(SourceError, match="no Z axis"):
        ArrayVolumeSource(data, "TYX")


def test_2d_file_where_a_volume_is_required(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.zeros((5, 8, 9), np.uint16), metadata={"axes": "TYX"})
    expected = r"is a 2D recording \(5x8x9, axes tyx\) without a z axis"
    with pytest.raises(SourceError, match=expected):
        open_volume(path)


def test_ome_zarr_scale_and_2d_pixel_size(tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    for name, axes_meta, scale in (
        ("vol.zarr", [("z", "space", "micrometer"), ("y", "space", "micrometer"),
                      ("x", "space", "micrometer")], [1.5, 0.3, 0.3]),
        ("movie.zarr", [("t", "time", "second"), ("y", "space", "micrometer"),
                        ("x", "space", "micrometer")], [1.0, 0.3, 0.3]),
    ):
        group = zarr.open_group(tmp_path / name, mode="w")
        group.create_array("0", data=data)
        group.attrs["ome"] = {"version": "0.5", "multiscales": [{
            "axes": [{"name": n, "type": t, "unit": u} for n, t, u in axes_meta],
            "datasets": [{"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": scale}]}]}]}
    with open_source(tmp_path / "vol.zarr") as vol:
        assert isinstance(vol, ZarrVolumeSource)
        assert vol.geometry.spacing == (1.0, 1.5, 0.3, 0.3)
        assert vol.geometry.units == (None, "µm", "µm", "µm")
        np.testing.assert_array_equal(vol.read_slice(0, 2), data[2])
    with open_source(tmp_path / "movie.zarr") as movie:
        assert isinstance(movie, ZarrSource)
        assert movie.geometry.axes == "tyx" and movie.geometry.scale == (1.0, 0.3, 0.3)
        assert movie.geometry.units == ("s", "µm", "µm")


def test_numpy_and_dask_arrays_with_axes(tmp_path):
    import dask.array as da

    data = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    with open_source(data, axes="tzyx") as vol:
        assert isinstance(vol, VolumeSource) and vol.shape == (2, 3, 4, 5)
        np.testing.assert_array_equal(vol.read_slice(1, 2), data[1, 2])
    lazy = da.from_array(data, chunks=(1, 1, 4, 5))
    with open_source(lazy, axes="TZYX", window="mr-auto") as vol:
        np.testing.assert_array_equal(vol.read_slice(0, 1), data[0, 1])
        assert vol.window.preset == "mr-auto"
    yxz = np.moveaxis(data[0], 0, -1)  # (y, x, z)
    with open_source(yxz, axes="yxz") as vol:
        np.testing.assert_array_equal(vol.read_slice(0, 2), data[0, 2])
    assert open_source(data[:, 0]).geometry.axes == "tyx"  # 2D sources are unchanged


def test_window_preset_on_2d_data_says_presets_are_for_volumes():
    frames = np.zeros((3, 8, 8), np.uint16)
    with pytest.raises(SourceError) as err:
        open_source(frames, window="ct-lung")
    message = str(err.value)
    assert "'ct-lung' applies to volumes" in message and "(low, high)" in message
    assert "\n" not in message and "unpack" not in message


class _FailingStore:
    """An array-like whose reads fail: with a SourceError of its own, or any other error."""

    shape, dtype, ndim = (3, 4, 5), np.dtype(np.uint16), 3

    def __init__(self, error):
        self.error = error

    def __getitem__(self, key):
        raise self.error


def test_read_failures_of_a_volume_are_one_line_not_wrapped_twice():
    with ArrayVolumeSource(_FailingStore(SourceError("store x: chunk 2 is missing")), "ZYX",
                           window=(0, 1)) as vol:
        with pytest.raises(SourceError) as info:
            vol.read_slice(0, 1)
        assert str(info.value) == "store x: chunk 2 is missing"
    with ArrayVolumeSource(_FailingStore(OSError("disk gone")), "ZYX", window=(0, 1)) as vol:
        with pytest.raises(SourceError, match=r"cannot read slice \(t=0, z=2\): disk gone$"):
            vol.read_slice(0, 2)


# -- where volumes meet 2D code ----------------------------------------------------------------


def test_2d_code_paths_refuse_a_volume_in_one_line(tmp_path):
    """Volumes are tracked by ``track`` with a path (tests/test_volume_tracking.py); what needs
    an open 2D project or frames refuses them with one line."""
    from napari_sam2_track.pipeline import open_or_create_store

    vol = open_source(np.zeros((4, 8, 8), np.uint8), axes="zyx")
    with pytest.raises(SourceError) as err:
        open_or_create_store(tmp_path / "out.zarr", vol)
    message = str(err.value)
    assert "an open project (the napari session, --segments) needs a 2D time-lapse" in message
    assert "napari-sam2-track track VOLUME" in message and "\n" not in message
    with pytest.raises(SourceError, match="needs a 2D time-lapse"):
        len(vol)
    assert not (tmp_path / "out.zarr").exists()


def test_cli_track_refuses_a_volume_prompt_without_z_in_one_line(tmp_path, capsys):
    import json

    from napari_sam2_track.cli import main

    path = _nifti(tmp_path / "v.nii.gz", np.zeros((8, 8, 4), np.uint8))
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"objects": [{"id": 1}], "prompts": [
        {"object": 1, "frame": 0, "points": [[2, 2]], "labels": [1]}]}))
    code = main(["track", str(path), "--prompts", str(prompts), "--out", str(tmp_path / "o.zarr")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert "has no 'z' but the input is a volume of 4 slices" in err
    assert not (tmp_path / "o.zarr").exists()


def test_napari_reader_opens_volumes_lazily_with_scale(volumes, tmp_path):
    from napari_sam2_track._napari_io import VolumeArray, get_tiff_reader, get_volume_reader

    path = str(volumes / "example4d.nii.gz")
    [(data, kwargs, kind)] = get_volume_reader(path)(path)
    assert kind == "image" and isinstance(data, VolumeArray) and data.shape == (2, 24, 96, 128)
    assert kwargs["scale"] == pytest.approx((1.0, 2.2, 2.0, 2.0), abs=1e-5)
    assert kwargs.get("axis_labels", ("t", "z", "y", "x")) == ("t", "z", "y", "x")
    expected = nib.load(path).get_fdata()
    np.testing.assert_array_equal(data[1, 5], expected[:, :, 5, 1].T)
    np.testing.assert_array_equal(data[0, :, 10], expected[:, 10, :, 0].T)
    np.testing.assert_array_equal(data[-1, 2:4, ::3, 7], expected[7, ::3, 2:4, 1].T)
    tif = tmp_path / "z.ome.tif"
    tifffile.imwrite(tif, np.zeros((3, 4, 5), np.uint8), ome=True, metadata={"axes": "ZYX"})
    [(data, kwargs, _)] = get_tiff_reader(str(tif))(str(tif))
    assert data.shape == (3, 4, 5) and kwargs["metadata"]["napari_sam2_track"]["kind"] == "volume"
    assert get_volume_reader(str(tmp_path)) is None  # a folder without DICOM files


def test_manifest_and_napari_accept_the_volume_layer(tmp_path):
    from pathlib import Path

    from napari.layers import Layer
    from npe2 import PluginManager, PluginManifest

    import napari_sam2_track
    from napari_sam2_track._napari_io import get_volume_reader

    manifest = Path(napari_sam2_track.__file__).parent / "napari.yaml"
    pm = PluginManager()
    pm.register(PluginManifest.from_file(manifest))

    def readers(path):
        return {r.command for r in pm.iter_compatible_readers([str(path)])}

    dicom = tmp_path / "ct"
    from test_volumes_dicom import write_series

    write_series(dicom, n=3)
    for path in (tmp_path / "a.nii.gz", tmp_path / "B.NII", dicom):
        assert "napari-sam2-track.get_volume_reader" in readers(path)
    [layer_data] = get_volume_reader(str(dicom))(str(dicom))
    layer = Layer.create(*layer_data)
    assert tuple(layer.scale) == (2.5, 0.5, 0.75)
    assert tuple(layer.axis_labels) == ("z", "y", "x")
    assert layer.extent.data[1].tolist() == [2, 5, 7]
