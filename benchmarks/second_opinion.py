"""A second opinion: its cost against the project's own tracking, and memory flat in frames.

On the cells sample (``--objects`` objects prompted on frame 0), the project is tracked forward
with the random-init test model (seed 0), then a second opinion re-tracks it with another
random-init model (seed 1) and compares. Each video length runs in a fresh process, so its peak
resident memory is its own. Prints one JSON line per length: seconds of the project's tracking,
of the second opinion (tracking + comparison) and of the comparison alone (run again), the
largest inference state the second model's tracker held, the peak RSS (and, for scale, the
peak once both models are loaded, before any frame), and the object-frames that disagree::

    OMP_NUM_THREADS=2 python benchmarks/second_opinion.py --frames 40 160
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(n_frames: int, n_objects: int, size: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import build_test_model

    from napari_sam2_track.pipeline import track
    from napari_sam2_track.project import ProjectStore
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.review.second_opinion import compare, open_opinion, opinion_info, run_second_opinion
    from napari_sam2_track.samples import first_frame_prompts, make_cells
    from napari_sam2_track.sources import open_source

    sample = make_cells(n_frames=n_frames, size=(size, size))
    clicks = list(first_frame_prompts(sample).values())[:n_objects]
    prompts = PromptSet.model_validate({
        "objects": [{"id": i + 1} for i in range(len(clicks))],
        "prompts": [{"object": i + 1, "frame": 0, "points": [[x, y]], "labels": [1]}
                    for i, (x, y) in enumerate(clicks)]})
    first, second = build_test_model(seed=0), build_test_model(seed=1)
    models_rss = _peak_rss_mib()
    out = Path(tempfile.mkdtemp()) / "cells.zarr"
    source = open_source(sample.frames)
    began = time.perf_counter()
    list(track(source, prompts, out, model=first, direction="forward"))
    tracking = time.perf_counter() - began
    with ProjectStore.open(out) as store:
        began = time.perf_counter()
        state = max(p.state_bytes for p in run_second_opinion(store, source, second, name="b"))
        opinion_seconds = time.perf_counter() - began
        with ProjectStore.open(open_opinion(store, "b").path) as opinion:
            began = time.perf_counter()
            compare(store, opinion)
            comparing = time.perf_counter() - began
        info = opinion_info(store, "b")
    shutil.rmtree(out.parent, ignore_errors=True)
    return {"frames": n_frames, "objects": len(clicks), "size": size,
            "seconds_tracking": round(tracking, 2), "seconds_second_opinion": round(opinion_seconds, 2),
            "seconds_compare": round(comparing, 3), "max_state_mib": round(state / 2**20, 2),
            "peak_rss_mib": _peak_rss_mib(), "peak_rss_after_models_mib": models_rss,
            "disagreeing_object_frames": sum(v["disagreeing"] for v in info["objects"].values()),
            "threads": os.environ.get("OMP_NUM_THREADS")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[40, 160])
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="frame height and width")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a single length, in this process
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run(args.one, args.objects, args.size)), flush=True)
        return
    for n in args.frames:
        subprocess.run([sys.executable, __file__, "--one", str(n), "--objects", str(args.objects),
                        "--size", str(args.size)], check=True)


if __name__ == "__main__":
    main()
