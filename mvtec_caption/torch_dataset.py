"""A plain ``torch.utils.data.Dataset`` over one split of a loaded MVTec Caption dataset.

For training and evaluation loops that want tensors, not PIL images: ``image`` is float
``[3, H, W]`` in [0, 1], ``mask`` float ``[1, H, W]`` in {0, 1} (anomalous above half the mask
file's maximum: the mask rule of :mod:`mvtec_caption.layout`, so a JPEG-noisy mask does not turn
into an all-anomalous one), ``caption`` a string (``''`` for good images), ``label`` 0/1 and ``metadata`` a dict
of strings, so the default ``DataLoader`` collation works. Optional ``image_size`` resizes the
image bilinearly and the mask with nearest neighbour, so masks stay binary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mvtec_caption.layout import mask_pixels

METADATA_FIELDS = ("dataset", "category", "defect_type", "image_id", "anomaly_kind", "image_path")


def _size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """``(height, width)`` from an int (square) or a pair."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = image_size
    return (int(height), int(width))


class MVTecCaptionTorchDataset(Dataset):
    """Tensors of one split (a ``datasets.Dataset`` from :func:`mvtec_caption.load_dataset`)."""

    def __init__(self, split: Any, image_size: int | tuple[int, int] | None = None) -> None:
        missing = {"image", "mask", "caption", "label"} - set(split.column_names)
        if missing:
            raise ValueError(f"not an MVTec Caption split: missing columns {sorted(missing)}")
        self.split = split
        self.image_size = _size(image_size)

    def __len__(self) -> int:
        return len(self.split)

    def _resize(self, image: Image.Image, resample: Image.Resampling) -> Image.Image:
        if self.image_size is None:
            return image
        height, width = self.image_size
        return image.resize((width, height), resample=resample)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.split[int(index)]
        image = self._resize(row["image"].convert("RGB"), Image.Resampling.BILINEAR)
        source = (row.get("mask_paths") or [row.get("image_path")])[0]
        binary = mask_pixels(row["mask"], source)  # the mask rule, at the file's own resolution
        mask = self._resize(Image.fromarray(binary.astype(np.uint8) * 255), Image.Resampling.NEAREST)
        if mask.size != image.size:
            raise ValueError(f"{row.get('image_path')}: mask size {mask.size} differs from image size {image.size}")
        image_tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        mask_tensor = torch.from_numpy((np.asarray(mask) > 0).astype(np.float32))[None]
        return {
            "image": image_tensor,
            "mask": mask_tensor,
            "caption": row["caption"] or "",
            "label": int(row["label"]),
            "metadata": {name: str(row.get(name) or "") for name in METADATA_FIELDS},
        }
