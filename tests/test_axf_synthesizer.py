"""AXF through the synthesis contract: training, determinism, masks, checkpoints, resuming, CLI."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
import pytest
import torch

from synthesis import registry
from synthesis.axf.synthesizer import AXFNoTextSynthesizer, AXFSynthesizer
from synthesis.axf.testing import tiny_split
from synthesis.plan import Planner

AXF_NAMES = ["axf", "axf-no-text", "axf-no-image", "axf-no-mask-tokens", "axf-no-ddf"]


pytestmark = pytest.mark.usefixtures("one_torch_thread", "axf_env")


@pytest.fixture(scope="module")
def split():
    return tiny_split()


def _make(name: str = "axf", **overrides) -> AXFSynthesizer:
    return registry.create(name, {**AXFSynthesizer.tiny_config(), **overrides})


def _weights(synth: AXFSynthesizer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in synth.net.state_dict().items()}


def _generate(synth, split, defect="spot", n=2, **plan):
    planner = Planner(split, **plan)
    specs = planner.plan(defect, n, seed=3)
    return specs, [planner.normal_image(s.normal_id) for s in specs], synth.synthesize_batch(
        specs, [planner.normal_image(s.normal_id) for s in specs])


def test_registered_names_and_metadata():
    assert set(AXF_NAMES) <= set(registry.available())
    for name in AXF_NAMES:
        meta = registry.describe(name)
        assert meta.uses_masks and meta.uses_real_anomalies and meta.keeps_outside_mask
        assert meta.uses_text == (name != "axf-no-text")
        assert meta.ablation_of == (None if name == "axf" else "axf")
    assert registry.entry("axf-no-text").load_class().uses_text is False
    with pytest.raises(ValueError, match="uses_text"):
        AXFSynthesizer("x", AXFSynthesizer.Config(use_text=False))
    assert AXFNoTextSynthesizer("x").config.use_text is False


def test_tiny_config_is_valid_for_every_ablation():
    for name in AXF_NAMES:
        cls = registry.entry(name).load_class()
        assert cls.Config(**{**registry.entry(name).overrides, **cls.tiny_config()})


def test_config_hash_changes_with_settings():
    assert _make().config_hash != _make(sdedit_strength=0.5).config_hash
    assert _make().config_hash == _make().config_hash


@pytest.mark.parametrize("name", AXF_NAMES)
def test_fit_and_generate_keeps_outside_mask_exactly(name, split):
    synth = _make(name)
    report = synth.fit(split, progress=False)
    assert report.real_anomalies_seen == len(split.anomalies) and report.details["train_steps"] == 3
    specs, normals, outputs = _generate(synth, split)
    for spec, normal, out in zip(specs, normals, outputs):
        assert out.image.shape == normal.shape and out.image.dtype == np.uint8
        assert out.mask.shape == spec.mask.shape and out.mask[spec.mask].all()  # covers the planned mask
        assert np.array_equal(out.image[~out.mask], normal[~out.mask])  # untouched outside, exactly
        assert not np.array_equal(out.image[spec.mask], normal[spec.mask])  # something was generated
        assert np.array_equal(out.mask, spec.mask)  # the blending band lies inside: the label is the planned mask


def test_blending_band_outside_the_mask_as_in_version_1(split):
    synth = _make(blend_inside=False, sdedit_strength=1.0)
    synth.fit(split, progress=False)
    specs, normals, outputs = _generate(synth, split, defect="scratch")
    for spec, normal, out in zip(specs, normals, outputs):
        band = out.mask & ~spec.mask
        distance = ndimage.distance_transform_edt(~spec.mask)
        assert out.mask[spec.mask].all() and band.any() and distance[band].max() <= 3  # a thin band around it
        assert np.array_equal(out.image[~out.mask], normal[~out.mask])


def test_hard_blending_returns_the_planned_mask(split):
    synth = _make(blend_width=0.0, sdedit_strength=1.0)
    synth.fit(split, progress=False)
    specs, normals, outputs = _generate(synth, split, defect="scratch")
    for spec, normal, out in zip(specs, normals, outputs):
        assert np.array_equal(out.mask, spec.mask)
        assert np.array_equal(out.image[~spec.mask], normal[~spec.mask])


def test_training_lowers_the_loss_on_tiny_data(split):
    """Loss on a fixed evaluation batch (fixed timesteps and noise) before and after 40 steps."""
    from synthesis.axf.train import TrainSettings, diffusion_loss, make_batch

    common = dict(batch_size=4, lr=2e-3, ema_decay=0.0, normal_fraction=0.0, branch_dropout=0.0)
    trained, untrained = _make(train_steps=40, **common), _make(train_steps=0, **common)
    trained.fit(split, progress=False)
    untrained.fit(split, progress=False)
    settings = TrainSettings(steps=1, batch_size=8, lr=0.0, window=32, margin=0.3, normal_fraction=0.0,
                             branch_dropout=0.0, seed=99)

    def evaluate(synth: AXFSynthesizer) -> float:
        images, masks, cond = make_batch(synth.training_set, settings, 0)
        with torch.no_grad():
            return float(diffusion_loss(synth.net, synth.train_scheduler, synth.space.encode(images), masks, cond,
                                        torch.Generator().manual_seed(5), settings))

    before, after = evaluate(untrained), evaluate(trained)
    assert after < 0.8 * before, (before, after)
    losses = trained.last_train.losses
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_same_seed_same_weights_and_images(split):
    a, b = _make(), _make()
    a.fit(split, progress=False)
    b.fit(split, progress=False)
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    _, _, out_a = _generate(a, split)
    _, _, out_b = _generate(b, split)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(out_a, out_b))
    # batching does not change a sample: alone it comes out the same
    specs, normals, _ = _generate(a, split)
    single = a.synthesize(specs[1], normals[1], np.random.default_rng(0))
    assert np.array_equal(single.image, out_a[1].image)
    c = _make(seed=1)
    c.fit(split, progress=False)
    assert not all(torch.equal(wa[k], v) for k, v in _weights(c).items())


def test_user_caption_changes_the_result_and_picks_the_closest_reference(split):
    synth = _make(sdedit_strength=1.0)
    synth.fit(split, progress=False)
    _, _, trained = _generate(synth, split, defect="spot", n=1)
    _, _, asked = _generate(synth, split, defect="spot", n=1, caption="A long blue crack runs across the disc.")
    assert not np.array_equal(trained[0].image, asked[0].image)
    spec = Planner(split, caption="a dark scratch on the disc").plan("spot", 1, seed=0)[0]
    spec = type(spec)(**{**spec.__dict__, "mask_origin": "user:mask.png", "defect_type": "unknown-type"})
    index, steps = synth._reference(spec)
    assert synth.store["defect_types"][synth.store["defect_index"][index]] == "scratch" and steps == []


def test_reference_follows_the_planned_mask_origin(split):
    synth = _make()
    synth.fit(split, progress=False)
    spec = Planner(split).plan("spot", 2, seed=0)[1]
    index, steps = synth._reference(spec)
    defect, image_id = spec.mask_origin[len("train:"):].split()[0].split("/")
    assert synth.store["image_ids"][index] == image_id
    assert synth.store["defect_types"][synth.store["defect_index"][index]] == defect


def test_checkpoint_round_trip_gives_identical_images(split, tmp_path):
    from synthesis.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint

    synth = _make("axf-no-mask-tokens")
    synth.fit(split, progress=False)
    info = save_checkpoint(synth, tmp_path / "ckpt")
    assert info.config_hash == synth.config_hash and info.config["use_mask_tokens"] is False
    assert read_checkpoint_info(tmp_path / "ckpt").fit.details["train_steps"] == 3
    loaded = load_checkpoint(tmp_path / "ckpt", expect_name="axf-no-mask-tokens")
    _, _, before = _generate(synth, split)
    _, _, after = _generate(loaded, split)
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask) for x, y in zip(before, after))


class _Stop(Exception):
    pass


def test_interrupted_training_resumes_to_the_same_weights(split, tmp_path):
    config = dict(train_steps=6, snapshot_every=2)
    full = _make(**config)
    full.work_dir = tmp_path / "full"
    full.fit(split, progress=False)

    def stop_at_4(step: int, loss: float) -> None:
        if step == 4:
            raise _Stop

    interrupted = _make(**config)
    interrupted.work_dir = tmp_path / "resumable"
    with pytest.raises(_Stop):
        interrupted.fit(split, progress=False, callback=stop_at_4)
    assert (tmp_path / "resumable" / "snapshot.pt").is_file()
    resumed = _make(**config)
    resumed.work_dir = tmp_path / "resumable"
    report = resumed.fit(split, progress=False)
    assert report.details["resumed_from_step"] == 4
    assert len(resumed.last_train.losses) == 6
    assert resumed.last_train.losses == full.last_train.losses
    wf, wr = _weights(full), _weights(resumed)
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    assert not (tmp_path / "resumable").exists()  # snapshots removed once training finished


def test_snapshot_of_another_config_is_ignored(split, tmp_path):
    first = _make(train_steps=4, snapshot_every=2)
    first.work_dir = tmp_path / "shared"

    def stop(step: int, loss: float) -> None:
        if step == 2:
            raise _Stop

    with pytest.raises(_Stop):
        first.fit(split, progress=False, callback=stop)
    other = _make(train_steps=4, snapshot_every=2, lr=1e-3)
    other.work_dir = tmp_path / "shared"
    assert other.fit(split, progress=False).details["resumed_from_step"] == 0


def test_cli_generate_on_demo_data(tmp_path, demo_root):
    import json

    from synthesis.cli import main
    from synthesis.generated_set import read_info, verify_set

    tiny = AXFSynthesizer.tiny_config()
    args = ["generate", "--synth", "axf", "--subset", "demo", "--category", "disc", "--n", "1", "--seed", "0",
            "--out", str(tmp_path / "out"), "--image-size", "64", "--caption", "A blue stain on the disc."]
    for key, value in tiny.items():
        args += ["--config", f"{key}={json.dumps(value)}"]
    assert main(args) == 0
    info = read_info(tmp_path / "out" / "samples")
    assert info.samples == 2 and info.request.caption == "A blue stain on the disc."
    assert not verify_set(tmp_path / "out" / "samples")
    assert (tmp_path / "out" / "grid.png").is_file() and (tmp_path / "out" / "checkpoint" / "synthesizer.json").is_file()
    again = ["generate", "--synth", "axf", "--subset", "demo", "--category", "disc", "--n", "1", "--seed", "0",
             "--out", str(tmp_path / "again"), "--image-size", "64", "--caption", "A blue stain on the disc.",
             "--checkpoint", str(tmp_path / "out" / "checkpoint"), "--no-grid"]
    assert main(again) == 0
    assert read_info(tmp_path / "again" / "samples").set_sha256 == info.set_sha256


def test_frozen_encoders_get_no_gradients_and_stay_unchanged(split):
    from synthesis.axf.encoders import image_encoder, text_encoder

    encoders = [text_encoder("minilm").model, image_encoder("efficientnet-lite0").model]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in encoders]
    synth = _make(train_steps=2)
    synth.fit(split, progress=False)
    for model, state in zip(encoders, before):
        assert all(p.grad is None and not p.requires_grad for p in model.parameters())
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # incl. batch-norm statistics
        assert not model.training
    encoder_ids = {id(p) for m in encoders for p in m.parameters()}
    assert not encoder_ids & {id(p) for p in synth.net.parameters()}


def test_detail_transfer_sharpens_large_windows_and_keeps_the_background(split):
    outputs = {}
    for detail in (0.0, 1.0):
        synth = _make(window_size=8, detail_transfer=detail, train_steps=1)
        synth.fit(split, progress=False)
        specs, normals, outputs[detail] = _generate(synth, split, defect="spot")
        for normal, out in zip(normals, outputs[detail]):
            assert np.array_equal(out.image[~out.mask], normal[~out.mask])
    assert not all(np.array_equal(a.image, b.image) for a, b in zip(outputs[0.0], outputs[1.0]))


def test_cross_reference_shows_another_anomaly_of_the_type_and_zero_changes_nothing():
    """The image branch of a defect window: its own anomaly's tokens at 0, another of the same type at 1."""
    import dataclasses

    from synthesis.axf.train import TrainingSet, TrainSettings, make_batch

    n = 6
    masks = np.zeros((n, 32, 32), bool)
    masks[:, 10:20, 10:20] = True
    images = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None] * 40, 32, 1).repeat(32, 2).repeat(3, 3)
    data = TrainingSet(anomaly_images=images, anomaly_masks=masks,  # anomaly i is flat grey 40 i: readable in a window
                       defect_index=np.array([0, 0, 0, 1, 1, 1]), text=None, text_valid=None,
                       image=torch.arange(n, dtype=torch.float32)[:, None, None].repeat(1, 2, 3),  # token = index
                       normals=np.zeros((0, 32, 32, 3), np.uint8))
    base = TrainSettings(steps=1, batch_size=16, window=16, normal_fraction=0.0, branch_dropout=0.0, seed=3)
    for step in range(3):
        own = make_batch(data, base, step)
        again = make_batch(data, dataclasses.replace(base, cross_reference=0.0), step)
        assert torch.equal(own[0], again[0]) and torch.equal(own[2].image, again[2].image)
        target = torch.round(own[0][:, 0, 0, 0] * 255 / 40).long()
        assert torch.equal(own[2].image[:, 0, 0].long(), target)  # its own tokens
        windows, _, cond = make_batch(data, dataclasses.replace(base, cross_reference=1.0), step)
        target, shown = torch.round(windows[:, 0, 0, 0] * 255 / 40).long(), cond.image[:, 0, 0].long()
        types = torch.from_numpy(data.defect_index)
        assert bool((shown != target).all()) and torch.equal(types[shown], types[target])  # another, same type
