"""Store writer throughput alone (no model): this checkout's writer against another revision's.

Every configuration runs in its own subprocess and prints one JSON line::

    {"writer": "ours"|"<ref>", "height": H, "width": W, "objects": N, "frames": F,
     "fps": ..., "rss_mb_start": ..., "rss_mb_end": ..., "overlap_frames": ..., "store_mb": ...}

Masks are smooth blobs (a disc with a wobbly outline, 1-20 % of the frame each) that drift
from frame to frame, so objects overlap on some frames as real ones do; 24 distinct frames are
generated up front and cycled, so generating them costs nothing in the timing. ``fps`` is
frames submitted per second from the first ``submit`` to the end of ``close`` (every frame on
disk); ``cpu_ms_per_frame`` is the process's CPU time (all threads) per frame, which depends
less on other work running on the machine (``load_avg_1min``). The baseline revision (default ``main``) is exported with ``git archive`` into the cache
folder and imported from there.

Usage::

    python benchmarks/writer.py                                  # 1080p x 1 and 8, 720p x 2
    python benchmarks/writer.py --frames 300 --baseline-frames 60 --repeats 2
    python benchmarks/writer.py --baseline none                  # ours only
    python benchmarks/writer.py --workers 1                      # one encoding thread
    python benchmarks/writer.py --codecs                         # codec choice for layers
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
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGS = [(1080, 1920, 1), (1080, 1920, 8), (720, 1280, 2)]
DISTINCT_FRAMES = 24


def blob_masks(height: int, width: int, objects: int, frames: int, seed: int = 0) -> list[dict]:
    """``frames`` dicts of ``{object id: bool mask}``: drifting smooth blobs, 1-20 % each."""
    rng = np.random.default_rng(seed)
    fracs = rng.uniform(0.01, 0.2, objects)
    radius = np.sqrt(fracs * height * width / np.pi)
    centre = np.stack([rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)], 1)
    velocity = rng.normal(0, 0.01 * min(height, width), (objects, 2))
    harmonics = rng.uniform(-0.12, 0.12, (objects, 4))
    phases = rng.uniform(0, 2 * np.pi, (objects, 4))
    out = []
    for t in range(frames):
        masks = {}
        for i in range(objects):
            r = radius[i]
            cy, cx = np.clip(centre[i] + velocity[i] * t, r, [height - r, width - r])
            y0, y1 = int(max(0, cy - 1.5 * r)), int(min(height, cy + 1.5 * r + 1))
            x0, x1 = int(max(0, cx - 1.5 * r)), int(min(width, cx + 1.5 * r + 1))
            yy, xx = np.mgrid[y0:y1, x0:x1]
            theta = np.arctan2(yy - cy, xx - cx)
            edge = r * (1 + sum(harmonics[i, k] * np.cos((k + 1) * theta + phases[i, k] + 0.05 * t)
                                for k in range(4)))
            mask = np.zeros((height, width), bool)
            mask[y0:y1, x0:x1] = np.hypot(yy - cy, xx - cx) < edge
            masks[i + 1] = mask
        out.append(masks)
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_one(args) -> dict:
    from napari_sam2_track.project import ProjectStore, StoreWriter
    from napari_sam2_track.prompts import ObjectSpec

    h, w, n = args.height, args.width, args.objects
    pool = blob_masks(h, w, n, DISTINCT_FRAMES)
    overlap = sum(
        bool((np.sum([m.astype(np.uint8) for m in masks.values()], axis=0) > 1).any()) for masks in pool
    )
    folder = Path(tempfile.mkdtemp(dir=args.tmp))
    try:
        store = ProjectStore.create(folder / "p.zarr", num_frames=args.frames, height=h, width=w)
        store.set_objects([ObjectSpec(id=i + 1) for i in range(n)])
        presence = {i + 1: 5.0 for i in range(n)}
        import inspect

        # the writer alone, at normal priority: today's writer encodes in zarr's own (normal
        # priority) thread, ours in threads that tracking runs below the model's
        normal = "low_priority" in inspect.signature(StoreWriter).parameters
        extra = {"low_priority": False} if normal else {}
        if args.workers and "workers" in inspect.signature(StoreWriter).parameters:
            extra["workers"] = args.workers
        writer = StoreWriter(store, 1, **extra)
        rss_start = rss_mb()
        cpu_start = time.process_time()
        start = time.perf_counter()
        for t in range(args.frames):
            masks = pool[t % DISTINCT_FRAMES]
            writer.submit(SimpleNamespace(frame=t, direction="forward", masks=masks,
                                          presence=presence, prompted=set()))
        writer.close()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        rss_end = rss_mb()
        # spot check: a frame reads back bit-exactly, through the revision's own reader
        t = args.frames - 1
        for obj_id, mask in pool[t % DISTINCT_FRAMES].items():
            assert np.array_equal(store.mask(obj_id, t), mask), f"frame {t} object {obj_id} differs"
        size = sum(p.stat().st_size for p in (folder / "p.zarr").rglob("*") if p.is_file())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "writer": args.label,
        "height": h,
        "width": w,
        "objects": n,
        "frames": args.frames,
        "workers": args.workers or "default",
        "fps": round(args.frames / elapsed, 1),
        "ms_per_frame": round(1000 * elapsed / args.frames, 2),
        "cpu_ms_per_frame": round(1000 * cpu / args.frames, 2),
        "load_avg_1min": round(os.getloadavg()[0], 1),
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "overlap_frames": f"{overlap}/{DISTINCT_FRAMES}",
        "store_mb": round(size / 2**20, 2),
    }


def codecs(args) -> None:
    """CPU time, GIL release and size of candidate codecs on realistic label frames."""
    import threading

    import numcodecs

    from napari_sam2_track.project.layers import layers_from_masks

    try:
        import imagecodecs
    except ImportError:
        imagecodecs = None
    candidates = {f"numcodecs-zstd-{lv}": numcodecs.Zstd(level=lv).encode for lv in (1, 3, 5)}
    if imagecodecs is not None:
        for lv in (1, 3):
            candidates[f"imagecodecs-zstd-{lv}"] = lambda a, lv=lv: imagecodecs.zstd_encode(a, level=lv)
    candidates["numcodecs-lz4"] = numcodecs.LZ4().encode
    candidates["blosc-lz4-shuffle"] = numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE).encode
    candidates["blosc-zstd1-bitshuffle"] = numcodecs.Blosc("zstd", 1, numcodecs.Blosc.BITSHUFFLE).encode
    for h, w, n in CONFIGS:
        labels = [layers_from_masks(m, (h, w))[0] for m in blob_masks(h, w, n, 8)]
        for name, encode in candidates.items():
            size, cpu = 0, 0.0
            for frame in labels * 3:
                t0 = time.thread_time()
                size += len(encode(frame))
                cpu += time.thread_time() - t0
            # GIL: two threads encoding at once take about half the time if it is released
            def work():
                for frame in labels:
                    encode(frame)
            t0 = time.perf_counter()
            work(), work()
            serial = time.perf_counter() - t0
            threads = [threading.Thread(target=work) for _ in range(2)]
            t0 = time.perf_counter()
            [t.start() for t in threads]
            [t.join() for t in threads]
            parallel = time.perf_counter() - t0
            k = 3 * len(labels)
            print(json.dumps({"codec": name, "height": h, "width": w, "objects": n,
                              "cpu_ms": round(1000 * cpu / k, 3), "kb_per_frame": round(size / k / 1024, 1),
                              "two_threads_speedup": round(serial / parallel, 2)}), flush=True)


def baseline_src(ref: str, cache: Path) -> Path:
    """The ``src`` folder of revision ``ref`` (exported once into ``cache``)."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=HERE, capture_output=True, text=True, check=True)
    folder = cache / f"src-{sha.stdout.strip()[:12]}"
    if not (folder / "src").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", ref, "src"], cwd=HERE.parent, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--baseline", default="main", help="git revision to compare with, or 'none'")
    parser.add_argument("--baseline-frames", type=int, default=60, help="frames for the (slow) baseline")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="encoding threads (default: the writer's)")
    parser.add_argument("--codecs", action="store_true", help="compare codecs for the label layers")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "nst-bench"))
    parser.add_argument("--tmp", default=None, help="folder for the stores written (default: temp)")
    parser.add_argument("--height", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--objects", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.codecs:
        sys.path.insert(0, str(HERE.parent / "src"))
        codecs(args)
        return
    if args.label:  # child process
        print(json.dumps(run_one(args)), flush=True)
        return
    ours = str(HERE.parent / "src")
    writers = [("ours", ours, args.frames)]
    if args.baseline != "none":
        writers.append((args.baseline, str(baseline_src(args.baseline, Path(args.cache))), args.baseline_frames))
    for h, w, n in CONFIGS:
        for _ in range(args.repeats):
            for label, src, frames in writers:
                env = {**os.environ, "PYTHONPATH": src}
                cmd = [sys.executable, __file__, "--label", label, "--height", str(h), "--width", str(w),
                       "--objects", str(n), "--frames", str(frames), "--workers", str(args.workers)]
                cmd += ["--tmp", args.tmp] if args.tmp else []
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
                if out.returncode != 0 or not lines:
                    print(json.dumps({"writer": label, "height": h, "width": w, "objects": n,
                                      "error": out.stderr.strip()[-500:]}), flush=True)
                else:
                    print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
