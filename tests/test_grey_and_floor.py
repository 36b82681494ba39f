"""Grey-level categories give grey-level outputs for every registered synthesizer; samples below a
synthesizer's label floor are redone with a derived seed or recorded as failed, never kept silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

from synth_helpers import create_fast, tiny_split
from synthesis import registry
from synthesis.colour import chroma, to_grey
from synthesis.contract import FewShotAnomaly, NormalImage, SampleSpec, SynthesisOutput, Synthesizer, TrainSplit
from synthesis.fidelity import label_fidelity
from synthesis.generated_set import generate_set, load_samples, read_info
from synthesis.plan import Planner

pytestmark = pytest.mark.usefixtures("one_torch_thread", "axf_env")
SIZE = 64


def grey_split() -> TrainSplit:
    """``tiny_split`` turned grey: discs with grey defects, every pixel R = G = B."""
    base = tiny_split(SIZE, n_normals=4, n_anomalies=3)
    normals = tuple(NormalImage(n.image_id, to_grey(n.image)) for n in base.normals)
    anomalies = tuple(FewShotAnomaly(a.defect_type, a.image_id, to_grey(a.image), a.mask, a.caption) for a in base.anomalies)
    return TrainSplit("tiny", "grey-discs", SIZE, normals, anomalies, is_demo=True, protocol_id=f"tiny/{SIZE}px")


@pytest.mark.parametrize("name", registry.available())
def test_grey_input_gives_grey_output(name: str, tmp_path: Path) -> None:
    train = grey_split()
    synthesizer = create_fast(name)
    synthesizer.fit(train, progress=False)
    assert synthesizer.fit_report.colour is not None and synthesizer.fit_report.colour.grey  # recorded with the fit
    # the synthesizer itself (no harness guard in between) keeps the category grey ...
    planner = Planner(train)
    specs = [spec for defect in train.defect_types for spec in planner.plan(defect, 4, seed=3)]
    outputs = synthesizer.synthesize_batch(specs, [planner.normal_image(s.normal_id) for s in specs])
    for spec, output in zip(specs, outputs):
        assert chroma(output.image).max() == 0, f"{name} {spec.name}: colour on a grey category"
    # ... so the generated set's colour guard has nothing to change
    info = generate_set(synthesizer, train, tmp_path / "set", n_per_defect=4, seed=3, progress=False)
    assert info.colour_guard is not None and info.colour_guard.profile.grey
    assert info.colour_guard.images_changed == 0
    for _, image, _ in load_samples(tmp_path / "set"):
        assert chroma(image).max() == 0


# ---- the label floor -------------------------------------------------------------------------
class FadingConfig(BaseModel):
    visible_from_attempt: int = 1  # the first attempt that shows the defect (large: never)


class FadingSynthesizer(Synthesizer):
    """Test double: paints the mask invisibly faint until ``visible_from_attempt``, then clearly."""

    Config = FadingConfig
    description = "test double for the label floor"

    @property
    def label_floor(self) -> float | None:
        return 0.25

    @property
    def max_attempts(self) -> int:
        return 3

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        out = normal.astype(np.int16)
        step = 60 if spec.attempt >= self.config.visible_from_attempt else 2
        out[spec.mask] += step
        return SynthesisOutput(np.clip(out, 0, 255).astype(np.uint8), spec.mask)


def _plain_split() -> TrainSplit:
    return tiny_split(SIZE, n_normals=3, n_anomalies=2)


def test_samples_below_the_floor_are_redone_with_derived_seeds(tmp_path: Path) -> None:
    train = _plain_split()
    synthesizer = FadingSynthesizer("fading", FadingConfig(visible_from_attempt=1))
    synthesizer.fit(train, progress=False)
    info = generate_set(synthesizer, train, tmp_path / "set", n_per_defect=3, seed=0, progress=False)
    assert info.redone == 3 and info.failed == [] and info.samples == 3 and info.label_floor == 0.25
    planned = Planner(train).plan("spot", 3, seed=0)
    rows = load_samples(tmp_path / "set")
    for (sample, image, mask), spec in zip(rows, planned):
        assert sample.seed == spec.seed  # the manifest keeps the plan's seed; the redo derives its own from it
        assert label_fidelity(image, Planner(train).normal_image(sample.normal_id), mask).visible_share >= 0.25
    assert spec.redo(1).seed != spec.seed and spec.redo(1).seed == spec.redo(1).seed and spec.redo(1).attempt == 1


def test_samples_that_never_reach_the_floor_are_recorded_as_failed_and_left_out(tmp_path: Path) -> None:
    train = _plain_split()
    synthesizer = FadingSynthesizer("fading", FadingConfig(visible_from_attempt=99))
    synthesizer.fit(train, progress=False)
    info = generate_set(synthesizer, train, tmp_path / "set", n_per_defect=3, seed=0, progress=False)
    assert info.samples == 0 and load_samples(tmp_path / "set") == []
    assert [f.name for f in info.failed] == ["spot/0000", "spot/0001", "spot/0002"]
    assert all(f.attempts == 3 and f.visible_share == 0.0 for f in info.failed)
    assert read_info(tmp_path / "set").failed == info.failed


def test_axf_redoes_or_fails_samples_below_its_floor(tmp_path: Path) -> None:
    train = _plain_split()
    axf = create_fast("axf", label_floor=1.01, max_attempts=2)  # an unreachable floor: every sample must fail
    axf.fit(train, progress=False)
    info = generate_set(axf, train, tmp_path / "set", n_per_defect=2, seed=0, progress=False)
    assert info.samples == 0 and len(info.failed) == 2 and all(f.attempts == 2 for f in info.failed)
    reachable = create_fast("axf", label_floor=0.0)
    reachable.fit(train, progress=False)
    info = generate_set(reachable, train, tmp_path / "ok", n_per_defect=2, seed=0, progress=False)
    assert info.samples == 2 and info.failed == [] and info.redone == 0


# ---- AXF's per-mask settings -------------------------------------------------------------------
def _disc(radius: float, size: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.hypot(yy - size / 2, xx - size / 2) <= radius


def test_axf_settings_follow_mask_thickness() -> None:
    from synthesis.axf.adapt import mask_thickness, settings_for

    common = dict(strength=0.6, thin_strength=0.25, thin_px=4.0, thick_px=16.0, thin_detail=1.0, retry_strength=0.6)
    assert mask_thickness(_disc(5), side=64, window=64) == pytest.approx(10.0, abs=1.0)  # a disc's diameter
    assert mask_thickness(_disc(5), side=128, window=64) == pytest.approx(5.0, abs=0.5)  # at the model's scale
    thin = settings_for(_disc(1.5), 64, 64, **common)
    thick = settings_for(_disc(12), 64, 64, **common)
    middle = settings_for(_disc(5), 64, 64, **common)
    assert thin.strength == pytest.approx(0.25, abs=0.02) and thin.detail == 1.0  # snapped to the 50-step grid
    assert (thick.strength, thick.detail) == (0.6, 0.0)  # large defects: the bottle-tuned defaults
    assert 0.25 < middle.strength < 0.6 and 0 < middle.detail < 1
    redo = settings_for(_disc(12), 64, 64, **common, attempt=2)
    assert redo.strength == pytest.approx(0.6 * 0.36, abs=0.01) and redo.detail == 1.0
    fixed = settings_for(_disc(1.5), 64, 64, **common, adapt=False)
    assert (fixed.strength, fixed.detail) == (0.6, 0.0)


def test_a_new_synthesizer_version_never_reuses_a_cached_fit() -> None:
    from benchmark.context import load_category
    from benchmark.pipeline import RunRequest, plan_category
    from benchmark.protocols import get_protocol
    from benchmark.stages import planner_params, version_params

    assert version_params("axf") == {"version": "5"} and version_params("axf-no-text") == {"version": "5"}
    assert version_params("perlin") == {"version": "2"} and version_params("croppaste") == {"version": "3"}
    assert version_params("cutpaste") == {}  # version 1: keys as before, existing caches stay valid
    protocol = get_protocol("mvtec-caption-smoke/v1")
    context = load_category(protocol, "demo", "disc", None, None)
    request = RunRequest(protocol_id=protocol.id, subset="demo", data_root=None, caption_source=None, categories=["disc"],
                         synthesizers=["axf", "croppaste"], detectors=["unet"], generation_seed=0, detector_seed=0,
                         repetitions=1, out="unused")
    plan = plan_category(request, context)
    assert plan.fits[0, "axf"].params["version"] == "5" and plan.fits[0, "croppaste"].params["version"] == "3"
    assert plan.generates[0, "croppaste"].params["planner"] == planner_params()["planner"] == 3  # new plans: new sets
    assert plan.fidelities[0, "axf"].params["diagnostics"][0] == "label-fidelity"
