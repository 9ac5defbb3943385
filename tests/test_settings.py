"""The remembered settings: one JSON file under the config folder, damaged files read as empty."""

from __future__ import annotations

import json

import pytest

from napari_sam2_track import settings
from napari_sam2_track.engine.spec import ModelSpec


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.ENV_DIR, str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def test_round_trip_and_removal(config):
    assert settings.load() == {} and settings.get("export_dir", "x") == "x"
    settings.put("export_dir", "/data/out")
    settings.remember_model(ModelSpec(model="/w/ft.pt", device="cpu", image_size=512, max_cond_frames=3))
    settings.remember_reviewer("  ana ")
    assert settings.settings_path() == config / "settings.json"
    stored = json.loads((config / "settings.json").read_text())
    assert stored == {"export_dir": "/data/out", "reviewer": "ana",
                      "model": {"model": "/w/ft.pt", "config": None, "device": "cpu", "image_size": 512}}
    assert settings.last_model() == ModelSpec(model="/w/ft.pt", device="cpu", image_size=512)
    assert settings.reviewer() == "ana"
    settings.remember_reviewer("")
    settings.put("export_dir", None)
    assert settings.reviewer() is None and "export_dir" not in settings.load()
    assert [p.name for p in config.iterdir()] == ["settings.json"]  # no temporary files left


def test_damaged_file_reads_as_empty(config):
    config.mkdir()
    (config / "settings.json").write_text("{not json")
    assert settings.load() == {} and settings.last_model() is None
    (config / "settings.json").write_text(json.dumps({"model": {"model": 3}, "reviewer": 7}))
    assert settings.last_model() is None and settings.reviewer() is None
    settings.put("reviewer", "ben")  # a damaged file is replaced
    assert settings.reviewer() == "ben"


def test_unwritable_folder_is_ignored(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(settings.ENV_DIR, str(blocker / "cfg"))  # under a file: cannot be created
    settings.put("reviewer", "ana")
    assert settings.reviewer() is None
