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


# ------------------------------------------------------------------ review arguments
@pytest.fixture
def partly_tracked(tmp_path):
    """Objects 1 and 2 tracked on frames 0-9 of 14; object 3 never tracked."""
    import numpy as np

    from napari_sam2_track.project import STATE_PROPAGATED

    with ProjectStore.create(tmp_path / "t.zarr", num_frames=14, height=32, width=32) as store:
        store.set_objects([ObjectSpec(id=1), ObjectSpec(id=2), ObjectSpec(id=3)])
        for t in range(10):
            for obj in (1, 2):
                m = np.zeros((32, 32), bool)
                m[4 * obj : 4 * obj + 5, 4 + t : 10 + t] = True
                store.write_mask(obj, t, m)
                store.write_row(obj, t, m, presence=5.0, state=STATE_PROPAGATED, run=1)
            store.merge_labels(t)
    return tmp_path / "t.zarr"


def decisions(project: Path) -> list:
    from napari_sam2_track.review import read_review

    return read_review(project).decisions


@pytest.mark.parametrize("argv, message", [
    (["approve", "{p}", "1", "--frames", ""], "--frames '' is not a range like 120-480"),
    (["approve", "{p}", "1", "--frames", "8-12"], "object 1 was never tracked on frames 10-12"),
    (["reject", "{p}", "2", "--frames", "11"], "object 2 was never tracked on frames 11;"),
    (["approve", "{p}", "3"], "object 3 has no visible frames"),
    (["approve", "{p}", "3", "--frames", "0-13"], "object 3 was never tracked on frames 0-13"),
    (["approve", "{p}", "9"], "object 9 is not in t.zarr (objects: 1, 2, 3)"),
    (["approve", "{p}", "9", "--frames", "0-3"], "object 9 is not in t.zarr"),
])
def test_review_decisions_on_what_does_not_exist_are_refused(partly_tracked, capsys, argv, message):
    code, out, err = cli(capsys, "review", *[a.format(p=partly_tracked) for a in argv])
    assert code == EXIT_USER_ERROR and message in one_error_line(err), err
    assert decisions(partly_tracked) == [] and out == ""


@pytest.mark.parametrize("option, value, where", [
    ("--comment", "caf\udce9", "--comment is not valid UTF-8 text (byte 0xe9 at character 4)"),
    ("--reviewer", "j\udcf6rg", "--reviewer is not valid UTF-8 text (byte 0xf6 at character 2)"),
    ("env", "m\udcfcller", "$NAPARI_SAM2_TRACK_REVIEWER is not valid UTF-8 text (byte 0xfc "
                          "at character 2); set it to the name as UTF-8 text"),
])
def test_non_utf8_reviewer_or_comment_is_refused_in_one_line(partly_tracked, capsys, monkeypatch,
                                                             option, value, where):
    """Bytes that are not UTF-8 in argv or the environment reach Python as surrogate escapes."""
    argv = ["review", "approve", partly_tracked, "1", "--frames", "0-3"]
    if option == "env":
        monkeypatch.setenv("NAPARI_SAM2_TRACK_REVIEWER", value)
    else:
        argv += [option, value]
    code, _, err = cli(capsys, *argv)
    assert code == EXIT_USER_ERROR and where in one_error_line(err)
    assert decisions(partly_tracked) == []


def test_non_utf8_bytes_in_a_real_argv_are_refused(partly_tracked):
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "LC_ALL": "C.UTF-8"}
    done = subprocess.run([sys.executable.encode(), b"-m", b"napari_sam2_track.cli", b"review",
                           b"approve", os.fsencode(partly_tracked), b"1", b"--frames", b"0-3",
                           b"--comment", b"caf\xe9"], env=env, capture_output=True, timeout=120)
    assert done.returncode == EXIT_USER_ERROR
    assert done.stderr.decode().strip().splitlines() == [
        "error: --comment is not valid UTF-8 text (byte 0xe9 at character 4); pass the comment as "
        "UTF-8 text"]


@pytest.mark.parametrize("idle", ["-5", "0", "nan", "inf", "-inf"])
def test_report_refuses_an_idle_gap_that_is_not_a_positive_number(partly_tracked, capsys, idle):
    code, out, err = cli(capsys, "report", partly_tracked, f"--idle={idle}")
    assert code == EXIT_USER_ERROR and out == ""
    assert "--idle must be a number of seconds above 0" in one_error_line(err)


# ------------------------------------------------------------------ lock files
@pytest.mark.parametrize("pid", ["1e30", "1" + "0" * 69, "Infinity", "-7", "0", "1.5", '"12"', "true"])
def test_a_lock_naming_no_possible_process_is_one_line_everywhere(partly_tracked, tmp_path, capsys, pid):
    import socket

    from napari_sam2_track.project.lock import LOCK_NAME

    lock = partly_tracked / LOCK_NAME
    lock.write_text('{"host": "%s", "pid": %s, "started": "x", "command": "c", "process_start": "y"}'
                    % (socket.gethostname(), pid))
    code, out, err = cli(capsys, "info", partly_tracked)
    assert code == 0 and err == "" and "writer   unknown: unreadable lock file: PID" in out
    export = tmp_path / "export.json"
    assert cli(capsys, "export", partly_tracked, "--format", "coco-video", "--out", export)[0] == 0
    code, _, err = cli(capsys, "import", export, "--out", partly_tracked, "--overwrite")
    line = one_error_line(err)
    assert code == EXIT_USER_ERROR and "is not a process id" in line and f"delete {lock}" in line
    assert lock.is_file()
    # a QC decision needs no write lock (docs/review.md): it is recorded whatever the lock says
    code, _, err = cli(capsys, "review", "approve", partly_tracked, "1", "--frames", "0-3")
    assert code == 0, err
    assert len(decisions(partly_tracked)) == 1 and lock.is_file()


def test_track_resume_on_a_lock_naming_no_possible_process_is_one_line(partly_tracked, tmp_path, capsys):
    import socket

    from conftest import make_blob_video, write_jpeg_folder

    video = write_jpeg_folder(make_blob_video(14, 32, 32), tmp_path / "video")
    lock = partly_tracked / ".napari_sam2_track.lock"
    lock.write_text('{"host": "%s", "pid": 1e30, "started": "x", "command": "c"}' % socket.gethostname())
    code, _, err = cli(capsys, "track", video, "--out", partly_tracked, "--resume", "--device", "cpu")
    assert code == EXIT_USER_ERROR and "PID 1e+30 is not a process id" in one_error_line(err)


def test_a_lock_attempt_on_a_full_disk_leaves_no_file_behind(partly_tracked):
    """RLIMIT_FSIZE 0 makes every write fail with EFBIG, as a full disk fails with ENOSPC."""
    import subprocess
    import sys
    import textwrap

    before = sorted(p.name for p in partly_tracked.iterdir())
    script = textwrap.dedent(f"""
        import resource, signal
        from napari_sam2_track.cli import main
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        raise SystemExit(main(["review", "restore", {str(partly_tracked)!r}, "1", "1"]))
    """)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == EXIT_USER_ERROR
    assert done.stderr.strip().splitlines() == [
        f"error: cannot lock {partly_tracked} for writing: file too large (file size limit)"]
    assert sorted(p.name for p in partly_tracked.iterdir()) == before


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB file system (tmpfs); needs root, as mounting does."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` to the last byte, then free ``leave`` bytes (whole pages)."""
    with open(disk / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    os.truncate(disk / "filler", max(0, os.path.getsize(disk / "filler") - leave))


def test_on_a_really_full_disk_lock_and_log_stay_as_they_were(partly_tracked, small_disk, capsys):
    project = small_disk / "t.zarr"
    shutil.copytree(partly_tracked, project)
    assert cli(capsys, "review", "approve", project, "1", "--frames", "0-3")[0] == 0
    log = project / "review" / "decisions.jsonl"
    before, files = log.read_bytes(), sorted(p.name for p in project.iterdir())
    _fill(small_disk, leave=0)
    code, _, err = cli(capsys, "review", "restore", project, "1", "1")  # a writer: takes the lock
    assert code == EXIT_USER_ERROR
    assert one_error_line(err) == f"error: cannot lock {project} for writing: no space left"
    # a decision needs no lock (docs/review.md); one too long for the space left is cut back off
    code, _, err = cli(capsys, "review", "approve", project, "2", "--frames", "0-3", "--comment", "x" * 20000)
    assert code == EXIT_USER_ERROR and one_error_line(err) == f"error: no space left on {log}"
    assert log.read_bytes() == before and sorted(p.name for p in project.iterdir()) == files


# ------------------------------------------------------------------ batch manifests and options
def test_a_manifest_that_is_not_utf8_is_one_line(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"video,prompts\na.mp4,p.json\nb\xe4r.mp4,p.json\n")
    code, out, err = cli(capsys, "batch", manifest, "--out-dir", tmp_path / "out")
    assert code == EXIT_USER_ERROR and out == ""
    assert one_error_line(err) == (f"error: manifest {manifest} is not UTF-8 text (byte 0xe4 on line 3, "
                                   "offset 28); save it as UTF-8; see docs/distributed.md for the "
                                   "manifest format")
    manifest = tmp_path / "m.yaml"
    manifest.write_bytes(b"videos:\n  - \xff.mp4\n")
    code, out, err = cli(capsys, "batch", manifest, "--out-dir", tmp_path / "out")
    assert code == EXIT_USER_ERROR and "is not UTF-8 text (byte 0xff on line 2," in one_error_line(err)


def test_a_manifest_row_whose_project_name_is_too_long_fails_alone_up_front(tmp_path):
    from napari_sam2_track.distributed.manifest import load_manifest

    manifest = tmp_path / "m.yaml"
    long_name = "v" * 230
    manifest.write_text(f"videos:\n  - a.mp4\n  - {{video: b.mp4, out: {long_name}.zarr}}\n"
                        f"  - {{video: c.mp4, name: {'n' * 300}}}\n  - {{video: d.mp4, out: {'d' * 300}/x.zarr}}\n"
                        f"  - {{video: e.mp4, out: {'e' * 170}.zarr}}\n")
    rows = load_manifest(manifest, tmp_path / "out")
    assert rows[0].error is None and rows[4].error is None and rows[4].item is not None
    assert rows[1].item is None and rows[1].error.startswith("row 2: the project name 'vvvv")
    assert "235 bytes; it can have at most 182" in rows[1].error and "give a shorter" in rows[1].error
    assert rows[2].item is None and "305 bytes" in rows[2].error
    assert rows[3].item is None and "folder name" in rows[3].error and "300 bytes" in rows[3].error
    assert all("\n" not in r.error for r in rows[1:4])


@pytest.mark.parametrize("option, message", [
    (["--segments", "0"], "--segments must be 1 or more, not 0"),
    (["--segments=-2"], "--segments must be 1 or more, not -2"),
    (["--workers", "0"], "--workers must be 1 or more, not 0"),
    (["--retries=-1"], "--retries must be 0 or more, not -1"),
])
@pytest.mark.parametrize("command", ["batch", "track"])
def test_counts_that_mean_nothing_are_refused_before_any_work(tmp_path, capsys, option, message, command):
    manifest = tmp_path / "m.csv"
    manifest.write_text("video\na.mp4\n")
    if command == "batch":
        argv = ["batch", manifest, "--out-dir", tmp_path / "out", *option]
    else:
        argv = ["track", tmp_path / "a.mp4", "--out", tmp_path / "a.zarr", *option]
    code, out, err = cli(capsys, *argv)
    assert code == EXIT_USER_ERROR and out == "" and one_error_line(err) == f"error: {message}"
    assert sorted(tmp_path.iterdir()) == [manifest]


# ------------------------------------------------------------------ conventions of real files
def sav_release_json(path: Path, n_annotated: int = 3, h: int = 24, w: int = 16, frames: int = 12,
                     **override) -> Path:
    """An SA-V ``*_manual.json`` as the release writes it: masks encoded by pycocotools, and the
    counts (frames, height, width, resolution, ...) written as floats (``"video_height": 24.0``)."""
    import json

    import numpy as np

    mask_util = pytest.importorskip("pycocotools.mask")
    masklet = []
    for i in range(n_annotated):
        rles = []
        for obj in range(2):
            m = np.zeros((h, w), np.uint8)
            m[2 + i + 10 * obj : 8 + i + 10 * obj, 3:9] = 1
            rle = mask_util.encode(np.asfortranarray(m))
            rle["counts"] = rle["counts"].decode("ascii")
            rles.append(rle)
        masklet.append(rles)
    data = {
        "video_id": "sav_000042", "video_duration": frames / 24, "video_frame_count": float(frames),
        "video_height": float(h), "video_width": float(w), "video_resolution": float(h * w),
        "video_environment": "Indoor", "video_split": "train", "masklet": masklet,
        "masklet_id": [0, 1], "masklet_size_rel": [0.09, 0.09], "masklet_size_abs": [36.0, 36.0],
        "masklet_size_bucket": ["small", "small"], "masklet_visibility_changes": [0, 0],
        "masklet_first_appeared_frame": [0.0, 0.0], "masklet_frame_count": [float(n_annotated)] * 2,
        "masklet_edited_frame_count": [0.0, 0.0], "masklet_type": ["manual", "manual"],
        "masklet_stability_score": [[1.0] * n_annotated] * 2, "masklet_num": 2, **override,
    }
    path.write_text(json.dumps(data))
    return path


def test_sav_json_as_the_release_writes_it_with_float_counts_is_imported(tmp_path, capsys):
    ann = sav_release_json(tmp_path / "sav_000042_manual.json")
    code, out, err = cli(capsys, "import", ann, "--out", tmp_path / "a.zarr")
    assert code == 0, err
    store = ProjectStore.open(tmp_path / "a.zarr", "r")
    assert store.shape == (12, 24, 16) and store.meta["source"]["frame_stride"] == 4
    assert store.frames_with_state(2, exclude=(0, 4)) == [0, 4, 8]
    assert store.mask(2, 8)[14:20, 3:9].all() and store.mask(2, 8).sum() == 36


@pytest.mark.parametrize("field, value", [("video_height", 24.5), ("video_width", 0.0),
                                          ("video_frame_count", -12.0), ("video_height", "24")])
def test_sav_json_counts_that_are_not_whole_numbers_are_refused(tmp_path, capsys, field, value):
    ann = sav_release_json(tmp_path / "s.json", **{field: value})
    code, out, err = cli(capsys, "import", ann, "--out", tmp_path / "a.zarr")
    assert code == EXIT_USER_ERROR and f"{field} must be an integer of at least 1" in one_error_line(err)
    assert not (tmp_path / "a.zarr").exists()


# ------------------------------------------------------------------ a killed --segments run
def test_a_segment_run_killed_before_its_merge_is_named_by_check_and_export(tmp_path, capsys):
    """The state a ``--segments`` run leaves when its client is killed: the segments wrote their
    masks and their part tables; nothing was merged into the object tables."""
    import json

    from napari_sam2_track.distributed.segments import Segment
    from napari_sam2_track.project.parts import PartWriter, create_part, merge_parts
    from napari_sam2_track.engine.tracker import FrameResult
    from napari_sam2_track.project import StoreWriter

    project = tmp_path / "p.zarr"
    segments = [Segment(0, 0, 4), Segment(1, 5, 9)]
    with ProjectStore.create(project, num_frames=10, height=20, width=24) as store:
        store.set_objects([ObjectSpec(id=1), ObjectSpec(id=2)])
        run = store.begin_run(direction="forward", segments=[[s.start, s.end] for s in segments])
        for s in segments:
            create_part(store, run, s.index, s.start, s.end)
        store.layers.ensure_overlap_layers(1)
    for segment, frames in ((segments[0], range(0, 5)), (segments[1], range(5, 8))):
        writer = StoreWriter(PartWriter(str(project), run, segment.index), run)
        for t in frames:
            writer.submit(FrameResult(frame=t, direction="forward", presence={1: 5.0, 2: 5.0},
                                      masks={1: disc(20, 24, 6 + t, 8, 4), 2: disc(20, 24, 16, 12, 3)},
                                      prompted=set()))
        writer.close()
    code, out, _ = cli(capsys, "info", project, "--check")
    assert code == 1 and "0 table rows verified" not in out
    assert ("segment run 1 was interrupted before merging its segments: segment_parts/run-1 holds "
            "16 table rows of frames 0-7, not yet in the object tables; resume the segment run (on the "
            "command line: track VIDEO --out p.zarr --segments 2 --resume, or the same batch "
            "again)") in out
    out_file = tmp_path / "o.json"
    code, _, err = cli(capsys, "export", project, "--format", "coco-video", "--out", out_file)
    assert code == EXIT_USER_ERROR and "resume the segment run" in one_error_line(err) and not out_file.exists()
    with ProjectStore.open(project) as store:  # what resuming does first
        assert merge_parts(store) == 16
    code, out, _ = cli(capsys, "info", project, "--check")
    assert code == 0 and "16 table rows verified" in out
    assert cli(capsys, "export", project, "--format", "coco-video", "--out", out_file)[0] == 0
    tracks = json.loads(out_file.read_text())["annotations"]
    assert [sum(1 for s in a["segmentations"] if s) for a in tracks] == [8, 8]


def test_every_unmerged_segment_run_is_named(tmp_path):
    """Two runs killed before their merges: each is named, in run order."""
    from napari_sam2_track.distributed.segments import Segment
    from napari_sam2_track.engine.tracker import FrameResult
    from napari_sam2_track.project import StoreWriter
    from napari_sam2_track.project.check import unmerged_segments
    from napari_sam2_track.project.parts import PartWriter, create_part

    project = tmp_path / "p.zarr"
    with ProjectStore.create(project, num_frames=10, height=20, width=24) as store:
        store.set_objects([ObjectSpec(id=1)])
        store.layers.ensure_overlap_layers(1)
        runs = []
        for segments in ([Segment(0, 0, 4), Segment(1, 5, 9)], [Segment(0, 0, 9)]):
            run = store.begin_run(direction="forward", segments=[[s.start, s.end] for s in segments])
            for s in segments:
                create_part(store, run, s.index, s.start, s.end)
            runs.append((run, segments[0]))
    for (run, segment), frames in zip(runs, (range(0, 3), range(0, 2))):
        writer = StoreWriter(PartWriter(str(project), run, segment.index), run)
        for t in frames:
            writer.submit(FrameResult(frame=t, direction="forward", presence={1: 5.0},
                                      masks={1: disc(20, 24, 8, 8, 4)}, prompted=set()))
        writer.close()
    with ProjectStore.open(project, "r") as store:
        text = unmerged_segments(store)
    first, second = runs[0][0], runs[1][0]
    assert text.count("was interrupted before merging its segments") == 2
    assert text.index(f"segment run {first} ") < text.index(f"segment run {second} ")
    assert f"segment_parts/run-{first} holds 3 table rows of frames 0-2" in text
    assert f"segment_parts/run-{second} holds 2 table rows of frames 0-1" in text
    assert "--segments 2 --resume" in text and "--segments 1 --resume" in text
    assert "\n" not in text


# ------------------------------------------------------------------ notes from batch workers
def _open_for_writing(path: str) -> str:
    ProjectStore.open(path).close()
    return "written"


def test_a_stale_lock_taken_over_in_a_batch_worker_is_one_note_line(tmp_path, capfd):
    import json
    import socket
    import subprocess
    import sys

    distributed = pytest.importorskip("distributed")
    project = tmp_path / "p.zarr"
    ProjectStore.create(project, num_frames=2, height=4, width=4).close()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (project / ".napari_sam2_track.lock").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": gone.pid, "started": "x", "command": "old batch"}))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        capfd.readouterr()
        assert client.submit(_open_for_writing, str(project)).result() == "written"
        client.run(lambda: (sys.stderr.flush(), None)[1])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "StaleLock" in line or "took over" in line
             or "warnings.warn" in line or "note_stale_lock" in line]
    assert lines == [f"note: took over the lock of {project}: PID {gone.pid} on {socket.gethostname()} "
                     "('old batch', since x) is no longer running"], err
