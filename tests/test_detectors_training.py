"""The detectors trained on synthesis: they learn, train on our set, and follow the fixed budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anomalib.models.image.draem.torch_model import DiscriminativeSubNetwork, DraemModel

from benchmark.detectors import create_detector
from benchmark.detectors.losses import draem_loss, focal_loss
from benchmark.detectors.tensors import images_to_tensor
from benchmark.detectors.toy import toy_task
from benchmark.evaluation import detection_scores

# Budgets just large enough for the toy task at 32 px (48 steps of 8): a few seconds on 2 cores.
LEARN = {
    "unet": {"image_size": 32, "base_width": 8, "epochs": 6, "samples_per_epoch": 64, "batch_size": 8, "lr": 1e-3},
    "draem": {"image_size": 32, "epochs": 4, "samples_per_epoch": 64, "batch_size": 8, "lr": 2e-3,
              "reconstructive_width": 8, "discriminative_width": 8},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task():  # noqa: ANN201
    return toy_task(size=32, n_normal=16, n_synthetic=16, n_test=16, seed=0)


@pytest.mark.parametrize("name", ["unet", "draem"])
def test_learns_the_toy_task(name: str, task) -> None:  # noqa: ANN001
    """Held-out squares on held-out noise: far above chance after a short seeded training."""
    detector = create_detector(name, LEARN[name], seed=0)
    detector.fit(task.normals, task.synthetic, progress=False)
    assert len(detector.history) == LEARN[name]["epochs"]
    assert detector.history[-1] < detector.history[0]
    scores, maps = detector.predict(task.test_images)
    result = detection_scores(scores, maps, task.test_labels, task.test_masks)
    assert result.pixel_auroc > 0.9, result
    assert result.image_auroc > 0.8, result


def test_unet_is_anomalibs_discriminative_subnetwork_on_the_image_alone() -> None:
    detector = create_detector("unet", {"image_size": 32, "base_width": 12}, seed=0)
    assert type(detector.model) is DiscriminativeSubNetwork
    first = detector.model.encoder_segment.block1[0]
    assert (first.in_channels, first.out_channels) == (3, 12)
    assert detector.model.decoder_segment.fin_out[0].out_channels == 2


def test_draem_is_anomalibs_model_with_configurable_widths() -> None:
    detector = create_detector("draem", {"image_size": 32, "reconstructive_width": 8, "discriminative_width": 4}, seed=0)
    assert isinstance(detector.model, DraemModel)
    assert detector.model.reconstructive_subnetwork.encoder.block1[0].out_channels == 8
    disc = detector.model.discriminative_subnetwork.encoder_segment.block1[0]
    assert (disc.in_channels, disc.out_channels) == (6, 4)


def test_draem_trains_on_our_synthetic_set_with_clean_targets(task) -> None:  # noqa: ANN001
    """Every training input is one of our normal or anomalous images (no Perlin anomaly), half each,
    and the reconstruction target of an anomalous input is its clean source."""
    detector = create_detector("draem", {**LEARN["draem"], "epochs": 1, "samples_per_epoch": 16}, seed=0)
    inputs, targets = [], []
    detector.model.reconstructive_subnetwork.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].clone()))
    detector.loss.register_forward_pre_hook(lambda _m, args: targets.append(args[0].clone()))
    detector.fit(task.normals, task.synthetic, progress=False)
    normals = images_to_tensor(task.normals, 32, "cpu")
    anomalous = images_to_tensor(task.synthetic.anomalous, 32, "cpu")
    clean = images_to_tensor(task.synthetic.clean, 32, "cpu")
    assert len(inputs) == len(targets) == 2
    for batch_in, batch_target in zip(inputs, targets, strict=True):
        half = len(batch_in) // 2
        for row_in, row_target in zip(batch_in[:half], batch_target[:half], strict=True):
            assert any(torch.equal(row_in, n) for n in normals) and torch.equal(row_in, row_target)
        for row_in, row_target in zip(batch_in[half:], batch_target[half:], strict=True):
            index = next(i for i, a in enumerate(anomalous) if torch.equal(row_in, a))
            assert torch.equal(row_target, clean[index])


def test_batches_are_half_normal_half_synthetic_in_a_seeded_order(task) -> None:  # noqa: ANN001
    detector = create_detector("unet", LEARN["unet"], seed=3)
    plan = detector.plan(len(task.normals), len(task.synthetic))
    assert plan.steps_per_epoch == 8
    steps = plan.epoch(0)
    assert all(len(s.normal) == 4 and len(s.synthetic) == 4 for s in steps)
    # an epoch walks through the whole pools before repeating
    assert sorted(np.concatenate([s.synthetic for s in steps]).tolist()) == sorted(list(range(16)) * 2)
    again = create_detector("unet", LEARN["unet"], seed=3).plan(16, 16).epoch(0)
    assert all(np.array_equal(a.normal, b.normal) and np.array_equal(a.synthetic, b.synthetic)
               for a, b in zip(steps, again, strict=True))
    batch = detector.make_batch(task.normals, task.synthetic, steps[0])
    assert batch["mask"][:4].sum() == 0 and batch["mask"][4:].sum() > 0


def test_focal_loss_counts_normal_pixels() -> None:
    """anomalib's DraemLoss(alpha=1) under kornia 0.9 gives normal pixels zero weight; ours must not."""
    everything_anomalous = torch.zeros(1, 2, 4, 4)
    everything_anomalous[:, 1] = 10.0
    all_normal = torch.zeros(1, 4, 4, dtype=torch.long)
    assert focal_loss()(everything_anomalous, all_normal) > 1.0
    image = torch.rand(1, 3, 16, 16)
    assert draem_loss()(image, image, all_normal.new_zeros(1, 1, 16, 16), torch.zeros(1, 2, 16, 16).index_fill_(
        1, torch.tensor([1]), 10.0)) > 1.0


def test_lr_follows_draems_fixed_schedule(task, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The budget is fixed: lr drops at 80 % and 90 % of the steps; training stops after the last epoch."""
    detector = create_detector("unet", {"image_size": 32, "base_width": 4, "epochs": 10, "samples_per_epoch": 2,
                                        "batch_size": 2, "lr": 1.0e-3}, seed=0)
    seen = []
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    detector.fit(task.normals, task.synthetic, progress=False)
    assert seen == pytest.approx([1e-3] * 8 + [2e-4] + [4e-5])
