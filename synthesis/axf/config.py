"""Every setting of AXF, with its default, in one place.

:class:`AXFConfig` is the synthesizer's ``Config`` (what ``--config key=value`` sets and what the
config hash covers). The network's constructor (:class:`~synthesis.axf.model.AXFNet`), the
training settings (:class:`~synthesis.axf.train.TrainSettings`) and the pipeline's call
(:class:`~synthesis.axf.pipeline.AXFPipeline`) take their defaults from :data:`DEFAULTS`, so a
default changed here changes everywhere, and nothing else declares one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthesis.fidelity import VISIBLE_FLOOR


class AXFConfig(BaseModel):
    """Every setting of AXF (independent of the image size, which comes with the split)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    # mode: (a) pixel-space U-Net trained from scratch on windows, (b) frozen pretrained LDM
    backbone: Literal["pixel", "latent"] = "pixel"
    pretrained: str | None = Field(None, description="LDM folder or hub id (backbone=latent), diffusers layout")
    # windows around the defect
    window_size: int = Field(64, description="model resolution of the window, pixels")
    window_margin: float = Field(0.3, description="context around the mask's bounding box, fraction of its size")
    # U-Net built from scratch (pixel mode)
    unet_channels: list[int] = Field(default_factory=lambda: [24, 48, 96, 128])
    unet_attention_levels: list[int] = Field(default_factory=lambda: [2, 3])
    layers_per_block: int = 1
    head_dim: int = 32
    # MIF / DDF
    width: int = 128
    fusion_layers: int = 1
    fusion_heads: int = 4
    max_text_tokens: int = 24
    image_grid: int = Field(2, description="image tokens: global + grid x grid pooled feature map")
    mask_grid: int = Field(4, description="location tokens: grid x grid")
    defect_tokens: int = Field(2, description="learnable tokens per defect type")
    text_encoder: str = "minilm"
    image_encoder: str = "efficientnet-lite0"
    use_text: bool = True
    use_image: bool = True
    use_mask_tokens: bool = True
    use_ddf: bool = True
    # training
    train_steps: int = Field(800, description="fixed budget: about 16 minutes on 2 CPU cores at the defaults")
    batch_size: int = 16
    lr: float = 4e-4
    loss: Literal["masked", "plain"] = "masked"
    mask_weight: float = 4.0
    normal_fraction: float = 0.2
    branch_dropout: float = 0.1
    cross_reference: float = Field(0.0, ge=0, le=1, description="training: probability that a defect window's image "
                                   "branch shows another training anomaly of its type, so that only the caption "
                                   "describes the window exactly (0: always its own image, as before)")
    train_t_max: float | None = Field(None, description="train on timesteps below this fraction of the schedule; "
                                      "None: sdedit_strength + 0.1 (sampling never visits higher noise levels)")
    warmup_steps: int = Field(50, ge=0, description="linear warm-up of the learning rate (at most a tenth of the steps)")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decay ends at this fraction of lr")
    grad_clip: float = Field(1.0, ge=0, description="gradient norm clip (0: none)")
    ema_decay: float = 0.995
    augment_scale: tuple[float, float] = Field((0.85, 1.3), description="random window scale in training")
    augment_shift: float = Field(0.15, description="random window shift in training, fraction of its side")
    augment_rotate: bool = Field(True, description="random quarter turns in training (flips always)")
    snapshot_every: int = 100
    # noise schedule (pixel mode; paper mode uses the pretrained model's)
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    # sampling
    solver: Literal["ddim", "dpmsolver++", "unipc"] = Field(
        "dpmsolver++", description="sampling solver (synthesis/axf/sample.py SOLVERS); version 3 used ddim with 50 steps")
    sample_steps: int = Field(10, ge=1, description="solver steps over the whole schedule; an SDEdit start at strength "
                              "s runs round(s * sample_steps) of them")
    sample_precision: Literal["float32", "bfloat16"] = Field(
        "bfloat16", description="arithmetic of the network's calls while sampling (torch.autocast; training is "
        "float32): bfloat16 is 1.7x faster on CPUs with AVX512-BF16 or AMX and on GPUs, emulated (slower, same "
        "results) elsewhere; version 4 sampled in float32")
    sdedit_strength: float = Field(0.6, description="1.0: sample from pure noise; <1: start from a pasted training defect")
    resample: int = Field(1, description="RePaint resampling rounds per step")
    # classifier-free guidance per modality (synthesis/axf/guidance.py); 1.0 / 1.0: the unguided single pass.
    # Kept at 1.0 / 1.0 (no guidance): no other choice is justified yet (AXF README, Guidance per modality).
    guidance_text: float = Field(1.0, description="text-branch guidance scale: eps(image) + s * (eps(image, text) "
                                 "- eps(image)); 0: the text branch dropped")
    guidance_image: float = Field(1.0, description="image-branch guidance scale (texture and location against "
                                  "training's unconditional embedding)")
    blend_width: float = Field(2.0, description="soft blending band at the mask's border, pixels (0: hard)")
    blend_inside: bool = Field(True, description="the band lies inside the mask, so the returned mask is the planned "
                               "one (the label); False: outside it, returning the mask plus the band (version 1)")
    detail_transfer: float = Field(1.0, description="with an SDEdit start: add this much of the pasted defect's detail "
                                   "finer than the window resolution (lost when a large window is resized)")
    # keeping small and thin defects visible (see synthesis/axf/adapt.py)
    adapt_to_mask: bool = Field(True, description="SDEdit strength and detail transfer follow each mask's thickness")
    thin_px: float = Field(4.0, description="masks at most this thick (model-window pixels) get the thin settings")
    thick_px: float = Field(16.0, description="masks at least this thick get sdedit_strength and no fine-detail swap")
    thin_strength: float = Field(0.25, gt=0, le=1, description="SDEdit strength for thin masks")
    thin_detail: float = Field(1.0, ge=0, le=1, description="weight of the paste's fine detail inside thin masks")
    detail_sigma: float = Field(1.0, gt=0, description="Gaussian blur (image pixels) separating fine detail")
    label_floor: float | None = Field(VISIBLE_FLOOR, description="redo samples whose visible share of the mask is "
                                      "below this (synthesis/fidelity.py); None: never")
    max_attempts: int = Field(3, ge=1, description="tries per sample (the first plus redos with derived seeds)")
    retry_strength: float = Field(0.6, gt=0, le=1, description="each redo multiplies the SDEdit strength by this")
    sample_batch_size: int = 8

    @model_validator(mode="after")
    def _check(self) -> AXFConfig:
        if self.backbone == "latent" and not self.pretrained:
            raise ValueError("backbone=latent needs pretrained=<folder or hub id of a latent diffusion model>")
        if not 0.0 < self.sdedit_strength <= 1.0:
            raise ValueError("sdedit_strength must be in (0, 1]")
        if self.train_t_max is not None and not 0.0 < self.train_t_max <= 1.0:
            raise ValueError("train_t_max must be in (0, 1]")
        if self.resample > 1 and self.solver != "ddim":
            raise ValueError(f"resample={self.resample} (RePaint resampling) needs solver=ddim: the {self.solver} "
                             "solver keeps a multistep history that cannot step back")
        return self


#: The defaults, as an instance (``DEFAULTS.width`` etc.).
DEFAULTS = AXFConfig()
