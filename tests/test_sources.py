"""Tests for the lazy frame sources (napari_sam2_track.sources)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from napari_sam2_track.errors import SourceError
from napari_sam2_track.sources import FrameSource, IntensityWindow, TiffSource, open_source

av = pytest.importorskip("av")

N_FRAMES, H, W = 40, 48, 64


def _bg_value(t: int) -> int:
    """Background intensity encoding the frame number of the synthetic videos."""
    return 10 + 5 * t


def _write_video(path: Path, codec: str) -> None:
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=25)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.codec_context.gop_size = 10
    stream.bit_rate = 2_000_000  # keep the frame-number intensity readable after compression
    for t in range(N_FRAMES):
        img = np.full((H, W, 3), _bg_value(t), np.uint8)
        x = (3 * t) % (W - 8)
        img[10:18, x : x + 8] = 255
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


VIDEO_KINDS = {"mp4": "libx264", "mkv": "libx264", "mov": "libx264", "avi": "mpeg4"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    out = {}
    for ext, codec in VIDEO_KINDS.items():
        out[ext] = folder / f"clip.{ext}"
        _write_video(out[ext], codec)
    return out


@pytest.fixture(scope="module")
def reference(videos) -> dict[str, list[np.ndarray]]:
    """Frames of each video decoded strictly sequentially with plain PyAV."""
    ref = {}
    for ext, path in videos.items():
        with av.open(str(path)) as c:
            ref[ext] = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    return ref


def _frame_number(frame: np.ndarray) -> int:
    """Recover t from the background intensity (values are 5 apart; codec error is < 2.5)."""
    bg = float(np.median(frame[30:, :, :]))
    return int(np.argmin([abs(bg - _bg_value(t)) for t in range(N_FRAMES)]))


# -- video -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", list(VIDEO_KINDS))
def test_video_random_access_is_frame_accurate(videos, reference, ext):
    ref = reference[ext]
    assert len(ref) == N_FRAMES
    assert [_frame_number(f) for f in ref] == list(range(N_FRAMES))
    order = list(range(N_FRAMES))
    random.Random(1).shuffle(order)
    order += [0, N_FRAMES - 1, 0, 25, 24, 23, 9, 10, 11, 30, 5, N_FRAMES - 1]
    with open_source(videos[ext]) as src:
        assert src.kind == "video" and len(src) == N_FRAMES
        assert (src.height, src.width, src.channels, src.dtype) == (H, W, 3, np.uint8)
        src._cache_frames = 0  # force real seeks for every jump
        for t in order:
            frame = src.read(t)
            assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
            np.testing.assert_array_equal(frame, ref[t], err_msg=f"{ext} frame {t}")
        # sequential decode through the source agrees as well
        for t in range(N_FRAMES):
            np.testing.assert_array_equal(src.read(t), ref[t])


def test_video_seeks_to_nearest_keyframe_and_decodes_sequentially(videos, reference):
    calls = {"seek": 0, "restart": 0}
    with open_source(videos["mp4"]) as src:
        seek, restart = src._seek, src._restart

        def counting_seek(t_key):
            calls["seek"] += 1
            return seek(t_key)

        def counting_restart():
            calls["restart"] += 1
            return restart()

        src._seek, src._restart = counting_seek, counting_restart
        np.testing.assert_array_equal(src.read(35), reference["mp4"][35])
        assert calls == {"seek": 1, "restart": 0}  # did not decode from frame 0
        for t in range(36, N_FRAMES):  # next frames continue the running decoder
            np.testing.assert_array_equal(src.read(t), reference["mp4"][t])
        assert calls == {"seek": 1, "restart": 0}
        np.testing.assert_array_equal(src.read(2), reference["mp4"][2])
        assert calls["restart"] == 1  # first GOP: decode from the start


def test_video_seek_overshoot_steps_back_a_keyframe(videos, reference):
    with open_source(videos["mp4"]) as src:
        seek, seeks = src._seek, []

        def overshooting_seek(t_key):
            seeks.append(t_key)
            # the first seek lands one keyframe too late, as some demuxers do
            keys = src._keyframes
            return seek(keys[keys.index(t_key) + 1] if len(seeks) == 1 else t_key)

        src._seek = overshooting_seek
        keys = src._keyframes
        assert len(keys) >= 3  # gop size 10
        target = keys[2] + 2
        np.testing.assert_array_equal(src.read(target), reference["mp4"][target])
        assert seeks == [keys[2], keys[1]]


def test_video_cache_returns_read_only_arrays(videos, reference):
    with open_source(videos["mkv"]) as src:
        a = src.read(12)
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0, 0, 0] = 0
        b = src.read(12)  # served from the LRU cache
        assert b is a
        rgb = src.read_rgb(12)
        assert not rgb.flags.writeable and rgb.flags.c_contiguous
        np.testing.assert_array_equal(rgb, reference["mkv"][12])
        for t in range(20, 40):  # pushes 12 out of the 16-frame cache
            src.read(t)
        assert 12 not in src._cache and len(src._cache) == 16
        np.testing.assert_array_equal(src.read(12), reference["mkv"][12])


def test_video_concurrent_reads(videos, reference):
    errors = []
    with open_source(videos["mp4"]) as src:

        def worker(seed):
            rng = random.Random(seed)
            try:
                for _ in range(30):
                    t = rng.randrange(N_FRAMES)
                    np.testing.assert_array_equal(src.read(t), reference["mp4"][t])
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        assert not any(th.is_alive() for th in threads)
    assert errors == []


def test_video_describe_and_index_errors(videos):
    with open_source(videos["avi"]) as src:
        d = src.describe()
        json.dumps(d)
        assert d["kind"] == "video" and d["num_frames"] == N_FRAMES
        assert (d["height"], d["width"], d["channels"], d["dtype"]) == (H, W, 3, "uint8")
        assert d["fps"] == pytest.approx(25.0) and d["window"] is None and d["channel"] is None
        for bad in (-1, N_FRAMES, N_FRAMES + 5):
            with pytest.raises(IndexError):
                src.read(bad)
    with pytest.raises(SourceError, match="closed"):
        src.read(0)


def _run_with_timeout(fn, timeout=30.0):
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    assert not th.is_alive(), "reading the video hung"
    return result


@pytest.mark.parametrize("ext", list(VIDEO_KINDS))
def test_truncated_video_is_refused_at_open(videos, reference, tmp_path, ext):
    """Cut anywhere, a video is refused when opened, with one line, or it reads every frame
    exactly (nothing past the data was cut); it never opens as fewer or broken frames."""
    data = videos[ext].read_bytes()
    cut = tmp_path / f"cut.{ext}"
    refused = 0
    for size in sorted({0, 1, 100, *(int(len(data) * f) for f in np.linspace(0.05, 0.995, 24))}):
        cut.write_bytes(data[:size])
        result = _run_with_timeout(lambda: open_source(cut))
        if "error" in result:
            error = result["error"]
            assert isinstance(error, SourceError), repr(error)
            assert f"cut.{ext}" in str(error) and "\n" not in str(error)
            refused += 1
            continue
        with result["value"] as src:
            assert len(src) == N_FRAMES, size
            for t in range(N_FRAMES):
                np.testing.assert_array_equal(src.read(t), reference[ext][t])
    assert refused >= 20


def test_faststart_mp4_cut_short_is_refused(tmp_path):
    """MP4 with its index first: the index lists every frame, the data stops early."""
    path = tmp_path / "fast.mp4"
    container = av.open(str(path), "w", options={"movflags": "faststart"})
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    noise = np.random.default_rng(5).integers(0, 256, (N_FRAMES, H, W, 3), np.uint8)
    for frame in noise:
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode())
    container.close()
    data = path.read_bytes()
    cut = tmp_path / "fast_cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(SourceError, match=r"fast_cut.mp4 is truncated or damaged \(the header lists 40"):
        open_source(cut)


def test_indexed_frame_that_cannot_be_decoded_raises(videos, reference):
    with open_source(videos["mp4"]) as src:
        # pretend the index lists a frame past the end of the stream (truncated data)
        src._pts.append(src._pts[-1] + 1)
        src._pts_index[src._pts[-1]] = N_FRAMES
        src.num_frames += 1
        result = _run_with_timeout(lambda: src.read(N_FRAMES))
        assert isinstance(result.get("error"), SourceError)
        assert f"frame {N_FRAMES}" in str(result["error"])
        np.testing.assert_array_equal(src.read(7), reference["mp4"][7])  # still usable


def test_bad_video_files(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty.mp4 is an empty file"):
        open_source(empty)
    folder = tmp_path / "folder.mkv"
    folder.mkdir()
    with pytest.raises(SourceError, match="folder.mkv"):
        open_source(folder)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, np.uint8).tobytes())
    with pytest.raises(SourceError, match="cannot read video .*junk.mp4.*re-encode"):
        open_source(junk)
    with pytest.raises(SourceError, match="file not found"):
        open_source(tmp_path / "missing.mp4")
    odd = tmp_path / "clip.xyz"
    odd.write_bytes(b"x")
    with pytest.raises(SourceError, match=r"unsupported file type.*\.mp4.*\.tif"):
        open_source(odd)


# -- TIFF --------------------------------------------------------------------------------------

tifffile = pytest.importorskip("tifffile")


def _stack_u16(t=7, h=20, w=30, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, (t, h, w)).astype(np.uint16)


@pytest.fixture
def no_full_tiff_reads(monkeypatch):
    """Fail if anything reads a whole TIFF series/file instead of single frames."""

    def forbidden(*args, **kwargs):
        raise AssertionError("whole TIFF was read")

    monkeypatch.setattr(tifffile.TiffFile, "asarray", forbidden)
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", forbidden)


def test_tiff_multipage_uint16(tmp_path, no_full_tiff_reads):
    data = _stack_u16()
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data)
    with open_source(str(path)) as src:
        assert src.kind == "tiff" and src.shape == data.shape and src.dtype == np.uint16
        for t in (6, 0, 3):
            np.testing.assert_array_equal(src.read(t), data[t])
        low, high = np.percentile(data, [0.5, 99.5])
        assert src.window.low == pytest.approx(low) and src.window.high == pytest.approx(high)
        rgb = src.read_rgb(2)
        assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
        np.testing.assert_array_equal(rgb[..., 0], src.window.apply(data[2]))
        assert (rgb[..., 0] == rgb[..., 2]).all()
        assert src.describe()["axes"] in ("TYX", "QYX", "IYX")


def test_ome_tiff_channels(tmp_path, no_full_tiff_reads):
    data = np.random.default_rng(1).integers(0, 60000, (5, 2, 16, 24)).astype(np.uint16)
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "TCYX"})
    with pytest.raises(SourceError, match=r"has 2 channels; choose one with channel=K \(0\.\.1\)"):
        open_source(path)
    with open_source(path, channel=1) as src:
        assert (src.num_frames, src.channels, src.channel) == (5, 2, 1)
        np.testing.assert_array_equal(src.read(3), np.moveaxis(data[3], 0, -1))
        ch1 = data[:, 1]
        assert src.window.low == pytest.approx(np.percentile(ch1, 0.5))
        assert src.window.high == pytest.approx(np.percentile(ch1, 99.5))
        np.testing.assert_array_equal(src.read_rgb(4)[..., 1], src.window.apply(data[4, 1]))
        assert src.describe()["axes"] == "TCYX"
    with pytest.raises(SourceError, match="channel=K"):
        open_source(path, channel=2)


def test_tiff_float32_and_single_image(tmp_path):
    data = np.random.default_rng(2).normal(0, 1, (5, 10, 12)).astype(np.float32)
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, data, photometric="minisblack", metadata={"axes": "TYX"})
    with open_source(path, window=(-1.0, 1.0)) as src:
        assert src.dtype == np.float32 and src.shape == (5, 10, 12)
        np.testing.assert_array_equal(src.read(1), data[1])
        expected = np.rint(np.clip((data[1].astype(np.float64) + 1) / 2, 0, 1) * 255)
        np.testing.assert_array_equal(src.read_rgb(1)[..., 0], expected.astype(np.uint8))
    single = tmp_path / "one.tif"
    tifffile.imwrite(single, data[0])
    with open_source(single) as src:
        assert src.shape == (1, 10, 12)
        np.testing.assert_array_equal(src.read(0), data[0])


def test_tiff_z_stack_opens_as_a_volume_not_as_frames(tmp_path):
    path = tmp_path / "z.ome.tif"
    tifffile.imwrite(path, np.zeros((3, 4, 8, 8), np.uint16), ome=True, metadata={"axes": "TZYX"})
    with open_source(path) as vol:
        assert not isinstance(vol, FrameSource) and vol.shape == (3, 4, 8, 8)
    with pytest.raises(SourceError, match="z-plane"):
        TiffSource(path)


def test_tiff_written_frame_by_frame_reads_all_frames(tmp_path, no_full_tiff_reads):
    """One ``TiffWriter.write`` per frame (or per block of frames) makes one series each."""
    data = _stack_u16(t=6)
    per_frame, blocks = tmp_path / "per_frame.tif", tmp_path / "blocks.tif"
    with tifffile.TiffWriter(per_frame) as w:
        for frame in data:
            w.write(frame)
    with tifffile.TiffWriter(blocks) as w:
        w.write(data[:2], photometric="minisblack")
        w.write(data[2:], photometric="minisblack")
    for path in (per_frame, blocks):
        assert len(tifffile.TiffFile(path).series) > 1
        with open_source(path) as src:
            assert src.shape == data.shape
            for t in (5, 0, 2, 3):
                np.testing.assert_array_equal(src.read(t), data[t])
            assert src.describe()["series"] == len(tifffile.TiffFile(path).series)
    rgb = np.random.default_rng(3).integers(0, 256, (4, 8, 10, 3)).astype(np.uint8)
    rgb_path = tmp_path / "rgb.tif"
    with tifffile.TiffWriter(rgb_path) as w:
        for frame in rgb:
            w.write(frame, photometric="rgb")
    with open_source(rgb_path) as src:
        assert src.shape == rgb.shape
        np.testing.assert_array_equal(src.read(3), rgb[3])


def test_tiff_series_of_different_sizes_are_refused(tmp_path):
    data = _stack_u16(t=3)
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as w:
        w.write(data[0])
        w.write(data[1][:10])
        w.write(data[2])
    with pytest.raises(SourceError, match=r"series 1 holds 30x10 frames.*series 0 holds 30x20"):
        open_source(path)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_truncated_tiff_is_refused_at_every_offset(tmp_path, compression, caplog):
    data = _stack_u16(t=6)
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, data, compression=compression)
    raw = full.read_bytes()
    cut = tmp_path / "cut.tif"
    refused = 0
    for size in sorted({0, 1, 7, 8, 100, *range(200, len(raw), 97), len(raw) - 1}):
        cut.write_bytes(raw[:size])
        try:
            src = open_source(cut)
        except SourceError as exc:
            assert "cut.tif" in str(exc) and "\n" not in str(exc)
            refused += 1
            continue
        # what opens holds every frame, intact (only trailing metadata was cut)
        with src:
            assert src.shape == data.shape, size
            for t in range(len(src)):
                np.testing.assert_array_equal(src.read(t), data[t])
    assert refused >= 60
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]


def test_tiff_empty_directory_junk_and_single_pixel(tmp_path):
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty file"):
        open_source(empty)
    folder = tmp_path / "folder.tif"
    folder.mkdir()
    with pytest.raises(SourceError, match="folder.tif"):
        open_source(folder)
    junk = tmp_path / "junk.tiff"
    junk.write_bytes(np.random.default_rng(4).integers(0, 256, 5000, np.uint8).tobytes())
    with pytest.raises(SourceError, match="cannot read TIFF .*junk.tiff"):
        open_source(junk)
    pixel = tmp_path / "pixel.tif"
    tifffile.imwrite(pixel, np.array([[7]], np.uint16))
    with open_source(pixel) as src:
        assert src.shape == (1, 1, 1)
        assert int(src.read(0)[0, 0]) == 7


# -- zarr --------------------------------------------------------------------------------------

zarr = pytest.importorskip("zarr")


def test_zarr_v3_array(tmp_path):
    data = _stack_u16(6, 12, 14, seed=3)
    path = tmp_path / "frames.zarr"
    arr = zarr.create_array(store=str(path), shape=data.shape, chunks=(1, 12, 14), dtype="uint16")
    arr[:] = data
    with open_source(path, window=(0, 4000)) as src:
        assert src.kind == "zarr" and src.shape == data.shape
        np.testing.assert_array_equal(src.read(5), data[5])
        assert src.describe()["window"] == {"low": 0.0, "high": 4000.0}
    in_memory = open_source(zarr.open_array(str(path), mode="r"), window=(0, 4000))
    assert in_memory.kind == "array" and in_memory.shape == data.shape
    np.testing.assert_array_equal(in_memory.read(2), data[2])


def _ome_group(path: Path, data: np.ndarray, zarr_format: int) -> None:
    g = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    ms = {
        "version": "0.5" if zarr_format == 3 else "0.4",
        "axes": [
            {"name": "t", "type": "time"},
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space"},
            {"name": "x", "type": "space"},
        ],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1] * 4}]},
            {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 2, 2]}]},
        ],
    }
    if zarr_format == 3:
        g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        g.attrs["multiscales"] = [ms]
    full = g.create_array("0", shape=data.shape, chunks=(1, 1, *data.shape[2:]), dtype=data.dtype)
    full[:] = data
    half = data[:, :, ::2, ::2]
    g.create_array("1", shape=half.shape, dtype=data.dtype)[:] = half


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_ome_zarr_group(tmp_path, zarr_format):
    data = np.random.default_rng(4).integers(0, 255, (5, 3, 16, 20)).astype(np.uint8)
    path = tmp_path / "img.ome.zarr"
    _ome_group(path, data, zarr_format)
    with open_source(path) as rgb_src:  # 3 channels without channel= are taken as RGB
        assert rgb_src.channel is None
        np.testing.assert_array_equal(rgb_src.read_rgb(1), np.moveaxis(data[1], 0, -1))
    with open_source(path, channel=2) as src:
        assert (src.num_frames, src.height, src.width, src.channels) == (5, 16, 20, 3)
        np.testing.assert_array_equal(src.read(4)[..., 2], data[4, 2])
        rgb = src.read_rgb(4)
        assert src.window is None
        np.testing.assert_array_equal(rgb, np.repeat(data[4, 2][..., None], 3, axis=2))
        assert src.describe()["axes"] == "tcyx"


def test_zarr_group_without_multiscales(tmp_path):
    g = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    g.create_array("a", shape=(2, 4, 4), dtype="uint8")
    with pytest.raises(SourceError, match="multiscales"):
        open_source(tmp_path / "plain.zarr")


def test_ome_zarr_written_by_ome_zarr_package(tmp_path):
    writer = pytest.importorskip("ome_zarr.writer")
    data = _stack_u16(4, 32, 32, seed=5)
    root = zarr.open_group(str(tmp_path / "w.ome.zarr"), mode="w")
    writer.write_image(data, root, axes="tyx", scale_factors=[2])
    with open_source(tmp_path / "w.ome.zarr") as src:
        assert src.shape == data.shape
        np.testing.assert_array_equal(src.read(3), data[3])


# -- image folders -----------------------------------------------------------------------------


def test_jpeg_folder_matches_pil(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(6)
    names = ["0", "1", "2", "10", "11"]  # numeric order differs from lexicographic
    for i, name in enumerate(names):
        img = np.clip(rng.normal(40 * i + 30, 10, (24, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / f"{name}.jpg", quality=90)
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(tmp_path) as src:
        assert src.kind == "folder" and src.shape == (5, 24, 32, 3)
        for t, name in enumerate(names):
            expected = np.array(Image.open(tmp_path / f"{name}.jpg").convert("RGB"))
            np.testing.assert_array_equal(src.read(t), expected)
            np.testing.assert_array_equal(src.read_rgb(t), expected)
            assert abs(float(src.read(t).mean()) - (40 * t + 30)) < 3


def test_folder_lexicographic_sizes_and_16bit(tmp_path):
    from PIL import Image

    a = tmp_path / "lex"
    a.mkdir()
    for name, value in [("frame_b", 200), ("frame_a", 100), ("frame_c", 50)]:
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(a / f"{name}.png")
    with open_source(a) as src:
        assert [int(src.read(t)[0, 0, 0]) for t in range(3)] == [100, 200, 50]
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(a / "frame_d.png")
    with pytest.raises(SourceError, match=r"frame_d.png: image is 8x9 but frame_a.png is 8x8"):
        open_source(a)  # refused when opened, not halfway through a run
    b = tmp_path / "deep"
    b.mkdir()
    planes = np.random.default_rng(7).integers(0, 65535, (3, 10, 6)).astype(np.uint16)
    for i, p in enumerate(planes):
        Image.fromarray(p).save(b / f"{i:03d}.png")
    with open_source(b) as src:
        assert src.dtype == np.uint16 and src.channels == 1 and len(src) == 3
        np.testing.assert_array_equal(src.read(2), planes[2])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(empty)


def _gray_folder(folder: Path, n: int = 4, size=(8, 6)) -> Path:
    from PIL import Image

    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full(size, 20 * i, np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_folder_with_bad_entries_is_refused_at_open(tmp_path):
    from PIL import Image

    mixed = _gray_folder(tmp_path / "mixed")
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(mixed / "002.png")
    with pytest.raises(SourceError, match="002.png: image is 6x6 but 000.png is 6x8"):
        open_source(mixed)
    depth = _gray_folder(tmp_path / "depth")
    Image.fromarray(np.zeros((8, 6), np.uint16)).save(depth / "003.png")
    with pytest.raises(SourceError, match="003.png: mode I;16 differs"):
        open_source(depth)
    junk = _gray_folder(tmp_path / "junk")
    (junk / "001.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(SourceError, match="cannot read image .*001.png"):
        open_source(junk)
    truncated = _gray_folder(tmp_path / "truncated", size=(64, 48))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 48), np.uint8)).save(truncated / "003.png")
    raw = (truncated / "003.png").read_bytes()
    (truncated / "003.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SourceError, match="003.png"):
        open_source(truncated)
    broken = _gray_folder(tmp_path / "broken")
    (broken / "004.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(SourceError, match="004.png is a broken link"):
        open_source(broken)
    nested = _gray_folder(tmp_path / "nested")
    (nested / "004.png").mkdir()
    with pytest.raises(SourceError, match="004.png is a directory"):
        open_source(nested)
    only_text = tmp_path / "text"
    only_text.mkdir()
    (only_text / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="no images found"):
        open_source(only_text)


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not apply to root")
def test_unreadable_image_in_folder_is_refused(tmp_path):
    folder = _gray_folder(tmp_path / "locked")
    (folder / "002.png").chmod(0)
    try:
        with pytest.raises(SourceError, match="002.png: [Pp]ermission denied"):
            open_source(folder)
    finally:
        (folder / "002.png").chmod(0o644)


# -- arrays ------------------------------------------------------------------------------------


def test_numpy_rgb_uint8_passthrough():
    data = np.random.default_rng(8).integers(0, 256, (3, 5, 7, 3)).astype(np.uint8)
    src = open_source(data)
    assert src.kind == "array" and src.path is None and src.window is None
    frame = src.read(1)
    np.testing.assert_array_equal(frame, data[1])
    assert not frame.flags.writeable
    with pytest.raises(ValueError):
        frame[0, 0, 0] = 1
    assert data.flags.writeable  # the caller's array is untouched
    np.testing.assert_array_equal(src.read_rgb(2), data[2])
    gray = open_source(data[..., 0])
    np.testing.assert_array_equal(gray.read_rgb(0), np.stack([data[0, ..., 0]] * 3, axis=-1))


def test_uint16_window_mapping():
    data = np.zeros((2, 2, 4), np.uint16)
    data[0, 0] = [100, 1100, 600, 50]
    data[0, 1] = [2000, 101, 102, 1098]
    src = open_source(data, window=(100, 1100))
    assert src.window == IntensityWindow(100.0, 1100.0)
    rgb = src.read_rgb(0)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
    # low -> 0, high -> 255, 600 -> rint(127.5) = 128 (half to even), clipping outside
    assert rgb[0, :, 0].tolist() == [0, 255, 128, 0]
    assert rgb[1, :, 0].tolist() == [255, 0, 1, 254]
    auto = open_source(data)
    lo, hi = np.percentile(data, [0.5, 99.5])
    assert (auto.window.low, auto.window.high) == (pytest.approx(lo), pytest.approx(hi))


def test_intensity_window_rules():
    w = IntensityWindow(0, 510)
    assert w.apply(np.array([1, 3, 5, 510, 511, -3])).tolist() == [0, 2, 2, 255, 255, 0]
    assert w.apply(np.array([np.nan, np.inf], np.float32)).tolist() == [0, 255]
    assert IntensityWindow.from_dict(json.loads(json.dumps(w.to_dict()))) == w
    with pytest.raises(ValueError):
        IntensityWindow(5, 5)
    const = open_source(np.full((3, 4, 4), 7, np.uint16))
    assert const.window == IntensityWindow(7.0, 8.0)
    assert (const.read_rgb(0) == 0).all()
    with pytest.raises(SourceError, match="window"):
        open_source(np.zeros((2, 4, 4), np.uint16), window=(3, 1))


def test_channels_first_and_axes_override():
    data = np.random.default_rng(9).integers(0, 1000, (4, 5, 8, 9)).astype(np.int32)
    with pytest.raises(SourceError, match=r"found an array of shape \(4, 5, 8, 9\).*tcyx"):
        open_source(data)
    src = open_source(data, axes="tcyx", channel=3)
    assert (src.num_frames, src.height, src.width, src.channels) == (4, 8, 9, 5)
    np.testing.assert_array_equal(src.read(2)[..., 3], data[2, 3])
    np.testing.assert_array_equal(src.read_rgb(2)[..., 0], src.window.apply(data[2, 3]))
    with pytest.raises(SourceError, match=r"has 2 channels; choose one with channel=K \(0\.\.1\)"):
        open_source(np.zeros((3, 8, 8, 2), np.uint8))
    rgb = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    rgb_as_gray = open_source(rgb, channel=1)
    np.testing.assert_array_equal(rgb_as_gray.read_rgb(1)[..., 2], rgb_as_gray.read(1)[..., 1])


@pytest.mark.parametrize(
    "data, match",
    [
        (np.zeros((2, 3, 4, 5, 6), np.uint8), "found an array of shape"),
        (np.zeros((3,), np.uint8), "found an array of shape"),
        (np.zeros((3, 4, 4), bool), "unsupported dtype bool"),
        (np.zeros((3, 4, 4), np.complex64), "unsupported dtype complex64"),
        (np.zeros((0, 4, 4), np.uint8), "no frames"),
    ],
)
def test_invalid_arrays(data, match):
    with pytest.raises(SourceError, match=match):
        open_source(data)


def test_dask_array_reads_only_one_frame():
    da = pytest.importorskip("dask.array")
    data = _stack_u16(8, 6, 5, seed=10)

    class Recorder:
        shape, dtype, ndim = data.shape, data.dtype, data.ndim

        def __init__(self):
            self.keys = []

        def __getitem__(self, key):
            self.keys.append(key)
            return data[key]

    rec = Recorder()
    lazy = da.from_array(rec, chunks=(1, 6, 5))
    src = open_source(lazy, window=(0, 4000))

    def touched_frames():
        return {int(i) for k in rec.keys for i in np.atleast_1d(np.arange(8)[k[0]])}

    assert touched_frames() == set()  # opening (explicit window) reads no frame
    np.testing.assert_array_equal(src.read(5), data[5])
    assert touched_frames() == {5}
    np.testing.assert_array_equal(src.read_rgb(7)[..., 1], src.window.apply(data[7]))


def test_fingerprint_is_stable_and_content_sensitive(tmp_path, videos):
    data = _stack_u16(5, 8, 8, seed=11)
    path = tmp_path / "fp.tif"
    tifffile.imwrite(path, data)
    with open_source(path) as a, open_source(path) as b:
        fa = a.fingerprint()
        assert fa == b.fingerprint() and len(fa) == 64
    changed = data.copy()
    changed[-1, 0, 0] += 1
    tifffile.imwrite(path, changed)
    with open_source(path) as c:
        assert c.fingerprint() != fa
    assert open_source(data).fingerprint() != fa  # kind is part of the id
    assert open_source(data).fingerprint() == open_source(data.copy()).fingerprint()
    with open_source(videos["mp4"]) as v1, open_source(videos["mp4"]) as v2:
        v2.read(17)
        assert v1.fingerprint() == v2.fingerprint()
        # same pixels in another container give the same id; other pixels (mpeg4) do not
        assert v1.fingerprint() == open_source(videos["mkv"]).fingerprint()
        assert v1.fingerprint() != open_source(videos["avi"]).fingerprint()


def test_open_source_passthrough_and_bad_objects():
    src = open_source(np.zeros((2, 4, 4), np.uint8))
    assert open_source(src) is src
    assert isinstance(src, FrameSource)
    with pytest.raises(SourceError, match="cannot open an object of type"):
        open_source(42)


# -- real data ---------------------------------------------------------------------------------


def _data_dir() -> Path:
    env = os.environ.get("NAPARI_SAM2_TRACK_TEST_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _real(rel: str) -> Path:
    p = _data_dir() / rel
    if not p.exists():
        pytest.skip(f"real test data not available: {p}")
    return p


def test_real_video_random_access():
    path = _real("video/bedroom.mp4")
    with av.open(str(path)) as c:
        digests = [
            hashlib.sha256(f.to_ndarray(format="rgb24").tobytes()).hexdigest()
            for f in c.decode(c.streams.video[0])
        ]
    assert len(digests) == 200
    with open_source(path) as src:
        assert (len(src), src.height, src.width) == (200, 540, 960)
        src._cache_frames = 0
        for t in [150, 3, 199, 0, 120, 119, 57, 58, 180, 90]:
            assert hashlib.sha256(src.read(t).tobytes()).hexdigest() == digests[t], t


def test_real_microscopy_tiff():
    path = _real("microscopy/cells_images.tif")
    with tifffile.TiffFile(path) as tf:
        full = tf.asarray()
    with open_source(path) as src:
        assert src.shape == (6, 200, 200) and src.dtype == np.uint16
        for t in (5, 0, 3):
            np.testing.assert_array_equal(src.read(t), full[t])
        rgb = src.read_rgb(2)
        assert rgb.dtype == np.uint8 and 0 < rgb.mean() < 255
        assert rgb.max() == 255 and rgb.min() == 0
