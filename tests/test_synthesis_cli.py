"""``python -m synthesis``: list, generate (demo and real data), --caption/--mask, fit then --checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthesis import registry
from synthesis.cli import main
from synthesis.generated_set import load_samples, read_info, read_manifest, verify_set

REPO = Path(__file__).resolve().parents[1]
BASELINES = ["perlin", "cutpaste", "cutpaste-scar", "croppaste"]
DEMO = ["--subset", "demo", "--category", "disc", "--image-size", "64"]


def _fast_config(name: str) -> list[str]:
    tiny = registry.entry(name).load_class().tiny_config()
    return [arg for key, value in tiny.items() for arg in ("--config", f"{key}={json.dumps(value)}")]


def _assert_complete(out: Path, expected_samples: int, grid: bool = True) -> list:
    samples_dir = out / "samples"
    assert (samples_dir / "manifest.jsonl").is_file() and (samples_dir / "generation.json").is_file()
    assert verify_set(samples_dir) == []
    rows = read_manifest(samples_dir)
    assert len(rows) == expected_samples
    for row in rows:
        for name in (row.image_file, row.mask_file):
            assert name.endswith(".png")
            with Image.open(samples_dir / name) as handle:
                assert handle.format == "PNG"
    if grid:
        with Image.open(out / "grid.png") as handle:
            assert handle.format == "PNG" and handle.width > 200
    return rows


def test_list_shows_every_registered_name() -> None:
    result = subprocess.run([sys.executable, "-m", "synthesis", "list"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=True)
    listed = {line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    # the registry of a fresh process: plugins registered in this one by earlier tests are not built in
    fresh = subprocess.run([sys.executable, "-c", "from synthesis import registry; print(*registry.available())"],
                           cwd=REPO, capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert set(fresh) <= listed and set(fresh) <= set(registry.available())
    assert set(BASELINES) <= listed


@pytest.mark.parametrize("name", BASELINES)
def test_generate_on_demo(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    assert main(["generate", *DEMO, "--synth", name, *_fast_config(name), "--n", "2", "--out", str(out)]) == 0
    rows = _assert_complete(out, expected_samples=4)
    assert (out / "checkpoint" / "synthesizer.json").is_file()
    info = read_info(out / "samples")
    assert info.synthesizer.name == name and info.is_demo and info.image_size == 64
    assert all(r.mask_pixels > 0 for r in rows)


def _square_mask(path: Path, size: int = 128) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[40:72, 50:90] = 255
    Image.fromarray(mask).save(path)
    return np.asarray(Image.fromarray(mask).resize((64, 64), Image.NEAREST)) > 127


@pytest.mark.parametrize("name", ["croppaste", "perlin"])
def test_caption_and_mask_are_honoured(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    expected = _square_mask(tmp_path / "square.png")
    caption = "A blue scratch across the middle."
    out = tmp_path / "out"
    argv = ["generate", *DEMO, "--synth", name, *_fast_config(name), "--n", "2", "--defect-type", "crack",
            "--caption", caption, "--mask", str(tmp_path / "square.png"), "--out", str(out), "--no-grid"]
    assert main(argv) == 0
    _assert_complete(out, expected_samples=2, grid=False)
    info = read_info(out / "samples")
    assert info.request.caption == caption and len(info.request.user_masks) == 1
    for sample, image, mask in load_samples(out / "samples"):
        assert sample.caption == caption and sample.caption_origin == "user"
        if registry.describe(name).uses_masks:
            assert sample.mask_origin == "user:square.png"
            assert np.array_equal(mask, expected)
        else:
            assert sample.mask_origin.startswith("perlin")
    warned = "makes its own masks" in capsys.readouterr().err
    assert warned == (not registry.describe(name).uses_masks)


@pytest.mark.parametrize("name", ["croppaste", "perlin"])
def test_fit_then_generate_from_checkpoint(name: str, tmp_path: Path) -> None:
    config = _fast_config(name)
    assert main(["fit", *DEMO, "--synth", name, *config, "--out", str(tmp_path / "ckpt")]) == 0
    assert (tmp_path / "ckpt" / "synthesizer.json").is_file()
    assert main(["generate", *DEMO, "--synth", name, "--checkpoint", str(tmp_path / "ckpt"), "--n", "2",
                 "--out", str(tmp_path / "from_ckpt"), "--no-grid"]) == 0
    assert main(["generate", *DEMO, "--synth", name, *config, "--n", "2", "--out", str(tmp_path / "direct"),
                 "--no-grid"]) == 0
    from_ckpt, direct = read_info(tmp_path / "from_ckpt" / "samples"), read_info(tmp_path / "direct" / "samples")
    assert from_ckpt.set_sha256 == direct.set_sha256


def test_checkpoint_of_another_synthesizer_is_refused(tmp_path: Path) -> None:
    assert main(["fit", *DEMO, "--synth", "cutpaste", "--out", str(tmp_path / "ckpt")]) == 0
    code = main(["generate", *DEMO, "--synth", "croppaste", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "o")])
    assert code == 2


@pytest.mark.real_data
@pytest.mark.slow
def test_generate_on_real_bottle(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The three baselines on real MVTec AD bottle (few-shot split of the real data) at 128 px.

    Decoding bottle's 229 training images at 900 px dominates the cost, so the CLI's data
    preparation runs once (for real) and its result is reused by the next two commands.
    """
    from synthesis import cli

    prepared: dict = {}
    real_prepare = cli._prepare

    def prepare_once(args):  # noqa: ANN001, ANN202
        key = (args.data_root, args.category, args.image_size, args.caption_source)
        if key not in prepared:
            prepared[key] = real_prepare(args)
        return prepared[key]

    monkeypatch.setattr(cli, "_prepare", prepare_once)
    data = ["--data-root", str(shared_data / "mvtec_ad"), "--caption-source", str(shared_data / "mvtec_caption" / "captions.json"),
            "--category", "bottle", "--image-size", "128"]
    for name in ("perlin", "cutpaste", "croppaste"):
        out = tmp_path / name
        assert main(["generate", *data, "--synth", name, "--n", "2", "--out", str(out)]) == 0
        rows = _assert_complete(out, expected_samples=6)  # 3 defect types x 2
        info = read_info(out / "samples")
        assert (info.dataset, info.category, info.is_demo, info.image_size) == ("mvtec_ad", "bottle", False, 128)
        assert info.fit.normal_images_seen == 209
        assert info.fit.real_anomalies_seen == (20 if name == "croppaste" else 0)
        assert {r.defect_type for r in rows} == {"broken_large", "broken_small", "contamination"}
