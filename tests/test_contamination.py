"""The contamination check: near-copies of test images in a generated set are found, listed and make the
record not comparable; sets built on training images are not flagged."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import shift as shift_image

from benchmark import contamination
from benchmark.protocols import Protocol, register_protocol

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = register_protocol(Protocol(
    id="test-contamination/v1", title="tiny protocol (contamination tests)", hardware="cpu", description="tests only",
    image_size=64, n_generated_per_defect=3,
    detectors={"unet": {"image_size": 64, "base_width": 4, "epochs": 1, "samples_per_epoch": 8, "batch_size": 4,
                        "lr": 5e-4}},
    default_detectors=["unet"], fidelity_metrics=["is"], repetitions=2, demo_only=True,
))


def copied(image: np.ndarray, size: int = 256, offset: tuple[int, int] = (3, 2), quality: int = 75) -> np.ndarray:
    """A test image as a released set would hold it: upscaled, slightly shifted, JPEG re-encoded (at ``size``)."""
    big = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
    big = shift_image(big, (*offset, 0), order=0, mode="nearest")
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return np.asarray(decoded.convert("RGB"))


def _small(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def _check_with_copies(ctx, set_rows, picks: list[int]):  # noqa: ANN001, ANN202
    from benchmark.context import test_image_names

    names = test_image_names(ctx)
    size = ctx.protocol.image_size
    generated = [image for _, image, _ in set_rows] + [_small(copied(ctx.test.images[i]), size) for i in picks]
    generated_names = [sample.image_file for sample, _, _ in set_rows] + [f"copy-of-{names[i]}" for i in picks]
    training = np.stack([n.image for n in ctx.train.normals] + [a.image for a in ctx.train.anomalies])
    return contamination.check(np.stack(generated), generated_names, ctx.test.images, names, training), names


def test_the_check_lists_exactly_the_copied_test_images(tmp_path: Path) -> None:
    """Demo data: a croppaste set plus three copied test anomalies; only the copies match, each with its original."""
    from benchmark.context import load_category
    from benchmark.protocols import get_protocol
    from synthesis import registry
    from synthesis.generated_set import generate_set, load_samples

    ctx = load_category(get_protocol("mvtec-caption-smoke/v1"), "demo", "disc", None, None)
    synthesizer = registry.create("croppaste")
    synthesizer.fit(ctx.train, progress=False)
    generate_set(synthesizer, ctx.train, tmp_path / "set", n_per_defect=12, seed=0, progress=False)
    rows = load_samples(tmp_path / "set")
    anomalous = [i for i, label in enumerate(ctx.test.labels) if label == 1]
    picks = [anomalous[0], anomalous[4], anomalous[-1]]
    result, names = _check_with_copies(ctx, rows, picks)
    assert sorted((m.generated, m.test) for m in result.matches) == sorted((f"copy-of-{names[i]}", names[i]) for i in picks)
    assert all(m.distance <= contamination.THRESHOLD < m.nearest_training_distance for m in result.matches)
    assert result.n_generated == len(rows) + 3 and result.n_test == len(ctx.test.images)
    assert result.settings["threshold"] == contamination.THRESHOLD == result.threshold

    clean = contamination.check(np.stack([image for _, image, _ in rows]), [s.image_file for s, _, _ in rows],
                                ctx.test.images, names, np.stack([n.image for n in ctx.train.normals]))
    assert clean.matches == [] and clean.closest is not None


@pytest.mark.real_data
def test_bottle_baseline_sets_are_clean_and_copies_are_found(shared_data: Path, tmp_path: Path) -> None:
    """MVTec AD bottle at the CPU protocol's 128 px: perlin, cutpaste and croppaste sets flag nothing; three copied
    test anomalies (256 px JPEG, shifted) are exactly the matches."""
    from benchmark.context import load_category
    from benchmark.protocols import get_protocol
    from synthesis import registry
    from synthesis.generated_set import generate_set, load_samples

    ctx = load_category(get_protocol("mvtec-caption-cpu/v2"), "mvtec_ad", "bottle", shared_data / "mvtec_ad",
                        str(shared_data / "mvtec_caption" / "captions.json"))
    anomalous = [i for i, label in enumerate(ctx.test.labels) if label == 1]
    for name in ("perlin", "cutpaste", "croppaste"):
        synthesizer = registry.create(name)
        synthesizer.fit(ctx.train, progress=False)
        generate_set(synthesizer, ctx.train, tmp_path / name, n_per_defect=8, seed=0, progress=False)
        rows = load_samples(tmp_path / name)
        picks = [anomalous[0], anomalous[20], anomalous[-1]]
        result, names = _check_with_copies(ctx, rows, picks)
        assert sorted(m.test for m in result.matches) == sorted(names[i] for i in picks), (name, result.matches)
        assert all(m.generated.startswith("copy-of-") for m in result.matches)


@pytest.mark.slow
def test_a_contaminated_imported_set_is_marked_and_scored_once_for_all_repetitions(tmp_path: Path) -> None:
    """An AnomalyDiffusion-layout set with one copied test anomaly per defect type: the record lists exactly those
    pairs and is not comparable; the set is imported once and both repetitions only re-train the detector."""
    from benchmark.cli import main
    from benchmark.context import load_category, test_image_names
    from benchmark.protocols import get_protocol
    from benchmark.results import load_result

    ctx = load_category(get_protocol("mvtec-caption-smoke/v1"), "demo", "disc", None, None)
    names = test_image_names(ctx)
    root = tmp_path / "released" / "disc"
    expected = []
    for defect in ("crack", "stain"):
        few = [a for a in ctx.train.anomalies if a.defect_type == defect][0]
        for index, normal in enumerate(ctx.train.normals[:2]):  # a pasted training defect on two normals
            image = normal.image.copy()
            image[few.mask] = few.image[few.mask]
            Image.fromarray(image).save(_mkdir(root / defect / "image") / f"{index}.jpg", quality=75)
            Image.fromarray(few.mask.astype(np.uint8) * 255).save(_mkdir(root / defect / "mask") / f"{index}.jpg")
        test_index = next(i for i, n in enumerate(names) if n.startswith(f"{defect}/"))
        Image.fromarray(copied(ctx.test.images[test_index])).save(root / defect / "image" / "2.jpg", quality=90)
        mask = np.asarray(Image.fromarray(ctx.test.masks[test_index].astype(np.uint8) * 255).resize((256, 256)))
        Image.fromarray(mask).save(root / defect / "mask" / "2.jpg")
        expected.append((f"{defect}/0002.png", names[test_index]))

    out = tmp_path / "run"
    assert main(["run", "--synth", f"folder:{tmp_path / 'released'}", "--layout", "anomalydiffusion", "--set-name",
                 "leaky", "--source", "https://example.org/leaky-set (a test fixture)", "--dataset", "demo",
                 "--categories", "disc", "--protocol", TINY.id, "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    record = load_result(out / "results" / "leaky" / "1" / "test-contamination--v1" / "demo" / "disc.json")
    for repetition in record.repetitions:
        assert sorted((m.generated, m.test) for m in repetition.contamination.matches) == sorted(expected)
    assert not record.comparable
    note = next(n for n in record.comparable_notes if n.startswith("contaminated"))
    assert all(f"{generated} ~ test {test}" in note for generated, test in expected)
    assert record.synthesizer.external.source == "https://example.org/leaky-set (a test fixture)"
    assert [rep.seeds for rep in record.repetitions] == [{"detector": 0}, {"detector": 1}]
    assert len({rep.generated_set_sha256 for rep in record.repetitions}) == 1
    log = (out / "logs" / "benchmark.log").read_text()
    assert len(re.findall(r"running: import leaky disc", log)) == 1
    assert len(re.findall(r"running: detect unet leaky disc seed \d", log)) == 2


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
