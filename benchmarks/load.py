"""Load: long runs keep a flat memory footprint and leave a verified, complete project.

Two cases, each in its own subprocess (so RSS is per case): 8 objects over 1,000 frames and
1 object over 10,000 frames of small synthetic frames (128x96, moving discs on noise, read
lazily from a zarr array on disk), tracked by the real SAM 2.1 tiny architecture with seeded
random weights at 256 px (``load_random_model`` + ``nudge_test_model``, as in the tests),
forward from a point prompt on frame 0 into a project store. The resident set size is sampled
every 0.5 s through the run; after the warm-up (the first 10 % of frames) it must stay within
5 % of its value at the end of the warm-up. At the end ``napari-sam2-track info --check`` reads
every chunk and table row. One JSON line per sample (``--samples``) and one summary per case::

    nice python benchmarks/load.py                       # both cases
    nice python benchmarks/load.py --case 8x1000 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CASES = {"8x1000": (8, 1000), "1x10000": (1, 10000)}  # any OBJECTSxFRAMES also works, e.g. 2x60
HEIGHT, WIDTH = 96, 128
WARMUP = 0.10
TOLERANCE = 0.05


def rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")


def disc_centres(n_objects: int, t: int) -> list[tuple[float, float]]:
    """Where each object's disc is on frame ``t`` (a slow loop around the frame)."""
    out = []
    for i in range(n_objects):
        phase = 2 * np.pi * i / n_objects + t / 40.0
        out.append((WIDTH / 2 + 34 * np.cos(phase), HEIGHT / 2 + 26 * np.sin(phase)))
    return out


def make_video(path: Path, n_objects: int, n_frames: int) -> Path:
    """A ``(t, y, x, 3)`` uint8 zarr array, one chunk per frame."""
    import zarr

    if (path / "COMPLETE").is_file():
        return path
    arr = zarr.create_array(str(path), shape=(n_frames, HEIGHT, WIDTH, 3), chunks=(1, HEIGHT, WIDTH, 3),
                            dtype="uint8", overwrite=True, dimension_names=["t", "y", "x", "c"])
    rng = np.random.default_rng(0)
    background = rng.integers(20, 60, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    colours = rng.integers(120, 255, size=(n_objects, 3))
    block = 250
    for start in range(0, n_frames, block):
        frames = np.repeat(background[None], min(block, n_frames - start), axis=0)
        for k, t in enumerate(range(start, start + len(frames))):
            for i, (cx, cy) in enumerate(disc_centres(n_objects, t)):
                frames[k][(xx - cx) ** 2 + (yy - cy) ** 2 < 7**2] = colours[i]
        arr[start:start + len(frames)] = frames
    (path / "COMPLETE").touch()
    return path


def parse_case(name: str) -> tuple[int, int]:
    objects, frames = name.lower().split("x")
    return int(objects), int(frames)


def run_case(name: str, workdir: Path, device: str, show_samples: bool) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import nudge_test_model

    from napari_sam2_track.engine.models import load_random_model
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.sources import open_source

    n_objects, n_frames = parse_case(name)
    video = make_video(workdir / f"video_{name}.zarr", n_objects, n_frames)
    out = workdir / f"project_{name}.zarr"
    model = load_random_model(image_size=256, seed=0, device=device)
    nudge_test_model(model.predictor)
    prompts = PromptSet.model_validate({
        "objects": [{"id": i + 1} for i in range(n_objects)],
        "prompts": [{"object": i + 1, "frame": 0, "points": [[round(cx), round(cy)]], "labels": [1]}
                    for i, (cx, cy) in enumerate(disc_centres(n_objects, 0))],
    })
    samples: list[tuple[float, int, int]] = []  # (seconds, frames computed, rss)
    progress = {"computed": 0}
    stop = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append((time.perf_counter() - t0, progress["computed"], rss_bytes()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    source = open_source(str(video))
    last = None
    for last in track(source, prompts, out, model=model, direction="forward", overwrite=True,
                      command=f"benchmarks/load.py {name}"):
        progress["computed"] = last.computed
        if show_samples and (last.computed % max(1, n_frames // 20) == 0):
            print(json.dumps({"case": name, "frame": last.frame, "rss_mib": round(rss_bytes() / 2**20, 1),
                              "fps": round(last.fps, 2)}), flush=True)
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    source.close()
    warm = [(s, c, r) for s, c, r in samples if c >= WARMUP * n_frames]
    base = warm[0][2] if warm else samples[-1][2]
    peak = max(r for _, _, r in warm) if warm else base
    low = min(r for _, _, r in warm) if warm else base
    growth = (peak - base) / base
    check = subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", "info", str(out), "--check"],
                           capture_output=True, text=True)
    check_line = next((ln for ln in check.stdout.splitlines() if ln.startswith("check")), check.stderr.strip())
    return {
        "case": name, "objects": n_objects, "frames": n_frames, "size": f"{WIDTH}x{HEIGHT}",
        "device": device, "seconds": round(seconds, 1), "fps": round(last.fps, 2) if last else 0.0,
        "samples": len(samples), "rss_after_warmup_mib": round(base / 2**20, 1),
        "rss_min_mib": round(low / 2**20, 1), "rss_peak_mib": round(peak / 2**20, 1),
        "growth_after_warmup": round(growth, 4), "flat_within_5pct": bool(growth <= TOLERANCE),
        "info_check_exit": check.returncode, "info_check": check_line.strip(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", nargs="+", default=list(CASES), help="OBJECTSxFRAMES (default: 8x1000 1x10000)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "nst-load-bench"))
    p.add_argument("--samples", action="store_true", help="also print RSS every 5 %% of the frames")
    p.add_argument("--run", help=argparse.SUPPRESS)
    args = p.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if args.run:
        print(json.dumps(run_case(args.run, workdir, args.device, args.samples)), flush=True)
        return
    for name in args.case:
        cmd = [sys.executable, __file__, "--run", name, "--device", args.device, "--workdir", str(workdir)]
        # lines are passed on as they come, so a long case stopped early keeps its samples
        with subprocess.Popen(cmd + (["--samples"] if args.samples else []), text=True,
                              stdout=subprocess.PIPE) as child:
            for line in child.stdout:
                print(line, end="", flush=True)
        if child.returncode:
            print(json.dumps({"case": name, "error": f"exit {child.returncode}"}), flush=True)


if __name__ == "__main__":
    main()
