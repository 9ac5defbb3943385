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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import MAX_DISCS as MAX_OBJECTS  # noqa: E402
from _common import build_test_model, disc_clicks, per_frame, propagate_clicks  # noqa: E402
from _common import make_disc_frames as make_frames  # noqa: E402


def run_one(args) -> dict:
    """Run one configuration in this process and return its measurements."""
    import torch

    model = build_test_model(args.image_size, args.device, compile=args.compile)
    cuda = args.device.startswith("cuda")
    times = propagate_clicks(model, args.folder, args.engine, disc_clicks(args.objects))
    wall, cpu = per_frame(times)
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
