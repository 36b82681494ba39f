"""Third-party synthesizers and detectors: entry points and ``package.module:ClassName``, checked against the
contracts; the README's "Add your synthesizer" example runs end to end from a throwaway installed package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from benchmark import detectors
from synthesis import plugins, registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "blur_synthesizer"


@pytest.fixture
def clean_registries():  # noqa: ANN201
    """Plugins registered by a test are forgotten afterwards."""
    registry.available()
    synthesizers, found = dict(registry._REGISTRY), dict(registry.PLUGIN_PROBLEMS)
    known_detectors, detector_problems = dict(detectors.DETECTORS), dict(detectors.PLUGIN_PROBLEMS)
    yield
    for target, saved in ((registry._REGISTRY, synthesizers), (registry.PLUGIN_PROBLEMS, found),
                          (detectors.DETECTORS, known_detectors), (detectors.PLUGIN_PROBLEMS, detector_problems)):
        target.clear()
        target.update(saved)


def _run(*args: str) -> int:
    from benchmark.cli import main

    return main(["run", "--dataset", "demo", "--categories", "disc", "--no-progress", "--threads", "1", *args])


@pytest.mark.parametrize(("spec", "message"), [
    ("plugin_helpers:NoSynthesize", "does not satisfy the synthesis contract: method(s) not implemented: synthesize()"),
    ("plugin_helpers:NoConfig", "Config (a pydantic model class declaring the settings) is missing"),
    ("plugin_helpers:NoDefaults", "Config() fails without arguments (give every setting a default): strength"),
    ("plugin_helpers:NotASynthesizer", "is not a class derived from synthesis.contract.Synthesizer"),
    ("plugin_helpers:Missing", "module 'plugin_helpers' has no attribute 'Missing'"),
    ("no_such_package.module:Synth", "cannot import module 'no_such_package.module'"),
])
def test_a_plugin_synthesizer_missing_part_of_the_contract_is_a_one_line_error(
        spec: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_registries: None) -> None:
    assert _run("--synth", spec, "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and f"--synth {spec}" in err and "Traceback" not in err, err
    assert not (tmp_path / "cache").exists()  # nothing ran


def test_the_synthesis_cli_takes_plugin_classes_too(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    clean_registries: None) -> None:
    from synthesis.cli import main

    args = ["--subset", "demo", "--category", "disc", "--image-size", "32", "--out", str(tmp_path / "gen")]
    assert main(["generate", "--synth", "plugin_helpers:NoSynthesize", *args]) == 2
    assert "method(s) not implemented: synthesize()" in capsys.readouterr().err
    sys.path.insert(0, str(EXAMPLE))
    try:
        assert main(["generate", "--synth", "blur_synthesizer:BlurSynthesizer", "--n", "2", *args]) == 0
    finally:
        sys.path.remove(str(EXAMPLE))
    assert (tmp_path / "gen" / "samples" / "manifest.jsonl").read_text().count("\n") == 4  # 2 defect types x 2


def test_a_plugin_detector_missing_part_of_the_contract_is_a_one_line_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_registries: None) -> None:
    assert _run("--synth", "croppaste", "--detectors", "plugin_helpers:NamelessDetector", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "does not satisfy the detector contract" in err and "_load_state(), _state(), predict()" in err
    assert "name (a class attribute string" in err and "uses_synthesis" in err


def test_a_plugin_class_is_registered_under_its_kebab_case_name(clean_registries: None) -> None:
    assert plugins.name_for_class("BlurSynthesizer") == "blur-synthesizer"
    assert plugins.name_for_class("AXFSynth") == "axf-synth"
    sys.path.insert(0, str(EXAMPLE))
    try:
        assert registry.resolve("blur_synthesizer:BlurSynthesizer") == "blur-synthesizer"
        assert registry.entry("blur-synthesizer").target == "blur_synthesizer:BlurSynthesizer"
        assert registry.resolve("blur_synthesizer:BlurSynthesizer") == "blur-synthesizer"  # twice is fine
    finally:
        sys.path.remove(str(EXAMPLE))


def test_entry_points_are_listed_lazily_and_checked_when_used(monkeypatch: pytest.MonkeyPatch,
                                                              clean_registries: None) -> None:
    group = plugins.SYNTHESIZER_GROUP
    fake = [EntryPoint("broken", "plugin_helpers:NoConfig", group), EntryPoint("croppaste", "elsewhere:Croppaste", group)]
    monkeypatch.setattr(plugins, "entry_points", lambda group: [ep for ep in fake if ep.group == group])
    registry._load_entry_points()
    assert "broken" in registry.available() and registry.entry("croppaste").target.startswith("synthesis.")
    assert "taken by synthesis.baselines.croppaste" in registry.PLUGIN_PROBLEMS["croppaste"]
    with pytest.raises(plugins.PluginError, match=r"entry point 'broken' \(plugin_helpers:NoConfig\).*Config"):
        registry.resolve("broken")

    detector_group = plugins.DETECTOR_GROUP
    fake.append(EntryPoint("other-name", "plugin_helpers:NamelessDetector", detector_group))
    with pytest.raises(plugins.PluginError, match="entry point 'other-name'"):
        detectors.resolve("other-name")
    with pytest.raises(KeyError, match="unknown detector 'nope'"):
        detectors.resolve("nope")


def test_the_readme_shows_the_example_that_the_tests_run() -> None:
    readme = (REPO / "README.md").read_text()
    for name, fence in (("blur_synthesizer.py", "python"), ("pyproject.toml", "toml")):
        text = (EXAMPLE / name).read_text()
        assert f"```{fence}\n{text}```" in readme, f"README's copy of examples/blur_synthesizer/{name} differs"


def _install(site: Path) -> None:
    """What ``pip install`` leaves behind, without touching the shared environment: the modules and a
    ``*.dist-info`` with METADATA and entry_points.txt, in a folder put on PYTHONPATH."""
    from plugin_helpers import MEAN_DISTANCE_DETECTOR

    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    shutil.copy(EXAMPLE / "blur_synthesizer.py", site / "blur_synthesizer.py")
    (site / "mean_distance_detector.py").write_text(MEAN_DISTANCE_DETECTOR)
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines += [f"[{group}]"] + [f"{name} = {target}" for name, target in entries.items()] + [""]
    lines += [f"[{plugins.DETECTOR_GROUP}]", "mean-distance = mean_distance_detector:MeanDistanceDetector", ""]
    (info / "entry_points.txt").write_text("\n".join(lines))


@pytest.mark.slow
def test_the_example_plugin_runs_end_to_end_from_an_installed_package(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}

    listed = subprocess.run([sys.executable, "-m", "benchmark", "list"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^  blur\s+plugin \(entry point 'blur'", listed.stdout, re.M), listed.stdout
    assert re.search(r"^  mean-distance\s+reference: no synthesis", listed.stdout, re.M), listed.stdout

    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--synth", "blur", "--dataset", "demo",
                           "--categories", "disc", "--detectors", "unet", "mean-distance", "--out", str(out),
                           "--no-progress", "--threads", "1"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    from benchmark.results import load_result

    slug = "mvtec-caption-smoke--v1"
    record = load_result(out / "results" / "blur" / "1" / slug / "demo" / "disc.json")
    assert record.synthesizer.meta.description.startswith("Blurs and darkens")
    assert record.synthesizer.config == {"sigma": 3.0, "darken": 0.6}
    assert record.synthesizer.n_generated == 24 and [d.name for d in record.detectors] == ["unet"]
    assert record.detection("unet", "pixel_ap") is not None
    reference = load_result(out / "results" / "no-synthesis" / "0" / slug / "demo" / "disc.json")
    assert [d.name for d in reference.detectors] == ["mean-distance"]
    assert 0.0 <= reference.detection("mean-distance", "image_auroc").mean <= 1.0
    assert any("detector mean-distance is not pinned by protocol" in n for n in reference.comparable_notes)
