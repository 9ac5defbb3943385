"""``napari-sam2-track annotate [VIDEO | --sample NAME]``: napari with the docks open.

The video is opened lazily, its project (``<video stem>.zarr`` beside it by default, a
temporary folder for samples: the dock says where, and how to reopen it) is created or
reopened, and the Prompt and Propagate, Review and Schema docks are shown (one tab each,
Prompt and Propagate in front), ready to click. The window fits the screen. The model given
with ``--model`` (and ``--image-size``, ``--device``), else the one last loaded in the dock, is
loaded at start.

The volume samples (``nuclei3d``, ``cells3dt``) open as an Image layer with their voxel scale
(axes ``z, y, x`` or ``t, z, y, x``) and their ground truth as a Labels layer, with their volume
project open in the dock: click on a slice, then Propagate (along z both ways, and from
timepoint to timepoint for ``cells3dt``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NamedTuple

from ._registry import command
from ..errors import Sam2TrackError

PLUGIN = "napari-sam2-track"
VIDEO_SAMPLES = ("cells", "instruments")
#: volume samples (:mod:`napari_sam2_track.samples3d`)
VOLUME_SAMPLES = ("nuclei3d", "cells3dt")
SAMPLES = VIDEO_SAMPLES + VOLUME_SAMPLES
#: width of napari's layer list and controls column (its own default leaves the canvas little room)
LEFT_DOCK_WIDTH = 240


class AnnotationViewer(NamedTuple):
    """What :func:`open_annotation_viewer` opened."""

    viewer: Any
    schema_dock: Any
    prompt_dock: Any
    review_dock: Any


def add_parsers(subparsers) -> None:
    from ..samples import SAMPLE_FRAMES

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
        help="load this model at start: tiny|small|base-plus|large, a Hugging Face id or a local "
        ".pt checkpoint (default: the model last loaded in the dock, if any)",
    )
    p.add_argument("--image-size", type=int,
                   help="the model's input size, e.g. 256 or 512 for a fine-tuned checkpoint "
                   "(default: the model's config, 1024 for SAM 2.1)")
    p.add_argument("--device", help="auto|cpu|cuda[:N]|mps (default: auto, or the last one used)")
    p.add_argument("--channel", type=int, help="channel of a multichannel stack to track on")
    p.add_argument("--frames", type=int, default=SAMPLE_FRAMES,
                   help=f"number of frames of a video sample (default {SAMPLE_FRAMES}; the "
                   "volume samples have their own size)")


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
    screen_size: tuple[int, int] | None = None,
    viewer: Any = None,
) -> AnnotationViewer:
    """Create a napari viewer (or use ``viewer``) with the video (or sample) and the docks;
    returns ``(viewer, schema_dock, prompt_dock, review_dock)``. Input errors are raised before
    any window opens."""
    from .. import _napari_io as io
    from ..schema import Schema

    if (video is None) == (sample is None):
        raise Sam2TrackError(f"give either a VIDEO or --sample {'|'.join(SAMPLES)}")
    if sample is not None and sample not in SAMPLES:
        raise Sam2TrackError(f"unknown sample {sample!r}; use one of {', '.join(SAMPLES)}")
    loaded_schema = Schema.load(schema) if schema else None
    if video is not None:
        from ..sources import open_source

        from ..sources.volume import VolumeSource

        source = open_source(video, channel=channel)
        volume = isinstance(source, VolumeSource)
        layers = [io.volume_layer_data(source) if volume else io.image_layer_data(source)]
    elif sample in VOLUME_SAMPLES:
        from ..samples3d import make_volume_sample, sample_layers

        layers = sample_layers(make_volume_sample(sample))
    else:
        make = io.sample_cells if sample == "cells" else io.sample_instruments
        layers = make(n_frames=frames, size=size)

    import napari

    if viewer is None:
        viewer = napari.Viewer(show=False, title=f"napari-sam2-track: {Path(str(video or sample)).name}")
    added = [getattr(viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layers]
    image = added[0]
    prompt_dw, prompt_dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Prompt and Propagate")
    review_dw, review_dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Review")
    schema_dw, schema_dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Schema")
    arrange_docks(viewer, [prompt_dw, review_dw, schema_dw])
    fit_window(viewer, prompt_dw, screen_size)
    if loaded_schema is not None:
        schema_dock.set_schema(loaded_schema)
        schema_dock.hub.schema = loaded_schema
    prompt_dock.select_image(image.name)
    prompt_dock.open_project(project, layer=image)
    if show:
        viewer.window.show()
        fit_window(viewer, prompt_dw, screen_size)  # again, now that the docks have their sizes
    fit_view_when_shown(viewer)
    return AnnotationViewer(viewer, schema_dock, prompt_dock, review_dock)


def arrange_docks(viewer, docks: list) -> None:
    """One tab per dock, the first in front, with short titles."""
    qt_window = viewer.window._qt_window
    for dw in docks:
        title = dw.name.split(" (")[0]  # napari adds the plugin's name, which does not fit a tab
        dw.setWindowTitle(title)
        try:  # napari's own title bar (private): the short title there too
            dw.title.title.setText(title)
        except AttributeError:
            pass
    for dw in docks[1:]:
        qt_window.tabifyDockWidget(docks[0], dw)
    docks[0].show()
    docks[0].raise_()


def fit_window(viewer, dock, screen_size: tuple[int, int] | None = None) -> None:
    """The window fitted to the screen (``screen_size``: the available ``(width, height)``,
    default the primary screen's), ``dock`` in front, the docks' column at most
    :data:`~napari_sam2_track._qt._widgets.DOCK_WIDTH` wide and the canvas at least half the
    window."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    from .._qt._widgets import DOCK_WIDTH

    qt_window = viewer.window._qt_window
    dock.raise_()
    if screen_size is None:
        screen = QApplication.primaryScreen()
        if screen is None:
            return
        geometry = screen.availableGeometry()
        screen_size = (geometry.width(), geometry.height())
    width, height = screen_size
    qt_window.resize(width, height)
    left = [getattr(viewer.window._qt_viewer, name, None) for name in ("dockLayerControls", "dockLayerList")]
    left = [dw for dw in left if dw is not None and not dw.isHidden()]
    left_width = max([dw.minimumSizeHint().width() for dw in left] + [LEFT_DOCK_WIDTH]) if left else 0
    ours = max(min(DOCK_WIDTH, width - width // 2 - left_width - 40), 240)  # the canvas keeps half
    qt_window.resizeDocks([dock, *left], [ours] + [left_width] * len(left), Qt.Orientation.Horizontal)


def fit_view_when_shown(viewer) -> None:
    """Fit the image to the canvas now and again once the window has its final layout (the
    docks take their width only when the window is shown)."""
    from qtpy.QtCore import QTimer

    viewer.reset_view()
    QTimer.singleShot(0, viewer.reset_view)
    QTimer.singleShot(200, viewer.reset_view)


def startup_model(model: str | None, image_size: int | None, device: str | None):
    """The model to load at start: the one given, else the one last loaded in the dock (with
    the given input size or device replacing its own); ``None``: none."""
    from dataclasses import replace

    from .. import settings
    from ..engine.models import check_image_size
    from ..engine.spec import ModelSpec

    if image_size is not None:
        check_image_size(image_size)  # refused before any window opens
    last = settings.last_model()
    if model is None and last is None:
        if image_size is not None or device is not None:
            raise Sam2TrackError("--image-size and --device apply to a model: pass --model too "
                                 "(no model was loaded in the dock before)")
        return None
    spec = ModelSpec(model=model) if model is not None else last
    changes = {k: v for k, v in (("image_size", image_size), ("device", device)) if v is not None}
    return replace(spec, **changes) if changes else spec


@command("annotate")
def cmd_annotate(args: argparse.Namespace) -> int:
    spec = startup_model(args.model, args.image_size, args.device)
    opened = open_annotation_viewer(
        args.video,
        sample=args.sample,
        project=args.project,
        schema=args.schema,
        channel=args.channel,
        frames=args.frames,
    )
    if spec is not None:
        opened.prompt_dock.load_model(spec=spec)
    import napari

    napari.run()
    return 0
