"""Time per frame against the number of objects: batched engine, exact engine, upstream SAM 2.

Each configuration runs in its own subprocess on the same model (SAM 2.1 tiny architecture,
seeded random weights nudged as in the tests), the same 960x540 JPEG frames of moving discs and
the same prompts (one click on each of N discs on frame 0), and prints one JSON line:

    {"engine": "batched"|"exact"|"upstream", "objects": N, "frames": F, "image_size": S,
     "device": ..., "compiled": ..., "sec_per_frame": ..., "cpu_sec_per_frame": ...,
     "peak_rss_mb": ..., "peak_gpu_mb": ...}

* ``batched``: ``StreamingTracker(batch_objects=True)``, every object of a frame in one pass;
* ``exact``: ``StreamingTracker(batch_objects=False)``, one object at a time as upstream;
* ``upstream``: ``SAM2VideoPredictor.init_state`` + ``propagate_in_video``.

``sec_per_frame`` is wall time per frame from the second frame on (the first is the prompted
frame); ``cpu_sec_per_frame`` is the process's CPU time over the same frames, which shared
machines disturb less. Configurations are interleaved (engine innermost, then object count,
then repeat), and a final line per object count gives the median ratios to upstream.

Usage::

    python benchmarks/objects.py                                   # CPU, 256 px, 30 frames
    python benchmarks/objects.py --image-size 1024 --frames 8      # CPU, 1024 px
    python benchmarks/objects.py --objects 1 8 --repeats 3
    python benchmarks/objects.py --device cuda --image-size 1024 --frames 100 --compile
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HEIGHT, WIDTH = 540, 960
MAX_OBJECTS = 16


def disc_centres(t: int) -> list[tuple[float, float]]:
    """Centres (x, y) of the 16 discs on frame ``t``: a 4x4 grid, each disc drifting."""
    centres = []
    for i in range(MAX_OBJECTS):
        gx, gy = i % 4, i // 4
        x = 130 + 230 * gx + 20 * np.sin(t / 7 + i)
        y = 80 + 125 * gy + 15 * np.cos(t / 9 + i)
        centres.append((float(x), float(y)))
    return centres


def make_frames(folder: Path, n: int) -> Path:
    """Write ``n`` 960x540 JPEG frames of 16 coloured discs on a textured background (cached)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == n:
        return folder
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    background = rng.integers(20, 70, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    colours = rng.integers(90, 255, size=(MAX_OBJECTS, 3), dtype=np.uint8)
    for t in range(n):
        img = background.copy()
        for (cx, cy), colour in zip(disc_centres(t), colours):
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < 35**2] = colour
        Image.fromarray(img).save(folder / f"{t:05d}.jpg", quality=95)
    return folder


def build_model(args):
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import nudge_test_model  # same nudged random-init model as the tests

    from napari_sam2_track.engine.models import load_random_model

    model = load_random_model(image_size=args.image_size, device=args.device)
    nudge_test_model(model.predictor)
    if args.compile:
        model.predictor._compile_all_components()
    return model


def run_one(args) -> dict:
    """Run one configuration in this process and return its measurements."""
    import torch

    model = build_model(args)
    cuda = args.device.startswith("cuda")
    clicks = [[list(c)] for c in disc_centres(0)[: args.objects]]
    times: list[tuple[float, float]] = []  # (wall, cpu) after each frame

    def tick():
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter(), time.process_time()))

    if args.engine in ("batched", "exact"):
        from napari_sam2_track.engine.tracker import StreamingTracker
        from napari_sam2_track.sources import open_source

        tracker = StreamingTracker(
            model, open_source(args.folder), batch_objects=args.engine == "batched"
        )
        for obj, points in enumerate(clicks, start=1):
            tracker.add_points(obj, 0, points=points, labels=[1])
        for _result in tracker.propagate("forward"):
            tick()
    else:
        p = model.predictor
        state = p.init_state(args.folder, offload_video_to_cpu=not cuda)
        for obj, points in enumerate(clicks, start=1):
            p.add_new_points_or_box(state, frame_idx=0, obj_id=obj, points=points, labels=[1])
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.inference_mode()
        with ctx:
            for _t, _ids, masks in p.propagate_in_video(state):
                _ = (masks[:, 0] > 0).cpu().numpy()
                tick()
    n = len(times) - 1
    wall = (times[-1][0] - times[0][0]) / n
    cpu = (times[-1][1] - times[0][1]) / n
    return {
        "engine": args.engine,
        "objects": args.objects,
        "frames": len(times),
        "image_size": args.image_size,
        "device": args.device,
        "compiled": bool(args.compile),
        "sec_per_frame": round(wall, 4),
        "cpu_sec_per_frame": round(cpu, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument(
        "--engines", nargs="+", default=["batched", "exact", "upstream"],
        choices=["batched", "exact", "upstream"],
    )
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs per config")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "nst-bench"))
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # child process
        args.objects = args.objects[0]
        print(json.dumps(run_one(args)), flush=True)
        return
    if max(args.objects) > MAX_OBJECTS or min(args.objects) < 1:
        parser.error(f"--objects must be between 1 and {MAX_OBJECTS}")
    folder = make_frames(Path(args.cache) / f"discs{args.frames}", args.frames)
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for n_obj in args.objects:
            for engine in args.engines:
                cmd = [
                    sys.executable, __file__,
                    "--engine", engine,
                    "--folder", str(folder),
                    "--objects", str(n_obj),
                    "--frames", str(args.frames),
                    "--image-size", str(args.image_size),
                    "--device", args.device,
                ] + (["--compile"] if args.compile else [])
                out = subprocess.run(cmd, capture_output=True, text=True)
                lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
                if out.returncode != 0 or not lines:
                    err = out.stderr.strip()[-500:]
                    print(json.dumps({"engine": engine, "objects": n_obj, "error": err}))
                    continue
                print(lines[-1], flush=True)
                row = json.loads(lines[-1])
                results.setdefault((engine, n_obj), []).append(row)
    for n_obj in args.objects:
        up = results.get(("upstream", n_obj))
        if not up:
            continue
        summary = {"summary": True, "objects": n_obj, "image_size": args.image_size}
        for engine in ("batched", "exact"):
            rows = results.get((engine, n_obj))
            if rows:
                for key in ("sec_per_frame", "cpu_sec_per_frame"):
                    ratio = statistics.median(r[key] for r in rows) / statistics.median(
                        r[key] for r in up
                    )
                    summary[f"{engine}_{key}_vs_upstream"] = round(ratio, 3)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
