"""Protocol repetitions end to end on the demo data: every repetition is its own seeded cell, adding a
repetition later runs only the new jobs, and the records and ``compare`` report the spread."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmark.protocols import PROTOCOLS, Protocol, get_protocol, register_protocol
from benchmark.results import load_result

TINY = register_protocol(Protocol(
    id="test-repetitions/v1", title="tiny repeated protocol (tests)", hardware="cpu", description="tests only",
    image_size=64, n_generated_per_defect=4,
    detectors={"unet": {"image_size": 64, "base_width": 4, "epochs": 2, "samples_per_epoch": 16, "batch_size": 8,
                        "lr": 5e-4},
               "padim-effnetlite0": {"image_size": 64}},
    default_detectors=["unet", "padim-effnetlite0"], fidelity_metrics=["is"], repetitions=2, demo_only=True,
))


def _run(out: Path, *extra: str) -> list[str]:
    """Run the benchmark; return the labels of the jobs that were computed (not served from the cache)."""
    from benchmark.cli import main

    log = out / "logs" / "benchmark.log"
    before = log.read_text().count("\n") if log.is_file() else 0
    assert main(["run", "--synth", "croppaste", "--dataset", "demo", "--categories", "disc", "--protocol", TINY.id,
                 "--out", str(out), "--no-progress", "--threads", "1", *extra]) == 0
    lines = log.read_text().splitlines()[before:]
    return [re.sub(r" \([0-9a-f]{24}\)$", "", line.split("running: ", 1)[1]) for line in lines if "running: " in line]


@pytest.mark.slow
def test_repetitions_are_seeded_cells_and_adding_one_reuses_every_cached_job(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    first = _run(out)
    # croppaste's fit draws no random numbers: one fit job serves both repetitions
    assert sorted(first) == sorted([
        "fit croppaste disc",
        "generate croppaste disc seed 0", "generate croppaste disc seed 1",
        "contamination croppaste disc seed 0", "contamination croppaste disc seed 1",
        "fidelity croppaste disc seed 0", "fidelity croppaste disc seed 1",
        "detect unet croppaste disc seed 0", "detect unet croppaste disc seed 1",
        "detect padim-effnetlite0 (no synthesis) disc seed 0", "detect padim-effnetlite0 (no synthesis) disc seed 1",
    ])
    path = out / "results" / "croppaste" / "3" / "test-repetitions--v1" / "demo" / "disc.json"
    record = load_result(path)
    assert [rep.seeds for rep in record.repetitions] == [{"generation": 0, "detector": 0}, {"generation": 1, "detector": 1}]
    assert record.repetitions[0].generated_set_sha256 != record.repetitions[1].generated_set_sha256
    values = [rep.detectors[0].overall.pixel_ap for rep in record.repetitions]
    summary = record.detection("unet", "pixel_ap")
    assert summary.values == values and summary.n == 2 and summary.ci_low <= summary.mean <= summary.ci_high
    assert record.uncertainty.repetitions == 2 and "Student-t" in record.uncertainty.description
    assert " ± " in capsys.readouterr().out  # the terminal table shows mean ± spread

    assert _run(out) == []  # everything cached
    third = _run(out, "--repetitions", "3")
    assert sorted(third) == sorted(["generate croppaste disc seed 2", "contamination croppaste disc seed 2",
                                    "fidelity croppaste disc seed 2",
                                    "detect unet croppaste disc seed 2",
                                    "detect padim-effnetlite0 (no synthesis) disc seed 2"])
    extended = load_result(path)
    assert extended.repetitions[:2] == record.repetitions and len(extended.repetitions) == 3

    from benchmark.cli import main

    assert main(["compare", str(out / "results"), "--synth", "croppaste", "--synth", "no-synthesis"]) == 0
    text = capsys.readouterr().out
    assert "disc" in text and re.search(r"\s3\s", text) and "95 %" in text


def test_protocol_seeds_and_published_hashes() -> None:
    cpu2 = get_protocol("mvtec-caption-cpu/v2")
    assert cpu2.repetitions == 3 and cpu2.repetition_seeds(0) == [0, 1, 2] and cpu2.repetition_seeds(10, 5)[-1] == 14
    assert get_protocol("mvtec-caption/v2").repetitions == 5
    # v1 hashes are those of the committed leaderboard records: adding protocol fields did not change them
    for path in Path("leaderboard/results").rglob("*--v1/*/*.json"):
        data = json.loads(path.read_text())
        assert data["protocol"]["config_hash"] == PROTOCOLS[data["protocol"]["id"]].config_hash, path
