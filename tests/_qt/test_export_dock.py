"""The Export box of the Prompt and Propagate dock on a real napari viewer (run under xvfb):
exports are read back with third-party readers (tifffile, pandas, zarr)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sam2_track.samples import make_cells  # noqa: E402

from test_prompt_widget import N_FRAMES, SIZE, _docks, _viewer_with_cells, errors  # noqa: E402,F401

EDITED = (0, 3, 5)  # frames whose labels are saved from the sample's ground truth


def _project_with_masks(make_napari_viewer, tmp_path):
    """A dock with an open project whose labels on EDITED frames are the sample's."""
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.select_image("cells")
    session = dock.open_project(tmp_path / "cells.zarr")
    assert session is not None
    truth = make_cells(n_frames=N_FRAMES, size=SIZE).labels
    for t in EDITED:
        session.persist_edit(t, truth[t])
    return viewer, dock, session


def _wait_export(qtbot, dock, timeout=120_000):
    qtbot.waitUntil(lambda: not dock.export_box.running, timeout=timeout)


def test_export_tiff_and_table_from_the_dock(make_napari_viewer, qtbot, tmp_path, errors):
    import pandas as pd
    import tifffile

    viewer, dock, session = _project_with_masks(make_napari_viewer, tmp_path)
    box = dock.export_box
    # the output path follows the format until the user types one
    box.format_combo.setCurrentText("tiff")
    assert box.out_edit.text() == str(tmp_path / "cells-tiff.tif")
    box.format_combo.setCurrentText("table")
    assert box.out_edit.text() == str(tmp_path / "cells-table.csv")

    box.format_combo.setCurrentText("tiff")
    values, napari_counts = [], []
    box.progress_bar.valueChanged.connect(lambda v: values.append((v, box.progress_bar.maximum())))
    box.export_btn.click()
    assert box.running and not box.export_btn.isEnabled() and not box.progress_bar.isHidden()
    pbar = box._pbar  # napari's progress of this export
    pbar.events.value.connect(lambda event: napari_counts.append((event.value, pbar.total)))
    _wait_export(qtbot, dock)
    assert not errors, errors
    # the bar counted the command's frames up to the total
    counted = values[: values.index((N_FRAMES, N_FRAMES)) + 1]
    assert counted == sorted(counted) and {m for _, m in counted} == {N_FRAMES}
    assert napari_counts[-1] == (N_FRAMES, N_FRAMES)
    out = tmp_path / "cells-tiff.tif"
    assert box.status_label.text().startswith(f"wrote {out}")
    assert box.export_btn.isEnabled() and not box.cancel_btn.isEnabled() and box.progress_bar.isHidden()
    stack = tifffile.imread(out)
    assert stack.shape == (N_FRAMES, *SIZE)
    expected = np.asarray(session.store.labels[:])
    assert expected[list(EDITED)].any()
    np.testing.assert_array_equal(stack, expected)

    # the table, through the scripting surface; read back with pandas
    worker = dock.export("table", tmp_path / "rows.csv")
    assert worker is not None
    _wait_export(qtbot, dock)
    assert not errors, errors
    table = pd.read_csv(tmp_path / "rows.csv")
    ids = sorted(int(i) for i in np.unique(expected) if i)
    assert sorted(table["object_id"].unique()) == ids
    for t in EDITED:
        on_frame = table[table["frame"] == t]
        for obj_id in ids:
            area = int((expected[t] == obj_id).sum())
            rows = on_frame[on_frame["object_id"] == obj_id]
            if area:
                assert int(rows["area"].iloc[0]) == area


def test_export_ome_zarr_approved_only_warns(make_napari_viewer, qtbot, tmp_path, errors):
    import zarr

    viewer, dock, session = _project_with_masks(make_napari_viewer, tmp_path)
    out = tmp_path / "approved.ome.zarr"
    assert dock.export("ome-zarr", out, approved_only=True) is not None
    _wait_export(qtbot, dock)
    assert not errors, errors
    text = dock.export_box.status_label.text()
    assert text.startswith(f"wrote {out}") and "warning:" in text and "approve" in text
    root = zarr.open_group(out, mode="r")
    attrs = dict(root["labels"].attrs)
    (name,) = attrs.get("ome", attrs)["labels"]  # OME-Zarr 0.5 keeps its keys under "ome"
    labels = np.asarray(root[f"labels/{name}/0"][:])
    assert labels.shape == (N_FRAMES, *SIZE)
    assert np.asarray(session.store.labels[:]).any() and not labels.any()  # nothing approved: no masks


def test_overwrite_refuses_an_unrelated_folder(make_napari_viewer, qtbot, tmp_path, errors):
    viewer, dock, session = _project_with_masks(make_napari_viewer, tmp_path)
    unrelated = tmp_path / "mine"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("keep me")
    assert dock.export("ctc", unrelated, overwrite=True) is None  # refused before anything runs
    assert len(errors) == 1 and "not a previous CTC export" in errors[0], errors
    text = dock.export_box.status_label.text()
    assert "\n" not in text and "not a previous CTC export" in text
    assert sorted(p.name for p in unrelated.iterdir()) == ["notes.txt"]
    assert (unrelated / "notes.txt").read_text() == "keep me"
    # a previous CTC export is replaced
    assert dock.export("ctc", tmp_path / "ctc") is not None
    _wait_export(qtbot, dock)
    assert dock.export("ctc", tmp_path / "ctc", overwrite=True) is not None
    _wait_export(qtbot, dock)
    assert len(errors) == 1, errors
    assert dock.export_box.status_label.text().startswith(f"wrote {tmp_path / 'ctc'}")


def test_cancel_leaves_nothing_and_keeps_a_previous_export(make_napari_viewer, qtbot, tmp_path, errors):
    import tifffile

    viewer, dock, session = _project_with_masks(make_napari_viewer, tmp_path)
    out = tmp_path / "labels.tif"
    assert dock.export("tiff", out) is not None
    _wait_export(qtbot, dock)
    before = out.read_bytes()
    session.persist_edit(1, np.asarray(session.store.labels[0]))  # the next export would differ
    assert dock.export("tiff", out, overwrite=True) is not None
    dock.cancel_export()  # long before the command is done starting
    _wait_export(qtbot, dock)
    assert not errors, errors
    assert dock.export_box.last_result.cancelled
    assert dock.export_box.status_label.text().startswith("export cancelled")
    assert out.read_bytes() == before
    assert tifffile.imread(out).shape == (N_FRAMES, *SIZE)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_refused_without_a_project(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    _, dock = _docks(viewer)
    assert dock.export("tiff", Path("/nonexistent/x.tif")) is None
    assert errors and "no project open" in errors[0]
    assert "no project open" in dock.export_box.status_label.text()


def test_an_output_the_export_would_refuse_is_refused_at_once_in_the_dock_s_words(
        make_napari_viewer, qtbot, tmp_path, errors):
    viewer, dock, session = _project_with_masks(make_napari_viewer, tmp_path)
    box = dock.export_box
    project = Path(session.store.path)
    before = sorted(p.name for p in project.rglob("*"))
    # into the project itself: said before anything starts (no busy bar, no worker)
    assert dock.export("tiff", project / "labels.tif") is None
    assert not box.running and box.progress_bar.isHidden() and box.export_btn.isEnabled()
    text = box.status_label.text()
    assert text == errors[-1] and "\n" not in text
    assert text.startswith(f"output path {project / 'labels.tif'} is inside the project {project}")
    assert "--out" not in text and "--overwrite" not in text
    assert sorted(p.name for p in project.rglob("*")) == before
    # an existing output without 'overwrite', and an unrelated file with it
    existing = tmp_path / "notes.tif"
    existing.write_text("keep me")
    assert dock.export("tiff", existing) is None
    assert "already exists; choose another output path or tick 'overwrite'" in box.status_label.text()
    assert dock.export("tiff", existing, overwrite=True) is None
    assert "is not a previous label TIFF export; 'overwrite' only replaces" in box.status_label.text()
    assert existing.read_text() == "keep me" and len(errors) == 3


def test_an_export_error_is_one_whole_line(make_napari_viewer, qtbot, tmp_path, errors):
    viewer, dock, session = _project_with_masks(make_napari_viewer, tmp_path)
    chunk = Path(session.store.path) / "labels" / "masklets" / "0" / "c" / str(EDITED[1]) / "0" / "0"
    chunk.write_bytes(b"not zstd" * 3)  # the frame's merged labels cannot be read any more
    assert dock.export("tiff", tmp_path / "out.tif") is not None
    _wait_export(qtbot, dock)
    assert len(errors) == 1, errors
    text = dock.export_box.status_label.text()
    assert text == errors[0] and "\n" not in text
    assert "labels/masklets/0" in text and f"frame {EDITED[1]}" in text and "nothing was exported" in text
    assert not (tmp_path / "out.tif").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_last_export_folder_is_proposed_in_the_next_session(make_napari_viewer, qtbot, tmp_path, errors):
    from napari_sam2_track import settings
    from napari_sam2_track._qt.export_box import ExportBox

    viewer, dock, session = _project_with_masks(make_napari_viewer, tmp_path)
    folder = tmp_path / "exports"
    assert dock.export("table", folder / "rows.csv") is not None
    _wait_export(qtbot, dock)
    assert not errors, errors
    assert settings.get(settings.EXPORT_DIR) == str(folder.resolve())
    assert settings.settings_path().parent == Path(os.environ[settings.ENV_DIR])
    # a new Export box (as in the next napari session) proposes that folder
    box = ExportBox(dock.hub, on_error=lambda exc: None)
    box.format_combo.setCurrentText("tiff")
    assert box.out_edit.text() == str(folder.resolve() / "cells-tiff.tif")
    # a remembered folder that is gone is not proposed
    folder.joinpath("rows.csv").unlink()
    folder.rmdir()
    box = ExportBox(dock.hub, on_error=lambda exc: None)
    assert box.out_edit.text() == str(tmp_path / "cells-ome-zarr.ome.zarr")
