"""``AXFPipeline``: a trained AXF as a diffusers pipeline, usable without the benchmark.

Give it a normal image, a mask and a caption; it returns the image with a defect generated
inside the mask (and nothing outside it changed) and the mask that labels it::

    from synthesis.axf.pipeline import AXFPipeline

    pipe = AXFPipeline.from_pretrained("axf-bottle")          # a folder written by save_pretrained
    out = pipe(normal, mask, "a large break on the rim of the bottle", defect_type="broken_large",
               reference_image=defect, reference_mask=defect_mask,  # a real defect to start from (optional)
               generator=torch.Generator().manual_seed(0))
    out.images[0], out.masks[0]                                # HxWx3 uint8, HxW bool

Components: ``axf`` (:class:`~synthesis.axf.model.AXFNet`), ``scheduler`` (the sampling solver:
DPM-Solver++ by default, DDIM or UniPC, trailing spacing; see :mod:`synthesis.axf.sample`) and, in
paper mode, ``vae`` (the frozen pretrained autoencoder). The frozen text and image encoders are named in the network's config and loaded by name (:mod:`synthesis.axf.encoders`).

A call reads as numbered steps: (1) check the inputs, (2) cut a window around each mask and
prepare what the sampler keeps and where it generates, (3) encode the conditions, (4) denoise
(the solver with RePaint blending, SDEdit-started from the pasted reference when one is given, the model
call guided per modality by :mod:`synthesis.axf.guidance`), (5) decode and composite into the normal
image. Every sample has its own generator, so a sample
does not depend on the others in its batch.

The blending band lies inside the mask by default (``blend_inside``), so the returned mask is
the given one; ``blend_inside=False`` puts it outside (version 1) and returns the mask plus it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler,
                       UniPCMultistepScheduler)
from diffusers.utils import BaseOutput

from synthesis.axf.conditions import Conditioner
from synthesis.axf.config import DEFAULTS, AXFConfig
from synthesis.axf.model import AXFCondition, AXFNet


@dataclass(frozen=True)
class SamplingOptions:
    """The sampler's settings (defaults: :data:`~synthesis.axf.config.DEFAULTS`)."""

    num_inference_steps: int = DEFAULTS.sample_steps
    strength: float = DEFAULTS.sdedit_strength
    resample: int = DEFAULTS.resample
    guidance_text: float = DEFAULTS.guidance_text
    guidance_image: float = DEFAULTS.guidance_image
    sample_precision: str = DEFAULTS.sample_precision
    blend_width: float = DEFAULTS.blend_width
    blend_inside: bool = DEFAULTS.blend_inside
    detail_transfer: float = DEFAULTS.detail_transfer
    adapt_to_mask: bool = DEFAULTS.adapt_to_mask
    thin_px: float = DEFAULTS.thin_px
    thick_px: float = DEFAULTS.thick_px
    thin_strength: float = DEFAULTS.thin_strength
    thin_detail: float = DEFAULTS.thin_detail
    detail_sigma: float = DEFAULTS.detail_sigma
    retry_strength: float = DEFAULTS.retry_strength

    @classmethod
    def from_config(cls, cfg: AXFConfig) -> SamplingOptions:
        names = {f.name for f in fields(cls)} - {"num_inference_steps", "strength"}
        return cls(num_inference_steps=cfg.sample_steps, strength=cfg.sdedit_strength,
                   **{n: getattr(cfg, n) for n in names})


@dataclass
class AXFPipelineOutput(BaseOutput):
    """``images``: HxWx3 uint8 arrays (or PIL images); ``masks``: HxW bool, where each image differs
    from its normal image (the given mask, plus the blending band when it lies outside)."""

    images: list[Any]
    masks: list[np.ndarray]


def _as_list(value: Any, n: int, name: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}: {len(value)} values for {n} images")
        return list(value)
    return [value] * n


def _array(image: Any, name: str, dtype: type | None = None) -> np.ndarray:
    array = np.asarray(image)
    if dtype is bool:
        if array.ndim == 3:
            array = array[..., 0]
        return array > (127 if array.dtype == np.uint8 else 0)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"{name} must be an HxWx3 uint8 RGB image, got shape {array.shape} and dtype {array.dtype}")
    return array


class AXFPipeline(DiffusionPipeline):
    """AnomalyXFusion: generate a defect inside a mask of a normal image, conditioned on a caption."""

    model_cpu_offload_seq = "axf->vae"
    _optional_components = ["vae"]

    def __init__(self, axf: AXFNet, scheduler: DPMSolverMultistepScheduler | UniPCMultistepScheduler | DDIMScheduler,
                 vae: AutoencoderKL | None = None,
                 window_size: int = DEFAULTS.window_size, window_margin: float = DEFAULTS.window_margin):
        super().__init__()
        self.register_modules(axf=axf, scheduler=scheduler, vae=vae)
        self.register_to_config(window_size=window_size, window_margin=window_margin)
        config = axf.config
        self.conditioner = Conditioner(
            text_encoder=config.text_encoder if config.use_text else None,
            image_encoder=config.image_encoder if config.use_image else None,
            max_text_tokens=config.max_text_tokens, image_grid=config.image_grid,
            window_size=window_size, window_margin=window_margin,
        )

    @property
    def space(self):  # noqa: ANN201 - PixelSpace | LatentSpace
        from synthesis.axf.latent import LatentSpace, PixelSpace

        return LatentSpace(self.vae) if getattr(self, "vae", None) is not None else PixelSpace()

    @torch.no_grad()
    def __call__(
        self,
        image: Any,
        mask_image: Any,
        prompt: str | Sequence[str] | None = None,
        *,
        defect_type: str | Sequence[str | None] | None = None,
        reference_image: Any = None,
        reference_mask: Any = None,
        reference_steps: Sequence[Sequence[str]] | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        num_inference_steps: int | None = None,
        strength: float | None = None,
        attempt: int | Sequence[int] = 0,
        options: SamplingOptions | None = None,
        output_type: str = "np",
        return_dict: bool = True,
    ) -> AXFPipelineOutput | tuple[list[Any], list[np.ndarray]]:
        """Generate one defect per (normal image, mask) pair; lists make a batch.

        ``prompt``: the caption (needed when the network has a text branch). ``defect_type``: a
        name from ``axf.config.defect_types`` (others, or None, use the "unknown type" tokens).
        ``reference_image``/``reference_mask``: a real defect (HxWx3 uint8, HxW) whose pixels,
        pasted into the mask (after ``reference_steps``: "flip", "rot90", ...), start sampling at
        ``strength`` of the schedule and whose masked window feeds the image branch; without one,
        sampling starts from noise and the image branch is dropped. ``attempt`` > 0 marks a redo
        (weaker SDEdit start, see :mod:`synthesis.axf.adapt`). ``generator``: one per image for
        results that do not depend on batching.
        """
        # 1. check the inputs
        images = [_array(i, "image") for i in (image if isinstance(image, (list, tuple)) else [image])]
        n = len(images)
        masks = [_array(m, "mask_image", bool) for m in _as_list(mask_image, n, "mask_image")]
        for i, (img, mask) in enumerate(zip(images, masks)):
            if mask.shape != img.shape[:2]:
                raise ValueError(f"mask {i} has shape {mask.shape}, its image {img.shape[:2]}")
            if not mask.any():
                raise ValueError(f"mask {i} is empty")
        prompts = _as_list(prompt, n, "prompt")
        if self.axf.config.use_text and any(p is None for p in prompts):
            raise ValueError("this AXF model reads captions: give a prompt for every image")
        types = _as_list(defect_type, n, "defect_type")
        ref_images = _as_list(reference_image, n, "reference_image")
        ref_masks = _as_list(reference_mask, n, "reference_mask")
        steps = list(reference_steps) if reference_steps is not None else [[] for _ in range(n)]
        generators = _as_list(generator if generator is not None else torch.Generator().manual_seed(0), n, "generator")
        attempts = _as_list(attempt, n, "attempt")
        opts = options or SamplingOptions()
        sample_steps = num_inference_steps or opts.num_inference_steps
        base_strength = strength if strength is not None else opts.strength
        references = []
        for i, (ri, rm) in enumerate(zip(ref_images, ref_masks)):
            if (ri is None) != (rm is None):
                raise ValueError(f"image {i}: give both reference_image and reference_mask, or neither")
            references.append(None if ri is None else (_array(ri, "reference_image"), _array(rm, "reference_mask", bool)))

        # 2. windows: what to keep, where to generate, the SDEdit start
        prepared = [self._prepare(img, mask, ref, step, a, opts, base_strength, sample_steps)
                    for img, mask, ref, step, a in zip(images, masks, references, steps, attempts)]

        # 3.-4. conditions and denoising: one batch, each sample starting at its own SDEdit strength
        windows = self._denoise(prepared, prompts, types, references, generators, sample_steps, opts)

        # 5. back to image size, fine detail, composite
        outputs = [self._composite(p, window, opts) for p, window in zip(prepared, windows)]
        out_images = [o[0] for o in outputs]
        if output_type == "pil":
            from PIL import Image

            out_images = [Image.fromarray(o) for o in out_images]
        elif output_type != "np":
            raise ValueError(f"output_type must be 'np' or 'pil', not {output_type!r}")
        out_masks = [o[1] for o in outputs]
        self.maybe_free_model_hooks()
        if not return_dict:
            return out_images, out_masks
        return AXFPipelineOutput(images=out_images, masks=out_masks)

    # ---- steps ------------------------------------------------------------------------------
    def _prepare(self, normal: np.ndarray, mask: np.ndarray, reference: tuple[np.ndarray, np.ndarray] | None,
                 steps: Sequence[str], attempt: int, opts: SamplingOptions, strength: float,
                 sample_steps: int) -> dict[str, Any]:
        from synthesis.axf.adapt import settings_for
        from synthesis.axf.windows import blend_mask, paste_reference, resize, to_tensor, window_for

        w = self.config.window_size
        blend = blend_mask(mask, opts.blend_width, inside=opts.blend_inside)
        support = blend > 0
        win = window_for(support, w, self.config.window_margin)
        use_paste = reference is not None and strength < 1.0
        settings = settings_for(mask, win.side, w, strength=strength, thin_strength=opts.thin_strength,
                                thin_px=opts.thin_px, thick_px=opts.thick_px, thin_detail=opts.thin_detail,
                                retry_strength=opts.retry_strength, attempt=attempt,
                                adapt=opts.adapt_to_mask and use_paste, steps=sample_steps)
        paste = full = detail = None
        if use_paste:
            full = paste_reference(normal, mask, reference[0], reference[1], list(steps), support)
            full = torch.from_numpy(win.crop(full).transpose(2, 0, 1).copy())[None]
            paste = resize(full, w)[0]
            if opts.detail_transfer > 0 and win.side != w:  # what the round trip through the window loses
                detail = opts.detail_transfer * (full - resize(paste[None], win.side, mode="bicubic"))[0]
            full = full[0]
        return dict(
            normal=normal, mask=mask, blend=blend, support=support, win=win, paste=paste, full=full, detail=detail,
            detail_weight=settings.detail if use_paste else 0.0, strength=settings.strength if use_paste else 1.0,
            known=resize(to_tensor(win.crop(normal))[None], w)[0],
            weight=resize(torch.from_numpy(win.crop(blend))[None, None], w, mode="area")[0],
            loc=resize(torch.from_numpy(win.crop(mask).astype(np.float32))[None, None], w, mode="area")[0],
        )

    def _encode(self, prepared: list[dict[str, Any]], prompts: list[str | None], types: list[str | None],
                references: list[tuple[np.ndarray, np.ndarray] | None]) -> AXFCondition:
        config = self.axf.config
        names = list(config.defect_types or [])
        defect = torch.tensor([names.index(t) if t in names else config.num_defect_types for t in types])
        text = text_valid = image = keep = None
        if config.use_text:
            text, text_valid = self.conditioner.text_tokens([p or "" for p in prompts])
        if config.use_image:
            known = [r for r in references if r is not None]
            tokens = self.conditioner.image_tokens([r[0] for r in known], [r[1] for r in known]) if known else None
            rows, k = [], 0
            for r in references:
                if r is None:  # no reference: the image branch is dropped for this sample, as in training
                    rows.append(None)
                else:
                    rows.append(tokens[k])
                    k += 1
            shape = next((t.shape for t in rows if t is not None), (1 + config.image_grid ** 2, config.image_dim))
            image = torch.stack([t if t is not None else torch.zeros(shape) for t in rows])
            if any(r is None for r in references):
                keep = torch.ones(len(references), 4, dtype=torch.bool)
                keep[:, 1] = torch.tensor([r is not None for r in references])
        return AXFCondition(text=text, text_valid=text_valid, image=image, defect=defect,
                            mask=torch.stack([p["loc"] for p in prepared]).clamp(0, 1), keep=keep)

    def _denoise(self, prepared: list[dict[str, Any]], prompts: list[str | None], types: list[str | None],
                 references: list[tuple[np.ndarray, np.ndarray] | None], generators: list[torch.Generator],
                 sample_steps: int, opts: SamplingOptions) -> torch.Tensor:
        """Windows (pixels in [0, 1], ``[B, 3, w, w]``); samples with different SDEdit strengths share one
        sampling loop (each joins at its own start step, see :func:`~synthesis.axf.sample.repaint_sample`)."""
        from synthesis.axf.guidance import GuidanceScales, guided_denoiser
        from synthesis.axf.sample import in_precision, repaint_sample

        device = self.axf.device
        space = self.space
        self.axf.eval()
        with torch.inference_mode():
            cond = self._encode(prepared, prompts, types, references).to(device)
            known = space.encode(torch.stack([p["known"] for p in prepared]).to(device))
            weight = torch.stack([p["weight"] for p in prepared]).clamp(0, 1).to(device)
            if space.factor > 1:
                weight = torch.nn.functional.max_pool2d(weight, space.factor)
            strengths = [p["strength"] for p in prepared]
            init = None
            if any(s < 1.0 for s in strengths):  # samples without a paste start from noise; their row is unused
                init = space.encode(torch.stack([p["paste"] if p["paste"] is not None else p["known"]
                                                 for p in prepared]).to(device))
            denoiser = guided_denoiser(self.axf, cond, GuidanceScales(text=opts.guidance_text, image=opts.guidance_image))
            denoiser = in_precision(denoiser, opts.sample_precision, device)
        sampled = repaint_sample(denoiser, self.scheduler, known, weight, sample_steps, generators,
                                 init=init, strength=strengths, resample=opts.resample)
        with torch.inference_mode():
            return space.decode(sampled).cpu()

    @staticmethod
    def _composite(p: dict[str, Any], window: torch.Tensor, opts: SamplingOptions) -> tuple[np.ndarray, np.ndarray]:
        from synthesis.axf.adapt import high_pass
        from synthesis.axf.windows import resize

        win, normal = p["win"], p["normal"]
        generated = resize(window[None].float(), win.side, mode="bicubic")[0]
        if p["detail"] is not None:
            generated = generated + p["detail"]
        if p["full"] is not None and p["detail_weight"] > 0:  # the paste's fine detail, inside the mask
            inside = torch.from_numpy(win.crop(p["mask"]).astype(np.float32))[None]
            swap = high_pass(p["full"], opts.detail_sigma) - high_pass(generated, opts.detail_sigma)
            generated = generated + p["detail_weight"] * inside * swap
        generated = generated.clamp(0, 1).numpy().transpose(1, 2, 0)
        image = normal.astype(np.float32) / 255.0
        alpha = win.crop(p["blend"])[..., None]
        region = image[win.y0:win.y0 + win.side, win.x0:win.x0 + win.side]
        image[win.y0:win.y0 + win.side, win.x0:win.x0 + win.side] = alpha * generated + (1 - alpha) * region
        out = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        support = p["support"]
        out[~support] = normal[~support]  # exactly the normal image outside the returned mask
        return out, support.copy()
