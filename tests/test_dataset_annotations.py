"""annotations/: the committed manifest matches the real captions, and holds no caption text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mvtec_caption.manifest import build_manifest, manifest_json, read_manifest
from mvtec_caption.sources import load_json_source
from mvtec_caption.upstream import UPSTREAM_CAPTIONS_SHA256, UPSTREAM_COMMIT, UPSTREAM_FILES

ANNOTATIONS = Path(__file__).resolve().parents[1] / "annotations"


def test_committed_manifest_is_consistent() -> None:
    manifest = read_manifest(ANNOTATIONS / "manifest.json")
    assert manifest.total == 2251 and not manifest.is_demo
    assert {name: counts.total for name, counts in manifest.datasets.items()} == {"mvtec_ad": 1258, "mvtec_loco": 993}
    assert len(manifest.datasets["mvtec_ad"].categories) == 15
    assert sum(len(c.defect_types) for c in manifest.datasets["mvtec_ad"].categories.values()) == 73
    assert len(manifest.datasets["mvtec_loco"].categories) == 5
    source = manifest.source
    assert source.kind == "upstream" and source.upstream_commit == UPSTREAM_COMMIT
    assert {k: v.sha256 for k, v in source.upstream_files.items()} == {k: v[1] for k, v in UPSTREAM_FILES.items()}
    assert source.captions_sha256 == UPSTREAM_CAPTIONS_SHA256
    assert (ANNOTATIONS / "manifest.json").read_text(encoding="utf-8") == manifest_json(manifest)


@pytest.mark.real_data
def test_manifest_equals_what_the_shared_captions_produce(shared_captions: Path) -> None:
    expected = manifest_json(build_manifest(load_json_source(shared_captions)))
    assert (ANNOTATIONS / "manifest.json").read_text(encoding="utf-8") == expected, (
        "regenerate with: python -m mvtec_caption info --caption-source ../shared/data/mvtec_caption/captions.json "
        "--write-manifest annotations/manifest.json"
    )


@pytest.mark.real_data
def test_no_caption_text_is_committed(shared_captions: Path) -> None:
    data = json.loads(shared_captions.read_text(encoding="utf-8"))
    captions = {t for cats in data.values() for defects in cats.values() for texts in defects.values() for t in texts}
    for path in ANNOTATIONS.rglob("*"):
        if path.is_file():
            assert path.suffix in {".json", ".md"}, f"unexpected file in annotations/: {path}"
            text = path.read_text(encoding="utf-8")
            leaked = [c for c in captions if c in text]
            assert not leaked, f"{path} contains caption text, e.g. {leaked[0]!r}"
