"""Every kind of schema.Problem on a generated tiny MVTec-format tree, via the API and the CLI."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from data_helpers import make_tree, run_cli, tree_fingerprint, write_captions, write_mask, write_png

from mvtec_caption.loader import DatasetProblemsError, load_dataset, resolve_dataset
from mvtec_caption.schema import Problem

CAPTIONS = {
    "widget": {"scratch": ["The widget has a scratch.", "The widget has a red stain."], "dent": ["The widget is dented."]},
    "gadget": {"crack": ["The gadget is cracked."]},
}


@dataclass
class Tiny:
    root: Path
    captions: Path

    def cli(self, command: str, *extra: str | Path):  # noqa: ANN201 (data_helpers.CliRun)
        return run_cli(command, "--subset", "mvtec_ad", "--data-root", self.root, "--caption-source", self.captions,
                       "--no-progress", *extra)

    def problems(self, categories: list[str] | None = None) -> list[Problem]:
        resolved = resolve_dataset("mvtec_ad", self.root, categories, caption_source=self.captions,
                                   check_files=True, progress=False)
        return resolved.scan.problems


@pytest.fixture
def tiny(tmp_path: Path) -> Tiny:
    return Tiny(make_tree(tmp_path / "mvtec_ad", CAPTIONS), write_captions(tmp_path / "captions.json", "mvtec_ad", CAPTIONS))


def _rename(path: str, new: str) -> Callable[[Path], None]:
    return lambda root: (root / path).rename(root / new)


def _garbage(path: str) -> Callable[[Path], None]:
    return lambda root: (root / path).write_bytes(b"\x89PNG but not really an image")


def _remove(path: str) -> Callable[[Path], None]:
    return lambda root: shutil.rmtree(root / path) if (root / path).is_dir() else (root / path).unlink()


def _chain(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        for step in steps:
            step(root)

    return run


@dataclass(frozen=True)
class Case:
    break_tree: Callable[[Path], None]
    kind: str
    severity: str
    path: str  # relative to the data root
    categories: tuple[str, ...] | None = None


CASES = {
    "missing_image": Case(_rename("widget/test/scratch/001.png", "widget/test/scratch/002.png"),
                          "missing_image", "error", "widget/test/scratch/001.png"),
    "unreadable_image": Case(_garbage("widget/test/scratch/000.png"), "unreadable_image", "error", "widget/test/scratch/000.png"),
    "unreadable_good_image": Case(_garbage("widget/train/good/001.png"), "unreadable_image", "error", "widget/train/good/001.png"),
    "missing_mask": Case(_remove("widget/ground_truth/dent/000_mask.png"), "missing_mask", "error",
                         "widget/ground_truth/dent/000_mask.png"),
    "unreadable_mask": Case(_garbage("gadget/ground_truth/crack/000_mask.png"), "unreadable_mask", "error",
                            "gadget/ground_truth/crack/000_mask.png"),
    "mask_size_mismatch": Case(lambda root: write_mask(root / "widget/ground_truth/scratch/001_mask.png", size=(5, 5)),
                               "mask_size_mismatch", "error", "widget/ground_truth/scratch/001_mask.png"),
    "caption_count_mismatch": Case(lambda root: write_png(root / "widget/test/scratch/002.png"),
                                   "caption_count_mismatch", "error", "widget/test/scratch"),
    "uncaptioned_defect_folder": Case(lambda root: write_png(root / "widget/test/bent/000.png"),
                                      "caption_count_mismatch", "error", "widget/test/bent"),
    "unknown_category": Case(lambda root: None, "unknown_category", "error", "", ("widget", "nosuch")),
    "uncaptioned_category_folder": Case(lambda root: make_tree(root, {"extra": {}}), "unknown_category", "warning", "extra"),
    "missing_category_requested": Case(_remove("gadget"), "missing_category", "error", "gadget", ("gadget", "widget")),
    "missing_category": Case(_remove("gadget"), "missing_category", "warning", "gadget"),
    "missing_good_split": Case(_remove("widget/test/good"), "missing_split", "warning", "widget/test/good"),
    "missing_defect_folder": Case(_chain(_remove("widget/test/dent"), _remove("widget/ground_truth/dent")),
                                  "missing_split", "warning", "widget/test/dent"),
}


def test_clean_tree_has_no_problems(tiny: Tiny) -> None:
    assert tiny.problems() == []
    run = tiny.cli("validate")
    assert run.code == 0, run.out + run.err
    assert "OK: 4 usable captioned images, 6 good images; 0 error(s), 0 warning(s)" in run.out


@pytest.mark.parametrize("name", list(CASES))
def test_problem_kind_via_api(tiny: Tiny, name: str) -> None:
    case = CASES[name]
    case.break_tree(tiny.root)
    problems = tiny.problems(list(case.categories) if case.categories else None)
    matching = [p for p in problems if p.kind == case.kind and p.severity == case.severity]
    assert matching, problems
    if case.path:
        assert any(p.path == str(tiny.root / case.path) for p in matching), matching
    # nothing unrelated is reported as an error
    assert all(p.severity == "warning" for p in problems) or any(p.severity == "error" for p in matching)


@pytest.mark.parametrize("name", list(CASES))
def test_problem_kind_via_cli(tiny: Tiny, name: str) -> None:
    case = CASES[name]
    case.break_tree(tiny.root)
    before = tree_fingerprint(tiny.root)
    extra = ["--categories", *case.categories] if case.categories else []
    run = tiny.cli("validate", *extra)
    assert "Traceback" not in run.err
    assert run.code == (1 if case.severity == "error" else 0), run.out + run.err
    line = next((row for row in run.out.splitlines() if case.kind in row and row.startswith(case.severity)), None)
    assert line is not None, run.out
    assert case.path in line
    assert tree_fingerprint(tiny.root) == before, "validate wrote into the dataset"
    if case.severity == "warning":
        strict = tiny.cli("validate", "--strict", *extra)
        assert strict.code == 1 and "FAILED" in strict.out


def test_loader_skips_broken_items_and_strict_raises(tiny: Tiny) -> None:
    _remove("widget/ground_truth/dent/000_mask.png")(tiny.root)
    ds = load_dataset(subset="mvtec_ad", data_root=tiny.root, caption_source=tiny.captions, progress=False)
    assert sorted(ds["test"].filter(lambda r: r["label"] == 1)["defect_type"]) == ["crack", "scratch", "scratch"]
    with pytest.raises(DatasetProblemsError) as error:
        load_dataset(subset="mvtec_ad", data_root=tiny.root, caption_source=tiny.captions, strict=True, progress=False)
    assert [p.kind for p in error.value.problems] == ["missing_mask"]


def test_loco_layout_masks_are_found_per_folder(tmp_path: Path) -> None:
    captions = {"box": {"logical_anomalies": ["The box is missing a nut."]}}
    root = make_tree(tmp_path / "loco", captions, layout="loco", n_validation=1)
    source = write_captions(tmp_path / "c.json", "mvtec_loco", captions)
    resolved = resolve_dataset("mvtec_loco", root, caption_source=source, check_files=True, progress=False)
    assert resolved.scan.problems == []
    (record,) = resolved.scan.records
    assert record.mask_paths == ["box/ground_truth/logical_anomalies/000/000.png", "box/ground_truth/logical_anomalies/000/001.png"]
    assert record.attributes.kind == "logical"
    shutil.rmtree(root / "box/ground_truth/logical_anomalies/000")
    problems = resolve_dataset("mvtec_loco", root, caption_source=source, progress=False).scan.problems
    assert [(p.kind, p.path) for p in problems] == [("missing_mask", str(root / "box/ground_truth/logical_anomalies/000/000.png"))]


def test_category_folder_as_root_gets_a_hint(tiny: Tiny) -> None:
    run = run_cli("validate", "--subset", "mvtec_ad", "--data-root", tiny.root / "widget", "--caption-source", tiny.captions,
                  "--no-progress")
    assert run.code == 1
    assert "--categories widget" in run.out
