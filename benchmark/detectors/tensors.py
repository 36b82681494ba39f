"""numpy <-> torch conversion and resizing shared by the detectors.

Images arrive as uint8 [N,H,W,3] at the protocol resolution; they are resized only when they
differ from the detector's ``image_size``, and maps go back to the caller's resolution.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812


def images_to_tensor(images: np.ndarray, size: int, device: str | torch.device) -> torch.Tensor:
    """uint8 [B,H,W,3] -> float [B,3,size,size] in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
    return x


def masks_to_tensor(masks: np.ndarray, size: int, device: str | torch.device) -> torch.Tensor:
    """bool [B,H,W] -> float [B,1,size,size] in {0, 1} (nearest neighbour keeps it binary)."""
    m = torch.from_numpy(np.ascontiguousarray(masks)).to(device).float().unsqueeze(1)
    if m.shape[-2:] != (size, size):
        m = F.interpolate(m, size=(size, size), mode="nearest")
    return m


def maps_to_numpy(maps: torch.Tensor, height: int, width: int) -> np.ndarray:
    """float [B,1,h,w] or [B,h,w] -> numpy float32 [B,height,width] (bilinear when sizes differ)."""
    if maps.ndim == 3:
        maps = maps.unsqueeze(1)
    if maps.shape[-2:] != (height, width):
        maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
    return maps[:, 0].float().cpu().numpy()


def batches(n: int, batch_size: int) -> list[slice]:
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
