"""The anomalib bridge: Engine trains DRAEM on a generated set; anomalib's Folder reads an exported set."""

from __future__ import annotations

import shutil
from io import StringIO
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import stages
from benchmark.anomalib_bridge import (
    GeneratedSetAugmenter,
    ProtocolSplitDataModule,
    SynthesisBatch,
    fit_with_engine,
)
from benchmark.context import load_category
from benchmark.detectors import create_detector
from benchmark.detectors.draem import SizedDraemModel
from benchmark.detectors.segmentation import SegmentationDetector
from benchmark.detectors.toy import toy_task
from benchmark.protocols import get_protocol
from synthesis import registry
from synthesis.generated_set import generate_set, read_manifest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 -> (CategoryContext, set folder)
    """The demo category under the smoke protocol (64 px) and a small Perlin set generated from its training split."""
    ctx = load_category(get_protocol("mvtec-caption-smoke/v1"), "demo", "disc", None, None)
    folder = tmp_path_factory.mktemp("perlin") / "samples"
    synthesizer = registry.create("perlin", {})
    synthesizer.fit(ctx.train, progress=False)
    generate_set(synthesizer, ctx.train, folder, n_per_defect=3, seed=0, progress=False)
    return ctx, folder


def test_draem_detector_through_engine_is_bit_identical_to_the_plain_loop() -> None:
    """Same batches, optimiser, per-step lr drops and epochs: Engine changes nothing in the trained network,
    so the detector's version (and its recorded numbers) stay. Three epochs check the per-epoch order."""
    task = toy_task(size=32, n_normal=8, n_synthetic=8, n_test=4, seed=0)
    config = {"image_size": 32, "epochs": 3, "samples_per_epoch": 8, "batch_size": 4, "lr": 2e-3,
              "reconstructive_width": 4, "discriminative_width": 4, "lr_milestones": [0.5, 0.8]}
    plain = create_detector("draem", config, seed=1)
    SegmentationDetector.fit(plain, task.normals, task.synthetic, progress=False)
    engine = create_detector("draem", config, seed=1)
    engine.fit(task.normals, task.synthetic, progress=False)
    assert engine.history == plain.history and len(engine.history) == 3
    theirs, ours = plain.model.state_dict(), engine.model.state_dict()
    assert all(torch.equal(theirs[key], ours[key]) for key in theirs)
    np.testing.assert_array_equal(engine.predict(task.test_images)[1], plain.predict(task.test_images)[1])


def test_datamodule_batches(generated) -> None:  # noqa: ANN001
    """Train: half normal, half generated (image = clean source, augmented_image = the anomaly, its mask);
    without a set only normal images; test: the split with labels and masks."""
    ctx, folder = generated
    synthetic = stages.synthetic_set(ctx, folder)
    data = ProtocolSplitDataModule.from_context(ctx, synthetic, train_batch_size=4, samples_per_epoch=8)
    batches = list(data.train_dataloader())
    assert len(batches) == 2 and all(isinstance(b, SynthesisBatch) for b in batches)
    batch = batches[0]
    assert batch.image.shape == batch.augmented_image.shape == (4, 3, 64, 64)
    assert batch.gt_label.tolist() == [False, False, True, True]
    assert not batch.gt_mask[:2].any() and batch.gt_mask[2:].flatten(1).any(1).all()
    assert torch.equal(batch.image[:2], batch.augmented_image[:2])  # normal images are their own input
    changed = (batch.image[2:] - batch.augmented_image[2:]).abs().amax(1) > 0
    assert (changed & ~batch.gt_mask[2:]).sum() == 0  # perlin changes pixels inside its mask only
    plain = next(iter(ProtocolSplitDataModule.from_context(ctx, train_batch_size=4).train_dataloader()))
    assert not plain.gt_label.any() and plain.image.shape == (4, 3, 64, 64)
    test = [b for b in data.test_dataloader()]
    labels = torch.cat([b.gt_label for b in test]).numpy().astype(int)
    np.testing.assert_array_equal(labels, ctx.test.labels)
    np.testing.assert_array_equal(torch.cat([b.gt_mask for b in test]).numpy(), ctx.test.masks)


def test_anomalib_draem_trains_with_engine_on_the_datamodule_with_a_generated_set(generated, tmp_path: Path) -> None:
    """anomalib's own ``Draem`` class (no DTD: an empty folder), its augmenter replaced, trained by ``Engine.fit``
    on the demo split with a generated set, then tested by ``Engine.test`` with anomalib's metrics."""
    from anomalib.models import Draem

    ctx, folder = generated
    synthetic = stages.synthetic_set(ctx, folder)
    data = ProtocolSplitDataModule.from_context(ctx, synthetic, train_batch_size=4, samples_per_epoch=8,
                                                eval_batch_size=32)
    (tmp_path / "no-dtd").mkdir()
    model = Draem(dtd_dir=tmp_path / "no-dtd", pre_processor=False, visualizer=False)
    torch.manual_seed(0)
    model.model = SizedDraemModel(8, 8)  # the slim network: seconds instead of minutes on a CPU
    model.augmenter = GeneratedSetAugmenter()
    seen = []
    model.model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()) if model.training else None)
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    engine = fit_with_engine(model, data, max_epochs=1, callbacks=[model.augmenter], root=tmp_path / "engine")
    try:
        assert len(seen) == 2  # two balanced steps, each on the generated anomalies of its batch
        anomalous = torch.stack([data.train_dataloader().dataset[len(data.normals) + j].augmented_image
                                 for j in range(len(synthetic))])
        for inputs in seen:
            assert all(any(torch.equal(row, a) for a in anomalous) for row in inputs[2:])
        assert any(not torch.equal(before[k], v) for k, v in model.model.state_dict().items())
        checkpoints = list((tmp_path / "engine").rglob("*.ckpt"))
        assert checkpoints, "Engine writes its checkpoint under the given root"
        results = engine.test(model=model, datamodule=data, verbose=False)
        assert 0.0 <= results[0]["image_AUROC"] <= 1.0 and 0.0 <= results[0]["pixel_AUROC"] <= 1.0
    finally:
        shutil.rmtree(tmp_path / "engine", ignore_errors=True)  # DRAEM checkpoints are large (390 MB at paper size)


def test_augmenter_refuses_batches_without_a_generated_set() -> None:
    augmenter = GeneratedSetAugmenter()
    with pytest.raises(RuntimeError, match="outside a training batch"):
        augmenter(torch.zeros(1, 3, 8, 8))
    with pytest.raises(TypeError, match="SynthesisBatch"):
        augmenter.on_train_batch_start(None, None, object(), 0)  # type: ignore[arg-type]


def _synthesis_cli(*args: str | Path) -> tuple[int, str, str]:
    from synthesis.cli import main

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_folder_export_reads_with_anomalibs_folder(generated, tmp_path: Path) -> None:
    """``synthesis export-folder`` writes abnormal/ + mask/; anomalib's ``Folder`` pairs every image with its mask."""
    from anomalib.data import Folder
    from mvtec_caption.demo import demo_root
    from PIL import Image

    ctx, folder = generated
    out = tmp_path / "export"
    code, stdout, stderr = _synthesis_cli("export-folder", "--set", folder, "--out", out)
    assert code == 0, stderr
    manifest = {f"{s.defect_type}_{s.index:04d}": s for s in read_manifest(folder)}
    assert len(manifest) == 3 * len({s.defect_type for s in manifest.values()}) >= 6
    assert f"wrote {len(manifest)} images and masks" in stdout
    data = Folder(name="disc-perlin", root=out, normal_dir=demo_root() / "disc" / "train" / "good",
                  abnormal_dir="abnormal", mask_dir="mask", num_workers=0, train_batch_size=4, eval_batch_size=4,
                  val_split_mode="same_as_test", seed=0)
    data.setup()
    samples = data.test_data.samples
    abnormal = samples[samples.label_index == 1]
    assert len(abnormal) == len(manifest) and samples.attrs["task"] == "segmentation"
    for row in abnormal.itertuples():
        sample = manifest[Path(row.image_path).stem]
        assert Path(row.mask_path).name == Path(row.image_path).name
        with Image.open(row.mask_path) as exported, Image.open(folder / sample.mask_file) as original:
            np.testing.assert_array_equal(np.asarray(exported), np.asarray(original))
    batch = next(iter(data.test_dataloader()))
    assert batch.gt_mask is not None and batch.gt_mask.shape[-2:] == batch.image.shape[-2:]
    # again into its own folder: allowed; into the set itself: refused with one error line
    assert _synthesis_cli("export-folder", "--set", folder, "--out", out)[0] == 0
    code, _, stderr = _synthesis_cli("export-folder", "--set", folder, "--out", folder / "inside")
    assert code == 2 and stderr.startswith("error: ") and "--out" in stderr and stderr.count("\n") == 1
