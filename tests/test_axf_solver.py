"""AXF's sampling loop with a multistep solver: SDEdit start, RePaint blending, determinism, one model call a step."""

from __future__ import annotations

import pytest
import torch

from synthesis.axf.config import AXFConfig
from synthesis.axf.sample import SOLVERS, make_schedulers, repaint_sample, start_index

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountingDenoiser:
    """A smooth stand-in for the network that records every call (rows and timesteps)."""

    def __init__(self, n: int):
        self.bias = torch.linspace(-0.3, 0.3, n)[:, None, None, None]
        self.calls: list[tuple[list[int], int]] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        self.calls.append((rows.tolist(), int(t[0])))
        return 0.5 * torch.tanh(x) + self.bias[rows] * (t[:, None, None, None] / 1000.0)


def _inputs(n: int = 3, size: int = 12):
    torch.manual_seed(0)
    known = torch.rand(n, 3, size, size) * 2 - 1
    init = torch.rand(n, 3, size, size) * 2 - 1
    generate = torch.zeros(n, 1, size, size)
    generate[:, :, 3:9, 2:8] = 1.0
    generate[:, :, 3:9, 2] = 0.5  # a soft band
    return known, init, generate


def _sample(solver: str, strengths, steps: int = 10, seeds=(1, 2, 3), resample: int = 1):
    known, init, generate = _inputs(len(seeds))
    _, scheduler = make_schedulers(solver=solver)
    denoiser = CountingDenoiser(len(seeds))
    out = repaint_sample(denoiser, scheduler, known, generate, steps,
                         [torch.Generator().manual_seed(s) for s in seeds], init=init, strength=strengths,
                         resample=resample)
    return out, denoiser, known, generate


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_same_seed_same_bytes_and_independent_of_the_batch(solver):
    first, _, _, _ = _sample(solver, [0.6, 0.2, 0.6])
    again, _, _, _ = _sample(solver, [0.6, 0.2, 0.6])
    assert torch.equal(first, again)
    other, _, _, _ = _sample(solver, [0.6, 0.2, 0.6], seeds=(1, 2, 4))
    assert torch.equal(first[:2], other[:2]) and not torch.equal(first[2], other[2])  # each sample its own generator


def test_a_sample_in_a_mixed_batch_equals_it_alone():
    """Samples that start at different steps share the model calls, not their results."""
    batch, _, known, generate = _sample("dpmsolver++", [0.6, 0.2, 0.9])
    _, scheduler = make_schedulers(solver="dpmsolver++")
    _, init, _ = _inputs(3)
    for j, strength in enumerate([0.6, 0.2, 0.9]):
        denoiser = CountingDenoiser(3)
        alone = repaint_sample(lambda x, t, rows, j=j: denoiser(x, t, rows + j), scheduler, known[j:j + 1],
                               generate[j:j + 1], 10, [torch.Generator().manual_seed(j + 1)], init=init[j:j + 1],
                               strength=strength)
        assert torch.allclose(alone[0], batch[j], atol=1e-6)


def test_sdedit_start_runs_the_expected_number_of_steps():
    assert [start_index(10, s) for s in (1.0, 0.6, 0.25, 0.05)] == [0, 4, 8, 9]
    _, denoiser, _, _ = _sample("dpmsolver++", 0.6)
    assert len(denoiser.calls) == 6 and all(rows == [0, 1, 2] for rows, _ in denoiser.calls)
    _, scheduler = make_schedulers(solver="dpmsolver++")
    scheduler.set_timesteps(10)
    assert [t for _, t in denoiser.calls] == [int(t) for t in scheduler.timesteps[4:]]
    # different starts in one batch: the model is called at the earliest start's steps only, each
    # sample joining at its own step
    _, mixed, _, _ = _sample("dpmsolver++", [0.6, 0.2, 1.0])
    assert len(mixed.calls) == 10
    assert sum(1 for rows, _ in mixed.calls if 0 in rows) == 6 and sum(1 for rows, _ in mixed.calls if 1 in rows) == 2
    assert all(2 in rows for rows, _ in mixed.calls)
    _, ddim, _, _ = _sample("ddim", 0.6, steps=50)
    assert len(ddim.calls) == 30


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_known_region_outside_the_mask_is_returned_unchanged(solver):
    out, _, known, generate = _sample(solver, [0.6, 0.3, 1.0])
    keep = (generate == 0).expand_as(known)
    assert torch.equal(out[keep], known[keep])
    inside = (generate == 1).expand_as(known)
    assert not torch.equal(out[inside], known[inside])


def test_resampling_needs_ddim():
    _sample("ddim", 0.6, steps=10, resample=2)  # a stateless solver can repeat a step
    with pytest.raises(ValueError, match="needs the ddim solver"):
        _sample("dpmsolver++", 0.6, resample=2)
    with pytest.raises(ValueError, match="solver=ddim"):
        AXFConfig(resample=2)
    assert AXFConfig(resample=2, solver="ddim").resample == 2


def test_the_pipeline_saves_and_loads_its_solver(tmp_path):
    from diffusers import DPMSolverMultistepScheduler

    from synthesis.axf.model import AXFNet
    from synthesis.axf.pipeline import AXFPipeline

    _, scheduler = make_schedulers(solver="dpmsolver++")
    net = AXFNet(width=16, text_dim=12, image_dim=20, num_defect_types=1, defect_tokens=1, mask_grid=2, fusion_heads=2,
                 sample_size=16, unet_channels=(16, 32), unet_attention_levels=(1,), head_dim=16,
                 use_text=False, use_image=False)
    AXFPipeline(axf=net, scheduler=scheduler, window_size=16).save_pretrained(tmp_path)
    loaded = AXFPipeline.from_pretrained(tmp_path)
    assert isinstance(loaded.scheduler, DPMSolverMultistepScheduler)
    assert loaded.scheduler.config.algorithm_type == "dpmsolver++" and loaded.scheduler.config.thresholding
    assert loaded.scheduler.config.timestep_spacing == "trailing"

