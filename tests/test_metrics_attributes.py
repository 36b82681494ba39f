"""The rule-based attribute checks on hand-made images and masks whose answer is known, and the metric."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics import FidelityInputs, GeneratedItem, RealItem, WeightsResolver, compute_fidelity
from benchmark.metrics.attribute_checks import (
    ObjectFrame,
    SizeReference,
    check_caption,
    check_colours,
    check_count,
    check_position,
    check_size,
    components,
    object_mask,
    stated_attributes,
)
from benchmark.metrics.attribute_faithfulness import METRIC_ID, NOT_APPLICABLE, summarise
from mvtec_caption.attributes import VOCABULARY_VERSION, derive_sizes

SIZE = 64


def _box(top: int, left: int, height: int, width: int, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + height, left:left + width] = True
    return mask


def _object_scene() -> np.ndarray:
    """A light object on a dark background, filling rows 8-56 and columns 16-48 (centre of mass at 32, 32)."""
    image = np.full((SIZE, SIZE, 3), 20, np.uint8)
    image[8:56, 16:48] = 200
    return image


# ---- what a caption states ----------------------------------------------------------------------------
@pytest.mark.parametrize(("caption", "sizes"), [
    ("The bottle has a large broken.", ["large"]),
    ("The pill has dense red small spots.", ["small"]),
    ("A big washer mixed in the screw bag.", ["large"]),
    ("The screw bag includes a pair of very short screws.", ["short"]),
    ("The meal box mixed in thin sticks.", ["thin"]),
    ("The bag has a screw instead of the correct long screw.", []),  # reference clause: the expected state
    ("The bottle has contamination with white filler.", []),
])
def test_size_words(caption: str, sizes: list[str]) -> None:
    assert derive_sizes(caption) == sizes


def test_stated_attributes_per_kind() -> None:
    stated = stated_attributes("Two small red spots on the top and bottom labels.")
    assert stated == {"position": ["top", "bottom"], "size": ["small"], "count": ["2"], "colour": ["red"]}
    assert stated_attributes("The bottle has contamination.") == {"position": [], "size": [], "count": [], "colour": []}
    assert VOCABULARY_VERSION == 2


# ---- components and the object ---------------------------------------------------------------------
def test_components_ignore_specks_and_use_8_connectivity() -> None:
    mask = _box(4, 4, 10, 10) | _box(30, 30, 10, 10) | _box(60, 60, 1, 1)  # a speck under 5 % of the largest
    mask[14, 14] = True  # diagonal neighbour of the first box: same component under 8-connectivity
    assert len(components(mask)) == 2
    assert components(np.zeros((8, 8), bool)) == []


def test_object_is_found_on_a_plain_background_and_textures_use_the_whole_image() -> None:
    found = object_mask(_object_scene())
    assert found[8:56, 16:48].all() and not found[:, :10].any()
    texture = np.random.default_rng(0).integers(100, 110, (SIZE, SIZE, 3), dtype=np.uint8)
    assert object_mask(texture).all()


# ---- position -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("word", "mask", "expected"), [
    ("top", _box(12, 28, 6, 8), True), ("bottom", _box(12, 28, 6, 8), False),
    ("bottom", _box(46, 28, 6, 8), True), ("upper", _box(46, 28, 6, 8), False),
    ("left", _box(28, 18, 8, 6), True), ("right", _box(28, 18, 8, 6), False),
    ("center", _box(29, 29, 6, 6), True), ("center", _box(10, 18, 6, 6), False),
    ("corner", _box(9, 17, 5, 5), True), ("corner", _box(9, 29, 5, 5), False),
    ("edge", _box(28, 17, 6, 4), True), ("edge", _box(29, 29, 6, 6), False),
])
def test_position_in_the_objects_frame(word: str, mask: np.ndarray, expected: bool) -> None:
    frame = ObjectFrame.of(object_mask(_object_scene()))
    assert frame.centre == pytest.approx((31.5, 31.5))
    assert check_position(word, mask, frame).satisfied is expected


def test_positions_are_satisfied_by_any_component_and_some_words_are_not_checkable() -> None:
    frame = ObjectFrame.of(object_mask(_object_scene()))
    both = _box(12, 28, 6, 8) | _box(46, 28, 6, 8)  # one label above, one below the centre of mass
    assert check_position("top", both, frame).satisfied and check_position("bottom", both, frame).satisfied
    only_top = _box(12, 28, 6, 8)
    checks = check_caption("Top and bottom labels swapped.", _object_scene(), only_top, _object_scene(), SizeReference({}, 0))
    assert [(c.word, c.satisfied) for c in checks] == [("top", True), ("bottom", False)]
    assert check_position("front", only_top, frame).satisfied is None
    assert check_position("top", np.zeros((SIZE, SIZE), bool), frame).satisfied is False


def test_position_uses_the_centre_of_mass_not_the_bounding_box() -> None:
    """A bottle: narrow neck on top of a wide body. Its upper label sits below the box's middle row but above the bulk."""
    image = np.full((SIZE, SIZE, 3), 10, np.uint8)
    image[4:24, 28:36] = 180  # neck
    image[24:60, 14:50] = 180  # body
    frame = ObjectFrame.of(object_mask(image))
    upper_label = _box(30, 20, 4, 24)  # rows 30-33: below the box middle (32) ...
    assert (30 + 34) / 2 < frame.centre[0] + 2  # ... and above the centre of mass
    assert check_position("top", upper_label, frame).satisfied is True


# ---- size -----------------------------------------------------------------------------------------------
def test_size_relative_to_the_categorys_real_defects() -> None:
    reference = SizeReference.from_masks([_box(0, 0, 8, 8), _box(0, 0, 10, 10), _box(0, 0, 12, 12)])
    assert reference.n == 3 and reference.medians["area"] == pytest.approx(100 / SIZE**2)
    large, small = _box(10, 10, 20, 20), _box(10, 10, 4, 4)
    assert check_size("large", large, reference).satisfied and not check_size("large", small, reference).satisfied
    assert check_size("small", small, reference).satisfied and not check_size("small", large, reference).satisfied
    long_thin = _box(30, 2, 3, 60)
    assert check_size("long", long_thin, reference).satisfied and not check_size("short", long_thin, reference).satisfied
    assert check_size("thin", long_thin, reference).satisfied and not check_size("thick", long_thin, reference).satisfied
    assert not check_size("small", np.zeros((SIZE, SIZE), bool), reference).satisfied  # no defect is no small defect
    assert check_size("large", large, SizeReference({}, 0)).satisfied is None


# ---- count ---------------------------------------------------------------------------------------------
def test_count_of_components() -> None:
    two = _box(4, 4, 10, 10) | _box(40, 40, 10, 10)
    assert check_count("2", two).satisfied and not check_count("3", two).satisfied
    assert check_count("1+2", two).satisfied  # "two compartments each have one ...": one of the numbers
    assert check_count("1+1", two).satisfied  # their sum
    assert not check_count("1", two).satisfied
    assert check_count("0", two).satisfied is None


# ---- colour --------------------------------------------------------------------------------------------
def _painted(normal: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int], cover: float = 1.0) -> np.ndarray:
    """The normal image with a share ``cover`` of the mask's pixels painted (a partial cover, like real defects)."""
    image = normal.copy()
    rows, cols = np.nonzero(mask)
    keep = np.random.default_rng(0).random(len(rows)) < cover
    image[rows[keep], cols[keep]] = rgb
    return image


NORMAL_GREY = np.full((SIZE, SIZE, 3), 128, np.uint8)
NORMAL_DARK = np.full((SIZE, SIZE, 3), 35, np.uint8)
REGION = _box(20, 20, 16, 16)


@pytest.mark.parametrize(("normal", "rgb", "cover", "named", "expected"), [
    (NORMAL_GREY, (200, 30, 30), 1.0, ["red"], [True]),
    (NORMAL_GREY, (200, 30, 30), 1.0, ["blue"], [False]),
    (NORMAL_GREY, (200, 30, 30), 1.0, ["green"], [False]),
    (NORMAL_GREY, (40, 60, 190), 0.4, ["blue"], [True]),  # a partial cover still points to blue
    (NORMAL_GREY, (40, 60, 190), 0.4, ["yellow"], [False]),
    (NORMAL_GREY, (245, 245, 245), 1.0, ["white"], [True]),
    (NORMAL_GREY, (245, 245, 245), 1.0, ["black"], [False]),
    (NORMAL_GREY, (15, 15, 15), 1.0, ["black"], [True]),
    (NORMAL_GREY, (120, 80, 50), 1.0, ["brown"], [True]),
    (NORMAL_DARK, (120, 80, 50), 0.5, ["brown"], [True]),
    (NORMAL_GREY, (60, 60, 60), 1.0, ["dark"], [True]),
    (NORMAL_GREY, (200, 200, 200), 1.0, ["dark"], [False]),
    (NORMAL_GREY, (200, 30, 30), 1.0, ["transparent"], [None]),
])
def test_colour_of_the_change(normal: np.ndarray, rgb: tuple[int, int, int], cover: float, named: list[str],
                              expected: list[bool | None]) -> None:
    checks = check_colours(named, _painted(normal, REGION, rgb, cover), REGION, normal)
    assert [c.satisfied for c in checks] == expected, [c.detail for c in checks]


def test_an_unchanged_region_never_has_the_named_colour() -> None:
    red_normal = np.full((SIZE, SIZE, 3), (200, 30, 30), np.uint8)
    assert [c.satisfied for c in check_colours(["red"], red_normal, REGION, red_normal)] == [False]


def test_two_named_colours_must_both_be_among_the_best_aligned() -> None:
    half_red_half_black = _painted(_painted(NORMAL_GREY, _box(20, 20, 16, 8), (210, 20, 20)), _box(20, 28, 16, 8), (5, 5, 5))
    checks = check_colours(["red", "black"], half_red_half_black, REGION, NORMAL_GREY)
    assert [c.satisfied for c in checks] == [True, True]
    checks = check_colours(["green", "black"], half_red_half_black, REGION, NORMAL_GREY)
    assert [c.satisfied for c in checks] == [False, True]


def test_colour_needs_a_normal_image() -> None:
    assert check_colours(["red"], NORMAL_GREY, REGION, None)[0].satisfied is None


# ---- the metric -----------------------------------------------------------------------------------------
def _generated(caption: str, image: np.ndarray, mask: np.ndarray, normal: np.ndarray | None = NORMAL_GREY) -> GeneratedItem:
    return GeneratedItem(image=image, mask=mask, caption=caption, normal=normal)


def _inputs(generated: dict[str, list[GeneratedItem]]) -> FidelityInputs:
    real = [RealItem(image=NORMAL_GREY, mask=_box(0, 0, side, side), caption="") for side in (8, 10, 12)]
    return FidelityInputs(generated=generated, real_train={"stain": real}, real_test={}, image_size=SIZE)


def test_metric_shares_per_defect_type_and_kind(tmp_path) -> None:  # noqa: ANN001
    red = _painted(NORMAL_GREY, REGION, (200, 30, 30))
    inputs = _inputs({
        "stain": [_generated("A large red stain.", red, REGION),  # large: yes, red: yes
                  _generated("A small blue stain.", red, REGION)],  # small: no, blue: no
        "crack": [_generated("A crack.", red, REGION)],  # states nothing checkable
    })
    [result] = compute_fidelity([METRIC_ID], inputs, WeightsResolver(allow_download=False), progress=False,
                                cache_dir=tmp_path)
    assert result.computed and result.comparable and result.id == METRIC_ID
    assert result.per_defect == {"crack": None, "stain": 0.5} and result.value == 0.5
    assert result.settings["per_kind"] == {"position": None, "size": 0.5, "count": None, "colour": 0.5}
    assert result.settings["counts"]["colour"] == {"checked": 2, "satisfied": 1, "not_checkable": 0}
    assert result.settings["vocabulary_version"] == VOCABULARY_VERSION and result.settings["rules"]["check_rules_version"] == 1
    [rules] = result.weights
    assert rules.name.startswith("attribute-rules-v1") and len(rules.sha256) == 64


def test_metric_is_not_applicable_without_stated_attributes(tmp_path) -> None:  # noqa: ANN001
    inputs = _inputs({"crack": [_generated("A crack on the surface.", NORMAL_GREY, REGION)]})
    [result] = compute_fidelity([METRIC_ID], inputs, WeightsResolver(allow_download=False), progress=False,
                                cache_dir=tmp_path)
    assert not result.computed and result.value is None and NOT_APPLICABLE in result.reason
    assert result.settings["counts"]["position"] == {"checked": 0, "satisfied": 0, "not_checkable": 1}


def test_summary_keeps_not_checkable_apart() -> None:
    from benchmark.metrics.attribute_checks import AttributeCheck

    summary = summarise({"a": [AttributeCheck("colour", "red", True, ""), AttributeCheck("colour", "transparent", None, "")]})
    assert summary["per_defect"] == {"a": 1.0}
    assert summary["counts"]["colour"] == {"checked": 1, "satisfied": 1, "not_checkable": 1}
