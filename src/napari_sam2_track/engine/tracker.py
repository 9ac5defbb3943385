"""Streaming SAM 2 tracker: upstream's per-object inference with bounded memory.

:class:`StreamingTracker` drives an upstream ``SAM2VideoPredictor`` over an inference state it
builds itself, with three changes that keep memory flat for videos of any length while giving
the same masks as upstream:

* frames are read lazily (:class:`~.frames.ModelFrames`) instead of all at start-up;
* per-frame outputs that memory attention can no longer read are dropped: non-conditioning
  outputs farther than ``retain_frames`` (default: the attention window, 16 frames) from the
  frame being tracked and from every conditioning frame of that object;
* masks are thresholded as soon as they are produced; full-resolution logits are never kept.

The propagation loop is upstream's ``propagate_in_video`` restricted to chosen objects and
frame ranges, and it also reports each object's presence logit (the occlusion head).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import ModelError, PromptError
from ..passes import Direction, Plan, correction_range, plan_passes
from ..prompts import Prompt
from .frames import ModelFrames
from .models import LoadedModel

if TYPE_CHECKING:
    from ..sources import FrameSource

@dataclass
class FrameResult:
    """Thresholded output of one frame for the objects tracked on it."""

    frame: int
    direction: str
    masks: dict[int, np.ndarray]  # object id -> bool (H, W)
    presence: dict[int, float]  # object id -> object-score logit (> 0: present)
    prompted: set[int] = field(default_factory=set)  # objects with a prompt on this frame


class _TrackedFrames(MutableMapping):
    """``frames_tracked_per_obj[obj]`` as one byte per frame instead of a growing dict.

    Upstream stores ``{frame: {"reverse": bool}}`` for every tracked frame; this keeps the same
    mapping interface (0: not tracked, 1: forward, 2: reverse) in a fixed-size array.
    """

    def __init__(self, num_frames: int):
        self._codes = np.zeros(num_frames, dtype=np.int8)

    def __getitem__(self, t: int) -> dict:
        if not (0 <= t < len(self._codes)) or self._codes[t] == 0:
            raise KeyError(t)
        return {"reverse": bool(self._codes[t] == 2)}

    def __setitem__(self, t: int, value: dict) -> None:
        self._codes[t] = 2 if value["reverse"] else 1

    def __delitem__(self, t: int) -> None:
        if self._codes[t] == 0:
            raise KeyError(t)
        self._codes[t] = 0

    def __contains__(self, t: object) -> bool:
        return isinstance(t, (int, np.integer)) and 0 <= t < len(self._codes) and self._codes[t] != 0

    def __iter__(self):
        return iter(np.flatnonzero(self._codes).tolist())

    def __len__(self) -> int:
        return int(np.count_nonzero(self._codes))

    def clear(self) -> None:
        self._codes[:] = 0


def spare_cpu_core() -> bool:
    """Whether this process may use more CPU cores than PyTorch's intra-op threads take."""
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return torch.get_num_threads() < cores


class StreamingTracker:
    """Keyframe prompting and streaming propagation over a lazy frame source.

    Args:
        model: a loaded SAM 2 video model.
        source: a :class:`~napari_sam2_track.sources.FrameSource`.
        retain_frames: how far (in frames) non-conditioning outputs are kept around the frame
            being tracked and around each conditioning frame: ``"window"`` (default) keeps
            exactly what memory attention reads (16 frames for SAM 2), ``"all"`` keeps
            everything as upstream does, an integer sets the distance.
        read_ahead: frames decoded ahead of the model on a reader thread. By default 4 when
            the model runs on a GPU, and on the CPU when PyTorch's threads leave a core free
            (:func:`spare_cpu_core`); otherwise 0 (decode in turn): where the model keeps every
            core busy a reader thread would only contend with it.
        batch_objects: track all objects of a frame in one batched pass (:mod:`.batched`).
            ``None`` (default): on a GPU, whenever the model allows it and several objects
            are tracked on a frame; off on the CPU, where memory attention's arithmetic sets
            the cost and batching measured no faster (docs/benchmarks.md). ``False``: one
            object at a time, exactly as upstream.
        batch_heads: in batched mode, also run the mask decoder as one batch. By default on
            GPUs; on the CPU the decoder runs per object, which keeps masks bit-identical to
            the exact mode there (see docs/tracking.md).
    """

    def __init__(
        self,
        model: LoadedModel,
        source: "FrameSource",
        *,
        retain_frames: int | Literal["window", "all"] = "window",
        read_ahead: int | None = None,
        batch_objects: bool | None = None,
        batch_heads: bool | None = None,
    ):
        from .batched import batching_supported

        self.model = model
        self.predictor = model.predictor
        self.source = source
        self.num_frames = len(source)
        self.height = int(source.height)
        self.width = int(source.width)
        p = self.predictor
        window = max(p.num_maskmem, p.max_obj_ptrs_in_encoder) * p.memory_temporal_stride_for_eval
        self.retain_frames: int | None = {"window": window, "all": None}.get(
            retain_frames, retain_frames  # type: ignore[arg-type]
        )
        if read_ahead is None:
            read_ahead = 4 if p.device.type != "cpu" or spare_cpu_core() else 0
        self.frames = ModelFrames(source, p.image_size, depth=read_ahead)
        if batch_objects and not batching_supported(p):
            raise ModelError(
                "this model compares masks across objects in its memory encoder "
                "(non_overlap_masks_for_mem_enc), so objects cannot be batched; "
                "use batch_objects=False"
            )
        if batch_objects is None:
            batch_objects = p.device.type != "cpu" and batching_supported(p)
        self.batch_objects: bool = batch_objects
        self.batch_heads: bool = p.device.type != "cpu" if batch_heads is None else batch_heads
        self._lock = threading.RLock()
        self.state = self._init_state()

    # ------------------------------------------------------------------ state
    def _init_state(self) -> dict:
        """The inference state of ``SAM2VideoPredictor.init_state``, with lazy images."""
        from collections import OrderedDict

        device = self.predictor.device
        state: dict = {
            "images": self.frames,
            "num_frames": self.num_frames,
            "offload_video_to_cpu": True,
            "offload_state_to_cpu": False,
            "video_height": self.height,
            "video_width": self.width,
            "device": device,
            "storage_device": device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": _FramesTrackedPerObj(self.num_frames),
        }
        return state

    def _context(self):
        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.predictor.device.type == "cuda":
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        return stack

    @property
    def obj_ids(self) -> list[int]:
        """Ids of the objects that have received prompts."""
        return list(self.state["obj_ids"])

    def keyframes(self, obj_id: int) -> list[int]:
        """Frames on which ``obj_id`` is conditioned (its prompted frames), sorted."""
        idx = self.state["obj_id_to_idx"].get(obj_id)
        if idx is None:
            return []
        frames = set(self.state["point_inputs_per_obj"][idx])
        frames |= set(self.state["mask_inputs_per_obj"][idx])
        return sorted(frames)

    def is_tracked(self, obj_id: int, frame: int) -> bool:
        idx = self.state["obj_id_to_idx"].get(obj_id)
        return idx is not None and frame in self.state["frames_tracked_per_obj"][idx]

    def state_bytes(self) -> int:
        """Bytes held by tensors in the inference state (frames are not held)."""
        import torch

        seen: set[int] = set()
        total = 0

        def walk(obj):
            nonlocal total
            if isinstance(obj, torch.Tensor):
                key = obj.untyped_storage().data_ptr()
                if key not in seen:
                    seen.add(key)
                    total += obj.untyped_storage().nbytes()
            elif isinstance(obj, dict):
                for v in obj.values():
                    walk(v)
            elif isinstance(obj, (list, tuple)):
                for v in obj:
                    walk(v)

        for key, value in self.state.items():
            if key != "images":
                walk(value)
        return total

    # ---------------------------------------------------------------- prompts
    def _check_frame(self, obj_id: int, frame: int) -> None:
        if not (0 <= frame < self.num_frames):
            raise PromptError(
                f"prompt for object {obj_id} is on frame {frame} but the video has "
                f"{self.num_frames} frames (0..{self.num_frames - 1})"
            )

    def add_prompt(self, prompt: Prompt, base_dir=None) -> np.ndarray:
        """Apply a :class:`~napari_sam2_track.prompts.Prompt`; returns the object's mask there."""
        self._check_frame(prompt.object, prompt.frame)
        prompt.check_frame(self.num_frames, self.height, self.width)
        if prompt.mask is not None:
            mask = prompt.load_mask(base_dir, self.height, self.width)
            return self.add_mask(prompt.object, prompt.frame, mask)
        return self.add_points(
            prompt.object,
            prompt.frame,
            points=prompt.points or None,
            labels=prompt.labels or None,
            box=prompt.box,
        )

    def add_points(
        self,
        obj_id: int,
        frame: int,
        points=None,
        labels=None,
        box=None,
    ) -> np.ndarray:
        """Set the clicks and/or box of ``obj_id`` on ``frame``; returns its bool mask there.

        The prompt replaces earlier clicks on that frame. On a frame that has already been
        tracked, it becomes a conditioning frame (a correction); re-propagate the segment from
        :meth:`correction_range` to apply it to neighbouring frames.
        """
        prompt = Prompt.build(
            object=obj_id,
            frame=frame,
            points=[] if points is None else [tuple(map(float, p)) for p in points],
            labels=[] if labels is None else [int(v) for v in labels],
            box=None if box is None else tuple(map(float, box)),
        )
        self._check_frame(obj_id, frame)
        prompt.check_frame(self.num_frames, self.height, self.width)
        with self._lock, self._context():
            _, obj_ids, masks = self.predictor.add_new_points_or_box(
                self.state,
                frame_idx=frame,
                obj_id=obj_id,
                points=np.asarray(prompt.points, dtype=np.float32).reshape(-1, 2)
                if prompt.points
                else None,
                labels=np.asarray(prompt.labels, dtype=np.int32) if prompt.points else None,
                box=None if prompt.box is None else np.asarray(prompt.box, dtype=np.float32),
                clear_old_points=True,
            )
            return (masks[obj_ids.index(obj_id), 0] > 0).cpu().numpy()

    def add_mask(self, obj_id: int, frame: int, mask: np.ndarray) -> np.ndarray:
        """Set a mask prompt (bool (H, W) at video resolution); returns the object's mask."""
        import torch

        self._check_frame(obj_id, frame)
        mask = np.asarray(mask)
        if mask.shape != (self.height, self.width):
            raise PromptError(
                f"mask prompt is {mask.shape[1]}x{mask.shape[0]} but the video is "
                f"{self.width}x{self.height}"
            )
        if not mask.any():
            raise PromptError(f"mask prompt for object {obj_id} on frame {frame} is empty")
        with self._lock, self._context():
            _, obj_ids, masks = self.predictor.add_new_mask(
                self.state, frame_idx=frame, obj_id=obj_id, mask=torch.from_numpy(mask != 0)
            )
            return (masks[obj_ids.index(obj_id), 0] > 0).cpu().numpy()

    def clear_prompt(self, obj_id: int, frame: int) -> None:
        """Remove the prompt of ``obj_id`` on ``frame``; an object left without any is removed."""
        with self._lock, self._context():
            if obj_id not in self.state["obj_id_to_idx"]:
                return
            self.predictor.clear_all_prompts_in_frame(self.state, frame, obj_id, need_output=False)
            if not self.keyframes(obj_id):
                self.remove_object(obj_id)

    def remove_object(self, obj_id: int) -> None:
        """Forget an object and all its prompts and memory."""
        with self._lock, self._context():
            self.predictor.remove_object(self.state, obj_id, need_output=False)
            tracked = self.state["frames_tracked_per_obj"]
            if not isinstance(tracked, _FramesTrackedPerObj):  # upstream rebuilt it as a dict
                self.state["frames_tracked_per_obj"] = _FramesTrackedPerObj.from_dict(
                    tracked, self.num_frames
                )

    def correction_range(self, obj_id: int, frame: int) -> tuple[int, int]:
        """The frames a prompt on ``frame`` affects (:func:`~napari_sam2_track.passes.correction_range`)."""
        return correction_range(self.keyframes(obj_id), frame, self.num_frames)

    # ------------------------------------------------------------ propagation
    def plan(
        self,
        direction: Direction = "both",
        start: int | None = None,
        end: int | None = None,
        obj_ids: list[int] | None = None,
    ) -> Plan:
        """The passes :meth:`propagate` will run over the current prompts
        (:func:`~napari_sam2_track.passes.plan_passes`; raises :class:`PromptError`)."""
        keyframes = {o: self.keyframes(o) for o in self.obj_ids}
        return plan_passes(keyframes, self.num_frames, direction, start, end, obj_ids)

    def propagate(
        self,
        direction: Direction = "both",
        start: int | None = None,
        end: int | None = None,
        obj_ids: list[int] | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[FrameResult]:
        """Track the chosen objects through ``[start, end]``, yielding one result per frame.

        Stops between frames when ``cancel`` is set (or when the generator is closed).
        """
        return self.run(self.plan(direction, start, end, obj_ids), cancel)

    def run(self, plan: Plan, cancel: threading.Event | None = None) -> Iterator[FrameResult]:
        """Run the passes of ``plan`` (from :meth:`plan`), yielding one result per frame."""
        with self._lock:
            with self._context():
                self.predictor.propagate_in_video_preflight(self.state)
            for p in plan.passes:
                self.frames.schedule(p.frames)
                for t in p.frames:
                    if cancel is not None and cancel.is_set():
                        return
                    with self._context():
                        result = self._track_frame(t, p.objects_on(t), p.reverse)
                    yield result

    def _track_frame(self, t: int, obj_ids: list[int], reverse: bool) -> FrameResult:
        """Upstream ``propagate_in_video``'s body for one frame, for the chosen objects."""
        state = self.state
        outputs: dict[int, tuple[dict, object]] = {}  # obj -> (output, low-res mask logits)
        prompted: set[int] = set()
        pending: list[int] = []
        for obj_id in obj_ids:
            out_dict = self._out_dict(obj_id)
            if t in out_dict["cond_frame_outputs"]:
                out = out_dict["cond_frame_outputs"][t]
                outputs[obj_id] = (out, out["pred_masks"].to(state["device"], non_blocking=True))
                prompted.add(obj_id)
            else:
                pending.append(obj_id)
        if self.batch_objects and len(pending) > 1:
            outputs.update(self._infer_batched(t, pending, reverse))
        else:
            for obj_id in pending:
                outputs[obj_id] = self._infer_one(t, obj_id, reverse)
        for obj_id in pending:
            self._out_dict(obj_id)["non_cond_frame_outputs"][t] = outputs[obj_id][0]
        for obj_id in obj_ids:
            obj_idx = state["obj_id_to_idx"][obj_id]
            state["frames_tracked_per_obj"][obj_idx][t] = {"reverse": reverse}
        masks = self._video_masks(obj_ids, [outputs[o][1] for o in obj_ids])
        presence = {
            o: float(outputs[o][0]["object_score_logits"].float().reshape(-1)[0]) for o in obj_ids
        }
        for obj_id in obj_ids:
            self._prune(self._out_dict(obj_id), t)
        return FrameResult(
            frame=t,
            direction="backward" if reverse else "forward",
            masks=masks,
            presence=presence,
            prompted=prompted,
        )

    def _out_dict(self, obj_id: int) -> dict:
        return self.state["output_dict_per_obj"][self.state["obj_id_to_idx"][obj_id]]

    def _infer_one(self, t: int, obj_id: int, reverse: bool):
        """Upstream's per-object inference (a batch of one)."""
        return self.predictor._run_single_frame_inference(
            inference_state=self.state,
            output_dict=self._out_dict(obj_id),
            frame_idx=t,
            batch_size=1,
            is_init_cond_frame=False,
            point_inputs=None,
            mask_inputs=None,
            reverse=reverse,
            run_mem_encoder=True,
        )

    def _infer_batched(self, t: int, obj_ids: list[int], reverse: bool) -> dict:
        """All ``obj_ids`` in as few batches as their memory shapes allow."""
        from .batched import group_by_shape, memory_plan, track_batch

        p = self.predictor
        plans = [
            memory_plan(p, t, self._out_dict(o), self.num_frames, reverse) for o in obj_ids
        ]
        outputs = {}
        for group in group_by_shape(plans):
            if len(group) == 1:
                outputs[obj_ids[group[0]]] = self._infer_one(t, obj_ids[group[0]], reverse)
                continue
            results = track_batch(
                p, self.state, t, [plans[i] for i in group], batch_heads=self.batch_heads
            )
            for i, result in zip(group, results):
                outputs[obj_ids[i]] = result
        return outputs

    def _video_masks(self, obj_ids: list[int], low_res: list) -> dict[int, np.ndarray]:
        """Low-resolution mask logits -> bool masks at video resolution."""
        import torch
        import torch.nn.functional as F

        if not obj_ids:
            return {}
        if self.batch_objects:  # one resize and one transfer for all objects
            logits = [torch.cat(low_res, dim=0)]
        else:
            logits = low_res
        masks = []
        for pred in logits:
            if pred.shape[-2:] != (self.height, self.width):
                pred = F.interpolate(
                    pred.float(), size=(self.height, self.width), mode="bilinear", align_corners=False
                )
            masks.extend((pred[:, 0] > 0).cpu().numpy())
        return dict(zip(obj_ids, masks))

    def _prune(self, out_dict: dict, t: int) -> None:
        """Drop non-conditioning outputs that memory attention can no longer read."""
        r = self.retain_frames
        if r is None:
            return
        cond = list(out_dict["cond_frame_outputs"])
        non_cond = out_dict["non_cond_frame_outputs"]
        for f in list(non_cond):
            if abs(f - t) > r and all(abs(f - c) > r for c in cond):
                del non_cond[f]

    # ------------------------------------------------------ embedding cache
    #: image embeddings kept by :meth:`prefetch_embedding` (the most recently used frames);
    #: about 100 MB each for SAM 2.1 at 1024 px, 6 MB at 256 px
    embedding_cache_size: int = 3

    def _embedding_cache(self) -> "OrderedDict[int, tuple]":
        from collections import OrderedDict

        cache = self.__dict__.get("_embeddings")
        if cache is None:
            cache = self.__dict__["_embeddings"] = OrderedDict()
        return cache

    def has_embedding(self, frame: int) -> bool:
        """Whether the image embedding of ``frame`` is cached."""
        return frame in self._embedding_cache() or frame in self.state["cached_features"]

    def prefetch_embedding(self, frame: int) -> bool:
        """Make the image embedding of ``frame`` ready for a prompt there.

        It is computed (or taken from the ``embedding_cache_size`` most recent ones) and made
        the inference state's cached feature, which upstream's prompt functions read first, so
        the next prompt on ``frame`` runs only the prompt encoder, memory attention and mask
        decoder. Returns whether it had to be computed.
        """
        if not (0 <= frame < self.num_frames):
            raise PromptError(f"frame {frame} is outside the video (0..{self.num_frames - 1})")
        cache = self._embedding_cache()
        with self._lock:
            entry = cache.get(frame) or self.state["cached_features"].get(frame)
            computed = entry is None
            if computed:
                with self._context():
                    device = self.state["device"]
                    image = self.state["images"][frame].to(device).float().unsqueeze(0)
                    entry = (image, self.predictor.forward_image(image))
            cache[frame] = entry
            cache.move_to_end(frame)
            while len(cache) > max(1, int(self.embedding_cache_size)):
                cache.popitem(last=False)
            self.state["cached_features"] = {frame: entry}
        return computed

    def close(self) -> None:
        """Stop the frame reader thread."""
        self.frames.close()


class _FramesTrackedPerObj(dict):
    """``frames_tracked_per_obj``: creates a compact :class:`_TrackedFrames` per new object."""

    def __init__(self, num_frames: int):
        super().__init__()
        self.num_frames = num_frames

    def __setitem__(self, obj_idx, value) -> None:
        if not isinstance(value, _TrackedFrames):
            tracked = _TrackedFrames(self.num_frames)
            for t, v in dict(value).items():
                tracked[t] = v
            value = tracked
        super().__setitem__(obj_idx, value)

    def update(self, *args, **kwargs) -> None:  # used by upstream remove_object
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    @classmethod
    def from_dict(cls, d: dict, num_frames: int) -> "_FramesTrackedPerObj":
        out = cls(num_frames)
        out.update(d)
        return out
