"""napari-sam2-track: video annotation with SAM 2 for napari and lab pipelines.

The core is Qt-free::

    from napari_sam2_track import open_source, load_model, PromptSet, track

    source = open_source("movie.mp4")
    model = load_model("tiny")
    prompts = PromptSet.load("prompts.json")
    for progress in track(source, prompts, "movie.zarr", model=model):
        print(progress.frames_done, progress.fps)
"""

from __future__ import annotations

from ._version import __version__

__all__ = [
    "PromptSet",
    "Prompt",
    "ObjectSpec",
    "ProjectStore",
    "Schema",
    "StreamingTracker",
    "load_model",
    "open_source",
    "track",
    "__version__",
]


def __getattr__(name: str):
    # Lazy imports keep `import napari_sam2_track` (and napari start-up) free of torch/sam2.
    if name in ("PromptSet", "Prompt", "ObjectSpec"):
        from . import prompts

        return getattr(prompts, name)
    if name == "ProjectStore":
        from .project import ProjectStore

        return ProjectStore
    if name == "Schema":
        from .schema import Schema

        return Schema
    if name == "StreamingTracker":
        from .engine.tracker import StreamingTracker

        return StreamingTracker
    if name == "load_model":
        from .engine.models import load_model

        return load_model
    if name == "open_source":
        from .sources import open_source

        return open_source
    if name == "track":
        from .pipeline import track

        return track
    raise AttributeError(f"module 'napari_sam2_track' has no attribute {name!r}")
