"""``dataset status`` as a quick command: a project's summary is read from its small files
without zarr (and gives what the store opened with zarr gives), and the command imports neither
zarr nor torch, dask or napari. Times are measured by ``benchmarks/dataset.py``, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from napari_sam2_track.dataset import Dataset
from napari_sam2_track.dataset import summary as summary_module
from napari_sam2_track.dataset.status import status
from napari_sam2_track.project import ProjectStore
from napari_sam2_track.review.analytics import log_event
from napari_sam2_track.review.qc import approve, masklets, reject
from test_dataset import make_dataset, tracked  # noqa: F401 - the module's tracked clips

HEAVY = ("zarr", "torch", "dask", "napari", "sam2", "distributed")


def summaries(ds: Dataset, monkeypatch, *, with_zarr: bool) -> list[dict | None]:
    """Every item's summary, computed now (no cache): read from the small files, or from the
    project opened by :meth:`ProjectStore.open` (zarr) as before."""
    with monkeypatch.context() as m:
        if with_zarr:
            m.setattr(summary_module, "open_metadata_only",
                      lambda project: ProjectStore.open(project, mode="r"))
        return [summary_module.compute_summary(i.project) if i.project.exists() else None
                for i in ds.items]


def test_a_summary_without_zarr_is_the_summary_with_it(tmp_path, tracked, monkeypatch):  # noqa: F811
    ds = make_dataset(tmp_path, tracked)
    first, second = ds.items[0].project, ds.items[1].project
    spans = masklets(first)
    approve(first, spans[0].object, spans[0].start, spans[0].end, reviewer="kim")
    reject(second, spans[-1].object, spans[-1].start, spans[-1].end, reviewer="kim")
    for t in range(3):
        log_event(second, "navigate", annotator="ana", frames=(t, t), durable=False)
    light = summaries(ds, monkeypatch, with_zarr=False)
    assert light == summaries(ds, monkeypatch, with_zarr=True)
    assert light[0]["tracked_frames"] == 5 and light[0]["decisions"] == 1
    assert light[1]["rejected"]["count"] == 1 and light[2] is None


def test_a_project_the_store_refuses_gives_the_same_problem(tmp_path, tracked, monkeypatch):  # noqa: F811
    ds = make_dataset(tmp_path, tracked)
    building, broken = ds.items[0].project, ds.items[1].project
    doc = json.loads((building / "zarr.json").read_text())
    doc["attributes"]["napari_sam2_track"]["building"] = True
    (building / "zarr.json").write_text(json.dumps(doc))
    (broken / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attrib')
    light = summaries(ds, monkeypatch, with_zarr=False)
    assert light[:2] == summaries(ds, monkeypatch, with_zarr=True)[:2]
    assert "unfinished project" in light[0]["error"] and "metadata" in light[1]["error"]


def test_the_status_command_imports_no_zarr_and_prints_the_status(tmp_path, tracked):  # noqa: F811
    ds = make_dataset(tmp_path, tracked)
    approve(ds.items[0].project, 1, 0, 1, reviewer="kim")
    code = (
        "import contextlib, io, json, sys\n"
        "from napari_sam2_track.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = main(['dataset', 'status', {str(ds.folder)!r}, '--json'])\n"
        f"print(json.dumps({{'code': code, 'status': json.loads(out.getvalue()),\n"
        f"                  'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                      capture_output=True, text=True, timeout=120).stdout)
            for _ in range(2)]  # the first computes the summaries, the second reads the cache
    assert (ds.folder / ".cache" / "summaries.json").is_file()
    expected = json.loads(json.dumps(status(Dataset.open(ds.folder))))
    for run in runs:
        assert run["code"] == 0 and run["heavy"] == []
        assert run["status"] == expected
    assert expected["items"][0]["covered_frames"] >= 2


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the summaries are computed in parallel on 2+ cores")
def test_summaries_computed_on_several_cores_equal_those_computed_one_by_one(
        tmp_path, tracked):  # noqa: F811
    ds = make_dataset(tmp_path, tracked)
    approve(ds.items[0].project, 1, 0, 1, reviewer="kim")
    pids = tmp_path / "pids"
    pids.mkdir()
    code = (  # a process of its own: prefetch forks only where no other thread runs
        "import json, os\n"
        "from napari_sam2_track.dataset import Dataset, summary\n"
        "from napari_sam2_track.dataset.status import item_rows\n"
        "compute = summary.compute_summary\n"
        "def counted(project):\n"
        f"    (__import__('pathlib').Path({str(pids)!r}) / str(os.getpid())).touch()\n"
        "    return compute(project)\n"
        "summary.compute_summary = counted\n"
        "summary.PARALLEL_MIN = 1\n"
        f"rows = item_rows(Dataset.open({str(ds.folder)!r}))\n"
        "print(json.dumps({'pid': os.getpid(), 'rows': rows}, default=str))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    run = json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                    capture_output=True, text=True, timeout=120).stdout)
    workers = {int(p.name) for p in pids.iterdir()}
    assert workers and run["pid"] not in workers  # computed in the forked workers
    (ds.folder / ".cache" / "summaries.json").unlink()
    from napari_sam2_track.dataset.status import item_rows

    one_by_one = json.loads(json.dumps(item_rows(Dataset.open(ds.folder)), default=str))
    assert run["rows"] == one_by_one


@pytest.mark.parametrize("argv", [["export", "--help"], ["--help"]])
def test_other_commands_still_build_their_parsers(argv, capsys):
    from napari_sam2_track.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert ("--format" in out) if argv[0] == "export" else all(
        name in out for name in ("track", "export", "import", "compare", "review", "dataset"))
