"""Tests for the annotation schema model."""

from __future__ import annotations

import colorsys

import pytest
from pydantic import ValidationError

from napari_sam2_track.errors import SchemaError
from napari_sam2_track.schema import (
    AttributeSpec,
    Category,
    Schema,
    label_colors,
    object_color,
)


def _rich_schema() -> Schema:
    return Schema(
        name="surgery",
        categories=[
            Category(name="grasper", color="#1F77B4", description="left hand"),
            Category(name=" scissors ", color="#ff7f0e"),
        ],
        attributes=[
            AttributeSpec(name="truncated", kind="bool", default=False),
            AttributeSpec(name="side", kind="choice", choices=["left", "right"], default="left"),
            AttributeSpec(name="score", kind="float", default=1),
        ],
        reentry_identity="new_linked_id",
        min_visible_pixels=20,
        edge_policy="flag",
        border_margin_px=3,
    )


def _hue(hex_color: str) -> float:
    r, g, b = (int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hls(r, g, b)[0]


def test_defaults():
    s = Schema.default()
    assert s.version == 1
    assert s.category_names() == ["object"]
    assert s.reentry_identity == "same_id"
    assert s.edge_policy == "keep"
    assert "border" in s.out_of_frame_definition
    assert s.occluded_definition


def test_normalisation_and_lookup():
    s = _rich_schema()
    assert s.category_names() == ["grasper", "scissors"]
    assert s.color_of("grasper") == "#1f77b4"
    assert s.category("grasper").rgba() == pytest.approx((0x1F / 255, 0x77 / 255, 0xB4 / 255, 1.0))
    assert s.attributes[2].default == 1.0
    with pytest.raises(KeyError, match="grasper, scissors"):
        s.category("needle")


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_load_round_trip(tmp_path, suffix):
    s = _rich_schema()
    path = s.save(tmp_path / f"schema{suffix}")
    assert Schema.load(path) == s


def test_text_round_trip():
    s = _rich_schema()
    assert Schema.from_text(s.to_yaml(), "yaml") == s
    assert Schema.from_text(s.to_json(), "json") == s
    assert s.to_yaml().startswith("version: 1")


def test_extra_keys_rejected():
    with pytest.raises(ValidationError):
        Schema(colour_map="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Category(name="a", colour="#000000")  # type: ignore[call-arg]
    with pytest.raises(SchemaError, match="foo: Extra inputs"):
        Schema.from_text("version: 1\nfoo: 2\n", "yaml")


def test_duplicate_names_rejected():
    with pytest.raises(ValidationError, match="duplicate category names: a"):
        Schema(categories=[Category(name="a"), Category(name=" a")])
    with pytest.raises(ValidationError, match="duplicate attribute"):
        Schema(
            attributes=[AttributeSpec(name="x", kind="int"), AttributeSpec(name="x", kind="bool")]
        )


def test_empty_categories_rejected():
    with pytest.raises(ValidationError):
        Schema(categories=[])
    with pytest.raises(ValidationError):
        Category(name="   ")


@pytest.mark.parametrize("bad", ["red", "#12345", "#1234567", "12345g", "#gg0000", ""])
def test_bad_colour_rejected(bad):
    with pytest.raises(ValidationError, match="hex colour"):
        Category(name="a", color=bad)


def test_other_field_constraints():
    with pytest.raises(ValidationError):
        Schema(min_visible_pixels=-1)
    with pytest.raises(ValidationError):
        Schema(edge_policy="crop")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Schema(version=2)  # type: ignore[arg-type]


def test_choice_attributes():
    with pytest.raises(ValidationError, match="non-empty"):
        AttributeSpec(name="side", kind="choice")
    with pytest.raises(ValidationError, match="not one of"):
        AttributeSpec(name="side", kind="choice", choices=["l", "r"], default="x")
    with pytest.raises(ValidationError, match="only allowed"):
        AttributeSpec(name="n", kind="int", choices=["1"])
    spec = AttributeSpec(name="side", kind="choice", choices=["l", "r"])
    assert spec.default is None
    assert spec.validate_value("r") == "r"
    with pytest.raises(ValueError, match="'side'.*'x' is not one of"):
        spec.validate_value("x")


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [("bool", True, 1), ("int", 3, 2.5), ("int", -1, True), ("float", 2, "2"), ("text", "hi", 3)],
)
def test_validate_value_kinds(kind, good, bad):
    spec = AttributeSpec(name="a", kind=kind)
    assert spec.validate_value(good) == good
    with pytest.raises(ValueError, match="attribute 'a'"):
        spec.validate_value(bad)
    with pytest.raises(ValidationError):
        AttributeSpec(name="a", kind=kind, default=bad)


def _assert_one_line(err: SchemaError, filename: str) -> str:
    msg = str(err)
    assert "\n" not in msg
    assert filename in msg
    assert "fix the file or create a new schema" in msg
    return msg


def test_load_missing_file(tmp_path):
    with pytest.raises(SchemaError) as exc:
        Schema.load(tmp_path / "nope.yaml")
    assert "not found" in _assert_one_line(exc.value, "nope.yaml")


def test_load_bad_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("categories: [\n  - name: a\n  color: {\n")
    with pytest.raises(SchemaError) as exc:
        Schema.load(path)
    assert "YAML" in _assert_one_line(exc.value, "broken.yaml")


def test_load_bad_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{'version': 1,}")
    with pytest.raises(SchemaError) as exc:
        Schema.load(path)
    _assert_one_line(exc.value, "broken.json")


def test_load_validation_error_names_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "categories:\n  - name: a\n    color: '#00ff00'\n  - name: b\n    color: blue\n"
    )
    with pytest.raises(SchemaError) as exc:
        Schema.load(path)
    msg = _assert_one_line(exc.value, "bad.yaml")
    assert "categories.1.color" in msg
    assert "'blue'" in msg


def test_load_non_mapping_and_suffix(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(SchemaError) as exc:
        Schema.load(path)
    _assert_one_line(exc.value, "list.yaml")
    other = tmp_path / "schema.txt"
    other.write_text("version: 1\n")
    with pytest.raises(SchemaError) as exc:
        Schema.load(other)
    _assert_one_line(exc.value, "schema.txt")


def test_empty_file_gives_default(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert Schema.load(path) == Schema.default()


def test_label_colors():
    s = _rich_schema()
    assert label_colors({1: "grasper", 2: "scissors", 5: "grasper"}, s) == {
        1: "#1f77b4",
        2: "#ff7f0e",
        5: "#1f77b4",
    }
    with pytest.raises(KeyError):
        label_colors({1: "needle"}, s)


def test_object_color_varies_per_id_but_keeps_hue():
    s = _rich_schema()
    base = s.color_of("grasper")
    colors = [object_color(i, "grasper", s) for i in range(1, 21)]
    assert colors == [object_color(i, "grasper", s) for i in range(1, 21)]  # deterministic
    assert len(set(colors)) == len(colors)
    assert object_color(1, "grasper", s) != object_color(2, "grasper", s)
    for c in colors:
        assert c.startswith("#") and len(c) == 7
        dh = abs(_hue(c) - _hue(base))
        assert min(dh, 1 - dh) < 0.03
    # different categories stay apart
    assert abs(_hue(object_color(1, "scissors", s)) - _hue(base)) > 0.2


def test_hostile_schema_text_gives_one_line(tmp_path):
    """Python tags are refused (never run); nesting, huge numbers and long lists stay one line."""
    witness = tmp_path / "ran"
    cases = {
        "tag.yaml": (f"!!python/object/apply:os.system ['touch {witness}']\n", "is refused"),
        "deep.yaml": ("a: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested too deeply"),
        "deep.json": ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        "huge.yaml": ("min_visible_pixels: " + "9" * 5000 + "\n", "more digits"),
        "dupes.yaml": ("categories:\n" + "".join(f"  - name: c{i}\n  - name: c{i}\n" for i in range(500)),
                       "... and 490 more"),
    }
    for name, (text, match) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(SchemaError, match=match) as info:
            Schema.load(path)
        assert "\n" not in str(info.value) and len(str(info.value)) < 400, name
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SchemaError, match="is not UTF-8 text"):
        Schema.load(bad)
    assert not witness.exists()
