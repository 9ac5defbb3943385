"""Bad input that used to end in a traceback or be accepted silently: one line each, nothing lost."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from napari_sam2_track.cli import main
from napari_sam2_track.cli._registry import EXIT_USER_ERROR
from napari_sam2_track.project import ProjectStore
from napari_sam2_track.prompts import ObjectSpec

from test_store import disc, write_frame


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def overlapping(tmp_path) -> Path:
    """Object 2 lies inside object 1 on frames 0-4 of 6: every frame has an overlap layer."""
    with ProjectStore.create(tmp_path / "p.zarr", num_frames=6, height=20, width=24) as store:
        store.set_objects([ObjectSpec(id=1), ObjectSpec(id=2)])
        for t in range(5):
            write_frame(store, t, {1: disc(20, 24, 16, 12, 5), 2: disc(20, 24, 16, 12, 3)})
    return tmp_path / "p.zarr"


# ------------------------------------------------------------------ damaged masks under review
@pytest.mark.parametrize("chunk, name, frame", [
    ("overlaps/1/c/4/0/0", "overlaps/1", 4),
    ("labels/masklets/0/c/3/0/0", "labels/masklets/0", 3),
])
@pytest.mark.parametrize("garbage", [b"", b"\x00" * 7 + os.urandom(57)], ids=["empty", "random"])
def test_review_names_the_damaged_mask_chunk_in_one_line(overlapping, capsys, chunk, name, frame, garbage):
    (overlapping / chunk).write_bytes(garbage)
    code, _, err = cli(capsys, "review", overlapping)
    line = one_error_line(err)
    assert code == EXIT_USER_ERROR
    assert f"is damaged: {name} cannot be read at frame {frame}" in line and "re-track" in line
