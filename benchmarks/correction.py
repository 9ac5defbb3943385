"""A correction against re-propagating everything: what segment-limited re-propagation saves.

On the cells sample, every object is prompted on the first frame and on ``--keyframes`` frames
spread over the video, and the whole video is propagated. Then one object gets a correcting
click in the middle of the video, through ``AnnotationSession.correct`` (snapshot of the
segment, the prompt, re-propagation of that object alone between its neighbouring keyframes),
and is undone. For comparison, the same click is followed by what a tool without segment
corrections does: propagating every object over the whole video again. Prints one JSON line
per video length with the wall seconds of each step and the frames x objects each computes::

    OMP_NUM_THREADS=2 python benchmarks/correction.py --frames 24 48 --objects 3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def run(n_frames: int, n_objects: int, keyframes: int, size: int, model, root: Path) -> dict:
    from napari_sam2_track.project import ProjectStore
    from napari_sam2_track.samples import first_frame_prompts, make_cells
    from napari_sam2_track.session import AnnotationSession
    from napari_sam2_track.sources import open_source

    sample = make_cells(n_frames=n_frames, size=(size, size))
    clicks = list(first_frame_prompts(sample).values())[:n_objects]
    store = ProjectStore.create(root / f"c{n_frames}.zarr", num_frames=n_frames, height=size, width=size)
    session = AnnotationSession(open_source(sample.frames), store, prefetch=False)
    session.set_model(model)
    ids = [session.add_object().id for _ in clicks]
    marks = np.linspace(0, n_frames - 1, keyframes + 1).round().astype(int)
    for obj, (x, y) in zip(ids, clicks):
        for t in marks:
            session.add_click(int(t), x, y, obj_id=obj)
    began = time.perf_counter()
    list(session.propagate_iter("forward"))
    first_pass = time.perf_counter() - began

    obj, (x, y) = ids[0], clicks[0]
    frame = int((marks[len(marks) // 2 - 1] + marks[len(marks) // 2]) // 2)
    began = time.perf_counter()
    correction = session.correct(frame, [(x, y, 1), (x + 3, y + 3, 0)], obj_id=obj)
    corrected = time.perf_counter() - began
    began = time.perf_counter()
    session.undo_correction(obj)
    undone = time.perf_counter() - began

    session.tracker  # the undo dropped it: rebuilt from the project, outside the timings
    began = time.perf_counter()
    session.add_click(frame, x + 3, y + 3, positive=False, obj_id=obj)
    list(session.propagate_iter("forward"))
    everything = time.perf_counter() - began
    session.close()
    segment = correction.end - correction.start + 1
    return {
        "frames": n_frames, "objects": n_objects, "keyframes_per_object": len(marks), "size": size,
        "first_propagation_s": round(first_pass, 2),
        "correction_s": round(corrected, 2), "correction_frames_x_objects": segment,
        "segment": [correction.start, correction.end],
        "undo_s": round(undone, 3),
        "repropagate_all_s": round(everything, 2), "repropagate_all_frames_x_objects": n_frames * n_objects,
        "speedup": round(everything / corrected, 1),
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, nargs="+", default=[24, 48])
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--keyframes", type=int, default=3, help="keyframes per object besides frame 0")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    from napari_sam2_track.engine.models import load_random_model

    model = load_random_model(image_size=256, seed=0, device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.frames:
            print(json.dumps(run(n, args.objects, args.keyframes, args.size, model, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
