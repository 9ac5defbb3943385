"""Several processes on one dataset at once: no lost update, no torn file, also with kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from napari_sam2_track.dataset import Dataset
from napari_sam2_track.dataset.files import read_dataset_file
from napari_sam2_track.project._jsonl import LogLinesSkippedWarning, read_records

WORKER = r"""
import sys, time
from pathlib import Path
from napari_sam2_track.dataset import Dataset
from napari_sam2_track.dataset.status import next_item

mode, folder, idx, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ds = Dataset.open(folder)
print("ready", flush=True)
if mode == "records":
    items = ds.item_ids()
    k = 0
    while n < 0 or k < n:  # n < 0: until killed
        item = items[k % len(items)]
        ds.record_stage(item, ("tracked", "in review", "returned")[k % 3], f"w{idx}", note=f"{idx}-{k}")
        ds.assign([item], ("ana", "ben")[k % 2], by=f"w{idx}")
        k += 1
elif mode == "add":
    k = 0
    while n < 0 or k < n:
        source = folder.parent / "videos" / f"v{idx}_{k}.mp4"
        source.write_bytes(b"")
        ds.add(source)
        k += 1
elif mode == "claim":
    row = next_item(ds, f"p{idx}")
    print("claimed", row["id"] if row else None, flush=True)
"""


def start(tmp_path: Path, mode: str, folder: Path, idx: int, n: int) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), mode, str(folder), str(idx), str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_ready(procs) -> None:
    for p in procs:
        line = p.stdout.readline().strip()
        assert line == "ready", p.stderr.read()


def finish(procs) -> list[str]:
    outs = []
    for p in procs:  # read through the file objects: wait_ready may have buffered output
        out, err = p.stdout.read(), p.stderr.read()
        assert p.wait(timeout=300) == 0, err
        outs.append(out)
    return outs


def read_clean(path: Path, model=None) -> list:
    """Every record of a log, failing on any line that is not a whole record."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", LogLinesSkippedWarning)
        return read_records(path, model)


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    videos = tmp_path / "videos"
    videos.mkdir()
    ds = Dataset.init(tmp_path / "ds", annotators=["ana", "ben"] + [f"p{i}" for i in range(8)])
    for i in range(12):
        (videos / f"item{i:02d}.mp4").write_bytes(b"")
    ds.add_many({"source": videos / f"item{i:02d}.mp4"} for i in range(12))
    return ds


def test_many_processes_record_stages_and_assignments_at_once(tmp_path, dataset):
    n_procs, n = 8, 40
    procs = [start(tmp_path, "records", dataset.folder, i, n) for i in range(n_procs)]
    wait_ready(procs)
    finish(procs)
    stages = read_clean(dataset.stages_log)
    assignments = read_clean(dataset.assignments_log)
    assert len(stages) == len(assignments) == n_procs * n
    notes = {r["note"] for r in stages}
    assert notes == {f"{i}-{k}" for i in range(n_procs) for k in range(n)}  # none lost, none twice
    # each writer's records are in its own order
    for i in range(n_procs):
        mine = [int(r["note"].split("-")[1]) for r in stages if r["who"] == f"w{i}"]
        assert mine == sorted(mine)
    assert set(dataset.recorded_stages()) == set(dataset.item_ids())


def test_many_processes_add_items_at_once_and_a_reader_never_sees_a_torn_file(tmp_path, dataset):
    n_procs, n = 6, 5
    procs = [start(tmp_path, "add", dataset.folder, i, n) for i in range(n_procs)]
    wait_ready(procs)
    seen = set()
    while any(p.poll() is None for p in procs):
        data = read_dataset_file(dataset.folder)  # never a half-written file
        seen.add(len(data["items"]))
    finish(procs)
    items = Dataset.open(dataset.folder).item_ids()
    expected = {f"item{i:02d}" for i in range(12)} | {f"v{i}_{k}" for i in range(n_procs) for k in range(n)}
    assert sorted(items) == sorted(expected)  # every add of every process is there, once
    assert max(seen) <= len(expected)


def test_free_items_are_claimed_by_one_person_each(tmp_path, dataset):
    procs = [start(tmp_path, "claim", dataset.folder, i, 1) for i in range(6)]
    wait_ready(procs)
    outs = finish(procs)
    claimed = [line.split()[1] for out in outs for line in out.splitlines() if line.startswith("claimed")]
    assert len(claimed) == 6 and len(set(claimed)) == 6, claimed
    records = read_clean(dataset.assignments_log)
    assert sorted(r["item"] for r in records) == sorted(claimed)


@pytest.mark.slow
def test_kill_9_among_writers_loses_nothing_of_the_others(tmp_path, dataset):
    killed = [start(tmp_path, mode, dataset.folder, 10 + i, -1)
              for i, mode in enumerate(("records", "records", "add", "add"))]
    survivors = [start(tmp_path, "records", dataset.folder, i, 30) for i in range(3)]
    survivors += [start(tmp_path, "add", dataset.folder, 5, 4)]
    wait_ready(killed + survivors)
    time.sleep(1.5)
    for p in killed:
        os.kill(p.pid, signal.SIGKILL)
    for p in killed:
        p.wait()
    finish(survivors)
    # one more append after the kills mends a line a killed writer may have torn
    dataset.record_stage("item00", "verified", "ana")
    stages = read_clean(dataset.stages_log)
    notes = {r["note"] for r in stages}
    assert {f"{i}-{k}" for i in range(3) for k in range(30)} <= notes
    assert len(read_clean(dataset.assignments_log)) >= 90
    data = yaml.safe_load((dataset.folder / "dataset.yaml").read_text())
    ids = [r["id"] for r in data["items"]]
    assert {f"v5_{k}" for k in range(4)} <= set(ids) and len(ids) == len(set(ids))
    # the killed writers' work up to the kill is there too, and the dataset still takes changes
    assert any(r["who"] == "w10" for r in stages) and any(i.startswith("v12_") for i in ids)
    late = dataset.folder.parent / "videos" / "late.mp4"
    late.write_bytes(b"")
    assert dataset.add(late).id == "late"
    assert not list(dataset.folder.glob(".dataset.yaml.*.tmp"))  # a killed writer's is removed
