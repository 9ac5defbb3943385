"""What the user chose last time: one small JSON file under the user's config folder.

napari's own settings cannot be extended by a plugin, so the docks and the ``annotate``
command keep theirs here: the last model (name or checkpoint, input size, device), the
reviewer's name and the last export folder. Nothing here imports Qt, torch or sam2.

The file is ``settings.json`` in :func:`config_dir` (``platformdirs``' user config folder for
``napari-sam2-track``; the environment variable ``NAPARI_SAM2_TRACK_CONFIG_DIR`` overrides it,
as tests do). A missing or damaged file reads as empty; a write replaces the file atomically,
so a crash never leaves half a file. ::

    from napari_sam2_track import settings
    settings.get("export_dir")                   # None until set
    settings.put("export_dir", "/data/exports")  # written at once
    settings.remember_model(ModelSpec("sam2.1_hiera_tiny.pt", image_size=512, device="cpu"))
    settings.last_model()                        # that ModelSpec, or None
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

ENV_DIR = "NAPARI_SAM2_TRACK_CONFIG_DIR"
APP_NAME = "napari-sam2-track"
FILE_NAME = "settings.json"

#: The keys the package uses (others are kept as they are).
MODEL, REVIEWER, EXPORT_DIR = "model", "reviewer", "export_dir"
#: The fields of a remembered model (those of :class:`~.engine.spec.ModelSpec` a user picks).
MODEL_FIELDS = ("model", "config", "device", "image_size")

_lock = threading.Lock()


def config_dir() -> Path:
    """The folder of the settings file (not created until something is written)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_config_dir
    except ImportError:  # platformdirs comes with napari; a bare core install may lack it
        return Path.home() / ".config" / APP_NAME
    return Path(user_config_dir(APP_NAME, appauthor=False))


def settings_path() -> Path:
    """The settings file."""
    return config_dir() / FILE_NAME


def load() -> dict[str, Any]:
    """All settings (``{}`` when the file is missing, unreadable or not a JSON object)."""
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def get(key: str, default: Any = None) -> Any:
    """One setting, or ``default``."""
    return load().get(key, default)


def update(**values: Any) -> None:
    """Set several settings at once (``None`` removes a key); JSON-able values only.
    A failed write (read-only home, full disk) is ignored: settings are a convenience."""
    with _lock:
        data = load()
        for key, value in values.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        path = settings_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=2, sort_keys=True)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            pass


def put(key: str, value: Any) -> None:
    """Set one setting (``None`` removes it)."""
    update(**{key: value})


def last_model():
    """The model last loaded in a dock, as a :class:`~.engine.spec.ModelSpec` (``None``: none
    remembered, or the record is damaged)."""
    from .engine.spec import ModelSpec

    record = get(MODEL)
    if not isinstance(record, dict) or not isinstance(record.get("model"), str):
        return None
    try:
        return ModelSpec(**{k: record[k] for k in MODEL_FIELDS if k in record})
    except TypeError:
        return None


def remember_model(spec) -> None:
    """Keep ``spec`` (a :class:`~.engine.spec.ModelSpec`) as the last model."""
    put(MODEL, {k: getattr(spec, k) for k in MODEL_FIELDS})


def reviewer() -> str | None:
    """The reviewer name last used (``None``: none yet)."""
    name = get(REVIEWER)
    return name.strip() or None if isinstance(name, str) else None


def remember_reviewer(name: str | None) -> None:
    """Keep the reviewer name (blank: forget it)."""
    put(REVIEWER, (name or "").strip() or None)
