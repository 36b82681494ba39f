"""AXF the diffusers way: save_pretrained / from_pretrained (safetensors) and a standalone AXFPipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from synthesis import registry
from synthesis.axf.synthesizer import AXFSynthesizer
from synthesis.axf.testing import tiny_split
from synthesis.plan import Planner

pytestmark = pytest.mark.usefixtures("one_torch_thread", "axf_env")

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: nothing of the parent's synthesizer, caches or RNG state survives.
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from synthesis.axf.pipeline import AXFPipeline, SamplingOptions

    folder, inputs, out = sys.argv[1:4]
    pipe = AXFPipeline.from_pretrained(folder)
    arrays = np.load(inputs)
    meta = json.loads(open(inputs + ".json").read())
    n = len(meta["seeds"])
    result = pipe(
        [arrays[f"image{i}"] for i in range(n)], [arrays[f"mask{i}"] for i in range(n)], meta["prompts"],
        defect_type=meta["defect_types"], reference_image=[arrays[f"ref_image{i}"] for i in range(n)],
        reference_mask=[arrays[f"ref_mask{i}"] for i in range(n)], reference_steps=meta["steps"],
        generator=[torch.Generator().manual_seed(s) for s in meta["seeds"]], attempt=meta["attempts"],
        options=SamplingOptions(**meta["options"]),
    )
    np.savez(out, **{f"image{i}": im for i, im in enumerate(result.images)},
             **{f"mask{i}": m for i, m in enumerate(result.masks)})
""")


@pytest.fixture(scope="module")
def split():
    return tiny_split()


@pytest.fixture(scope="module")
def trained(split):
    synth = registry.create("axf", {**AXFSynthesizer.tiny_config(), "train_steps": 4})
    synth.fit(split, progress=False)
    return synth


def _tiny_net(**extra):
    from synthesis.axf.model import AXFNet

    torch.manual_seed(0)
    return AXFNet(width=16, text_dim=12, image_dim=20, num_defect_types=2, defect_tokens=2, mask_grid=2, fusion_heads=2,
                  sample_size=16, unet_channels=(16, 32), unet_attention_levels=(1,), head_dim=16,
                  defect_init=torch.randn(3, 20), defect_types=["scratch", "spot"], **extra)


def test_network_round_trip_through_save_pretrained(tmp_path):
    from synthesis.axf.model import AXFNet

    net = _tiny_net()
    net.save_pretrained(tmp_path / "net")
    assert {p.name for p in (tmp_path / "net").iterdir()} == {"config.json", "diffusion_pytorch_model.safetensors"}
    config = json.loads((tmp_path / "net" / "config.json").read_text())
    assert config["_class_name"] == "AXFNet" and config["defect_types"] == ["scratch", "spot"]
    assert "defect_init" not in config and "unet" not in config  # tensors and modules are not configuration
    loaded = AXFNet.from_pretrained(tmp_path / "net")
    before, after = net.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    def plain(config) -> dict:
        return json.loads(json.dumps({k: v for k, v in config.items() if not k.startswith("_")}))

    assert not loaded.unet_frozen and plain(loaded.config) == plain(net.config)


def test_fresh_process_from_pretrained_gives_the_synthesizers_bytes(trained, split, tmp_path):
    """save_checkpoint writes the pipeline with save_pretrained; another interpreter loads it with
    from_pretrained and, asked for the same samples with the same seeds, returns the same bytes."""
    from synthesis.checkpoint import save_checkpoint
    from synthesis.colour import conform

    planner = Planner(split)
    specs = planner.plan("spot", 2, seed=3) + planner.plan("scratch", 1, seed=4)
    normals = [planner.normal_image(s.normal_id) for s in specs]
    expected = trained.synthesize_batch(specs, normals)
    save_checkpoint(trained, tmp_path / "ckpt")
    folder = tmp_path / "ckpt" / "state"
    assert (folder / "model_index.json").is_file() and (folder / "axf" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(folder.rglob("*.pt")) and not list(folder.rglob("*.bin"))  # safetensors only, nothing pickled

    inputs = trained.pipeline_inputs(specs, normals)
    arrays = {}
    for i in range(len(specs)):
        arrays |= {f"image{i}": inputs["image"][i], f"mask{i}": inputs["mask_image"][i],
                   f"ref_image{i}": inputs["reference_image"][i], f"ref_mask{i}": inputs["reference_mask"][i]}
    np.savez(tmp_path / "inputs.npz", **arrays)
    meta = dict(prompts=inputs["prompt"], defect_types=inputs["defect_type"], steps=inputs["reference_steps"],
                seeds=[int(s.seed) for s in specs], attempts=inputs["attempt"], options=vars(inputs["options"]))
    (tmp_path / "inputs.npz.json").write_text(json.dumps(meta))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as out:
        for i, (normal, want) in enumerate(zip(normals, expected)):
            image, mask = out[f"image{i}"], out[f"mask{i}"]
            assert np.array_equal(mask, want.mask)
            # the synthesizer keeps the pipeline's output in the category's colours
            assert np.array_equal(conform(image, normal, mask, trained.colour), want.image)
            assert np.array_equal(image, trained.pipeline(**trained.pipeline_inputs([specs[i]], [normals[i]])).images[0])
            assert not np.array_equal(image[mask], normal[mask])


def test_pipeline_works_standalone(split):
    """An AXFPipeline built from parts, PIL in and out, with and without a reference defect."""
    from diffusers import DDIMScheduler
    from PIL import Image

    from synthesis.axf.pipeline import AXFPipeline

    net = _tiny_net(use_text=False, use_image=False)
    pipe = AXFPipeline(axf=net, scheduler=DDIMScheduler(timestep_spacing="trailing"), window_size=16)
    normal = split.normals[0].image
    mask = np.zeros(normal.shape[:2], dtype=bool)
    mask[20:30, 14:26] = True
    out = pipe(Image.fromarray(normal), Image.fromarray(mask.astype(np.uint8) * 255), defect_type="spot",
               generator=torch.Generator().manual_seed(1), num_inference_steps=3, output_type="pil")
    image = np.asarray(out.images[0])
    assert isinstance(out.images[0], Image.Image) and image.shape == normal.shape
    assert np.array_equal(out.masks[0], mask)  # the blending band lies inside the mask: the mask is the label
    assert np.array_equal(image[~mask], normal[~mask]) and not np.array_equal(image[mask], normal[mask])
    anomaly = split.anomalies[-1]
    again = pipe([normal, normal], [mask, mask], defect_type=["spot", None],
                 reference_image=[anomaly.image, None], reference_mask=[anomaly.mask, None],
                 generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)], num_inference_steps=3)
    assert np.array_equal(again.images[1][~mask], normal[~mask])
    assert not np.array_equal(again.images[0], again.images[1])  # the reference (SDEdit start) matters
    with pytest.raises(ValueError, match="empty"):
        pipe(normal, np.zeros_like(mask))
    with pytest.raises(ValueError, match="reference"):
        pipe(normal, mask, reference_image=anomaly.image)


def test_pipeline_needs_a_caption_when_the_network_reads_text(split):
    from diffusers import DDIMScheduler

    from synthesis.axf.pipeline import AXFPipeline

    pipe = AXFPipeline(axf=_tiny_net(use_image=False), scheduler=DDIMScheduler(), window_size=16)
    mask = np.zeros((48, 48), dtype=bool)
    mask[10:20, 10:20] = True
    with pytest.raises(ValueError, match="prompt"):
        pipe(split.normals[0].image, mask)


def test_old_checkpoints_are_refused_by_name(trained, tmp_path):
    from synthesis.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    folder = tmp_path / "old"
    save_checkpoint(trained, folder)
    info = json.loads((folder / "synthesizer.json").read_text())
    info["meta"]["version"] = "2"
    (folder / "synthesizer.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="version 2"):
        load_checkpoint(folder)
    state = tmp_path / "state"
    state.mkdir()
    torch.save({}, state / "weights.pt")
    with pytest.raises(CheckpointError, match=str(state / "weights.pt")):
        registry.create("axf", AXFSynthesizer.tiny_config()).load_state(state)
