"""A seeded toy task (bright squares on noise) for tests and timing runs.

Easy enough that a detector that learns anything scores well after a few steps, so tests can
check that training works without real data; its numbers say nothing about MVTec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.detectors.base import SyntheticSet


@dataclass(frozen=True)
class ToyTask:
    normals: np.ndarray  # [N,S,S,3] uint8
    synthetic: SyntheticSet
    test_images: np.ndarray  # [T,S,S,3] uint8: half good, half with a square
    test_labels: np.ndarray  # [T] int
    test_masks: np.ndarray  # [T,S,S] bool


def _noise(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.integers(0, 100, (n, size, size, 3), dtype=np.uint8)


def _squares(rng: np.random.Generator, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images, size = clean.copy(), clean.shape[1]
    masks = np.zeros(clean.shape[:3], bool)
    for i in range(len(clean)):
        side = int(rng.integers(max(2, size // 6), max(3, size // 3) + 1))
        y, x = rng.integers(0, size - side + 1, 2)
        images[i, y:y + side, x:x + side] = rng.integers(190, 256, 3, dtype=np.uint8)
        masks[i, y:y + side, x:x + side] = True
    return images, masks


def toy_task(size: int = 32, n_normal: int = 16, n_synthetic: int = 16, n_test: int = 16, seed: int = 0) -> ToyTask:
    rng = np.random.default_rng(seed)
    normals = _noise(rng, n_normal, size)
    clean = _noise(rng, n_synthetic, size)
    anomalous, masks = _squares(rng, clean)
    n_bad = n_test // 2
    test_good = _noise(rng, n_test - n_bad, size)
    test_bad, test_masks = _squares(rng, _noise(rng, n_bad, size))
    return ToyTask(
        normals=normals,
        synthetic=SyntheticSet(clean=clean, anomalous=anomalous, masks=masks),
        test_images=np.concatenate([test_good, test_bad]),
        test_labels=np.array([0] * (n_test - n_bad) + [1] * n_bad),
        test_masks=np.concatenate([np.zeros((n_test - n_bad, size, size), bool), test_masks]),
    )
