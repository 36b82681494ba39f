"""Feature cache: a resumed benchmark run reuses network outputs instead of recomputing them.

Entries are keyed by a hash of (what was computed, the extractor's weights sha256, its settings,
a content hash of the inputs), kept in memory and, with a folder, as ``.npy`` files written
atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mvtec_caption.atomic import atomic_write
from synthesis.contract import canonical_hash


class FeatureCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def key(self, kind: str, parts: Mapping[str, Any]) -> str:
        return canonical_hash({"kind": kind, **parts})

    def get_or_compute(self, kind: str, parts: Mapping[str, Any], compute: Callable[[], np.ndarray]) -> np.ndarray:
        key = self.key(kind, parts)
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        path = self.root / kind / f"{key}.npy" if self.root is not None else None
        if path is not None and path.is_file():
            try:
                value = np.load(path, allow_pickle=False)
                self.hits += 1
                self._memory[key] = value
                return value
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # damaged entry: recompute
        self.misses += 1
        value = np.asarray(compute())
        self._memory[key] = value
        if path is not None:
            with atomic_write(path) as handle:
                np.save(handle, value, allow_pickle=False)
        return value
