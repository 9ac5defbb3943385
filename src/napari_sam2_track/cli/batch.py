"""``napari-sam2-track batch``: track the videos of a manifest on a dask cluster.

Also the time-parallel path of ``track --segments``, which is a batch of one video.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._registry import EXIT_INTERRUPTED, add_model_options, command, source_options

EXIT_SOME_FAILED = 1


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask scheduler to submit to, e.g. tcp://head:8786 (default: a local cluster)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="workers of the local cluster (default: one per GPU; on CPU one using all cores)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="tries again after a crash before failing (default 2)",
    )


def add_parsers(sub) -> None:
    p = sub.add_parser("batch", help="track the videos listed in a CSV/YAML manifest (or a "
                       "dataset's items with prompts) on dask")
    p.add_argument("manifest", help="CSV or YAML: video, prompts, out, start, end, direction, "
                   "...; or a dataset folder (docs/datasets.md)")
    p.add_argument("--out-dir", help="folder of the output projects (required for a manifest; "
                   "a dataset's items name their own)")
    add_model_options(p)
    add_cluster_options(p)
    p.add_argument(
        "--segments", type=int, help="split every video into N time segments at keyframes"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="re-track videos whose project already exists"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--summary", metavar="FILE", help="also write the summary as JSON to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_second_opinion_options(p)


def add_second_opinion_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("second opinion (see docs/review.md#second-opinion)")
    g.add_argument("--second-opinion", metavar="M2", help="after tracking, re-track each video from "
                   "its keyframes with this model too and flag where the two disagree")
    g.add_argument("--second-opinion-image-size", type=int, metavar="N", help="input size of M2")
    g.add_argument("--second-opinion-name", metavar="NAME", help="name of the second opinions "
                   "(default: M2's name and input size)")


def second_opinion_spec(args: argparse.Namespace):
    """The second model of ``--second-opinion`` (on the tracking model's device), or ``None``."""
    from ..engine.spec import ModelSpec

    if not args.second_opinion:
        return None
    return ModelSpec(model=args.second_opinion, device=args.device,
                     image_size=args.second_opinion_image_size)


def _report(summary, args: argparse.Namespace) -> int:
    if args.json:
        print(summary.to_json())
    else:
        print(summary.table())
    if getattr(args, "summary", None):
        summary.to_json(args.summary)
    return 0 if summary.ok else EXIT_SOME_FAILED


@command("batch")
def cmd_batch(args: argparse.Namespace) -> int:
    from ..distributed import ModelSpec, run_batch

    manifest, out_dir, dataset = args.manifest, args.out_dir, None
    if Path(manifest).is_dir():
        from ..dataset import Dataset
        from ..dataset.batch import batch_rows

        dataset = Dataset.open(manifest)
        manifest, skipped = batch_rows(dataset)
        for item_id, why in skipped:
            print(f"{item_id}: {why}", file=sys.stderr)
        if not manifest:
            print(f"no item of {dataset.folder} has prompts and is not tracked yet")
            return 0
        out_dir = dataset.folder / "projects"
    elif out_dir is None:
        from ..errors import Sam2TrackError

        raise Sam2TrackError("--out-dir is required with a manifest (the folder of the projects)")
    try:
        summary = run_batch(
            manifest,
            out_dir,
            model=ModelSpec.from_args(args),
            scheduler=args.scheduler,
            n_workers=args.workers,
            retries=args.retries,
            overwrite=args.overwrite,
            segments=args.segments,
            progress=not args.quiet,
            second_opinion=second_opinion_spec(args),
            second_opinion_name=args.second_opinion_name,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted; run the same command again to resume ({out_dir})",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if dataset is not None:
        from ..dataset.batch import record_batch
        from ..review.models import default_reviewer

        record_batch(dataset, summary, default_reviewer())
    return _report(summary, args)


def track_segments(args: argparse.Namespace) -> int:
    """``track --segments N``: one video, split at keyframes, on a dask cluster."""
    from ..distributed import BatchItem, ModelSpec, run_batch
    from ..distributed.cluster import cpu_count
    from ..project.placement import already_exists

    from ..distributed.segments import refuse_volume_segments
    from ..sources import open_source

    options = source_options(args)
    with open_source(args.video, **options) as source:
        refuse_volume_segments(source)  # before a cluster starts or anything is written
    out = Path(args.out)
    if out.exists() and not (args.resume or args.overwrite):
        raise already_exists(out)
    schema = None
    if args.schema:  # a bad schema, or a category it lacks, is refused before the cluster starts
        from ..schema import Schema

        schema = Schema.load(args.schema)
    if args.prompts:  # refuse a bad split before starting a cluster
        from ..distributed import plan_segments
        from ..project.store import check_object_categories
        from ..prompts import PromptSet

        prompts = PromptSet.load(args.prompts)
        with open_source(args.video, **options) as source:
            prompts.check_video(len(source), source.height, source.width)
            plan_segments(prompts, len(source), args.segments, args.direction, args.start, args.end)
        if schema is not None:
            check_object_categories(prompts.objects, schema)
    item = BatchItem(
        video=str(Path(args.video).resolve()),
        prompts=str(Path(args.prompts).resolve()) if args.prompts else None,
        out=str(out.resolve()),
        start=args.start,
        end=args.end,
        direction=args.direction,
        **options,
        segments=args.segments,
        schema=str(Path(args.schema).resolve()) if args.schema else None,
    )
    try:
        summary = run_batch(
            [item],
            out.resolve().parent,
            model=ModelSpec.from_args(args),
            scheduler=args.scheduler,
            n_workers=args.workers or min(args.segments, cpu_count()),
            retries=args.retries,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted; frames written so far are kept in {out} (use --resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    row = summary.rows[0]
    if row["status"] == "failed":
        print(f"error: {row['error']}", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"wrote {out} ({row['frames']} frames, {row.get('segments', 1)} segments, "
          f"{row['seconds']:.1f} s)")
    return 0
