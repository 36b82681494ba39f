"""Per-modality classifier-free guidance (synthesis/axf/guidance.py) in the sampler and the synthesizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthesis import registry
from synthesis.axf.guidance import GuidanceScales, guided_denoiser, terms
from synthesis.axf.model import AXFCondition, AXFNet
from synthesis.axf.sample import make_schedulers, repaint_sample
from synthesis.axf.synthesizer import AXFSynthesizer
from synthesis.axf.testing import tiny_split
from synthesis.plan import Planner

pytestmark = pytest.mark.usefixtures("one_torch_thread", "axf_env")

TEXT_DIM, IMAGE_DIM, SIZE = 12, 20, 16


def _net(**switches) -> AXFNet:
    torch.manual_seed(0)
    net = AXFNet(width=16, text_dim=TEXT_DIM, image_dim=IMAGE_DIM, num_defect_types=2, defect_tokens=2, mask_grid=2,
                 fusion_heads=2, sample_size=SIZE, unet_channels=(16, 32), unet_attention_levels=(1,), head_dim=16,
                 defect_init=torch.randn(3, IMAGE_DIM), **switches)
    with torch.no_grad():  # a random network whose output depends on every branch (the DDF starts as identity)
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def _cond(keep: torch.Tensor | None = None) -> AXFCondition:
    g = torch.Generator().manual_seed(1)
    return AXFCondition(text=torch.randn(2, 5, TEXT_DIM, generator=g), text_valid=torch.ones(2, 5, dtype=torch.bool),
                        image=torch.randn(2, 3, IMAGE_DIM, generator=g), defect=torch.tensor([0, 1]),
                        mask=(torch.rand(2, 1, SIZE, SIZE, generator=g) > 0.6).float(), keep=keep)


def _sample(denoiser, seed: int = 5) -> torch.Tensor:
    """Both samples start at the same step, so the sampler's ``rows`` is always the whole batch."""
    _, scheduler = make_schedulers()
    g = torch.Generator().manual_seed(seed)
    known = torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1
    generate = torch.zeros(2, 1, SIZE, SIZE)
    generate[..., 4:12, 4:12] = 1.0
    init = torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1
    return repaint_sample(denoiser, scheduler, known, generate, 4, [torch.Generator().manual_seed(s) for s in (0, 1)],
                          init=init, strength=0.7)


def test_scales_one_reproduce_the_unguided_sampler_bit_for_bit():
    net, cond = _net(), _cond()
    unguided = _sample(lambda x, t, rows: net(x, t, cond=cond))  # the network's own forward, as before guidance existed
    assert torch.equal(_sample(guided_denoiser(net, cond, GuidanceScales(text=1.0, image=1.0))), unguided)
    assert torch.equal(_sample(guided_denoiser(net, cond)), unguided)
    assert not torch.equal(_sample(guided_denoiser(net, cond, GuidanceScales(text=3.0))), unguided)


def test_text_scale_zero_is_sampling_with_the_text_branch_dropped():
    net, cond = _net(), _cond()
    keep = torch.ones(2, 4, dtype=torch.bool)
    keep[:, 0] = False  # text dropped, as training's branch dropout drops it
    dropped = _cond(keep)
    expected = _sample(lambda x, t, rows: net(x, t, cond=dropped))
    assert torch.equal(_sample(guided_denoiser(net, cond, GuidanceScales(text=0.0, image=1.0))), expected)
    assert not torch.equal(expected, _sample(lambda x, t, rows: net(x, t, cond=cond)))


def test_guided_prediction_is_the_three_term_combination_in_one_batched_pass():
    net, cond = _net(), _cond()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    t = torch.full((2,), 300, dtype=torch.long)
    keep_no_text = torch.ones(2, 4, dtype=torch.bool)
    keep_no_text[:, 0] = False
    with torch.no_grad():
        full = net(x, t, cond=cond)
        no_text = net(x, t, cond=_cond(keep_no_text))
        none = net(x, t, cond=_cond(torch.zeros(2, 4, dtype=torch.bool)))
        calls: list[int] = []
        hook = net.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
        guided = guided_denoiser(net, cond, GuidanceScales(text=3.0, image=2.0))(x, t, torch.arange(2))
        hook.remove()
    assert calls == [6]  # three terms, one forward pass
    expected = none + 2.0 * (no_text - none) + 3.0 * (full - no_text)
    assert torch.allclose(guided, expected, atol=1e-5)
    assert not torch.allclose(guided, full, atol=1e-3)


def test_terms_skip_zero_weights_and_merge_drops_the_network_does_not_have():
    assert [(sorted(d), w) for d, w in terms(_net(), GuidanceScales(text=2.0, image=2.0))] == [([], 2.0), (sorted(
        ["text", "image", "defect", "mask"]), -1.0)]
    no_text = _net(use_text=False)
    assert terms(no_text, GuidanceScales(text=5.0)) == [(frozenset(), 1.0)]  # text guidance is a no-op without text


@pytest.fixture(scope="module")
def split():
    return tiny_split()


def test_synthesizer_records_the_scales_and_text_zero_drops_the_text(split, tmp_path, monkeypatch):
    from synthesis.axf.pipeline import AXFPipeline
    from synthesis.checkpoint import read_checkpoint_info, save_checkpoint

    synth = registry.create("axf", {**AXFSynthesizer.tiny_config(), "guidance_text": 0.0, "guidance_image": 1.5})
    default = registry.create("axf", AXFSynthesizer.tiny_config())
    assert synth.config.model_dump()["guidance_text"] == 0.0 and synth.config_hash != default.config_hash
    synth.fit(split, progress=False)
    info = save_checkpoint(synth, tmp_path / "ckpt")
    assert (info.config["guidance_text"], info.config["guidance_image"]) == (0.0, 1.5)
    assert read_checkpoint_info(tmp_path / "ckpt").config["guidance_image"] == 1.5

    planner = Planner(split)
    specs = planner.plan("spot", 2, seed=3)
    normals = [planner.normal_image(s.normal_id) for s in specs]
    synth.config = synth.config.model_copy(update={"guidance_text": 0.0, "guidance_image": 1.0})
    text_zero = synth.synthesize_batch(specs, normals)
    synth.config = synth.config.model_copy(update={"guidance_text": 1.0})
    unguided = synth.synthesize_batch(specs, normals)
    encode = AXFPipeline._encode

    def without_text(self, *args, **kwargs) -> AXFCondition:
        cond = encode(self, *args, **kwargs)
        keep = torch.ones(len(cond.defect), 4, dtype=torch.bool) if cond.keep is None else cond.keep.clone()
        keep[:, 0] = False
        cond.keep = keep
        return cond

    monkeypatch.setattr(AXFPipeline, "_encode", without_text)
    dropped = synth.synthesize_batch(specs, normals)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(text_zero, dropped))
    assert not all(np.array_equal(a.image, b.image) for a, b in zip(text_zero, unguided))


def test_sweep_script_on_demo_data(tmp_path, demo_root):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "axf_guidance_sweep.py"
    spec = importlib.util.spec_from_file_location("axf_guidance_sweep", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "sweep.json"
    assert script.main(["--category", "disc", "--tiny", "--synth", "axf", "--n", "1", "--seeds", "0",
                        "--text-scales", "0", "1", "--image-scales", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["text"], r["image"], r["kind"]) for r in rows] == [(0.0, 1.0, "colour"), (1.0, 1.0, "colour")]
    assert all(r["directions"] == 2 and 0.0 <= r["visible_mean"] <= 1.0 for r in rows)
    # text scale 0 drops the text branch: the two captions of a pair give the same pixels; scale 1 does not
    assert rows[0]["pair_delta"] == 0.0 and rows[1]["pair_delta"] > 0.0


def test_guided_denoiser_serves_the_rows_the_sampler_has_started():
    """A sample that starts later is left out of the call; its rows' conditions must still line up."""
    net, cond = _net(), _cond()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    t = torch.full((2,), 400, dtype=torch.long)
    denoiser = guided_denoiser(net, cond, GuidanceScales(text=2.5, image=1.5))
    with torch.no_grad():
        both = denoiser(x, t, torch.arange(2))
        second = denoiser(x[1:], t[1:], torch.tensor([1]))
    assert torch.allclose(second, both[1:], atol=1e-5)


def test_sampling_precision_float32_is_the_denoiser_itself_and_bfloat16_stays_close():
    from synthesis.axf.sample import in_precision

    net, cond = _net(), _cond()

    def plain(x, t, rows):
        return net(x, t, cond=cond)

    assert in_precision(plain, "float32", "cpu") is plain  # version 4's arithmetic, bit for bit
    full, half = _sample(plain), _sample(in_precision(plain, "bfloat16", "cpu"))
    assert half.dtype == torch.float32 and torch.equal(half, _sample(in_precision(plain, "bfloat16", "cpu")))
    difference = (half - full).abs()  # model space [-1, 1]; measured 0.0018 mean, 0.050 largest
    assert not torch.equal(half, full) and difference.mean() < 0.01 and difference.max() < 0.25
    with pytest.raises(ValueError, match="unknown sample precision"):
        in_precision(plain, "float16", "cpu")
