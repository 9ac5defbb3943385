"""``napari-sam2-track annotate [VIDEO | --sample cells|instruments]``: napari with the docks open.

The video is opened lazily, its project (``<video stem>.zarr`` beside it by default, a
temporary folder for samples) is created or reopened, and the Schema, Prompt and Propagate
and Review docks are shown (one tab each, Prompt and Propagate in front), ready to click.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NamedTuple

from ._registry import command
from ..errors import Sam2TrackError

PLUGIN = "napari-sam2-track"
SAMPLES = ("cells", "instruments")
DOCK_WIDTH = 380  # pixels: the docks' column; the canvas takes the rest


class AnnotationViewer(NamedTuple):
    """What :func:`open_annotation_viewer` opened."""

    viewer: Any
    schema_dock: Any
    prompt_dock: Any
    review_dock: Any


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "annotate",
        help="open napari with a video (or a sample) and the annotation docks",
        description="Open napari with the video loaded lazily, its project store and the "
        "Schema, Prompt and Propagate and Review docks.",
    )
    p.add_argument("video", nargs="?", help="video file, TIFF stack, zarr array or image folder")
    p.add_argument("--sample", choices=SAMPLES, help="open a synthetic sample instead of a video")
    p.add_argument(
        "--project",
        help="project store (default: <video stem>.zarr beside the video; a temporary folder "
        "for samples)",
    )
    p.add_argument("--schema", help="annotation schema (YAML/JSON) for a new project")
    p.add_argument(
        "--model",
        help="load this model at start: tiny|small|base-plus|large, a Hugging Face id or a .pt "
        "(default: choose in the dock)",
    )
    p.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]|mps (default: auto)")
    p.add_argument("--channel", type=int, help="channel of a multichannel stack to track on")
    p.add_argument("--frames", type=int, default=60, help="number of frames of a sample (default 60)")


def open_annotation_viewer(
    video: str | Path | None = None,
    *,
    sample: str | None = None,
    project: str | Path | None = None,
    schema: str | Path | None = None,
    channel: int | None = None,
    frames: int = 60,
    size: tuple[int, int] = (256, 256),
    show: bool = True,
) -> AnnotationViewer:
    """Create a napari viewer with the video (or sample) and the docks; returns
    ``(viewer, schema_dock, prompt_dock, review_dock)``. Input errors are raised before any
    window opens."""
    from .. import _napari_io as io
    from ..schema import Schema

    if (video is None) == (sample is None):
        raise Sam2TrackError("give either a VIDEO or --sample cells|instruments")
    if sample is not None and sample not in SAMPLES:
        raise Sam2TrackError(f"unknown sample {sample!r}; use one of {', '.join(SAMPLES)}")
    loaded_schema = Schema.load(schema) if schema else None
    if video is not None:
        from ..sources import open_source

        source = open_source(video, channel=channel)
        layers = [io.image_layer_data(source)]
    else:
        make = io.sample_cells if sample == "cells" else io.sample_instruments
        layers = make(n_frames=frames, size=size)

    import napari

    viewer = napari.Viewer(show=show, title=f"napari-sam2-track: {Path(str(video or sample)).name}")
    added = [getattr(viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layers]
    image = added[0]
    schema_dw, schema_dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Schema")
    prompt_dw, prompt_dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Prompt and Propagate")
    review_dw, review_dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Review")
    try:  # one tab per dock, Prompt and Propagate in front, the canvas the main area
        from qtpy.QtCore import Qt

        qt_window = viewer.window._qt_window
        qt_window.tabifyDockWidget(schema_dw, prompt_dw)
        qt_window.tabifyDockWidget(prompt_dw, review_dw)
        prompt_dw.raise_()
        qt_window.resizeDocks([prompt_dw], [DOCK_WIDTH], Qt.Orientation.Horizontal)
    except AttributeError:
        pass
    if loaded_schema is not None:
        schema_dock.set_schema(loaded_schema)
        schema_dock.hub.schema = loaded_schema
    prompt_dock.select_image(image.name)
    prompt_dock.open_project(project, layer=image)
    fit_view_when_shown(viewer)
    return AnnotationViewer(viewer, schema_dock, prompt_dock, review_dock)


def fit_view_when_shown(viewer) -> None:
    """Fit the image to the canvas now and again once the window has its final layout (the
    docks take their width only when the window is shown)."""
    from qtpy.QtCore import QTimer

    viewer.reset_view()
    QTimer.singleShot(0, viewer.reset_view)
    QTimer.singleShot(200, viewer.reset_view)


@command("annotate")
def cmd_annotate(args: argparse.Namespace) -> int:
    opened = open_annotation_viewer(
        args.video,
        sample=args.sample,
        project=args.project,
        schema=args.schema,
        channel=args.channel,
        frames=args.frames,
    )
    prompt_dock = opened.prompt_dock
    if args.model:
        prompt_dock.model_combo.setCurrentText(args.model)
        prompt_dock.device_combo.setCurrentText(args.device)
        prompt_dock.load_model(args.model, args.device)
    import napari

    napari.run()
    return 0
