"""Click -> mask latency of interactive prompting: the session's compute thread against the
synchronous path of the docks before it (the prompt computed on the GUI thread).

Model: SAM 2.1 tiny architecture, seeded random weights (nudged as in the tests so masks are
non-empty), at ``--image-size`` (default 1024, the trained models' size) on ``--device``
(default cpu). Video: 12 synthetic RGB frames. One JSON line per measurement::

    {"path": "session"|"synchronous", "case": ..., "runs": N, "median_ms": ..., "min_ms": ...,
     "max_ms": ..., "gui_blocked_median_ms": ..., ...}

Cases:

* ``first_prompt_embedding_ready``: the first click of an object on a frame the user has been
  looking at (the session prefetched its embedding; the synchronous path has it only when the
  previous prompt was on the same frame, which is not the case here);
* ``correction_tracked_frame``: a click on a frame propagation tracked (memory attention
  included), after the user moved there;
* ``never_visited_frame``: a click on a frame whose embedding nobody computed.

``median_ms`` is click -> mask in the project (``labels_changed``); ``gui_blocked_*`` is how long
the calling (GUI) thread was busy: the whole compute for the synchronous path, only the
request for the session. ``cpu_median_ms`` is the process's CPU time from click to mask, which a
shared machine disturbs less than wall time (with ``--threads 1`` it is the compute's own cost).

Usage::

    python benchmarks/interactive.py                       # 1024 px, CPU
    python benchmarks/interactive.py --image-size 256 --repeats 3
    python benchmarks/interactive.py --paths session --threads 1   # the session's path only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import build_test_model  # noqa: E402


def make_video(n: int = 12, height: int = 480, width: int = 640) -> np.ndarray:
    from napari_sam2_track.samples import make_instruments

    return make_instruments(n_frames=n, size=(height, width)).frames


def summary(path: str, case: str, latencies: list[float], blocked: list[float],
            cpu: list[float], **extra) -> dict:
    ms = [v * 1000 for v in latencies]
    return {
        "path": path,
        "case": case,
        "runs": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
        "gui_blocked_median_ms": round(statistics.median(blocked) * 1000, 1),
        "gui_blocked_max_ms": round(max(blocked) * 1000, 1),
        "cpu_median_ms": round(statistics.median(cpu) * 1000, 1),
        **extra,
    }


# ----------------------------------------------------------------------- session (new)
class MaskWatcher:
    """Waits for ``labels_changed`` of a frame (the mask is in the project)."""

    def __init__(self, session):
        self._cond = threading.Condition()
        self._seen: list[tuple[int, int, float]] = []
        session.events.labels_changed.connect(self._on_labels)
        self._ready: set[int] = set()
        session.events.embedding_ready.connect(self._on_embedding)

    def _on_labels(self, start: int, stop: int) -> None:
        with self._cond:
            self._seen.append((start, stop, time.perf_counter()))
            self._cond.notify_all()

    def _on_embedding(self, frame: int) -> None:
        with self._cond:
            self._ready.add(frame)
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self._seen)

    def wait_labels(self, frame: int, since: int, timeout: float = 600) -> float:
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for start, stop, at in self._seen[since:]:
                    if start <= frame <= stop:
                        return at
                if not self._cond.wait(end - time.monotonic()):
                    raise TimeoutError(f"no mask for frame {frame}")

    def wait_embedding(self, frame: int, timeout: float = 600) -> None:
        end = time.monotonic() + timeout
        with self._cond:
            while frame not in self._ready:
                if not self._cond.wait(end - time.monotonic()):
                    raise TimeoutError(f"no embedding for frame {frame}")


def click_session(session, watcher, frame: int, x: float, y: float,
                  obj_id: int) -> tuple[float, float, float]:
    """(click -> mask, GUI thread busy, process CPU from click to mask) in seconds."""
    since = watcher.mark()
    c0, t0 = time.process_time(), time.perf_counter()
    session.request_click(frame, x, y, obj_id=obj_id)
    blocked = time.perf_counter() - t0
    done = watcher.wait_labels(frame, since)
    cpu = time.process_time() - c0
    session.wait_idle()
    return done - t0, blocked, cpu


def bench_session(frames, model, repeats: int, tmp: Path) -> list[dict]:
    from napari_sam2_track.session import AnnotationSession

    session = AnnotationSession.open(frames, tmp / "session.zarr", model=model)
    watcher = MaskWatcher(session)
    h, w = frames.shape[1:3]
    out = []
    # first prompt of an object on a frame whose embedding is ready
    lat, blk, cpu = [], [], []
    session.set_current_frame(0)
    watcher.wait_embedding(0)
    for i in range(repeats):
        obj = session.add_object(f"o{i}").id
        for acc, v in zip((lat, blk, cpu), click_session(
                session, watcher, 0, w * (0.2 + 0.1 * i), h * 0.5, obj)):
            acc.append(v)
    out.append(summary("session", "first_prompt_embedding_ready", lat, blk, cpu))
    # corrections on tracked frames, after the user moved there
    for _ in session.propagate_iter("forward", 0, repeats + 1, obj_ids=[1]):
        pass
    lat, blk, cpu = [], [], []
    for t in range(1, repeats + 1):
        session.set_current_frame(t)
        watcher.wait_embedding(t)
        for acc, v in zip((lat, blk, cpu), click_session(session, watcher, t, w * 0.2,
                                                         h * 0.5 + 5, 1)):
            acc.append(v)
    out.append(summary("session", "correction_tracked_frame", lat, blk, cpu))
    # never visited frames (no prefetch: the click is the first thing asked of the frame)
    session.prefetch_enabled = False
    lat, blk, cpu = [], [], []
    for t in range(repeats + 2, 2 * repeats + 2):
        for acc, v in zip((lat, blk, cpu), click_session(session, watcher, t, w * 0.3,
                                                         h * 0.5, 2)):
            acc.append(v)
    out.append(summary("session", "never_visited_frame", lat, blk, cpu))
    entry = session.tracker._embedding_cache()
    sizes = [sum(_tensor_bytes(v) for v in e) for e in entry.values()]
    out[-1]["embedding_cache_mb_each"] = round(max(sizes) / 2**20, 1) if sizes else None
    session.close()
    return out


def _tensor_bytes(obj) -> int:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


# ------------------------------------------------------------ synchronous (before)
def bench_synchronous(frames, model, repeats: int, tmp: Path) -> list[dict]:
    """What ``AnnotationSession.set_prompt`` did on the GUI thread before the compute thread:
    ``StreamingTracker.add_points`` and the keyframe write, in the caller's thread."""
    from napari_sam2_track.engine.tracker import StreamingTracker
    from napari_sam2_track.pipeline import open_or_create_store, track
    from napari_sam2_track.project import STATE_PROMPTED
    from napari_sam2_track.prompts import ObjectSpec, Prompt
    from napari_sam2_track.sources import open_source

    source = open_source(frames)
    store = open_or_create_store(tmp / "sync.zarr", source)
    tracker = StreamingTracker(model, source)
    h, w = frames.shape[1:3]

    def click(frame: int, x: float, y: float, obj: int) -> float:
        c0, t0 = time.process_time(), time.perf_counter()
        prompt = Prompt.build(object=obj, frame=frame, points=[(x, y)], labels=[1])
        mask = tracker.add_points(obj, frame, points=prompt.points, labels=prompt.labels)
        store.put_prompt(prompt)
        store.merge_labels(frame, {obj: mask})
        store.write_row(obj, frame, mask, presence=np.nan, state=STATE_PROMPTED, run=0)
        cpu.append(time.process_time() - c0)
        return time.perf_counter() - t0

    out = []
    # first prompt of an object on a frame other than the last prompted one
    lat, cpu = [], []
    for i in range(repeats):
        store.add_object(ObjectSpec(id=i + 1, name=f"o{i}"))
        lat.append(click(2 * repeats + 2 + i, w * (0.2 + 0.1 * i), h * 0.5, i + 1))
    out.append(summary("synchronous", "first_prompt_embedding_ready", lat, lat, cpu,
                       note="no prefetch before this change: the embedding is computed on click"))
    lat, cpu = [], []
    tracker.clear_prompt(1, 2 * repeats + 2)
    tracker.add_points(1, 0, points=[(w * 0.2, h * 0.5)], labels=[1])
    for _ in track(source, None, store, model=model, direction="forward", start=0,
                   end=repeats + 1, obj_ids=[1], tracker=tracker):
        pass
    for t in range(1, repeats + 1):
        lat.append(click(t, w * 0.2, h * 0.5 + 5, 1))
    out.append(summary("synchronous", "correction_tracked_frame", lat, lat, cpu))
    lat, cpu = [], []
    for t in range(repeats + 2, 2 * repeats + 2):
        lat.append(click(t, w * 0.3, h * 0.5, 2))
    out.append(summary("synchronous", "never_visited_frame", lat, lat, cpu))
    tracker.close()
    return out


def warm_up(frames, model) -> None:
    """One prompt, a two-frame propagation and a correction on a throwaway tracker, so that
    neither path pays the first-call costs of the kernels."""
    from napari_sam2_track.engine.tracker import StreamingTracker
    from napari_sam2_track.sources import open_source

    tracker = StreamingTracker(model, open_source(frames))
    h, w = frames.shape[1:3]
    tracker.add_points(1, 0, points=[(w / 2, h / 2)], labels=[1])
    for _ in tracker.propagate("forward", 0, 2):
        pass
    tracker.add_points(1, 2, points=[(w / 2, h / 2)], labels=[1])
    tracker.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=1024)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3, help="clicks per case")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--paths", nargs="+", choices=["synchronous", "session"],
                   default=["synchronous", "session"], help="which paths to time (default: both)")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_test_model(args.image_size, args.device)
    frames = make_video(2 * args.repeats + 2 + args.repeats)
    info = {"image_size": args.image_size, "device": args.device, "threads": torch.get_num_threads(),
            "model": model.name, "frames": frames.shape[:3]}
    warm_up(frames, model)
    with tempfile.TemporaryDirectory() as tmp:
        benches = {"synchronous": bench_synchronous, "session": bench_session}
        for path in args.paths:
            for line in benches[path](frames, model, args.repeats, Path(tmp)):
                print(json.dumps({**line, **info}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
