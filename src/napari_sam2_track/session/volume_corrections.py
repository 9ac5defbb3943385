"""Corrections of a volume session: a prompt on slice ``z`` of timepoint ``t`` re-propagates one
object along z within ``t``, then re-chains it into the timepoints seeded from ``t``.

The planes ``t * Z + z`` are the session's frames. A correction of object ``o`` on a plane of
timepoint ``t`` (requested with ``request_correction``, or a prompt on a propagated plane
while ``auto_correct`` is on), on the compute thread:

1. starts a track version of ``o`` over the planes of the timepoints it may rewrite
   (:func:`correction_timepoints`), its prompts on those timepoints kept;
2. computes and writes the prompt's mask as any prompt;
3. runs the core's volume tracking (:func:`~napari_sam2_track.volumes.run.track_in_open_store`)
   for ``o`` alone over those timepoints: ``t`` along z both ways from all of ``o``'s prompted
   slices of ``t`` (one memory), then the chain: the later timepoints up to the next one ``o``
   has prompts on, and, when ``t`` is (now) ``o``'s first prompted timepoint, the earlier ones
   too. A fresh run of the same prompts writes the same planes there. With the early stop on
   (the schema's ``review.correction_stop: agree``, or the Review dock's box), a sweep of the
   chain ends at the first re-chained timepoint whose new 3D mask agrees with the stored one
   (:class:`~napari_sam2_track.review.segments.ChainStop`).

The run's options (axis, z-range, direction, stop after empty slices) are those of the last
volume run that tracked ``o``. Nothing of other objects or other timepoints is written; an undo
restores the version byte for byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import PromptError
from ..project import COL, STATE_NOT_RUN
from ..project.versions import Recording, RunVersions
from ..review import segments
from .corrections import Corrections

if TYPE_CHECKING:
    from ..project import ProjectStore
    from ..prompts import Prompt
    from ..sources.volume import VolumeSource
    from ..volumes.checks import VolumeRequest

__all__ = ["VolumeCorrections", "correction_timepoints"]


def correction_timepoints(store: "ProjectStore", obj_id: int, t: int) -> tuple[int, int]:
    """The timepoints ``(a, b)`` a correction of ``obj_id`` at timepoint ``t`` re-propagates:
    ``t`` and the timepoints its chain seeds (the later ones before ``obj_id``'s next prompted
    timepoint; the earlier ones too when ``t`` is, with the new prompt, its first), clipped to
    the timepoints around ``t`` that hold a result for it (a correction never extends into
    timepoints never propagated)."""
    n_t, n_z = store.volume_shape[:2]
    prompted = {int(p.frame) for p in store.prompts.prompts if p.object == obj_id} | {t}
    later = [p for p in prompted if p > t]
    end = min(later) - 1 if later else n_t - 1
    start = 0 if t == min(prompted) else t
    rows = store.table_rows(obj_id, start * n_z, (end + 1) * n_z)
    if rows is None:
        return t, t
    states = np.asarray(rows[:, COL["state"]], np.float64).reshape(end - start + 1, n_z)
    done = (np.isfinite(states) & (states != STATE_NOT_RUN)).any(axis=1)
    done[t - start] = True
    gaps = np.flatnonzero(~done)
    before, after = gaps[gaps < t - start], gaps[gaps > t - start]
    return (start + (int(before[-1]) + 1 if len(before) else 0),
            start + (int(after[0]) - 1 if len(after) else end - start))


def last_volume_request(store: "ProjectStore", obj_id: int, start: int, end: int) -> "VolumeRequest":
    """The request of a correction over timepoints ``start..end``: ``obj_id`` alone, with the
    options of the last volume run that tracked it (the defaults if none did)."""
    from ..volumes.checks import VolumeRequest

    runs = [r for r in store.meta.get("runs", []) if "axis" in r and obj_id in (r.get("objects") or [])]
    last = runs[-1] if runs else {}
    z_range = last.get("z_range")
    return VolumeRequest(direction=last.get("direction") or "both", start=start, end=end,
                         obj_ids=[obj_id], z_range=tuple(z_range) if z_range else None,
                         stop_after_empty=last.get("stop_after_empty"), axis=last.get("axis") or "z")


class VolumeCorrections(Corrections):
    """:class:`~.corrections.Corrections` of a volume session: segments are whole timepoints
    (their planes), re-propagated by the volume tracking (see the module docstring)."""

    def __init__(self, *args, volume: "VolumeSource", **kwargs):
        super().__init__(*args, **kwargs)
        self.volume = volume
        self.n_z = int(volume.shape[1])

    def segment(self, obj_id: int, frame: int) -> tuple[int, int]:
        """The planes ``(a, b)`` a correction of ``obj_id`` on plane ``frame`` may rewrite: all
        planes of its timepoints (:func:`correction_timepoints`)."""
        a, b = correction_timepoints(self.store, obj_id, int(frame) // self.n_z)
        return a * self.n_z, b * self.n_z + self.n_z - 1

    def check_prompt(self, prompt: "Prompt") -> None:
        """An object last tracked along y or x is re-propagated along that axis, across the
        z-slices: a box or a mask drawn on a slice has no extent there (clicks map onto its
        planes), so it is refused before anything is written."""
        t = int(prompt.frame)
        axis = last_volume_request(self.store, prompt.object, t, t).axis
        if axis not in (None, "z") and (prompt.box is not None or prompt.mask is not None):
            kind = "box" if prompt.box is not None else "mask"
            raise PromptError(
                f"object {prompt.object} was tracked along {axis}: a {kind} on a z-slice has no "
                f"extent across its {axis}-planes; correct it with clicks, or propagate it "
                "again along z")

    def begin(self, obj_id: int, frame: int, start: int, end: int) -> Recording:
        """Start the version; the prompts kept are those of its timepoints. A request the
        volume tracking would refuse (a slice outside the last run's z-range) is refused here,
        before anything is written."""
        from ..volumes.checks import check_volume_request

        t, z = divmod(int(frame), self.n_z)
        request = last_volume_request(self.store, obj_id, start // self.n_z, end // self.n_z)
        check_volume_request(self.volume, None, request)
        if request.z_range is not None and not request.z_range[0] <= z <= request.z_range[1]:
            a, b = request.z_range
            raise PromptError(f"slice z={z} is outside the z-range {a}-{b} object {obj_id} was "
                              "tracked in; correct it on a slice inside, or propagate again")
        return segments.begin_correction(self.store, obj_id, frame, start, end, who=self.activity.annotator,
                                         prompt_span=(start // self.n_z, end // self.n_z),
                                         what=f"correction on t {t} z {z}")

    def run_segment(self, obj_id: int, frame: int, start: int, end: int,
                    versions: RunVersions) -> dict[str, int]:
        """The volume tracking of ``obj_id`` alone over the timepoints of planes
        ``start..end``, its chain stopped early where the rule says so; returns the last plane
        of the timepoint where a sweep (``forward``: later, ``backward``: earlier) stopped."""
        from ..volumes.run import track_in_open_store

        rule = self.early_stop()
        chain = None if rule is None else segments.ChainStop(rule, self.n_z, int(frame) // self.n_z)
        request = last_volume_request(self.store, obj_id, start // self.n_z, end // self.n_z)
        for _ in track_in_open_store(self.store, self.volume, model=self.engine.require_model(),
                                     request=request, cancel=self.stop, versions=versions,
                                     chain_stop=chain):
            pass
        return {k: t * self.n_z + self.n_z - 1 for k, t in chain.stops.items()} if chain else {}
