"""Broken inputs of every kind through the real ``track`` command.

For each input kind (videos, TIFF stacks, image folders, prompts JSON, schema YAML/JSON,
checkpoints and model configs) broken inputs are generated (truncation at many offsets, random
bytes, wrong types, hostile documents) and run through ``napari-sam2-track track`` in-process.
Every run must exit with status 2, print exactly one line (``error: ...``, no traceback), and
leave the output directory, which holds an existing project replaced only with ``--overwrite``,
unchanged byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_sam2_track.cli import main

from conftest import make_blob_video

av = pytest.importorskip("av")
tifffile = pytest.importorskip("tifffile")

N_FRAMES, H, W = 6, 48, 64

FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

GOOD_PROMPTS = {
    "objects": [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}],
    "prompts": [
        {"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
        {"object": 2, "frame": 2, "box": [40, 10, 60, 30]},
    ],
}


# -- fixtures -----------------------------------------------------------------------------------


def _frames() -> np.ndarray:
    return make_blob_video(N_FRAMES, H, W)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Valid inputs (video, prompts, schema) and a broken checkpoint, made once."""
    folder = tmp_path_factory.mktemp("inputs")
    video = folder / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.gop_size = 3
        for frame in _frames():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    mkv = folder / "clip.mkv"
    with av.open(str(mkv), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for frame in _frames():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    prompts = folder / "prompts.json"
    prompts.write_text(json.dumps(GOOD_PROMPTS))
    schema = folder / "schema.yaml"
    schema.write_text("name: cells\ncategories:\n  - name: object\n")
    broken_model = folder / "broken.pt"
    broken_model.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    return {"video": video, "mkv": mkv, "prompts": prompts, "schema": schema, "model": broken_model}


@pytest.fixture
def outdir(tmp_path) -> Path:
    """A folder holding an existing project (empty, as ``track`` creates it) and a note."""
    from napari_sam2_track.project import ProjectStore

    out = tmp_path / "out"
    out.mkdir()
    ProjectStore.create(out / "p.zarr", num_frames=N_FRAMES, height=H, width=W, source={})
    (out / "notes.txt").write_text("keep me")
    return out


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a hash of its bytes."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            state[os.path.relpath(os.path.join(root, name), folder) + "/"] = "dir"
        for name in files:
            path = os.path.join(root, name)
            state[os.path.relpath(path, folder)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return state


def refused(args: list, outdir: Path, capsys) -> str:
    """Run ``track`` with ``args``; assert it failed with one line and changed nothing."""
    before = snapshot(outdir)
    code = main([str(a) for a in ["track", *args, "--out", outdir / "p.zarr", "--overwrite",
                                  "--device", "cpu", "--quiet"]])
    captured = capsys.readouterr()
    text = captured.err + captured.out
    lines = text.strip().splitlines()
    assert code == 2, text
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text
    assert len(lines[0]) < 1000, f"{len(lines[0])} characters"
    assert snapshot(outdir) == before
    return lines[0]


def track_args(inputs, **replace) -> list:
    """``VIDEO --prompts P --model M``, with some inputs replaced by broken ones."""
    paths = {k: replace.get(k, inputs[k]) for k in ("video", "prompts", "model")}
    args = [paths["video"], "--prompts", paths["prompts"], "--model", paths["model"]]
    if "schema" in replace:
        args += ["--schema", replace["schema"]]
    return args + list(replace.get("extra", []))


def write_unique(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to a fresh path under ``folder`` (hypothesis reuses the test's tmp_path)."""
    digest = hashlib.sha256(data).hexdigest()[:12]
    path = folder / digest / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


# -- videos -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["video", "mkv"])
def test_truncated_videos(inputs, outdir, tmp_path, capsys, kind):
    data = inputs[kind].read_bytes()
    for size in sorted({0, 1, 64, *(int(len(data) * f) for f in np.linspace(0.05, 0.97, 14))}):
        cut = write_unique(tmp_path, f"cut{inputs[kind].suffix}", data[:size])
        line = refused(track_args(inputs, video=cut), outdir, capsys)
        # a cut file is refused for what it is, never opened as a shorter video
        assert str(cut) in line, line


@FUZZ
@given(st.binary(min_size=0, max_size=4000), st.sampled_from([".mp4", ".mov", ".avi", ".mkv"]))
def test_random_bytes_with_a_video_suffix(inputs, outdir, tmp_path, capsys, data, suffix):
    junk = write_unique(tmp_path, f"junk{suffix}", data)
    assert str(junk) in refused(track_args(inputs, video=junk), outdir, capsys)


# -- TIFF ---------------------------------------------------------------------------------------


def _stack() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4000, (N_FRAMES, H, W)).astype(np.uint16)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_truncated_tiffs(inputs, outdir, tmp_path, capsys, compression):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, _stack(), compression=compression)
    data = full.read_bytes()
    cut_anywhere = 0
    for size in sorted({0, 1, 8, 200, *(int(len(data) * f) for f in np.linspace(0.05, 0.95, 12))}):
        cut = write_unique(tmp_path, "cut.tif", data[:size])
        line = refused(track_args(inputs, video=cut), outdir, capsys)
        cut_anywhere += str(cut) in line
    assert cut_anywhere == 16  # each is refused for the TIFF itself


@FUZZ
@given(st.binary(min_size=0, max_size=3000))
def test_random_bytes_with_a_tiff_suffix(inputs, outdir, tmp_path, capsys, data):
    junk = write_unique(tmp_path, "junk.tif", b"II*\x00" + data)
    assert str(junk) in refused(track_args(inputs, video=junk), outdir, capsys)


def test_tiffs_of_several_series_one_pixel_and_mixed_sizes(inputs, outdir, tmp_path, capsys):
    stack = _stack()
    per_frame = tmp_path / "per_frame.tif"
    with tifffile.TiffWriter(per_frame) as w:
        for frame in stack:
            w.write(frame)
    # all 6 frames are read: a prompt on frame 5 is accepted, and the run stops at the model
    prompts = tmp_path / "late.json"
    prompts.write_text(json.dumps({"objects": [{"id": 1}],
                                   "prompts": [{"object": 1, "frame": 5, "points": [[3, 3]], "labels": [1]}]}))
    line = refused(track_args(inputs, video=per_frame, prompts=prompts), outdir, capsys)
    assert "broken.pt" in line, line
    mixed = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(mixed) as w:
        w.write(stack[0])
        w.write(stack[1][:20])
    assert "series 1 holds 64x20 frames" in refused(track_args(inputs, video=mixed), outdir, capsys)
    pixel = tmp_path / "pixel.tif"
    tifffile.imwrite(pixel, np.ones((1, 1), np.uint16))
    assert "outside the 1x1 frame" in refused(track_args(inputs, video=pixel), outdir, capsys)


# -- image folders ------------------------------------------------------------------------------


def _png_folder(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    from PIL import Image

    folder.mkdir()
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(np.full((h, w, 3), 30 * i, np.uint8)).save(folder / f"{i:05d}.png")
    return folder


def test_broken_image_folders(inputs, outdir, tmp_path, capsys):
    mixed = _png_folder(tmp_path / "mixed", [(H, W)] * 3 + [(H, W - 1)] + [(H, W)] * 2)
    assert "00003.png: image is 63x48" in refused(track_args(inputs, video=mixed), outdir, capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images found" in refused(track_args(inputs, video=empty), outdir, capsys)
    junk = _png_folder(tmp_path / "junk", [(H, W)] * N_FRAMES)
    (junk / "00002.png").write_bytes(os.urandom(500))
    assert "00002.png" in refused(track_args(inputs, video=junk), outdir, capsys)
    cut = _png_folder(tmp_path / "cut", [(H, W)] * N_FRAMES)
    last = cut / f"{N_FRAMES - 1:05d}.png"
    last.write_bytes(last.read_bytes()[:60])
    assert last.name in refused(track_args(inputs, video=cut), outdir, capsys)
    broken = _png_folder(tmp_path / "broken", [(H, W)] * N_FRAMES)
    (broken / "00006.png").symlink_to(tmp_path / "gone.png")
    assert "broken link" in refused(track_args(inputs, video=broken), outdir, capsys)
    if os.geteuid() != 0:  # root reads anything
        locked = _png_folder(tmp_path / "locked", [(H, W)] * N_FRAMES)
        (locked / "00001.png").chmod(0)
        assert "ermission denied" in refused(track_args(inputs, video=locked), outdir, capsys)


# -- prompts JSON -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(
    st.sampled_from(["objects", "prompts", "id", "frame", "points", "labels", "box", "mask", "version"]),
    json_values,
)
def test_prompts_with_wrong_types(inputs, outdir, tmp_path, capsys, field, value):
    doc = json.loads(json.dumps(GOOD_PROMPTS))
    if field in ("objects", "prompts", "version"):
        doc[field] = value
    elif field == "id":
        doc["objects"][0]["id"] = value
    else:
        doc["prompts"][0][field] = value
    path = write_unique(tmp_path, "prompts.json", json.dumps(doc).encode())
    line = refused(track_args(inputs, prompts=path), outdir, capsys)
    assert "prompts.json" in line or "broken.pt" in line


@FUZZ
@given(st.binary(max_size=600))
def test_prompts_of_random_bytes(inputs, outdir, tmp_path, capsys, data):
    path = write_unique(tmp_path, "prompts.json", data)
    assert "prompts.json" in refused(track_args(inputs, prompts=path), outdir, capsys)


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("not-utf8", "is not UTF-8 text"),
        ("deep", "nested too deeply"),
        ("huge-int", "more digits than any valid value"),
        ("huge-frame", "frame"),
        ("duplicate", "object 1 has more than one prompt on frame 0"),
        ("mask-dir", "is a directory"),
        ("mask-not-image", "is not a readable image"),
        ("unknown-ids", "... and 2,990 more"),
        ("directory", "is a directory"),
        ("missing", "not found"),
    ],
)
def test_hostile_prompt_files(inputs, outdir, tmp_path, capsys, case, match):
    path = tmp_path / "prompts.json"
    point = {"object": 1, "frame": 0, "points": [[5, 5]], "labels": [1]}
    if case == "not-utf8":
        path.write_bytes(b'{"objects": [{"id": 1, "name": "\xff\xfe"}], "prompts": []}')
    elif case == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif case == "huge-int":
        path.write_text('{"objects": [{"id": ' + "7" * 5000 + "}]}")
    elif case == "huge-frame":
        path.write_text(json.dumps({"objects": [{"id": 1}], "prompts": [{**point, "frame": 10**4000}]}))
    elif case == "duplicate":
        path.write_text(json.dumps({"objects": [{"id": 1}], "prompts": [point, {**point, "points": [[9, 9]]}]}))
    elif case in ("mask-dir", "mask-not-image"):
        if case == "mask-dir":
            (tmp_path / "masks").mkdir()
        else:
            (tmp_path / "masks").write_bytes(os.urandom(300))
        path.write_text(json.dumps({"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "mask": "masks"}]}))
    elif case == "unknown-ids":
        objects = [{"id": i} for i in range(1, 3_001)]
        path.write_text(json.dumps({"objects": objects, "prompts": [{**point, "object": 3_001}]}))
    elif case == "directory":
        path.mkdir()
    line = refused(track_args(inputs, prompts=path), outdir, capsys)
    assert match in line, line
    assert len(line) < 600, len(line)


# -- schema YAML / JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("s.yaml", b"name: \xff\xfe\n", "not UTF-8"),
        ("s.yaml", b"!!python/object/apply:os.system ['touch {witness}']\n", "is refused"),
        ("s.yaml", b"name: !!python/name:os.system\n", "is refused"),
        ("s.yaml", b"a: " + b"[" * 1100 + b"]" * 1100, "nested too deeply"),
        ("s.json", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        ("s.yaml", b"min_visible_pixels: " + b"9" * 5000, "more digits"),
        ("s.json", b'{"min_visible_pixels": ' + b"9" * 5000 + b"}", "more digits"),
        ("s.yaml", b"min_visible_pixels: 0x" + b"f" * 3000, "less than or equal"),
        ("s.yaml", b"categories: 5\n", "categories"),
        ("s.yaml", b"- 1\n- 2\n", "expected a mapping"),
        ("s.json", b'{"' + b"k" * 100_000 + b'": 1}', "more characters"),
    ],
    ids=["not-utf8", "python-apply", "python-name", "deep-yaml", "deep-json", "huge-int-yaml",
         "huge-int-json", "huge-hex", "wrong-type", "a-list", "huge-key"],
)
def test_hostile_schema_files(inputs, outdir, tmp_path, capsys, name, text, match):
    witness = tmp_path / "ran"
    path = tmp_path / name
    path.write_bytes(text.replace(b"{witness}", str(witness).encode()))
    line = refused(track_args(inputs, schema=path), outdir, capsys)
    assert match in line and name in line, line
    assert not witness.exists()


@FUZZ
@given(st.text(max_size=200))
def test_schema_of_random_text(inputs, outdir, tmp_path, capsys, text):
    path = write_unique(tmp_path, "schema.yaml", text.encode("utf-8", "surrogatepass"))
    line = refused(track_args(inputs, schema=path), outdir, capsys)
    assert "schema.yaml" in line or "broken.pt" in line


# -- checkpoints and model options --------------------------------------------------------------


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> bytes:
    import torch

    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    torch.save({"model": {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(96, 3, 7, 7)}}, path)
    return path.read_bytes()


def test_truncated_checkpoints(inputs, outdir, tmp_path, capsys, small_checkpoint):
    data = small_checkpoint
    for size in sorted({0, 1, 30, *(int(len(data) * f) for f in np.linspace(0.02, 0.999, 14))}):
        cut = write_unique(tmp_path, "model.pt", data[:size])
        line = refused(track_args(inputs, model=cut), outdir, capsys)
        assert str(cut) in line and ("empty file" in line or "not a complete PyTorch" in line), line


@FUZZ
@given(st.binary(min_size=1, max_size=3000))
def test_checkpoints_of_random_bytes(inputs, outdir, tmp_path, capsys, data):
    path = write_unique(tmp_path, "model.pt", data)
    assert "not a complete PyTorch checkpoint" in refused(track_args(inputs, model=path), outdir, capsys)


def test_checkpoint_directory_and_bad_model_options(inputs, outdir, tmp_path, capsys, small_checkpoint):
    folder = tmp_path / "model.pt"
    folder.mkdir()
    assert "is a directory" in refused(track_args(inputs, model=folder), outdir, capsys)
    ckpt = tmp_path / "small.pt"
    ckpt.write_bytes(small_checkpoint)
    for size in ("7", "-256", "0", "1000"):
        line = refused(track_args(inputs, model=ckpt, extra=["--image-size", size]), outdir, capsys)
        assert f"image size {size} (--image-size)" in line and "multiple of 32" in line
    witness = tmp_path / "ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"model: !!python/object/apply:os.system ['touch {witness}']\n")
    line = refused(track_args(inputs, model=ckpt, extra=["--config", config]), outdir, capsys)
    assert "evil.yaml is refused" in line
    config.write_text("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  image_encoder:\n"
                      f"    _target_: os.system\n    command: touch {witness}\n")
    line = refused(track_args(inputs, model=ckpt, extra=["--config", config]), outdir, capsys)
    assert "may only build sam2 classes" in line
    assert not witness.exists()


# -- the real command: nothing printed besides the error line -----------------------------------


def test_real_process_prints_one_line(inputs, tmp_path):
    """tifffile logs what it finds wrong in a damaged file; the command still prints one line."""
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, _stack(), compression="zlib")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:3000])
    out = tmp_path / "p.zarr"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run(
        [sys.executable, "-m", "napari_sam2_track.cli", "track", *map(str, track_args(inputs, video=cut)),
         "--out", str(out), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "cut.tif is damaged or truncated" in lines[0]
    assert not out.exists()
