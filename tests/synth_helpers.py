"""Helpers for the synthesis tests: small training splits, fast synthesizers, a malicious one.

Kept out of conftest so test modules import what they use explicitly.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from synthesis import registry
from synthesis.contract import FewShotAnomaly, NormalImage, SampleSpec, SynthesisOutput, Synthesizer, TrainSplit

TINY_SIZE = 64  # contract tests run every synthesizer at this size


@dataclasses.dataclass(frozen=True)
class DemoSplit:
    train: TrainSplit
    split: Any  # mvtec_caption.split.ProtocolSplit
    root: Path
    forbidden: tuple[Path, ...]


@lru_cache(maxsize=None)
def demo_split(category: str = "disc", size: int = TINY_SIZE) -> DemoSplit:
    """The demo category's protocol split and training view (the CLI's path, without the CLI)."""
    from mvtec_caption.demo import demo_root
    from mvtec_caption.prepare import prepare_category

    root = demo_root()
    prepared = prepare_category(category, protocol_id=f"test/{size}px", image_size=size, subset="demo", data_root=root)
    return DemoSplit(prepared.train, prepared.split, root, prepared.forbidden_paths)


def tiny_split(size: int, n_normals: int = 4, n_anomalies: int = 3, seed: int = 0) -> TrainSplit:
    """A drawn object split at any size (odd sizes included): grey discs on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]

    def disc() -> np.ndarray:
        radius = size * rng.uniform(0.3, 0.38)
        inside = np.hypot(yy - size / 2, xx - size / 2) < radius
        grey = np.where(inside, 170, 30) + rng.normal(0, 4, (size, size))
        return np.clip(np.stack([grey, grey * 0.95, grey * 1.05], -1), 0, 255).astype(np.uint8)

    normals = tuple(NormalImage(f"{i:03d}", disc()) for i in range(n_normals))
    anomalies = []
    for i in range(n_anomalies):
        image = disc()
        cy, cx = size / 2 + rng.uniform(-0.15, 0.15, 2) * size
        mask = np.hypot(yy - cy, xx - cx) < max(2.0, size * 0.06)
        image[mask] = (200, 40, 40)
        anomalies.append(FewShotAnomaly("spot", f"{i:03d}", image, mask, f"A red spot {i}."))
    return TrainSplit("tiny", "discs", size, normals, tuple(anomalies), is_demo=True, protocol_id=f"tiny/{size}px")


def create_fast(name: str, **overrides: Any) -> Synthesizer:
    """A registered synthesizer with its ``tiny_config`` (plus overrides)."""
    cls = registry.entry(name).load_class()
    return registry.create(name, config={**cls.tiny_config(), **overrides})


def walk(value: Any, trail: str = "train") -> list[tuple[str, Any]]:
    """Every (attribute path, leaf) reachable from ``value`` through dataclasses and containers."""
    leaves: list[tuple[str, Any]] = []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = {f.name for f in dataclasses.fields(value)} | set(getattr(value, "__dict__", {}))
        for name in sorted(names):
            leaves += walk(getattr(value, name), f"{trail}.{name}")
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            leaves += walk(item, f"{trail}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            leaves += walk(key, f"{trail}<key>") + walk(item, f"{trail}[{key!r}]")
    else:
        leaves.append((trail, value))
    return leaves


def path_leaks(train: TrainSplit, roots: tuple[Path, ...] = ()) -> list[str]:
    """Attributes of a TrainSplit that could lead to files: path objects, existing paths, memmaps, odd types.

    A string counts as a path when it is absolute or names something that exists relative to the
    working directory or one of ``roots`` (e.g. the category folder: ``test/crack/000.png``).
    """
    problems = []
    for trail, leaf in walk(train):
        if isinstance(leaf, (PurePath, os.PathLike)):
            problems.append(f"{trail} is a path object: {leaf!r}")
        elif isinstance(leaf, bytes):
            problems.append(f"{trail} holds bytes")
        elif isinstance(leaf, str):
            if leaf and (os.path.isabs(leaf) or any((base / leaf).exists() for base in (Path.cwd(), *roots))):
                problems.append(f"{trail} looks like a path: {leaf!r}")
        elif isinstance(leaf, np.ndarray):
            base: Any = leaf
            while base is not None:  # a memory-mapped file would be a way back to the disk
                if isinstance(base, (np.memmap, mmap.mmap)):
                    problems.append(f"{trail} is backed by {type(base).__name__}")
                    break
                base = getattr(base, "base", None) if isinstance(base, np.ndarray) else None
            if leaf.dtype == object:
                problems.append(f"{trail} is an object array")
        elif not isinstance(leaf, (int, float, bool, type(None))):
            problems.append(f"{trail} has unexpected type {type(leaf).__name__}")
    return problems


# ---- a synthesizer that tries to read test data ---------------------------------------------
class MaliciousConfig(BaseModel):
    target: str = ""
    when: Literal["fit", "synthesize"] = "fit"
    how: Literal["open", "listdir"] = "open"


class MaliciousSynthesizer(Synthesizer):
    """Reads ``target`` (a test image or folder) during fit or synthesis: the guard must stop it."""

    Config = MaliciousConfig
    description = "test double: reads test data"
    uses_masks = True

    def _peek(self) -> None:
        if self.config.how == "listdir":
            os.listdir(self.config.target)
        else:
            with open(self.config.target, "rb") as handle:
                handle.read(16)

    def fit(self, train: TrainSplit, progress: bool = True):  # noqa: ANN201
        if self.config.when == "fit":
            self._peek()
        return self._record_fit(train, seconds=0.0)

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        if self.config.when == "synthesize":
            self._peek()
        return SynthesisOutput(normal.copy(), spec.mask)


MALICIOUS = registry.RegisteredSynthesizer("malicious", f"{__name__}:MaliciousSynthesizer", summary="test double")
