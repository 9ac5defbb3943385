"""A correction never extends into frames the object was never propagated on (real model,
random weights): an object propagated on frames 0-5 of 12, corrected on frame 3, is
re-propagated on 1-5 only; frames 6-11 stay never run."""

from __future__ import annotations

import numpy as np

from napari_sam2_track.project import COL, STATE_NOT_RUN, ProjectStore
from napari_sam2_track.review.segments import correction_segment
from napari_sam2_track.session import AnnotationSession
from napari_sam2_track.sources import open_source

from conftest import make_blob_video

N = 12


def test_correction_stays_inside_the_propagated_frames(tmp_path, test_model):
    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=N, height=96, width=128)
    session = AnnotationSession(open_source(make_blob_video(N)), store, prefetch=False)
    try:
        session.set_model(test_model)
        session.add_object("disc")
        session.add_click(0, 30, 40, obj_id=1)
        list(session.propagate_iter("forward", 0, 5))
        states = store.states(1)
        assert (states[6:] == STATE_NOT_RUN).all() and (states[:6] != STATE_NOT_RUN).all()
        # the keyframe rule alone would give 1-11; the propagated frames end at 5
        assert session.correction_segment(1, 3) == (1, 5)
        assert correction_segment(store, 1, 3) == (1, 5)  # the store-level rule is the same
        correction = session.correct(3, [(40.0, 42.0, 1)], obj_id=1)
        assert (correction.start, correction.end) == (1, 5)
        assert (store.states(1)[6:] == STATE_NOT_RUN).all()  # never written
        assert np.isnan(store.table(1)[6:, COL["run"]]).all()
        assert not store.masks(1, 6, N).any()
        # the undo snapshot covers the same frames
        assert session.undo_segment(1) == (1, 5)
    finally:
        session.close()
