"""The synthesis contract, checked for every registered synthesizer.

New synthesizers are picked up from the registry. To keep each check cheap they run on the
demo ``disc`` category at 64 px with ``tiny_config()`` (see :class:`synthesis.contract.Synthesizer`),
fitted once per module, with one reference set each that the other checks compare against.
Sets hold ``max(2, batch_size)`` samples per defect type, so an interruption can fall between
two batches.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synth_helpers import TINY_SIZE, create_fast, demo_split
from synthesis import registry
from synthesis.checkpoint import load_checkpoint, save_checkpoint
from synthesis.contract import Synthesizer
from synthesis.generated_set import (INFO, MANIFEST, PARTIAL, GeneratedSetInfo, generate_set, load_samples, read_info,
                                      verify_set)
from synthesis.plan import Planner

NAMES = registry.available()
N = 2  # per defect type at least; the demo disc has two defect types


def _per_defect(synthesizer: Synthesizer) -> int:
    """Enough samples for two batches, so an interruption can fall between them."""
    return max(N, synthesizer.batch_size)


def _generate(synthesizer: Synthesizer, out: Path, seed: int = 0):  # noqa: ANN202
    return generate_set(synthesizer, demo_split().train, out, n_per_defect=_per_defect(synthesizer), seed=seed,
                        progress=False, forbidden_paths=demo_split().forbidden)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per synthesizer: fitted once, and one reference set (seed 0) that the tests compare against."""
    return {"root": tmp_path_factory.mktemp("reference_sets")}


def _fitted(cache: dict, name: str) -> Synthesizer:
    if name not in cache:
        synthesizer = create_fast(name)
        synthesizer.fit(demo_split().train, progress=False)
        cache[name] = synthesizer
    return cache[name]


def _reference(cache: dict, name: str) -> tuple[Path, GeneratedSetInfo]:
    key = ("reference", name)
    if key not in cache:
        folder = cache["root"] / name
        cache[key] = (folder, _generate(_fitted(cache, name), folder))
    return cache[key]


@pytest.mark.parametrize("name", NAMES)
def test_metadata_and_config(name: str) -> None:
    synthesizer = registry.create(name)
    meta = synthesizer.meta
    assert meta.name == name and meta.version and meta.description
    assert isinstance(type(synthesizer).tiny_config(), dict)
    assert synthesizer.config_hash == registry.create(name).config_hash  # the hash is a pure function of the config


@pytest.mark.parametrize("name", NAMES)
def test_generated_images_and_masks(name: str, cache: dict) -> None:
    synthesizer = _fitted(cache, name)
    folder, info = _reference(cache, name)
    assert verify_set(folder) == []
    rows = load_samples(folder)
    assert len(rows) == info.samples == _per_defect(synthesizer) * len(demo_split().train.defect_types)
    planner = Planner(demo_split().train)
    for sample, image, mask in rows:
        assert image.shape == (TINY_SIZE, TINY_SIZE, 3) and image.dtype == np.uint8
        raw_mask = np.asarray(Image.open(folder / sample.mask_file))
        assert raw_mask.shape == (TINY_SIZE, TINY_SIZE) and set(np.unique(raw_mask)) <= {0, 255}
        assert mask.any() and sample.mask_pixels == int(mask.sum()), f"{sample.image_file}: empty mask"
        if synthesizer.meta.keeps_outside_mask:
            normal = planner.normal_image(sample.normal_id)
            changed = (image != normal).any(axis=-1)
            assert not (changed & ~mask).any(), f"{sample.image_file}: pixels outside the mask changed"


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_stable_across_folders(name: str, cache: dict, tmp_path: Path) -> None:
    synthesizer = _fitted(cache, name)
    folder, first = _reference(cache, name)
    second = _generate(synthesizer, tmp_path / "elsewhere" / "b")
    assert first.set_sha256 == second.set_sha256
    assert (folder / MANIFEST).read_bytes() == (tmp_path / "elsewhere" / "b" / MANIFEST).read_bytes()
    other = _generate(synthesizer, tmp_path / "c", seed=1)
    assert other.set_sha256 != first.set_sha256


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip(name: str, cache: dict, tmp_path: Path) -> None:
    synthesizer = _fitted(cache, name)
    _, reference = _reference(cache, name)
    save_checkpoint(synthesizer, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt", expect_name=name)
    assert loaded.config_hash == synthesizer.config_hash and loaded.fit_report == synthesizer.fit_report
    assert _generate(loaded, tmp_path / "loaded").set_sha256 == reference.set_sha256


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("name", NAMES)
def test_resume_after_interruption(name: str, cache: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synthesizer = _fitted(cache, name)
    _, reference = _reference(cache, name)
    out = tmp_path / "partial"
    original = synthesizer.synthesize_batch
    done = {"n": 0}
    stop_after = synthesizer.batch_size if synthesizer.batch_size > 1 else 3  # samples written before the "crash"

    def fail_later(specs, normals):  # noqa: ANN001, ANN202
        if done["n"] >= stop_after:
            raise Interrupted
        done["n"] += len(specs)
        return original(specs, normals)

    monkeypatch.setattr(synthesizer, "synthesize_batch", fail_later)
    with pytest.raises(Interrupted):
        _generate(synthesizer, out)
    monkeypatch.undo()
    assert (out / PARTIAL).is_file() and not (out / INFO).exists()
    # Also damage the last sample as a kill -9 might: its manifest line cut, its image gone. The resumed
    # run then batches the samples differently from the reference run: outputs must not depend on that.
    lines = (out / MANIFEST).read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])
    (out / MANIFEST).write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    (out / last["image_file"]).unlink()
    resumed = _generate(synthesizer, out)
    assert resumed.set_sha256 == reference.set_sha256
    assert verify_set(out) == [] and not (out / PARTIAL).exists()


@pytest.mark.parametrize("name", NAMES)
def test_finished_set_is_not_regenerated(name: str, cache: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    synthesizer = _fitted(cache, name)
    folder, first = _reference(cache, name)

    def must_not_run(specs, normals):  # noqa: ANN001, ANN202
        raise AssertionError("a complete set was generated again")

    monkeypatch.setattr(synthesizer, "synthesize_batch", must_not_run)
    assert _generate(synthesizer, folder) == first == read_info(folder)
