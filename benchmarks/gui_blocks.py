"""What blocks napari's GUI thread while a long video is opened and its project opened from the
Prompt and Propagate dock, block by block.

A 10 ms ``QTimer`` ticks on the GUI thread; every gap over ``--threshold`` (default 20 ms) is
one block. For each block, one JSON line::

    {"step": "add_image"|"open project"|"jump to the last frame", "gap_ms": ...,
     "gui_cpu_ms": ..., "other_threads_cpu_ms": ...}

``gui_cpu_ms`` is the GUI thread's own CPU time in the gap (what it did, whatever the load);
``other_threads_cpu_ms`` the rest of the process (a worker holding the interpreter lock shows
here). A last line sums up the largest gap of each step. With ``--profile``, each block's
cProfile (the GUI thread only, from the previous tick) is printed to stderr, largest
cumulative times first.

The video is ``--video PATH`` read through the plugin's reader (as *File > Open* does), or a
lazy 8-bit array of ``--frames`` 64x64 frames added with its contrast limits (as the heartbeat
test does). ``--warm`` first makes and closes a viewer with one layer of each kind, so that
napari's one-time imports and setup are not counted (as in a session that has shown layers
before, or in the test suite).

Usage::

    OMP_NUM_THREADS=1 xvfb-run -a python benchmarks/gui_blocks.py --warm
    OMP_NUM_THREADS=1 xvfb-run -a python benchmarks/gui_blocks.py --warm --video clip.mp4 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


class Blocks:
    """Gaps between 10 ms ticks on the GUI thread, with CPU times and (optionally) profiles."""

    def __init__(self, threshold: float, profile: bool):
        from qtpy.QtCore import QTimer

        self.threshold, self.profile = threshold, profile
        self.step = ""
        self.blocks: list[dict] = []
        self.profiles: list[cProfile.Profile | None] = []
        self.timer = QTimer()
        self.timer.timeout.connect(self.beat)

    def start(self) -> None:
        self.prof = cProfile.Profile() if self.profile else None
        if self.prof is not None:
            self.prof.enable()
        self.last = (time.perf_counter(), time.thread_time(), time.process_time())
        self.timer.start(10)

    def beat(self) -> None:
        now = (time.perf_counter(), time.thread_time(), time.process_time())
        if self.prof is not None:
            self.prof.disable()
        gap, gui, process = (a - b for a, b in zip(now, self.last))
        if gap > self.threshold:
            self.blocks.append({"step": self.step, "gap_ms": round(gap * 1000),
                                "gui_cpu_ms": round(gui * 1000),
                                "other_threads_cpu_ms": max(0, round((process - gui) * 1000))})
            self.profiles.append(self.prof)
        if self.profile:
            self.prof = cProfile.Profile()
            self.prof.enable()
        self.last = (time.perf_counter(), time.thread_time(), time.process_time())

    def stop(self) -> None:
        self.timer.stop()
        self.beat()
        if self.prof is not None:
            self.prof.disable()


def pump(seconds: float) -> None:
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def wait_until(condition, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the project did not open in time")
        pump(0.01)


def warm_up() -> None:
    import napari

    viewer = napari.Viewer(show=False)
    viewer.add_image(np.zeros((3, 8, 8), np.uint8))
    viewer.add_labels(np.zeros((3, 8, 8), np.uint8))
    viewer.add_points(ndim=3)
    viewer.add_shapes(ndim=3)
    pump(0.3)
    viewer.close()


def run(args: argparse.Namespace) -> list[dict]:
    import napari

    from napari_sam2_track._qt.prompt_widget import PromptWidget

    viewer = napari.Viewer(show=False)
    dock = PromptWidget(viewer)
    viewer.window.add_dock_widget(dock, name="Prompt and Propagate")
    if args.warm:
        warm_up()
    pump(0.5)
    blocks = Blocks(args.threshold, args.profile)
    blocks.start()
    blocks.step = "add_image"
    if args.video:
        viewer.open(args.video, plugin="napari-sam2-track")
    else:
        frame = np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8)
        viewer.add_image(np.broadcast_to(frame, (args.frames, 64, 64)), name="long", contrast_limits=[0, 255])
    pump(0.05)
    blocks.step = "open project"
    dock.select_image(viewer.layers[-1].name)
    dock.project_box.path_edit.setText(str(Path(tempfile.mkdtemp()) / "long.zarr"))
    dock.project_box.open_btn.click()
    wait_until(lambda: dock.session is not None and dock.layers.complete)
    pump(0.2)
    blocks.step = "jump to the last frame"
    viewer.dims.set_current_step(0, dock.session.num_frames - 1)
    pump(0.2)
    blocks.stop()
    dock.session.close()
    if args.profile:
        for block, prof in zip(blocks.blocks, blocks.profiles):
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(args.profile_lines)
            print(f"===== {json.dumps(block)}\n{out.getvalue()}", file=sys.stderr)
    return blocks.blocks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", help="a video file, read with the plugin's reader")
    parser.add_argument("--frames", type=int, default=10_000, help="frames of the lazy array (no --video)")
    parser.add_argument("--warm", action="store_true", help="show one layer of each kind first")
    parser.add_argument("--threshold", type=float, default=0.02, help="smallest gap reported (s)")
    parser.add_argument("--profile", action="store_true", help="cProfile each block (stderr)")
    parser.add_argument("--profile-lines", type=int, default=40)
    args = parser.parse_args(argv)
    blocks = run(args)
    for block in blocks:
        print(json.dumps(block))
    summary = {}
    for block in blocks:
        summary[block["step"]] = max(summary.get(block["step"], 0), block["gap_ms"])
    print(json.dumps({"largest_gap_ms": summary,
                      "largest_gui_cpu_ms_opening": max((b["gui_cpu_ms"] for b in blocks
                                                         if b["step"] == "open project"), default=0)}))


if __name__ == "__main__":
    main()
