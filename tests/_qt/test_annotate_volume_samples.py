"""``annotate --sample nuclei3d|cells3dt``: the volume with its scale and its ground truth."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_sam2_track.cli.annotate import open_annotation_viewer  # noqa: E402
from napari_sam2_track.samples3d import SAMPLE_SPACING  # noqa: E402
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path


@pytest.mark.parametrize("name, ndim", [("nuclei3d", 3), ("cells3dt", 4)])
def test_annotate_opens_a_volume_sample(qtbot, tmp_path, name, ndim):
    viewer, _schema, dock, _review = open_annotation_viewer(sample=name, show=False,
                                                           project=tmp_path / "v.zarr")
    try:
        image, truth = viewer.layers[name], viewer.layers[f"{name} ground truth"]
        assert image.ndim == truth.ndim == ndim
        assert tuple(image.scale)[-3:] == tuple(truth.scale)[-3:] == SAMPLE_SPACING
        assert image.metadata["napari_sam2_track"]["prompts"]["prompts"]
        assert np.unique(np.asarray(truth.data)).size > 3
        assert dock.session is None and not (tmp_path / "v.zarr").exists()  # no project yet
    finally:
        viewer.close()
