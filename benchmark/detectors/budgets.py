"""The defect-type classifier's pinned budgets, apart from its torch code.

The protocols list them (``"classifier": ...``) and every process imports the protocols, including
``job run`` for jobs that never touch torch; keeping the figures here spares those a torch import.
"""

from __future__ import annotations

from typing import Any

#: Frozen EfficientNet-Lite0 features with a linear head: the CPU protocols' named substitute.
CPU_BUDGET: dict[str, Any] = {"backbone": "efficientnet-lite0", "train_backbone": False, "image_size": 224,
                              "epochs": 300, "batch_size": 32, "lr": 1e-2, "weight_decay": 1e-4}
#: ResNet-34 fine-tuned end to end: the AXF paper's setting, under the GPU protocols.
GPU_BUDGET: dict[str, Any] = {"backbone": "resnet34", "train_backbone": True, "image_size": 224,
                              "epochs": 30, "batch_size": 32, "lr": 1e-4, "weight_decay": 1e-4}
