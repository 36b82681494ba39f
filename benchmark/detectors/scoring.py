"""From a segmentation network's anomaly map to an image score.

DRAEM's evaluation (also used by AnomalyDiffusion's downstream U-Net) takes the softmax
anomaly channel as the pixel map and, as the image score, the maximum of that map after a
21x21 mean filter at 256 px. The filter makes the score the strongest *region* rather than the
strongest single pixel. Other resolutions scale the window (11 at 128 px, 5 at 64 px) unless a
protocol pins it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F  # noqa: N812

DRAEM_POOL_AT_256 = 21


def default_pool(image_size: int) -> int:
    """DRAEM's 21 px window scaled to ``image_size``, rounded to the nearest odd size (at least 1)."""
    size = max(1, int(DRAEM_POOL_AT_256 * image_size / 256 + 0.5))
    return size if size % 2 else size + 1


def pooled_max(anomaly_map: torch.Tensor, pool: int) -> torch.Tensor:
    """Image scores [B] from maps [B,1,H,W]: max of the ``pool`` x ``pool`` mean-filtered map.

    ``pool`` <= 1 gives the plain maximum. Zero padding is counted, as in DRAEM's code.
    """
    if pool > 1:
        anomaly_map = F.avg_pool2d(anomaly_map, pool, stride=1, padding=pool // 2)
    return torch.amax(anomaly_map, dim=(-3, -2, -1))
