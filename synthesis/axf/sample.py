"""Sampling: a diffusers solver with RePaint-style blending, optionally started SDEdit-style from a pasted defect.

At every step the region to keep (outside the soft mask) is replaced by the normal window
noised to the current level, so the generated content has to agree with its surroundings and
the background comes back exactly at the end (the synthesizer also composites the final image
with the normal one outside the mask). ``resample > 1`` repeats each step after re-noising
(RePaint's resampling; DDIM only, since a multistep solver's history cannot step back).

With ``init`` and ``strength < 1`` a sample starts at the ``strength`` fraction of the schedule
from ``init`` (a real training defect pasted into the mask) noised to that level: the network
only has to harmonise and vary a plausible defect under the X-embedding's control instead of
inventing one from noise. Samples of one batch may start at different steps (per-mask strengths,
see :mod:`synthesis.axf.adapt`): each start has its own copy of the solver (a multistep solver
keeps a history per sample), and at every step one model call serves every sample that has
started, so a batch costs the model calls of its strongest start, not the sum over starts.

Solvers by name (:data:`SOLVERS`, pinned in ``AXFConfig.solver``): ``ddim`` (version 3's 50
steps), ``dpmsolver++`` (DPM-Solver++ 2M, Lu et al. 2022; the default since version 4) and
``unipc`` (UniPC, Zhao et al. 2023). All share the training noise schedule and the trailing
timestep grid, so a strength snaps to the same fraction of the schedule whichever is used.

The network is called in exactly one place, through a :data:`Denoiser` ``(x, t) -> eps``;
:func:`net_denoiser` is the plain conditional one (the X-embedding computed once per batch, not
per step); classifier-free guidance wraps the same signature.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from synthesis.axf.model import AXFCondition, AXFNet

class Denoiser(Protocol):
    """The one way the sampler calls the network: ``(x_t [b, C, h, w], t [b] long, rows [b] long) -> eps``.

    ``rows`` says which samples of the batch the conditions were built for ``x_t`` holds (samples that
    start later are not in it yet), so a denoiser indexes its per-sample conditions with it."""

    def __call__(self, x: torch.Tensor, t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor: ...


def _ddim(schedule: dict[str, Any], clip_sample: bool) -> DDIMScheduler:
    # pixel mode (clipped) ends at alpha 1 as version 3 did; latent mode like SD's own DDIM config
    return DDIMScheduler.from_config(schedule, clip_sample=clip_sample, timestep_spacing="trailing",
                                     set_alpha_to_one=clip_sample)


def _dpmsolver(schedule: dict[str, Any], clip_sample: bool) -> DPMSolverMultistepScheduler:
    # thresholding with sample_max_value=1 clamps the x0 prediction to [-1, 1]: DDIM's clip_sample
    return DPMSolverMultistepScheduler.from_config(
        schedule, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing",
        thresholding=clip_sample, sample_max_value=1.0, final_sigmas_type="zero")


def _unipc(schedule: dict[str, Any], clip_sample: bool) -> UniPCMultistepScheduler:
    return UniPCMultistepScheduler.from_config(
        schedule, solver_order=2, predict_x0=True, timestep_spacing="trailing",
        thresholding=clip_sample, sample_max_value=1.0, final_sigmas_type="zero")


#: Sampling solvers by name: ``(noise-schedule config, clip the x0 prediction to [-1, 1]) -> scheduler``.
SOLVERS: dict[str, Callable[[dict[str, Any], bool], SchedulerMixin]] = {
    "ddim": _ddim, "dpmsolver++": _dpmsolver, "unipc": _unipc,
}
#: Solvers whose step depends only on the timestep (RePaint resampling can repeat a step).
STATELESS = frozenset({"ddim"})


def make_sample_scheduler(solver: str, schedule: dict[str, Any], clip_sample: bool) -> SchedulerMixin:
    """The sampling scheduler ``solver`` over the noise schedule ``schedule`` (a scheduler config)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
    return SOLVERS[solver](dict(schedule), clip_sample)


def make_schedulers(num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2",
                    clip_sample: bool = True, beta_start: float = 0.0001, beta_end: float = 0.02,
                    solver: str = "ddim") -> tuple[DDPMScheduler, SchedulerMixin]:
    """The training (DDPM) and sampling (``solver``) schedulers over the same noise schedule."""
    train = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, beta_start=beta_start,
                          beta_end=beta_end, clip_sample=clip_sample, prediction_type="epsilon")
    return train, make_sample_scheduler(solver, train.config, clip_sample)


def solver_name(scheduler: SchedulerMixin) -> str:
    """The :data:`SOLVERS` name of a sampling scheduler (a pipeline loaded from disk carries only the object)."""
    if isinstance(scheduler, DPMSolverMultistepScheduler):
        return "dpmsolver++"
    if isinstance(scheduler, UniPCMultistepScheduler):
        return "unipc"
    if isinstance(scheduler, DDIMScheduler):
        return "ddim"
    raise ValueError(f"unsupported sampling scheduler {type(scheduler).__name__}; known: {', '.join(SOLVERS)}")


def randn(shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device | str = "cpu") -> torch.Tensor:
    """One draw per sample from that sample's own generator: results do not depend on batching."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators]).to(device)


def noise_to(x0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise


def net_denoiser(net: AXFNet, cond: AXFCondition) -> Denoiser:
    """The conditional network as a :data:`Denoiser`: the X-embedding is computed once, here."""
    x_embed, valid, modality = net.embed(cond)

    def denoise(x: torch.Tensor, t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return net(x, t, embedding=(x_embed[rows], valid[rows], modality))

    return denoise


#: Arithmetic of the network's calls while sampling, by name (``AXFConfig.sample_precision``).
PRECISIONS: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def in_precision(denoiser: Denoiser, precision: str, device: torch.device | str) -> Denoiser:
    """``denoiser`` with its calls under ``torch.autocast`` to ``precision``; its output back in float32.

    Why: the network's convolutions and attention are the cost of sampling, and in bfloat16 they run 1.7x
    faster on a CPU with AVX512-BF16 (2 cores, 6 windows of 64 px: 0.38 -> 0.22 CPU-s per call) for a
    0.8 % relative change of the predicted noise. The solver, the blending and everything outside the
    network stay in float32. ``float32`` returns ``denoiser`` itself (bit for bit as before)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown sample precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if PRECISIONS[precision] == torch.float32:
        return denoiser
    device_type = torch.device(device).type

    def denoise(x: torch.Tensor, t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=PRECISIONS[precision]):
            return denoiser(x, t, rows).float()

    return denoise


def start_index(steps: int, strength: float, has_init: bool = True) -> int:
    """The index into the ``steps``-step grid where sampling at SDEdit ``strength`` starts (0: from noise)."""
    if not has_init or strength >= 1.0:
        return 0
    return min(steps - 1, max(0, round(steps * (1.0 - strength))))


@torch.inference_mode()
def repaint_sample(
    denoiser: Denoiser,
    scheduler: SchedulerMixin,
    known: torch.Tensor,
    generate: torch.Tensor,
    steps: int,
    generators: Sequence[torch.Generator],
    init: torch.Tensor | None = None,
    strength: float | Sequence[float] = 1.0,
    resample: int = 1,
    progress: bool = False,
) -> torch.Tensor:
    """Sample ``[B, C, h, w]`` in model space.

    ``known``: the normal windows (model space); ``generate``: ``[B, 1, h, w]`` weights in [0, 1],
    1 where to generate and 0 where to keep ``known``; ``init``: SDEdit start (model space);
    ``strength``: one for the batch or one per sample (1: that sample starts from noise).
    """
    device = known.device
    n, shape = known.shape[0], known.shape[1:]
    strengths = [float(strength)] * n if isinstance(strength, (int, float)) else [float(s) for s in strength]
    if len(strengths) != n or len(generators) != n:
        raise ValueError(f"{n} samples but {len(strengths)} strengths and {len(generators)} generators")
    stateless = isinstance(scheduler, DDIMScheduler)
    if resample > 1 and not stateless:
        raise ValueError(f"RePaint resampling (resample={resample}) needs the ddim solver: "
                         f"{type(scheduler).__name__} keeps a multistep history that cannot step back")
    scheduler.set_timesteps(steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    starts = [start_index(len(timesteps), s, init is not None) for s in strengths]
    solvers: dict[int, SchedulerMixin] = {}  # one solver state per start step
    for start in sorted(set(starts)):
        solvers[start] = copy.deepcopy(scheduler)
        if hasattr(solvers[start], "set_begin_index"):
            solvers[start].set_begin_index(start)
    alphas = scheduler.alphas_cumprod
    gap = scheduler.config.num_train_timesteps // len(timesteps)
    x = torch.zeros_like(known)
    indices = range(min(starts), len(timesteps))
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc="sample", leave=False)
    for i in indices:
        t = timesteps[i]
        alpha_t = alphas[t]
        for j in (j for j in range(n) if starts[j] == i):  # samples that start here
            noise = randn(shape, [generators[j]], device)[0]
            x[j] = noise_to(init[j], noise, alpha_t) if init is not None and strengths[j] < 1.0 \
                else noise * scheduler.init_noise_sigma
        active = [j for j in range(n) if starts[j] <= i]
        rows = torch.tensor(active, device=device)
        gens = [generators[j] for j in active]
        xa, ga, ka = x[rows], generate[rows], known[rows]
        for round_ in range(resample):
            xa = ga * xa + (1 - ga) * noise_to(ka, randn(shape, gens, device), alpha_t)
            eps = denoiser(xa, torch.full((len(active),), t, dtype=torch.long, device=device), rows)
            prev = torch.empty_like(xa)
            for start, solver in solvers.items():
                members = [k for k, j in enumerate(active) if starts[j] == start]
                if members:
                    sel = torch.tensor(members, device=device)
                    prev[sel] = solver.step(eps[sel], t, xa[sel]).prev_sample
            if round_ < resample - 1:  # RePaint: go back to level t and denoise again (DDIM only)
                alpha_prev = alphas[t - gap] if t - gap >= 0 else scheduler.final_alpha_cumprod
                ratio = alpha_t / alpha_prev
                xa = ratio.sqrt() * prev + (1 - ratio).sqrt() * randn(shape, gens, device)
            else:
                xa = prev
        x[rows] = xa
    return generate * x + (1 - generate) * known

