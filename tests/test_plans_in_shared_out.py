"""Several commands planning into one ``--out`` (one run per category or synthesizer sharing a job cache, as
the v2 grid does): each ``run`` assembles the records of its own plan, never those of a plan another command
wrote into ``<out>/plan.json`` while it ran; ``job run``/``job list``/``assemble`` can pin a plan by its id.

Found on real data: a bottle ``axf`` run, with a fibreboard ``perlin`` run started into the same ``--out``
while it fitted, finished with exit code 0 having re-assembled perlin's fibreboard record and not written its
own. Demo data, smoke protocol, ``cutpaste``/``croppaste`` and the reference detector keep this cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark import pipeline
from data_helpers import benchmark_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMON = ["--dataset", "demo", "--detectors", "padim-effnetlite0", "--no-progress", "--no-download", "--threads", "1"]
MINE = ["--synth", "cutpaste", "--categories", "disc", *COMMON]
OTHER = ["--synth", "croppaste", "--categories", "weave", *COMMON]


def _result_files(out: Path) -> list[str]:
    return sorted(p.relative_to(out / "results").as_posix() for p in (out / "results").rglob("*.json"))


def test_a_run_assembles_its_own_plan_when_another_command_plans_into_the_same_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "shared-run"
    execute = pipeline.LocalExecutor.execute
    other: dict[str, str] = {}

    def another_command_plans_meanwhile(self, plan_file, out_dir, progress):  # noqa: ANN001, ANN202
        code, printed, err = benchmark_cli(["plan", *OTHER, "--out", out_dir])
        assert code == 0, err
        other.update(json.loads(printed))
        return execute(self, plan_file, out_dir, progress)

    monkeypatch.setattr(pipeline.LocalExecutor, "execute", another_command_plans_meanwhile)
    code, _, err = benchmark_cli(["run", *MINE, "--out", out])
    assert code == 0, err

    mine = [name for name in _result_files(out) if name.startswith("cutpaste/")]
    assert [name.rsplit("/", 1)[-1] for name in mine] == ["disc.json"]  # its own record was written ...
    assert not [name for name in _result_files(out) if name.startswith("croppaste/")]  # ... not the other's

    # plan.json holds the plan written last (the other command's); both stay under plans/ by id
    latest = json.loads((out / "plan.json").read_text())
    assert latest["request"]["categories"] == ["weave"]
    copies = sorted(p.name for p in (out / "plans").glob("*.json"))
    assert len(copies) == 2 and f"{other['plan_id']}.json" in copies
    assert other["plan_copy"] == str(out / "plans" / f"{other['plan_id']}.json")
    my_id = next(name.removesuffix(".json") for name in copies if name != f"{other['plan_id']}.json")

    # job list / assemble pinned to my plan by id read it, not plan.json
    code, printed, err = benchmark_cli(["job", "list", "--out", out, "--plan", my_id])
    assert code == 0, err
    assert "disc" in printed and "weave" not in printed
    code, printed, err = benchmark_cli(["assemble", "--out", out, "--plan", my_id])
    assert code == 0, err
    assert "cutpaste" in printed and "croppaste" not in printed
    # the other plan's jobs never ran, so assembling plan.json (the other plan) refuses and writes nothing
    code, _, err = benchmark_cli(["assemble", "--out", out])
    assert code == 2 and "job(s) of weave not done" in err
    assert not [name for name in _result_files(out) if name.startswith("croppaste/")]


def test_a_pinned_plan_that_is_missing_malformed_or_edited_is_an_error_naming_the_file(tmp_path: Path) -> None:
    out = tmp_path / "planned"
    code, printed, err = benchmark_cli(["plan", *MINE, "--out", out])
    assert code == 0, err
    plan_id = json.loads(printed)["plan_id"]
    copy = out / "plans" / f"{plan_id}.json"
    assert copy.read_bytes() == (out / "plan.json").read_bytes()

    code, _, err = benchmark_cli(["job", "list", "--out", out, "--plan", "0" * 16])
    assert code == 2 and str(out / "plans" / ("0" * 16 + ".json")) in err and "no plan" in err
    code, _, err = benchmark_cli(["assemble", "--out", out, "--plan", "../plan"])
    assert code == 2 and "expected 16 hex digits" in err
    copy.write_text(copy.read_text().replace('"disc"', '"weave"'))
    code, _, err = benchmark_cli(["job", "list", "--out", out, "--plan", plan_id])
    assert code == 2 and str(copy) in err and "does not match its id" in err
