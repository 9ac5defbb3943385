"""One model per worker process: a cache keyed by model options, and a worker plugin.

A :class:`~.engine.spec.ModelSpec` is the picklable form of the ``track`` model options. Tasks call
:func:`cached_model` with it; the first call in a process loads the model and later calls,
from any task, get the same object. :class:`PreloadModel` (a ``distributed`` worker plugin)
loads it when a worker starts, so the first video does not pay for it, and sets the number of
torch threads to the worker's share of the cores.
"""

from __future__ import annotations

import threading

try:  # the plugin base class; the cache itself works without distributed
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - distributed is an optional extra
    WorkerPlugin = object  # type: ignore[assignment,misc]

from ..engine.spec import ModelSpec

__all__ = ["ModelSpec", "PreloadModel", "cached_model", "loads_in_this_process"]


_MODELS: dict[ModelSpec, object] = {}
_LOCK = threading.Lock()
#: How many models this process has loaded (a worker should load each spec once).
load_count = 0


def cached_model(spec: ModelSpec):
    """The process's model for ``spec``, loaded on first use."""
    global load_count
    with _LOCK:
        model = _MODELS.get(spec)
        if model is None:
            model = _MODELS[spec] = spec.load()
            load_count += 1
        return model


def loads_in_this_process() -> int:
    """Models loaded by this process so far (run on workers with ``client.run``)."""
    return load_count


class PreloadModel(WorkerPlugin):
    """Load the model when a worker starts and give torch the worker's share of the cores."""

    name = "napari-sam2-track-model"

    def __init__(self, spec: ModelSpec, torch_threads: int | None = None):
        self.spec = spec
        self.torch_threads = torch_threads

    def setup(self, worker) -> None:
        if self.torch_threads:
            import torch

            torch.set_num_threads(int(self.torch_threads))
        try:
            cached_model(self.spec)
        except Exception:  # noqa: BLE001 - a bad model is reported by the first task instead
            pass
