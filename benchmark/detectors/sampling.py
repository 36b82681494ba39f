"""The training-sample plan: half normal images, half synthesized anomalies, in a seeded order.

Every batch holds ``batch_size // 2`` normal images and the rest synthetic samples, as in the
literature's protocol (DRAEM augments half of its samples). The plan of epoch ``e`` depends
only on ``(seed, e)``, so training is reproducible and an epoch can be replayed on its own.
Both pools are walked through shuffled passes, so every image is used before any repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Step:
    normal: np.ndarray  # indices into the normal images
    synthetic: np.ndarray  # indices into the synthetic set


@dataclass(frozen=True)
class BalancedPlan:
    n_normal: int
    n_synthetic: int
    batch_size: int
    samples_per_epoch: int
    seed: int

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (one normal, one synthetic sample; BatchNorm needs >1)")
        if self.n_normal < 1 or self.n_synthetic < 1:
            raise ValueError(f"need normal and synthetic samples, got {self.n_normal} and {self.n_synthetic}")

    @property
    def steps_per_epoch(self) -> int:
        """``samples_per_epoch`` rounded to whole batches (at least one)."""
        return max(1, round(self.samples_per_epoch / self.batch_size))

    @property
    def normals_per_batch(self) -> int:
        return self.batch_size // 2

    def epoch(self, epoch: int) -> list[Step]:
        rng = np.random.default_rng([self.seed, epoch])
        n_norm = self.normals_per_batch
        n_syn = self.batch_size - n_norm
        normal = _passes(rng, self.n_normal, n_norm * self.steps_per_epoch)
        synthetic = _passes(rng, self.n_synthetic, n_syn * self.steps_per_epoch)
        return [Step(normal[i * n_norm:(i + 1) * n_norm], synthetic[i * n_syn:(i + 1) * n_syn])
                for i in range(self.steps_per_epoch)]


def _passes(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """``count`` indices from consecutive random permutations of ``range(n)``."""
    reps = -(-count // n)
    return np.concatenate([rng.permutation(n) for _ in range(reps)])[:count]
