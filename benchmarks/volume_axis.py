"""Propagating through a volume along z, y or x: agreement between axes, accuracy, time.

For each volume, the same prompts (one click per object on its middle slice, in volume
coordinates) are propagated both ways along each axis: along z over the volume's own slices,
along y or x over the planes across them (:class:`~napari_sam2_track.volumes.reslice.AxisView`:
resampled to square pixels, prompts mapped in, masks mapped back to ``(z, y, x)``). Prints one
JSON line per (volume, axis):

    {"volume": ..., "axis": "z"|"y"|"x", "planes": K, "plane_shape": [R, C],
     "objects": N, "sec": ..., "sec_per_plane": ...,
     "vs_z": {"J&F": ..., "iou3d": ...},           # y and x against the z-axis result
     "vs_truth": {"J&F": ..., "iou3d": ...}}       # procedural samples only

``J&F`` is the DAVIS measure (``formats/metrics.davis_jf``) over the z-slices of the label
volumes (a slice where both are empty counts 1, as in DAVIS), ``iou3d`` the mean over objects of
the volumetric Jaccard index. The model is the real SAM 2.1 tiny architecture with **random
weights** (nudged as in the tests) at 256 px: its masks carry no meaning, so these figures show
the mechanics (that the axes run, agree with each other only as far as a random model does, and
their cost), not accuracy. With trained weights, pass ``--model tiny`` (or a checkpoint) and
rerun the same command.

Usage::

    python benchmarks/volume_axis.py                        # nuclei3d, plus the MRI if present
    python benchmarks/volume_axis.py --volumes nuclei3d --axes z y
    python benchmarks/volume_axis.py --model tiny --image-size 1024 --device cuda
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _common import REPO, build_test_model  # noqa: E402

MRI = REPO.parent / "shared" / "data" / "volumes" / "example4d.nii.gz"


def label_source(volume: np.ndarray):
    """A ``(Z, H, W)`` label volume as a LabelSource whose frames are its slices."""
    from napari_sam2_track.formats._frames import LabelSource, labels_to_masks
    from napari_sam2_track.prompts import ObjectSpec

    ids = [int(i) for i in np.unique(volume) if i]

    def frames():
        for z, plane in enumerate(volume):
            masks = labels_to_masks(plane)
            if masks:
                yield z, masks

    return LabelSource(tuple(volume.shape), [ObjectSpec(id=i) for i in ids], frames)


def agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """J&F over z-slices and mean volumetric IoU of ``other`` against ``reference``."""
    from napari_sam2_track.formats.metrics import davis_jf

    jf = davis_jf(label_source(reference), label_source(other))["overall"]["J&F"]
    ious = []
    for i in (int(i) for i in np.unique(reference) if i):
        a, b = reference == i, other == i
        ious.append(float((a & b).sum() / max(1, (a | b).sum())))
    return {"J&F": round(float(jf), 4), "iou3d": round(float(np.mean(ious)), 4) if ious else None}


def planes_source(read_rgb, count: int):
    """The ``count`` planes of one timepoint as an in-memory frame source."""
    from napari_sam2_track.sources import ArraySource

    return ArraySource(np.stack([read_rgb(k) for k in range(count)]), axes="TYXC")


def track_axis(model, volume, axis: str, prompts: list[dict], t: int = 0
               ) -> tuple[np.ndarray, dict]:
    """Labels ``(Z, H, W)`` of timepoint ``t`` tracked along ``axis``, and timing facts."""
    from napari_sam2_track.engine.tracker import StreamingTracker
    from napari_sam2_track.volumes.reslice import AxisView, VolumeAssembler, map_prompts

    view = None if axis == "z" else AxisView(volume, axis)
    if view is None:
        count = volume.depth
        frames = planes_source(lambda z: volume.read_slice_rgb(t, z), count)
        mapped = [dict(p, z=p["z"]) for p in prompts if p["frame"] == t]
    else:
        count = view.shape[1]
        frames = planes_source(lambda k: view.read_slice_rgb(t, k), count)
        mapped = [p for p in map_prompts(view, prompts) if p["frame"] == t]
    start = time.perf_counter()
    tracker = StreamingTracker(model, frames)
    for p in mapped:
        tracker.add_points(p["object"], p["z"], points=p["points"], labels=p["labels"])
    Z, H, W = volume.shape[1:]
    labels = np.zeros((Z, H, W), np.uint32)
    assembler = VolumeAssembler(view) if view is not None else None
    for result in tracker.propagate("both"):
        masks = {int(o): np.asarray(m, bool) for o, m in result.masks.items()}
        if assembler is None:
            for obj, m in sorted(masks.items(), reverse=True):
                labels[result.frame][m] = obj  # lowest id wins
        else:
            list(assembler.add(t, result.frame, masks))
    if assembler is not None:
        for _, volumes in assembler.finish():
            for obj, m in sorted(volumes.items(), reverse=True):
                labels[m] = obj
    sec = time.perf_counter() - start
    tracker.close()
    frames.close()
    shape = [frames.height, frames.width]
    return labels, {"planes": count, "plane_shape": shape, "sec": round(sec, 2),
                    "sec_per_plane": round(sec / count, 4)}


def mri_prompts(volume) -> list[dict]:
    """One click in the middle of the MRI's middle slice (no ground truth)."""
    T, Z, H, W = volume.shape
    return [{"object": 1, "frame": 0, "z": Z // 2, "points": [[W / 2, H / 2]], "labels": [1]}]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--volumes", nargs="+", default=["nuclei3d", "mri"],
                    help="nuclei3d and/or mri (example4d.nii.gz, skipped when absent)")
    ap.add_argument("--axes", nargs="+", default=["z", "y", "x"])
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", help="trained model (name or checkpoint); default: random weights")
    args = ap.parse_args(argv)

    if args.model:
        from napari_sam2_track.engine.models import load_model

        model = load_model(args.model, device=args.device, image_size=args.image_size)
    else:
        model = build_test_model(args.image_size, args.device)
    weights = args.model or "random (nudged test model)"
    for name in args.volumes:
        truth = None
        if name == "nuclei3d":
            from napari_sam2_track.samples3d import make_nuclei3d

            sample = make_nuclei3d()
            volume, prompts, truth = sample.source(), sample.prompts["prompts"], sample.labels[0]
        elif name == "mri":
            if not MRI.exists():
                print(json.dumps({"volume": "mri", "skipped": f"{MRI} not found"}))
                continue
            from napari_sam2_track.sources import open_volume

            volume = open_volume(str(MRI))
            prompts = mri_prompts(volume)
        else:
            ap.error(f"unknown volume {name!r}")
        results = {}
        for axis in args.axes:
            labels, facts = track_axis(model, volume, axis, prompts)
            results[axis] = labels
            line = {"volume": name, "axis": axis, "shape": list(volume.shape),
                    "spacing": list(volume.geometry.spacing[1:]), **facts,
                    "objects": len({p["object"] for p in prompts}),
                    "image_size": args.image_size, "device": args.device, "weights": weights}
            if axis != "z" and "z" in results:
                line["vs_z"] = agreement(results["z"], labels)
            if truth is not None:
                line["vs_truth"] = agreement(truth, labels)
            print(json.dumps(line), flush=True)
        volume.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
