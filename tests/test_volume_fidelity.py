"""Along z, a volume run gives upstream SAM2VideoPredictor's masks and presence on the same slices.

The slices of a procedural volume are written as a grayscale JPEG folder (upstream's input);
the volume we track is that folder decoded, so both see the same pixels. Ours runs through the
whole pipeline into a project (``track``), and the project's masks and presence column are
compared with upstream's last output on every slice, as the video fidelity tests do.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from napari_sam2_track.pipeline import track
from napari_sam2_track.project import COL, ProjectStore
from napari_sam2_track.prompts import ObjectSpec, Prompt, PromptSet
from napari_sam2_track.sources import ArrayVolumeSource

from _volumes import sphere_volume


def _jpeg_slices(volume: np.ndarray, folder) -> np.ndarray:
    """Write (z, h, w) uint8 slices as grayscale JPEGs; return them as decoded."""
    folder.mkdir(parents=True, exist_ok=True)
    out = np.empty_like(volume)
    for z, plane in enumerate(volume):
        path = folder / f"{z:05d}.jpg"
        Image.fromarray(plane, mode="L").save(path, quality=95)
        out[z] = np.asarray(Image.open(path).convert("L"))
    return out


def _upstream(model, folder, seed):
    """Upstream on ``folder``: ``seed(predictor, state)`` prompts it; propagate forward from
    the earliest conditioning slice, then backward from it. Last output per slice."""
    p = model.predictor
    state = p.init_state(str(folder))
    seed(p, state)
    masks, presence = {}, {}
    for reverse in (False, True):
        for z, obj_ids, video_masks in p.propagate_in_video(state, reverse=reverse):
            for i, obj in enumerate(obj_ids):
                masks[z, obj] = (video_masks[i, 0] > 0).numpy()
                out = state["output_dict_per_obj"][state["obj_id_to_idx"][obj]]
                rec = out["cond_frame_outputs"].get(z) or out["non_cond_frame_outputs"][z]
                presence[z, obj] = float(rec["object_score_logits"])
    return masks, presence


def _assert_same(store, t, masks, presence, objects, n_z):
    for z in range(n_z):
        plane = store.plane(t, z)
        for obj in objects:
            ours = store.mask(obj, plane)
            assert np.array_equal(ours, masks[z, obj]), f"object {obj} differs on slice {z} (t={t})"
            stored = store.table_rows(obj, plane, plane + 1)[0, COL["presence"]]
            assert abs(stored - presence[z, obj]) <= 1e-4
    areas = [int(masks[z, o].sum()) for z in range(n_z) for o in objects]
    assert max(areas) > 0 and min(areas) < masks[0, objects[0]].size  # not vacuous


def test_keyframes_on_two_slices_and_two_objects_match_upstream(tmp_path, test_model):
    data, _ = sphere_volume(z=12)
    slices = _jpeg_slices(data[0], tmp_path / "jpg")
    prompts = PromptSet(objects=[ObjectSpec(id=1), ObjectSpec(id=2)], prompts=[
        Prompt(object=1, frame=0, z=3, points=[(30, 32)], labels=[1]),
        Prompt(object=1, frame=0, z=8, points=[(28, 30), (50, 50)], labels=[1, 0]),
        Prompt(object=2, frame=0, z=3, box=(4, 4, 20, 20)),
    ])
    list(track(ArrayVolumeSource(slices, "ZYX"), prompts, tmp_path / "v.zarr", model=test_model))

    def seed(p, state):
        p.add_new_points_or_box(state, frame_idx=3, obj_id=1, points=[[30, 32]], labels=[1])
        p.add_new_points_or_box(state, frame_idx=8, obj_id=1, points=[[28, 30], [50, 50]],
                                labels=[1, 0])
        p.add_new_points_or_box(state, frame_idx=3, obj_id=2, box=[4, 4, 20, 20])

    masks, presence = _upstream(test_model, tmp_path / "jpg", seed)
    store = ProjectStore.open(tmp_path / "v.zarr", mode="r")
    _assert_same(store, 0, masks, presence, [1, 2], 12)


def test_next_timepoint_is_upstream_seeded_with_the_largest_slice(tmp_path, test_model):
    """The chain along t: timepoint 1 equals upstream given the mask of timepoint 0's slice of
    largest area as a mask prompt on that slice."""
    data, _ = sphere_volume(t=2, z=8, radius=7)
    decoded = np.stack([_jpeg_slices(data[t], tmp_path / f"jpg{t}") for t in range(2)])
    prompts = PromptSet(objects=[ObjectSpec(id=1)],
                        prompts=[Prompt(object=1, frame=0, z=4, points=[(26, 32)], labels=[1])])
    list(track(ArrayVolumeSource(decoded, "TZYX"), prompts, tmp_path / "t.zarr", model=test_model))
    store = ProjectStore.open(tmp_path / "t.zarr", mode="r")
    areas = [int(store.mask(1, store.plane(0, z)).sum()) for z in range(8)]
    z_best = int(np.argmax(areas))
    seed_mask = store.mask(1, store.plane(0, z_best))
    assert seed_mask.any()

    def seed(p, state):
        p.add_new_mask(state, frame_idx=z_best, obj_id=1, mask=torch.from_numpy(seed_mask))

    masks, presence = _upstream(test_model, tmp_path / "jpg1", seed)
    _assert_same(store, 1, masks, presence, [1], 8)
