"""One model per worker process: a cache keyed by model options, and a worker plugin.

A :class:`ModelSpec` is the picklable form of the ``track`` model options. Tasks call
:func:`cached_model` with it; the first call in a process loads the model and later calls,
from any task, get the same object. :class:`PreloadModel` (a ``distributed`` worker plugin)
loads it when a worker starts, so the first video does not pay for it, and sets the number of
torch threads to the worker's share of the cores.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass

try:  # the plugin base class; the cache itself works without distributed
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - distributed is an optional extra
    WorkerPlugin = object  # type: ignore[assignment,misc]


@dataclass(frozen=True)
class ModelSpec:
    """The options that pick a model, as for ``track`` (see :func:`~.engine.models.load_model`)."""

    model: str = "tiny"
    config: str | None = None
    device: str = "auto"
    image_size: int | None = None
    vos_optimized: bool = False
    max_cond_frames: int | None = None

    @classmethod
    def from_args(cls, args) -> "ModelSpec":
        """From parsed ``add_model_options`` arguments."""
        return cls(
            model=str(args.model),
            config=args.config,
            device=args.device,
            image_size=args.image_size,
            vos_optimized=bool(args.compile),
            max_cond_frames=args.max_cond_frames,
        )

    @classmethod
    def coerce(cls, value: "ModelSpec | str | os.PathLike | dict") -> "ModelSpec":
        """A spec from a spec, a model name/path, or a dict of its fields."""
        if isinstance(value, ModelSpec):
            return value
        if isinstance(value, dict):
            return cls(**value)
        return cls(model=str(value))

    def load(self):
        """Load the model now (no cache)."""
        from ..engine.models import DEFAULT_MAX_COND_FRAMES, load_model

        return load_model(
            self.model,
            config=self.config,
            device=self.device,
            image_size=self.image_size,
            vos_optimized=self.vos_optimized,
            max_cond_frames=DEFAULT_MAX_COND_FRAMES
            if self.max_cond_frames is None
            else self.max_cond_frames,
        )

    def as_dict(self) -> dict:
        return asdict(self)


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
