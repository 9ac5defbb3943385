"""Propagation speed and memory: napari-sam2-track against upstream SAM2VideoPredictor.

Each configuration runs in its own subprocess (so peak RSS is its own) on the same model
(SAM 2.1 tiny architecture, seeded random weights), the same JPEG frames and the same prompt,
and prints one JSON line:

    {"engine": "ours"|"upstream", "frames": N, "image_size": S, "device": ...,
     "sec_per_frame": ..., "peak_rss_mb": ..., "state_mb": ..., "images_mb": ...}

``sec_per_frame`` times the propagation loop from the second frame on; ``total_sec_per_frame``
also counts set-up (upstream's ``init_state`` loading every frame; our store creation and
keyframe).

``ours`` runs the whole pipeline: frames decoded lazily from disk, tracked, and written to a
zarr project store by the writer thread. ``engine`` runs the streaming tracker alone (masks
thresholded and dropped), which is the like-for-like comparison with upstream. ``upstream`` runs ``init_state`` (which loads every
frame) and ``propagate_in_video``, thresholding each mask as a user would.

Usage::

    python benchmarks/propagation.py                       # 100 and 1000 frames, CPU, 256 px
    python benchmarks/propagation.py --frames 100 --repeats 3   # interleaved repeats
    python benchmarks/propagation.py --frames 100 --engines ours
    python benchmarks/propagation.py --device cuda --image-size 1024 --compile   # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import build_test_model, tensor_bytes  # noqa: E402


def make_frames(folder: Path, n: int, height: int = 240, width: int = 320) -> Path:
    """Write ``n`` JPEG frames of two moving discs on a textured background (cached)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == n:
        return folder
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width]
    background = rng.integers(20, 70, size=(height, width, 3), dtype=np.uint8)
    for t in range(n):
        img = background.copy()
        cx = 60 + (3 * t) % (width - 120)
        cy = height / 2 + 40 * np.sin(t / 15)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 30**2] = (210, 90, 70)
        img[(xx - 240) ** 2 + (yy - 60 - (t % 120)) ** 2 < 20**2] = (70, 200, 90)
        Image.fromarray(img).save(folder / f"{t:05d}.jpg", quality=95)
    return folder


def run_one(args) -> dict:
    """Run one configuration in this process and return its measurements."""
    import torch

    folder = Path(args.folder)
    model = build_test_model(args.image_size, args.device, compile=args.compile)
    t_setup = time.perf_counter()
    prompt = {"points": [[60, 120]], "labels": [1]}
    if args.engine == "ours":
        from napari_sam2_track.pipeline import track
        from napari_sam2_track.prompts import PromptSet
        from napari_sam2_track.sources import open_source

        source = open_source(folder)
        prompts = PromptSet.model_validate(
            {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, **prompt}]}
        )
        out = Path(tempfile.mkdtemp()) / "bench.zarr"
        start = None
        state_bytes = 0
        for progress in track(source, prompts, out, model=model, direction="forward", overwrite=True):
            state_bytes = max(state_bytes, progress.state_bytes)
            if start is None:  # exclude the first frame (prompt + warm-up) from timing
                start = time.perf_counter()
        elapsed = time.perf_counter() - start
        images_mb = 0.0
    elif args.engine == "engine":
        from napari_sam2_track.engine.tracker import StreamingTracker
        from napari_sam2_track.sources import open_source

        tracker = StreamingTracker(model, open_source(folder))
        tracker.add_points(1, 0, **prompt)
        start = None
        state_bytes = 0
        for _result in tracker.propagate("forward"):
            state_bytes = max(state_bytes, tracker.state_bytes())
            if start is None:
                start = time.perf_counter()
        elapsed = time.perf_counter() - start
        images_mb = 0.0
    else:
        p = model.predictor
        state = p.init_state(str(folder), offload_video_to_cpu=args.device == "cpu")
        p.add_new_points_or_box(state, frame_idx=0, obj_id=1, **prompt)
        start = None
        ctx = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if args.device.startswith("cuda")
            else torch.inference_mode()
        )
        with ctx:
            for _t, _ids, masks in p.propagate_in_video(state):
                _ = (masks[0, 0] > 0).cpu().numpy()
                if start is None:
                    start = time.perf_counter()
        elapsed = time.perf_counter() - start
        state_bytes = tensor_bytes(state, exclude=state["images"])
        images_mb = state["images"].numel() * state["images"].element_size() / 2**20
    total = time.perf_counter() - t_setup
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return {
        "engine": args.engine,
        "frames": args.frames[0],
        "image_size": args.image_size,
        "device": args.device,
        "compiled": bool(args.compile),
        "sec_per_frame": round(elapsed / max(1, args.frames[0] - 1), 4),
        "total_sec_per_frame": round(total / args.frames[0], 4),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "state_mb": round(state_bytes / 2**20, 2),
        "images_mb": round(images_mb, 1),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    parser.add_argument(
        "--engines", nargs="+", default=["ours", "engine", "upstream"],
        choices=["ours", "engine", "upstream"],
    )
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per configuration, interleaved between engines (shared machines are noisy)",
    )
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "nst-bench"))
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # child process
        print(json.dumps(run_one(args)), flush=True)
        return
    for n in args.frames:
        folder = make_frames(Path(args.cache) / f"frames{n}", n)
        for engine in [e for _ in range(args.repeats) for e in args.engines]:
            cmd = [
                sys.executable,
                __file__,
                "--engine", engine,
                "--folder", str(folder),
                "--frames", str(n),
                "--image-size", str(args.image_size),
                "--device", args.device,
            ] + (["--compile"] if args.compile else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode != 0 or not lines:
                print(json.dumps({"engine": engine, "frames": n, "error": out.stderr.strip()[-500:]}))
            else:
                print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
