"""A tiny synthetic training split for fast AXF tests (not a benchmark dataset)."""

from __future__ import annotations

import numpy as np

from synthesis.contract import FewShotAnomaly, NormalImage, TrainSplit


def _object(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dist = np.hypot(yy - size / 2, xx - size / 2)
    grey = np.where(dist < size * 0.38, 170 - 40 * dist / size, 40) + rng.normal(0, 3, (size, size))
    return np.clip(np.stack([grey, grey, grey * 1.05], -1), 0, 255).astype(np.uint8)


def tiny_split(size: int = 48, normals: int = 4, per_type: int = 2, seed: int = 0) -> TrainSplit:
    """Grey discs; defect types ``scratch`` (dark line) and ``spot`` (red blob) with captions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    normal_images = tuple(NormalImage(f"{i:03d}", _object(rng, size)) for i in range(normals))
    anomalies = []
    for k in range(per_type):
        image = _object(rng, size)
        row = int(rng.integers(size // 3, 2 * size // 3))
        mask = (np.abs(yy - row - (xx - size / 2) * 0.3) < 1.2) & (np.abs(xx - size / 2) < size / 5)
        image[mask] = (20, 20, 25)
        anomalies.append(FewShotAnomaly("scratch", f"{k:03d}", image, mask, "The disc has a long dark scratch."))
    for k in range(per_type):
        image = _object(rng, size)
        cy, cx = rng.integers(size // 3, 2 * size // 3, size=2)
        mask = np.hypot(yy - cy, xx - cx) < size / 10
        image[mask] = (200, 40, 30)
        anomalies.append(FewShotAnomaly("spot", f"{k:03d}", image, mask, "There is a red spot on the disc."))
    return TrainSplit(dataset="tiny", category="disc", image_size=size, normals=normal_images,
                      anomalies=tuple(anomalies), is_demo=True, protocol_id="test/tiny")
