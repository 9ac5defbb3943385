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


# ------------------------------------------------------------------ review logs
@pytest.fixture
def reviewed(tmp_path):
    from napari_sam2_track.review.analytics import log_event
    from napari_sam2_track.review.qc import approve

    from test_review_qc import synthetic_project

    store = synthetic_project(tmp_path / "r.zarr")
    approve(store, 1, 0, 4, reviewer="ann")
    approve(store, 2, 0, 3, reviewer="bob")
    log_event(store, "click", annotator="ann", object=1, frames=(2, 2), positive=True)
    store.close()
    return store.path


def _spoil(log: Path, *, insert: dict[int, bytes], tail: bytes = b"") -> None:
    lines = log.read_bytes().splitlines()
    for at, line in sorted(insert.items()):
        lines.insert(at - 1, line)
    log.write_bytes(b"\n".join(lines) + b"\n" + tail)


@pytest.mark.parametrize("command", [["review", "{p}"], ["report", "{p}"],
                                     ["export", "{p}", "--format", "coco-video", "--out", "{o}",
                                      "--approved-only"]])
def test_a_non_utf8_or_garbage_log_line_is_skipped_and_named(reviewed, tmp_path, capsys, command):
    log = "events.jsonl" if command[0] == "report" else "decisions.jsonl"
    _spoil(reviewed / "review" / log, insert={2: b'{"object": 1, "comment": "caf\xe9"}', 3: b"garbage"},
           tail=b'{"object": 2, "sta')
    code, out, err = cli(capsys, *[a.format(p=reviewed, o=tmp_path / "out.json") for a in command])
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and f"review/{log}" in warning[0]
    assert "skipped lines 2, 3" in warning[0] and "torn last line" in warning[0]
    if command[0] == "review":
        assert "satisfactory by ann" in out and "satisfactory by bob" in out


def test_a_torn_last_line_is_cut_by_the_next_append_so_pandas_reads_the_log(reviewed):
    pd = pytest.importorskip("pandas")
    from napari_sam2_track.review import read_review
    from napari_sam2_track.review.qc import reject

    log = reviewed / "review" / "decisions.jsonl"
    _spoil(log, insert={}, tail=b'{"object": 2, "start": 0, "end": 3, "sta')  # a crash in a write
    with pytest.raises(ValueError):
        pd.read_json(log, lines=True)
    reject(reviewed, 2, 6, 9, reviewer="kim")
    assert list(pd.read_json(log, lines=True)["reviewer"]) == ["ann", "bob", "kim"]
    # a whole record that lacks only its newline (written by hand) is kept and completed
    with open(log, "ab") as f:
        f.write(b'{"object":1,"start":5,"end":9,"status":"satisfactory","reviewer":"hand",'
                b'"time":"2030-01-01T00:00:00Z","comment":""}')
    assert [d.reviewer for d in read_review(reviewed).decisions][-1] == "hand"
    reject(reviewed, 1, 0, 0, reviewer="lee")
    assert list(pd.read_json(log, lines=True)["reviewer"]) == ["ann", "bob", "kim", "hand", "lee"]


def test_an_append_cut_short_by_a_full_disk_leaves_the_log_as_it_was(reviewed):
    """A real OS limit, not a mock: the file-size limit (RLIMIT_FSIZE) makes the write fail
    part-way (EFBIG), as a full disk does (ENOSPC)."""
    import subprocess
    import sys
    import textwrap

    log = reviewed / "review" / "decisions.jsonl"
    before = log.read_bytes()
    script = textwrap.dedent(f"""
        import resource, signal
        from napari_sam2_track.review.qc import reject
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = {len(before) + 20}
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            reject({str(reviewed)!r}, 2, 6, 9, reviewer="kim", comment="x" * 200, log=False)
        except OSError as exc:
            print("refused:", exc.errno, exc.filename)
    """)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.startswith("refused: 27") and str(log) in done.stdout, done.stderr
    assert log.read_bytes() == before
