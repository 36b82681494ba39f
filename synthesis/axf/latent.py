"""Model spaces: pixels (offline mode) or a frozen pretrained VAE's latents (paper mode).

Paper mode loads a pretrained latent diffusion model -- Stable Diffusion 1.x or the LDM
text2img model -- from a local folder or a hub id in the diffusers layout (``unet/``, ``vae/``,
``scheduler/`` subfolders). Its U-Net and VAE are frozen; AXF's MIF, DDF and tokens learn and
enter the U-Net's cross-attention (projected to its ``cross_attention_dim``, 768 for SD 1.x).

    python -m synthesis fit --synth axf --category bottle --data-root DIR --out ckpt \\
        --device cuda --config backbone=latent --config pretrained=stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --config window_size=256 --config text_encoder=clip-text:stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --config image_encoder=clip-vision:openai/clip-vit-large-patch14
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from synthesis.axf.encoders import hub_offline


class PretrainedUnavailable(RuntimeError):
    """The pretrained latent diffusion model could not be loaded."""


class PixelSpace:
    """Identity model space: windows in [-1, 1] at the window resolution."""

    factor = 1
    channels = 3

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images * 2.0 - 1.0

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


class LatentSpace:
    """A frozen AutoencoderKL: windows in [0, 1] <-> scaled latents (posterior mean, deterministic)."""

    def __init__(self, vae: AutoencoderKL):
        self.vae = vae.eval().requires_grad_(False)
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.channels = int(vae.config.latent_channels)
        self.scaling = float(getattr(vae.config, "scaling_factor", 0.18215) or 0.18215)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vae.parameters()).dtype
        posterior = self.vae.encode((images * 2.0 - 1.0).to(dtype)).latent_dist
        return posterior.mean.float() * self.scaling

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vae.parameters()).dtype
        images = self.vae.decode((x / self.scaling).to(dtype)).sample.float()
        return ((images + 1.0) / 2.0).clamp(0.0, 1.0)


@dataclass
class PretrainedLDM:
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    train_scheduler: DDPMScheduler
    sample_scheduler: SchedulerMixin
    source: str


def load_pretrained_ldm(source: str, device: str = "cpu", dtype: torch.dtype = torch.float32,
                        solver: str = "ddim") -> PretrainedLDM:
    """Load U-Net, VAE and noise schedule of a latent diffusion model from a folder or hub id; sampling
    uses ``solver`` (:data:`synthesis.axf.sample.SOLVERS`) over that schedule."""
    local = Path(source).expanduser()
    where = str(local) if local.exists() else source
    offline = hub_offline()
    try:
        unet = UNet2DConditionModel.from_pretrained(where, subfolder="unet", torch_dtype=dtype, local_files_only=offline)
        vae = AutoencoderKL.from_pretrained(where, subfolder="vae", torch_dtype=dtype, local_files_only=offline)
    except Exception as err:  # noqa: BLE001 - re-raised with the reason users need
        if local.exists():
            hint = f"{local} exists but does not hold a diffusers model with unet/ and vae/ subfolders"
        elif offline:
            hint = (f"{source!r} is not a local folder and the Hugging Face hub is offline (HF_HUB_OFFLINE=1): "
                    "download the model on a machine with internet (e.g. `huggingface-cli download "
                    f"{source}`) or pass a local folder as pretrained=")
        else:
            hint = f"could not fetch {source!r} from the Hugging Face hub (no network, wrong id, or gated model)"
        raise PretrainedUnavailable(f"paper-scale AXF needs a pretrained latent diffusion model: {hint} "
                                    f"({type(err).__name__}: {err})") from err
    try:
        ddpm = DDPMScheduler.from_pretrained(where, subfolder="scheduler", local_files_only=offline)
    except Exception:  # noqa: BLE001 - the Stable Diffusion 1.x schedule when none is stored
        ddpm = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    if ddpm.config.prediction_type != "epsilon":
        raise PretrainedUnavailable(f"{source}: only epsilon-prediction models (SD 1.x, LDM) are supported, "
                                    f"not {ddpm.config.prediction_type!r}")
    ddpm = DDPMScheduler.from_config(ddpm.config, clip_sample=False)
    from synthesis.axf.sample import make_sample_scheduler

    sampler = make_sample_scheduler(solver, ddpm.config, clip_sample=False)
    unet.to(device).requires_grad_(False).eval()
    vae.to(device).requires_grad_(False).eval()
    return PretrainedLDM(unet, vae, ddpm, sampler, source)
