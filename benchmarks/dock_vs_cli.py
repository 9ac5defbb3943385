"""Propagation speed from the Prompt and Propagate dock against the CLI's pipeline, same video,
same model, same prompt, in the same process.

``dock``: a real napari viewer (not shown) with the Prompt and Propagate dock; a click on the
clicks layer's frame 0, then *Propagate* (forward) on napari's worker, the GUI's event loop
running: the session path (``AnnotationSession.propagate_iter``). ``cli``: ``pipeline.track``
into a new project, as ``napari-sam2-track track`` runs it. Each run prints one JSON line::

    {"path": "dock"|"cli", "repeat": i, "frames": N, "image_size": S, "sec_per_frame": ...}

``sec_per_frame`` times the propagation from its second frame on (set-up excluded); the last
line compares the medians: ``{"dock_over_cli": ...}`` (1.0: the same speed).

Usage::

    xvfb-run -a python benchmarks/dock_vs_cli.py                     # 20 frames, 256 px test model
    xvfb-run -a python benchmarks/dock_vs_cli.py --frames 60 --repeats 3
    xvfb-run -a python benchmarks/dock_vs_cli.py --video my.mp4 --model tiny --image-size 1024
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from conftest import shared_data_dir  # noqa: E402  (../shared/data or $NAPARI_SAM2_TRACK_TEST_DATA)

SHARED_VIDEO = (shared_data_dir() or HERE.parent.parent / "shared" / "data") / "video" / "bedroom.mp4"


def load(args):
    if args.model:
        from napari_sam2_track.engine.models import load_model

        return load_model(args.model, device=args.device, image_size=args.image_size)
    from _common import build_test_model

    return build_test_model(args.image_size or 256, args.device)


def video(args):
    """``(path or array, description)`` of the video: ``--video``, the shared clip, or a
    synthetic one written to a temporary folder."""
    if args.video:
        return args.video
    if SHARED_VIDEO.exists():
        return str(SHARED_VIDEO)
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import make_blob_video, write_jpeg_folder

    return str(write_jpeg_folder(make_blob_video(args.frames, 240, 320), Path(tempfile.mkdtemp()) / "jpg"))


def per_frame(progress: list[tuple[int, float]]) -> float:
    """Seconds per frame from the second frame on, from ``(computed, elapsed)`` pairs."""
    (c0, t0), (c1, t1) = progress[0], progress[-1]
    return (t1 - t0) / max(c1 - c0, 1)


def run_cli(path: str, model, frames: int, click: tuple[float, float]) -> float:
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.sources import open_source

    prompts = PromptSet.model_validate({
        "objects": [{"id": 1}],
        "prompts": [{"object": 1, "frame": 0, "points": [list(click)], "labels": [1]}]})
    out = Path(tempfile.mkdtemp(prefix="bench-cli-")) / "p.zarr"
    seen = [(p.computed, p.elapsed) for p in track(open_source(path), prompts, out, model=model,
                                                   direction="forward", start=0, end=frames - 1)]
    return per_frame(seen)


def run_dock(path: str, model, frames: int, click: tuple[float, float]) -> float:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_sam2_track import _napari_io as io
    from napari_sam2_track._qt.prompt_widget import PromptWidget
    from napari_sam2_track.sources import open_source

    viewer = napari.Viewer(show=False)
    data, kwargs, _ = io.image_layer_data(open_source(path))
    layer = viewer.add_image(data, **kwargs)
    dock = PromptWidget(viewer)
    viewer.window.add_dock_widget(dock, name="Prompt and Propagate")
    app = QApplication.instance()
    try:
        dock.set_model(model)
        dock.open_project(Path(tempfile.mkdtemp(prefix="bench-dock-")) / "p.zarr", layer=layer)
        dock.add_object("object")
        dock.add_click(*click, frame=0)
        seen: list[tuple[int, float]] = []
        worker = dock.propagate("forward", 0, frames - 1)
        worker.yielded.connect(lambda p: seen.append((p.computed, p.elapsed)))
        while dock.running:
            app.processEvents()
            time.sleep(0.002)
        app.processEvents()
        return per_frame(seen)
    finally:
        dock.session.close()
        viewer.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", help="video file or frame folder (default: the shared bedroom.mp4)")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--model", help="tiny|small|... or a .pt (default: the random-init test model)")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--click", type=float, nargs=2, default=None, metavar=("X", "Y"))
    args = p.parse_args(argv)
    os.environ.setdefault("NAPARI_SAM2_TRACK_CONFIG_DIR", tempfile.mkdtemp())  # no user settings touched

    model = load(args)
    path = video(args)
    from napari_sam2_track.sources import open_source

    source = open_source(path)
    frames = min(args.frames, len(source))
    click = tuple(args.click) if args.click else (source.width / 2, source.height / 2)
    times: dict[str, list[float]] = {"dock": [], "cli": []}
    for i in range(args.repeats):
        order = ("dock", "cli") if i % 2 == 0 else ("cli", "dock")  # interleaved
        for name in order:
            run = run_dock if name == "dock" else run_cli
            sec = run(path, model, frames, click)
            times[name].append(sec)
            print(json.dumps({"path": name, "repeat": i, "frames": frames, "image_size": model.image_size,
                              "video": Path(path).name, "sec_per_frame": round(sec, 4)}), flush=True)
    ratio = statistics.median(times["dock"]) / statistics.median(times["cli"])
    print(json.dumps({"dock_over_cli": round(ratio, 3), "dock_median": round(statistics.median(times["dock"]), 4),
                      "cli_median": round(statistics.median(times["cli"]), 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
