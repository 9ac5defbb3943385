"""Shared fixtures: the random-init SAM 2 test model, small synthetic videos, real data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout, or ``$NAPARI_SAM2_TRACK_TEST_DATA``."""
    env = os.environ.get("NAPARI_SAM2_TRACK_TEST_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real test data (../shared/data) not available")
    return path


def nudge_test_model(predictor, mask_shift: float = 0.12, score_bias: float = 2.0) -> None:
    """Make a random-init SAM 2 produce usable masks, deterministically.

    With random weights the mask logits sit in a narrow band just above zero (masks nearly
    full) and the object score hovers around zero (masks randomly suppressed). Channel 0 of the
    mask decoder's upscaled embedding is made a constant, and the hypernetworks' weight on it
    subtracts ``mask_shift`` from every mask logit; the object-score head's bias is raised.
    """
    import torch

    decoder = predictor.sam_mask_decoder
    with torch.no_grad():
        _dc1, _ln1, _act1, dc2, _act2 = decoder.output_upscaling
        dc2.weight[:, 0] = 0
        dc2.bias[0] = 1.0
        decoder.conv_s0.weight[0] = 0
        decoder.conv_s0.bias[0] = 0
        gelu_one = float(torch.nn.functional.gelu(torch.tensor(1.0)))
        for mlp in decoder.output_hypernetworks_mlps:
            last = mlp.layers[-1]
            last.weight[0] = 0
            last.bias[0] = -mask_shift / gelu_one
        decoder.pred_obj_score_head.layers[-1].bias += score_bias


@pytest.fixture(scope="session")
def test_model():
    """Real SAM 2.1 tiny architecture, seeded random weights, 256 px input, CPU."""
    from napari_sam2_track.engine.models import load_random_model

    model = load_random_model(image_size=256, seed=0, device="cpu")
    nudge_test_model(model.predictor)
    return model


def make_blob_video(n_frames: int = 24, height: int = 96, width: int = 128, seed: int = 0):
    """RGB uint8 frames with two moving discs on a textured background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    background = rng.integers(20, 60, size=(height, width, 3), dtype=np.uint8)
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for t in range(n_frames):
        img = background.copy()
        cx, cy = 30 + 2 * t % (width - 40), 40 + 10 * np.sin(t / 4)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 15**2] = (200, 80, 60)
        img[(xx - 90) ** 2 + (yy - 30 - t % (height - 40)) ** 2 < 10**2] = (60, 200, 90)
        frames[t] = img
    return frames


def write_jpeg_folder(frames: np.ndarray, folder: Path) -> Path:
    """Write frames as ``00000.jpg`` ... (upstream SAM 2's native input format)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=95)
    return folder


@pytest.fixture(scope="session")
def blob_jpegs(tmp_path_factory) -> Path:
    """A 24-frame 128x96 JPEG folder."""
    return write_jpeg_folder(make_blob_video(), tmp_path_factory.mktemp("blobs") / "jpg")


@pytest.fixture(scope="session")
def long_blob_jpegs(tmp_path_factory) -> Path:
    """A 48-frame JPEG folder: long enough for memory pruning to drop frames."""
    return write_jpeg_folder(make_blob_video(48), tmp_path_factory.mktemp("blobs48") / "jpg")


@pytest.fixture(autouse=True)
def _private_dock_settings(monkeypatch, tmp_path_factory):
    """The settings file (:mod:`napari_sam2_track.settings`) lives in a folder of the test's
    own, never the user's."""
    from napari_sam2_track import settings

    monkeypatch.setenv(settings.ENV_DIR, str(tmp_path_factory.mktemp("config")))


HOLD_LOCK = (
    "import sys\n"
    "from napari_sam2_track.project import ProjectStore\n"
    "store = ProjectStore.open(sys.argv[1], command='track (another run)')\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()  # until the test closes our stdin\n"
    "store.close()\n"
)


@contextmanager
def held_by_another_process(project: Path) -> Iterator[subprocess.Popen]:
    """A second Python process holding ``project``'s write lock while the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(project)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
