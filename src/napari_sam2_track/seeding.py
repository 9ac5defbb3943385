"""Seeding a run: prompts (and the pixels of mask prompts) into a project and into a tracker.

One place for what the pipeline, the interactive session and segmented batch runs each do
before they propagate: mask prompts given as files are read once (:func:`load_mask_files`),
stored in the project with the other prompts (:func:`store_prompts`), and applied to a tracker
(:func:`seed_tracker`), whose mask prompts come from those files or from the project.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import PromptError
from .prompts import Prompt, PromptSet

if TYPE_CHECKING:
    from .project import ProjectStore

__all__ = ["MaskFiles", "PromptSink", "load_mask_files", "mask_key", "mask_source", "seed_tracker", "store_mask_problem",
           "store_prompts"]

#: pixels of mask prompts read from files, by :func:`mask_key` (``(object, frame)``)
MaskFiles = dict[tuple[int, ...], np.ndarray]


def mask_key(p: Prompt) -> tuple[int, ...]:
    """Where a prompt is: ``(object, frame)``, or ``(object, timepoint, z)`` on a volume slice."""
    return (p.object, p.frame) if p.z is None else (p.object, p.frame, p.z)


class PromptSink(Protocol):
    """What :func:`seed_tracker` applies prompts to (a
    :class:`~napari_sam2_track.engine.tracker.StreamingTracker`)."""

    def add_prompt(self, prompt: Prompt) -> np.ndarray: ...

    def add_mask(self, obj_id: int, frame: int, mask: np.ndarray) -> np.ndarray: ...


def load_mask_files(prompts: PromptSet | None, base_dir: str | Path | None, height: int,
                    width: int) -> MaskFiles:
    """Read the mask prompts that name files (relative to ``base_dir``); raises a
    :class:`~napari_sam2_track.errors.PromptError` for a missing or mis-sized file."""
    if prompts is None:
        return {}
    return {mask_key(p): p.load_mask(base_dir, height, width) for p in prompts.prompts
            if p.mask is not None and not p.mask.startswith("store:")}


def store_prompts(store: "ProjectStore", prompts: PromptSet, masks: Mapping[tuple[int, ...], np.ndarray]) -> None:
    """Make ``prompts`` the project's objects and prompts; mask prompts read from files
    (``masks``) are stored in the project, so it no longer depends on those files."""
    store.set_prompts(prompts)
    by_key = {mask_key(p): p for p in prompts.prompts}
    for key, mask in masks.items():
        store.put_prompt(by_key[key], mask)


def seed_tracker(tracker: PromptSink, prompts: PromptSet,
                 mask_of: Callable[[Prompt], np.ndarray]) -> None:
    """Apply every prompt to ``tracker``; ``mask_of(prompt)`` gives a mask prompt's pixels."""
    for p in prompts.prompts:
        if p.mask is None:
            tracker.add_prompt(p)
        else:
            tracker.add_mask(p.object, p.frame, mask_of(p))


def store_mask_problem(p: Prompt) -> str:
    """Why a mask prompt that names a project's array cannot seed a new project."""
    return (f"the mask prompt of object {p.object} on {p.where} names {p.mask!r}, which only "
            "an existing project holds; give the mask as an image file")


def mask_source(store: "ProjectStore | None", masks: Mapping[tuple[int, ...], np.ndarray],
                base_dir: str | Path | None = None) -> Callable[[Prompt], np.ndarray]:
    """The pixels of a mask prompt: from ``masks`` (read from files), else from the project."""

    def mask_of(p: Prompt) -> np.ndarray:
        mask = masks.get(mask_key(p))
        if mask is not None:
            return mask
        if store is None:
            raise PromptError(store_mask_problem(p))
        return store.prompt_mask(p, base_dir)

    return mask_of
