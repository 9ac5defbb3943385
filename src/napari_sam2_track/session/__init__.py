"""The interactive core: an evented annotation session, its compute thread, and the conversion
between napari prompt layers and prompts. Nothing here imports Qt."""

from __future__ import annotations

from .core import AnnotationSession
from .corrections import Correction
from .events import KeyframePrompt, RunFinished, RunStarted, SessionEvents
from .labels import StoreLabelsArray, check_layer_shape, default_store_path
from .volume import VolumeSession

__all__ = [
    "AnnotationSession",
    "Correction",
    "KeyframePrompt",
    "RunFinished",
    "RunStarted",
    "SessionEvents",
    "StoreLabelsArray",
    "VolumeSession",
    "check_layer_shape",
    "default_store_path",
]
