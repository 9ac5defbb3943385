"""Batched tracking: every object on a frame in one pass of the model's per-object stages.

Upstream ``propagate_in_video`` (sam2 1.1.0) runs memory attention, the mask decoder and the
memory encoder once per object per frame, with a batch of one. The modelling code takes a batch
of objects; what keeps upstream from batching is that each object owns its memory bank
(``output_dict_per_obj``), whose frames differ between objects that were prompted on different
frames.

Here each object's memory is selected exactly as upstream's
``SAM2Base._prepare_memory_conditioned_features`` selects it (the closest conditioning frames,
the previous ``num_maskmem - 1`` frames' memories, the previous object pointers), with its own
spatial and temporal position encodings, and the objects are stacked along the batch axis.
Attention is computed per batch element, so objects never see each other's memories: one batch
element attends to exactly the tokens it would attend to alone. A batch therefore only needs
the same *number* of memory tokens per object, not the same frames; objects are grouped by
``(memory frames, object pointers)`` and each group runs as one batch. In steady state every
object with the same number of keyframes falls in one group; an object that joined recently
(fewer pointers) or carries an extra keyframe forms its own group until it catches up. A group
of one object runs upstream's own per-object inference.

The results per object are split back into each object's own memory bank, so prompts,
corrections, pruning and removal work on the same per-object state as the exact mode.
Batching changes the order of floating-point operations (matrix products over several rows,
convolutions over a batch), so masks may differ from the per-object path on pixels whose logit
is within rounding of zero; tests/test_batched.py bounds this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


def batching_supported(predictor) -> bool:
    """Whether objects can be batched on this model without changing what each one computes.

    ``non_overlap_masks_for_mem_enc`` makes the memory encoder compare masks *across* the batch
    (upstream, with a batch of one, never does); a model without memory has nothing to batch.
    """
    return (
        predictor.num_maskmem > 0
        and not predictor.non_overlap_masks_for_mem_enc
        and not predictor.training
    )


@dataclass
class MemoryPlan:
    """What memory attention reads for one object on one frame, in upstream's order."""

    frames: list[tuple[int, dict]] = field(default_factory=list)  # (t_pos, frame output)
    pointers: list[tuple[int, Any]] = field(default_factory=list)  # (temporal offset, obj_ptr)

    @property
    def shape(self) -> tuple[int, int]:
        """Objects with the same shape can share one batch."""
        return len(self.frames), len(self.pointers)


def memory_plan(predictor, frame_idx: int, output_dict: dict, num_frames: int, reverse: bool) -> MemoryPlan:
    """The memories ``_prepare_memory_conditioned_features`` reads for a non-initial frame."""
    from sam2.modeling.sam2_utils import select_closest_cond_frames

    p = predictor
    plan = MemoryPlan()
    cond_outputs = output_dict["cond_frame_outputs"]
    non_cond = output_dict["non_cond_frame_outputs"]
    selected, unselected = select_closest_cond_frames(
        frame_idx, cond_outputs, p.max_cond_frames_in_attn
    )
    plan.frames = [(0, out) for out in selected.values()]
    stride = 1 if p.training else p.memory_temporal_stride_for_eval
    for t_pos in range(1, p.num_maskmem):
        t_rel = p.num_maskmem - t_pos
        if t_rel == 1:
            prev = frame_idx + 1 if reverse else frame_idx - 1
        elif not reverse:
            prev = ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
        else:
            prev = -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride
        out = non_cond.get(prev, None)
        if out is None:
            out = unselected.get(prev, None)
        if out is not None:
            plan.frames.append((t_pos, out))
    if p.use_obj_ptrs_in_encoder:
        max_ptrs = min(num_frames, p.max_obj_ptrs_in_encoder)
        if not p.training and p.only_obj_ptrs_in_the_past_for_eval:
            ptr_cond = {
                t: out
                for t, out in selected.items()
                if (t >= frame_idx if reverse else t <= frame_idx)
            }
        else:
            ptr_cond = selected
        sign = -1 if reverse else 1
        for t, out in ptr_cond.items():
            offset = (frame_idx - t) * sign if p.use_signed_tpos_enc_to_obj_ptrs else abs(frame_idx - t)
            plan.pointers.append((offset, out["obj_ptr"]))
        for t_diff in range(1, max_ptrs):
            t = frame_idx + t_diff if reverse else frame_idx - t_diff
            if t < 0 or t >= num_frames:
                break
            out = non_cond.get(t, unselected.get(t, None))
            if out is not None:
                plan.pointers.append((t_diff, out["obj_ptr"]))
    return plan


def _stack_batch(tensors: list[torch.Tensor], device) -> torch.Tensor:
    """Concatenate per-object ``(1, ...)`` tensors along the batch axis; one shared tensor
    (e.g. the cached ``maskmem_pos_enc``) is expanded instead of copied."""
    first = tensors[0]
    same = (first.data_ptr(), first.shape, first.stride())
    if all(t is first or (t.data_ptr(), t.shape, t.stride()) == same for t in tensors):
        return first.to(device, non_blocking=True).expand(len(tensors), *first.shape[1:])
    return torch.cat(tensors, dim=0).to(device, non_blocking=True)


def _memory_conditioned_features(
    predictor, plans: list[MemoryPlan], vision_feats, vision_pos, feat_sizes, num_frames: int
) -> torch.Tensor:
    """Step 2 of ``_prepare_memory_conditioned_features`` for a batch of objects, each with
    its own memories (``plans``, all of one shape)."""
    from sam2.modeling.sam2_utils import get_1d_sine_pe

    p = predictor
    B = len(plans)
    C = p.hidden_dim
    H, W = feat_sizes[-1]
    device = vision_feats[-1].device
    memory, memory_pos = [], []
    for k in range(len(plans[0].frames)):
        feats = _stack_batch([plan.frames[k][1]["maskmem_features"] for plan in plans], device)
        memory.append(feats.flatten(2).permute(2, 0, 1))
        enc = _stack_batch([plan.frames[k][1]["maskmem_pos_enc"][-1] for plan in plans], device)
        enc = enc.flatten(2).permute(2, 0, 1)
        t_pos = [plan.frames[k][0] for plan in plans]
        if len(set(t_pos)) == 1:
            tpos_enc = p.maskmem_tpos_enc[p.num_maskmem - t_pos[0] - 1]
        else:  # (1, B, mem_dim): each object's own temporal position
            tpos_enc = torch.cat([p.maskmem_tpos_enc[p.num_maskmem - t - 1] for t in t_pos], dim=1)
        memory_pos.append(enc + tpos_enc)
    num_ptr_tokens = 0
    n_ptrs = len(plans[0].pointers)
    if n_ptrs:
        obj_ptrs = torch.stack(
            [torch.cat([plan.pointers[j][1] for plan in plans], dim=0) for j in range(n_ptrs)]
        )  # (n_ptrs, B, C)
        if p.add_tpos_enc_to_obj_ptrs:
            t_diff_max = min(num_frames, p.max_obj_ptrs_in_encoder) - 1
            tpos_dim = C if p.proj_tpos_enc_in_obj_ptrs else p.mem_dim
            # Per object, as upstream computes it: the projection of a (n_ptrs, dim) input
            # rounds exactly as upstream's, which a (n_ptrs, B, dim) input need not. Objects
            # with the same pointer offsets share one projection.
            by_offsets: dict[tuple[int, ...], torch.Tensor] = {}
            for plan in plans:
                offsets = tuple(ptr[0] for ptr in plan.pointers)
                if offsets not in by_offsets:
                    pos = torch.tensor(offsets).to(device=device, non_blocking=True)
                    by_offsets[offsets] = p.obj_ptr_tpos_proj(
                        get_1d_sine_pe(pos / t_diff_max, dim=tpos_dim)
                    )
            obj_pos = torch.stack(
                [by_offsets[tuple(ptr[0] for ptr in plan.pointers)] for plan in plans], dim=1
            )
        else:
            obj_pos = obj_ptrs.new_zeros(n_ptrs, B, p.mem_dim)
        if p.mem_dim < C:
            obj_ptrs = obj_ptrs.reshape(-1, B, C // p.mem_dim, p.mem_dim)
            obj_ptrs = obj_ptrs.permute(0, 2, 1, 3).flatten(0, 1)
            obj_pos = obj_pos.repeat_interleave(C // p.mem_dim, dim=0)
        memory.append(obj_ptrs)
        memory_pos.append(obj_pos)
        num_ptr_tokens = obj_ptrs.shape[0]
    pix_feat = p.memory_attention(
        curr=vision_feats,
        curr_pos=vision_pos,
        memory=torch.cat(memory, dim=0),
        memory_pos=torch.cat(memory_pos, dim=0),
        num_obj_ptr_tokens=num_ptr_tokens,
    )
    return pix_feat.permute(1, 2, 0).view(B, C, H, W)


def track_batch(
    predictor, state: dict, frame_idx: int, plans: list[MemoryPlan], batch_heads: bool = False
) -> list[tuple[dict, torch.Tensor]]:
    """Upstream ``_run_single_frame_inference`` (a non-conditioning frame, memory encoder on)
    for several objects at once; returns ``(compact output, low-res mask logits)`` per object,
    each output shaped as upstream's for a batch of one.

    Memory attention and the memory encoder run as one batch. The SAM heads (prompt encoder
    and mask decoder) run as one batch with ``batch_heads``, otherwise once per object: on the
    CPU they are a small share of the work, and their kernels (a channel LayerNorm, matrix
    products over a handful of tokens) are the only ones whose rounding changes with the
    batch size, so running them per object keeps the results bit-identical to upstream's.
    """
    from sam2.utils.misc import fill_holes_in_mask_scores

    p = predictor
    B = len(plans)
    _, _, vision_feats, vision_pos, feat_sizes = p._get_image_feature(state, frame_idx, B)
    high_res_features = (
        [
            x.permute(1, 2, 0).view(x.size(1), x.size(2), *s)
            for x, s in zip(vision_feats[:-1], feat_sizes[:-1])
        ]
        if len(vision_feats) > 1
        else None
    )
    pix_feat = _memory_conditioned_features(
        p, plans, vision_feats[-1:], vision_pos[-1:], feat_sizes[-1:], state["num_frames"]
    )
    multimask = p._use_multimask(False, None)
    if batch_heads:
        sam_outputs = p._forward_sam_heads(pix_feat, None, None, high_res_features, multimask)
    else:
        per_object = [
            p._forward_sam_heads(
                pix_feat[i : i + 1],
                None,
                None,
                None if high_res_features is None else [x[i : i + 1] for x in high_res_features],
                multimask,
            )
            for i in range(B)
        ]
        sam_outputs = [torch.cat(parts, dim=0) for parts in zip(*per_object)]
    _, _, _, low_res_masks, high_res_masks, obj_ptr, object_score_logits = sam_outputs
    maskmem_features, maskmem_pos_enc = p._encode_new_memory(
        current_vision_feats=vision_feats,
        feat_sizes=feat_sizes,
        pred_masks_high_res=high_res_masks,
        object_score_logits=object_score_logits,
        is_mask_from_pts=False,
    )
    storage = state["storage_device"]
    maskmem_features = maskmem_features.to(torch.bfloat16).to(storage, non_blocking=True)
    if p.fill_hole_area > 0:
        low_res_masks = fill_holes_in_mask_scores(low_res_masks, p.fill_hole_area)
    stored_masks = low_res_masks.to(storage, non_blocking=True)
    results = []
    for i in range(B):
        # Own copies, so that pruning one object's frame frees its memory.
        pos_enc = p._get_maskmem_pos_enc(
            state, {"maskmem_pos_enc": [x[i : i + 1] for x in maskmem_pos_enc]}
        )
        out = {
            "maskmem_features": maskmem_features[i : i + 1].clone(),
            "maskmem_pos_enc": pos_enc,
            "pred_masks": stored_masks[i : i + 1].clone(),
            "obj_ptr": obj_ptr[i : i + 1].clone(),
            "object_score_logits": object_score_logits[i : i + 1].clone(),
        }
        results.append((out, low_res_masks[i : i + 1]))
    return results


def group_by_shape(plans: list[MemoryPlan]) -> list[list[int]]:
    """Indices of ``plans`` grouped by memory shape, in first-seen order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(plan.shape, []).append(i)
    return list(groups.values())
