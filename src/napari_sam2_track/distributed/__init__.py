"""Batch and time-parallel tracking on dask.distributed (the ``[distributed]`` extra).

* :func:`run_batch`: many videos, one project each, on a local or existing cluster.
* :func:`plan_segments` / ``track --segments``: one long video split at keyframes.

See ``docs/distributed.md``. The rest of the package imports and runs without dask.
"""

from __future__ import annotations

from .batch import BatchSummary, run_batch
from .handover import take_over_from_lost_worker
from .manifest import BatchItem, ManifestError, load_manifest
from .models import ModelSpec, PreloadModel, cached_model
from .segments import Segment, plan_segments, split_points

__all__ = [
    "BatchItem",
    "BatchSummary",
    "ManifestError",
    "ModelSpec",
    "PreloadModel",
    "Segment",
    "cached_model",
    "load_manifest",
    "plan_segments",
    "run_batch",
    "split_points",
    "take_over_from_lost_worker",
]
