"""AXF network: MIF and DDF shapes and gradients, ablation switches, the diffusion loss."""

from __future__ import annotations

import pytest
import torch

from synthesis.axf.model import AXFCondition, AXFNet, DynamicDifFusion, MultiModalInFusion, count_parameters

TEXT_DIM, IMAGE_DIM, WIDTH = 12, 20, 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cond(batch: int = 2, size: int = 16, seed: int = 0) -> AXFCondition:
    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(batch, 5, dtype=torch.bool)
    valid[0, 3:] = False  # padding
    return AXFCondition(
        text=torch.randn(batch, 5, TEXT_DIM, generator=g), text_valid=valid,
        image=torch.randn(batch, 3, IMAGE_DIM, generator=g), defect=torch.tensor([0, 2])[:batch],
        mask=(torch.rand(batch, 1, size, size, generator=g) > 0.7).float(),
    )


def _net(**switches) -> AXFNet:
    torch.manual_seed(0)
    return AXFNet(width=WIDTH, text_dim=TEXT_DIM, image_dim=IMAGE_DIM, num_defect_types=2, defect_tokens=2, mask_grid=2,
                  fusion_heads=2, sample_size=16, unet_channels=(16, 32), unet_attention_levels=(1,), head_dim=16,
                  defect_init=torch.randn(3, IMAGE_DIM), **switches)


def test_mif_shapes_and_token_count():
    mif = MultiModalInFusion(width=WIDTH, text_dim=TEXT_DIM, image_dim=IMAGE_DIM, num_defect_types=2, defect_tokens=2, mask_grid=2)
    x, valid, modality = mif(_cond())
    # 5 text + 3 image + 2 defect + 4 mask + 1 null token
    assert x.shape == (2, 15, WIDTH) and valid.shape == (2, 15) and modality.shape == (15,)
    assert not valid[0, 3:5].any() and valid[1].all()
    assert torch.isfinite(x).all()


def test_mif_defect_tokens_initialised_from_image_features():
    init = torch.randn(3, IMAGE_DIM)
    mif = MultiModalInFusion(width=WIDTH, text_dim=TEXT_DIM, image_dim=IMAGE_DIM, num_defect_types=2, defect_tokens=2,
                             defect_init=init)
    assert torch.allclose(mif.defect_embeddings[:, 0], init, atol=0.1)
    assert torch.allclose(mif.defect_embeddings[:, 1], init, atol=0.1)


def test_all_branches_dropped_still_finite():
    cond = _cond()
    cond.keep = torch.zeros(2, 4, dtype=torch.bool)
    x, valid, _ = _net().mif(cond)
    assert valid.sum(1).tolist() == [1, 1]  # only the null token
    assert torch.isfinite(x).all()


def test_ddf_is_identity_at_init_and_depends_on_timestep_after_update():
    ddf = DynamicDifFusion(WIDTH)
    x = torch.randn(2, 7, WIDTH)
    modality = torch.tensor([0, 0, 1, 1, 2, 3, 4])
    assert torch.allclose(ddf(x, modality, torch.tensor([10, 900])), x)
    torch.nn.init.normal_(ddf.out[1].weight, std=0.1)
    a, b = ddf(x, modality, torch.tensor([10, 10])), ddf(x, modality, torch.tensor([900, 900]))
    assert a.shape == x.shape and not torch.allclose(a, b)


def test_forward_shape_and_gradients_reach_every_trainable_part():
    net = _net()
    torch.nn.init.normal_(net.ddf.out[1].weight, std=0.01)  # zero-init would block the FiLM gradient path
    sample = torch.randn(2, 3, 16, 16)
    out = net(sample, torch.tensor([5, 700]), _cond())
    assert out.shape == sample.shape
    out.pow(2).mean().backward()
    for part in (net.mif.text_proj, net.mif.image_proj, net.mif.location, net.mif.layers, net.ddf, net.unet):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads), part
        assert any(g.abs().sum() > 0 for g in grads), part
    used = net.mif.defect_embeddings.grad[[0, 2]]
    assert used.abs().sum() > 0 and net.mif.defect_embeddings.grad[1].abs().sum() == 0  # only the types in the batch


@pytest.mark.parametrize("switch, absent", [
    ("use_text", "text_proj"), ("use_image", "image_proj"), ("use_image", "defect_embeddings"),
    ("use_mask_tokens", "location"),
])
def test_ablation_removes_parameters(switch, absent):
    full, ablated = _net(), _net(**{switch: False})
    assert hasattr(full.mif, absent) and not hasattr(ablated.mif, absent)
    assert count_parameters(ablated) < count_parameters(full)


def test_no_ddf_has_no_ddf_parameters():
    assert _net(use_ddf=False).ddf is None and _net().ddf is not None


@pytest.mark.parametrize("switch", ["use_text", "use_image", "use_mask_tokens", "use_ddf"])
def test_each_ablation_changes_the_output(switch):
    full, ablated = _net(), _net(**{switch: False})
    for net in (full, ablated):  # make DDF non-trivial so that removing it matters
        if net.ddf is not None:
            torch.nn.init.normal_(net.ddf.out[1].weight, std=0.5)
    ablated.load_state_dict(full.state_dict(), strict=False)  # same weights for the shared parts
    sample, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 700])
    with torch.no_grad():
        assert not torch.allclose(full(sample, t, _cond()), ablated(sample, t, _cond()), atol=1e-6)


def test_each_input_branch_influences_the_output():
    net = _net()
    sample, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 700])
    with torch.no_grad():
        base = net(sample, t, _cond())
        for field in ("text", "image", "mask"):
            cond = _cond()
            value = getattr(cond, field)  # (a constant shift would vanish in the branch's LayerNorm)
            noise = torch.randn(value.shape, generator=torch.Generator().manual_seed(1))
            setattr(cond, field, 1.0 - value if field == "mask" else value + noise)
            assert not torch.allclose(base, net(sample, t, cond), atol=1e-6), field


def test_frozen_pretrained_unet_gets_no_updates_but_conditioning_does():
    from synthesis.axf.model import build_unet

    unet = build_unet(3, 16, (16, 32), (1,), 1, cross_attention_dim=24, head_dim=16)
    net = AXFNet(width=WIDTH, text_dim=TEXT_DIM, image_dim=IMAGE_DIM, num_defect_types=2, mask_grid=2, fusion_heads=2, unet=unet)
    assert isinstance(net.to_unet, torch.nn.Linear)  # width -> the U-Net's cross-attention width
    assert not any(p.requires_grad for p in net.unet.parameters())
    net.train()
    assert not net.unet.training
    net(torch.randn(2, 3, 16, 16), torch.tensor([1, 2]), _cond()).pow(2).mean().backward()
    assert all(p.grad is None for p in net.unet.parameters())
    assert net.mif.text_proj[1].weight.grad is not None and net.to_unet.weight.grad is not None
