"""Paper mode (b): a frozen pretrained latent diffusion model, here a tiny random one from configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthesis import registry
from synthesis.axf.latent import PretrainedUnavailable, load_pretrained_ldm
from synthesis.axf.synthesizer import AXFSynthesizer
from synthesis.axf.testing import tiny_split
from synthesis.plan import Planner


pytestmark = pytest.mark.usefixtures("one_torch_thread", "axf_env")


@pytest.fixture(scope="module")
def tiny_ldm(tmp_path_factory) -> str:
    """A Stable-Diffusion-shaped folder (unet/, vae/, scheduler/) with tiny random weights."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-ldm")
    UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24, attention_head_dim=2, norm_num_groups=8,
    ).save_pretrained(folder / "unet")
    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8,
        sample_size=32,
    ).save_pretrained(folder / "vae")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(folder / "scheduler")
    return str(folder)


def _config(path: str, **extra) -> dict:
    return {**AXFSynthesizer.tiny_config(), "backbone": "latent", "pretrained": path, "train_steps": 2, **extra}


def test_loads_from_a_local_folder(tiny_ldm):
    ldm = load_pretrained_ldm(tiny_ldm)
    assert ldm.unet.config.cross_attention_dim == 24 and ldm.vae.config.latent_channels == 4
    assert ldm.sample_scheduler.config.beta_schedule == "scaled_linear" and not ldm.sample_scheduler.config.clip_sample
    assert not any(p.requires_grad for p in ldm.unet.parameters())


def test_offline_hub_id_and_bad_folder_fail_clearly(tmp_path):
    with pytest.raises(PretrainedUnavailable, match="offline"):
        load_pretrained_ldm("nobody/no-such-stable-diffusion")
    with pytest.raises(PretrainedUnavailable, match="unet/ and vae/"):
        load_pretrained_ldm(str(tmp_path))
    with pytest.raises(ValueError, match="pretrained"):
        AXFSynthesizer.Config(backbone="latent")


def test_train_and_sample_with_frozen_unet_and_vae(tiny_ldm, tmp_path):
    from synthesis.checkpoint import load_checkpoint, save_checkpoint

    split = tiny_split(size=48)
    synth = registry.create("axf", _config(tiny_ldm))
    frozen = load_pretrained_ldm(tiny_ldm)
    synth.fit(split, progress=False)
    assert synth.net.unet_frozen and synth.space.factor == 2
    # the pretrained U-Net and VAE are unchanged, the conditioning learned
    assert all(torch.equal(a, b) for a, b in zip(frozen.unet.state_dict().values(), synth.net.unet.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(frozen.vae.state_dict().values(), synth.space.vae.state_dict().values()))
    assert synth.fit_report.details["trainable_parameters"] < synth.fit_report.details["total_parameters"]
    planner = Planner(split)
    specs = planner.plan("scratch", 2, seed=0)
    normals = [planner.normal_image(s.normal_id) for s in specs]
    outputs = synth.synthesize_batch(specs, normals)
    for spec, normal, out in zip(specs, normals, outputs):
        assert out.image.shape == normal.shape and out.mask[spec.mask].all()
        assert np.array_equal(out.image[~out.mask], normal[~out.mask])
    save_checkpoint(synth, tmp_path / "ckpt")
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "ckpt" / "state" / "axf" / "diffusion_pytorch_model.safetensors")
    assert not any(k.startswith("unet.") for k in weights)  # the frozen U-Net is reloaded, not copied
    assert weights and all(k.startswith(("mif.", "ddf.", "to_unet.")) for k in weights)
    loaded = load_checkpoint(tmp_path / "ckpt")
    again = loaded.synthesize_batch(specs, normals)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(outputs, again))
