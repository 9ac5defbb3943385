"""Command line: ``napari-sam2-track export|import|compare ...``."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import warnings

from ._registry import command


def _add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to export")
    g.add_argument("--min-visible-pixels", type=int, help="masks smaller than this are absent (default: the schema's)")
    g.add_argument("--occlusion", choices=["occluded", "absent"], default="occluded",
                   help="flag objects hidden inside the view as occluded (default) or treat them as absent")
    g.add_argument("--approved-only", action="store_true", help="only objects reviewed as satisfactory")
    g.add_argument("--every", type=int, default=1, help="keep every Nth frame (default: 1)")
    g.add_argument("--start", type=int, help="first frame (inclusive)")
    g.add_argument("--end", type=int, help="last frame (inclusive)")
    g.add_argument("--categories", nargs="+", help="only objects of these categories")


def _options(args):
    from ..formats import ExportOptions

    return ExportOptions(min_visible_pixels=args.min_visible_pixels, occlusion=args.occlusion,
                         approved_only=args.approved_only, every=args.every, start=args.start,
                         end=args.end, categories=args.categories)


def add_parsers(sub) -> None:
    from ..formats import FORMAT_ALIASES, FORMATS, READERS

    p = sub.add_parser("export", help="export a project to an annotation format")
    p.add_argument("project", help="PROJECT.zarr")
    p.add_argument("--format", "-f", required=True, choices=sorted([*FORMATS, *FORMAT_ALIASES]))
    p.add_argument("--out", required=True, help="output file or folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous export of the same format at --out (never anything else)")
    p.add_argument("--progress", action="store_true",
                   help='print progress on stdout as JSON lines {"done": D, "total": N} (at most '
                   "10 a second, and always the last), before the final 'wrote OUT' line")
    p.add_argument("--quiet", action="store_true", help="no progress bar (shown on a terminal)")
    _add_options(p)
    g = p.add_argument_group("format options")
    g.add_argument("--dtype", choices=["uint16", "uint32"], help="tiff: label dtype (default uint16)")
    g.add_argument("--tiff-flavour", choices=["ome", "imagej"], help="tiff: OME-TIFF (default) or ImageJ hyperstack")
    g.add_argument("--image", choices=["none", "reference", "include"], help="ome-zarr: the image (default none)")
    g.add_argument("--image-path", help="ome-zarr: video to include instead of the project's source")
    g.add_argument("--video", help="davis/youtube-vos/sav/youtube-vis: video name (default: project name)")

    p = sub.add_parser("import", help="turn existing annotations into a project store")
    p.add_argument("annotations", help="annotation file or folder")
    p.add_argument("--format", "-f", choices=sorted(set(READERS) - {"project"}),
                   help="default: guessed from the path")
    p.add_argument("--out", required=True, help="project store to write (PROJECT.zarr)")
    p.add_argument("--keyframes", choices=["none", "first", "all"], default="none",
                   help="also store masks as keyframe prompts: each object's first frame, or every frame")
    p.add_argument("--schema", help="annotation schema (YAML/JSON) to store in the project")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous project at --out (never anything else)")
    g = p.add_argument_group("label volumes (nifti, dicom, tiff ZYX/TZYX)")
    g.add_argument("--image", help="the image volume the labels were drawn on (NIfTI file, DICOM folder, "
                   "z-stack TIFF): the project is built on it; the labels' grid and affine must match")
    g.add_argument("--series", help="dicom: the SeriesInstanceUID of the label series in a folder of several")
    g = p.add_argument_group("SA-V JSON (sav-json)")
    g.add_argument("--video", help="the video the annotations belong to: its frame count places "
                   "each annotated frame on its real frame (SA-V annotates every 4th frame)")
    g.add_argument("--video-frames", type=int, help="the video's frame count, instead of --video")
    g.add_argument("--frame-stride", type=int, help="video frames between annotated frames "
                   "(default: from the video's frame count, else the file's video_frame_count)")

    p = sub.add_parser("compare", help="J&F and CTC SEG/TRA between two label sets (volumes: Dice, IoU, HD95)")
    p.add_argument("reference", help="reference labels: project or importable annotations")
    p.add_argument("other", help="labels to evaluate against the reference")
    p.add_argument("--format-a", help="format of the reference (default: guessed)")
    p.add_argument("--format-b", help="format of the other (default: guessed)")
    p.add_argument("--bound-th", type=float, default=0.008, help="boundary tolerance (default 0.008)")
    p.add_argument("--no-ctc", action="store_true", help="skip CTC SEG/TRA")
    p.add_argument("--skip-first-last", action="store_true", help="DAVIS protocol: leave out first and last frame")
    p.add_argument("--json", action="store_true", help="print JSON")


@contextlib.contextmanager
def _warnings_as_lines():
    """Show the warnings of a command that succeeded as ``warning: ...`` lines on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, UserWarning) and not issubclass(w.category, DeprecationWarning):
            print(f"warning: {' '.join(str(w.message).split())}", file=sys.stderr)


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    from ..formats import export

    extra = {}
    fmt = args.format
    if args.dtype:
        extra["dtype"] = args.dtype
    if args.tiff_flavour:
        extra["flavour"] = args.tiff_flavour
    if args.image:
        extra["image"] = args.image
    if args.image_path:
        extra["image_path"] = args.image_path
    if args.video:
        extra["video"] = args.video
    bar = sys.stderr.isatty() and not (args.quiet or args.progress)
    progress = _Progress(lines=args.progress, bar=bar)
    with _warnings_as_lines():
        try:
            out = export(args.project, fmt, args.out, _options(args), overwrite=args.overwrite,
                         progress=progress, **extra)
        finally:
            progress.close()
    print(f"wrote {out}")
    return 0


#: Seconds between two ``--progress`` lines (the last frame's is always printed).
PROGRESS_INTERVAL_S = 0.1


def progress_line(done: int, total: int) -> str:
    """A line of ``export --progress``: ``{"done": D, "total": N}``."""
    return json.dumps({"done": int(done), "total": int(total)})


def parse_progress_line(line: str) -> tuple[int, int] | None:
    """``(done, total)`` of an ``export --progress`` line; ``None`` for any other line."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
        return int(data["done"]), int(data["total"])
    except (ValueError, KeyError, TypeError):
        return None


class _Progress:
    """An export's ``progress(done, total)``: JSON lines on stdout and/or a bar on stderr."""

    def __init__(self, lines: bool, bar: bool):
        self.lines, self.want_bar = lines, bar
        self.bar = None
        self.printed = -math.inf

    def __call__(self, done: int, total: int) -> None:
        if self.lines:
            now = time.monotonic()
            if done >= total or now - self.printed >= PROGRESS_INTERVAL_S:
                print(progress_line(done, total), flush=True)
                self.printed = now
        if self.want_bar:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="frame", desc="exporting")
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _sav_options(args: argparse.Namespace, fmt: str | None) -> dict:
    given = {k: v for k, v in (("video", args.video), ("video_frames", args.video_frames),
                               ("frame_stride", args.frame_stride)) if v is not None}
    if not given:
        return {}
    from ..errors import Sam2TrackError
    from ..formats import guess_format

    if (fmt or guess_format(args.annotations)) != "sav-json":
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise Sam2TrackError(f"{flags} apply to SA-V JSON annotations (--format sav-json) only")
    return given


def _volume_options(args: argparse.Namespace, fmt: str | None) -> dict:
    given = {k: v for k, v in (("image", args.image), ("series", args.series)) if v is not None}
    if not given:
        return {}
    from ..errors import Sam2TrackError
    from ..formats import guess_format

    fmt = fmt or guess_format(args.annotations)
    allowed = {"nifti": ("image",), "dicom": ("image", "series"), "tiff": ("image",)}.get(fmt, ())
    wrong = [k for k in given if k not in allowed]
    if wrong:
        raise Sam2TrackError(f"--{wrong[0]} applies to label volumes ({'nifti, dicom, tiff' if wrong[0] == 'image' else 'dicom'}), "
                             f"not to {fmt} annotations")
    return given


@command("import")
def cmd_import(args: argparse.Namespace) -> int:
    from ..formats import import_annotations
    from ..schema import Schema

    schema = Schema.load(args.schema) if args.schema else None
    kwargs = _sav_options(args, args.format)
    kwargs.update(_volume_options(args, args.format))
    with _warnings_as_lines():
        store = import_annotations(args.annotations, args.out, args.format, keyframes=args.keyframes,
                                   overwrite=args.overwrite, schema=schema, **kwargs)
    t, h, w = store.shape
    src = store.meta.get("source") or {}
    notes = [f"format {src['format']}"] if src.get("format") else []
    if getattr(store, "is_volume", False):
        n_t, n_z, h, w = store.volume_shape
        if (src.get("import") or {}).get("image"):
            notes.append(f"on the image {src['import']['image']}")
        print(f"wrote {args.out}: {len(store.objects)} objects, {n_t} timepoint(s) of {n_z} slices of {w}x{h}"
              + (f" ({'; '.join(notes)})" if notes else ""))
        return 0
    if src.get("convention"):
        notes.append(f"convention {src['convention']}")
    if src.get("frame_stride"):
        notes.append(f"frame stride {src['frame_stride']}")
    if src.get("dropped"):
        notes.append(f"dropped {len(src['dropped'])} kind(s) of content (see the warnings above)")
    print(f"wrote {args.out}: {len(store.objects)} objects, {t} frames, {w}x{h}"
          + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


def _fmt(v) -> str:
    return "   -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:6.3f}"


@command("compare")
def cmd_compare(args: argparse.Namespace) -> int:
    from ..formats import read_labels
    from ..formats.metrics import compare

    a = read_labels(args.reference, args.format_a)
    b = read_labels(args.other, args.format_b)
    result = compare(a, b, bound_th=args.bound_th, ctc=not args.no_ctc, skip_first_last=args.skip_first_last)
    if result.get("kind") == "volume":
        return _print_volume_compare(result, args.json)
    if args.json:
        result["objects"] = {str(k): v for k, v in result["objects"].items()}
        print(json.dumps(result, indent=2))
        return 0
    print(f"reference {result['reference']}\nother     {result['other']}\nframes    {result['frames']}")
    print(f"{'object':>8}  {'J&F':>6} {'J-mean':>6} {'J-rec':>6} {'J-dec':>6} {'F-mean':>6} {'F-rec':>6} {'F-dec':>6}")
    for i, r in result["objects"].items():
        mark = "" if r["in_reference"] and r["in_other"] else ("  (missing)" if r["in_reference"] else "  (extra)")
        print(f"{i:>8}  {_fmt(r['J&F'])} " + " ".join(_fmt(r[k][s]) for k in "JF" for s in ("mean", "recall", "decay"))
              + mark)
    o = result["overall"]
    print(f"{'overall':>8}  {_fmt(o['J&F'])} " + " ".join(_fmt(o[k][s]) for k in "JF" for s in ("mean", "recall", "decay")))
    if "ctc" in result:
        print(f"CTC SEG {_fmt(result['ctc']['SEG'])}  TRA {_fmt(result['ctc']['TRA'])}")
    return 0


def _print_volume_compare(result: dict, as_json: bool) -> int:
    """``compare`` of two volume label sets: Dice, IoU, HD95 per object (mean over timepoints)."""
    if as_json:
        result["objects"] = {str(k): v for k, v in result["objects"].items()}
        print(json.dumps(result, indent=2))
        return 0
    unit = result["units"] or "voxels"
    print(f"reference  {result['reference']}\nother      {result['other']}\ntimepoints {result['timepoints']}"
          f"  voxel {' x '.join(f'{s:g}' for s in result['spacing'])} {unit} (z, y, x)")
    print(f"{'object':>8}  {'Dice':>6} {'IoU':>6} {'HD95':>9}  ({unit}; means over timepoints)")
    for i, r in result["objects"].items():
        mark = "" if r["in_reference"] and r["in_other"] else ("  (missing)" if r["in_reference"] else "  (extra)")
        m = r["mean"]
        print(f"{i:>8}  {_fmt(m['dice'])} {_fmt(m['iou'])} {_fmt(m['hd95']):>9}" + mark)
    o = result["overall"]
    print(f"{'overall':>8}  {_fmt(o['dice'])} {_fmt(o['iou'])} {_fmt(o['hd95']):>9}")
    return 0
