"""load_dataset on the demo and the real shared data; the pandas and torch views."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvtec_caption import MVTecCaptionTorchDataset, load_dataset, to_pandas
from mvtec_caption.loader import DatasetProblemsError


@pytest.fixture(scope="module")
def demo(demo_root: Path):  # noqa: ANN201 (DatasetDict)
    return load_dataset(subset="demo", progress=False)


@pytest.fixture(scope="module")
def bottle(shared_data: Path):  # noqa: ANN201
    return load_dataset(subset="mvtec_ad", data_root=shared_data / "mvtec_ad", categories=["bottle"],
                        caption_source=shared_data / "mvtec_caption" / "captions.json", progress=False)


@pytest.fixture(scope="module")
def juice(shared_data: Path):  # noqa: ANN201
    return load_dataset(subset="mvtec_loco", data_root=shared_data / "mvtec_loco", categories=["juice_bottle"],
                        caption_source=shared_data / "mvtec_caption" / "captions.json", progress=False)


def _anomalous(split):  # noqa: ANN001, ANN202
    return split.filter(lambda label: label == 1, input_columns="label")


def test_demo_splits_and_marking(demo) -> None:  # noqa: ANN001
    assert sorted(demo) == ["test", "train"]
    assert len(demo["train"]) == 48
    assert len(demo["test"]) == 12 + 36
    assert set(demo["test"]["is_demo"]) == {True}
    assert "DEMO DATA" in demo["test"].info.description
    row = _anomalous(demo["test"])[0]
    assert row["caption"] and row["anomaly_kind"] == "structural"
    mask = np.asarray(row["mask"])
    assert set(np.unique(mask)) <= {0, 255} and mask.any()


def test_unknown_name_and_split_are_clear_errors(demo_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mvtec")
    with pytest.raises(ValueError, match="split 'validation' not available"):
        load_dataset(subset="demo", split="validation", progress=False)


def test_to_pandas_has_split_and_no_pixels(demo) -> None:  # noqa: ANN001
    frame = to_pandas(demo)
    assert len(frame) == 96
    assert frame["split"].value_counts().to_dict() == {"train": 48, "test": 48}
    assert "image" not in frame and "mask" not in frame
    assert {"image_path", "mask_paths", "image_file", "mask_file", "caption", "attributes.colors"} <= set(frame.columns)
    anomalous = frame[frame["label"] == 1]
    assert len(anomalous) == 36
    assert all(Path(p).is_file() for p in anomalous["mask_file"])
    assert frame[frame["label"] == 0]["mask_file"].isna().all()
    single = to_pandas(_anomalous(demo["test"]))
    assert len(single) == 36 and set(single["split"]) == {"test"}


def test_torch_dataset(demo) -> None:  # noqa: ANN001
    import torch
    from torch.utils.data import DataLoader

    dataset = MVTecCaptionTorchDataset(demo["test"], image_size=(32, 48))
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    assert batch["image"].shape == (48, 3, 32, 48) and batch["image"].dtype == torch.float32
    assert 0.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0
    assert batch["mask"].shape == (48, 1, 32, 48)
    assert set(batch["mask"].unique().tolist()) == {0.0, 1.0}
    good = batch["label"] == 0
    assert all(c == "" for c, g in zip(batch["caption"], good) if g)
    assert all(c for c, g in zip(batch["caption"], good) if not g)
    assert not batch["mask"][good].any()
    full = MVTecCaptionTorchDataset(demo["train"])[0]
    assert full["image"].shape == (3, 128, 128) and full["metadata"]["defect_type"] == "good"


@pytest.mark.real_data
def test_bottle(bottle, shared_data: Path) -> None:  # noqa: ANN001
    captions = json.loads((shared_data / "mvtec_caption" / "captions.json").read_text())["mvtec_ad"]["bottle"]
    assert len(bottle["train"]) == 209
    test = bottle["test"]
    assert sum(1 for label in test["label"] if label == 0) == 20
    anomalous = _anomalous(test)
    assert len(anomalous) == 63
    rows = {(r["defect_type"], r["image_id"]): r for r in anomalous.remove_columns(["image", "mask"])}
    first = rows[("broken_large", "000")]
    assert first["mask_paths"] == ["bottle/ground_truth/broken_large/000_mask.png"]
    assert first["image_path"] == "bottle/test/broken_large/000.png"
    assert first["caption"] == captions["broken_large"][0]
    for (defect, image_id), row in rows.items():
        assert row["caption"] == captions[defect][int(image_id)]
        assert row["mask_paths"] == [f"bottle/ground_truth/{defect}/{image_id}_mask.png"]
    # the decoded mask is exactly the mask file
    index = next(i for i, (d, n) in enumerate(zip(anomalous["defect_type"], anomalous["image_id"])) if (d, n) == ("broken_large", "000"))
    decoded = np.asarray(anomalous[index]["mask"])
    with Image.open(shared_data / "mvtec_ad/bottle/ground_truth/broken_large/000_mask.png") as handle:
        assert np.array_equal(decoded, np.asarray(handle))


@pytest.mark.real_data
def test_juice_bottle_partial_copy(juice, shared_data: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    assert len(juice["train"]) == 60
    assert len(juice["validation"]) == 30
    test = juice["test"]
    assert len(test) == 142 and set(test["label"]) == {1}
    assert set(test["anomaly_kind"]) == {"logical"}
    for row in test.select(range(0, 142, 20)):
        mask = np.asarray(row["mask"])
        assert set(np.unique(mask)) <= {0, 255} and mask.any()
        assert row["mask"].size == row["image"].size == (400, 800)
    with caplog.at_level(logging.WARNING, logger="mvtec_caption"):
        load_dataset(subset="mvtec_loco", data_root=shared_data / "mvtec_loco", categories=["juice_bottle"],
                     caption_source=shared_data / "mvtec_caption" / "captions.json", progress=False)
    warned = caplog.text
    assert "juice_bottle/test/good" in warned
    assert "structural_anomalies" in warned


@pytest.mark.real_data
def test_juice_bottle_strict_raises(shared_data: Path) -> None:
    with pytest.raises(DatasetProblemsError) as error:
        load_dataset(subset="mvtec_loco", data_root=shared_data / "mvtec_loco", categories=["juice_bottle"],
                     caption_source=shared_data / "mvtec_caption" / "captions.json", strict=True, progress=False)
    assert {p.kind for p in error.value.problems} == {"missing_split"}
    assert {p.severity for p in error.value.problems} == {"warning"}


@pytest.mark.real_data
def test_loco_union_mask_matches_source(juice, shared_data: Path) -> None:  # noqa: ANN001
    row = juice["test"][0]
    with Image.open(shared_data / "mvtec_loco" / row["mask_paths"][0]) as handle:
        source = np.asarray(handle.convert("L"))
    assert np.array_equal(np.asarray(row["mask"]) > 0, source > 0)
