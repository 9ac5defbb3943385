"""A project's objects' prompts (mixed into :class:`~.store.ProjectStore`).

Prompts live in the metadata (``prompts``); a mask prompt drawn in napari keeps its pixels in
the project (``prompt_masks/<id>/<frame>``, in a volume project ``prompt_masks/<id>/<plane>``).
A prompt is identified by its object and its plane (:meth:`PromptRecords.prompt_plane`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..prompts import Prompt, PromptSet


def _prompt_key(prompt: dict) -> str:
    """A prompt without where its mask pixels are kept (a file, or the project)."""
    return json.dumps({**prompt, "mask": prompt.get("mask") is not None}, sort_keys=True)


class PromptRecords:
    """Reading and writing the prompts of a project store."""

    @property
    def prompts(self) -> PromptSet:
        return PromptSet(objects=self.objects, prompts=self.meta["prompts"])

    def prompt_plane(self, prompt: Prompt | dict) -> int:
        """The plane (frame) a prompt lies on: ``frame * Z + z`` in a volume project."""
        p = prompt if isinstance(prompt, dict) else prompt.model_dump(mode="json")
        if self.planes is None:
            return int(p["frame"])
        return int(p["frame"]) * self.planes[1] + int(p.get("z") or 0)

    def set_prompts(self, prompts: PromptSet) -> None:
        """Store objects and prompts (masks given by path are read when tracking)."""
        old = {(p["object"], self.prompt_plane(p)): _prompt_key(p) for p in self.meta["prompts"]}
        self.set_objects(prompts.objects)
        new_prompts = [p.model_dump(mode="json") for p in prompts.prompts]
        self.update_meta(prompts=new_prompts)
        new = {(p["object"], self.prompt_plane(p)): _prompt_key(p) for p in new_prompts}
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        self.record_changes([(o, f, f) for o, f in changed], "prompts changed", "prompt")

    def put_prompt(self, prompt: Prompt, mask: np.ndarray | None = None) -> Prompt:
        """Add or replace the prompt of one object on one frame.

        A mask prompt's pixels are stored in the project (``prompt_masks/<id>/<frame>``; in a
        volume project ``prompt_masks/<id>/<plane>``).
        """
        plane = self.prompt_plane(prompt)
        old = next((p for p in self.meta["prompts"]
                    if p["object"] == prompt.object and self.prompt_plane(p) == plane), None)
        changed = old is None or _prompt_key(old) != _prompt_key(prompt.model_dump(mode="json"))
        if mask is not None:
            name = f"prompt_masks/{prompt.object}/{plane}"
            if name in self.group:
                changed = changed or not np.array_equal(self.group[name][:], np.asarray(mask, bool))
                del self.group[name]
            self.group.create_array(name, data=np.asarray(mask, dtype=bool))
            prompt = prompt.model_copy(update={"mask": f"store:{name}"})
        others = [
            p
            for p in self.meta["prompts"]
            if not (p["object"] == prompt.object and self.prompt_plane(p) == plane)
        ]
        self.update_meta(prompts=[*others, prompt.model_dump(mode="json")])
        if changed:
            self.record_changes([(prompt.object, plane, plane)],
                                f"prompt on frame {plane}", "prompt")
        return prompt

    def delete_prompt(self, obj_id: int, frame: int, z: int | None = None) -> None:
        """Delete object ``obj_id``'s prompt on ``frame`` (in a volume: on slice ``z`` of
        timepoint ``frame``)."""
        plane = self.prompt_plane({"frame": frame, "z": z})
        prompts = self.meta["prompts"]
        kept = [p for p in prompts if not (p["object"] == obj_id and self.prompt_plane(p) == plane)]
        self.update_meta(prompts=kept)
        if len(kept) != len(prompts):
            self.record_changes([(obj_id, plane, plane)], f"prompt deleted on frame {plane}", "prompt")

    def prompt_mask(self, prompt: Prompt, base_dir: str | Path | None = None) -> np.ndarray:
        """Pixels of a mask prompt, from the project or from the file it names."""
        if prompt.mask and prompt.mask.startswith("store:"):
            return self.group[prompt.mask.removeprefix("store:")][:]
        _, h, w = self.shape
        return prompt.load_mask(base_dir, h, w)
