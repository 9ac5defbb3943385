"""QC without the writer's lock: many reviewer processes decide at once while another process
holds the project's write lock or tracks; no decision is lost or torn, and decisions taken
while a run rewrites the object are invalidated by that run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from napari_sam2_track.project import ProjectStore
from napari_sam2_track.review import Masklet, read_review

from conftest import REPO
from test_review_qc import synthetic_project

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests"),
                                                      os.environ.get("PYTHONPATH", "")])}

HOLD = """
import sys, time
from napari_sam2_track.project import ProjectStore
store = ProjectStore.open(sys.argv[1], command="a tracking run")
run = store.begin_run(direction="forward", objects=[1])
store.record_changes([(1, 0, 9)], f"propagation run {run}", "propagation", run=run)
print(run, flush=True)
sys.stdin.readline()  # the test says when the run ends
store.end_run(run, "completed", frames=10)
store.record_changes([(1, 0, 9)], f"propagation run {run} wrote these frames", "propagation", run=run)
print("ended", flush=True)
"""

REVIEWER = """
import sys
from napari_sam2_track.review.qc import decide
project, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(count):
    obj, (a, b) = (1, (i % 10, i % 10)) if i % 2 else (2, (6, 9))
    decide(project, obj, a, b, "satisfactory" if i % 3 else "unsatisfactory", reviewer=name,
           comment=f"{name} decision {i} " + "x" * 300)
print("done", flush=True)
"""


def start(code: str, *args: str, stdin=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin, text=True)


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "napari_sam2_track.cli", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_many_reviewers_decide_while_another_process_holds_the_lock_and_runs(tmp_path):
    path = tmp_path / "p.zarr"
    synthetic_project(path).close()
    holder = start(HOLD, str(path), stdin=subprocess.PIPE)
    try:
        run_id = int(holder.stdout.readline())
        with pytest.raises(Exception, match="being written|locked|PID"):
            ProjectStore.open(path)  # a writer is refused: the lock is really held
        n_procs, per_proc = 6, 25
        reviewers = [start(REVIEWER, str(path), f"r{k}", str(per_proc)) for k in range(n_procs)]
        commands = [cli("review", "approve", str(path), "2", "--frames", "0-3", "--reviewer", f"cli{k}")
                    for k in range(3)]
        for p in reviewers + commands:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "ended"
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
    lines = (path / "review" / "decisions.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]  # every line is a whole record
    assert len(records) == n_procs * per_proc + 3
    state = read_review(path)
    for k in range(n_procs):
        mine = [d for d in state.decisions if d.reviewer == f"r{k}"]
        assert sorted(int(d.comment.split()[2]) for d in mine) == list(range(per_proc))
    assert sorted(d.reviewer for d in state.decisions if d.reviewer.startswith("cli")) == ["cli0", "cli1", "cli2"]
    # every decision was taken while run `run_id` was in flight: recorded with it
    assert all(d.runs == [run_id] for d in state.decisions)
    by_object = {1: [], 2: []}
    for s in state.statuses:
        by_object[s.decision.object].append(s)
    # object 1 is rewritten by the run: its decisions are invalidated by the run's start record
    assert all(s.invalidated_by is not None and s.invalidated_by.run == run_id for s in by_object[1])
    assert all(s.invalidated_by.time < s.decision.time for s in by_object[1])
    # object 2 is not touched by the run: its decisions hold
    assert all(s.valid for s in by_object[2])
    assert state.latest(Masklet(object=2, start=0, end=3)).decision.reviewer.startswith("cli")


def test_a_decision_during_a_run_killed_before_its_end_stays_invalidated(tmp_path):
    path = tmp_path / "p.zarr"
    synthetic_project(path).close()
    holder = start(HOLD, str(path), stdin=subprocess.PIPE)
    try:
        run_id = int(holder.stdout.readline())
        p = cli("review", "approve", str(path), "1", "--frames", "2-5", "--reviewer", "ann")
        assert p.communicate(timeout=120)[0].startswith("object 1 frames 2-5: satisfactory")
    finally:
        holder.kill()
        holder.wait()
    state = read_review(path)
    (s,) = state.statuses
    assert s.decision.runs == [run_id]
    assert s.invalidated_by.run == run_id and "propagation run" in s.invalidated_by.reason
    # after the dead run, a new decision holds
    p = cli("review", "approve", str(path), "1", "--frames", "2-5", "--reviewer", "bob")
    assert p.communicate(timeout=120)[0].startswith("object 1 frames 2-5: satisfactory")
    state = read_review(path)
    assert state.statuses[-1].valid and state.statuses[-1].decision.runs == []


@pytest.mark.slow
def test_reviewers_decide_while_a_real_run_tracks(tmp_path, blob_jpegs, test_model):
    """A real propagation (test model) in one process; reviewers decide meanwhile."""
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.sources import open_source

    out = tmp_path / "p.zarr"
    prompts = PromptSet.model_validate({
        "objects": [{"id": 1}, {"id": 2}],
        "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
                    {"object": 2, "frame": 0, "points": [[90, 30]], "labels": [1]}]})
    list(track(open_source(blob_jpegs), prompts, out, model=test_model, direction="forward"))
    tracker_script = f"""
        import sys
        from conftest import nudge_test_model
        from napari_sam2_track.engine.models import load_random_model
        from napari_sam2_track.pipeline import track
        from napari_sam2_track.project import ProjectStore
        from napari_sam2_track.sources import open_source
        model = load_random_model(image_size=256, seed=0, device="cpu")
        nudge_test_model(model.predictor)
        store = ProjectStore.open({str(out)!r})
        for i, progress in enumerate(track(open_source({str(blob_jpegs)!r}), None, store, model=model,
                                           direction="forward", obj_ids=[1])):
            if i == 0:
                print("tracking", flush=True)
                sys.stdin.readline()  # hold the run until the reviewers are done
        print("tracked", flush=True)
    """
    runner = start(tracker_script, stdin=subprocess.PIPE)
    try:
        assert runner.stdout.readline().strip() == "tracking", runner.stderr.read()
        reviewers = [cli("review", "approve" if k % 2 else "reject", str(out), str(1 + k % 2),
                         "--frames", f"{k}-{k + 4}", "--reviewer", f"r{k}") for k in range(6)]
        for p in reviewers:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        runner.stdin.write("\n")
        runner.stdin.flush()
        assert runner.stdout.readline().strip() == "tracked"
        runner.wait(timeout=300)
        assert runner.returncode == 0
    finally:
        if runner.poll() is None:
            runner.kill()
    state = read_review(out)
    run_id = ProjectStore.open(out, "r").meta["runs"][-1]["id"]
    assert sorted(d.reviewer for d in state.decisions) == [f"r{k}" for k in range(6)]
    for s in state.statuses:
        assert s.decision.runs == [run_id]
        if s.decision.object == 1:  # rewritten by the run
            assert s.invalidated_by is not None and s.invalidated_by.run == run_id
        else:
            assert s.valid


REPORTING = """
import sys
from napari_sam2_track.review.qc import decide
project, name = sys.argv[1], sys.argv[2]
for i in range(10_000):
    decide(project, 2, 6, 9, "satisfactory", reviewer=name, comment=f"{name} decision {i} " + "y" * 2000)
    print(i, flush=True)
"""


def test_reviewers_killed_mid_write_lose_nothing_they_reported_and_tear_nothing(tmp_path):
    import signal

    path = tmp_path / "p.zarr"
    synthetic_project(path).close()
    holder = start(HOLD, str(path), stdin=subprocess.PIPE)
    survivors = [start(REVIEWER, str(path), f"s{k}", "20") for k in range(3)]
    victims = [start(REPORTING, str(path), f"k{k}") for k in range(3)]
    try:
        holder.stdout.readline()
        reported = {}
        for k, p in enumerate(victims):
            lines = [p.stdout.readline() for _ in range(5 + 3 * k)]  # killed at different points
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=60)
            reported[f"k{k}"] = [int(x) for x in lines]
        for p in survivors:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        decide_more = start(REVIEWER, str(path), "after", "2")  # cuts off a line a kill tore
        _, err = decide_more.communicate(timeout=120)
        assert decide_more.returncode == 0, err
    finally:
        for p in [holder, *victims, *survivors]:
            if p.poll() is None:
                p.kill()
                p.wait()
    lines = (path / "review" / "decisions.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]  # whole records only: the torn one is gone
    by = {}
    for r in records:
        by.setdefault(r["reviewer"], set()).add(int(r["comment"].split()[2]))
    for k in range(3):
        assert by[f"s{k}"] == set(range(20))
        assert set(reported[f"k{k}"]) <= by[f"k{k}"]  # every decision reported before the kill
    assert by["after"] == {0, 1}
