"""The contract adapter: AnomalyXFusion as a :class:`~synthesis.contract.Synthesizer`.

``fit`` encodes the training captions and masked defect windows once with the frozen encoders
(:class:`~synthesis.axf.conditions.Conditioner`), builds :class:`~synthesis.axf.model.AXFNet`
and trains it (resumably, see :mod:`synthesis.axf.train`). Generation goes through
:class:`~synthesis.axf.pipeline.AXFPipeline`, the same object a diffusers user loads: this
adapter only picks each sample's reference defect (the training anomaly its planned mask was
augmented from, or the one whose caption is closest to the asked one) and keeps the result in
the category's colours. Pixels outside the returned mask are the normal image's, exactly.

Checkpoints are diffusers folders: ``state/`` holds ``model_index.json``, ``axf/`` (config and
safetensors weights) and ``scheduler/``, readable with ``AXFPipeline.from_pretrained(state)``,
plus the training anomalies (``anomalies.npz``, ``axf.json``) the references come from. In paper
mode ``axf/`` holds only what was trained; the frozen U-Net and VAE are reloaded from ``pretrained``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel

from synthesis.axf.config import AXFConfig
from synthesis.contract import SampleSpec, SynthesisOutput, Synthesizer, TrainSplit, canonical_hash
from synthesis.state_files import CheckpointError, read_arrays, read_json

__all__ = ["AXFConfig", "AXFNoTextSynthesizer", "AXFSynthesizer"]

NET_FOLDER = "axf"
LEGACY_WEIGHTS = "weights.pt"  # version 1-2 checkpoints (torch.save of the state dict)
STORE = "anomalies.npz"
META = "axf.json"
WORK_DIR_ENV = "AXF_WORK_DIR"


class AXFSynthesizer(Synthesizer):
    Config: ClassVar[type[BaseModel]] = AXFConfig
    # 3: diffusers' EMA and transformers' warm-up cosine schedule, encoders run per caption / per window;
    #    generates on plan 2 (caption-planned masks, captions chosen by the normal image)
    # 4: DPM-Solver++ (2M) with 10 steps over the schedule instead of DDIM with 50 (6 instead of 30 model calls
    #    from the default SDEdit start); samples of a batch with different starts share the model calls
    # 5: the network's sampling calls in bfloat16 (sample_precision; 1.7x faster on a CPU with AVX512-BF16)
    version: ClassVar[str] = "5"
    description: ClassVar[str] = (
        "AnomalyXFusion: multi-modal In-Fusion (caption, masked defect image + learnable defect tokens, mask) "
        "and Dynamic Dif-Fusion conditioning of a diffusion U-Net; DPM-Solver++ + RePaint blending in a window "
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
        from synthesis.axf.conditions import Conditioner

        cfg = self.cfg
        self.conditioner = Conditioner(
            text_encoder=cfg.text_encoder if cfg.use_text else None,
            image_encoder=cfg.image_encoder if cfg.use_image else None,
            max_text_tokens=cfg.max_text_tokens, image_grid=cfg.image_grid,
            window_size=cfg.window_size, window_margin=cfg.window_margin,
        )
        self.net = None
        self.pipeline = None
        self.space = None
        self.train_scheduler = None
        self.sample_scheduler = None
        self.store: dict[str, Any] | None = None
        self.last_train = None
        self.training_set = None

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

    def _net_config(self, defect_types: list[str], text_dim: int, image_dim: int) -> dict[str, Any]:
        """The network's configuration (:class:`~synthesis.axf.model.AXFNet` arguments) from ours."""
        cfg = self.cfg
        return dict(
            width=cfg.width, text_dim=text_dim, image_dim=image_dim, num_defect_types=len(defect_types),
            defect_tokens=cfg.defect_tokens, mask_grid=cfg.mask_grid, fusion_layers=cfg.fusion_layers,
            fusion_heads=cfg.fusion_heads, use_text=cfg.use_text, use_image=cfg.use_image,
            use_mask_tokens=cfg.use_mask_tokens, use_ddf=cfg.use_ddf, text_encoder=cfg.text_encoder,
            image_encoder=cfg.image_encoder, max_text_tokens=cfg.max_text_tokens, image_grid=cfg.image_grid,
            defect_types=list(defect_types),
        )

    def _build(self, defect_types: list[str], text_dim: int, image_dim: int, defect_init: torch.Tensor | None) -> None:
        from synthesis.axf.latent import LatentSpace, PixelSpace, load_pretrained_ldm
        from synthesis.axf.model import AXFNet
        from synthesis.axf.sample import make_schedulers

        cfg = self.cfg
        common = self._net_config(defect_types, text_dim, image_dim)
        with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            if cfg.backbone == "latent":
                ldm = load_pretrained_ldm(cfg.pretrained, device=self.device, solver=cfg.solver)
                self.space = LatentSpace(ldm.vae)
                self.net = AXFNet(**common, defect_init=defect_init, unet=ldm.unet)
                self.train_scheduler, self.sample_scheduler = ldm.train_scheduler, ldm.sample_scheduler
            else:
                self.space = PixelSpace()
                self.net = AXFNet(**common, defect_init=defect_init, in_channels=3, sample_size=cfg.window_size,
                                  unet_channels=tuple(cfg.unet_channels),
                                  unet_attention_levels=tuple(cfg.unet_attention_levels),
                                  layers_per_block=cfg.layers_per_block, head_dim=cfg.head_dim)
                self.train_scheduler, self.sample_scheduler = make_schedulers(cfg.num_train_timesteps, cfg.beta_schedule,
                                                                                    solver=cfg.solver)
        self.net.to(self.device)
        self._make_pipeline()

    def _make_pipeline(self) -> None:
        from synthesis.axf.pipeline import AXFPipeline

        vae = getattr(self.space, "vae", None)
        self.pipeline = AXFPipeline(axf=self.net, scheduler=self.sample_scheduler, vae=vae,
                                    window_size=self.cfg.window_size, window_margin=self.cfg.window_margin)
        self.pipeline.conditioner = self.conditioner  # share the encoders' caches with training
        self.pipeline.set_progress_bar_config(disable=True)

    @property
    def train_t_max(self) -> float:
        """The highest noise level trained on, as a fraction of the schedule."""
        if self.cfg.train_t_max is not None:
            return self.cfg.train_t_max
        return min(1.0, self.cfg.sdedit_strength + 0.1)

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
        text = text_valid = image = None
        text_dim = image_dim = 1
        if cfg.use_text:
            text, text_valid = self.conditioner.text_tokens(self.store["captions"])
            text_dim = text.shape[-1]
        defect_init = None
        if cfg.use_image:
            image = self.conditioner.image_tokens(list(self.store["images"]), list(self.store["masks"]))
            image_dim = image.shape[-1]
            pooled = image[:, 0]
            per_type = [pooled[torch.from_numpy(self.store["defect_index"] == k)].mean(0) for k in range(len(types))]
            defect_init = torch.stack(per_type + [pooled.mean(0)])
        encoders_seconds = time.perf_counter() - started
        self._build(list(types), text_dim, image_dim, defect_init)
        data = TrainingSet(
            anomaly_images=self.store["images"], anomaly_masks=self.store["masks"], defect_index=self.store["defect_index"],
            text=text, text_valid=text_valid, image=image,
            normals=np.stack([n.image for n in train.normals]) if train.normals else np.zeros((0, 1, 1, 3), np.uint8),
        )
        settings = TrainSettings.from_config(cfg, t_max=self.train_t_max)
        self.training_set = data
        work_dir = self._default_work_dir(train)
        identity = canonical_hash({"config": self.config_hash, "split": train.split_id})
        result = run_training(self.net, data, self.space.encode, self.train_scheduler, settings, work_dir=work_dir,
                              identity=identity, progress=progress, callback=callback, device=self.device,
                              desc=f"fit {self.name}")
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
            asked = self.conditioner.sentence_embedding([spec.caption])
            sims = (asked @ self.conditioner.sentence_embedding([store["captions"][i] for i in candidates]).T)[0].numpy()
            best = candidates[np.flatnonzero(sims >= sims.max() - 1e-6)]
            return int(rng.choice(best)), []
        return int(rng.choice(candidates)), []

    def pipeline_inputs(self, specs: list[SampleSpec], normals: list[np.ndarray]) -> dict[str, Any]:
        """The :class:`~synthesis.axf.pipeline.AXFPipeline` arguments that generate ``specs``."""
        from synthesis.axf.pipeline import SamplingOptions

        references = [self._reference(spec) for spec in specs]
        use_paste = self.cfg.sdedit_strength < 1.0
        return dict(
            image=list(normals), mask_image=[np.asarray(s.mask, dtype=bool) for s in specs],
            prompt=[s.caption for s in specs] if self.cfg.use_text else None,
            defect_type=[s.defect_type for s in specs],
            reference_image=[self.store["images"][i] for i, _ in references],
            reference_mask=[self.store["masks"][i] for i, _ in references],
            reference_steps=[steps for _, steps in references] if use_paste else None,
            generator=[torch.Generator().manual_seed(int(s.seed)) for s in specs],
            attempt=[s.attempt for s in specs], options=SamplingOptions.from_config(self.cfg),
        )

    @torch.no_grad()
    def synthesize_batch(self, specs: list[SampleSpec], normals: list[np.ndarray]) -> list[SynthesisOutput]:
        from synthesis.colour import conform

        if self.pipeline is None or self.store is None:
            raise RuntimeError(f"{self.name}: call fit() (or load a checkpoint) before generating")
        for spec in specs:
            if not np.asarray(spec.mask, dtype=bool).any():
                raise ValueError(f"{spec.name}: the planned mask is empty")
        result = self.pipeline(**self.pipeline_inputs(specs, normals))
        return [SynthesisOutput(image=conform(image, normal, mask, self.colour), mask=mask)  # the category's colours
                for image, mask, normal in zip(result.images, result.masks, normals)]

    # ---- persistence ----------------------------------------------------------------------
    def save_state(self, folder: Path) -> None:
        """A diffusers pipeline folder (see the module docstring) plus the training anomalies."""
        if self.net is None or self.store is None:
            raise RuntimeError(f"{self.name}: nothing to save before fit()")
        folder = Path(folder)
        if self.net.unet_frozen:  # paper mode: the trained part only, the pretrained model is reloaded
            from safetensors.torch import save_file

            (folder / NET_FOLDER).mkdir(parents=True, exist_ok=True)
            self.net.save_config(folder / NET_FOLDER)
            save_file(self.net.trainable_state_dict(), folder / NET_FOLDER / "diffusion_pytorch_model.safetensors")
        else:
            self.pipeline.save_pretrained(folder)
        np.savez_compressed(folder / STORE, images=self.store["images"], masks=self.store["masks"],
                            defect_index=self.store["defect_index"])
        meta = {k: self.store[k] for k in ("captions", "image_ids", "defect_types")}
        (folder / META).write_text(json.dumps(meta, indent=1) + "\n")

    def load_state(self, folder: Path) -> None:
        folder = Path(folder)
        if (folder / LEGACY_WEIGHTS).is_file() and not (folder / NET_FOLDER).is_dir():
            raise CheckpointError(f"{folder / LEGACY_WEIGHTS}: an AXF checkpoint of version 1 or 2 (torch.save); "
                                  f"version {self.version} reads save_pretrained folders: fit again")
        meta = read_json(folder / META)
        if not isinstance(meta, dict) or not {"captions", "image_ids", "defect_types"} <= set(meta):
            raise CheckpointError(f"{folder / META} is not the metadata of an AXF checkpoint")
        arrays = read_arrays(folder / STORE, required=("images", "masks", "defect_index"))
        self.store = {"images": arrays["images"], "masks": arrays["masks"], "defect_index": arrays["defect_index"],
                      **{k: meta[k] for k in ("captions", "image_ids", "defect_types")}}
        net_config = read_json(folder / NET_FOLDER / "config.json")
        if not isinstance(net_config, dict) or "text_dim" not in net_config or "image_dim" not in net_config:
            raise CheckpointError(f"{folder / NET_FOLDER / 'config.json'} is not the config of an AXF network")
        self._build(list(meta["defect_types"]), int(net_config["text_dim"]), int(net_config["image_dim"]), None)
        state = _read_safetensors(folder / NET_FOLDER / "diffusion_pytorch_model.safetensors")
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (self.net.unet_frozen and k.startswith("unet."))]
        if missing or unexpected:
            raise CheckpointError(f"{folder / NET_FOLDER}: weights do not match the config "
                                  f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        self.net.eval()


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the checkpoint (expected safetensors weights)")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a valid safetensors file ({type(err).__name__}: {err})") from err


class AXFNoTextSynthesizer(AXFSynthesizer):
    """AXF without the text branch (ablation ``axf-no-text``): captions are ignored."""

    uses_text: ClassVar[bool] = False
