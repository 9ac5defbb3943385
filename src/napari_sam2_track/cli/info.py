"""``napari-sam2-track info``: summarise a project store, or a video or volume file (its axes,
shape, voxel size and units) before it is tracked."""

from __future__ import annotations

import argparse
import json

from ._registry import add_source_options, command, source_options

MAX_SHOWN = 20  # problems listed by --check


def add_parsers(sub) -> None:
    p = sub.add_parser("info", help="summarise a project store, or a video or volume file")
    p.add_argument("project", metavar="PATH",
                   help="PROJECT.zarr, or a video or volume (NIfTI, DICOM folder, z-stack, ...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--check", action="store_true",
                   help="read every chunk and table row and report what is damaged (exit 1 if any)")
    add_source_options(p)


def voxel_size(geometry: dict) -> str:
    """``z 2.5 µm, y 0.5 µm, x 0.5 µm`` (``px`` where the unit is unknown)."""
    parts = []
    for axis, step, unit in zip(geometry["axes"], geometry["spacing"], geometry["units"]):
        if axis in "zyx":
            parts.append(f"{axis} {step:g} {unit or 'px'}")
    return ", ".join(parts)


def print_volume(summary: dict) -> None:
    """The head lines of a volume project: axes, shape, voxel size with units."""
    t, z, h, w = summary["shape"]
    geometry = summary["geometry"]
    print(f"project  {summary['path']}  (volume: {t} timepoint(s) x {z} slices, {w}x{h}; "
          f"{t * z} planes)")
    print(f"axes     {summary['axes']}  shape {list(summary['shape'])}")
    print(f"voxel    {voxel_size(geometry)}")
    if "t" in geometry["axes"] and t > 1:
        i = geometry["axes"].index("t")
        print(f"interval {geometry['spacing'][i]:g} {geometry['units'][i] or '(unit unknown)'}")


def print_source(info: dict) -> None:
    """A video's or volume's head lines: kind, frames or axes, shape, voxel size, window."""
    print(f"source   {info['path']}  [{info['kind']}, {info['dtype']}]")
    geometry = info.get("geometry")
    if geometry is None:  # a 2D recording
        fps = f", {info['fps']:g} fps" if info.get("fps") else ""
        print(f"frames   {info['num_frames']}  ({info['width']}x{info['height']}{fps})")
    else:
        t, z, h, w = info["shape"]
        file_axes = f"  (file {info['file_axes']})" if info.get("file_axes") else ""
        print(f"axes     {info['axes']}{file_axes}  shape {list(info['shape'])}: {t} timepoint(s) x "
              f"{z} slices, {w}x{h}")
        print(f"voxel    {voxel_size(geometry)}")
        if t > 1:
            i = geometry["axes"].index("t")
            print(f"interval {geometry['spacing'][i]:g} {geometry['units'][i] or '(unit unknown)'}")
        if geometry.get("space"):
            print(f"space    {geometry['space']} (affine kept for exports)")
    if info.get("window"):
        window = info["window"]
        preset = f" ({window['preset']})" if window.get("preset") else ""
        print(f"window   {window['low']:g}-{window['high']:g}{preset}")
    for note in info.get("notes") or []:
        print(f"note     {note}")


def _source_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import SourceError
    from ..sources import open_source

    if args.check:
        raise SourceError(f"{args.project} is not a project: --check reads a project store "
                          "(drop --check to describe the file)")
    try:
        source = open_source(args.project, **source_options(args))
    except SourceError:
        if (Path(args.project) / "zarr.json").is_file():  # a zarr group that is neither
            from ..project import ProjectStore

            ProjectStore.open(args.project, mode="r")  # says it is not a project, and what to do
        raise
    with source:
        info = source.describe()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print_source(info)
    return 0


@command("info")
def cmd_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..project import ProjectStore

    path = Path(args.project)
    if path.exists() and not (path / "objects").is_dir():  # a file to track, not a project
        return _source_info(args)

    store = ProjectStore.open(args.project, mode="r")
    summary = store.summary()
    problems = None
    if args.check:
        from ..project.check import verify_project

        problems, counts = verify_project(store)
        summary["check"] = {"problems": problems, **counts}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 1 if problems else 0
    if summary.get("axes") == "tzyx":
        print_volume(summary)
    else:
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
    lock = summary.get("lock")
    if lock and lock["pid"] == -1:
        print(f"writer   unknown: {lock['command']}")
    elif lock:
        print(f"writer   PID {lock['pid']} on {lock['host']} since {lock['started']}: {lock['command']}")
    print(f"runs     {len(summary['runs'])}")
    for run in summary["runs"]:
        print(
            f"  #{run['id']} {run['status']:<9} {run.get('direction')} {run.get('started')} "
            f"{run.get('frames', '?')} frames" + (f"  ({run['error']})" if run.get("error") else "")
        )
    if problems is not None:
        counts = summary["check"]
        if not problems:
            print(f"check    ok: {counts['frames']} frames x {counts['objects']} objects, "
                  f"{counts['rows']} table rows verified")
            return 0
        print(f"check    {len(problems)} problems")
        for line in problems[:MAX_SHOWN]:
            print(f"  {line}")
        if len(problems) > MAX_SHOWN:
            print(f"  ... and {len(problems) - MAX_SHOWN:,} more")
        return 1
    return 0
