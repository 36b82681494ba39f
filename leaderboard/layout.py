"""Where things live in the leaderboard folder: the path *is* the identity of a result.

A result's path is derived from its own content (synthesizer name and version, protocol slug,
dataset, category), so a reader can trust the tree without opening files, and the validator can
reject any file whose content disagrees with where it sits.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from benchmark.results import ResultRecord

#: The leaderboard folder of this repository (the package folder doubles as the data folder).
DEFAULT_ROOT = Path(__file__).resolve().parent
RESULTS = "results"
META = "meta.json"
README = "README.md"
INDEX_HTML = "index.html"
PLOTS = "plots"
KEEP_FILES = frozenset({".gitkeep"})
#: No result record comes near this; a bigger file is a mistake (images, logs, dumps) or abuse.
MAX_FILE_BYTES = 1024 * 1024
#: One path component: no separators, no ``..``, no hidden names, nothing a shell or URL mangles.
#: Always matched in full (``fullmatch``): with ``match`` and ``$``, "bottle\n" would pass.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def default_manifest(root: Path) -> Path:
    """``annotations/manifest.json`` beside the leaderboard folder: the real datasets' caption hashes."""
    return Path(root).resolve().parent / "annotations" / "manifest.json"


def results_dir(root: Path) -> Path:
    return Path(root) / RESULTS


def is_safe_name(name: str) -> bool:
    return bool(SAFE_NAME.fullmatch(name)) and ".." not in name


@dataclass(frozen=True)
class ResultKey:
    """The five names a result's path encodes; equal keys mean the same leaderboard cell."""

    synthesizer: str
    version: str
    protocol_slug: str
    dataset: str
    category: str

    @classmethod
    def of(cls, record: ResultRecord) -> ResultKey:
        return cls(record.synthesizer_name, record.synthesizer_version, record.protocol.id.replace("/", "--"),
                   record.dataset.name, record.dataset.category)

    @classmethod
    def from_relative(cls, rel: PurePosixPath) -> ResultKey | None:
        """Parse ``<s>/<v>/<slug>/<dataset>/<category>.json`` (relative to ``results/``); None if not that shape."""
        parts = rel.parts
        if len(parts) != 5 or not parts[4].endswith(".json") or parts[4] == META:
            return None
        return cls(*parts[:4], parts[4][: -len(".json")])

    def unsafe_names(self) -> list[str]:
        return [name for name in self.names() if not is_safe_name(name)]

    def names(self) -> tuple[str, str, str, str, str]:
        return (self.synthesizer, self.version, self.protocol_slug, self.dataset, self.category)

    def relative(self) -> PurePosixPath:
        """Path below ``results/``; equals ``ResultRecord.relative_path()`` for the record it came from."""
        return PurePosixPath(self.synthesizer, self.version, self.protocol_slug, self.dataset, f"{self.category}.json")

    def meta_relative(self) -> PurePosixPath:
        return PurePosixPath(self.synthesizer, self.version, META)


class UnsafePathError(ValueError):
    """A record whose names would place it outside the leaderboard folder or in an odd path."""


def result_path(root: Path, record: ResultRecord) -> Path:
    """Absolute destination of ``record`` under ``root/results``, refusing names that could escape it."""
    key = ResultKey.of(record)
    bad = key.unsafe_names()
    if bad:
        raise UnsafePathError(f"names {bad} are not safe path components (allowed: {SAFE_NAME.pattern}, no '..')")
    base = results_dir(root).resolve()
    path = (base / key.relative()).resolve()
    if not path.is_relative_to(base):
        raise UnsafePathError(f"{key.relative()} resolves to {path}, outside {base}")
    assert PurePosixPath(record.relative_path().as_posix()) == key.relative()
    return base / key.relative()


def meta_path(root: Path, synthesizer: str, version: str) -> Path:
    return results_dir(root) / synthesizer / version / META


def display(path: Path, root: Path) -> str:
    """Path as shown in messages: relative to the leaderboard's parent (``leaderboard/results/...``) when inside it."""
    absolute, base = Path(os.path.abspath(path)), Path(os.path.abspath(root)).parent
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_posix()
