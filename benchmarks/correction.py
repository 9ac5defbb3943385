"""A correction against re-propagating everything: what segment-limited re-propagation saves.

On the cells sample, every object is prompted on the first frame and on ``--keyframes`` frames
spread over the video, and the whole video is propagated. Then one object gets a correcting
click in the middle of the video, through ``AnnotationSession.correct`` (snapshot of the
segment, the prompt, re-propagation of that object alone between its neighbouring keyframes),
and is undone. For comparison, the same click is followed by what a tool without segment
corrections does: propagating every object over the whole video again. Prints one JSON line
per video length with the wall seconds of each step and the frames x objects each computes::

    OMP_NUM_THREADS=2 python benchmarks/correction.py --frames 24 48 --objects 3

``--early-stop``: one object keyed on the first and last frame of a long segment (the cells
sample, or ``--video``), propagated, then corrected on ``--fix-at`` (default: a tenth into the
segment) once with the early stop (``--agree-frames``, ``--agree-iou``) and once over the whole
segment, on two copies of the same project in the same run. With ``--keyframe-every K`` the
object is keyed every K frames instead (and on the last), and each segment between keyframes
gets one correction a tenth into it (the figures are then sums over the segments). Per case one
JSON line: ``segment_frames``, ``frames_repropagated``, ``seconds`` (early stop),
``seconds_full_segment``, ``differ_after_stop`` (frames of the segments beyond the stops where
the full segment's mask differs from the kept one: IoU below the threshold or another
presence) and the storage of the corrections' versions: ``version_frames_bytes`` (frames
changed and bytes on disk of each, early and full), ``bytes_per_changed_frame`` and
``bytes_fixed_per_version`` (a straight line through them)::

    OMP_NUM_THREADS=2 python benchmarks/correction.py --early-stop --frames 1000 --nudge
    OMP_NUM_THREADS=2 python benchmarks/correction.py --early-stop --frames 200 --nudge \
        --keyframe-every 25 --video ../shared/data/video/bedroom.mp4
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


def _iou_differs(a: np.ndarray, b: np.ndarray, iou: float) -> bool:
    if a.any() != b.any():
        return True
    union = (a | b).sum()
    return bool(union) and (a & b).sum() / union < iou


def _frame_count(ranges: list[list[int]]) -> int:
    return sum(last - first + 1 for first, last in ranges)


def _correct_all(source, path: Path, model, obj: int, fixes: list[int], clicks, early: bool) -> list:
    """Correct ``obj`` on each frame of ``fixes`` in the project at ``path``, with the early stop
    or over the whole segment: ``(correction, seconds)`` per fix (the tracker is built outside)."""
    from napari_sam2_track.project import ProjectStore
    from napari_sam2_track.session import AnnotationSession

    session = AnnotationSession(source, ProjectStore.open(path), prefetch=False)
    session.set_model(model)
    session.corrections.stop_early = early
    session.tracker  # built outside the timing
    out = []
    for frame in fixes:
        began = time.perf_counter()
        correction = session.correct(frame, clicks, obj_id=obj)
        out.append((correction, time.perf_counter() - began))
    session.close()
    return out


def run_early_stop(n_frames: int, size: int, model, root: Path, *, video: str | None, fix_at: int | None,
                   agree_frames: int, agree_iou: float, keyframe_every: int | None = None) -> dict:
    """Correct one object with the early stop and over the whole segment, on two copies of the
    same project: one frame of the segment between the first and last frame, or (with
    ``keyframe_every``) one frame in each segment between keyframes ``keyframe_every`` apart."""
    import shutil

    from napari_sam2_track.project import ProjectStore
    from napari_sam2_track.project.versions import list_versions
    from napari_sam2_track.samples import first_frame_prompts, make_cells
    from napari_sam2_track.session import AnnotationSession
    from napari_sam2_track.sources import open_source

    if video:
        source = open_source(video)
        n_frames = min(n_frames, len(source))
        x, y = source.width / 2, source.height / 2
    else:
        sample = make_cells(n_frames=n_frames, size=(size, size))
        source = open_source(sample.frames)
        x, y = list(first_frame_prompts(sample).values())[0]
    last = n_frames - 1
    keyframes = sorted({*range(0, last, keyframe_every or last), last})
    path = root / f"e{n_frames}.zarr"
    store = ProjectStore.create(path, num_frames=len(source), height=source.height, width=source.width)
    schema = store.schema
    store.set_schema(schema.model_copy(update={"review": schema.review.model_copy(
        update={"agree_frames": agree_frames, "agree_iou": agree_iou})}))
    session = AnnotationSession(source, store, prefetch=False)
    session.set_model(model)
    obj = session.add_object().id
    for t in keyframes:
        session.add_click(t, x, y, obj_id=obj)
    began = time.perf_counter()
    list(session.propagate_iter("forward", 0, last))
    first_pass = time.perf_counter() - began
    session.close()
    full_path = root / f"f{n_frames}.zarr"
    shutil.copytree(path, full_path)
    if keyframe_every:  # a tenth into each segment (at least one frame after its keyframe)
        fixes = [a + max(1, (b - a) // 10) for a, b in zip(keyframes, keyframes[1:]) if b - a >= 2]
    else:
        fixes = [fix_at if fix_at is not None else max(1, last // 10)]
    clicks = [(x, y, 1), (x + 3, y + 3, 0)]
    early_runs = _correct_all(source, path, model, obj, fixes, clicks, early=True)
    full_runs = _correct_all(source, full_path, model, obj, fixes, clicks, early=False)
    a, b = ProjectStore.open(path, mode="r"), ProjectStore.open(full_path, mode="r")
    versions = {v.number: v for v in list_versions(a, obj)}
    versions_full = {v.number: v for v in list_versions(b, obj)}
    beyond_all, differ, per_version = 0, 0, []
    for (early, _), (full, _) in zip(early_runs, full_runs):
        first, end = early.segment
        beyond = [t for t in range(first, end + 1) if not early.start <= t <= early.end]
        beyond_all += len(beyond)
        differ += int(sum(_iou_differs(a.mask(obj, t), b.mask(obj, t), agree_iou) for t in beyond))
        for v in (versions.get(early.version), versions_full.get(full.version)):
            if v is not None:
                per_version.append([_frame_count(v.frames), v.bytes])
    seconds = sum(s for _, s in early_runs)
    seconds_full = sum(s for _, s in full_runs)
    early, full = early_runs[0][0], full_runs[0][0]
    line = {
        "case": "early_stop" if not keyframe_every else f"early_stop_keyframes_every_{keyframe_every}",
        "video": video or "cells (procedural)", "size": [source.height, source.width],
        "frames": n_frames, "keyframes": len(keyframes), "corrections": len(fixes),
        "segment_frames": sum(c.segment[1] - c.segment[0] + 1 for c, _ in early_runs),
        "fix_at": fixes if keyframe_every else fixes[0],
        "frames_repropagated": sum(c.frames for c, _ in early_runs),
        "seconds": round(seconds, 2), "seconds_full_segment": round(seconds_full, 2),
        "frames_full_segment": sum(c.frames for c, _ in full_runs),
        "ratio": round(seconds / seconds_full, 3),
        "frames_after_stop": beyond_all, "differ_after_stop": differ,
        "agree_frames": agree_frames, "agree_iou": agree_iou,
    }
    if not keyframe_every:
        line["stops"] = {k: int(v) for k, v in early.stops.items()}
    # storage: bytes of each correction's version against the frames it changed (early and full)
    line["version_frames_bytes"] = per_version
    if per_version:
        line["version_bytes"], line["version_bytes_full_segment"] = per_version[0][1], per_version[1][1]
        frames_all, bytes_all = np.array(per_version, float).T
        slope, fixed = np.polyfit(frames_all, bytes_all, 1) if len(set(frames_all)) > 1 else (0.0, 0.0)
        line["bytes_per_changed_frame"] = round(float(slope))
        line["bytes_fixed_per_version"] = round(float(fixed))
    line.update({"first_propagation_s": round(first_pass, 2), "load_average": round(os.getloadavg()[0], 1)})
    return line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, nargs="+", default=[24, 48])
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--keyframes", type=int, default=3, help="keyframes per object besides frame 0")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--early-stop", action="store_true",
                   help="a correction that stops once the track agrees, against the whole segment")
    p.add_argument("--video", help="--early-stop: a video instead of the procedural cells")
    p.add_argument("--fix-at", type=int, help="--early-stop: the corrected frame")
    p.add_argument("--keyframe-every", type=int, metavar="K",
                   help="--early-stop: keyframes every K frames, one correction in each segment")
    p.add_argument("--agree-frames", type=int, default=5)
    p.add_argument("--agree-iou", type=float, default=0.9)
    p.add_argument("--nudge", action="store_true", help="make the random model's masks usable (as the tests)")
    args = p.parse_args()

    from napari_sam2_track.engine.models import load_random_model

    model = load_random_model(image_size=256, seed=0, device=args.device)
    if args.nudge:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import nudge_test_model

        nudge_test_model(model.predictor)
    if args.early_stop:
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.frames:
                print(json.dumps(run_early_stop(n, args.size, model, Path(tmp), video=args.video,
                                                fix_at=args.fix_at, agree_frames=args.agree_frames,
                                                agree_iou=args.agree_iou,
                                                keyframe_every=args.keyframe_every)), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.frames:
            print(json.dumps(run(n, args.objects, args.keyframes, args.size, model, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
