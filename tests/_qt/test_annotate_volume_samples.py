"""``annotate --sample nuclei3d|cells3dt``: the volume with its scale and its ground truth, and
its volume project open in the dock, ready to prompt."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_sam2_track.cli.annotate import open_annotation_viewer  # noqa: E402
from napari_sam2_track.samples3d import SAMPLE_SPACING  # noqa: E402
from napari_sam2_track.session.volume import VolumeSession  # noqa: E402
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path


@pytest.mark.parametrize("name, ndim", [("nuclei3d", 3), ("cells3dt", 4)])
def test_annotate_opens_a_volume_sample(qtbot, tmp_path, test_model, name, ndim):
    viewer, _schema, dock, _review = open_annotation_viewer(sample=name, show=False,
                                                           project=tmp_path / "v.zarr")
    try:
        image, truth = viewer.layers[name], viewer.layers[f"{name} ground truth"]
        assert image.ndim == truth.ndim == ndim
        assert tuple(image.scale)[-3:] == tuple(truth.scale)[-3:] == SAMPLE_SPACING
        assert image.metadata["napari_sam2_track"]["prompts"]["prompts"]
        assert np.unique(np.asarray(truth.data)).size > 3
        session = dock.session
        assert isinstance(session, VolumeSession) and session.store.is_volume
        assert session.store.volume_shape[1:] == image.data.shape[-3:]
        assert session.store.geometry.spacing[-3:] == pytest.approx(SAMPLE_SPACING)
        labels = dock.labels_layer
        assert labels.data.shape == image.data.shape and tuple(labels.scale) == tuple(image.scale)
        # ready to prompt: a click on the sample's example slice shows its mask there
        example = image.metadata["napari_sam2_track"]["prompts"]["prompts"][0]
        (x, y), z = example["points"][0], example["z"]
        dock.set_model(test_model)
        dock.add_object()
        for axis, step in enumerate((z,) if ndim == 3 else (0, z)):
            viewer.dims.set_current_step(axis, step)
        dock.add_click(x, y)
        key = (z,) if ndim == 3 else (0, z)
        qtbot.waitUntil(lambda: (np.asarray(labels.data[key]) == 1).any(), timeout=60_000)
        assert [(p.frame, p.z) for p in session.store.prompts.prompts] == [(0, z)]
    finally:
        viewer.close()
