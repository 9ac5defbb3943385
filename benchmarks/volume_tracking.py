"""Tracking through volumes: per-slice time against upstream, and memory along time.

Two measurements, each configuration in its own subprocess (so peak RSS is its own), on the
same model (SAM 2.1 tiny architecture, seeded random weights) and one JSON line each:

* ``slices``: one timepoint of a procedural volume (a sphere), prompted on its middle slice and
  propagated both ways. ``ours`` runs the whole pipeline (slices read lazily from the volume,
  tracked, written into a volume project); ``upstream`` is ``SAM2VideoPredictor`` on the same
  slices (a grayscale JPEG folder, decoded for ours too, so both see the same pixels:
  ``init_state``, then ``propagate_in_video`` forward and backward). ``sec_per_slice`` times
  the propagation from the second slice on (``median_slice_s``: the median interval between
  two slices, which a passing hiccup of a shared machine does not move). With ``--repeats``
  the pairs alternate their order (ours first, then upstream first, ...), so a drift of the
  machine's speed during the run does not favour either; the last line gives the medians'
  ``ours / upstream`` and the median of the per-pair ratios.
* ``--interleave N``: the same comparison in one process on one model, ``N`` rounds, each
  running ours and upstream in alternating order (ours first in even rounds). Both share the
  weights in memory and the moment, so the ratio of a round is free of what differs between
  processes (where the weights lie, the machine's load between runs); its ``peak_rss_mb`` is
  the whole process's.
* ``chain``: a 3D + time run (a prompt on one slice of the first timepoint) over ``T`` small
  and ``T`` large timepoints; ``peak_rss_mb`` of each and their ratio (memory must not grow
  with the number of timepoints: one timepoint's state at a time).

Usage::

    python benchmarks/volume_tracking.py                    # 32 slices; chain 2 vs 20 timepoints
    python benchmarks/volume_tracking.py --slices 64 --size 256 --timepoints 2 20
    python benchmarks/volume_tracking.py --repeats 3 --timepoints     # speed only, interleaved
    python benchmarks/volume_tracking.py --repeats 0 --timepoints --interleave 8   # one process
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import build_test_model  # noqa: E402


def sphere(t: int, z: int, size: int) -> np.ndarray:
    """uint8 (t, z, size, size): a bright sphere drifting along x on a textured background."""
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:z, :size, :size]
    data = rng.integers(10, 60, (t, z, size, size), dtype=np.uint8)
    r = size / 5
    for i in range(t):
        cx = size / 2 - size / 8 + (size / 4) * i / max(1, t - 1)
        inside = ((zz - z / 2) * size / z) ** 2 + (yy - size / 2) ** 2 + (xx - cx) ** 2 < r**2
        data[i][inside] = 220
    return data


def jpeg_slices(volume: np.ndarray, folder: Path) -> np.ndarray:
    """Write (z, h, w) slices as grayscale JPEGs (upstream's input); return them decoded."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = np.empty_like(volume)
    for z, plane in enumerate(volume):
        path = folder / f"{z:05d}.jpg"
        Image.fromarray(plane, mode="L").save(path, quality=95)
        out[z] = np.asarray(Image.open(path).convert("L"))
    return out


def run_ours(folder: Path, size: int, out: Path, model=None) -> dict:
    from PIL import Image

    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import ObjectSpec, Prompt, PromptSet
    from napari_sam2_track.sources import ArrayVolumeSource

    model = model or build_test_model(256)

    slices = np.stack([np.asarray(Image.open(p).convert("L")) for p in sorted(folder.glob("*.jpg"))])
    vol = ArrayVolumeSource(slices, "ZYX")
    mid = len(slices) // 2
    prompts = PromptSet(objects=[ObjectSpec(id=1)], prompts=[
        Prompt(object=1, frame=0, z=mid, points=[(size / 2 - size / 8, size / 2)], labels=[1])])
    with ModelClock(model.predictor) as clock:
        stamps = [time.perf_counter() for _ in track(vol, prompts, out, model=model)]
    return _timing(stamps, clock)


def run_upstream(folder: Path, size: int, model=None) -> dict:
    import torch

    model = model or build_test_model(256)
    p = model.predictor
    n = len(list(folder.glob("*.jpg")))
    with torch.inference_mode(), ModelClock(p) as clock:
        state = p.init_state(str(folder))
        p.add_new_points_or_box(state, frame_idx=n // 2, obj_id=1,
                                points=[[size / 2 - size / 8, size / 2]], labels=[1])
        stamps = []
        for reverse in (False, True):
            for _, _, masks in p.propagate_in_video(state, reverse=reverse):
                (masks[:, 0] > 0).numpy()
                stamps.append(time.perf_counter())
    return _timing(stamps, clock)


class ModelClock:
    """Times SAM 2's own compute on ``predictor`` while in use: the image encoder
    (``forward_image``) and the tracking step (``track_step``: memory attention, the heads, the
    memory encoder), which ours and upstream call alike. What the timed loop spends outside them
    (reading and preprocessing a slice, resizing masks, bookkeeping, writing) is the per-slice
    work around the model."""

    NAMES = ("forward_image", "track_step")

    def __init__(self, predictor):
        self.predictor = predictor
        self.calls: list[tuple[float, float]] = []

    def __enter__(self) -> "ModelClock":
        for name in self.NAMES:
            inner = getattr(self.predictor, name)

            def timed(*args, _inner=inner, **kwargs):
                began = time.perf_counter()
                try:
                    return _inner(*args, **kwargs)
                finally:
                    self.calls.append((began, time.perf_counter()))

            setattr(self.predictor, name, timed)
        return self

    def __exit__(self, *exc) -> None:
        for name in self.NAMES:
            delattr(self.predictor, name)  # the class's method again

    def between(self, a: float, b: float) -> float:
        return sum(e - s for s, e in self.calls if s >= a and e <= b)


def _timing(stamps: list[float], clock: ModelClock) -> dict:
    """Seconds per slice from the second slice on (mean and median interval), and the
    milliseconds per slice spent outside SAM 2's compute."""
    steps = np.diff(stamps)
    model = clock.between(stamps[0], stamps[-1])
    return {"slices": len(stamps), "sec_per_slice": float(steps.mean()),
            "median_slice_s": float(np.median(steps)),
            "outside_model_ms_per_slice": 1000 * (stamps[-1] - stamps[0] - model) / len(steps)}


def run_chain(t: int, z: int, size: int, out: Path) -> dict:
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.project import ProjectStore
    from napari_sam2_track.prompts import ObjectSpec, Prompt, PromptSet
    from napari_sam2_track.sources import ArrayVolumeSource

    model = build_test_model(256)
    vol = ArrayVolumeSource(sphere(t, z, size), "TZYX")
    prompts = PromptSet(objects=[ObjectSpec(id=1)], prompts=[
        Prompt(object=1, frame=0, z=z // 2, points=[(size / 2 - size / 8, size / 2)], labels=[1])])
    started = time.perf_counter()
    computed = 0
    for progress in track(vol, prompts, out, model=model):
        computed = progress.computed
    seconds = time.perf_counter() - started
    store = ProjectStore.open(out, mode="r")
    tracked = int(np.isfinite(store.physical_volume(1)).sum())
    return {"slices": computed, "seconds": round(seconds, 1), "timepoints_tracked": tracked}


def run_interleaved(folder: Path, size: int, rounds: int, tmp: str) -> None:
    """``rounds`` rounds of ours and upstream on one model, alternating which goes first;
    prints a JSON line per run."""
    model = build_test_model(256)
    for i in range(rounds):
        for case in ("ours", "upstream")[:: 1 if i % 2 == 0 else -1]:
            out = Path(tempfile.mkdtemp(dir=tmp)) / "ours.zarr"
            line = run_ours(folder, size, out, model) if case == "ours" else \
                run_upstream(folder, size, model)
            line.update(case=case, round=i, peak_rss_mb=round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
            print(json.dumps(line), flush=True)


def child(args) -> None:
    out = Path(tempfile.mkdtemp(dir=args.tmp)) / f"{args.case}-{args.timepoints[0]}.zarr"
    if args.case == "interleaved":
        run_interleaved(Path(args.tmp) / "jpg", args.size, args.interleave, args.tmp)
        return
    if args.case == "ours":
        line = run_ours(Path(args.tmp) / "jpg", args.size, out)
    elif args.case == "upstream":
        line = run_upstream(Path(args.tmp) / "jpg", args.size)
    else:
        line = run_chain(args.timepoints[0], args.chain_slices, args.chain_size, out)
        line["timepoints"] = args.timepoints[0]
    line["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps({"case": args.case, **line}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=32, help="slices of the along-z comparison")
    ap.add_argument("--size", type=int, default=256, help="slice size (px) of that comparison")
    ap.add_argument("--timepoints", type=int, nargs="*", default=[2, 20],
                    help="timepoints of the 3D + time runs (none: skip them)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved ours/upstream repeats")
    ap.add_argument("--interleave", type=int, default=0,
                    help="rounds of ours and upstream alternating in one process")
    ap.add_argument("--chain-slices", type=int, default=6)
    ap.add_argument("--chain-size", type=int, default=128)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        child(args)
        return
    base = [sys.executable, __file__, "--size", str(args.size), "--chain-slices",
            str(args.chain_slices), "--chain-size", str(args.chain_size)]
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        jpeg_slices(sphere(1, args.slices, args.size)[0], Path(tmp) / "jpg")
        pairs = [[("ours", 0), ("upstream", 0)][:: 1 if i % 2 == 0 else -1]
                 for i in range(args.repeats)]
        runs = [run for pair in pairs for run in pair] + [("chain", t) for t in args.timepoints]
        if args.interleave:
            runs.append(("interleaved", 0))
        for case, t in runs:
            cmd = [*base, "--case", case, "--tmp", tmp, "--timepoints", str(t),
                   "--interleave", str(args.interleave)]
            lines = subprocess.run(cmd, check=True, capture_output=True,
                                   text=True).stdout.strip().splitlines()
            for line in map(json.loads, lines if case == "interleaved" else lines[-1:]):
                line.update({"image_size": 256, "device": "cpu"})
                if case != "chain":
                    line["slice_px"] = args.size
                if case == "interleaved":
                    line["process"] = "shared"
                print(json.dumps(line), flush=True)
                key = f"{line['case']}{t or ''}" + ("_shared" if case == "interleaved" else "")
                results.setdefault(key, []).append(line)
    summary: dict = {"summary": True}
    for suffix, label in (("", "pairs"), ("_shared", "rounds_in_one_process")):
        if results.get(f"ours{suffix}"):
            summary.update(_speed_summary(results[f"ours{suffix}"], results[f"upstream{suffix}"],
                                          label, suffix))
    if len(args.timepoints) >= 2:
        lo, hi = min(args.timepoints), max(args.timepoints)
        rss = results[f"chain{hi}"][0]["peak_rss_mb"] / results[f"chain{lo}"][0]["peak_rss_mb"]
        summary[f"peak_rss_{hi}_over_{lo}_timepoints"] = round(rss, 3)
    print(json.dumps(summary))


def _speed_summary(ours: list[dict], upstream: list[dict], label: str, suffix: str) -> dict:
    """Medians of ours over upstream: of the mean and of the median slice times, and the
    median of the per-pair (per-round) ratios."""
    def med(rows, key):
        return float(np.median([r[key] for r in rows]))

    per_pair = [a["sec_per_slice"] / b["sec_per_slice"] for a, b in zip(ours, upstream)]
    return {label: len(per_pair),
            f"outside_model_ms_per_slice{suffix}": {
                "ours": round(med(ours, "outside_model_ms_per_slice"), 2),
                "upstream": round(med(upstream, "outside_model_ms_per_slice"), 2)},
            f"ours_over_upstream_sec_per_slice{suffix}":
                round(med(ours, "sec_per_slice") / med(upstream, "sec_per_slice"), 3),
            f"ours_over_upstream_median_slice{suffix}":
                round(med(ours, "median_slice_s") / med(upstream, "median_slice_s"), 3),
            f"median_pair_ratio{suffix}": round(float(np.median(per_pair)), 3),
            f"pair_ratio_range{suffix}": [round(min(per_pair), 3), round(max(per_pair), 3)]}

if __name__ == "__main__":
    main()
