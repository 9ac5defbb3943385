"""J&F against the vos-benchmark reference implementation, CTC SEG/TRA, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sam2_track.formats import LabelSource
from napari_sam2_track.formats._frames import labels_to_masks
from napari_sam2_track.formats.metrics import compare, davis_jf, statistics
from napari_sam2_track.prompts import ObjectSpec


def source(labels: np.ndarray) -> LabelSource:
    ids = sorted(int(i) for i in np.unique(labels) if i)

    def frames():
        for t, lab in enumerate(labels):
            m = labels_to_masks(lab)
            if m:
                yield t, m

    return LabelSource(labels.shape, [ObjectSpec(id=i) for i in ids], frames)


def perturb(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Shift, erode and drop objects so J and F are well below 1."""
    from scipy.ndimage import binary_erosion

    rng = np.random.default_rng(seed)
    out = np.zeros_like(labels)
    for t, lab in enumerate(labels):
        for i in np.unique(lab):
            if i == 0 or rng.random() < 0.1:
                continue
            m = np.roll(lab == i, tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
            if rng.random() < 0.5:
                m = binary_erosion(m, iterations=2)
            out[t][m] = i
    return out


def reference_jf(gt: np.ndarray, pred: np.ndarray):
    from vos_benchmark.evaluator import Evaluator

    ev = Evaluator(boundary=0.008)
    for p, g in zip(pred, gt):
        ev.feed_frame(p, g)
    j, f = ev.conclude()
    return {k: v / 100 for k, v in j.items()}, {k: v / 100 for k, v in f.items()}


def check_against_reference(gt, pred):
    ours = davis_jf(source(gt), source(pred))
    ref_j, ref_f = reference_jf(gt, pred)
    assert set(ref_j) <= set(ours["objects"])
    for i in ref_j:
        assert ours["objects"][i]["J"]["mean"] == pytest.approx(ref_j[i], abs=1e-6)
        assert ours["objects"][i]["F"]["mean"] == pytest.approx(ref_f[i], abs=1e-6)
    return ours


def test_jf_matches_vos_benchmark_synthetic():
    from napari_sam2_track.samples import make_cells

    gt = make_cells(n_frames=8, size=(96, 96), n_cells=4).labels
    gt = gt[:, :, :]
    # every object must exist from frame 0 for the reference (it starts counting an object when
    # first seen); the daughters appear later, so keep frames before the division only
    gt = gt[: 4]
    ours = check_against_reference(gt, perturb(gt))
    assert 0.2 < ours["overall"]["J"]["mean"] < 0.99


def test_jf_matches_vos_benchmark_real(shared_data):
    data = np.load(shared_data / "microscopy" / "cell_segmentation_small.npz")
    gt = data["labels"].astype(np.uint32)
    first = set(np.unique(gt[0]))
    gt = np.where(np.isin(gt, list(first)), gt, 0)  # objects present from frame 0 (see above)
    ours = check_against_reference(gt, perturb(gt, seed=1))
    assert ours["overall"]["F"]["mean"] < 0.99


def test_statistics_recall_decay():
    s = statistics(np.array([1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0]))
    assert s["mean"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(4 / 8)
    # davis2017 bin edges for 8 frames: round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7];
    # first bin values[0:3], last bin values[5:8]
    assert s["decay"] == pytest.approx((1 + 1 + 0.8) / 3 - (0.2 + 0 + 0) / 3)


def test_ctc_scores_drop_for_worse_labels():
    from napari_sam2_track.samples import make_cells

    gt = make_cells(n_frames=6, size=(64, 64), n_cells=3).labels
    same = compare(source(gt), source(gt))
    assert same["ctc"] == {"SEG": 1.0, "TRA": 1.0} and same["overall"]["J&F"] == 1.0
    worse = compare(source(gt), source(perturb(gt)))
    assert worse["ctc"]["SEG"] < 1.0 and worse["ctc"]["TRA"] < 1.0


def test_cli_export_import_compare(tmp_path, capsys):
    from napari_sam2_track.cli import main

    from test_export import build_project

    build_project(tmp_path / "p.zarr")
    assert main(["export", str(tmp_path / "p.zarr"), "--format", "davis", "--out", str(tmp_path / "d"),
                 "--every", "2"]) == 0
    assert len(list((tmp_path / "d" / "Annotations").rglob("*.png"))) == 5
    assert main(["import", str(tmp_path / "d"), "--out", str(tmp_path / "b.zarr")]) == 0
    assert main(["export", str(tmp_path / "p.zarr"), "-f", "ctc", "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "p.zarr"), str(tmp_path / "c"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ctc"]["TRA"] == 1.0 and result["objects"]["1"]["J"]["mean"] == 1.0
    assert main(["compare", str(tmp_path / "p.zarr"), str(tmp_path / "c"), "--no-ctc"]) == 0
    assert "overall" in capsys.readouterr().out
    # user errors: one line, exit status 2
    assert main(["export", str(tmp_path / "p.zarr"), "-f", "ctc", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert main(["compare", str(tmp_path / "p.zarr"), str(tmp_path / "d")]) == 2
    assert "differ in size" in capsys.readouterr().err
