"""One way to prepare a category: every command locates the data once per run and scans each category once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import mvtec_caption.loader as loader
from mvtec_caption.loader import locate_dataset, resolve_dataset
from mvtec_caption.prepare import prepare_category


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts caption-source loads ("locate") and, per category, file scans."""
    counts: Counter = Counter()
    real_scan, real_load = loader.scan_dataset, loader.load_json_source

    def scan(subset, root, captions, categories=None, **kwargs):  # noqa: ANN001, ANN202
        counts.update(f"scan {c}" for c in (categories if categories is not None else ["<all>"]))
        return real_scan(subset, root, captions, categories, **kwargs)

    def load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        counts["locate"] += 1
        return real_load(*args, **kwargs)

    monkeypatch.setattr(loader, "scan_dataset", scan)
    monkeypatch.setattr(loader, "load_json_source", load)
    return counts


def test_listing_categories_reads_no_file_and_agrees_with_a_full_scan() -> None:
    source = locate_dataset("demo")
    assert source.categories() == resolve_dataset("demo", progress=False).scan.categories == ["disc", "weave"]


def test_benchmark_plan_locates_once_and_scans_each_category_once(counted: Counter, tmp_path: Path, capsys) -> None:
    from benchmark.cli import main

    assert main(["plan", "--synth", "perlin", "--dataset", "demo", "--detectors", "unet",
                 "--out", str(tmp_path / "out")]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["request"]["categories"] == ["disc", "weave"]  # the default: every category, listed without a scan
    assert counted == Counter({"locate": 1, "scan disc": 1, "scan weave": 1})


def test_synthesis_generate_locates_and_scans_once(counted: Counter, tmp_path: Path) -> None:
    from synthesis.cli import main

    assert main(["generate", "--subset", "demo", "--category", "disc", "--synth", "perlin", "--n", "1",
                 "--image-size", "32", "--no-grid", "--out", str(tmp_path / "gen")]) == 0
    assert counted == Counter({"locate": 1, "scan disc": 1})


def test_a_located_source_serves_several_categories(counted: Counter) -> None:
    source = locate_dataset("demo", None, ["disc", "weave"])
    prepared = [prepare_category(c, protocol_id="adhoc/32px", image_size=32, source=source) for c in ("disc", "weave")]
    assert counted == Counter({"locate": 1, "scan disc": 1, "scan weave": 1})
    disc = prepared[0]
    assert disc.split.category == "disc" and disc.train.category == "disc" and disc.train.image_size == 32
    assert {p.name for p in disc.forbidden_paths} >= {"test", "ground_truth"}
    tested = {(item.defect_type, item.image_id) for item in disc.test_items}
    fitted = {(a.defect_type, a.image_id) for a in disc.train.anomalies}
    assert tested and fitted and not tested & fitted  # no image in both


def test_an_unknown_category_is_named() -> None:
    from mvtec_caption.loader import DatasetProblemsError

    with pytest.raises(DatasetProblemsError, match="nosuch"):
        prepare_category("nosuch", protocol_id="adhoc/32px", image_size=32, subset="demo")
