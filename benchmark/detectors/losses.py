"""DRAEM's focal loss, configured so that normal pixels count.

anomalib's ``DraemLoss`` uses kornia's ``FocalLoss(alpha=1)``. With the pinned kornia (0.9),
``alpha`` is a class balance: class 0 is weighted ``1 - alpha`` = 0, so normal pixels carry
no loss at all and a network that calls every pixel anomalous scores a perfect 0 (checked in
``tests/test_detectors_training.py``). The original DRAEM focal loss weights both classes
equally (its ``alpha=None``), with gamma 2. So the same kornia class is used with
``alpha=None``; the rest of ``DraemLoss`` (L2 + 2 x SSIM) is kept as anomalib has it.
"""

from __future__ import annotations

from anomalib.models.image.draem.loss import DraemLoss
from kornia.losses import FocalLoss
from torch import nn

FOCAL_GAMMA = 2.0


def focal_loss() -> nn.Module:
    """Unweighted focal loss (gamma 2, mean) on logits [B,2,H,W] and targets [B,H,W] long."""
    return FocalLoss(alpha=None, gamma=FOCAL_GAMMA, reduction="mean")


def draem_loss() -> DraemLoss:
    """anomalib's DRAEM loss (L2 + SSIM + focal) with the focal term weighting both classes."""
    loss = DraemLoss()
    loss.focal_loss = focal_loss()
    return loss
