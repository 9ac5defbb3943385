"""Sampled QC of a whole dataset item: one sample per masklet, check frames mixed in.

:func:`sample_item` draws (and records) a sample for every presence span of every object of an
item's project, for its verifier, with the item's check frames inside each masklet added without
being told apart (:mod:`.checks`). Seeds are derived from one item seed, so the whole item's
samples are reproducible from it: masklet ``k`` (by object, then frame) is drawn with
``SeedSequence(seed).spawn`` child ``k``. :func:`item_verdicts` says where each stands.
"""

from __future__ import annotations

import secrets

import numpy as np

from ..review.models import SampleRecord
from .files import DatasetError


def sample_item(dataset, item_id: str, *, reviewer: str | None = None, size: int | None = None,
                fraction: float | None = None, seed: int | None = None,
                redraw: bool = False) -> list[SampleRecord]:
    """The samples of every masklet of the item's project: its current sample when it has one
    (unless ``redraw``), else a new one drawn and recorded. No write lock is taken."""
    from ..project import ProjectStore
    from ..review.models import read_review
    from ..review.qc import masklets
    from ..review.sampling import current_sample, draw_sample
    from .checks import checks_path, read_checks

    item = dataset.item(item_id)
    if not item.project.exists():
        raise DatasetError(f"item {item_id!r} has no project yet ({item.project}); track it first")
    if reviewer is not None:
        dataset.require_annotator(reviewer)
    store = ProjectStore.open(item.project, mode="r")
    checks = read_checks(checks_path(dataset.folder, item.id))
    state = read_review(store)
    spans = sorted((m.object, m.start, m.end) for m in masklets(store))
    if not spans:
        raise DatasetError(f"item {item_id!r} has no visible masklets to sample; track it first")
    seed = int(seed) if seed is not None else secrets.randbits(32)
    children = np.random.SeedSequence(seed).spawn(len(spans))
    out = []
    for (obj, a, b), child in zip(spans, children):
        sample = None if redraw else current_sample(state, obj, a, b)
        if sample is None:
            sample = draw_sample(store, obj, a, b, size=size, fraction=fraction,
                                 seed=int(child.generate_state(1)[0]), reviewer=reviewer,
                                 extra_frames=checks.frames_in(a, b) if checks is not None else ())
        out.append(sample)
    return out


def item_verdicts(dataset, item_id: str) -> list:
    """:func:`~napari_sam2_track.review.sampling.verdicts` of the item's project."""
    from ..review.sampling import verdicts

    return verdicts(dataset.item(item_id).project)
