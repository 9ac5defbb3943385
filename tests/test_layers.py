"""napari prompt layers <-> prompts <-> project, without a viewer (session.layers)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_sam2_track.errors import PromptError
from napari_sam2_track.samples import first_frame_prompts, make_cells
from napari_sam2_track.schema import Category, Schema
from napari_sam2_track.session import AnnotationSession
from napari_sam2_track.session.layers import (
    apply_boxes,
    apply_clicks,
    box_from_rectangle,
    boxes_from_shapes,
    clicks_from_points,
    points_from_clicks,
    rectangle_from_box,
    rows_of,
    schema_for_layer,
    shapes_from_boxes,
)

coord = st.floats(0, 500, allow_nan=False).map(lambda v: round(v, 2))
click = st.tuples(coord, coord, st.integers(0, 1))
clicks_map = st.dictionaries(
    st.tuples(st.integers(1, 9), st.integers(0, 50)), st.lists(click, min_size=1, max_size=4), max_size=6
)


@given(clicks_map)
@settings(max_examples=60, deadline=None)
def test_clicks_round_trip_through_points(clicks):
    points = points_from_clicks(clicks)
    assert points.data.shape == (sum(len(v) for v in clicks.values()), 3)
    back = clicks_from_points(points.data, points.positive, points.objects)
    assert back == {k: [(float(x), float(y), int(v)) for x, y, v in cs] for k, cs in clicks.items()}


def test_points_rows_are_t_y_x_and_order_is_kept():
    points = points_from_clicks({(2, 5): [(10.0, 20.0, 1), (3.0, 4.0, 0)], (1, 7): [(1.0, 2.0, 1)]})
    assert points.data.tolist() == [[7, 2, 1], [5, 20, 10], [5, 4, 3]]
    assert points.positive == [True, True, False] and points.objects == [1, 2, 2]
    assert points.features == {"positive": [True, True, False], "object": [1, 2, 2]}
    # fractional frame coordinates (napari's slicing) round to the frame
    assert clicks_from_points([[4.9, 1, 2]], [True], [3]) == {(3, 5): [(2.0, 1.0, 1)]}


box = st.tuples(coord, coord, st.floats(1, 100), st.floats(1, 100)).map(
    lambda b: (b[0], b[1], round(b[0] + b[2], 2), round(b[1] + b[3], 2))
)


@given(st.dictionaries(st.tuples(st.integers(1, 9), st.integers(0, 50)), box, max_size=6))
@settings(max_examples=60, deadline=None)
def test_boxes_round_trip_through_shapes(boxes):
    shapes = shapes_from_boxes(boxes)
    back, superseded = boxes_from_shapes(shapes.rectangles, shapes.objects)
    assert back == {k: tuple(float(v) for v in b) for k, b in boxes.items()} and superseded == []


def test_rectangle_vertex_order_does_not_matter():
    rect = rectangle_from_box(3, (10, 20, 30, 50))
    assert rect.tolist()[0] == [3, 20, 10]
    assert box_from_rectangle(rect[::-1]) == (3, (10.0, 20.0, 30.0, 50.0))
    assert box_from_rectangle(np.roll(rect, 2, axis=0)) == (3, (10.0, 20.0, 30.0, 50.0))


def test_one_box_per_object_and_frame():
    rects = [rectangle_from_box(2, (0, 0, 5, 5)), rectangle_from_box(2, (1, 1, 9, 9)),
             rectangle_from_box(3, (0, 0, 5, 5)), rectangle_from_box(2, (2, 2, 4, 4))]
    boxes, superseded = boxes_from_shapes(rects, [1, 2, 1, 1])
    assert boxes == {(1, 2): (2.0, 2.0, 4.0, 4.0), (2, 2): (1.0, 1.0, 9.0, 9.0), (1, 3): (0.0, 0.0, 5.0, 5.0)}
    assert superseded == [0]
    assert rows_of([2, 2, 3, 2], [1, 2, 1, 1], 1) == [0, 2, 3]
    assert rows_of([2, 2, 3, 2], [1, 2, 1, 1], 1, frame=2) == [0, 3]


def test_schema_for_layer():
    default = Schema.default()
    own = Schema(categories=[Category(name="nucleus", color="#00ff00")])
    assert schema_for_layer(default, {"schema": own.model_dump()}).category_names() == ["nucleus"]
    chosen = Schema(categories=[Category(name="tool", color="#ff0000")])
    assert schema_for_layer(chosen, {"schema": own.model_dump()}) is chosen
    assert schema_for_layer(default, None) is default


# ------------------------------------------------------------ layer <-> session <-> store
@pytest.fixture(scope="module")
def cells():
    return make_cells(n_frames=6, size=(96, 96))


def test_layer_to_store_and_back(cells, tmp_path, test_model):
    """Clicks and boxes as a layer holds them -> session -> project -> a new session -> layer."""
    session = AnnotationSession.open(cells.frames, tmp_path / "p.zarr", schema=cells.schema(), model=test_model)
    session.add_object("a", obj_id=1)
    session.add_object("b", obj_id=2)
    (x1, y1), (x2, y2) = first_frame_prompts(cells)[1], first_frame_prompts(cells)[3]
    layer_clicks = {(1, 0): [(x1, y1, 1), (2.0, 2.0, 0)], (2, 4): [(x2, y2, 1)]}
    points = points_from_clicks(layer_clicks)
    edit = apply_clicks(session, clicks_from_points(points.data, points.positive, points.objects))
    assert edit.requested == [(1, 0), (2, 4)] and not edit.rejected
    rects = [rectangle_from_box(1, (10, 10, 40, 40)), rectangle_from_box(1, (20, 20, 60, 60))]
    edit = apply_boxes(session, rects, [2, 2])
    assert edit.requested == [(2, 1)] and edit.remove_rows == [0]
    assert session.wait_idle(120)
    # the project holds what the layers showed
    stored = {(p.object, p.frame): p for p in session.store.prompts.prompts}
    assert set(stored) == {(1, 0), (2, 4), (2, 1)}
    assert stored[(1, 0)].points == [(x1, y1), (2.0, 2.0)] and stored[(1, 0)].labels == [1, 0]
    assert stored[(2, 1)].box == (20.0, 20.0, 60.0, 60.0) and not stored[(2, 1)].points
    for obj, frame in stored:
        assert (session.store.labels[frame] == obj).any() or session.store.mask(obj, frame).any()
    # applying the same layer again asks nothing
    assert apply_clicks(session, layer_clicks).requested == []
    session.close()

    again = AnnotationSession.open(cells.frames, tmp_path / "p.zarr")
    prompts = again.prompts()
    restored = {k: list(p.clicks) for k, p in prompts.items() if p.clicks}
    back = points_from_clicks(restored)
    assert np.array_equal(back.data, points.data) and back.positive == points.positive
    assert back.objects == points.objects
    shapes = shapes_from_boxes({k: p.box for k, p in prompts.items() if p.box is not None})
    assert len(shapes.rectangles) == 1 and np.array_equal(shapes.rectangles[0], rects[1])
    again.close()


def test_refused_layer_edits_are_reported(cells, tmp_path, test_model):
    session = AnnotationSession.open(cells.frames, tmp_path / "p.zarr", model=test_model)
    edit = apply_clicks(session, {(1, 0): [(5.0, 5.0, 1)]})
    assert edit.requested == [] and "no object yet" in str(edit.rejected[0][1])
    session.add_object("a")
    edit = apply_clicks(session, {(1, 0): [(500.0, 5.0, 1)], (7, 0): [(5.0, 5.0, 1)]})
    assert [k for k, _ in edit.rejected] == [(1, 0), (7, 0)]
    assert isinstance(edit.rejected[0][1], PromptError) and "outside" in str(edit.rejected[0][1])
    assert "does not exist" in str(edit.rejected[1][1])
    edit = apply_boxes(session, [rectangle_from_box(0, (-20, 10, 30, 30))], [1])
    assert [k for k, _ in edit.rejected] == [(1, 0)] and edit.remove_rows == [0]
    assert session.prompts() == {} and session.store.prompts.prompts == []
    session.close()
