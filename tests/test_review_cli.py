"""``napari-sam2-track review`` and ``report``: round trips through the command line."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from napari_sam2_track.cli._registry import EXIT_USER_ERROR
from napari_sam2_track.cli import main
from napari_sam2_track.review import read_review
from napari_sam2_track.review.analytics import log_event, report

from test_review_qc import synthetic_project


@pytest.fixture
def project(tmp_path):
    return synthetic_project(tmp_path / "p.zarr")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_review_lists_masklets_and_flags(project, capsys):
    code, out, _ = run(capsys, "review", project.path)
    assert code == 0
    assert "masklets 3" in out and "frames 6-9" in out and "unreviewed" in out
    assert "span_start" in out and "presence_flip" in out
    code, out, _ = run(capsys, "review", project.path, "--json")
    data = json.loads(out)
    assert [(m["object"], m["start"], m["end"], m["status"]) for m in data["masklets"]] == [
        (1, 0, 9, "unreviewed"), (2, 0, 3, "unreviewed"), (2, 6, 9, "unreviewed")]
    kinds = {(f["object"], f["kind"], f["start"]) for f in data["flags"]}
    assert (2, "span_end", 3) in kinds and (2, "span_start", 6) in kinds and (1, "unreviewed", 0) in kinds
    assert any(s["frame"] == 4 and s["object"] == 1 for s in data["suggestions"])


def test_approve_and_reject_round_trip(project, capsys):
    code, out, _ = run(capsys, "review", "approve", project.path, 1, "--frames", "0-4",
                       "--reviewer", "ann", "--comment", "clean boundary")
    assert code == 0 and out.startswith("object 1 frames 0-4: satisfactory by ann")
    code, out, _ = run(capsys, "review", "reject", project.path, 2, "--reviewer", "bob")
    assert code == 0 and out.count("unsatisfactory by bob") == 2  # one per presence span
    state = read_review(project)
    assert [(d.object, d.start, d.end, d.status) for d in state.decisions] == [
        (1, 0, 4, "satisfactory"), (2, 0, 3, "unsatisfactory"), (2, 6, 9, "unsatisfactory")]
    assert state.decisions[0].comment == "clean boundary"
    code, out, _ = run(capsys, "review", project.path, "--json", "--object", 1)
    rows = json.loads(out)["masklets"]
    assert {(m["start"], m["end"]): m["status"] for m in rows} == {(0, 4): "satisfactory", (0, 9): "unreviewed"}
    assert all(f["object"] == 1 for f in json.loads(out)["flags"])
    # an edit inside the approved range shows up as an invalidation, with its reason
    frame = project.labels[2].copy()
    frame[0, 0] = 1
    project.write_edited_labels(2, frame)
    code, out, _ = run(capsys, "review", project.path)
    assert "invalidated by ann" in out and "edited by hand on frame 2" in out


@pytest.mark.parametrize("argv, message", [
    (["approve", "{p}", "9", "--frames", "0-4"], "object 9 is not in"),
    (["approve", "{p}", "1", "--frames", "0-x"], "not a range like"),
    (["approve", "{p}", "1", "--frames", "4-20"], "inside the video"),
    (["approve", "{p}"], "usage: review approve PROJECT OBJ"),
    (["reject", "{p}", "one"], "object id 'one' is not a number"),
    (["{p}", "{p}"], "give one project"),
    (["missing.zarr"], "not a project store"),
])
def test_bad_review_commands_fail_in_one_line(project, capsys, argv, message):
    code, out, err = run(capsys, "review", *[a.format(p=project.path) for a in argv])
    assert code == EXIT_USER_ERROR and message in err and len(err.strip().splitlines()) == 1
    assert read_review(project).decisions == []


def test_report_json_and_csv_match_the_api(project, capsys):
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    for i, (kind, obj, frames) in enumerate([("click", 1, (0, 0)), ("click", 1, (0, 0)),
                                             ("propagate", 1, (0, 9)), ("click", 1, (5, 5))]):
        log_event(project, kind, annotator="ann", object=obj, frames=frames,
                  time=t0 + dt.timedelta(seconds=10 * i))
    code, out, _ = run(capsys, "report", project.path, "--json")
    assert code == 0 and json.loads(out) == json.loads(json.dumps(report(project)))
    ann = json.loads(out)["annotators"]["ann"]
    assert ann["clicks_per_clicked_frame"] == 1.5 and ann["seconds_per_frame"] == 3.0
    code, out, _ = run(capsys, "report", project.path, "--csv", "--idle", "5")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["who"] for r in rows][:2] == ["ann", "project"] and rows[0]["active_seconds"] == "0.0"
    assert rows[-1]["seconds_per_frame"] == "4.5"
    code, out, _ = run(capsys, "report", project.path)
    assert code == 0 and "SAM 2, SAM 2 paper" in out and "37.80" in out


def test_export_approved_only_warns_on_the_command_line(project, capsys, tmp_path):
    code, out, err = run(capsys, "export", project.path, "-f", "table", "--out", tmp_path / "t.csv",
                         "--approved-only")
    assert code == 0 and err.startswith("warning: --approved-only: no object of p.zarr")
    run(capsys, "review", "approve", project.path, 2, "--frames", "1-2", "--reviewer", "ann")
    code, out, err = run(capsys, "export", project.path, "-f", "table", "--out", tmp_path / "u.csv",
                         "--approved-only")
    rows = list(csv.DictReader((tmp_path / "u.csv").open()))
    assert code == 0 and err == ""
    assert [(r["object_id"], r["frame"], r["visible"]) for r in rows if r["visible"] == "True"] == [
        ("2", "1", "True"), ("2", "2", "True")]
