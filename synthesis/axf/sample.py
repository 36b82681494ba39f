"""Sampling: DDIM with RePaint-style blending, optionally started SDEdit-style from a pasted defect.

At every step the region to keep (outside the soft mask) is replaced by the normal window
noised to the current level, so the generated content has to agree with its surroundings and
the background comes back exactly at the end (the synthesizer also composites the final image
with the normal one outside the mask). ``resample > 1`` repeats each step after re-noising
(RePaint's resampling), which harmonises the boundary further at a proportional cost.

With ``init`` and ``strength < 1`` sampling starts at the ``strength`` fraction of the schedule
from ``init`` (a real training defect pasted into the mask) noised to that level: the network
only has to harmonise and vary a plausible defect under the X-embedding's control instead of
inventing one from noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from synthesis.axf.guidance import Denoiser


def make_schedulers(num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2",
                    clip_sample: bool = True, beta_start: float = 0.0001, beta_end: float = 0.02
                    ) -> tuple[DDPMScheduler, DDIMScheduler]:
    """The training (DDPM) and sampling (DDIM) schedulers over the same noise schedule."""
    common = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, beta_start=beta_start,
                  beta_end=beta_end, clip_sample=clip_sample, prediction_type="epsilon")
    return DDPMScheduler(**common), DDIMScheduler(**common, timestep_spacing="trailing", set_alpha_to_one=True)


def randn(shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device | str = "cpu") -> torch.Tensor:
    """One draw per sample from that sample's own generator: results do not depend on batching."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators]).to(device)


def _alpha(scheduler: DDIMScheduler, t: int) -> torch.Tensor:
    return scheduler.alphas_cumprod[t] if t >= 0 else scheduler.final_alpha_cumprod


def noise_to(x0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise


@torch.no_grad()
def ddim_repaint(
    denoiser: Denoiser,
    scheduler: DDIMScheduler,
    known: torch.Tensor,
    generate: torch.Tensor,
    steps: int,
    generators: Sequence[torch.Generator],
    init: torch.Tensor | None = None,
    strength: float = 1.0,
    resample: int = 1,
    eta: float = 0.0,
    progress: bool = False,
) -> torch.Tensor:
    """Sample ``[B, C, h, w]`` in model space.

    ``denoiser``: the model call ``(x, t) -> eps`` (:func:`synthesis.axf.guidance.guided_denoiser`);
    ``known``: the normal windows (model space); ``generate``: ``[B, 1, h, w]`` weights in [0, 1],
    1 where to generate and 0 where to keep ``known``; ``init``: SDEdit start (model space).
    """
    device = known.device
    shape = known.shape[1:]
    scheduler.set_timesteps(steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    gap = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    if init is not None and strength < 1.0:
        start = min(len(timesteps) - 1, max(0, round(len(timesteps) * (1.0 - strength))))
        timesteps = timesteps[start:]
        x = noise_to(init, randn(shape, generators, device), _alpha(scheduler, timesteps[0]))
    else:
        x = randn(shape, generators, device) * scheduler.init_noise_sigma
    iterator = timesteps
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(timesteps, desc="ddim", leave=False)
    for t in iterator:
        alpha_t, alpha_prev = _alpha(scheduler, t), _alpha(scheduler, t - gap)
        for round_ in range(resample):
            x = generate * x + (1 - generate) * noise_to(known, randn(shape, generators, device), alpha_t)
            eps = denoiser(x, torch.full((x.shape[0],), t, dtype=torch.long, device=device))
            variance = randn(shape, generators, device) if eta > 0 else None
            x_prev = scheduler.step(eps, t, x, eta=eta, variance_noise=variance).prev_sample
            if round_ < resample - 1:  # RePaint: go back to level t and denoise again
                ratio = alpha_t / alpha_prev
                x = ratio.sqrt() * x_prev + (1 - ratio).sqrt() * randn(shape, generators, device)
            else:
                x = x_prev
    return generate * x + (1 - generate) * known
