"""Upgrade data written under an older schema version, or refuse it with a clear message.

A :class:`Migrations` table maps each old version to a function producing the next version,
so reading any stored record is: look at ``schema_version``, apply steps until current,
validate with the current model. Other packages (results, leaderboard) use the same helper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mvtec_caption.schema import RECORD_SCHEMA_VERSION

Step = Callable[[dict[str, Any]], dict[str, Any]]


class SchemaVersionError(ValueError):
    """Data of a schema version this code cannot read."""


@dataclass
class Migrations:
    what: str
    current: int
    steps: dict[int, Step] = field(default_factory=dict)  # version v -> function returning v + 1

    def register(self, from_version: int) -> Callable[[Step], Step]:
        def decorate(step: Step) -> Step:
            self.steps[from_version] = step
            return step

        return decorate

    def upgrade(self, data: dict[str, Any]) -> dict[str, Any]:
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise SchemaVersionError(f"{self.what}: no integer `schema_version` field (got {version!r})")
        if version > self.current:
            raise SchemaVersionError(
                f"{self.what}: schema version {version} is newer than this code understands ({self.current}); "
                "upgrade mvtec-caption-bench"
            )
        data = dict(data)
        while version < self.current:
            if version not in self.steps:
                raise SchemaVersionError(f"{self.what}: no upgrade from schema version {version}; re-create the data")
            data = self.steps[version](data)
            version += 1
            data["schema_version"] = version
        return data


record_migrations = Migrations(what="caption record", current=RECORD_SCHEMA_VERSION)


@record_migrations.register(1)
def _record_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 stored one ``mask_path`` (LOCO's merged mask); v2 lists the source masks."""
    data = dict(data)
    data["mask_paths"] = [data.pop("mask_path")]
    data.setdefault("caption_index", int(data["image_id"]))
    data.setdefault("is_demo", data.get("dataset") == "demo")
    return data
