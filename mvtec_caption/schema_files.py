"""The JSON Schema files in ``annotations/schemas`` generated from the pydantic models.

One file per model and version (``<Model>.v<version>.json``), so a reader in another language
can validate exported records and manifests; ``export-schema --check`` (and a test) fail when
a model changed without its schema file being regenerated. ``CaptionAttributes`` has no
version of its own: it is part of a record and carries the record schema version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from mvtec_caption.schema import (
    MANIFEST_SCHEMA_VERSION,
    RECORD_SCHEMA_VERSION,
    CaptionAttributes,
    CaptionRecord,
    DatasetManifest,
)

#: Model -> schema version written into its file name.
SCHEMA_MODELS: dict[type[BaseModel], int] = {
    CaptionRecord: RECORD_SCHEMA_VERSION,
    DatasetManifest: MANIFEST_SCHEMA_VERSION,
    CaptionAttributes: RECORD_SCHEMA_VERSION,
}


def default_schema_dir() -> Path:
    """``annotations/schemas`` of the source checkout this package lives in."""
    return Path(__file__).resolve().parents[1] / "annotations" / "schemas"


def schema_text(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_file_name(model: type[BaseModel], version: int) -> str:
    return f"{model.__name__}.v{version}.json"


@dataclass(frozen=True)
class SchemaFile:
    path: Path
    text: str

    def is_current(self) -> bool:
        return self.path.is_file() and self.path.read_text(encoding="utf-8") == self.text


def expected_schema_files(directory: Path | None = None) -> list[SchemaFile]:
    directory = Path(directory) if directory else default_schema_dir()
    return [SchemaFile(directory / schema_file_name(m, v), schema_text(m)) for m, v in SCHEMA_MODELS.items()]


def write_schema_files(directory: Path | None = None) -> list[Path]:
    files = expected_schema_files(directory)
    for item in files:
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(item.text, encoding="utf-8")
    return [item.path for item in files]


def stale_schema_files(directory: Path | None = None) -> list[Path]:
    """Schema files that are missing or differ from the models (empty when current)."""
    return [item.path for item in expected_schema_files(directory) if not item.is_current()]
