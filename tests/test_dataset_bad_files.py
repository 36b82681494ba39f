"""A user's broken files: masks that are not binary, empty and truncated images, non-UTF-8 caption
files. Each is reproduced on a generated tree, then the clear error (naming the file) or the safe
behaviour is checked: never a traceback, never a silently wrong mask or a half-written export."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from data_helpers import make_tree, run_cli, tree_fingerprint, write_captions
from PIL import Image

from mvtec_caption.layout import binarize_mask, non_binary_share
from mvtec_caption.loader import DatasetProblemsError, load_dataset, resolve_dataset
from mvtec_caption.scan import UnreadableImageError

CAPTIONS = {"widget": {"scratch": ["A long scratch.", "A short scratch.", "A red scratch.", "A deep scratch."],
                       "dent": ["The widget is dented."]}}
SIZE = (48, 40)  # width, height
TRUE_MASK = np.zeros((SIZE[1], SIZE[0]), dtype=bool)
TRUE_MASK[10:25, 8:30] = True
SCRATCH_MASK = "widget/ground_truth/scratch/001_mask.png"


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    root = make_tree(tmp_path / "mvtec_ad", CAPTIONS, n_train=3, n_test_good=2)
    for path in sorted(root.rglob("*.png")):  # a bigger size, so the masks below have room for a shape
        with Image.open(path) as image:
            mode = image.mode
        if "ground_truth" in path.parts:
            Image.fromarray(TRUE_MASK.astype(np.uint8) * 255).save(path)
        else:
            Image.new(mode, SIZE, 90).save(path)
    return root, write_captions(tmp_path / "captions.json", "mvtec_ad", CAPTIONS)


def cli(tiny: tuple[Path, Path], command: str, *extra: str | Path):  # noqa: ANN201 (data_helpers.CliRun)
    root, captions = tiny
    return run_cli(command, "--subset", "mvtec_ad", "--data-root", root, "--caption-source", captions, "--no-progress",
                   *extra)


def jpeg_saved_as_png(path: Path) -> None:
    """What an image editor does to a mask: slight background noise, then JPEG bytes under a .png name."""
    noise = np.random.default_rng(0).integers(0, 3, TRUE_MASK.shape)
    values = np.clip(TRUE_MASK.astype(np.int64) * 255 + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values).convert("RGB").save(buffer, format="JPEG", quality=90)
    path.write_bytes(buffer.getvalue())


def grey_gradient(path: Path) -> None:
    Image.fromarray(np.tile(np.linspace(0, 255, SIZE[0]).astype(np.uint8), (SIZE[1], 1))).save(path)


def truncate(path: Path) -> None:
    """Cut a PNG of noise (so its pixel data is most of the file) at two thirds: the header still reads."""
    noise = np.random.default_rng(1).integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, format="PNG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


# ---- masks that are not binary --------------------------------------------------------------------

def test_the_mask_rule_thresholds_at_half_the_maximum() -> None:
    loco_instance = np.array([[0, 7, 7], [0, 0, 7]], dtype=np.uint8)  # one defect kind's grey value
    assert binarize_mask(loco_instance).tolist() == [[False, True, True], [False, False, True]]
    assert non_binary_share(loco_instance) == 0.0
    assert binarize_mask(np.zeros((2, 2), np.uint8)).sum() == 0
    noisy = np.array([[0, 1, 2, 250, 255, 128]], dtype=np.uint8)
    assert binarize_mask(noisy).tolist() == [[False, False, False, True, True, True]]
    assert non_binary_share(noisy) == pytest.approx(4 / 6)


@pytest.mark.parametrize("damage", [jpeg_saved_as_png, grey_gradient])
def test_validate_reports_a_mask_that_is_not_binary_with_its_share(tiny: tuple[Path, Path], damage) -> None:
    root, _ = tiny
    damage(root / SCRATCH_MASK)
    with Image.open(root / SCRATCH_MASK) as image:
        expected = 100 * non_binary_share(np.asarray(image.convert("L")))
    assert expected > 1  # the file really is not binary
    run = cli(tiny, "validate")
    assert run.code == 0 and "Traceback" not in run.err, run.out + run.err  # a warning, like a partial copy
    line = next(row for row in run.out.splitlines() if "non_binary_mask" in row)
    assert line.startswith("warning") and SCRATCH_MASK in line
    assert f"{expected:.1f}% of its pixels are neither 0 nor its maximum" in run.out
    assert cli(tiny, "validate", "--strict").code == 1


def test_a_noisy_mask_is_not_read_as_almost_all_anomalous(tiny: tuple[Path, Path], caplog) -> None:
    """The JPEG-noisy mask: "> 0" marked 89% of the pixels; the rule keeps the drawn rectangle."""
    from mvtec_caption.split import load_items, make_split
    from mvtec_caption.torch_dataset import MVTecCaptionTorchDataset

    root, captions = tiny
    jpeg_saved_as_png(root / SCRATCH_MASK)
    with Image.open(root / SCRATCH_MASK) as image:
        assert (np.asarray(image.convert("L")) > 0).mean() > 0.8  # what the old rule made of it
    data = load_dataset(subset="mvtec_ad", data_root=root, caption_source=captions, progress=False)
    test = data["test"]
    row = next(i for i, (d, i_) in enumerate(zip(test["defect_type"], test["image_id"])) if (d, i_) == ("scratch", "001"))
    with caplog.at_level(logging.WARNING, logger="mvtec_caption"):
        mask = MVTecCaptionTorchDataset(test)[row]["mask"][0].numpy().astype(bool)
    assert (mask != TRUE_MASK).mean() < 0.01
    assert any("mask is not binary" in r.getMessage() and SCRATCH_MASK.split("/", 1)[1] in r.getMessage()
               for r in caplog.records)
    split = make_split(data, "widget", "mvtec-caption-smoke/v1", SIZE[0])
    item = next(it for it in split.fewshot + split.test_anomalous if (it.defect_type, it.image_id) == ("scratch", "001"))
    _, _, split_mask, _ = load_items(data, (item,), SIZE[0])[0]
    resized = np.asarray(Image.fromarray(TRUE_MASK.astype(np.uint8) * 255).resize((SIZE[0],) * 2, Image.NEAREST)) > 0
    assert (split_mask != resized).mean() < 0.01  # the benchmark reads masks by the same rule


# ---- empty and truncated images --------------------------------------------------------------------

def test_export_decodes_everything_first_and_names_every_bad_file(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = tiny
    truncate(root / "widget/test/scratch/002.png")
    (root / "widget/train/good/001.png").write_bytes(b"")
    before = tree_fingerprint(root)
    out = tmp_path / "export"
    run = cli(tiny, "export", "--format", "imagefolder", "--out", out)
    assert run.code == 2 and "Traceback" not in run.err, run.out + run.err
    assert "2 image or mask file(s) cannot be decoded, so nothing was exported" in run.err
    assert "widget/test/scratch/002.png (OSError: image file is truncated" in run.err
    assert "widget/train/good/001.png (empty file (0 bytes))" in run.err
    assert not out.exists() and not list(tmp_path.glob(".export*"))  # nothing written, no staging left over
    assert tree_fingerprint(root) == before


def test_loading_with_a_zero_byte_image_reports_it_instead_of_a_traceback(tiny: tuple[Path, Path]) -> None:
    root, captions = tiny
    (root / "widget/train/good/002.png").write_bytes(b"")
    (root / "widget/test/scratch/000.png").write_bytes(b"")
    data = load_dataset(subset="mvtec_ad", data_root=root, caption_source=captions, progress=False)
    assert len(data["train"]) == 2 and sorted(data["test"]["image_id"]).count("000") == 2  # good 000, dent 000
    with pytest.raises(DatasetProblemsError) as error:
        load_dataset(subset="mvtec_ad", data_root=root, caption_source=captions, strict=True, progress=False)
    assert {(p.kind, Path(p.path).relative_to(root).as_posix(), p.detail) for p in error.value.problems} == {
        ("unreadable_image", "widget/train/good/002.png", "empty file (0 bytes)"),
        ("unreadable_image", "widget/test/scratch/000.png", "empty file (0 bytes)")}
    run = cli(tiny, "info", "--strict")
    assert run.code == 1 and "Traceback" not in run.err and "widget/train/good/002.png" in run.out


@pytest.mark.parametrize("damage", ["truncated test image", "zero-byte training image", "truncated mask"])
def test_a_broken_image_met_by_a_benchmark_run_is_named(tiny: tuple[Path, Path], tmp_path: Path, damage: str,
                                                         capsys) -> None:
    from benchmark.cli import main
    from benchmark.context import load_category
    from benchmark.protocols import get_protocol

    root, captions = tiny
    broken = {"truncated test image": "widget/test/scratch/003.png", "zero-byte training image": "widget/train/good/000.png",
              "truncated mask": "widget/ground_truth/scratch/003_mask.png"}[damage]
    if damage.startswith("zero-byte"):
        (root / broken).write_bytes(b"")
    else:
        truncate(root / broken)
    with pytest.raises(UnreadableImageError, match=str(root / broken)):
        load_category(get_protocol("mvtec-caption-smoke/v1"), "mvtec_ad", "widget", root, str(captions))
    code = main(["run", "--synth", "croppaste", "--dataset", "mvtec_ad", "--data-root", str(root), "--categories", "widget",
                 "--caption-source", str(captions), "--protocol", "mvtec-caption-smoke/v1", "--out", str(tmp_path / "run"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "error: " in err and str(root / broken) in err and "Traceback" not in err, err


# ---- caption files ---------------------------------------------------------------------------------

def test_a_non_utf8_captions_file_is_named_with_the_encoding_problem(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    root, captions = tiny
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(captions.read_text(encoding="utf-8").replace("A red scratch.", "A rouge éraflure.").encode("latin-1"))
    with pytest.raises(Exception, match=f"{latin1}: the captions JSON is not UTF-8 text .*invalid continuation byte"):
        resolve_dataset("mvtec_ad", root, caption_source=latin1, progress=False)
    run = run_cli("validate", "--subset", "mvtec_ad", "--data-root", root, "--caption-source", latin1, "--no-progress")
    assert run.code == 2 and "Traceback" not in run.err
    assert run.err.strip().startswith(f"error: {latin1}: the captions JSON is not UTF-8 text")


def test_a_non_utf8_records_file_is_named(tmp_path: Path) -> None:
    from mvtec_caption.records import RecordsFileError, read_records

    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"caption": "\xe9"}\n')
    with pytest.raises(RecordsFileError, match=f"{path}: not UTF-8 text"):
        read_records(path)


def test_a_non_utf8_captions_file_is_a_clear_error_in_a_benchmark_run(tiny: tuple[Path, Path], tmp_path: Path,
                                                                      capsys) -> None:
    from benchmark.cli import main

    root, captions = tiny
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(captions.read_text(encoding="utf-8").replace("A red scratch.", "A rouge éraflure.").encode("latin-1"))
    code = main(["run", "--synth", "croppaste", "--dataset", "mvtec_ad", "--data-root", str(root), "--categories", "widget",
                 "--caption-source", str(latin1), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].startswith(f"error: {latin1}: the captions JSON is not UTF-8 text")
