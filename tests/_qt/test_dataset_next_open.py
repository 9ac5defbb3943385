"""``dataset next DIR --annotator NAME --open`` on a real napari (under xvfb): it opens
``annotate`` on the item the dataset gives that person, holds that item's project while the
window is open, and leaves every item in the stage it had, the project claimed for the dataset.

The person at the window is played by a timer: it looks at the open viewer, then closes it."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from conftest import make_blob_video, write_jpeg_folder  # noqa: E402
from napari_sam2_track.cli.main import main  # noqa: E402
from napari_sam2_track.dataset import Dataset, project_owner  # noqa: E402
from napari_sam2_track.dataset.status import item_rows  # noqa: E402
from napari_sam2_track.project.lock import live_holder  # noqa: E402
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path


@pytest.fixture(autouse=True)
def _viewers_of_the_test(make_napari_viewer, monkeypatch):
    """The viewer the command makes is made by napari's test fixture (its own app model,
    closed at the end), so that it leaves nothing behind for the tests that follow."""
    import napari

    monkeypatch.setattr(napari, "Viewer", lambda **kwargs: make_napari_viewer(**kwargs))


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    ds = Dataset.init(tmp_path / "ds", annotators=["ana", "ben", "kim"])
    clips = [write_jpeg_folder(make_blob_video(4, seed=i), tmp_path / f"clip{i}") for i in range(3)]
    ds.add_many({"source": c} for c in clips)
    ds.assign(["clip0"], "ben")
    return ds


def run_next_open(ds: Dataset, qtbot, *extra: str) -> tuple[int, dict]:
    """Run the command; while its napari window is open, note what it shows and close it."""
    import napari
    from qtpy.QtCore import QTimer

    seen: dict = {}

    def look_then_close() -> None:
        viewer = napari.current_viewer()
        if viewer is None or not viewer.layers:
            QTimer.singleShot(100, look_then_close)
            return
        image = viewer.layers[0]
        seen["title"] = viewer.title
        seen["frames"] = image.data.shape[0]
        seen["first_frame"] = image.data[0].copy()
        seen["holders"] = {item.id: live_holder(item.project) for item in ds.items}
        seen["rows"] = {r["id"]: r for r in item_rows(Dataset.open(ds.folder))}
        viewer.close()  # the last window: napari.run() returns (quitting the app would stop
        # the thread workers of the tests that follow)

    QTimer.singleShot(0, look_then_close)
    rc = main(["dataset", "next", str(ds.folder), "--annotator", "ana", "--open", *extra])
    return rc, seen


def test_next_open_opens_the_free_item_and_claims_its_project(dataset, qtbot, capsys):
    before = {r["id"]: r["stage"] for r in item_rows(dataset)}
    rc, seen = run_next_open(dataset, qtbot)
    assert rc == 0
    assert capsys.readouterr().out.split()[0] == "clip1"  # clip0 is ben's: the first free one
    assert seen["title"].startswith("clip1.zarr") and seen["frames"] == 4
    frame = make_blob_video(4, seed=1)[0]  # the JPEG of clip1's first frame, near enough
    assert abs(seen["first_frame"].astype(int) - frame.astype(int)).mean() < 8
    # while the window was open: clip1's project was held by this process, and only it
    holders = seen["holders"]
    assert holders["clip1"] is not None and holders["clip1"].pid == os.getpid()
    assert holders["clip0"] is None and holders["clip2"] is None
    assert seen["rows"]["clip1"]["held_by"] and seen["rows"]["clip1"]["assignee"] == "ana"
    # after: the project is the dataset's; every item kept its stage
    ds = Dataset.open(dataset.folder)
    clip1 = ds.item("clip1")
    owner = project_owner(clip1.project)
    assert owner["dataset"] == ds.id and owner["item"] == "clip1"
    assert owner["schema_version"] == ds.schema_version
    rows = {r["id"]: r for r in item_rows(ds)}
    assert {i: r["stage"] for i, r in rows.items()} == before == dict.fromkeys(before, "new")
    assert [rows[i]["assignee"] for i in ("clip0", "clip1", "clip2")] == ["ben", "ana", None]
    assert not any(r["problem"] for r in rows.values())
    assert not ds.item("clip2").project.exists()


def test_next_open_gives_a_returned_item_back_in_its_stage(dataset, qtbot, capsys):
    dataset.assign(["clip2"], "ana")
    dataset.record_stage("clip2", "returned", "kim", "object 1 leaks")
    rc, seen = run_next_open(dataset, qtbot)
    assert rc == 0
    assert capsys.readouterr().out.split()[:2] == ["clip2", "returned"]  # corrections first
    assert seen["title"].startswith("clip2.zarr")
    assert seen["holders"]["clip2"].pid == os.getpid()
    rows = {r["id"]: r for r in item_rows(Dataset.open(dataset.folder))}
    assert rows["clip2"]["stage"] == "returned" and rows["clip2"]["assignee"] == "ana"
    assert rows["clip1"]["assignee"] is None and rows["clip1"]["stage"] == "new"
    assert project_owner(dataset.item("clip2").project)["item"] == "clip2"


def test_next_open_with_nothing_to_do_opens_nothing(dataset, qtbot, capsys):
    import napari

    dataset.assign(["clip1", "clip2"], "ben")
    assert main(["dataset", "next", str(dataset.folder), "--annotator", "ana", "--open"]) == 0
    assert capsys.readouterr().out.strip() == "nothing to do for ana"
    assert napari.current_viewer() is None
    assert not any(i.project.exists() for i in dataset.items)
