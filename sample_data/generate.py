#!/usr/bin/env python
"""Write the procedural sample videos and their ground truth to a folder.

    python sample_data/generate.py OUTDIR [--frames N] [--size H W] [--seed S] [--fps F]

Writes ``cells.tif`` / ``cells_labels.tif`` (TYX, uint16 / uint32, deflate), ``instruments.mp4``
(H.264, near-lossless) / ``instruments_labels.tif`` (TYX, uint32), and for each sample a
``*_meta.json`` (categories, lineage, occluded and out-of-frame frames, first-frame prompts)
and a ``*_schema.yaml`` annotation schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:
    from napari_sam2_track import samples
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from napari_sam2_track import samples


def write_mp4(path: Path, frames, fps: int = 10, crf: int = 12) -> None:
    """Encode ``(T, H, W, 3)`` uint8 frames as H.264 (yuv420p; H and W must be even)."""
    import av

    t, h, w = frames.shape[:3]
    if h % 2 or w % 2:
        raise SystemExit(
            f"error: mp4 needs an even frame size, got {h}x{w}; use --size with even numbers"
        )
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_meta(path: Path, sample: samples.SampleVideo) -> None:
    """Ground-truth metadata as JSON (keys are object ids as strings)."""
    meta = {
        "name": sample.name,
        "n_frames": sample.n_frames,
        "categories": {str(k): v for k, v in sample.categories.items()},
        "lineage": {str(k): v for k, v in sample.lineage.items()},
        "occluded": {str(k): v for k, v in sample.occluded.items() if v},
        "out_of_frame": {str(k): v for k, v in sample.out_of_frame.items() if v},
        "first_frame_prompts": {
            str(k): list(v) for k, v in samples.first_frame_prompts(sample).items()
        },
    }
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--frames", type=int, default=60, help="frames per video (default 60)")
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=int, default=10)
    args = p.parse_args(argv)

    import tifffile

    out: Path = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    size = tuple(args.size)

    cells = samples.make_cells(n_frames=args.frames, size=size, seed=args.seed)
    tifffile.imwrite(out / "cells.tif", cells.frames, metadata={"axes": "TYX"}, compression="zlib")
    tifffile.imwrite(
        out / "cells_labels.tif", cells.labels, metadata={"axes": "TYX"}, compression="zlib"
    )
    write_meta(out / "cells_meta.json", cells)
    cells.schema().save(out / "cells_schema.yaml")

    inst = samples.make_instruments(n_frames=args.frames, size=size, seed=args.seed)
    write_mp4(out / "instruments.mp4", inst.frames, fps=args.fps)
    tifffile.imwrite(
        out / "instruments_labels.tif", inst.labels, metadata={"axes": "TYX"}, compression="zlib"
    )
    write_meta(out / "instruments_meta.json", inst)
    inst.schema().save(out / "instruments_schema.yaml")

    print(
        f"wrote cells and instruments samples ({args.frames} frames, {size[0]}x{size[1]}) to {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
