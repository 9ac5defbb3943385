"""Review flags over long videos: time and peak memory of :func:`find_flags` on a project store.

Builds (and caches) a project of ``--frames`` frames x ``--objects`` objects whose per-frame
tables look like a tracked video: objects drift with jitter, leave the view now and then, a
few presence logits sag toward 0, and neighbouring objects cross (their masks are written on
the frames where their boxes meet, so the overlap check reads real chunks). Prints one JSON
line per size with the wall and CPU seconds of the flags (best of ``--repeat``), the frames
the overlap check read (their overlap tiles, in store format 2) and the seconds it spent, the
Python heap peak (tracemalloc, which numpy reports to), the load average (the machine may be
shared) and, for scale, the seconds of the exporters' frame walk over the same tables
(``ProjectView.walk`` without masks)::

    python benchmarks/review.py --frames 10000 100000 --objects 20
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

SIZE = 512
BOX = 16
LANE = 24  # objects drift in lanes 24 px apart; a crossing moves one into its neighbour's lane


def build(path: Path, n_frames: int, n_objects: int, seed: int = 0) -> None:
    from napari_sam2_track.prompts import ObjectSpec
    from napari_sam2_track.project import STATE_ABSENT, STATE_PROMPTED, STATE_PROPAGATED, ProjectStore

    store = ProjectStore.create(path, num_frames=n_frames, height=SIZE, width=SIZE, overwrite=True)
    ids = list(range(1, n_objects + 1))
    store.set_objects([ObjectSpec(id=i) for i in ids])
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)
    xs = {i: 200 + 150 * np.sin(t / 3000) + 20 * np.sin(t / (200 + 7 * i)) + rng.normal(0, 1.0, n_frames)
          for i in ids}
    for i in ids:
        x = xs[i].copy()
        y = 8 + LANE * ((i - 1) % ((SIZE - BOX - 8) // LANE)) + rng.normal(0, 0.5, n_frames)
        if i < ids[-1]:  # a few crossings into the next object's lane (one per 20,000 frames)
            for start in rng.integers(0, n_frames - 40, max(1, n_frames // 20000)):
                stop = start + rng.integers(10, 30)
                y[start:stop] += LANE - 4
                x[start:stop] = xs[i + 1][start:stop] + 3
        w = BOX + rng.normal(0, 0.7, n_frames)
        presence = rng.normal(7, 1, n_frames)
        gone = np.zeros(n_frames, bool)
        for start in rng.integers(0, n_frames, max(1, n_frames // 4000)):
            gone[start : start + rng.integers(5, 60)] = True
        presence[gone] = rng.normal(-5, 2, gone.sum())
        sag = rng.integers(0, n_frames, max(1, n_frames // 2000))
        presence[sag] = rng.normal(0.5, 0.5, sag.size)
        x0, y0 = np.round(x), np.round(y)
        x1, y1 = x0 + np.round(w), y0 + BOX
        area = np.round((x1 - x0) * (y1 - y0) * 0.78)
        table = np.stack([presence, area, x0, y0, x1, y1,
                          np.full(n_frames, float(STATE_PROPAGATED)), np.ones(n_frames)], axis=1)
        table[gone, 1] = 0
        table[gone, 2:6] = np.nan
        table[gone, 6] = STATE_ABSENT
        table[0, 6] = STATE_PROMPTED
        store.group[f"objects/{i}/table"][:] = table
    # masks where neighbouring boxes meet: discs inside the boxes
    tables = {i: store.group[f"objects/{i}/table"][:] for i in ids}
    yy, xx = np.mgrid[:SIZE, :SIZE]
    discs: dict[int, dict[int, np.ndarray]] = {}  # frame -> object -> mask
    for i in ids[:-1]:
        a, b = tables[i], tables[i + 1]
        meet = np.flatnonzero((np.maximum(a[:, 3], b[:, 3]) < np.minimum(a[:, 5], b[:, 5]))
                              & (np.maximum(a[:, 2], b[:, 2]) < np.minimum(a[:, 4], b[:, 4])))
        for obj, tab in ((i, a), (i + 1, b)):
            for f in meet.tolist():
                cx, cy = (tab[f, 2] + tab[f, 4]) / 2, (tab[f, 3] + tab[f, 5]) / 2
                discs.setdefault(f, {})[obj] = (xx - cx) ** 2 + (yy - cy) ** 2 < (BOX / 2) ** 2
    for f, masks in sorted(discs.items()):
        store.merge_labels(f, masks)
    (path / "BUILD_COMPLETE").touch()  # a build that was interrupted is redone


def _source(path: Path, reads: list):
    """The store's table source, with the overlap check's frame reads counted and timed into
    ``reads`` (format 2: :meth:`ProjectStore.shared_pixels`, once per frame)."""
    from napari_sam2_track.review.flags import TableSource
    from napari_sam2_track.project import ProjectStore

    store = ProjectStore.open(path, mode="r")
    inner = store.shared_pixels

    def shared_pixels(t):
        started = time.perf_counter()
        out = inner(t)
        reads.append((1, time.perf_counter() - started))
        return out

    store.shared_pixels = shared_pixels
    return store, TableSource.from_store(store)


def measure(path: Path, repeat: int) -> dict:
    from napari_sam2_track.formats._frames import ProjectView
    from napari_sam2_track.review.flags import find_flags
    from napari_sam2_track.review.visibility import VisibilityRule

    best = best_cpu = float("inf")
    for _ in range(repeat):
        reads: list = []
        wall, cpu = time.perf_counter(), time.process_time()
        store, source = _source(path, reads)
        rule = VisibilityRule.from_schema(store.schema, source.height, source.width)
        report = find_flags(source, store.schema.review, rule)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best:
            best, best_cpu, best_reads = wall, cpu, reads
    tracemalloc.start()
    store, source = _source(path, [])
    find_flags(source, store.schema.review, VisibilityRule.from_schema(store.schema, source.height, source.width))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    started = time.perf_counter()
    for _ in ProjectView(store).walk(read_masks=False):
        pass
    walk = time.perf_counter() - started
    n, _, _ = store.shape
    return {
        "bench": "review_flags",
        "frames": n,
        "objects": len(store.object_ids()),
        "seconds": round(best, 3),
        "cpu_seconds": round(best_cpu, 3),
        "overlap_frames_read": sum(k for k, _ in best_reads),
        "overlap_read_seconds": round(sum(s for _, s in best_reads), 3),
        "heap_peak_mib": round(peak / 2**20, 1),
        "flags": len(report.flags),
        "overlap_flags": report.counts().get("overlap", 0),
        "spans": len(report.spans),
        "suggestions": len(report.suggestions),
        "export_walk_seconds": round(walk, 3),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "napari-sam2-track-bench-review"))
    args = parser.parse_args()
    for n in args.frames:
        path = Path(args.cache) / f"review_{n}x{args.objects}.zarr"
        if not (path / "BUILD_COMPLETE").exists():
            build(path, n, args.objects)
        print(json.dumps(measure(path, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
