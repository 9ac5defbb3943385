"""Model resolution and loading: configs inferred from checkpoints, Hydra independence."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from napari_sam2_track.engine.models import infer_config, load_model, load_random_model, pick_device
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


# -- bad checkpoints, configs and sizes: one line each, nothing run ----------------------------


def _small_checkpoint(path):
    torch.save({"model": {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(96, 3, 7, 7)}}, path)
    return path


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("random", "is not a complete PyTorch checkpoint"),
        ("truncated", "is not a complete PyTorch checkpoint"),
        ("empty", "is an empty file"),
        ("directory", "is a directory"),
        ("non-tensor", "is not a named tensor"),
        ("python-objects", "not loaded for safety"),
    ],
)
def test_bad_checkpoints_are_one_line(tmp_path, case, match):
    import argparse

    path = tmp_path / "model.pt"
    if case == "random":
        path.write_bytes(bytes(range(256)) * 40)
    elif case == "truncated":
        data = _small_checkpoint(tmp_path / "full.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "directory":
        path.mkdir()
    elif case == "non-tensor":
        torch.save({"model": {"a": 1}}, path)
    else:
        torch.save({"model": {}, "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(ModelError, match=match) as info:
        load_model(str(path), device="cpu")
    assert "\n" not in str(info.value) and len(str(info.value)) < 300
    assert "weights_only" not in str(info.value)  # no advice to load unsafely


@pytest.mark.parametrize("size", [7, -256, 0, 100, 1000, 2**40, "abc"])
def test_image_size_must_suit_the_encoder(tmp_path, size):
    ckpt = _small_checkpoint(tmp_path / "m.pt")
    with pytest.raises(ModelError, match="multiple of 32"):
        load_model(str(ckpt), image_size=size, device="cpu")


@pytest.mark.parametrize("value", [0, 1, -2])
def test_max_cond_frames_must_be_usable(value):
    with pytest.raises(ModelError, match="at least 2"):
        load_random_model(image_size=64, max_cond_frames=value)


SAM2_TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"


def test_config_with_python_tag_is_refused_and_never_run(tmp_path):
    witness = tmp_path / "ran"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f"model: !!python/object/apply:os.system ['touch {witness}']\n")
    with pytest.raises(ModelError, match="evil.yaml is refused: line 1.*python/object/apply"):
        load_random_model(config=str(cfg), image_size=64)
    assert not witness.exists()


def test_config_may_only_build_sam2_classes(tmp_path):
    from napari_sam2_track.engine.models import _sam2_config_path

    witness = tmp_path / "ran"
    text = _sam2_config_path(SAM2_TINY).read_text()
    evil = text.replace(
        "_target_: sam2.modeling.position_encoding.PositionEmbeddingSine",
        f"_target_: os.system\n        command: touch {witness}",
        1,
    )
    assert evil != text
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(evil)
    with pytest.raises(ModelError, match=r"refused: model\..*_target_ is 'os.system'"):
        load_random_model(config=str(cfg), image_size=64)
    assert not witness.exists()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"\xff\xfe model: 1\n", "not UTF-8"),
        (b"- 1\n- 2\n", "no 'model' section"),
        (b"model: [\n", "not valid YAML"),
        (b"model: " + b"[" * 1200 + b"]" * 1200 + b"\n", "nested too deeply"),
        (b"model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  bogus: 1\n", "does not build a SAM 2 model"),
    ],
    ids=["not-utf8", "a-list", "broken", "deep", "wrong-argument"],
)
def test_bad_config_files_are_one_line(tmp_path, text, match):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(text)
    with pytest.raises(ModelError, match=match) as info:
        load_random_model(config=str(cfg), image_size=64)
    assert "\n" not in str(info.value)
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ModelError, match="is a directory"):
        load_random_model(config=str(tmp_path / "dir.yaml"), image_size=64)
