"""Label fidelity and colour fidelity on hand-made images with known answers, and the guards built on them."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics import DIAGNOSTIC_METRICS, FidelityInputs, GeneratedItem, compute_fidelity
from synthesis.colour import ColourProfile, added_chroma, chroma, colour_profile, conform, to_grey
from synthesis.fidelity import MIN_LEVELS, VISIBLE_FLOOR, label_fidelity, local_variation, visible_change

SIZE = 48


def flat(value: float = 100.0) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), value, dtype=np.uint8)


def square(top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


# ---- label fidelity ------------------------------------------------------------------------------
def test_visible_share_and_spill_on_a_flat_surface() -> None:
    source = flat()
    image = source.copy()
    image[10:20, 10:20] = 140  # a 10x10 defect ...
    mask = square(10, 10, 10) | square(10, 20, 10)  # ... labelled by a mask twice its size
    image[40, 40:45] = 60  # five changed pixels outside the mask
    result = label_fidelity(image, source, mask)
    assert result.visible_share == pytest.approx(100 / 200)
    assert result.spill_share == pytest.approx(5 / 105)
    assert result.mask_pixels == 200 and result.changed_pixels == 105
    assert not result.below_floor


def test_changes_below_the_minimum_level_do_not_count() -> None:
    source = flat()
    image = source.copy()
    image[5:15, 5:15] += np.uint8(MIN_LEVELS)  # exactly the minimum: not more than it
    result = label_fidelity(image, source, square(5, 5, 10))
    assert result.visible_share == 0.0 and result.changed_pixels == 0 and result.below_floor


def test_threshold_follows_the_local_texture() -> None:
    rng = np.random.default_rng(0)
    texture = np.clip(120 + rng.normal(0, 10, (SIZE, SIZE)), 0, 255)
    source = np.repeat(texture[..., None], 3, axis=-1).astype(np.uint8)
    variation = local_variation(source)
    assert 7 < float(np.median(variation)) < 13  # the robust local sd recovers the texture's sd of 10
    mask = square(12, 12, 24)
    faint = source.astype(np.int16)
    faint[mask] += 12  # about one texture amplitude: invisible on this surface
    strong = source.astype(np.int16)
    strong[mask] -= 60  # six amplitudes: visible everywhere
    faint_share = label_fidelity(np.clip(faint, 0, 255).astype(np.uint8), source, mask).visible_share
    strong_share = label_fidelity(np.clip(strong, 0, 255).astype(np.uint8), source, mask).visible_share
    assert faint_share < 0.05 and strong_share > 0.95
    # the same faint change on a flat surface is visible: the threshold is relative to the source
    assert label_fidelity(flat() + 12 * mask[..., None].astype(np.uint8), flat(), mask).visible_share == 1.0


def test_an_object_border_does_not_hide_a_broken_edge() -> None:
    source = flat(40)
    source[:, SIZE // 2:] = 170  # a bright object's straight border down the middle
    broken = source.copy()
    chunk = square(16, SIZE // 2, 12)
    broken[chunk] = 40  # a piece of the object gone: the table shows
    assert label_fidelity(broken, source, chunk).visible_share > 0.9


def test_colour_changes_count_as_visible() -> None:
    source = flat()
    image = source.copy()
    image[20:30, 20:30, 0] = 160  # red speckles of the same brightness would still be seen
    assert visible_change(image, source)[20:30, 20:30].all()


# ---- colour ---------------------------------------------------------------------------------------
def grey_images(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [np.repeat(rng.integers(0, 256, (SIZE, SIZE, 1), dtype=np.uint8), 3, axis=-1) for _ in range(n)]


def test_grey_categories_are_detected() -> None:
    profile = colour_profile(grey_images())
    assert profile.grey and profile.chroma_quantile == 0.0 and profile.chroma_limit == 8.0
    tinted = [np.clip(image.astype(np.int16) + [0, 0, 12], 0, 255).astype(np.uint8) for image in grey_images()]
    tinted_profile = colour_profile(tinted)
    assert not tinted_profile.grey and tinted_profile.chroma_max == 12.0 and tinted_profile.chroma_limit == 20.0


def test_conform_makes_grey_categories_grey_inside_the_mask_only() -> None:
    profile = colour_profile(grey_images())
    source = grey_images(1)[0]
    image = source.copy()
    image[5:15, 5:15] = (200, 30, 30)
    image[30:35, 30:35] = (0, 255, 0)  # outside the mask: never touched
    out = conform(image, source, square(5, 5, 10), profile)
    assert (chroma(out)[5:15, 5:15] == 0).all()
    assert out[7, 7, 0] == round(0.299 * 200 + 0.587 * 30 + 0.114 * 30)  # the luminance is kept
    assert (out[30:35, 30:35] == (0, 255, 0)).all()
    assert (conform(source, source, np.ones((SIZE, SIZE), bool), profile) == source).all()  # grey stays as it is
    assert (to_grey(source) == source).all()


def test_conform_limits_chroma_on_colour_categories() -> None:
    profile = ColourProfile(grey=False, chroma_quantile=12.0, chroma_max=20.0, chroma_limit=28.0, mean_rgb=[100, 100, 100],
                            images=1)
    source = flat()
    source[0:5, 0:5] = (150, 100, 100)  # a source pixel more colourful than the limit keeps its own chroma
    image = source.copy()
    image[20:30, 20:30] = (180, 100, 100)  # chroma 80: pulled back to 28, hue kept
    image[40:44, 40:44] = (110, 100, 95)  # chroma 15: inside the category's colours, untouched
    mask = np.ones((SIZE, SIZE), dtype=bool)
    out = conform(image, source, mask, profile)
    assert abs(float(chroma(out)[25, 25]) - 28.0) <= 1.0 and out[25, 25, 0] > out[25, 25, 1]
    assert (out[40:44, 40:44] == image[40:44, 40:44]).all() and (out[0:5, 0:5] == source[0:5, 0:5]).all()
    assert added_chroma(out, source)[25, 25] == pytest.approx(chroma(out)[25, 25])


# ---- the registered metrics ----------------------------------------------------------------------------
def test_diagnostic_metrics_on_known_images() -> None:
    source = flat()
    visible = source.copy()
    visible[10:20, 10:20] = 160  # fully visible, grey
    speckled = source.copy()
    speckled[10:20, 10:20] = (100, 100, 100)
    speckled[10:11, 10:20] = (180, 100, 100)  # 10 of 100 mask pixels gain 80 levels of chroma
    mask = square(10, 10, 10)
    inputs = FidelityInputs(generated={
        "a": [GeneratedItem(visible, mask, "a", normal=source), GeneratedItem(source.copy(), mask, "a", normal=source)],
        "b": [GeneratedItem(speckled, mask, "b", normal=source)],
    }, real_train={}, image_size=SIZE)
    results = {r.id: r for r in compute_fidelity(list(DIAGNOSTIC_METRICS), inputs, progress=False)}
    assert set(results) == set(DIAGNOSTIC_METRICS)
    assert results["label-fidelity"].per_defect == {"a": pytest.approx(0.5), "b": pytest.approx(0.1)}
    assert VISIBLE_FLOOR > 0.1
    assert results["label-fidelity-below-floor"].per_defect == {"a": 0.5, "b": 1.0}
    assert results["label-spill"].value == 0.0
    assert results["colour-added-share"].per_defect == {"a": 0.0, "b": 1.0}
    assert results["colour-added"].per_defect["b"] == pytest.approx(80.0)
    assert not results["label-fidelity"].comparable and "diagnostic" in results["label-fidelity"].reason
    assert results["label-fidelity"].higher_is_better and not results["label-spill"].higher_is_better


def test_diagnostics_say_why_without_source_images() -> None:
    item = GeneratedItem(flat(), square(0, 0, 4), "a")
    inputs = FidelityInputs(generated={"a": [item]}, real_train={}, image_size=SIZE)
    result = compute_fidelity(["label-fidelity"], inputs, progress=False)[0]
    assert not result.computed and "no normal source" in result.reason



def test_visible_change_on_the_changed_region_equals_the_whole_image_computation():
    """visible_change runs the median filters only around the pixels that changed by more than MIN_LEVELS:
    the same answer as the threshold computed on the whole image, changes at the border included."""
    from synthesis import fidelity

    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(12, 90, 2))
        source = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        image = source.copy()
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        image[y:y + int(rng.integers(1, 15)), x:x + int(rng.integers(1, 15))] = rng.integers(0, 256, 3)
        difference = np.abs(image.astype(np.float32) - source.astype(np.float32)).max(-1)
        whole = difference > np.maximum(fidelity.MIN_LEVELS, fidelity.K * fidelity.local_variation(source))
        assert np.array_equal(fidelity.visible_change(image, source), whole)
    assert not fidelity.visible_change(source, source).any()
