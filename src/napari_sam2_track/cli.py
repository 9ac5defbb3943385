"""Command line: ``napari-sam2-track track|info ...``.

User errors (:class:`~napari_sam2_track.errors.Sam2TrackError`) print one line and exit with
status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from collections.abc import Callable, Sequence

from .errors import Sam2TrackError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}

#: Modules that add subcommands (``add_parsers(subparsers)`` + ``@command`` handlers).
SUBCOMMAND_MODULES = ("cli_annotate", "cli_export", "cli_review")


def command(name: str):
    """Register a subcommand handler."""

    def register(func):
        COMMANDS[name] = func
        return func

    return register


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="tiny",
        help="tiny|small|base-plus|large, a Hugging Face id, or a local .pt checkpoint (default: tiny)",
    )
    p.add_argument("--config", help="sam2 config name or YAML file (default: inferred)")
    p.add_argument("--image-size", type=int, help="model input size override, e.g. 512")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]|mps (default: auto)")
    p.add_argument(
        "--compile", action="store_true", help="use the compiled SAM2VideoPredictorVOS (CUDA)"
    )
    p.add_argument(
        "--max-cond-frames",
        type=int,
        default=None,
        help="conditioning frames read by memory attention (default: 8, -1: all)",
    )


def add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channel", type=int, help="channel of a multichannel stack to track on")
    p.add_argument(
        "--window",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="intensity window for non-8-bit data (default: 0.5-99.5 percentiles)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sam2-track",
        description="Video annotation with SAM 2: track, inspect, export.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("track", help="propagate prompts through a video into a project store")
    p.add_argument("video", help="video file, TIFF stack, zarr array or image folder")
    p.add_argument("--prompts", help="prompts JSON (see docs/prompts.md); default: the project's")
    p.add_argument("--out", required=True, help="project store to write (PROJECT.zarr)")
    p.add_argument("--schema", help="annotation schema (YAML/JSON) to store in the project")
    add_model_options(p)
    add_source_options(p)
    p.add_argument("--direction", choices=["forward", "backward", "both"], default="both")
    p.add_argument("--start", type=int, help="first frame of the range (inclusive)")
    p.add_argument("--end", type=int, help="last frame of the range (inclusive)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an existing project")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing project")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("info", help="summarise a project store")
    p.add_argument("project", help="PROJECT.zarr")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    import importlib

    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"napari_sam2_track.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"napari_sam2_track.{name}":
                raise
            continue
        module.add_parsers(sub)
    return parser


def load_model_from_args(args: argparse.Namespace):
    """Load the model named by ``--model``/``--config``/``--device`` options."""
    from .engine.models import DEFAULT_MAX_COND_FRAMES, load_model

    return load_model(
        args.model,
        config=args.config,
        device=args.device,
        image_size=args.image_size,
        vos_optimized=args.compile,
        max_cond_frames=DEFAULT_MAX_COND_FRAMES
        if args.max_cond_frames is None
        else args.max_cond_frames,
    )


@command("track")
def cmd_track(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .pipeline import track
    from .prompts import PromptSet
    from .schema import Schema
    from .sources import open_source

    source = open_source(args.video, channel=args.channel, window=args.window)
    prompts = PromptSet.load(args.prompts) if args.prompts else None
    schema = Schema.load(args.schema) if args.schema else None
    if prompts is not None:
        prompts.check_video(len(source), source.height, source.width)
    model = load_model_from_args(args)
    cancel = threading.Event()
    bar = None
    try:
        for progress in track(
            source,
            prompts,
            args.out,
            model=model,
            direction=args.direction,
            start=args.start,
            end=args.end,
            resume=args.resume,
            overwrite=args.overwrite,
            prompts_dir=None if args.prompts is None else Path(args.prompts).parent,
            cancel=cancel,
            schema=schema,
        ):
            if bar is None and not args.quiet:
                bar = tqdm(total=progress.total, unit="frame", desc="tracking")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(fps=f"{progress.fps:.1f}", frame=progress.frame)
    except KeyboardInterrupt:
        cancel.set()
        print(f"\ninterrupted; frames written so far are kept in {args.out} (use --resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
        source.close()
    print(f"wrote {args.out}")
    return 0


@command("info")
def cmd_info(args: argparse.Namespace) -> int:
    from .store import ProjectStore

    summary = ProjectStore.open(args.project, mode="r").summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    t, h, w = summary["shape"]
    print(f"project  {summary['path']}  ({t} frames, {w}x{h})")
    src = summary["source"]
    print(f"source   {src.get('path')}  [{src.get('kind')}, {src.get('dtype')}]")
    if src.get("window"):
        print(f"window   {src['window']}")
    model = summary["model"] or {}
    print(f"model    {model.get('name', '-')}  ({model.get('config', '-')}, {model.get('device', '-')})")
    print(f"version  napari-sam2-track {summary['package_version']} (format {summary['format_version']})")
    print(f"objects  {len(summary['objects'])}")
    for obj in summary["objects"]:
        states = ", ".join(f"{k} {v}" for k, v in obj["states"].items() if v)
        span = (
            f"frames {obj['first_frame']}-{obj['last_frame']}"
            if obj["first_frame"] is not None
            else "no visible frames"
        )
        print(
            f"  {obj['id']:>5}  {obj['name'] or '-':<16} {obj['category'] or '-':<14} {span}; "
            f"keyframes {obj['keyframes']}; {states}"
        )
    print(f"runs     {len(summary['runs'])}")
    for run in summary["runs"]:
        print(
            f"  #{run['id']} {run['status']:<9} {run.get('direction')} {run.get('started')} "
            f"{run.get('frames', '?')} frames"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-sam2-track`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return COMMANDS[args.command](args)
    except Sam2TrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
