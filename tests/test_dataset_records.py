"""records.jsonl: write/read round trip, v1 -> v2 upgrade, newer or broken files refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mvtec_caption.attributes import derive_attributes
from mvtec_caption.migrations import SchemaVersionError
from mvtec_caption.records import RecordsFileError, read_records, write_records
from mvtec_caption.schema import RECORD_SCHEMA_VERSION, CaptionRecord


def _record(**changes: object) -> CaptionRecord:
    data = dict(dataset="mvtec_loco", category="box", defect_type="logical_anomalies", image_id="004",
                image_path="box/test/logical_anomalies/004.png",
                mask_paths=["box/ground_truth/logical_anomalies/004/000.png", "box/ground_truth/logical_anomalies/004/001.png"],
                caption="The box is missing two nuts.", caption_index=4,
                attributes=derive_attributes("The box is missing two nuts.", "mvtec_loco", "logical_anomalies", "box"))
    data.update(changes)
    return CaptionRecord(**data)


def _v1(record: CaptionRecord) -> dict:
    """How schema v1 (the draft) stored a record: one merged `mask_path`, no index or demo flag."""
    data = record.model_dump(mode="json")
    data["schema_version"] = 1
    data["mask_path"] = f"{record.category}/ground_truth/{record.defect_type}/{record.image_id}.png"
    for name in ("mask_paths", "caption_index", "is_demo"):
        data.pop(name)
    return data


def _write_lines(path: Path, items: list[object]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def test_round_trip(tmp_path: Path) -> None:
    records = [_record(), _record(image_id="005", caption_index=5, is_demo=True)]
    path = write_records(tmp_path / "out" / "records.jsonl", records)
    assert read_records(path) == records
    first = json.loads(path.read_text().splitlines()[0])
    assert first["schema_version"] == RECORD_SCHEMA_VERSION and list(first) == sorted(first)


def test_v1_records_are_upgraded(tmp_path: Path) -> None:
    original = _record()
    path = _write_lines(tmp_path / "records.jsonl", [_v1(original), {**_v1(original), "dataset": "demo"}])
    upgraded, demo = read_records(path)
    assert upgraded.schema_version == 2
    assert upgraded.mask_paths == ["box/ground_truth/logical_anomalies/004.png"]
    assert upgraded.caption_index == 4 and upgraded.is_demo is False
    assert upgraded.caption == original.caption and upgraded.attributes == original.attributes
    assert demo.is_demo is True


def test_newer_version_fails_clearly(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "records.jsonl", [_record().model_dump(mode="json"), {**_record().model_dump(mode="json"), "schema_version": 3}])
    with pytest.raises(SchemaVersionError, match=r"records.jsonl:2: .*schema version 3 is newer"):
        read_records(path)


@pytest.mark.parametrize(
    ("line", "error", "message"),
    [
        ("{not json", RecordsFileError, "not JSON"),
        ("[1, 2]", RecordsFileError, "expected a JSON object"),
        ('{"dataset": "x"}', SchemaVersionError, "no integer `schema_version`"),
        ('{"schema_version": 0}', SchemaVersionError, "no upgrade from schema version 0"),
        ('{"schema_version": 2, "dataset": "x"}', RecordsFileError, "not a valid caption record"),
        ('{"schema_version": 1, "dataset": "x"}', RecordsFileError, "not a valid caption record"),
    ],
)
def test_broken_lines_name_file_and_line(tmp_path: Path, line: str, error: type[Exception], message: str) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("\n" + line + "\n", encoding="utf-8")
    with pytest.raises(error, match=f"records.jsonl:2: .*{message}"):
        read_records(path)
