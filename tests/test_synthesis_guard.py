"""No synthesizer can see test data: by construction, by the guard, and by the split."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth_helpers import MALICIOUS, demo_split, path_leaks, tiny_split
from synthesis import registry
from synthesis.cli import main
from synthesis.generated_set import generate_set
from synthesis.guard import TestDataAccessError, forbid_reading, test_data_paths


@pytest.fixture
def malicious(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the test double for this test only."""
    registry.available()  # load the built-ins first
    monkeypatch.setitem(registry._REGISTRY, MALICIOUS.name, MALICIOUS)
    return MALICIOUS.name


# ---- (a) the training view holds pixels, not paths ----------------------------------------
def test_train_split_has_no_paths() -> None:
    train = demo_split().train
    # Relative to the dataset root only the category name resolves (it is a name, not a way to a file);
    # nothing resolves inside the category folder, where test/ and ground_truth/ live.
    assert path_leaks(train, roots=(demo_split().root / "disc",)) == []
    assert train.normals and train.anomalies


def test_leak_check_is_not_vacuous(tmp_path: Path) -> None:
    from dataclasses import replace

    train = tiny_split(16)
    assert path_leaks(train) == []
    assert path_leaks(replace(train, dataset=str(tmp_path)))
    assert path_leaks(replace(train, normals=(*train.normals, tmp_path)))
    (tmp_path / "test").mkdir()
    assert path_leaks(replace(train, protocol_id="test"), roots=(tmp_path,))


# ---- (b) reads of test data fail while a synthesizer runs ---------------------------------
def _target(kind: str) -> Path:
    root = demo_split().root / "disc"
    return {"image": root / "test" / "crack" / "000.png", "mask": root / "ground_truth" / "crack" / "000_mask.png",
            "folder": root / "test", "captions": demo_split().root / "captions.json"}[kind]


@pytest.mark.parametrize("when", ["fit", "synthesize"])
@pytest.mark.parametrize("kind", ["image", "mask", "folder"])
def test_cli_stops_a_synthesizer_reading_test_data(malicious: str, tmp_path: Path, when: str, kind: str) -> None:
    target = _target(kind)
    assert target.exists()
    how = "listdir" if kind == "folder" else "open"
    argv = ["generate", "--subset", "demo", "--category", "disc", "--image-size", "32", "--synth", malicious,
            "--config", f"target={target}", "--config", f"when={when}", "--config", f"how={how}",
            "--n", "1", "--out", str(tmp_path / "out"), "--no-grid"]
    with pytest.raises(TestDataAccessError):
        main(argv)


def test_cli_fit_is_guarded(malicious: str, tmp_path: Path) -> None:
    argv = ["fit", "--subset", "demo", "--category", "disc", "--image-size", "32", "--synth", malicious,
            "--config", f"target={_target('image')}", "--out", str(tmp_path / "ckpt")]
    with pytest.raises(TestDataAccessError):
        main(argv)
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize("kind", ["image", "captions"])
def test_generate_set_stops_reads_during_synthesis(malicious: str, tmp_path: Path, kind: str) -> None:
    split = demo_split()
    synthesizer = registry.create(malicious, {"target": str(_target(kind)), "when": "synthesize"})
    synthesizer.fit(split.train)
    with pytest.raises(TestDataAccessError):
        generate_set(synthesizer, split.train, tmp_path / "out", n_per_defect=1, seed=0, progress=False,
                     forbidden_paths=split.forbidden)
    synthesizer._peek()  # outside the guard the same read works: the check above is not vacuous


def test_guard_is_scoped(tmp_path: Path) -> None:
    secret = tmp_path / "test" / "x.txt"
    secret.parent.mkdir()
    secret.write_text("x")
    allowed = tmp_path / "train.txt"
    allowed.write_text("ok")
    with forbid_reading(test_data_paths(tmp_path.parent, tmp_path.name)):
        assert allowed.read_text() == "ok"
        with pytest.raises(TestDataAccessError):
            secret.read_text()
    assert secret.read_text() == "x"


# ---- (c) the few-shot split and the test split are disjoint -------------------------------
def _check_disjoint(split) -> None:  # noqa: ANN001
    fewshot = {(i.defect_type, i.image_id) for i in split.fewshot}
    tested = {(i.defect_type, i.image_id) for i in split.test_anomalous}
    assert fewshot and tested and not fewshot & tested
    assert all(i.source_split == "test" for i in (*split.fewshot, *split.test_anomalous))
    assert split.train_good and all(i.source_split == "train" for i in split.train_good)
    assert split.test_good and not any(i.source_split == "train" for i in split.test_good)


def test_demo_split_is_disjoint() -> None:
    split = demo_split().split
    _check_disjoint(split)
    summary = split.summary()
    assert summary["fewshot_train"] == 6 and summary["test_anomalous"] == 12 and summary["test_good"] == 6
    assert {t: c["fewshot_train"] for t, c in summary["per_defect_type"].items()} == {"crack": 3, "stain": 3}


def _load_bottle(shared_data: Path):  # noqa: ANN202
    from mvtec_caption import load_dataset

    return load_dataset("mvtec_caption", subset="mvtec_ad", data_root=shared_data / "mvtec_ad", categories=["bottle"],
                        caption_source=str(shared_data / "mvtec_caption" / "captions.json"), progress=False)


@pytest.mark.real_data
def test_real_bottle_split(shared_data: Path) -> None:
    from mvtec_caption.split import make_split

    split = make_split(_load_bottle(shared_data), "bottle", "test/256px", 256)
    _check_disjoint(split)
    summary = split.summary()
    assert summary["fewshot_train"] == 20 and summary["test_anomalous"] == 43 and summary["test_good"] == 20
    assert {t: c["fewshot_train"] for t, c in summary["per_defect_type"].items()} == {
        "broken_large": 6, "broken_small": 7, "contamination": 7}
    fewshot_ids = {t: sorted(i.image_id for i in split.fewshot if i.defect_type == t) for t in summary["per_defect_type"]}
    assert fewshot_ids["broken_large"] == [f"{i:03d}" for i in range(6)]  # the first floor(n/3) by id
