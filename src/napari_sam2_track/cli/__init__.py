"""Command line interface; ``main`` is the ``napari-sam2-track`` entry point."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
