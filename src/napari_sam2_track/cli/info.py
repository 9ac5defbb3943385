"""``napari-sam2-track info``: summarise a project store."""

from __future__ import annotations

import argparse
import json

from ._registry import command


def add_parsers(sub) -> None:
    p = sub.add_parser("info", help="summarise a project store")
    p.add_argument("project", help="PROJECT.zarr")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


@command("info")
def cmd_info(args: argparse.Namespace) -> int:
    from ..project import ProjectStore

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
