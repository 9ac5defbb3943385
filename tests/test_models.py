"""Model resolution and loading: configs inferred from checkpoints, Hydra independence."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from napari_sam2_track.engine.models import infer_config, load_model, pick_device
from napari_sam2_track.errors import ModelError


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, test_model):
    path = tmp_path_factory.mktemp("m") / "medsam2_like.pt"
    torch.save({"model": test_model.predictor.state_dict()}, path)
    return path


def test_infer_config_from_tensor_shapes(test_model):
    sd = test_model.predictor.state_dict()
    assert infer_config(sd) == "configs/sam2.1/sam2.1_hiera_t.yaml"
    legacy = {k: v for k, v in sd.items() if "no_obj_embed_spatial" not in k}
    assert infer_config(legacy) == "configs/sam2/sam2_hiera_t.yaml"
    with pytest.raises(ModelError, match="no SAM 2 image encoder"):
        infer_config({"foo": torch.zeros(1)})


def test_local_checkpoint_loads_at_512_like_medsam2(tiny_ckpt, test_model):
    model = load_model(str(tiny_ckpt), image_size=512, device="cpu")
    assert model.image_size == 512
    assert model.config == "configs/sam2.1/sam2.1_hiera_t.yaml"
    ours = model.predictor.state_dict()
    for key, value in test_model.predictor.state_dict().items():
        assert torch.equal(ours[key], value), key
    assert model.predictor.add_all_frames_to_correct_as_cond
    assert model.describe()["checkpoint"] == str(tiny_ckpt)


def test_unknown_model_name():
    with pytest.raises(ModelError, match="unknown model 'huge'"):
        load_model("huge", device="cpu")


def test_device_choice():
    assert pick_device("auto") in ("cpu", "cuda", "mps")
    assert pick_device("cpu") == "cpu"
    with pytest.raises(ModelError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            pick_device("cuda")


HYDRA_SCRIPT = """
import sys
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
mode = sys.argv[1]
if mode == "foreign":
    initialize_config_module("hydra.test_utils.configs", version_base="1.2")
import napari_sam2_track
from napari_sam2_track.engine.models import load_random_model
if mode == "cleared":
    import sam2
    GlobalHydra.instance().clear()
model = load_random_model(image_size=128)
print("ok", model.image_size, GlobalHydra.instance().is_initialized())
"""


@pytest.mark.parametrize("mode", ["foreign", "cleared", "plain"])
def test_hydra_state_does_not_matter(mode):
    """Importing and building works whether Hydra was initialised by someone else or not."""
    out = subprocess.run([sys.executable, "-c", HYDRA_SCRIPT, mode], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("ok 128")


def test_import_is_light():
    """Importing the package (as napari does at start-up) pulls in neither torch nor sam2."""
    code = "import sys, napari_sam2_track, napari_sam2_track.prompts; print('torch' in sys.modules, 'sam2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False False", out.stderr
