"""Broken inputs for every importer: exit status 2, exactly one line without a traceback, and the
output folder unchanged byte for byte (no partial project).

Inputs are valid exports broken on purpose: random bytes, truncation at many offsets, wrong JSON
types (hypothesis, with few examples so the suite stays fast), and named cases (empty folders,
mixed frame sizes, RGB masks, a 1x1 TIFF). Most run ``main()`` in-process; a few run the
command in a real process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from napari_sam2_track.cli import main
from napari_sam2_track.formats import export

from test_export import build_project
from test_import import sav_json

SRC = Path(__file__).resolve().parents[1] / "src"
FEW = settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def tree(path: Path) -> dict[str, bytes]:
    path = Path(path)
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    """A valid input per importer, exported from a small project."""
    root = tmp_path_factory.mktemp("samples")
    project = root / "p.zarr"
    build_project(project, n_frames=4, size=(32, 32))
    out = {}
    for fmt, name in [("tiff", "l.tif"), ("mots", "m.txt"), ("youtube-vis", "v.json"), ("cvat", "c.xml"),
                      ("ctc", "ctc"), ("davis", "davis"), ("sav", "sav"), ("ome-zarr", "o.ome.zarr")]:
        out[fmt] = export(project, fmt, root / name)
    out["sav-json"] = sav_json(root / "s.json", 3, frame_count=9)
    return out


def refused(argv: list, *needles: str) -> str:
    """Run the command in-process inside a fresh folder; assert the refusal contract."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        (work / "keep.txt").write_text("unrelated file\n")
        before = tree(work)
        inputs = [Path(a) for a in argv if isinstance(a, Path)]
        inputs_before = [tree(p) for p in inputs]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv] + ["--out", str(work / "new.zarr")])
        out, err = out.getvalue(), err.getvalue()
        assert rc == 2, (rc, out, err)
        assert out == "", out
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
        for needle in needles:
            assert needle in err, err
        assert tree(work) == before  # no project, no temporary, nothing else
        assert [tree(p) for p in inputs] == inputs_before
        return err


def copy_input(src: Path, dest_dir: Path) -> Path:
    dest = dest_dir / src.name
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copy(src, dest)
    return dest


#: The file of each folder format that the fuzz cases break.
def member(folder: Path, fmt: str) -> Path:
    pattern = {"ctc": "mask*.tif", "davis": "Annotations/*/00001.png", "sav": "*/002/00001.png",
               "ome-zarr": "labels/masklets/0/c/1/0/0"}[fmt]
    return sorted(folder.glob(pattern))[0]


FILE_FORMATS = ["tiff", "mots", "youtube-vis", "sav-json", "cvat"]
FOLDER_FORMATS = ["ctc", "davis", "sav", "ome-zarr"]


def command(fmt: str, path: Path) -> list:
    return ["import", path, "--format", fmt]


# --------------------------------------------------------------------------- random bytes
@pytest.mark.parametrize("fmt", FILE_FORMATS + FOLDER_FORMATS)
def test_random_bytes(samples, fmt):
    @FEW
    @given(data=st.binary(max_size=3000))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            path = copy_input(samples[fmt], Path(tmp))
            target = path if path.is_file() else member(path, fmt)
            target.write_bytes(data)
            refused(command(fmt, path))

    check()


# ----------------------------------------------------------------------------- truncation
def complete_prefix_lengths(content: bytes, fmt: str) -> set[int]:
    """Prefix lengths that are still complete inputs: the document without its trailing
    whitespace, and for MOTS every prefix that ends a line, with or without its newline (a
    shorter, valid file)."""
    valid = set(range(len(content.rstrip()), len(content) + 1))
    if fmt == "mots":
        valid |= {i + k for i, b in enumerate(content) if b == ord("\n") for k in (0, 1)}
    return valid


@pytest.mark.parametrize("fmt", FILE_FORMATS + FOLDER_FORMATS)
def test_truncation(samples, fmt):
    src = samples[fmt] if samples[fmt].is_file() else member(samples[fmt], fmt)
    content = src.read_bytes()
    if src.suffix == ".png":
        # PIL decodes a PNG whose pixel data is complete (up to the zlib checksum that ends
        # the last IDAT chunk) without complaint: those prefixes hold the whole image.
        idat = content.rindex(b"IDAT")
        content = content[: idat + 4 + int.from_bytes(content[idat - 4 : idat], "big") - 4]
    valid = complete_prefix_lengths(content, fmt)

    @FEW
    @given(cut=st.integers(0, len(content) - 1))
    def check(cut):
        assume(cut not in valid)
        with tempfile.TemporaryDirectory() as tmp:
            path = copy_input(samples[fmt], Path(tmp))
            target = path if path.is_file() else member(path, fmt)
            target.write_bytes(content[:cut])
            refused(command(fmt, path))

    check()


def test_truncated_track_file(samples):
    content = (samples["ctc"] / "res_track.txt").read_bytes()
    for cut in range(0, len(content) - 1, 3):
        with tempfile.TemporaryDirectory() as tmp:
            path = copy_input(samples["ctc"], Path(tmp))
            (path / "res_track.txt").write_bytes(content[:cut])
            refused(command("ctc", path))


# ------------------------------------------------------------------------------ wrong types
WRONG = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=6),
                  st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))

JSON_FIELDS = {
    "youtube-vis": [("videos",), ("annotations",), ("videos", 0, "height"), ("videos", 0, "width"),
                    ("videos", 0, "length"), ("annotations", 0, "segmentations"), ("annotations", 0, "id"),
                    ("annotations", 1, "segmentations", 1), ("annotations", 0, "segmentations", 0, "counts"),
                    ("annotations", 0, "segmentations", 0, "size")],
    "sav-json": [("masklet",), ("masklet", 0), ("masklet_id",), ("video_height",), ("video_width",),
                 ("video_frame_count",), ("masklet", 1, 0), ("masklet", 1, 0, "counts"), ("masklet", 0, 1, "size")],
}


#: SA-V counts, which the release writes as floats (``848.0``).
SAV_COUNTS = {("video_height",), ("video_width",), ("video_frame_count",)}

#: Fields where null is valid: an optional frame count, an object absent on a frame.
MAY_BE_NULL = {("video_frame_count",), ("annotations", 1, "segmentations", 1), ("masklet", 1, 0)}


@pytest.mark.parametrize("fmt", sorted(JSON_FIELDS))
def test_wrong_types(samples, fmt):
    doc = json.loads(samples[fmt].read_text())

    @FEW
    @given(where=st.sampled_from(JSON_FIELDS[fmt]), value=WRONG)
    def check(where, value):
        data = json.loads(json.dumps(doc))
        node = data
        for key in where[:-1]:
            node = node[key]
        old = node[where[-1]]
        assume(old is not None and value != old)
        assume(value is not None or where not in MAY_BE_NULL)
        # SA-V's release writes its counts as floats: a whole float is a valid count
        assume(not (where in SAV_COUNTS and isinstance(value, float) and value.is_integer()))
        node[where[-1]] = value
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / samples[fmt].name
            path.write_text(json.dumps(data))
            refused(command(fmt, path))

    check()


# ------------------------------------------------------------------------------ named cases
@pytest.mark.parametrize("fmt", ["mots", "sav-json", "ctc", "davis", "sav", "tiff", "cvat", "youtube-vis"])
def test_empty_folder(tmp_path, fmt):
    folder = tmp_path / "empty"
    folder.mkdir()
    refused(command(fmt, folder))


def test_empty_folder_without_format(tmp_path):
    (tmp_path / "empty").mkdir()
    refused(["import", tmp_path / "empty"], "pass --format")


def test_empty_files(tmp_path):
    for fmt, name in [("mots", "m.txt"), ("sav-json", "s.json"), ("youtube-vis", "v.json"), ("cvat", "c.xml"),
                      ("tiff", "l.tif")]:
        (tmp_path / name).write_bytes(b"")
        refused(command(fmt, tmp_path / name))


def test_mixed_frame_sizes(tmp_path, samples):
    import tifffile
    from PIL import Image

    from napari_sam2_track.formats.davis import save_palette_png

    davis = copy_input(samples["davis"], tmp_path)
    save_palette_png(member(davis, "davis"), np.ones((20, 30), np.uint8))
    refused(command("davis", davis), "same size")
    sav = copy_input(samples["sav"], tmp_path)
    Image.fromarray(np.ones((20, 30), np.uint8)).save(member(sav, "sav"))
    refused(command("sav", sav), "same size")
    ctc = copy_input(samples["ctc"], tmp_path)
    tifffile.imwrite(member(ctc, "ctc"), np.ones((20, 30), np.uint16))
    refused(command("ctc", ctc), "same size")
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tw:
        tw.write(np.ones((32, 32), np.uint16))
        tw.write(np.ones((20, 30), np.uint16))
    refused(command("tiff", tmp_path / "mixed.tif"), "same size")


def test_rgb_masks(tmp_path, samples):
    import tifffile
    from PIL import Image

    davis = copy_input(samples["davis"], tmp_path)
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8), mode="RGB").save(member(davis, "davis"))
    refused(command("davis", davis), "RGB")
    ctc = copy_input(samples["ctc"], tmp_path)
    tifffile.imwrite(member(ctc, "ctc"), np.ones((32, 32, 3), np.uint8), photometric="rgb")
    refused(command("ctc", ctc))
    tifffile.imwrite(tmp_path / "rgb.tif", np.ones((4, 32, 32, 3), np.uint8), photometric="rgb")
    refused(command("tiff", tmp_path / "rgb.tif"), "RGB")


def test_one_pixel_tiff(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "one.tif", np.zeros((1, 1), np.uint8))
    refused(command("tiff", tmp_path / "one.tif"), "found no objects")
    tifffile.imwrite(tmp_path / "float.tif", np.ones((1, 1), np.float32))
    refused(command("tiff", tmp_path / "float.tif"), "not integer labels")


def test_hostile_sizes(tmp_path):
    """Sizes declared far beyond any real annotation are refused before anything is allocated."""
    (tmp_path / "m.txt").write_text("1 2001 2 1000000 1000000 abc\n")
    refused(command("mots", tmp_path / "m.txt"))
    doc = {"video_height": 10**6, "video_width": 10**6, "masklet": [[None]], "masklet_id": [0]}
    (tmp_path / "s.json").write_text(json.dumps(doc))
    refused(command("sav-json", tmp_path / "s.json"), "beyond what can be imported")


# --------------------------------------------------------------------- real processes
@pytest.mark.parametrize("fmt", ["tiff", "sav-json", "davis"])
def test_random_bytes_in_a_real_process(samples, tmp_path, fmt):
    path = copy_input(samples[fmt], tmp_path)
    target = path if path.is_file() else member(path, fmt)
    target.write_bytes(np.random.default_rng(7).bytes(777))
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", "import", str(path), "--format", fmt,
                        "--out", str(work / "new.zarr")], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(SRC)})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert list(work.iterdir()) == []
