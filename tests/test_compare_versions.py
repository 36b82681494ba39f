"""``benchmark compare`` with ``NAME@VERSION``: two versions of one synthesizer in one folder, still paired."""

from __future__ import annotations

import numpy as np
import pytest
from leaderboard_helpers import make_record

from benchmark.compare import compare_records, parse_synth
from benchmark.statistics import compare_paired

PROTOCOL = "mvtec-caption-cpu/v2"


def _unet(record, metric: str = "pixel_ap") -> list[float]:
    return [getattr(next(d for d in rep.detectors if d.name == "unet").overall, metric) for rep in record.repetitions]


def test_parse_synth() -> None:
    assert parse_synth("axf") == ("axf", None)
    assert parse_synth("axf@5") == ("axf", "5")


def test_two_versions_are_paired_when_named_with_their_version() -> None:
    old, new = make_record("axf", "2", protocol_id=PROTOCOL), make_record("axf", "5", protocol_id=PROTOCOL)
    other = make_record("croppaste", "1", protocol_id=PROTOCOL)
    [table] = compare_records([old, new, other], "axf@5", "axf@2")
    [row] = table.rows
    expected = compare_paired(_unet(new), _unet(old), True)
    assert (table.a, table.b, row.scope) == ("axf@5", "axf@2", "bottle")
    assert np.isclose(row.comparison.difference.mean, expected.difference.mean)
    assert row.comparison.verdict == expected.verdict
    # A version named against another synthesizer's bare name works too.
    [table] = compare_records([old, new, other], "axf@2", "croppaste")
    assert np.isclose(table.rows[0].comparison.difference.mean,
                      compare_paired(_unet(old), _unet(other), True).difference.mean)


def test_a_bare_name_with_several_versions_is_an_error_that_says_how_to_pick() -> None:
    records = [make_record("axf", "2", protocol_id=PROTOCOL), make_record("axf", "5", protocol_id=PROTOCOL),
               make_record("croppaste", "1", protocol_id=PROTOCOL)]
    with pytest.raises(ValueError, match=r"2 versions of axf .*\(2, 5\): name one as axf@VERSION"):
        compare_records(records, "axf", "croppaste")


def test_a_bare_name_with_one_version_behaves_as_before() -> None:
    records = [make_record("axf", "2", protocol_id=PROTOCOL), make_record("croppaste", "1", protocol_id=PROTOCOL)]
    [table] = compare_records(records, "axf", "croppaste")
    [named] = compare_records(records, "axf@2", "croppaste@1")
    assert np.isclose(table.rows[0].comparison.difference.mean, named.rows[0].comparison.difference.mean)


def test_the_table_names_the_version_where_one_synthesizer_has_several() -> None:
    """``benchmark table`` rows carry the names ``compare`` takes: ``axf@2`` and ``axf@5`` side by side, a
    synthesizer with one version by its bare name."""
    from benchmark.report import format_markdown, summaries_frame

    records = [make_record("axf", "2", protocol_id=PROTOCOL), make_record("axf", "5", protocol_id=PROTOCOL),
               make_record("croppaste", "1", protocol_id=PROTOCOL)]
    assert sorted(set(summaries_frame(records)["synthesizer"])) == ["axf@2", "axf@5", "croppaste"]
    assert "axf@5" in format_markdown(records) and "croppaste@" not in format_markdown(records)
    assert set(summaries_frame(records[1:])["synthesizer"]) == {"axf", "croppaste"}
