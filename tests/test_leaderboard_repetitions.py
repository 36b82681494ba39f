"""Leaderboard sections of a protocol with repetitions: mean ± interval cells, rank groups, error bars,
reasons listed once, byte-for-byte reproducible rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderboard_helpers import make_board, make_record, populate

from benchmark.results import ResultRecord, summarize_repetitions
from leaderboard.render import render_outputs
from leaderboard.tables import TOP_GROUP_MARK, build_sections, rank_groups
from leaderboard.validate import validate_tree

pytestmark = pytest.mark.usefixtures("pinned_clip")

V2 = "mvtec-caption-cpu/v2"


def with_pixel_ap(record: ResultRecord, values: list[float]) -> ResultRecord:
    """The record with the unet's overall pixel AP of each repetition set to ``values`` (summary recomputed)."""
    repetitions = []
    for rep, value in zip(record.repetitions, values):
        detectors = [d.model_copy(update={"overall": d.overall.model_copy(update={"pixel_ap": value})})
                     for d in rep.detectors]
        repetitions.append(rep.model_copy(update={"detectors": detectors}))
    return record.model_copy(update={"repetitions": repetitions, "summary": summarize_repetitions(repetitions)})


def records() -> list[ResultRecord]:
    """axf ahead of cutpaste by 0.2 in every repetition; perlin within the seed noise of axf."""
    made = []
    for category, shift in (("bottle", 0.0), ("cable", 0.05)):
        made.append(with_pixel_ap(make_record("axf", "1", category, protocol_id=V2), [0.80 + shift, 0.70 + shift, 0.75 + shift]))
        made.append(with_pixel_ap(make_record("perlin", "1", category, protocol_id=V2), [0.70 + shift, 0.78 + shift, 0.74 + shift]))
        made.append(with_pixel_ap(make_record("cutpaste", "2", category, protocol_id=V2), [0.60 + shift, 0.50 + shift, 0.55 + shift]))
        made.append(make_record(None, "0", category, protocol_id=V2))
    return made


def test_groups_separate_a_consistent_gap_and_tie_the_noise(tmp_path: Path) -> None:
    board = populate(make_board(tmp_path), tmp_path, records())
    report = validate_tree(board)
    assert report.ok, report.errors
    section = next(s for s in build_sections([r for _, r in report.records()], {}) if s.protocol.id == V2)
    comparable = [row for row in section.rows if row.comparable]
    groups = rank_groups(section, comparable)
    assert groups["axf v1"] == 1 and groups["perlin v1 †" if "perlin v1 †" in groups else "perlin v1"] == 1
    assert groups["cutpaste v2"] > 1


def test_repeated_sections_render_intervals_groups_and_are_reproducible(tmp_path: Path) -> None:
    board = populate(make_board(tmp_path), tmp_path, records())
    first = render_outputs(validate_tree(board))
    assert render_outputs(validate_tree(board)) == first
    readme = first["README.md"].decode()
    section = readme[readme.index("## mvtec-caption-cpu/v2 · mvtec_ad"):]
    axf = next(line for line in section.splitlines() if line.startswith("| axf v1 |"))
    # pixel AP of axf: per-repetition means over the 2 categories 0.825, 0.725, 0.775 -> 0.775 ± 0.124
    assert f"| 1 {TOP_GROUP_MARK} |" in axf and "0.775 ± 0.124" in axf
    assert "repetitions per category of each row" in section and "axf v1 3" in section
    assert "group 1 (★) is the best row" in section
    html = first["index.html"].decode()
    assert "0.775 ± 0.124" in html and 'data-value="0.775' in html
    plots = [name for name in first if name.endswith(".png") and "cpu--v2" in name]
    assert plots, "error-bar plots of the v2 section"
