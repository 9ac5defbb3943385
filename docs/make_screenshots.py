"""Render the napari docks in use to PNG files under docs/images/, in a 1366 x 768 window.

Schema, Prompt and Propagate (prompts, a propagation, a hand edit) and Review (after a
correction on a flagged frame and two QC decisions: table, timeline, Correct box, crops, report
and its plot; the plot alone in review_report_plot.png), the Dataset dock over a small
dataset of two annotators, and the ``nuclei3d`` volume sample in 3D at its voxel scale.

Run under a display (or ``xvfb-run -a``)::

    xvfb-run -a python docs/make_screenshots.py                 # random-init test model
    xvfb-run -a python docs/make_screenshots.py --model tiny    # trained weights, if cached

Without ``--model`` the masks come from the seeded random-init SAM 2 used by the tests (the
real architecture, meaningless weights): keyframes prompted with a mask look right, clicked and
propagated masks do not. The captions in docs/napari.md say which model made them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
import tempfile

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "images"
#: the screen the screenshots show (a common laptop screen)
SCREEN = (1366, 768)


def _model(name: str | None, device: str):
    if name:
        from napari_sam2_track.engine.models import load_model

        return load_model(name, device=device)
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import nudge_test_model

    from napari_sam2_track.engine.models import load_random_model

    model = load_random_model(image_size=256, seed=0, device="cpu")
    nudge_test_model(model.predictor)
    return model


def _wait(app, predicate, timeout=300.0):
    end = time.time() + timeout
    while not predicate():
        app.processEvents()
        time.sleep(0.02)
        if time.time() > end:
            raise TimeoutError("timed out")


def _settle(app, seconds=0.5):
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        time.sleep(0.02)


def _shot(viewer, app, name: str) -> Path:
    _settle(app)
    viewer.reset_view()
    try:  # close notification toasts (e.g. backend deprecation warnings)
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()
    except ImportError:
        pass
    _settle(app, 0.3)
    OUT.mkdir(exist_ok=True)
    path = OUT / name
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print("wrote", path)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="tiny|small|base-plus|large or a .pt (default: random-init)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--only", choices=["volume-prompt"],
                   help="render only this shot (volume-prompt: volume_prompt.png)")
    args = p.parse_args(argv)
    if args.only == "volume-prompt":
        from qtpy.QtWidgets import QApplication

        from napari_sam2_track.cli.annotate import open_annotation_viewer

        opened = open_annotation_viewer(sample="nuclei3d", show=True, screen_size=SCREEN,
                                        project=Path(tempfile.mkdtemp()) / "nuclei3d.zarr")
        volume_prompt_shot(opened.viewer, QApplication.instance(), opened.prompt_dock,
                           _model(args.model, args.device))
        opened.viewer.close()
        return 0

    import os

    os.environ["NAPARI_SAM2_TRACK_REVIEWER"] = "ana"  # the annotator the interaction log names

    import warnings

    from qtpy.QtWidgets import QApplication

    warnings.filterwarnings("ignore", message="napari support for the PyQt5")

    from napari_sam2_track.cli.annotate import open_annotation_viewer
    from napari_sam2_track.samples import make_instruments

    model = _model(args.model, args.device)
    tmp = Path(tempfile.mkdtemp(prefix="sam2-track-shots-"))
    size = (192, 256)

    # 1. Schema dock on the instruments sample
    viewer, schema_dock, dock, review_dock = open_annotation_viewer(
        sample="instruments", frames=args.frames, size=size, project=tmp / "instruments.zarr",
        screen_size=SCREEN,
    )
    app = QApplication.instance()
    schema_dock.add_attribute("handedness", "choice", "left, right", "hand holding the tool")
    schema_dock.add_attribute("truncated", "bool", "", "cut by the image border")
    schema_dock.edge_policy.setCurrentText("flag")
    schema_dock.min_pixels.setValue(20)
    schema_dock.apply()
    docks = viewer.window._wrapped_dock_widgets if hasattr(viewer.window, "_wrapped_dock_widgets") else viewer.window._dock_widgets
    docks["Schema (napari-sam2-track)"].raise_()
    _shot(viewer, app, "schema_dock.png")

    # 2. Prompt and Propagate: clicks, a box, a mask keyframe
    dock.set_model(model)
    sample = make_instruments(n_frames=args.frames, size=size)
    docks["Prompt and Propagate (napari-sam2-track)"].raise_()
    viewer.dims.set_current_step(0, 0)
    objects = {}
    for gt_id, name in ((1, "grasper"), (2, "scissors"), (3, "hook")):
        objects[gt_id] = dock.add_object(name, name)
    g, s, h = objects[1], objects[2], objects[3]
    if args.model:
        # trained weights: a positive and a negative click, and a box
        dock.select_object(g.id)
        ys, xs = np.nonzero(sample.labels[0] == 1)
        dock.add_click(float(np.median(xs)), float(np.median(ys)))
        dock.add_click(5.0, 5.0, positive=False)
        dock.select_object(s.id)
        ys, xs = np.nonzero(sample.labels[0] == 2)
        dock.add_box(float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1)
        rest = [h]
    else:
        # random weights give meaningless click masks: prompt with painted masks instead
        rest = [g, s, h]
    gt_of = {o.id: k for k, o in objects.items()}
    for obj in rest:
        dock.select_object(obj.id)
        dock.labels_data[0] = np.where(
            sample.labels[0] == gt_of[obj.id], obj.id, dock.labels_data.frame(0)
        )
        dock.flush_edits()
        dock.use_label_mask(0)
    _wait(app, lambda: dock.session.wait_idle(0.01))  # masks are computed off the GUI thread
    dock.select_object(g.id)
    viewer.layers.selection.active = dock.points_layer
    _shot(viewer, app, "prompt_dock.png")

    # 3. Propagation running (progress in the dock and the activity dock)
    worker = dock.propagate("forward")
    try:
        viewer.window._qt_window._activity_dialog.show()
    except AttributeError:
        pass
    pbar = lambda: dock.propagate_box._pbar  # noqa: E731
    _wait(app, lambda: pbar() is not None and pbar().n >= max(2, args.frames // 3))
    viewer.dims.set_current_step(0, int(pbar().n) - 1)
    dock.scroll_area.ensureWidgetVisible(dock.propagate_box.status_label)
    _shot(viewer, app, "propagation.png")
    _wait(app, lambda: not dock.running)
    assert worker is not None
    try:
        viewer.window._qt_window._activity_dialog.hide()
    except AttributeError:
        pass

    # 4. Reviewing and painting a correction on a propagated frame
    t = args.frames - 1
    viewer.dims.set_current_step(0, t)
    dock.labels_layer.mode = "paint"
    dock.labels_layer.selected_label = s.id
    dock.labels_layer.brush_size = 12
    viewer.layers.selection.active = dock.labels_layer
    for x in range(60, 120, 6):
        dock.labels_layer.paint((t, 150, x), s.id)
    dock.flush_edits()
    _shot(viewer, app, "edit_labels.png")

    # 5. Review dock: a correction on a flagged frame, QC decisions, the report and its plot
    review_shot(viewer, app, dock, review_dock, sample, g, s, h, docks)
    viewer.close()

    # 6. A dataset shared by two annotators, and a volume with its voxel scale in 3D
    dataset_shot(app)
    volume_shot(app)
    return 0


def dataset_shot(app) -> None:
    """The Dataset dock over four clips: assignments, a project in work, stages."""
    import napari

    from conftest import make_blob_video, write_jpeg_folder
    from napari_sam2_track._qt.dataset_dock import DatasetWidget
    from napari_sam2_track.dataset import Dataset
    from napari_sam2_track.project import ProjectStore

    folder = Path(tempfile.mkdtemp(prefix="dataset-"))
    ds = Dataset.init(folder / "mice", annotators=["ana", "ben"])
    clips = [write_jpeg_folder(make_blob_video(6, seed=i), folder / f"session{i}") for i in range(4)]
    ds.add_many({"source": c} for c in clips)
    ProjectStore.create(ds.items[0].project, num_frames=6, height=96, width=128).close()
    ds.claim_project(ds.items[0])
    ds.assign(["session0", "session2"], "ana")
    ds.assign(["session1", "session3"], "ben")
    ds.record_stage("session1", "returned", "ben")
    viewer = napari.Viewer(title="napari-sam2-track: dataset")
    viewer.window._qt_window.resize(*SCREEN)
    widget = DatasetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Dataset", area="right")
    widget.me_edit.setText("ana")
    widget.open_dataset(ds.folder)
    _wait(app, lambda: widget.table.rowCount() == 4 and not widget.loading, timeout=60)
    _shot(viewer, app, "dataset_dock.png")
    widget.timer.stop()
    viewer.close()


def volume_shot(app) -> None:
    """The nuclei3d sample (anisotropic voxels) with its labels, rendered in 3D."""
    import napari

    from napari_sam2_track.samples3d import make_volume_sample, sample_layers

    viewer = napari.Viewer(title="napari-sam2-track: nuclei3d")
    viewer.window._qt_window.resize(*SCREEN)
    for data, kwargs, kind in sample_layers(make_volume_sample("nuclei3d")):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.dims.ndisplay = 3
    viewer.camera.angles = (10, -30, 60)
    _shot(viewer, app, "volume_3d.png")
    viewer.close()


def volume_prompt_shot(viewer, app, dock, model) -> None:
    """nuclei3d in the Prompt and Propagate dock: the sample's example clicks on their slices,
    propagated along z both ways, shown on the slice of the first click."""
    from napari_sam2_track._napari_io import META_KEY

    dock.set_model(model)
    image = viewer.layers["nuclei3d"]
    clicks = image.metadata[META_KEY]["prompts"]["prompts"]
    for prompt in clicks:
        dock.add_object()
        (x, y), z = prompt["points"][0], prompt["z"]
        viewer.dims.set_current_step(0, z)
        dock.add_click(x, y)
    _wait(app, lambda: not dock.session.busy)
    dock.propagate("both")
    _wait(app, lambda: not dock.running, timeout=900)
    viewer.dims.set_current_step(0, clicks[0]["z"])
    _shot(viewer, app, "volume_prompt.png")


def review_shot(viewer, app, dock, review, sample, corrected, approved, rejected, docks) -> None:
    """The Review dock after a correction of ``corrected`` on its worst flagged frame, with
    ``approved`` / ``rejected`` masklets decided: its table, timeline, QC box and report plot."""
    review.reviewer_edit.setText("ben")
    review.comment_edit.setText("edges follow the tool")
    docks["Review (napari-sam2-track)"].raise_()
    _wait(app, lambda: review.data is not None and not review.loading)
    for obj, status in ((approved, "satisfactory"), (rejected, "unsatisfactory")):
        review.select_object(obj.id)
        if review.chosen_masklet() is not None:
            review.decide(status)
            _settle(app, 0.5)
            _wait(app, lambda: not review.loading)
    review.select_object(corrected.id)  # shows its worst flagged frame
    t = review.current_frame
    gt_id = 1
    ys, xs = np.nonzero(sample.labels[t] == gt_id)
    if len(xs):
        before = review.correct_box.last
        dock.select_object(corrected.id)
        dock.add_click(float(np.median(xs)), float(np.median(ys)), frame=t)
        _wait(app, lambda: review.correct_box.last is not before)  # re-propagated on a worker
    _settle(app, 1.0)
    _wait(app, lambda: not review.loading)
    review.select_object(corrected.id)
    _shot(viewer, app, "review_dock.png")
    review.select_object(rejected.id)  # its decision, with the reviewer and the comment
    _settle(app, 0.5)
    review.scroll_area.ensureWidgetVisible(review.decision_list)
    _shot(viewer, app, "review_qc.png")
    OUT.mkdir(exist_ok=True)
    window = review.report_box.open_window()
    _settle(app, 0.5)
    path = OUT / "review_report_plot.png"
    window.grab().save(str(path))
    window.close()
    print("wrote", path)


if __name__ == "__main__":
    sys.exit(main())
