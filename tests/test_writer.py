"""Store format 2 and its writer: bit-exact masks with overlaps, plain-zarr labels, kill -9
resume, and format-1 projects."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import napari_sam2_track
from napari_sam2_track.engine.tracker import FrameResult
from napari_sam2_track.errors import StoreError
from napari_sam2_track.project import (
    ATTR_KEY,
    COL,
    FORMAT_VERSION,
    STATE_EDITED,
    STATE_PROPAGATED,
    ProjectStore,
    StoreWriter,
)
from napari_sam2_track.project.labels import merge_lowest_id
from napari_sam2_track.project.layers import build_layers, mask_box, masks_from_layers
from napari_sam2_track.prompts import ObjectSpec

H, W = 300, 260  # several 128-px overlap tiles, edge tiles cut by the frame
IDS = [2, 5, 9, 40]


def blobs(t: int, ids=IDS, h: int = H, w: int = W) -> dict[int, np.ndarray]:
    """Overlapping discs and a random speckle per object; object 9 is empty on odd frames."""
    rng = np.random.default_rng(t)
    yy, xx = np.mgrid[:h, :w]
    out = {}
    for i, obj in enumerate(ids):
        cy, cx = h / 2 + 40 * np.sin(t + i), w / 2 + 50 * np.cos(t * 0.7 + i)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < (30 + 10 * i) ** 2
        mask |= rng.random((h, w)) < 0.01
        if obj == 9 and t % 2:
            mask[:] = False
        out[obj] = mask
    return out


def new_store(path: Path, n: int = 6, h: int = H, w: int = W, ids=IDS) -> ProjectStore:
    store = ProjectStore.create(path, num_frames=n, height=h, width=w)
    store.set_objects([ObjectSpec(id=i) for i in ids])
    return store


def write(store: ProjectStore, frames: dict[int, dict[int, np.ndarray]], **kw) -> list[int]:
    done = []
    writer = StoreWriter(store, run_id=1, on_done=done.append, **kw)
    for t, masks in frames.items():
        writer.submit(FrameResult(t, "forward", masks, {o: 3.0 for o in masks}))
    writer.close()
    return done


def plain_zarr_mask(path: Path, obj: int, t: int) -> np.ndarray:
    """An object's mask read with zarr alone, as docs/store.md describes."""
    root = zarr.open_group(str(path), mode="r")
    mask = root["labels/masklets/0"][t] == obj
    k = 1
    while "overlaps" in root and str(k) in root["overlaps"]:
        mask |= root[f"overlaps/{k}"][t] == obj
        k += 1
    return mask


def test_masks_round_trip_bit_exactly_with_overlaps_and_empty_frames(tmp_path):
    store = new_store(tmp_path / "p.zarr")
    frames = {t: blobs(t) for t in (0, 1, 2, 4)}
    frames[5] = {o: np.zeros((H, W), bool) for o in IDS}  # tracked, nothing visible
    assert write(store, frames, workers=3) == [0, 1, 2, 4, 5]  # reported in order
    assert store.layers.num_overlap_layers >= 2  # the discs overlap three deep
    reopened = ProjectStore.open(tmp_path / "p.zarr", mode="r")
    for t, masks in frames.items():
        got = reopened.frame_masks(t)
        for obj, mask in masks.items():
            assert np.array_equal(got[obj], mask), (t, obj)
            assert np.array_equal(reopened.mask(obj, t), mask), (t, obj)
            row = reopened.table(obj)[t]
            area, box = mask_box(mask)
            assert row[COL["area"]] == area
            if box is not None:
                assert tuple(row[[COL["y0"], COL["y1"], COL["x0"], COL["x1"]]]) == box
    block = reopened.masks(5, 0, 6, 2)
    assert block.shape == (3, H, W)
    assert np.array_equal(block[1], frames[2][5]) and np.array_equal(block[2], frames[4][5])
    assert not reopened.masks(9, 1, 6, 2).any()  # empty on odd frames, frame 3 never written
    assert not reopened.frame_masks(3)[2].any()  # never written
    # empty frames cost no chunk
    assert sorted(p.name for p in (tmp_path / "p.zarr/labels/masklets/0/c").iterdir()) == ["0", "1", "2", "4"]


def test_one_encoding_thread_leaves_nothing_of_a_frame_in_the_next(tmp_path):
    # one thread reuses its layer frames: a deep overlap, then small apart masks, then the
    # deep overlap shifted must each read back exactly as written
    store = new_store(tmp_path / "p.zarr", n=3)
    apart = {o: np.zeros((H, W), bool) for o in IDS}
    apart[2][:5, :5] = True
    apart[40][-5:, -5:] = True
    shifted = {o: np.roll(m, (60, -70), axis=(0, 1)) for o, m in blobs(2).items()}
    frames = {0: blobs(2), 1: apart, 2: shifted}
    write(store, frames, workers=1)
    assert not any((tmp_path / "p.zarr/overlaps").glob("*/c/1/0/0"))
    for t, masks in frames.items():
        assert np.array_equal(store.labels[t], merge_lowest_id(masks, (H, W))), t
        for obj, mask in masks.items():
            assert np.array_equal(plain_zarr_mask(tmp_path / "p.zarr", obj, t), mask), (t, obj)


def test_overlap_shards_hold_exactly_the_tiles_with_overlap_pixels(tmp_path):
    store = new_store(tmp_path / "p.zarr")
    write(store, {0: blobs(0)})
    root = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")
    for k in range(1, store.layers.num_overlap_layers + 1):
        layer = root[f"overlaps/{k}"]
        tile = layer.metadata.codecs[0].chunk_shape[1:]
        grid = (-(-H // tile[0]), -(-W // tile[1]))
        raw = (tmp_path / f"p.zarr/overlaps/{k}/c/0/0/0").read_bytes()
        index = np.frombuffer(raw[-4 - 16 * grid[0] * grid[1] : -4], "<u8").reshape(*grid, 2)
        stored = index[..., 0] != 2**64 - 1
        frame = layer[0]
        wanted = np.array([[frame[ty * tile[0] : (ty + 1) * tile[0], tx * tile[1] : (tx + 1) * tile[1]].any()
                            for tx in range(grid[1])] for ty in range(grid[0])])
        assert wanted.any() and np.array_equal(stored, wanted), k


def test_plain_zarr_reads_merged_labels_and_every_mask(tmp_path):
    store = new_store(tmp_path / "p.zarr")
    masks = blobs(2)
    write(store, {2: masks})
    root = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")
    labels = root["labels/masklets/0"]
    assert labels.dtype == np.uint32 and labels.chunks == (1, H, W)
    assert np.array_equal(labels[2], merge_lowest_id(masks, (H, W)))
    assert root["labels/masklets"].attrs["ome"]["multiscales"][0]["datasets"][0]["path"] == "0"
    for obj, mask in masks.items():
        assert np.array_equal(plain_zarr_mask(tmp_path / "p.zarr", obj, 2), mask)


def test_rewriting_a_frame_drops_its_old_overlaps(tmp_path):
    store = new_store(tmp_path / "p.zarr")
    write(store, {1: blobs(1)})
    apart = {o: np.zeros((H, W), bool) for o in IDS}
    apart[2][:10, :10] = True
    apart[40][-10:, -10:] = True
    write(store, {1: apart})
    assert not any((tmp_path / "p.zarr/overlaps").glob("*/c/1/0/0"))
    for obj, mask in apart.items():
        assert np.array_equal(store.mask(obj, 1), mask)


def test_a_partial_frame_keeps_the_other_objects(tmp_path):
    store = new_store(tmp_path / "p.zarr")
    first = blobs(3)
    write(store, {3: first})
    moved = np.roll(first[5], 17, axis=1)
    write(store, {3: {5: moved}})  # a run of object 5 alone
    got = store.frame_masks(3)
    assert np.array_equal(got[5], moved)
    for obj in (2, 9, 40):
        assert np.array_equal(got[obj], first[obj])
    # the same through resume's skip: object 2 is done, object 5 is rewritten
    write(store, {3: {2: np.zeros((H, W), bool), 5: first[5]}}, skip_frames=lambda o, t: o == 2)
    assert np.array_equal(store.mask(2, 3), first[2]) and np.array_equal(store.mask(5, 3), first[5])


def test_table_rows_are_written_in_place_and_read_by_plain_zarr(tmp_path):
    store = new_store(tmp_path / "p.zarr", n=1030)
    store.write_rows({2: [(0, [1.0] * 8)]})  # creates the chunk file
    chunk = tmp_path / "p.zarr/objects/2/table/c/0/0"
    inode = chunk.stat().st_ino
    store.write_rows({2: [(5, [2.0] * 8), (6, [3.0, 4.0]), (1027, [7.0] * 8)]})
    assert chunk.stat().st_ino == inode  # rewritten in place, not replaced
    table = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")["objects/2/table"][:]
    assert (table[0] == 1).all() and (table[5] == 2).all() and (table[1027] == 7).all()
    assert list(table[6, :2]) == [3, 4] and np.isnan(table[6, 2:]).all()
    assert np.isnan(np.delete(table, [0, 5, 6, 1027], axis=0)).all()


def test_write_mask_and_merge_labels_keep_overlaps(tmp_path):
    store = new_store(tmp_path / "p.zarr", ids=[1, 2])
    a = np.zeros((H, W), bool)
    a[50:150, 50:150] = True
    b = np.roll(a, 40, axis=0)
    store.write_mask(2, 0, b)
    store.write_mask(1, 0, a)
    assert np.array_equal(store.mask(2, 0), b) and np.array_equal(store.mask(1, 0), a)
    assert np.array_equal(store.labels[0], merge_lowest_id({1: a, 2: b}, (H, W)))
    merged = store.merge_labels(0)
    assert np.array_equal(merged, store.labels[0])


def test_edit_keeps_hidden_pixels_the_user_left_alone(tmp_path):
    store = new_store(tmp_path / "p.zarr", ids=[1, 2, 3])
    a = np.zeros((H, W), bool)
    a[50:150, 50:150] = True
    b = np.zeros((H, W), bool)
    b[100:200, 100:200] = True  # partly under 1
    c = np.zeros((H, W), bool)
    c[120:130, 120:130] = True  # under 1 and 2
    write(store, {0: {1: a, 2: b, 3: c}})
    edited = store.labels[0]
    edited[60:70, 60:70] = 0  # erase part of 1 away from the others
    edited[140:150, 50:60] = 0
    changed = store.write_edited_labels(0, edited)
    assert changed == [1]
    assert np.array_equal(store.labels[0], edited)
    assert np.array_equal(store.mask(2, 0), b) and np.array_equal(store.mask(3, 0), c)
    assert store.states(1)[0] == STATE_EDITED and store.states(2)[0] == STATE_PROPAGATED
    # showing 2 where 1 was on top (2 and 3 hidden there) drops 1 and the hidden 3 there
    edited[120:125, 120:130] = 2
    changed = store.write_edited_labels(0, edited)
    assert changed == [1, 3]
    assert np.array_equal(store.labels[0], edited)
    assert np.array_equal(store.mask(2, 0), b) and store.mask(3, 0).sum() == 50


def test_remove_object_reveals_what_it_hid(tmp_path):
    store = new_store(tmp_path / "p.zarr")
    masks = blobs(0)
    write(store, {0: masks})
    store.remove_object(2)
    rest = {o: m for o, m in masks.items() if o != 2}
    assert np.array_equal(store.labels[0], merge_lowest_id(rest, (H, W)))
    for obj, mask in rest.items():
        assert np.array_equal(store.mask(obj, 0), mask)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(arrays(bool, (9, 11)), min_size=0, max_size=5),
    st.lists(st.integers(1, 2**32 - 1), min_size=5, max_size=5, unique=True),
)
def test_layers_hold_every_mask_and_the_lowest_id_merge(masks, ids):
    masks = dict(zip(ids, masks))
    frame = build_layers(masks, (9, 11))
    layers = frame.full()
    assert frame.stats == {o: mask_box(m) for o, m in masks.items()}
    for o, m in masks.items():  # the areas and boxes the writer's table rows use
        area, box = frame.stats[o]
        assert area == m.sum()
        assert box is None if area == 0 else m[box[0]:box[1], box[2]:box[3]].sum() == area
    assert np.array_equal(layers[0], merge_lowest_id(masks, (9, 11)))
    back = masks_from_layers(layers, list(masks))
    for obj, mask in masks.items():
        assert np.array_equal(back[obj], mask)
    for below, above in zip(layers, layers[1:]):  # ids rise with the layer; no gaps
        assert not (above & (below == 0)).any()
        assert ((above == 0) | (above > below)).all()


# ----------------------------------------------------------------- kill -9 and resume
CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from test_writer import blobs, H, W, IDS
    from napari_sam2_track.engine.tracker import FrameResult
    from napari_sam2_track.project import ProjectStore, StoreWriter, STATE_NOT_RUN

    store = ProjectStore.open(sys.argv[1])
    n = store.num_frames
    done = {o: set(np.flatnonzero(store.states(o) != STATE_NOT_RUN).tolist()) for o in IDS}
    def report(t):
        print(t, flush=True)
    writer = StoreWriter(store, 1, on_done=report, skip_frames=lambda o, t: t in done[o])
    for t in range(n):
        writer.submit(FrameResult(t, "forward", blobs(t), {o: 3.0 for o in IDS}))
        if sys.argv[2] == "slow":
            time.sleep(0.01)
    writer.close()
    print("closed", flush=True)
    """
)


def test_kill_9_loses_only_frames_in_flight_and_resume_completes(tmp_path):
    n = 400
    path = tmp_path / "p.zarr"
    new_store(path, n=n)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(napari_sam2_track.__file__).parents[1])}
    tests_dir = str(Path(__file__).parent)
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), "slow", tests_dir], stdout=subprocess.PIPE, text=True, env=env
    )
    reported = []
    for line in child.stdout:
        reported.append(int(line))
        if len(reported) == 40:
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    assert child.returncode == -signal.SIGKILL
    store = ProjectStore.open(path, mode="r")
    has_row = np.array([~np.isnan(store.table(o)[:, COL["state"]]) for o in IDS])
    written = np.flatnonzero(has_row.all(axis=0)).tolist()
    assert set(reported) <= set(written)  # every frame reported done is there, all objects
    assert len(written) < n  # the run was cut short
    # a frame whose rows were being written when killed is in flight: some rows may be
    # missing, but its masks are already complete (rows come last)
    for t in np.flatnonzero(has_row.any(axis=0)).tolist():
        masks = blobs(t)
        got = store.frame_masks(t)
        for obj in IDS:
            assert np.array_equal(got[obj], masks[obj]), (t, obj)
    resumed = subprocess.run(
        [sys.executable, str(script), str(path), "fast", tests_dir], capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    assert set(map(int, resumed.stdout.split()[:-1])) == set(range(n))
    store = ProjectStore.open(path, mode="r")
    for t in range(0, n, 7):
        masks = blobs(t)
        for obj in IDS:
            assert np.array_equal(store.mask(obj, t), masks[obj]), (t, obj)


# ------------------------------------------------------------------------ format 1
def make_v1_project(path: Path, frames: dict[int, dict[int, np.ndarray]], n: int = 4) -> None:
    """A project as format 1 wrote it: one full-frame bool array per object."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    labels = root.create_group("labels")
    labels.attrs["ome"] = {"version": "0.5", "labels": ["masklets"]}
    lab = labels.create_group("masklets").create_array(
        "0", shape=(n, H, W), chunks=(1, H, W), dtype="uint32", fill_value=0
    )
    ids = sorted({o for masks in frames.values() for o in masks})
    for obj in ids:
        grp = root.require_group(f"objects/{obj}")
        arr = grp.create_array("mask", shape=(n, H, W), chunks=(1, H, W), dtype="bool", fill_value=False)
        table = grp.create_array("table", shape=(n, 8), chunks=(n, 8), dtype="float64", fill_value=np.nan)
        for t, masks in frames.items():
            arr[t] = masks[obj]
            area, box = mask_box(masks[obj])
            y0, y1, x0, x1 = box if box is not None else (np.nan,) * 4
            table[t] = [3.0, area, x0, y0, x1, y1, STATE_PROPAGATED, 1]
    for t, masks in frames.items():
        lab[t] = merge_lowest_id(masks, (H, W))
    root.attrs[ATTR_KEY] = {
        "format_version": 1, "package_version": "0.1", "created": "2025-01-01T00:00:00+00:00",
        "shape": [n, H, W], "source": {}, "model": None, "schema": None,
        "objects": [{"id": o, "name": "", "category": "object", "attributes": {}} for o in ids],
        "prompts": [], "runs": [], "review": {},
    }


def test_format_1_reads_as_is_and_migrates_when_opened_for_writing(tmp_path):
    path = tmp_path / "old.zarr"
    frames = {0: blobs(0), 2: blobs(2)}
    make_v1_project(path, frames)
    old = ProjectStore.open(path, mode="r")
    assert old.format_version == 1
    assert np.array_equal(old.mask(5, 2), frames[2][5])
    assert np.array_equal(old.masks(40, 0, 4)[2], frames[2][40])
    assert np.array_equal(old.frame_masks(0)[9], frames[0][9])
    with pytest.raises(StoreError, match="open it for writing"):
        old.merge_labels(0)

    store = ProjectStore.open(path)  # for writing: migrated in place
    assert store.format_version == FORMAT_VERSION == 3  # 1 -> 2 -> 3
    assert json.loads((path / "zarr.json").read_text())["attributes"][ATTR_KEY]["format_version"] == 3
    assert not list(path.glob("objects/*/mask"))
    for t, masks in frames.items():
        for obj, mask in masks.items():
            assert np.array_equal(store.mask(obj, t), mask)
            assert np.array_equal(plain_zarr_mask(path, obj, t), mask)
    assert np.array_equal(store.table(5)[:, COL["state"]][[0, 2]], [STATE_PROPAGATED] * 2)
    write(store, {1: blobs(1)})  # and tracking goes on in format 2
    assert np.array_equal(store.mask(2, 1), blobs(1)[2])


def test_a_newer_format_is_refused_in_one_line(tmp_path):
    store = new_store(tmp_path / "p.zarr")
    store.update_meta(format_version=FORMAT_VERSION + 1)
    with pytest.raises(StoreError, match="upgrade napari-sam2-track") as err:
        ProjectStore.open(tmp_path / "p.zarr")
    assert "\n" not in str(err.value)


def test_writer_threads_create_the_first_overlap_layer_once(tmp_path):
    """Several encoding threads meeting the first overlap at once (a fresh store each time)."""
    for attempt in range(5):
        store = new_store(tmp_path / f"p{attempt}.zarr", n=8)
        frames = {t: blobs(t) for t in range(8)}
        assert write(store, frames, workers=4) == list(range(8))
        for t in (0, 7):
            assert np.array_equal(store.mask(40, t), frames[t][40])


def test_info_check_reads_format_1_as_is_and_format_2_after_migration(tmp_path):
    from napari_sam2_track.project.check import verify_project

    path = tmp_path / "old.zarr"
    make_v1_project(path, {0: blobs(0), 2: blobs(2)})
    assert verify_project(ProjectStore.open(path, mode="r")) == ([], {"frames": 4, "objects": 4, "rows": 8})
    (path / "objects/5/mask/c/2/0/0").write_bytes(b"not zstd")
    problems, _ = verify_project(ProjectStore.open(path, mode="r"))
    assert [p.split(":")[0] for p in problems] == ["objects/5/mask frame 2"]
    make_v1_project(path, {0: blobs(0), 2: blobs(2)})
    with ProjectStore.open(path) as store:  # migrated
        assert store.format_version == 3 and (path / "overlaps/1/c/0/0/0").is_file()
        assert verify_project(store) == ([], {"frames": 4, "objects": 4, "rows": 8})


def test_info_check_reads_a_project_longer_than_one_block_of_frames(tmp_path):
    from napari_sam2_track.project import check

    n = 2 * check._frame_block(H, W) + 3
    store = new_store(tmp_path / "long.zarr", n=n)
    frames = {t: blobs(t % 6) for t in (0, n // 2, n - 1)}
    write(store, frames)
    problems, counts = check.verify_project(ProjectStore.open(tmp_path / "long.zarr", mode="r"))
    assert problems == [] and counts["frames"] == n


def test_a_frame_submitted_again_while_in_flight_keeps_every_object(tmp_path):
    """The passes of ``both`` meet near the keyframes with other objects on the same frame:
    the second encoding of a frame reads the first one's objects back, never beside it."""
    for attempt in range(3):
        store = new_store(tmp_path / f"p{attempt}.zarr", n=4)
        frames = blobs(1)
        writer = StoreWriter(store, run_id=1, workers=4)
        for t in range(4):
            for obj in IDS:  # each object of the frame in a result of its own
                writer.submit(FrameResult(t, "forward", {obj: frames[obj]}, {obj: 3.0}))
        writer.close()
        for t in range(4):
            got = store.frame_masks(t)
            for obj in IDS:
                assert np.array_equal(got[obj], frames[obj]), (attempt, t, obj)


def test_a_migration_killed_before_its_clean_up_is_finished_on_the_next_open(tmp_path):
    import shutil

    path = tmp_path / "old.zarr"
    frames = {0: blobs(0), 2: blobs(2)}
    make_v1_project(path, frames)
    shutil.copytree(path / "objects", tmp_path / "v1-objects")
    ProjectStore.open(path).close()  # migrated; the old arrays come back, as after a kill
    shutil.copytree(tmp_path / "v1-objects", path / "objects", dirs_exist_ok=True)  # before clean-up
    assert list(path.glob("objects/*/mask"))
    with ProjectStore.open(path) as store:
        assert not list(path.glob("objects/*/mask"))
        for t, masks in frames.items():
            for obj, mask in masks.items():
                assert np.array_equal(store.mask(obj, t), mask)


def test_shared_pixels_of_each_pair_match_the_masks_and_drive_the_overlap_flags(tmp_path):
    from napari_sam2_track.review.flags import find_flags

    def counted(masks):
        ids = sorted(masks)
        pairs = {(i, j): int(np.count_nonzero(masks[i] & masks[j]))
                 for k, i in enumerate(ids) for j in ids[k + 1 :]}
        return {p: n for p, n in pairs.items() if n}

    frames = {t: blobs(t) for t in (0, 1, 3)}
    store = new_store(tmp_path / "p.zarr", n=4)
    write(store, frames)
    assert store.layers.num_overlap_layers >= 3  # pixels of 3 and 4 objects: deep stacks
    make_v1_project(tmp_path / "old.zarr", frames)
    old = ProjectStore.open(tmp_path / "old.zarr", mode="r")
    for t, masks in frames.items():
        assert store.shared_pixels(t) == old.shared_pixels(t) == counted(masks), t
    assert store.shared_pixels(2) == old.shared_pixels(2) == {}

    def overlaps(s):
        flags = find_flags(s).flags
        return [(f.object, f.start, f.end, f.score, f.reason) for f in flags if f.kind == "overlap"]

    assert overlaps(store) and overlaps(store) == overlaps(old)


def test_the_writer_needs_nothing_of_a_store_beyond_the_write_target_protocol(tmp_path):
    """A store seen only through ``WriteTarget``'s members takes a whole run: the protocol
    names everything ``StoreWriter`` calls (a segment's ``PartWriter`` offers no more)."""
    from napari_sam2_track.project import WriteTarget

    members = {n for n in vars(WriteTarget) if not n.startswith("_")} | set(WriteTarget.__annotations__)
    assert {"layers", "write_rows", "ensure_object_table", "require_current_format"} <= members

    class OnlyTarget:
        def __init__(self, store: ProjectStore):
            self._store = store

        def __getattr__(self, name: str):
            if name not in members:
                raise AttributeError(f"StoreWriter used {name!r}, which WriteTarget does not name")
            return getattr(self._store, name)

    store = new_store(tmp_path / "p.zarr", ids=[2, 5, 9])
    frames = {t: blobs(t, ids=[2, 5, 9]) for t in range(4)}
    writer = StoreWriter(OnlyTarget(store), run_id=1)
    for t, masks in frames.items():
        writer.submit(FrameResult(t, "forward", masks, {o: 3.0 for o in masks}))
    writer.close()
    assert writer.written == {o: [[0, 3]] for o in (2, 5, 9)}
    for t, masks in frames.items():
        for obj, mask in masks.items():
            assert np.array_equal(store.mask(obj, t), mask)
            assert store.table_rows(obj, t, t + 1)[0, COL["area"]] == mask.sum()
    area = store.table_column(9, "area")
    assert area[:4].tolist() == [m[9].sum() for m in frames.values()] and np.isnan(area[4:]).all()
    assert store.table_column(77, "area") is None
