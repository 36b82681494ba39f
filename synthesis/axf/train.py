"""The AXF training loop: windows around the few-shot defects, mask-weighted noise prediction.

Each step draws its batch and noise from generators seeded by (seed, step) alone, so a run
resumed from a snapshot at step k continues exactly as the uninterrupted run would have.
Snapshots (model, EMA, optimizer, learning-rate schedule, step) are written atomically every ``snapshot_every`` steps
and on Ctrl-C into a work folder; ``train`` picks up the last one it finds there.

Batch items are, with probability ``normal_fraction``, windows of normal images with an empty
mask and every branch dropped (the unconditional embedding: the network learns the object's
normal surface, which the RePaint blending relies on), otherwise windows around one of the
training anomalies (defect types drawn uniformly), with random scale, shift, flips and
quarter turns, and each MIF branch dropped with probability ``branch_dropout``; with probability ``cross_reference``
a defect window's image branch shows another training anomaly of its type (its caption is then the only exact
description of the window).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

from mvtec_caption.atomic import atomic_write
from synthesis.axf.config import DEFAULTS, AXFConfig
from synthesis.axf.model import AXFCondition, AXFNet
from synthesis.axf.windows import resize, window_for

SNAPSHOT = "snapshot.pt"


@dataclass
class TrainingSet:
    """Tensors of the training split (built once by the synthesizer, encoder outputs cached)."""

    anomaly_images: np.ndarray  # [N, H, W, 3] uint8
    anomaly_masks: np.ndarray  # [N, H, W] bool
    defect_index: np.ndarray  # [N] int
    text: torch.Tensor | None  # [N, L, Dt] frozen text tokens of each anomaly's caption
    text_valid: torch.Tensor | None  # [N, L]
    image: torch.Tensor | None  # [N, K, Di] frozen image tokens of each anomaly's masked window
    normals: np.ndarray  # [M, H, W, 3] uint8


@dataclass(frozen=True)
class TrainSettings:
    """What the training loop needs, taken from an :class:`~synthesis.axf.config.AXFConfig` (defaults included)."""

    steps: int = DEFAULTS.train_steps
    batch_size: int = DEFAULTS.batch_size
    lr: float = DEFAULTS.lr
    window: int = DEFAULTS.window_size
    margin: float = DEFAULTS.window_margin
    scale_range: tuple[float, float] = DEFAULTS.augment_scale
    shift: float = DEFAULTS.augment_shift
    rotate: bool = DEFAULTS.augment_rotate
    normal_fraction: float = DEFAULTS.normal_fraction
    branch_dropout: float = DEFAULTS.branch_dropout
    cross_reference: float = DEFAULTS.cross_reference
    loss: str = DEFAULTS.loss
    mask_weight: float = DEFAULTS.mask_weight
    t_max: float = 1.0
    ema_decay: float = DEFAULTS.ema_decay
    warmup: int = DEFAULTS.warmup_steps
    min_lr_ratio: float = DEFAULTS.min_lr_ratio
    grad_clip: float = DEFAULTS.grad_clip
    seed: int = DEFAULTS.seed
    snapshot_every: int = DEFAULTS.snapshot_every

    @classmethod
    def from_config(cls, cfg: AXFConfig, t_max: float) -> TrainSettings:
        """The settings of ``cfg``; the warm-up is at most a tenth of the steps (short test runs still decay)."""
        return cls(
            steps=cfg.train_steps, batch_size=cfg.batch_size, lr=cfg.lr, window=cfg.window_size,
            margin=cfg.window_margin, scale_range=tuple(cfg.augment_scale), shift=cfg.augment_shift,
            rotate=cfg.augment_rotate, normal_fraction=cfg.normal_fraction, branch_dropout=cfg.branch_dropout,
            cross_reference=cfg.cross_reference, loss=cfg.loss, mask_weight=cfg.mask_weight, t_max=t_max,
            ema_decay=cfg.ema_decay,
            warmup=min(cfg.warmup_steps, max(1, cfg.train_steps // 10)), min_lr_ratio=cfg.min_lr_ratio,
            grad_clip=cfg.grad_clip, seed=cfg.seed, snapshot_every=cfg.snapshot_every,
        )


def step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step, 0xA4F]).generate_state(1)[0])


def _augment(image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator, rotate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if rng.random() < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    if rotate:
        k = int(rng.integers(0, 4))
        if k:
            image, mask = torch.rot90(image, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))
    return image, mask


def make_batch(data: TrainingSet, settings: TrainSettings, step: int) -> tuple[torch.Tensor, torch.Tensor, AXFCondition]:
    """Window images ``[B, 3, w, w]`` in [0, 1], masks ``[B, 1, w, w]`` and conditions of step ``step``."""
    rng = np.random.default_rng(step_seed(settings.seed, step))
    w = settings.window
    types = np.unique(data.defect_index)
    images, masks, picks, references, keeps = [], [], [], [], []
    for _ in range(settings.batch_size):
        normal = len(data.normals) > 0 and rng.random() < settings.normal_fraction
        j = int(rng.choice(np.flatnonzero(data.defect_index == rng.choice(types))))
        scale = float(rng.uniform(*settings.scale_range))
        shift = (float(rng.uniform(-settings.shift, settings.shift)), float(rng.uniform(-settings.shift, settings.shift)))
        win = window_for(data.anomaly_masks[j], w, settings.margin, scale, shift)
        if normal:  # a window of the same size anywhere on a normal image, empty mask, unconditional
            source = data.normals[int(rng.integers(len(data.normals)))]
            y0 = int(rng.integers(0, source.shape[0] - win.side + 1))
            x0 = int(rng.integers(0, source.shape[1] - win.side + 1))
            crop = source[y0:y0 + win.side, x0:x0 + win.side]
            mask = np.zeros(crop.shape[:2], dtype=np.float32)
            keep = np.zeros(4, dtype=bool)
        else:
            crop, mask = win.crop(data.anomaly_images[j]), win.crop(data.anomaly_masks[j]).astype(np.float32)
            keep = rng.random(4) >= settings.branch_dropout
        reference = j
        if settings.cross_reference > 0 and not normal:  # no draw at 0: the default's random stream is unchanged
            others = np.flatnonzero((data.defect_index == data.defect_index[j]) & (np.arange(len(data.defect_index)) != j))
            if len(others) and rng.random() < settings.cross_reference:
                reference = int(rng.choice(others))
        image_t = resize(torch.from_numpy(crop.transpose(2, 0, 1).copy()).float()[None] / 255.0, w)[0]
        mask_t = resize(torch.from_numpy(mask)[None, None], w, mode="area")[0]
        image_t, mask_t = _augment(image_t, mask_t, rng, settings.rotate)
        images.append(image_t)
        masks.append(mask_t)
        picks.append(j)
        references.append(reference)
        keeps.append(keep)
    index = torch.tensor(picks)
    cond = AXFCondition(
        text=data.text[index] if data.text is not None else None,
        text_valid=data.text_valid[index] if data.text_valid is not None else None,
        image=data.image[torch.tensor(references)] if data.image is not None else None,
        defect=torch.from_numpy(data.defect_index[picks]).long(),
        mask=torch.stack(masks).clamp(0, 1),
        keep=torch.from_numpy(np.stack(keeps)),
    )
    return torch.stack(images).clamp(0, 1), cond.mask, cond


def diffusion_loss(net: AXFNet, scheduler: DDPMScheduler, x0: torch.Tensor, weight_mask: torch.Tensor,
                   cond: AXFCondition, generator: torch.Generator, settings: TrainSettings) -> torch.Tensor:
    """Noise-prediction MSE, weighted ``1 + (mask_weight - 1) * M`` inside the mask ("masked") or plain."""
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    t_hi = max(1, int(round(scheduler.config.num_train_timesteps * settings.t_max)))
    timesteps = torch.randint(0, t_hi, (x0.shape[0],), generator=generator).to(x0.device)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    error = (net(noisy, timesteps, cond) - noise).pow(2)
    if settings.loss == "plain":
        return error.mean()
    weight = 1.0 + (settings.mask_weight - 1.0) * resize(weight_mask, x0.shape[-1], mode="area")
    return (error * weight).sum() / (weight.sum() * x0.shape[1])


def lr_schedule(optimizer: torch.optim.Optimizer, settings: TrainSettings) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the learning rate (transformers' schedule)."""
    from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

    return get_cosine_with_min_lr_schedule_with_warmup(optimizer, num_warmup_steps=settings.warmup,
                                                       num_training_steps=settings.steps,
                                                       min_lr_rate=settings.min_lr_ratio)


def _atomic_save(payload: dict, path: Path) -> None:
    """A snapshot is complete or absent, never half-written (the one atomic-write helper)."""
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


@dataclass
class TrainResult:
    steps: int
    resumed_from: int
    seconds: float
    losses: list[float]


def train(
    net: AXFNet,
    data: TrainingSet,
    encode: Callable[[torch.Tensor], torch.Tensor],
    scheduler: DDPMScheduler,
    settings: TrainSettings,
    work_dir: Path | None = None,
    identity: str = "",
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    device: str = "cpu",
    desc: str = "fit axf",
) -> TrainResult:
    """Train ``net`` for ``settings.steps`` steps (continuing from a snapshot in ``work_dir``);
    ``net`` ends holding the exponential moving average of its weights (what sampling uses).

    ``encode`` maps window images in [0, 1] to model space (pixels in [-1, 1], or VAE latents);
    ``identity`` names what is trained (config and split hash): snapshots of anything else are
    ignored. ``callback(step, loss)`` runs after each step (tests interrupt training with it).
    """
    params = net.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    schedule = lr_schedule(optimizer, settings)
    # diffusers' EMA: decay 0 at the first step (a copy), then min(ema_decay, (1 + k) / (10 + k)) at step k
    ema = EMAModel(params, decay=settings.ema_decay)
    losses: list[float] = []
    start = 0
    snapshot = Path(work_dir) / SNAPSHOT if work_dir is not None else None
    if snapshot is not None and snapshot.is_file():
        state = torch.load(snapshot, map_location=device, weights_only=True)
        if state.get("identity") == identity:
            net.load_state_dict(state["model"], strict=False)
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            ema.load_state_dict(state["ema"])
            losses = list(state["losses"])
            start = int(state["step"])

    def save(step: int) -> None:
        if snapshot is not None:
            _atomic_save({"identity": identity, "step": step, "model": net.trainable_state_dict(),
                          "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                          "ema": ema.state_dict(), "losses": losses}, snapshot)

    net.train()
    started = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.steps, initial=start, desc=desc, unit="step")
    running = losses[-1] if losses else None
    step = start
    try:
        for step in range(start, settings.steps):
            images, masks, cond = make_batch(data, settings, step)
            generator = torch.Generator().manual_seed(step_seed(settings.seed, step) + 1)
            with torch.no_grad():
                x0 = encode(images.to(device))
            loss = diffusion_loss(net, scheduler, x0, masks.to(device), cond.to(device), generator, settings)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            optimizer.step()
            schedule.step()
            ema.step(params)
            value = float(loss.detach())
            losses.append(value)
            running = value if running is None else 0.98 * running + 0.02 * value
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4f}")
            if settings.snapshot_every > 0 and (step + 1) % settings.snapshot_every == 0 and step + 1 < settings.steps:
                save(step + 1)
            if callback is not None:
                callback(step + 1, value)
    except KeyboardInterrupt:
        save(len(losses))
        raise
    finally:
        if bar is not None:
            bar.close()
    ema.copy_to(params)  # sampling uses the averaged weights
    return TrainResult(settings.steps, start, time.perf_counter() - started, losses)
