"""Comparison metrics between two label sets: DAVIS J&F and CTC SEG/TRA.

``A`` is the reference (ground truth, approved annotation, first annotator) and ``B`` the
label set evaluated against it; objects are matched by id.

- J (region similarity): the Jaccard index of the object's masks on each frame, 1 where both
  are empty.
- F (boundary accuracy): the F-measure of the mask boundaries matched within
  ``bound_th`` (0.008 of the image diagonal, rounded up, as in the DAVIS benchmark).
- For each, per object: mean, recall (fraction of frames above 0.5) and decay (mean of the
  first quarter of frames minus the last quarter), as in ``davis2017-evaluation``; overall:
  the mean over the reference objects, and ``J&F`` the mean of J and F.
- CTC SEG and TRA through py-ctcmetrics, on the merged labels written as CTC folders.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ._frames import LabelSource

BOUND_TH = 0.008


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel boundary map of a mask (as in the DAVIS benchmark)."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def _disk(radius: int) -> np.ndarray:
    from skimage.morphology import disk

    return disk(radius).astype(bool)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH, footprint=None) -> float:
    """Boundary F-measure of ``pred`` against ``gt``."""
    from scipy.ndimage import binary_dilation

    if footprint is None:
        bound_pix = bound_th if bound_th >= 1 else math.ceil(bound_th * np.linalg.norm(gt.shape))
        footprint = _disk(int(bound_pix))
    fg_b, gt_b = seg2bmap(pred), seg2bmap(gt)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt == 0:
        return 1.0
    if n_fg == 0 or n_gt == 0:
        return 0.0
    fg_match = (fg_b & binary_dilation(gt_b, footprint)).sum()
    gt_match = (gt_b & binary_dilation(fg_b, footprint)).sum()
    precision, recall = fg_match / n_fg, gt_match / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def statistics(values: np.ndarray) -> dict[str, float]:
    """Mean, recall (> 0.5) and decay (4 bins) of per-frame values, as in davis2017-evaluation."""
    values = np.asarray(values, float)
    if values.size == 0:
        return {"mean": float("nan"), "recall": float("nan"), "decay": float("nan")}
    n_bins = 4
    ids = (np.round(np.linspace(1, len(values), n_bins + 1) + 1e-10) - 1).astype(int)
    bins = [values[ids[i] : ids[i + 1] + 1] for i in range(n_bins)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "mean": float(np.nanmean(values)),
            "recall": float(np.nanmean(values > 0.5)),
            "decay": float(np.nanmean(bins[0]) - np.nanmean(bins[-1])),
        }


def _aligned(a: LabelSource, b: LabelSource):
    """``(t, masks_a, masks_b)`` for every frame 0..T-1."""
    ia, ib = a.frames(), b.frames()
    pa, pb = next(ia, None), next(ib, None)
    for t in range(a.shape[0]):
        ma = mb = {}
        if pa is not None and pa[0] == t:
            ma, pa = pa[1], next(ia, None)
        if pb is not None and pb[0] == t:
            mb, pb = pb[1], next(ib, None)
        yield t, ma, mb


def davis_jf(a: LabelSource, b: LabelSource, *, bound_th: float = BOUND_TH,
             skip_first_last: bool = False, per_frame: bool = False) -> dict:
    """Per-object and overall J and F of ``b`` against the reference ``a`` (values in 0..1).

    ``skip_first_last`` leaves out the first and last frame, as the DAVIS semi-supervised
    protocol does (the first frame is the given one). ``per_frame`` adds ``per_frame``:
    ``{id: {"J": [...], "F": [...]}}`` over every frame.
    """
    if tuple(a.shape) != tuple(b.shape):
        raise StoreError(f"the label sets differ in size: {tuple(a.shape)} vs {tuple(b.shape)} (t, y, x)")
    ref_ids = sorted({o.id for o in a.objects})
    other_ids = sorted({o.id for o in b.objects})
    ids = sorted(set(ref_ids) | set(other_ids))
    n, h, w = a.shape
    bound_pix = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(h, w))
    footprint = _disk(int(bound_pix))
    J = {i: np.empty(n) for i in ids}
    F = {i: np.empty(n) for i in ids}
    empty = np.zeros((h, w), bool)
    for t, ma, mb in _aligned(a, b):
        for i in ids:
            x, y = mb.get(i, empty), ma.get(i, empty)
            if x is empty and y is empty:
                J[i][t] = F[i][t] = 1.0
                continue
            J[i][t] = jaccard(x, y)
            F[i][t] = f_measure(x, y, footprint=footprint)
    sl = slice(1, n - 1) if skip_first_last and n > 2 else slice(None)
    per_object = {}
    for i in ids:
        sj, sf = statistics(J[i][sl]), statistics(F[i][sl])
        per_object[i] = {"J": sj, "F": sf, "J&F": (sj["mean"] + sf["mean"]) / 2,
                         "in_reference": i in ref_ids, "in_other": i in other_ids}
    overall = {}
    for key in ("J", "F"):
        overall[key] = {s: float(np.mean([per_object[i][key][s] for i in ref_ids])) if ref_ids else float("nan")
                        for s in ("mean", "recall", "decay")}
    overall["J&F"] = (overall["J"]["mean"] + overall["F"]["mean"]) / 2
    result = {"objects": per_object, "overall": overall, "bound_th": bound_th, "bound_pix": int(bound_pix),
              "frames": n, "missing": [i for i in ref_ids if i not in other_ids],
              "extra": [i for i in other_ids if i not in ref_ids]}
    if per_frame:
        result["per_frame"] = {i: {"J": J[i].tolist(), "F": F[i].tolist()} for i in ids}
    return result


def ctc_metrics(a: LabelSource, b: LabelSource) -> dict:
    """CTC SEG and TRA (py-ctcmetrics) of ``b`` against the reference ``a``."""
    from ctc_metrics import evaluate_sequence

    from .ctc import write_ctc_source

    if tuple(a.shape) != tuple(b.shape):
        raise StoreError(f"the label sets differ in size: {tuple(a.shape)} vs {tuple(b.shape)} (t, y, x)")
    with tempfile.TemporaryDirectory() as tmp:
        gt, res = Path(tmp) / "01_GT", Path(tmp) / "01_RES"
        write_ctc_source(a, gt / "TRA", prefix="man_track", track_file="man_track.txt")
        write_ctc_source(a, gt / "SEG", prefix="man_seg", track_file="unused.txt")
        (gt / "SEG" / "unused.txt").unlink()
        write_ctc_source(b, res)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = evaluate_sequence(str(res), str(gt), metrics=["SEG", "TRA"], threads=1)
    return {k: (None if out.get(k) is None else float(out[k])) for k in ("SEG", "TRA")}


def volume_metrics(a: LabelSource, b: LabelSource) -> dict:
    """Per object and timepoint Dice, IoU and HD95 (physical units) of the volume label set
    ``b`` against the reference ``a`` (see :mod:`.volume_metrics`)."""
    from ._volume import spatial_spacing
    from .volume_metrics import PackedVolume, check_same_grid, compare_volumes

    if a.volume is None or b.volume is None:
        which = a.description if a.volume is None else b.description
        raise StoreError(f"{which} holds 2D frames but the other label set holds volumes; compare "
                         "volumes with volumes")
    spacing_a, unit_a = spatial_spacing(a.geometry)
    spacing_b, unit_b = spatial_spacing(b.geometry)
    if b.geometry is None or a.geometry is None:  # a side without voxel sizes takes the other's
        spacing_a, unit_a = (spacing_b, unit_b) if a.geometry is None else (spacing_a, unit_a)
        spacing_b = spacing_a
    check_same_grid(a.volume, b.volume, spacing_a, spacing_b)
    depth = a.volume[1]
    shape = tuple(a.volume[1:])

    def timepoints():
        va: dict[int, PackedVolume] = {}
        vb: dict[int, PackedVolume] = {}
        for p, ma, mb in _aligned(a, b):
            t, z = divmod(p, depth)
            for masks, vols in ((ma, va), (mb, vb)):
                for i, m in masks.items():
                    vols.setdefault(i, PackedVolume(shape)).add(z, m)
            if z == depth - 1:
                yield t, va, vb
                va, vb = {}, {}

    return compare_volumes(timepoints(), sorted({o.id for o in a.objects}), sorted({o.id for o in b.objects}),
                           spacing_a, unit_a)


def compare(a: LabelSource, b: LabelSource, *, bound_th: float = BOUND_TH, ctc: bool = True,
            skip_first_last: bool = False) -> dict:
    """DAVIS J&F (and CTC SEG/TRA when ``ctc``) of ``b`` against the reference ``a``; for volume
    label sets, Dice, IoU and HD95 per object per timepoint (:func:`volume_metrics`)."""
    if a.volume is not None or b.volume is not None:
        result = {"kind": "volume", **volume_metrics(a, b)}
        result["reference"], result["other"] = a.description, b.description
        return result
    result = davis_jf(a, b, bound_th=bound_th, skip_first_last=skip_first_last)
    if ctc:
        result["ctc"] = ctc_metrics(a, b)
    result["reference"], result["other"] = a.description, b.description
    return result
