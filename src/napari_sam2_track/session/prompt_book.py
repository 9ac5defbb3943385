"""The prompts of a session as the user last set them, with a version per ``(object, frame)``.

A prompt is recorded at once when it is requested and its mask is computed later on the
compute thread; every request bumps the version of its key, so a job whose version is no
longer current knows that a newer prompt (or a deletion) replaced it and drops its result.
Thread-safe: the caller's thread records, the compute thread settles and reverts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..prompts import Prompt
from .events import KeyframePrompt, PromptKey

if TYPE_CHECKING:
    from ..project import ProjectStore
    from ..prompts import PromptSet

__all__ = ["PromptBook", "keyframe_prompt", "plane_prompts"]


def plane_prompts(store: "ProjectStore") -> "PromptSet":
    """The project's prompts with ``frame`` the plane ``t * Z + z`` and no ``z`` (a volume
    project's, as the session keys them); a 2D project's prompts as stored."""
    prompts = store.prompts
    if not store.is_volume:
        return prompts
    return prompts.model_copy(update={"prompts": [
        p.model_copy(update={"frame": store.prompt_plane(p), "z": None}) for p in prompts.prompts]})


def keyframe_prompt(p: Prompt) -> KeyframePrompt:
    """The session's form of a stored :class:`~napari_sam2_track.prompts.Prompt`."""
    return KeyframePrompt(
        clicks=tuple((float(x), float(y), int(v)) for (x, y), v in zip(p.points, p.labels)),
        box=None if p.box is None else tuple(float(b) for b in p.box),
        mask=p.mask is not None,
    )


class PromptBook:
    """``(object, frame) -> KeyframePrompt`` as last requested, and the version of each key."""

    def __init__(self, stored: Iterable[Prompt] = ()):
        self._lock = threading.RLock()
        self._prompts: dict[PromptKey, KeyframePrompt] = {(p.object, p.frame): keyframe_prompt(p)
                                                          for p in stored}
        self._versions: dict[PromptKey, int] = {}

    # ----------------------------------------------------------------- reading
    def snapshot(self) -> dict[PromptKey, KeyframePrompt]:
        """Every prompt, by ``(object id, frame)``."""
        with self._lock:
            return dict(self._prompts)

    def get(self, key: PromptKey) -> KeyframePrompt | None:
        return self._prompts.get(key)

    def __bool__(self) -> bool:
        return bool(self._prompts)

    def keyframes(self, obj_id: int | None) -> list[int]:
        """Prompted frames of ``obj_id``, sorted."""
        with self._lock:
            return sorted(f for o, f in self._prompts if o == obj_id)

    def keyframes_by_object(self) -> dict[int, list[int]]:
        """``object -> prompted frames``, objects in id order (for
        :func:`~napari_sam2_track.passes.plan_passes`)."""
        out: dict[int, list[int]] = {}
        with self._lock:
            for o, f in sorted(self._prompts):
                out.setdefault(o, []).append(f)
        return out

    def is_current(self, key: PromptKey, version: int) -> bool:
        """Whether ``version`` is still the newest request of ``key``."""
        return self._versions.get(key) == version

    # ----------------------------------------------------------------- writing
    def bump(self, key: PromptKey) -> int:
        """A new version of ``key``: jobs of older versions drop their results."""
        with self._lock:
            version = self._versions[key] = self._versions.get(key, 0) + 1
            return version

    def request(self, key: PromptKey, state: KeyframePrompt) -> tuple[int, KeyframePrompt | None]:
        """Record a requested prompt; returns its version and the prompt it replaces."""
        with self._lock:
            version = self.bump(key)
            previous = self._prompts.get(key)
            self._prompts[key] = state
            return version, previous

    def settle(self, key: PromptKey, version: int, state: KeyframePrompt) -> None:
        """The mask of request ``version`` is written: mark the prompt computed."""
        with self._lock:
            if self._versions.get(key) == version:
                self._prompts[key] = replace(state, computed=True)

    def revert(self, key: PromptKey, version: int, previous: KeyframePrompt | None) -> bool:
        """Request ``version`` failed: the prompt before it again, unless a newer request came
        meanwhile (then False)."""
        with self._lock:
            if self._versions.get(key) != version:
                return False
            if previous is None:
                self._prompts.pop(key, None)
            else:
                self._prompts[key] = previous
            return True

    def delete(self, key: PromptKey) -> bool:
        """Remove the prompt of ``key`` (a waiting job of it is dropped); whether it existed."""
        with self._lock:
            self.bump(key)
            return self._prompts.pop(key, None) is not None

    def remove_object(self, obj_id: int) -> list[PromptKey]:
        """Remove every prompt of ``obj_id``; returns their keys."""
        with self._lock:
            keys = [k for k in self._prompts if k[0] == obj_id]
            for key in keys:
                self.delete(key)
            return keys

    def reload(self, obj_id: int, start: int, end: int, stored: Iterable[Prompt]) -> list[PromptKey]:
        """Make the prompts of ``obj_id`` on ``start..end`` the ``stored`` ones again (after an
        undo); returns the keys that changed."""
        again = {(p.object, p.frame): keyframe_prompt(p) for p in stored
                 if p.object == obj_id and start <= p.frame <= end}
        with self._lock:
            ours = [k for k in self._prompts if k[0] == obj_id and start <= k[1] <= end]
            for key in ours:
                self._prompts.pop(key)
            for key in set(ours) | set(again):
                self.bump(key)  # a prompt still waiting for the model is dropped
            self._prompts.update(again)
        return sorted(set(ours) | set(again))
