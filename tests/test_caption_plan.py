"""Caption-planned masks, category geometry and captions chosen by the normal image (synthesis.plan 2).

Hand-made cases, checked with the benchmark's own attribute checks (the rules that score the
generated sets), so "the planner puts the mask in the upper left" means what the metric means.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmark.metrics.attribute_checks import ObjectFrame, SizeReference, check_caption, components, object_mask
from synthesis.caption_masks import ask_of, plan_mask, size_medians
from synthesis.contract import FewShotAnomaly, NormalImage, TrainSplit, canonical_hash
from synthesis.geometry import ALIGNED, FREE, UPRIGHT, alignment_shift, shift_mask
from synthesis.masks import augment_mask, estimate_foreground
from synthesis.plan import Planner, sample_seed

SIZE = 96
YY, XX = np.mgrid[0:SIZE, 0:SIZE]


def _disc_image(colour: tuple[int, int, int] = (170, 160, 175), centre: tuple[float, float] = (48, 48),
                radius: float = 34, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    inside = np.hypot(YY - centre[0], XX - centre[1]) < radius
    image = np.where(inside[..., None], np.array(colour, float), 30.0) + rng.normal(0, 3, (SIZE, SIZE, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _spot(cy: float, cx: float, r: float = 5.0) -> np.ndarray:
    return np.hypot(YY - cy, XX - cx) < r


NORMAL = _disc_image()
FOREGROUND = estimate_foreground(NORMAL)
TRAIN_MASKS = [_spot(40, 44), _spot(55, 50, 6), _spot(48, 36, 4)]
MEDIANS = size_medians(TRAIN_MASKS)
REFERENCE = SizeReference.from_masks(TRAIN_MASKS)
FRAME = ObjectFrame.of(object_mask(NORMAL))


def _checks(caption: str, seeds: range = range(12), mask: np.ndarray = TRAIN_MASKS[0]) -> list[bool]:
    """Every checkable attribute of ``caption`` on the planned masks of several seeds."""
    results = []
    for seed in seeds:
        planned, steps, record = plan_mask(mask, FOREGROUND, np.random.default_rng(seed), ask_of(caption), MEDIANS, FREE)
        assert planned.any() and record.mode == "caption" and steps.count(" at") == record.components
        results += [c.satisfied for c in check_caption(caption, NORMAL, planned, NORMAL, REFERENCE, FRAME)
                    if c.satisfied is not None]
    assert results, caption
    return results


@pytest.mark.parametrize("caption", [
    "A stain on the upper left of the disc.", "A stain on the lower right.", "A crack at the top.",
    "A crack at the bottom.", "A stain on the left side.", "A stain on the right.", "A dent in the center.",
    "A chip on the edge.", "A chip in the corner.", "A stain in the upper right corner.",
])
def test_place_words_put_the_mask_in_the_named_region(caption: str) -> None:
    assert all(_checks(caption)), caption


def test_place_words_that_exclude_each_other_get_one_component_each() -> None:
    caption = "The disc with missing top and bottom labels."
    assert all(_checks(caption))
    planned, _, record = plan_mask(TRAIN_MASKS[0], FOREGROUND, np.random.default_rng(0), ask_of(caption), MEDIANS, FREE)
    assert record.components == 2 and record.zones == ["top", "bottom"] and all(record.in_zone)
    assert len(components(planned)) == 2


@pytest.mark.parametrize("caption", ["A large stain.", "A small stain.", "A long crack.", "A short crack.",
                                     "A thin scratch.", "A thick scratch."])
def test_size_words_scale_against_the_training_median(caption: str) -> None:
    assert all(_checks(caption, mask=_spot(48, 48, 7) & (abs(YY - 48) < 3))), caption


@pytest.mark.parametrize(("caption", "count"), [("Two holes in the disc.", 2), ("There are three spots.", 3),
                                                 ("A single scratch.", 1)])
def test_count_words_set_the_number_of_components(caption: str, count: int) -> None:
    for seed in range(8):
        planned, _, record = plan_mask(TRAIN_MASKS[1], FOREGROUND, np.random.default_rng(seed), ask_of(caption), MEDIANS, FREE)
        assert record.components == count and len(components(planned)) == count


def test_count_and_place_together() -> None:
    assert all(_checks("Two small spots on the upper left."))


def test_no_attribute_plans_as_before() -> None:
    """A caption without place, size or count words: the version-1 augmentation, draw for draw."""
    anomaly = FewShotAnomaly("spot", "000", NORMAL, TRAIN_MASKS[0], "There is a stain on the disc.")
    train = TrainSplit("tiny", "discs", SIZE, (NormalImage("000", NORMAL),), (anomaly,), True, "tiny/96px")
    spec = Planner(train).plan("spot", 1, seed=5)[0]
    rng = np.random.default_rng(sample_seed(5, "spot", 0))
    rng.integers(1)  # the normal image's draw
    expected, steps = augment_mask(TRAIN_MASKS[0], FOREGROUND, rng)
    assert np.array_equal(spec.mask, expected) and spec.mask_origin == f"train:spot/000 {steps}"
    assert spec.plan.asked.empty and spec.plan.planned.mode == "free"


def test_upright_geometry_never_turns_a_mask() -> None:
    bar = (abs(YY - 48) < 2) & (abs(XX - 48) < 15)
    for seed in range(20):
        for caption in ("A scratch.", "A long scratch on the left."):
            planned, steps, _ = plan_mask(bar, FOREGROUND, np.random.default_rng(seed), ask_of(caption), MEDIANS, UPRIGHT)
            assert "rot" not in steps
            if caption == "A scratch.":
                _, steps = augment_mask(bar, FOREGROUND, np.random.default_rng(seed), flips=UPRIGHT.flips,
                                        quarter_turns=UPRIGHT.quarter_turns)
                assert "rot" not in steps


def _aligned_split(normal_shift: tuple[int, int]) -> TrainSplit:
    """An upright object with two 'labels'; the anomaly lacks its bottom label; the normal is moved."""
    def bottle(dy: int, dx: int, labels: tuple[bool, bool]) -> np.ndarray:
        image = np.full((SIZE, SIZE, 3), 25, np.uint8)
        image[10 + dy:88 + dy, 30 + dx:66 + dx] = (180, 150, 60)
        for present, (top, bottom) in zip(labels, ((22, 34), (60, 76))):
            if present:
                image[top + dy:bottom + dy, 33 + dx:63 + dx] = (230, 230, 230)
        return image

    mask = np.zeros((SIZE, SIZE), bool)
    mask[60:76, 33:63] = True
    anomaly = FewShotAnomaly("logical_anomalies", "000", bottle(0, 0, (True, False)), mask,
                             "Juice bottle with missing bottom label.")
    normal = NormalImage("000", bottle(*normal_shift, (True, True)))
    return TrainSplit("tiny", "juice_bottle", SIZE, (normal,), (anomaly,), True, "tiny/96px")


def test_aligned_geometry_keeps_the_named_part_on_that_part() -> None:
    train = _aligned_split((3, -5))
    assert alignment_shift(train.anomalies[0].image, train.normals[0].image) == (3, -5)
    spec = Planner(train).plan("logical_anomalies", 4, seed=0)[0]
    expected, _ = shift_mask(train.anomalies[0].mask, (3, -5))
    assert np.array_equal(spec.mask, expected)  # on this image's bottom label
    assert spec.plan.planned.mode == "aligned" and spec.plan.planned.shift == (3, -5)
    assert spec.plan.planned.zones == ["bottom"] and spec.plan.planned.in_zone == [True]
    assert "rot" not in spec.mask_origin and "flip" not in spec.mask_origin


def test_captions_agree_with_the_normal_image() -> None:
    """Anomalies of two variants (red and blue objects): a red normal image gets the red captions."""
    anomalies = []
    for i in range(8):
        colour, name = ((200, 40, 40), "Red") if i % 2 == 0 else ((40, 40, 200), "Blue")
        mask = _spot(40 + i, 44, 4)
        anomalies.append(FewShotAnomaly("stain", f"{i:03d}", _disc_image(colour, seed=i), mask,
                                        f"{name} disc with a stain."))
    normals = tuple(NormalImage(f"{i:03d}", _disc_image((195, 45, 40), seed=100 + i)) for i in range(3))
    train = TrainSplit("tiny", "discs", SIZE, normals, tuple(anomalies), True, "tiny/96px")
    specs = Planner(train).plan("stain", 12, seed=1)
    assert all(s.caption.startswith("Red") for s in specs)
    choices = {s.plan.caption_choice.source for s in specs}
    assert len(choices) > 1  # neighbours in turn, not always the nearest
    assert all(s.plan.caption_choice.neighbours == 3 and s.plan.caption_choice.candidates == 8 for s in specs)


def test_plan_is_recorded_in_the_manifest(tmp_path) -> None:  # noqa: ANN001
    from synthesis.generated_set import generate_set, read_info, read_manifest, set_hash
    from synth_helpers import create_fast, tiny_split

    train = tiny_split(64)
    train = dataclasses.replace(train, anomalies=tuple(dataclasses.replace(a, caption="Two spots on the left.")
                                                       for a in train.anomalies), split_id="")
    synthesizer = create_fast("croppaste")
    synthesizer.fit(train)
    info = generate_set(synthesizer, train, tmp_path / "set", n_per_defect=3, seed=0, progress=False)
    samples = read_manifest(tmp_path / "set")
    assert info.planner["version"] == 3 and read_info(tmp_path / "set").planner == info.planner
    for sample in samples:
        assert sample.plan.asked.count == 2 and sample.plan.asked.places == ["left"]
        assert sample.plan.planned.components == 2 and sample.plan.caption_choice is not None
    # a sample without a plan (a set made before planner 2) hashes as before the field existed
    bare = [s.model_copy(update={"plan": None}) for s in samples]
    rows = [{k: v for k, v in s.model_dump(mode="json").items() if k != "plan"} for s in bare]
    assert set_hash(bare) == canonical_hash(sorted(rows, key=lambda r: (r["defect_type"], r["index"])))
    assert set_hash(bare) != set_hash(samples)
