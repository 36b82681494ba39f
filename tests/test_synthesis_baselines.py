"""What the baselines promise beyond the shared contract: sizes, exact masks, alignment, options."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synth_helpers import create_fast, demo_split, tiny_split
from synthesis import registry
from synthesis.baselines.croppaste import parse_origin
from synthesis.baselines.perlin import perlin_noise
from synthesis.masks import estimate_foreground
from synthesis.plan import Planner


def _run(name: str, train, n: int = 3, user_masks=None, **config):  # noqa: ANN001, ANN003, ANN202
    synthesizer = create_fast(name, **config)
    synthesizer.fit(train, progress=False)
    planner = Planner(train, user_masks=user_masks)
    specs = planner.plan(train.defect_types[0], n, seed=0)
    normals = [planner.normal_image(s.normal_id) for s in specs]
    return synthesizer, specs, normals, synthesizer.synthesize_batch(specs, normals)


# ---- perlin -------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [37, 100, 256])
def test_perlin_noise_any_size_and_seeded(size: int) -> None:
    import torch

    state = torch.get_rng_state()
    noise = perlin_noise(size, (4, 2), angle=30.0, seed=7)
    assert noise.shape == (size, size) and np.isfinite(noise).all() and noise.std() > 0.05
    assert np.array_equal(noise, perlin_noise(size, (4, 2), angle=30.0, seed=7))
    assert not np.array_equal(noise, perlin_noise(size, (4, 2), angle=30.0, seed=8))
    assert torch.equal(state, torch.get_rng_state()), "the global torch RNG must be left alone"


@pytest.mark.parametrize("size", [45, 100])
def test_perlin_masks_on_foreground_at_odd_sizes(size: int) -> None:
    train = tiny_split(size)
    _, specs, normals, outputs = _run("perlin", train, n=4)
    for normal, output in zip(normals, outputs):
        assert output.image.shape == (size, size, 3) and output.mask.any()
        assert not (output.mask & ~estimate_foreground(normal)).any()
        assert output.mask_origin.startswith("perlin ")


def test_perlin_empty_masks_are_redrawn() -> None:
    # A threshold noise rarely exceeds forces redraws, then the quantile fallback: never an empty mask.
    _, _, _, outputs = _run("perlin", tiny_split(32), n=3, threshold=0.99, max_tries=2)
    assert all(o.mask.any() for o in outputs)


def test_perlin_texture_dir(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(tmp_path / f"t{i}.jpg")
    synthesizer, _, _, outputs = _run("perlin", tiny_split(48), n=2, texture_dir=str(tmp_path))
    assert "texture_dir" in synthesizer.fit_report.details["texture_source"]
    assert synthesizer.textures.shape == (3, 48, 48, 3)
    assert all("texture:file:t" in o.mask_origin for o in outputs)
    with pytest.raises(ValueError, match="no images"):
        create_fast("perlin", texture_dir=str(tmp_path / "missing")).fit(tiny_split(48))


# ---- cutpaste -----------------------------------------------------------------------------------
def test_cutpaste_normal_pastes_an_exact_rectangle() -> None:
    train = tiny_split(64)
    _, _, normals, outputs = _run("cutpaste", train, n=4, jitter=0.0, on_foreground=False, cut_from_foreground=False)
    for normal, output in zip(normals, outputs):
        rows, cols = np.nonzero(output.mask)
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert output.mask.sum() == height * width, "the normal variant's mask is a full rectangle"
        tokens = output.mask_origin.split()
        src = [float(v) for v in tokens[3][4:].split(",")]
        dst = [float(v) for v in tokens[4][2:].split(",")]
        shift = int(round(src[0] - dst[0])), int(round(src[1] - dst[1]))
        top, left = rows.min() + shift[0], cols.min() + shift[1]
        assert np.array_equal(output.image[output.mask].reshape(height, width, 3), normal[top:top + height, left:left + width])


def test_cutpaste_scar_is_a_thin_rotated_strip() -> None:
    synthesizer, _, _, outputs = _run("cutpaste-scar", tiny_split(256), n=6)
    assert synthesizer.config.variant == "scar"
    for output in outputs:
        patch = output.mask_origin.split()[1]
        length, width = (int(v) for v in patch.split("x"))
        assert 10 <= length <= 25 and 2 <= width <= 16
        assert 0 < output.mask.sum() <= length * width * 1.15 + 4


def test_cutpaste_stays_on_the_object() -> None:
    train = tiny_split(96)
    _, _, normals, outputs = _run("cutpaste", train, n=6)
    for normal, output in zip(normals, outputs):
        foreground = estimate_foreground(normal)
        from scipy import ndimage

        assert not (output.mask & ~ndimage.binary_dilation(foreground, iterations=3)).any()


# ---- croppaste ----------------------------------------------------------------------------------
def test_parse_origin() -> None:
    key, steps = parse_origin("train:broken_large/003 flip rot270 scale0.87 at12,40")
    assert key == "broken_large/003" and steps.flip and steps.rotations == 3 and steps.scale == 0.87
    assert steps.places == ((12, 40),)
    assert parse_origin("train:hole/001 scale1.00 at1,2 at30,40 shift0,3")[1].places == ((1, 2), (30, 40))
    assert parse_origin("user:mask.png") == ("", None)


def test_croppaste_aligns_every_planned_mask() -> None:
    """Each planned mask is reproduced from its source crop, so defect pixels line up with it."""
    train = demo_split("disc", 64).train
    synthesizer = create_fast("croppaste")
    synthesizer.fit(train)
    planner = Planner(train)
    for defect in train.defect_types:
        for spec in planner.plan(defect, 12, seed=3):
            key, steps = parse_origin(spec.mask_origin)
            assert synthesizer._aligned_patch(synthesizer.crops[key], steps, spec.mask) is not None, spec.mask_origin


def test_croppaste_pastes_the_named_defect() -> None:
    train = tiny_split(64)
    _, specs, normals, outputs = _run("croppaste", train, n=3, colour_match=0.0, feather_px=0.0)
    for spec, normal, output in zip(specs, normals, outputs):
        assert np.array_equal(output.mask, spec.mask)
        assert np.array_equal(output.image[~spec.mask], normal[~spec.mask])
        # the tiny split's defects are pure red spots: the pasted pixels are red
        assert (output.image[spec.mask].astype(int) - (200, 40, 40)).__abs__().max(axis=1).mean() < 30


def test_croppaste_user_mask_uses_the_bounding_box() -> None:
    train = tiny_split(64)
    mask = np.zeros((64, 64), dtype=bool)
    mask[20:30, 24:44] = True
    _, specs, normals, outputs = _run("croppaste", train, n=2, user_masks=[("m.png", mask)])
    for normal, output in zip(normals, outputs):
        assert np.array_equal(output.mask, mask)
        assert np.array_equal(output.image[~mask], normal[~mask]) and (output.image[mask] != normal[mask]).any()


def test_croppaste_state_round_trip(tmp_path) -> None:  # noqa: ANN001
    train = demo_split("disc", 64).train
    fitted = create_fast("croppaste")
    fitted.fit(train)
    fitted.save_state(tmp_path)
    loaded = registry.create("croppaste")
    loaded.load_state(tmp_path)
    assert sorted(loaded.crops) == sorted(fitted.crops) == sorted(f"{a.defect_type}/{a.image_id}" for a in train.anomalies)
    for key, crop in fitted.crops.items():
        other = loaded.crops[key]
        assert np.array_equal(crop.image, other.image) and np.array_equal(crop.mask, other.mask)
        assert np.allclose(crop.ring, other.ring)
