"""``python -m mvtec_caption`` commands: info, stats, export, export-schema, and that none of
them writes into the dataset folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_helpers import make_tree, run_cli, tree_fingerprint, unused_port, write_captions
from PIL import Image

from mvtec_caption.loader import load_dataset
from mvtec_caption.manifest import read_manifest
from mvtec_caption.records import read_records

REPO = Path(__file__).resolve().parents[1]
CAPTIONS = {
    "widget": {"scratch": ["The widget has a red scratch on the left.", "Two screws are missing."], "dent": ["The widget is dented."]},
}


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    return make_tree(tmp_path / "data", CAPTIONS), write_captions(tmp_path / "captions.json", "mvtec_ad", CAPTIONS)


def test_help_and_usage_errors() -> None:
    run = run_cli("--help")
    assert run.code == 0 and "export-schema" in run.out and "exit status" in run.out
    assert "WARNING, not an error" in run_cli("validate", "--help").out
    assert run_cli("nosuch").code == 2
    run = run_cli("validate", "--no-progress")
    assert run.code == 2 and "needs --subset" in run.err and "Traceback" not in run.err


def test_entry_point_runs_as_module() -> None:
    result = subprocess.run([sys.executable, "-m", "mvtec_caption", "--help"], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0 and "validate" in result.stdout


def test_offline_without_source_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MVTEC_CAPTION_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("MVTEC_CAPTION_BASE_URL", f"http://127.0.0.1:{unused_port()}")
    run = run_cli("info", "--subset", "mvtec_ad")
    assert run.code == 2
    assert run.err.startswith("error: could not download") and "MVTEC_CAPTION_SOURCE" in run.err
    assert "Traceback" not in run.err


def test_missing_data_root_is_a_clear_error(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    _, captions = tiny
    run = run_cli("validate", "--subset", "mvtec_ad", "--data-root", tmp_path / "nope", "--caption-source", captions)
    assert run.code == 2 and "is not a folder" in run.err


def test_info_demo_and_manifest(tmp_path: Path, demo_root: Path) -> None:
    target = tmp_path / "manifest.json"
    run = run_cli("info", "--subset", "demo", "--data-root", demo_root, "--write-manifest", target)
    assert run.code == 0, run.err
    assert "caption source: demo" in run.out
    assert "disc" in run.out and "crack 9" in run.out
    assert "36 records, 60 good images, 0 error(s), 0 warning(s)" in run.out
    manifest = read_manifest(target)
    assert manifest.is_demo and manifest.total == 36
    assert manifest.datasets["demo"].categories["weave"].defect_types == {"hole": 9, "thread": 9}


def test_info_refuses_manifest_inside_dataset(tiny: tuple[Path, Path]) -> None:
    root, captions = tiny
    run = run_cli("info", "--subset", "mvtec_ad", "--data-root", root, "--caption-source", captions,
                  "--write-manifest", root / "manifest.json")
    assert run.code == 2 and "refusing" in run.err
    assert not (root / "manifest.json").exists()


@pytest.mark.real_data
def test_info_on_shared_data(shared_data: Path) -> None:
    run = run_cli("info", "--subset", "mvtec_loco", "--data-root", shared_data / "mvtec_loco", "--categories", "juice_bottle",
                  "--caption-source", shared_data / "mvtec_caption" / "captions.json")
    assert run.code == 0, run.err
    assert "identical to the pinned upstream captions: yes" in run.out
    assert "pinned file mvtec_loco: tools/Construct_MVTEC-LOCO-Caption.py  sha256 f05813823cc5" in run.out
    assert "juice_bottle" in run.out and "logical_anomalies 142, structural_anomalies 94" in run.out
    assert "good images: train 60, validation 30, test 0" in run.out
    assert "hint: juice_bottle has no good test images" in run.out


@pytest.mark.real_data
def test_validate_on_shared_data(shared_data: Path) -> None:
    """Both real copies validate: bottle without problems, juice_bottle with partial-copy warnings only."""
    captions = shared_data / "mvtec_caption" / "captions.json"
    before = tree_fingerprint(shared_data, content=False)
    bottle = run_cli("validate", "--subset", "mvtec_ad", "--data-root", shared_data / "mvtec_ad", "--categories", "bottle",
                     "--caption-source", captions, "--no-progress")
    assert bottle.code == 0, bottle.out
    assert "OK: 63 usable captioned images, 229 good images; 0 error(s), 0 warning(s)" in bottle.out
    juice = ["validate", "--subset", "mvtec_loco", "--data-root", shared_data / "mvtec_loco", "--categories", "juice_bottle",
             "--caption-source", captions, "--no-progress"]
    loco = run_cli(*juice)
    assert loco.code == 0, loco.out
    assert "OK: 142 usable captioned images, 90 good images; 0 error(s), 2 warning(s)" in loco.out
    assert "juice_bottle/test/good" in loco.out and "juice_bottle/test/structural_anomalies" in loco.out
    assert run_cli(*juice, "--strict").code == 1
    assert tree_fingerprint(shared_data, content=False) == before


def test_stats_writes_figures_and_tables(tmp_path: Path, demo_root: Path) -> None:
    out = tmp_path / "stats"
    run = run_cli("stats", "--subset", "demo", "--out", out)
    assert run.code == 0, run.err
    names = sorted(p.name for p in out.iterdir())
    assert names == [".mvtec-caption-bench.json", "attributes.csv", "attributes_demo.png", "categories.png", "keywords.csv",
                     "stats.md", "summary.csv"]  # the marker lets a later `stats --out` recognise its own folder
    for png in out.glob("*.png"):
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] > 500
    report = (out / "stats.md").read_text()
    assert "DEMO DATA" in report and "sha256 of parsed captions" in report and "mvtec_caption 0.1.0" in report
    import pandas as pd

    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[summary["category"] == "(all)", "captions"].item() == 36
    attributes = pd.read_csv(out / "attributes.csv")
    colours = attributes[(attributes["category"] == "(all)") & (attributes["attribute"] == "colors")]
    assert set(colours["value"]) <= {"red", "green", "blue", "yellow", "brown"} and len(colours) > 0
    # deterministic: a second run gives the same bytes
    again = tmp_path / "again"
    assert run_cli("stats", "--subset", "demo", "--out", again).code == 0
    for path in out.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.real_data
def test_stats_on_real_captions(tmp_path: Path, shared_captions: Path) -> None:
    run = run_cli("stats", "--caption-source", shared_captions, "--out", tmp_path)
    assert run.code == 0, run.err
    import pandas as pd

    summary = pd.read_csv(tmp_path / "summary.csv").set_index(["dataset", "category"])
    assert summary.loc[("mvtec_ad", "(all)"), "captions"] == 1258
    assert summary.loc[("mvtec_ad", "(all)"), "defect_types"] == 73
    assert summary.loc[("mvtec_loco", "(all)"), "captions"] == 993
    assert summary.loc[("mvtec_loco", "juice_bottle"), "logical"] == 142
    assert {p.name for p in tmp_path.glob("*.png")} == {"attributes_mvtec_ad.png", "attributes_mvtec_loco.png", "categories.png"}
    assert "hujiecpp/MVTec-Caption@2350d89c028f" in (tmp_path / "stats.md").read_text()


@pytest.mark.parametrize("fmt", ["parquet", "imagefolder"])
def test_export_round_trip_demo(tmp_path: Path, demo_root: Path, fmt: str) -> None:
    import datasets

    out = tmp_path / "export"
    run = run_cli("export", "--subset", "demo", "--format", fmt, "--out", out, "--no-progress")
    assert run.code == 0, run.out + run.err
    original = load_dataset(subset="demo", progress=False)
    exported = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(exported) == sorted(original)
    for split in original:
        assert exported[split].features == original[split].features
        assert len(exported[split]) == len(original[split])
        plain = [c for c in original[split].column_names if c not in ("image", "mask")]
        assert exported[split].select_columns(plain).to_list() == original[split].select_columns(plain).to_list()
        for index in (0, len(original[split]) - 1):
            for column in ("image", "mask"):
                assert np.array_equal(np.asarray(exported[split][index][column]), np.asarray(original[split][index][column]))
    records = read_records(out / "records.jsonl")
    assert len(records) == 36 and all(r.is_demo for r in records)
    assert read_manifest(out / "manifest.json").total == 36
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\n") and "configs:" in readme and "DEMO DATA" in readme


def test_export_refuses_existing_or_inside_dataset(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    root, captions = tiny
    common = ["--subset", "mvtec_ad", "--data-root", root, "--caption-source", captions, "--format", "parquet", "--no-progress"]
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    run = run_cli("export", *common, "--out", occupied)
    assert run.code == 2 and "already exists" in run.err
    run = run_cli("export", *common, "--out", root / "widget" / "export")
    assert run.code == 2 and "refusing" in run.err
    assert not (root / "widget" / "export").exists()


def test_export_strict_refuses_partial_copy(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    root, captions = tiny
    (root / "widget" / "test" / "good" / "000.png").unlink()
    common = ["--subset", "mvtec_ad", "--data-root", root, "--caption-source", captions, "--format", "parquet", "--no-progress"]
    run = run_cli("export", *common, "--out", tmp_path / "strict", "--strict")
    assert run.code == 2 and "nothing exported" in run.err
    assert not (tmp_path / "strict").exists()
    run = run_cli("export", *common, "--out", tmp_path / "lenient")
    assert run.code == 0 and "missing_split" in run.out
    assert "no good test images" in (tmp_path / "lenient" / "README.md").read_text()


@pytest.mark.parametrize(
    "command",
    [
        ["info"],
        ["validate"],
        ["stats", "--out", "{tmp}/stats"],
        ["export", "--format", "parquet", "--out", "{tmp}/parquet"],
        ["export", "--format", "imagefolder", "--out", "{tmp}/imagefolder"],
        ["export", "--format", "imagefolder", "--out", "{root}/widget/inside"],
    ],
    ids=["info", "validate", "stats", "export-parquet", "export-imagefolder", "export-inside-refused"],
)
def test_dataset_tree_is_byte_identical_after_command(tmp_path: Path, tiny: tuple[Path, Path], command: list[str]) -> None:
    root, captions = tiny
    before = tree_fingerprint(root)
    args = [a.format(tmp=tmp_path, root=root) for a in command]
    run_cli(*args[:1], "--subset", "mvtec_ad", "--data-root", root, "--caption-source", captions, "--no-progress", *args[1:])
    assert tree_fingerprint(root) == before


def test_export_schema_check(tmp_path: Path) -> None:
    assert run_cli("export-schema", "--check").code == 0, "annotations/schemas is stale: run python -m mvtec_caption export-schema"
    assert run_cli("export-schema", "--check", "--dir", tmp_path).code == 1
    run = run_cli("export-schema", "--dir", tmp_path)
    assert run.code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CaptionAttributes.v2.json", "CaptionRecord.v2.json", "DatasetManifest.v1.json"]
    assert run_cli("export-schema", "--check", "--dir", tmp_path).code == 0
    text = (tmp_path / "CaptionRecord.v2.json").read_text()
    assert text.endswith("}\n") and json.loads(text)["properties"]["schema_version"]["const"] == 2
    (tmp_path / "DatasetManifest.v1.json").write_text("{}\n")
    run = run_cli("export-schema", "--check", "--dir", tmp_path)
    assert run.code == 1 and "DatasetManifest.v1.json" in run.out


def test_parquet_export_shards_keep_order(tmp_path: Path, demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from mvtec_caption import export

    monkeypatch.setattr(export, "MAX_SHARD_BYTES", 60_000)
    out = tmp_path / "sharded"
    assert run_cli("export", "--subset", "demo", "--format", "parquet", "--out", out, "--no-progress").code == 0
    shards = sorted(p.name for p in (out / "data").glob("test-*.parquet"))
    assert len(shards) > 1 and shards[-1].endswith(f"-of-{len(shards):05d}.parquet")
    exported = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"), split="test")
    original = load_dataset(subset="demo", split="test", progress=False)
    assert exported["image_path"] == original["image_path"]
