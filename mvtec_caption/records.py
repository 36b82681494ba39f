"""Read and write :class:`~mvtec_caption.schema.CaptionRecord` JSON lines (``records.jsonl``).

Reading goes through :data:`mvtec_caption.migrations.record_migrations`, so files written by an
older release are upgraded (schema v1's single ``mask_path`` becomes ``mask_paths``) and files
from a newer release fail with a message that says so, instead of being half-read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from mvtec_caption.migrations import SchemaVersionError, record_migrations
from mvtec_caption.schema import CaptionRecord


class RecordsFileError(ValueError):
    """A records file that is not valid JSON lines of caption records; names file and line."""


def write_records(path: Path, records: Iterable[CaptionRecord]) -> Path:
    """One record per line, current schema version, stable key order; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.model_dump(mode="json"), sort_keys=True, ensure_ascii=False) + "\n")
    return path


def read_records(path: Path) -> list[CaptionRecord]:
    """All records of a file, upgraded to the current schema version."""
    path = Path(path)
    records: list[CaptionRecord] = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecordsFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise RecordsFileError(f"{where}: not JSON ({err.msg})") from err
        if not isinstance(data, dict):
            raise RecordsFileError(f"{where}: expected a JSON object, got {type(data).__name__}")
        try:
            records.append(CaptionRecord.model_validate(record_migrations.upgrade(data)))
        except SchemaVersionError as err:
            raise SchemaVersionError(f"{where}: {err}") from err
        except (ValidationError, KeyError, ValueError) as err:
            raise RecordsFileError(f"{where}: not a valid caption record ({err})") from err
    return records
