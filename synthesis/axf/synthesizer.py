"""The contract adapter: AnomalyXFusion as a :class:`~synthesis.contract.Synthesizer`.

``fit`` caches the frozen encoders' outputs for the training captions and masked defect
windows, builds :class:`~synthesis.axf.model.AXFNet` and trains it (resumably, see
:mod:`synthesis.axf.train`). ``synthesize_batch`` cuts a window around each planned mask,
samples it with DDIM + RePaint blending (by default starting SDEdit-style from a real training
defect of the same type pasted into the mask), and composites it back: pixels outside the
returned mask (the planned mask plus the soft blending band) are the normal image's, exactly.

Any caption works at generation time (``--caption``): it goes through the same frozen text
encoder; the pasted reference defect is then the training anomaly of that type whose caption
is closest to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthesis.contract import SampleSpec, SynthesisOutput, Synthesizer, TrainSplit, canonical_hash
from synthesis.fidelity import VISIBLE_FLOOR
from synthesis.state_files import CheckpointError, read_arrays, read_json

WEIGHTS = "weights.pt"
STORE = "anomalies.npz"
META = "axf.json"
WORK_DIR_ENV = "AXF_WORK_DIR"


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
    train_t_max: float | None = Field(None, description="train on timesteps below this fraction of the schedule; "
                                      "None: sdedit_strength + 0.1 (sampling never visits higher noise levels)")
    ema_decay: float = 0.995
    snapshot_every: int = 100
    # noise schedule (pixel mode; paper mode uses the pretrained model's)
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    # sampling
    sample_steps: int = 50
    sdedit_strength: float = Field(0.6, description="1.0: sample from pure noise; <1: start from a pasted training defect")
    resample: int = Field(1, description="RePaint resampling rounds per step")
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
        return self


class AXFSynthesizer(Synthesizer):
    Config: ClassVar[type[BaseModel]] = AXFConfig
    version: ClassVar[str] = "3"  # 3: generates on plan 2 (caption-planned masks, captions chosen by the normal image)
    description: ClassVar[str] = (
        "AnomalyXFusion: multi-modal In-Fusion (caption, masked defect image + learnable defect tokens, mask) "
        "and Dynamic Dif-Fusion conditioning of a diffusion U-Net; DDIM + RePaint blending in a window "
        "around the mask, started from a pasted training defect (SDEdit)")
    reference: ClassVar[str | None] = "Hu et al., AnomalyXFusion, arXiv 2404.19444"
    uses_text: ClassVar[bool] = True
    uses_masks: ClassVar[bool] = True
    uses_real_anomalies: ClassVar[bool] = True
    keeps_outside_mask: ClassVar[bool] = True

    def __init__(self, name: str, config: BaseModel | None = None, device: str = "cpu", ablation_of: str | None = None):
        if config is None:
            config = self.Config(use_text=type(self).uses_text)
        super().__init__(name, config, device, ablation_of)
        if bool(self.config.use_text) != bool(type(self).uses_text):
            raise ValueError(f"{type(self).__name__} declares uses_text={type(self).uses_text} but the config has "
                             f"use_text={self.config.use_text}; use AXFNoTextSynthesizer for use_text=false")
        self.net = None
        self.space = None
        self.train_scheduler = None
        self.sample_scheduler = None
        self.store: dict[str, Any] | None = None
        self.last_train = None
        self.training_set = None
        self._text_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._image_cache: dict[int, torch.Tensor] = {}
        self._embed_cache: dict[str, torch.Tensor] = {}

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A fast configuration for tests: tiny U-Net, a few steps."""
        return {
            "window_size": 32, "unet_channels": [16, 32], "unet_attention_levels": [1], "head_dim": 16,
            "width": 32, "fusion_heads": 2, "defect_tokens": 1, "mask_grid": 2, "image_grid": 1,
            "max_text_tokens": 16, "train_steps": 3, "batch_size": 2, "sample_steps": 3, "snapshot_every": 0,
            "sample_batch_size": 4,
        }

    # ---- building -------------------------------------------------------------------------
    @property
    def cfg(self) -> AXFConfig:
        return self.config  # type: ignore[return-value]

    def _text_encoder(self):
        from synthesis.axf.encoders import text_encoder

        return text_encoder(self.cfg.text_encoder)

    def _image_encoder(self):
        from synthesis.axf.encoders import image_encoder

        return image_encoder(self.cfg.image_encoder)

    def _build(self, num_types: int, text_dim: int, image_dim: int, defect_init: torch.Tensor | None) -> None:
        from synthesis.axf.latent import LatentSpace, PixelSpace, load_pretrained_ldm
        from synthesis.axf.model import AXFNet
        from synthesis.axf.sample import make_schedulers

        cfg = self.cfg
        common = dict(
            width=cfg.width, text_dim=text_dim, image_dim=image_dim, num_defect_types=num_types,
            defect_tokens=cfg.defect_tokens, mask_grid=cfg.mask_grid, fusion_layers=cfg.fusion_layers,
            fusion_heads=cfg.fusion_heads, use_text=cfg.use_text, use_image=cfg.use_image,
            use_mask_tokens=cfg.use_mask_tokens, use_ddf=cfg.use_ddf, defect_init=defect_init,
        )
        with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            if cfg.backbone == "latent":
                ldm = load_pretrained_ldm(cfg.pretrained, device=self.device)
                self.space = LatentSpace(ldm.vae)
                self.net = AXFNet(**common, unet=ldm.unet)
                self.train_scheduler, self.sample_scheduler = ldm.train_scheduler, ldm.sample_scheduler
            else:
                self.space = PixelSpace()
                self.net = AXFNet(**common, in_channels=3, sample_size=cfg.window_size,
                                  unet_channels=tuple(cfg.unet_channels), unet_attention_levels=tuple(cfg.unet_attention_levels),
                                  layers_per_block=cfg.layers_per_block, head_dim=cfg.head_dim)
                self.train_scheduler, self.sample_scheduler = make_schedulers(cfg.num_train_timesteps, cfg.beta_schedule)
        self.net.to(self.device)

    @property
    def train_t_max(self) -> float:
        """The highest noise level trained on, as a fraction of the schedule."""
        if self.cfg.train_t_max is not None:
            return self.cfg.train_t_max
        return min(1.0, self.cfg.sdedit_strength + 0.1)

    # ---- encoder outputs (cached) -----------------------------------------------------------
    def _text_tokens(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen text tokens padded to ``max_text_tokens``: ``[B, L, D]`` and ``[B, L]``."""
        length = self.cfg.max_text_tokens
        missing = sorted({c for c in captions if c not in self._text_cache})
        if missing:
            tokens, valid = self._text_encoder().tokens(missing, length)
            for i, caption in enumerate(missing):
                padded = torch.zeros(length, tokens.shape[-1])
                mask = torch.zeros(length, dtype=torch.bool)
                n = min(length, tokens.shape[1])
                padded[:n], mask[:n] = tokens[i, :n], valid[i, :n]
                self._text_cache[caption] = (padded, mask)
        return (torch.stack([self._text_cache[c][0] for c in captions]),
                torch.stack([self._text_cache[c][1] for c in captions]))

    def _sentence_embedding(self, captions: list[str]) -> torch.Tensor:
        missing = sorted({c for c in captions if c not in self._embed_cache})
        if missing:
            for caption, vector in zip(missing, self._text_encoder().embed(missing)):
                self._embed_cache[caption] = vector
        return torch.stack([self._embed_cache[c] for c in captions])

    def _masked_window(self, index: int) -> torch.Tensor:
        """I ⊙ M of training anomaly ``index``: its defect window with everything outside the mask black."""
        from synthesis.axf.windows import to_tensor, window_for

        image, mask = self.store["images"][index], self.store["masks"][index]
        win = window_for(mask, self.cfg.window_size, self.cfg.window_margin)
        return to_tensor(win.crop(image)) * torch.from_numpy(win.crop(mask).astype(np.float32))[None]

    def _image_tokens(self, indices: list[int]) -> torch.Tensor:
        missing = sorted({i for i in indices if i not in self._image_cache})
        if missing:
            from synthesis.axf.windows import resize

            windows = torch.cat([resize(self._masked_window(i)[None], 224) for i in missing])
            tokens = self._image_encoder().tokens(windows, self.cfg.image_grid)
            for i, t in zip(missing, tokens):
                self._image_cache[i] = t
        return torch.stack([self._image_cache[i] for i in indices])

    # ---- learning -------------------------------------------------------------------------
    def _default_work_dir(self, train: TrainSplit) -> Path:
        """Where training snapshots go: ``self.work_dir`` (set by the caller), else $AXF_WORK_DIR, else the cache."""
        if getattr(self, "work_dir", None) is not None:
            return Path(self.work_dir)
        key = canonical_hash({"config": self.config_hash, "split": train.split_id})[:16]
        if os.environ.get(WORK_DIR_ENV):
            return Path(os.environ[WORK_DIR_ENV]) / f"{self.name}-{key}"
        from mvtec_caption.sources import cache_dir

        return cache_dir() / "axf-work" / f"{self.name}-{key}"

    def fit(self, train: TrainSplit, progress: bool = True, callback=None) -> Any:  # noqa: ANN001
        from synthesis.axf.train import TrainingSet, TrainSettings
        from synthesis.axf.train import train as run_training

        if not train.anomalies:
            raise ValueError(f"{self.name}: the training split of {train.category} has no few-shot anomalies to learn from")
        started = time.perf_counter()
        cfg = self.cfg
        types = train.defect_types
        self.store = {
            "images": np.stack([a.image for a in train.anomalies]),
            "masks": np.stack([a.mask for a in train.anomalies]),
            "defect_index": np.array([types.index(a.defect_type) for a in train.anomalies], dtype=np.int64),
            "captions": [a.caption for a in train.anomalies],
            "image_ids": [a.image_id for a in train.anomalies],
            "defect_types": list(types),
        }
        self._text_cache.clear()
        self._image_cache.clear()
        text = text_valid = image = None
        text_dim = image_dim = 1
        if cfg.use_text:
            text, text_valid = self._text_tokens(self.store["captions"])
            text_dim = text.shape[-1]
        defect_init = None
        if cfg.use_image:
            image = self._image_tokens(list(range(len(train.anomalies))))
            image_dim = image.shape[-1]
            pooled = image[:, 0]
            per_type = [pooled[torch.from_numpy(self.store["defect_index"] == k)].mean(0) for k in range(len(types))]
            defect_init = torch.stack(per_type + [pooled.mean(0)])
        encoders_seconds = time.perf_counter() - started
        self._build(len(types), text_dim, image_dim, defect_init)
        data = TrainingSet(
            anomaly_images=self.store["images"], anomaly_masks=self.store["masks"], defect_index=self.store["defect_index"],
            text=text, text_valid=text_valid, image=image,
            normals=np.stack([n.image for n in train.normals]) if train.normals else np.zeros((0, 1, 1, 3), np.uint8),
        )
        settings = TrainSettings(
            steps=cfg.train_steps, batch_size=cfg.batch_size, lr=cfg.lr, window=cfg.window_size, margin=cfg.window_margin,
            normal_fraction=cfg.normal_fraction, branch_dropout=cfg.branch_dropout, loss=cfg.loss,
            mask_weight=cfg.mask_weight, t_max=self.train_t_max, ema_decay=cfg.ema_decay, seed=cfg.seed,
            snapshot_every=cfg.snapshot_every, warmup=min(50, max(1, cfg.train_steps // 10)),
        )
        self.training_set = data
        work_dir = self._default_work_dir(train)
        identity = canonical_hash({"config": self.config_hash, "split": train.split_id})
        result = run_training(self.net, data, self.space.encode, self.train_scheduler, settings, work_dir=work_dir,
                              identity=identity, progress=progress, callback=callback, device=self.device,
                              desc=f"fit {self.name}")
        self.net.load_state_dict(result.ema_state, strict=False)
        self.net.eval()
        self.last_train = result
        from synthesis.axf.train import SNAPSHOT

        (work_dir / SNAPSHOT).unlink(missing_ok=True)  # finished: the snapshot is no longer needed
        with contextlib.suppress(OSError):
            work_dir.rmdir()  # only if empty
        seconds = time.perf_counter() - started
        from synthesis.axf.model import count_parameters

        tail = result.losses[-50:]
        return self._record_fit(
            train, seconds,
            train_steps=cfg.train_steps, resumed_from_step=result.resumed_from,
            train_seconds=round(result.seconds, 2), encoder_seconds=round(encoders_seconds, 2),
            steps_per_second=round((cfg.train_steps - result.resumed_from) / max(result.seconds, 1e-9), 3),
            final_loss=round(float(np.mean(tail)), 5) if tail else None,
            trainable_parameters=count_parameters(self.net, trainable_only=True),
            total_parameters=count_parameters(self.net), torch_threads=torch.get_num_threads(),
        )

    # ---- generation -----------------------------------------------------------------------
    @property
    def label_floor(self) -> float | None:
        return self.cfg.label_floor

    @property
    def max_attempts(self) -> int:
        return self.cfg.max_attempts

    @property
    def batch_size(self) -> int:
        return max(1, self.cfg.sample_batch_size)

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        return self.synthesize_batch([spec], [normal])[0]

    def _reference(self, spec: SampleSpec) -> tuple[int, list[str]]:
        """The training anomaly whose pixels seed this sample (and feed the image branch)."""
        from synthesis.axf.windows import parse_mask_origin

        store = self.store
        parsed = parse_mask_origin(spec.mask_origin)
        if parsed is not None:
            defect, image_id, steps = parsed
            for i, (t, iid) in enumerate(zip(store["defect_index"], store["image_ids"])):
                if store["defect_types"][t] == defect and iid == image_id:
                    return i, steps
        if spec.defect_type in store["defect_types"]:
            candidates = np.flatnonzero(store["defect_index"] == store["defect_types"].index(spec.defect_type))
        else:
            candidates = np.arange(len(store["captions"]))
        rng = np.random.default_rng(spec.seed)
        if self.cfg.use_text and spec.caption:  # closest training caption to the asked one
            asked = self._sentence_embedding([spec.caption])
            sims = (asked @ self._sentence_embedding([store["captions"][i] for i in candidates]).T)[0].numpy()
            best = candidates[np.flatnonzero(sims >= sims.max() - 1e-6)]
            return int(rng.choice(best)), []
        return int(rng.choice(candidates)), []

    def _settings(self, spec: SampleSpec, mask: np.ndarray, side: int):  # noqa: ANN202 -> SampleSettings
        from synthesis.axf.adapt import settings_for

        cfg = self.cfg
        return settings_for(mask, side, cfg.window_size, strength=cfg.sdedit_strength, thin_strength=cfg.thin_strength,
                            thin_px=cfg.thin_px, thick_px=cfg.thick_px, thin_detail=cfg.thin_detail,
                            retry_strength=cfg.retry_strength, attempt=spec.attempt,
                            adapt=cfg.adapt_to_mask and cfg.sdedit_strength < 1.0, steps=cfg.sample_steps)

    def _sample(self, prepared: list[dict[str, Any]], strength: float) -> torch.Tensor:
        """Windows (pixels in [0, 1], ``[B, 3, w, w]``) for samples that share one SDEdit strength."""
        from synthesis.axf.model import AXFCondition
        from synthesis.axf.sample import ddim_repaint

        cfg = self.cfg
        types = self.store["defect_types"]
        defect = torch.tensor([types.index(p["spec"].defect_type) if p["spec"].defect_type in types else len(types)
                               for p in prepared])
        text = text_valid = image = None
        if cfg.use_text:
            text, text_valid = self._text_tokens([p["spec"].caption for p in prepared])
        if cfg.use_image:
            image = self._image_tokens([p["ref"] for p in prepared])
        cond = AXFCondition(text=text, text_valid=text_valid, image=image, defect=defect,
                            mask=torch.stack([p["loc"] for p in prepared]).clamp(0, 1)).to(self.device)
        known = self.space.encode(torch.stack([p["known"] for p in prepared]).to(self.device))
        weight = torch.stack([p["weight"] for p in prepared]).clamp(0, 1).to(self.device)
        if self.space.factor > 1:
            weight = torch.nn.functional.max_pool2d(weight, self.space.factor)
        use_paste = strength < 1.0
        init = self.space.encode(torch.stack([p["paste"] for p in prepared]).to(self.device)) if use_paste else None
        generators = [torch.Generator().manual_seed(int(p["spec"].seed)) for p in prepared]
        self.net.eval()
        sampled = ddim_repaint(self.net, self.sample_scheduler, known, weight, cond, cfg.sample_steps, generators,
                               init=init, strength=strength, resample=cfg.resample)
        return self.space.decode(sampled).cpu()

    @torch.no_grad()
    def synthesize_batch(self, specs: list[SampleSpec], normals: list[np.ndarray]) -> list[SynthesisOutput]:
        from synthesis.axf.adapt import high_pass
        from synthesis.axf.windows import blend_mask, paste_reference, resize, to_tensor, window_for
        from synthesis.colour import conform

        if self.net is None or self.store is None:
            raise RuntimeError(f"{self.name}: call fit() (or load a checkpoint) before generating")
        cfg = self.cfg
        w = cfg.window_size
        use_paste = cfg.sdedit_strength < 1.0
        prepared = []
        for spec, normal in zip(specs, normals):
            mask = np.asarray(spec.mask, dtype=bool)
            if not mask.any():
                raise ValueError(f"{spec.name}: the planned mask is empty")
            blend = blend_mask(mask, cfg.blend_width, inside=cfg.blend_inside)
            support = blend > 0
            win = window_for(support, w, cfg.window_margin)
            settings = self._settings(spec, mask, win.side)
            ref, steps = self._reference(spec)
            paste = full = detail = None
            if use_paste:
                full = paste_reference(normal, mask, self.store["images"][ref], self.store["masks"][ref], steps, support)
                full = torch.from_numpy(win.crop(full).transpose(2, 0, 1).copy())[None]
                paste = resize(full, w)[0]
                if cfg.detail_transfer > 0 and win.side != w:  # what the round trip through the window loses
                    detail = cfg.detail_transfer * (full - resize(paste[None], win.side, mode="bicubic"))[0]
                full = full[0]
            prepared.append(dict(
                spec=spec, normal=normal, mask=mask, blend=blend, support=support, win=win, ref=ref, paste=paste,
                full=full, detail=detail, settings=settings,
                known=resize(to_tensor(win.crop(normal))[None], w)[0],
                weight=resize(torch.from_numpy(win.crop(blend))[None, None], w, mode="area")[0],
                loc=resize(torch.from_numpy(win.crop(mask).astype(np.float32))[None, None], w, mode="area")[0],
            ))
        windows: list[torch.Tensor | None] = [None] * len(prepared)
        groups: dict[float, list[int]] = {}
        for index, p in enumerate(prepared):
            groups.setdefault(p["settings"].strength if use_paste else 1.0, []).append(index)
        for strength, indices in sorted(groups.items()):
            for index, window in zip(indices, self._sample([prepared[i] for i in indices], strength)):
                windows[index] = window
        outputs = []
        for p, window in zip(prepared, windows):
            win, normal = p["win"], p["normal"]
            generated = resize(window[None].float(), win.side, mode="bicubic")[0]
            if p["detail"] is not None:
                generated = generated + p["detail"]
            if p["full"] is not None and p["settings"].detail > 0:  # the paste's fine detail, inside the mask
                inside = torch.from_numpy(win.crop(p["mask"]).astype(np.float32))[None]
                swap = high_pass(p["full"], cfg.detail_sigma) - high_pass(generated, cfg.detail_sigma)
                generated = generated + p["settings"].detail * inside * swap
            generated = generated.clamp(0, 1).numpy().transpose(1, 2, 0)
            image = normal.astype(np.float32) / 255.0
            alpha = win.crop(p["blend"])[..., None]
            region = image[win.y0:win.y0 + win.side, win.x0:win.x0 + win.side]
            image[win.y0:win.y0 + win.side, win.x0:win.x0 + win.side] = alpha * generated + (1 - alpha) * region
            out = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
            out[~p["support"]] = normal[~p["support"]]  # exactly the normal image outside the returned mask
            out = conform(out, normal, p["support"], self.colour)  # no colour the category does not have
            outputs.append(SynthesisOutput(image=out, mask=p["support"].copy()))
        return outputs

    # ---- persistence ----------------------------------------------------------------------
    def save_state(self, folder: Path) -> None:
        from synthesis.axf.train import _trainable_state

        if self.net is None or self.store is None:
            raise RuntimeError(f"{self.name}: nothing to save before fit()")
        folder = Path(folder)
        torch.save(_trainable_state(self.net), folder / WEIGHTS)
        np.savez_compressed(folder / STORE, images=self.store["images"], masks=self.store["masks"],
                            defect_index=self.store["defect_index"])
        meta = {k: self.store[k] for k in ("captions", "image_ids", "defect_types")}
        meta["text_dim"] = int(self.net.mif.text_proj[1].in_features) if self.cfg.use_text else 1
        meta["image_dim"] = int(self.net.mif.image_proj[1].in_features) if self.cfg.use_image else 1
        (folder / META).write_text(json.dumps(meta, indent=1) + "\n")

    def load_state(self, folder: Path) -> None:
        folder = Path(folder)
        meta = read_json(folder / META)
        if not isinstance(meta, dict) or not {"captions", "image_ids", "defect_types", "text_dim", "image_dim"} <= set(meta):
            raise CheckpointError(f"{folder / META} is not the metadata of an AXF checkpoint")
        arrays = read_arrays(folder / STORE, required=("images", "masks", "defect_index"))
        self.store = {"images": arrays["images"], "masks": arrays["masks"], "defect_index": arrays["defect_index"],
                      **{k: meta[k] for k in ("captions", "image_ids", "defect_types")}}
        self._text_cache.clear()
        self._image_cache.clear()
        self._build(len(meta["defect_types"]), meta["text_dim"], meta["image_dim"], None)
        state = torch.load(folder / WEIGHTS, map_location=self.device, weights_only=True)
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (self.net.unet_frozen and k.startswith("unet."))]
        if missing or unexpected:
            raise ValueError(f"{folder}: weights do not match the config (missing {missing[:5]}, unexpected {unexpected[:5]})")
        self.net.eval()


class AXFNoTextSynthesizer(AXFSynthesizer):
    """AXF without the text branch (ablation ``axf-no-text``): captions are ignored."""

    uses_text: ClassVar[bool] = False
