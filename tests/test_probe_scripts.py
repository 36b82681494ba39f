"""The scripts that read a run's cached generated sets: the linear probe with paired verdicts, the attribute breakdown."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _script(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmark.cli import main

    out = tmp_path_factory.mktemp("run")
    assert main(["run", "--dataset", "demo", "--categories", "disc", "--detectors", "padim-effnetlite0",
                 "--synth", "croppaste", "--synth", "cutpaste", "--repetitions", "2", "--no-progress", "--threads", "1",
                 "--out", str(out)]) == 0  # generation seeds 0 and 1
    return out


def test_probe_cached_sets_scores_every_set_and_compares_pairs(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probe = _script("probe_cached_sets")
    assert set(probe.find_sets(run, "mvtec-caption-smoke/v1", "demo", "disc", "croppaste")) == {0, 1}
    assert probe.main([str(run), "--protocol", "mvtec-caption-smoke/v1", "--category", "disc",
                       "--synth", "croppaste", "cutpaste", "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count('"pixel_ap"') == 4 and "croppaste − cutpaste pixel_ap:" in out and "->" in out
    assert probe.main([str(run), "--protocol", "mvtec-caption-smoke/v1", "--category", "disc",
                       "--synth", "croppaste", "--seeds", "0", "5"]) == 2  # a missing set is an error, not skipped
    assert "seed(s) [5]" in capsys.readouterr().err


def test_attribute_breakdown_counts_checks_per_kind(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    breakdown = _script("attribute_breakdown")
    folder = _script("probe_cached_sets").find_sets(run, "mvtec-caption-smoke/v1", "demo", "disc", "croppaste")[0]
    assert breakdown.main([str(folder), "--category", "disc"]) == 0
    out = capsys.readouterr().out
    assert f"croppaste 3 ({folder})" in out and "by kind:" in out and "mask components median" in out
    assert breakdown.main([str(run / "nowhere"), "--category", "disc"]) == 2
