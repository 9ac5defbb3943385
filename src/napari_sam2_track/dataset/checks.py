"""Check frames: reference masks mixed into sampled QC, and each reviewer's accuracy on them.

A dataset keeps the reference masks of an item apart from its project, in
``DATASET/checks/<item>.npz`` (one NumPy archive, readable without this package): ``frames``
(K,) the check frames, ``labels`` (K, H, W) uint32 label images (0: background, else the object
id, matched by id to the project's objects) and ``meta``, a JSON string (``source``,
``format``, ``objects``, ``imported``). :func:`import_checks` reads them from any format
``import`` reads (a project too) and writes the archive beside, then renames it into place.

Sampled QC (:func:`napari_sam2_track.review.sampling.draw_sample`) takes the check frames inside
a masklet as extra frames, without telling them apart (:func:`hidden_frames`). A reviewer's call
on a check frame is **correct** when it agrees with the reference: approving a frame whose mask
has IoU >= ``iou_threshold`` with the reference mask of the object (both empty: IoU 1), or
rejecting one below it. Only valid decisions count (an invalidated one judged masks that are no
longer stored); a per-frame judgment counts on its frame, a decision on a whole masklet on every
check frame inside it; verdicts derived from a sample are not counted again.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import DatasetError

CHECKS_DIR = "checks"
#: Default IoU with the reference at or above which a check frame's mask is right.
IOU_THRESHOLD = 0.5


@dataclass
class CheckSet:
    """Reference masks on some frames of one item."""

    frames: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)

    def frames_in(self, start: int, end: int) -> list[int]:
        return [int(f) for f in self.frames if start <= f <= end]

    def mask(self, obj_id: int, frame: int) -> np.ndarray | None:
        """The reference mask of an object on a check frame (``None``: not a check frame)."""
        where = np.flatnonzero(self.frames == frame)
        if where.size == 0:
            return None
        return self.labels[int(where[0])] == obj_id


def checks_path(dataset_dir: str | Path, item_id: str) -> Path:
    return Path(dataset_dir) / CHECKS_DIR / f"{item_id}.npz"


def write_checks(path: str | Path, frames: Sequence[int], labels: np.ndarray, meta: dict) -> Path:
    """Write a check archive, built beside ``path`` and renamed into place (replacing one)."""
    from ..project.placement import build_beside

    path = Path(path)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, frames=np.asarray(frames, np.int64), labels=labels.astype(np.uint32),
                        meta=np.array(json.dumps(meta)))
    with build_beside(path, _CHECKS, overwrite=True) as staging:
        with open(staging, "wb") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
    return path


def read_checks(path: str | Path) -> CheckSet | None:
    """The check archive at ``path``; ``None`` when there is none."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return CheckSet(data["frames"].astype(np.int64), data["labels"],
                            json.loads(str(data["meta"])))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{path} is not a readable check archive ({exc}); import the checks again") from None


def import_checks(dataset_dir: str | Path, item_id: str, reference: str | Path, *, fmt: str | None = None,
                  frames: Iterable[int] | None = None, shape: tuple[int, int, int] | None = None) -> CheckSet:
    """Read reference masks from ``reference`` (any format ``import`` reads) and keep ``frames``
    (default: every frame with an object) as the item's check frames. ``shape``: the item's
    ``(frames, height, width)``, checked when given."""
    from ..formats import read_labels

    source = read_labels(reference, fmt)
    if shape is not None and tuple(source.shape) != tuple(shape):
        raise DatasetError(f"the reference {reference} is {tuple(source.shape)} (t, y, x), the item "
                           f"{item_id!r} {tuple(shape)}; import the reference of this item")
    wanted = None if frames is None else {int(f) for f in frames}
    if wanted is not None:
        outside = sorted(f for f in wanted if not 0 <= f < source.shape[0])
        if outside:
            raise DatasetError(f"check frames {outside[:5]} are outside the reference's frames "
                               f"0-{source.shape[0] - 1}")
    kept, images = [], []
    for t, labels in source.labels():
        if (wanted is None and labels.any()) or (wanted is not None and t in wanted):
            kept.append(t)
            images.append(labels)
    if not kept:
        raise DatasetError(f"{reference} has no annotated frames to use as check frames")
    meta = {"source": str(reference), "format": source.info.get("format", fmt or ""),
            "objects": sorted({o.id for o in source.objects}),
            "imported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    labels = np.stack(images)
    write_checks(checks_path(dataset_dir, item_id), kept, labels, meta)
    return CheckSet(np.asarray(kept, np.int64), labels, meta)


def hidden_frames(project: str | Path, obj_id: int, start: int, end: int) -> list[int]:
    """Check frames of the project's item inside ``start..end`` (none when the project is in
    no dataset or its item has no checks): sampled QC adds them without saying so."""
    from .model import project_owner

    owner = project_owner(Path(project))
    if not owner or not owner.get("path") or not owner.get("item"):
        return []
    checks = read_checks(checks_path(owner["path"], owner["item"]))
    return [] if checks is None else checks.frames_in(start, end)


@dataclass
class CheckCall:
    """One reviewer's call on one check frame of one object."""

    reviewer: str
    project: str
    object: int
    frame: int
    status: str
    iou: float
    correct: bool
    #: when the call was made (ISO 8601 UTC)
    time: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def check_calls(project: str | Path, checks: CheckSet, *,
                iou_threshold: float = IOU_THRESHOLD) -> list[CheckCall]:
    """Every reviewer's valid calls on the check frames of one project."""
    from ..project import ProjectStore
    from ..review.models import read_review

    store = ProjectStore.open(project, mode="r")
    state = read_review(store)
    known = set(store.object_ids())
    calls: dict[tuple[str, int, int], CheckCall] = {}
    for s in state.statuses:  # oldest first: a reviewer's latest call on a frame counts
        d = s.decision
        if not s.valid or d.basis == "sample" or d.object not in known:
            continue
        for t in checks.frames_in(d.start, d.end):
            ref = checks.mask(d.object, t)
            iou = _iou(store.mask(d.object, t), ref)
            good = iou >= iou_threshold
            calls[(d.reviewer, d.object, t)] = CheckCall(
                reviewer=d.reviewer, project=str(store.path), object=d.object, frame=t,
                status=d.status, iou=iou, correct=good == (d.status == "satisfactory"),
                time=d.time.astimezone(_dt.timezone.utc).isoformat())
    return sorted(calls.values(), key=lambda c: (c.reviewer, c.object, c.frame))


def reviewer_accuracy(calls: Iterable[CheckCall]) -> dict[str, dict]:
    """Per reviewer: check frames judged, correct, accuracy, false approvals (approved a mask
    the reference disagrees with) and false rejections (rejected a mask that agrees)."""
    out: dict[str, dict] = {}
    for c in calls:
        row = out.setdefault(c.reviewer, {"judged": 0, "correct": 0, "false_approvals": 0,
                                          "false_rejections": 0, "accuracy": None})
        row["judged"] += 1
        row["correct"] += int(c.correct)
        if not c.correct:
            row["false_approvals" if c.status == "satisfactory" else "false_rejections"] += 1
    for row in out.values():
        row["accuracy"] = row["correct"] / row["judged"] if row["judged"] else None
    return out


def dataset_check_calls(dataset, *, iou_threshold: float = IOU_THRESHOLD) -> list[CheckCall]:
    """:func:`check_calls` over every item of a :class:`~.model.Dataset` that has checks (its
    project and its annotators' copies)."""
    calls: list[CheckCall] = []
    for item in dataset.items:
        checks = read_checks(checks_path(dataset.folder, item.id))
        if checks is None:
            continue
        for project in [item.project, *item.copies.values()]:
            if project.exists():
                calls += check_calls(project, checks, iou_threshold=iou_threshold)
    return calls


@dataclass(frozen=True)
class _ChecksKind:
    title: str = "check archive"
    is_dir: bool = False

    def recognises(self, path: Path) -> bool:
        return path.is_file() and path.suffix == ".npz"


_CHECKS = _ChecksKind()
