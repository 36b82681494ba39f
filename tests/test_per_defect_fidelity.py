"""``scripts/per_defect_fidelity.py``: per-defect-type mean ± std over repetitions of a fidelity metric."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from leaderboard_helpers import make_record, write_run

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "per_defect_fidelity.py"


def _module():
    spec = importlib.util.spec_from_file_location("per_defect_fidelity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_table_holds_each_defect_types_mean_and_std_over_repetitions(tmp_path: Path, capsys) -> None:
    script = _module()
    records = [make_record("axf", "2", protocol_id="mvtec-caption-cpu/v2"),
               make_record("croppaste", "1", protocol_id="mvtec-caption-cpu/v2"),
               make_record(None, "0", protocol_id="mvtec-caption-cpu/v2")]  # the reference row has no fidelity
    run = write_run(tmp_path / "run", records)
    assert script.main([str(run / "results"), "--metric", "kid"]) == 0
    out = capsys.readouterr().out
    for record in records[:2]:
        values = script.per_defect_values(record, "kid")
        assert values and all(len(v) == 3 for v in values.values())  # one value per repetition
        defects = sorted(values)
        expected = " | ".join(f"{np.mean(values[d]):.3f} ± {np.std(values[d], ddof=1):.3f}" for d in defects)
        name, version = record.synthesizer.meta.name, record.synthesizer.meta.version
        assert f"| `{name}` ({version}) | {expected} | 3 |" in out
    assert "no-synthesis" not in out and out.count("mvtec_ad / bottle: kid per defect type") == 1


def test_a_metric_no_record_has_is_an_error_not_an_empty_table(tmp_path: Path, capsys) -> None:
    run = write_run(tmp_path / "run", [make_record("axf", "2", protocol_id="mvtec-caption-cpu/v2")])
    assert _module().main([str(run / "results"), "--metric", "label-fidelity"]) == 1
    assert "no record below" in capsys.readouterr().err
