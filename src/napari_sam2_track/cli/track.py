"""``napari-sam2-track track``: propagate prompts through a video into a project store."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from .batch import add_cluster_options
from ._registry import (EXIT_INTERRUPTED, add_model_options, add_source_options, command,
                        load_model_from_args, source_options)


def add_parsers(sub) -> None:
    p = sub.add_parser("track", help="propagate prompts through a video into a project store")
    p.add_argument("video", help="video file, TIFF stack, zarr array or image folder; or a "
                   "volume (z-stack, NIfTI, DICOM series, OME-Zarr), tracked along z")
    p.add_argument("--prompts", help="prompts JSON (see docs/prompts.md); default: the project's")
    p.add_argument("--out", required=True, help="project store to write (PROJECT.zarr)")
    p.add_argument("--schema", help="annotation schema (YAML/JSON) to store in the project")
    add_model_options(p)
    add_source_options(p)
    p.add_argument("--direction", choices=["forward", "backward", "both"], default="both")
    p.add_argument("--start", type=int, help="first frame of the range (inclusive; volumes: "
                   "first timepoint)")
    p.add_argument("--end", type=int, help="last frame of the range (inclusive; volumes: last "
                   "timepoint)")
    p.add_argument("--axis", help="volumes: propagate along z (the slices, default), or y or x "
                   "(the planes across rows or columns, resampled to square pixels; prompts stay "
                   "in volume coordinates)")
    p.add_argument("--z-range", metavar="A-B", help="volumes: track slices A..B only (inclusive)")
    p.add_argument("--stop-after-empty", type=int, metavar="N", help="volumes: stop an object's "
                   "direction after N consecutive slices without it")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an existing project")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing project")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--segments", type=int, help="split at keyframes into N segments run in "
                   "parallel on dask (see docs/distributed.md)")
    add_cluster_options(p)


@command("track")
def cmd_track(args: argparse.Namespace) -> int:
    from ..distributed.batch import check_options

    check_options(n_workers=args.workers, retries=args.retries, segments=args.segments)
    if args.segments and args.segments > 1:
        from .batch import track_segments

        return track_segments(args)
    from tqdm import tqdm

    from ..pipeline import check_target, track, volume_request
    from ..prompts import PromptSet
    from ..schema import Schema
    from ..sources import open_source

    source = open_source(args.video, **source_options(args))
    prompts = PromptSet.load(args.prompts) if args.prompts else None
    schema = Schema.load(args.schema) if args.schema else None
    try:  # every check that needs no model, before the model is loaded
        volume = volume_request(args.direction, args.start, args.end, None, args.z_range,
                                args.stop_after_empty, args.axis)
        target = check_target(args.out, source, prompts, resume=args.resume,
                              overwrite=args.overwrite, volume=volume)
        model = load_model_from_args(args)
    except BaseException:
        source.close()
        raise
    cancel = threading.Event()
    bar = None
    try:
        for progress in track(
            source,
            prompts,
            target,
            model=model,
            direction=args.direction,
            start=args.start,
            end=args.end,
            prompts_dir=None if args.prompts is None else Path(args.prompts).parent,
            cancel=cancel,
            schema=schema,
            z_range=volume.z_range,
            stop_after_empty=volume.stop_after_empty,
            axis=volume.axis,
        ):
            if bar is None and not args.quiet:
                unit = "slice" if hasattr(source, "read_slice_rgb") else "frame"
                bar = tqdm(total=progress.total, unit=unit, desc="tracking")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(fps=f"{progress.fps:.1f}", frame=progress.frame)
    except KeyboardInterrupt:
        cancel.set()
        if args.overwrite:
            print(f"\ninterrupted; {args.out} is unchanged (the replacement was discarded)",
                  file=sys.stderr)
        else:
            print(f"\ninterrupted; frames written so far are kept in {args.out} (use --resume)",
                  file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
        source.close()
    print(f"wrote {args.out}")
    return 0
