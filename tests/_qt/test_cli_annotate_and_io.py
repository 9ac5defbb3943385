"""``annotate`` command, npe2 manifest, readers, writer and sample data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_sam2_track import _napari_io as io  # noqa: E402
from napari_sam2_track.cli.main import build_parser, main  # noqa: E402
from napari_sam2_track.cli.annotate import open_annotation_viewer  # noqa: E402
from napari_sam2_track.project import STATE_EDITED, ProjectStore  # noqa: E402
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path


def test_manifest_validates_with_imports():
    exe = [sys.executable, "-m", "npe2", "validate", "napari-sam2-track", "--imports"]
    out = subprocess.run(exe, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_plugin_import_is_light():
    code = (
        "import sys, napari_sam2_track._napari_io, napari_sam2_track.session, "
        "napari_sam2_track._qt.prompt_widget, napari_sam2_track._qt.schema_widget; "
        "print(sorted(m for m in ('torch', 'sam2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_annotate_sample_opens_docks(qtbot, tmp_path):
    viewer, schema_dock, dock, review = open_annotation_viewer(
        sample="cells", frames=6, size=(64, 64), project=tmp_path / "c.zarr", show=False
    )
    try:
        # the Review dock follows the same session, and shows its objects once read
        assert review.session is dock.session
        obj = dock.add_object("cell")
        qtbot.waitUntil(lambda: review.data is not None and not review.loading
                        and [t.id for t in review.data.tracks] == [obj.id], timeout=20_000)
        assert review.table.rowCount() == 1 and review.correct_box.auto_check.isChecked()
        assert dock.session.auto_correct
        names = [layer.name for layer in viewer.layers]
        assert names[:2] == ["cells", "cells ground truth"]
        assert {"cells labels", "cells clicks", "cells boxes"} <= set(names)
        assert dock.session is not None and dock.session.store.path == tmp_path / "c.zarr"
        # the sample's categories become the project's schema
        assert dock.session.schema.category_names() == ["nucleus", "mitotic cell"]
        assert schema_dock.schema().category_names() == ["nucleus", "mitotic cell"]
        assert "Alt+click" in dock.toolTip()
        # no "&" read as a keyboard mnemonic in the tab titles
        from qtpy.QtWidgets import QDockWidget

        titles = [d.windowTitle() for d in viewer.window._qt_window.findChildren(QDockWidget)]
        assert any(t.startswith("Prompt and Propagate") for t in titles)
        assert any(t.startswith("Review") for t in titles)
        assert not any("&" in t for t in titles), titles
    finally:
        viewer.close()


def test_annotate_cli_errors(tmp_path, capsys):
    args = build_parser().parse_args(["annotate", "--sample", "cells"])
    assert args.sample == "cells" and args.video is None
    assert main(["annotate"]) == 2
    assert "either a VIDEO or --sample" in capsys.readouterr().err
    assert main(["annotate", str(tmp_path / "missing.mp4")]) == 2
    assert "not found" in capsys.readouterr().err
    args = build_parser().parse_args(["annotate", "--sample", "cells", "--model", "m.pt", "--image-size", "512"])
    assert (args.model, args.image_size, args.device) == ("m.pt", 512, None)
    assert main(["annotate", "--sample", "cells", "--image-size", "100"]) == 2  # before any window
    assert "image size 100" in capsys.readouterr().err


def test_tiff_reader_is_lazy(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "stack.tif"
    data = (np.arange(5 * 16 * 20, dtype=np.uint16).reshape(5, 16, 20) * 7)
    tifffile.imwrite(path, data, photometric="minisblack", metadata={"axes": "TYX"})
    reader = io.get_tiff_reader(str(path))
    assert reader is not None and io.get_video_reader(str(path)) is None
    [(arr, kwargs, kind)] = reader(str(path))
    assert kind == "image" and isinstance(arr, io.FrameArray)
    assert arr.shape == (5, 16, 20) and arr.dtype == np.uint16
    assert np.array_equal(arr[3], data[3]) and np.array_equal(arr[1:3, 2:4], data[1:3, 2:4])
    assert np.array_equal(np.asarray(arr), data)
    assert len(kwargs["contrast_limits"]) == 2


def test_video_reader_is_lazy(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for t in range(6):
            img = np.full((32, 32, 3), 40 * t, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    reader = io.get_video_reader(str(path))
    [(arr, kwargs, kind)] = reader(str(path))
    assert kwargs["rgb"] and arr.shape == (6, 32, 32, 3)
    assert abs(int(arr[5].mean()) - 200) < 10


def test_project_reader_and_writer(tmp_path):
    labels = np.zeros((4, 12, 16), np.uint32)
    labels[1, 2:5, 3:7] = 2
    labels[2, 6:9, 1:4] = 5
    out = tmp_path / "new.zarr"
    assert io.write_labels(str(out), labels, {"name": "hand"}) == [str(out)]
    store = ProjectStore.open(out)
    assert store.object_ids() == [2, 5] and store.states(2)[1] == STATE_EDITED
    assert np.array_equal(store.labels[:], labels)
    # into an existing project: only changed frames, marked edited
    labels[3, 0:2, 0:2] = 2
    io.write_labels(str(out), labels, {"name": "hand"})
    assert ProjectStore.open(out).states(2)[3] == STATE_EDITED
    with pytest.raises(Exception, match="shape"):
        io.write_labels(str(out), labels[:2], {"name": "short"})
    with pytest.raises(Exception, match=r"\(t, y, x\)"):
        io.write_labels(str(tmp_path / "x.zarr"), labels[0], {"name": "2d"})
    # reading a project
    assert io.get_project_reader(str(tmp_path / "nothing.zarr")) is None
    layers = io.get_project_reader(str(out))(str(out))
    data, kwargs, kind = layers[-1]
    assert kind == "labels" and np.array_equal(data[1], labels[1])
    assert set(kwargs["colormap"]) >= {None, 0, 2, 5}


def test_sample_data():
    for make, rgb in ((io.sample_cells, False), (io.sample_instruments, True)):
        (img, ikw, ik), (lab, lkw, lk) = make(n_frames=4, size=(48, 48))
        assert (ik, lk) == ("image", "labels")
        assert img.shape[:3] == lab.shape == (4, 48, 48)
        assert ikw.get("rgb", False) == rgb
        if not rgb:
            assert img.dtype == np.uint16
        assert set(np.unique(lab)) - {0} <= set(lkw["colormap"])
