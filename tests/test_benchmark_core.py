"""Protocols, job keys and store, the result schema: the harness's bookkeeping."""

from __future__ import annotations

import json

import pytest

from benchmark.protocols import PROTOCOLS, Protocol, get_protocol, protocol_from_slug, register_protocol
from benchmark.results import RESULT_SCHEMA_VERSION, ResultRecord, load_result, result_migrations, write_result
from benchmark.store import Job, JobStore
from mvtec_caption.migrations import SchemaVersionError


def test_protocols_are_pinned_and_distinct() -> None:
    assert {"mvtec-caption/v1", "mvtec-caption-cpu/v1", "mvtec-caption-smoke/v1"} <= set(PROTOCOLS)
    hashes = {p.config_hash for p in PROTOCOLS.values()}
    assert len(hashes) == len(PROTOCOLS)
    gpu = get_protocol("mvtec-caption/v1")
    assert gpu.n_generated_per_defect == 1000 and gpu.image_size == 256
    for protocol in PROTOCOLS.values():
        assert protocol_from_slug(protocol.slug) is protocol
        assert "/" not in protocol.slug
        assert set(protocol.default_detectors) <= set(protocol.detectors)


def test_a_published_protocol_cannot_be_redefined() -> None:
    changed = get_protocol("mvtec-caption-cpu/v1").model_copy(update={"n_generated_per_defect": 5})
    with pytest.raises(ValueError, match="new version"):
        register_protocol(changed)
    with pytest.raises(KeyError, match="unknown protocol"):
        get_protocol("nope/v1")


def test_ablations_inherit_the_pinned_config_of_their_base() -> None:
    protocol = Protocol(id="t/v1", title="t", hardware="cpu", description="", image_size=32, n_generated_per_defect=1,
                        synthesizer_overrides={"axf": {"steps": 3}, "axf-no-ddf": {"use_ddf": False}},
                        detectors={}, default_detectors=[], fidelity_metrics=[])
    assert protocol.synthesizer_config("axf-no-ddf", ablation_of="axf") == {"steps": 3, "use_ddf": False}
    assert protocol.synthesizer_config("perlin") == {}


def test_job_keys_depend_on_everything_that_defines_the_output() -> None:
    job = Job(kind="fit", label="a", params={"x": 1, "y": [1, 2]}, deps=("k1",))
    assert job.key == Job(kind="fit", label="another label", params={"y": [1, 2], "x": 1}, deps=("k1",)).key
    assert job.key != Job(kind="fit", label="a", params={"x": 2, "y": [1, 2]}, deps=("k1",)).key
    assert job.key != Job(kind="fit", label="a", params={"x": 1, "y": [1, 2]}, deps=("k2",)).key
    assert job.key != Job(kind="generate", label="a", params={"x": 1, "y": [1, 2]}, deps=("k1",)).key


def test_store_keeps_partial_work_until_complete(tmp_path) -> None:
    store = JobStore(tmp_path)
    job = Job(kind="generate", label="g", params={"n": 3})
    work = store.work_folder(job)
    (work / "half.txt").write_text("interrupted here")
    assert not store.is_done(job)
    assert (store.work_folder(job) / "half.txt").read_text() == "interrupted here"  # resumed, not wiped
    final = store.complete(job, {"n": 3, "file": "half.txt"})
    assert store.is_done(job) and store.output(job)["n"] == 3
    assert (final / "half.txt").is_file() and not work.exists()
    assert json.loads((final / "job.json").read_text())["params"] == {"n": 3}
    store.forget(job)
    assert not store.is_done(job)


def _record_dict() -> dict:
    """A current-schema record (built from the v2 layout through the migration)."""
    return result_migrations.upgrade(_record_dict_v2())


def _record_dict_v2() -> dict:
    return {
        "schema_version": 2,
        "protocol": {"id": "mvtec-caption-cpu/v1", "config_hash": "h", "title": "t", "hardware": "cpu", "settings": {}},
        "dataset": {"name": "mvtec_ad", "category": "bottle", "is_demo": False, "caption_source_kind": "json",
                    "captions_sha256": "c", "split_sha256": "s", "split": {}, "good_test_source": "test/good"},
        "synthesizer": None,
        "fidelity": [],
        "detectors": [],
        "seeds": {"generation": 0, "detector": 0},
        "timings": {},
        "environment": {"package_version": "0.1.0", "git_commit": None, "python": "3.11", "platform": "linux",
                        "cpu": "x", "cpu_cores": 2, "device": "cpu", "gpu": None, "packages": {}},
        "comparable": True,
        "comparable_notes": [],
        "created_utc": "2026-11-25T00:00:00+00:00",
    }


def test_result_round_trip_and_path(tmp_path) -> None:
    record = ResultRecord.model_validate(_record_dict())
    path = write_result(record, tmp_path / "r.json")
    again = load_result(path)
    assert again == record
    assert again.content_hash() == record.content_hash()
    assert str(record.relative_path()) == "no-synthesis/0/mvtec-caption-cpu--v1/mvtec_ad/bottle.json"
    assert record.schema_version == RESULT_SCHEMA_VERSION
    later = ResultRecord.model_validate({**_record_dict(), "created_utc": "2030-01-01T00:00:00+00:00"})
    assert later.content_hash() == record.content_hash()  # when it ran is not part of its identity


def test_result_schema_v1_is_upgraded_and_newer_versions_refused(tmp_path) -> None:
    old = {**_record_dict_v2(), "schema_version": 1, "fidelity": {"is": 2.5, "ic-lpips-ad": None}}
    upgraded = ResultRecord.model_validate(result_migrations.upgrade(old))
    assert [m.id for m in upgraded.fidelity] == ["ic-lpips-ad", "is"]
    assert upgraded.fidelity[1].value == 2.5 and not upgraded.fidelity[1].comparable
    assert upgraded.comparable is False
    assert upgraded.metric("is").mean == 2.5 and upgraded.metric("ic-lpips-ad") is None
    with pytest.raises(SchemaVersionError, match="newer"):
        result_migrations.upgrade({**_record_dict(), "schema_version": 99})


def test_result_schema_v2_becomes_repetition_zero() -> None:
    """A one-run (v2) record is read as one repetition: its scores are the summary's means, with no interval."""
    from leaderboard_helpers import make_record

    single = make_record("axf", "1", "bottle", repetitions=1)
    old = single.model_dump(mode="json")
    repetition = old.pop("repetitions")[0]
    old.pop("summary"), old.pop("uncertainty")
    old.update(schema_version=2, fidelity=repetition["fidelity"], detectors=repetition["detectors"],
               seeds=repetition["seeds"])
    upgraded = ResultRecord.model_validate(result_migrations.upgrade(old))
    assert upgraded.repetitions[0].detectors == single.repetitions[0].detectors
    summary = upgraded.detection("unet", "pixel_ap")
    assert summary.n == 1 and summary.mean == single.detectors[0].overall.pixel_ap and summary.ci_low is None
    assert upgraded.repetitions[0].generated_set_sha256 == single.synthesizer.generated_set_sha256


def test_committed_v1_leaderboard_records_still_load() -> None:
    from pathlib import Path

    paths = sorted(Path("leaderboard/results").rglob("*--v1/*/*.json"))
    assert paths, "the repository's v1 leaderboard records"
    for path in paths:
        record = load_result(path)
        assert len(record.repetitions) == 1 and record.protocol.id.endswith("/v1")


def test_table_command_prints_every_record_below_a_folder(tmp_path, capsys) -> None:
    from benchmark.cli import main
    from leaderboard_helpers import make_record, write_run

    v2 = "mvtec-caption-cpu/v2"
    records = [make_record("axf", "1", "bottle", "mvtec_ad", v2), make_record(None, "0", "bottle", "mvtec_ad", v2),
               make_record("perlin", "1", "bottle", "mvtec_ad", v2, comparable=False)]
    write_run(tmp_path / "run", records)
    assert main(["table", str(tmp_path / "run" / "results"), "--markdown"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| bottle |")]
    assert len(lines) == sum(len(r.detectors) for r in records)
    image_auroc = records[0].detection(records[0].detectors[0].name, "image_auroc")
    assert image_auroc.n == 3  # the CPU protocol pins 3 repetitions: cells read mean ± half-width
    image_auroc = f"{image_auroc.mean:.3f} ± {image_auroc.half_width:.3f}"
    assert any(f"| axf | {records[0].detectors[0].name} | 3 | {image_auroc} |" in line for line in lines), lines
    assert main(["table", str(tmp_path / "empty")]) == 2


@pytest.mark.parametrize(("content", "fragment"), [
    (b'{"schema_version": 2,', "not a valid JSON result record"),
    (b"", "not a valid JSON result record"),
    (b'{"caption": "\xe9"}', "not UTF-8 text"),
    (b"[1, 2]", "holds a JSON list"),
    (b'{"schema_version": 2}', "does not match the result schema"),
])
def test_table_names_a_corrupt_record_and_still_lists_the_others(tmp_path, capsys, content: bytes,
                                                                  fragment: str) -> None:
    from benchmark.cli import main
    from leaderboard_helpers import make_record, write_run

    record = make_record("axf", "1", "bottle", "mvtec_ad")
    write_run(tmp_path / "run", [record])
    bad = tmp_path / "run" / "results" / "axf" / "1" / "broken.json"
    bad.write_bytes(content)
    assert main(["table", str(tmp_path / "run" / "results"), "--markdown"]) == 2
    captured = capsys.readouterr()
    assert "| bottle | axf |" in captured.out  # the readable record is still listed
    assert f"error: {bad}: {fragment}" in captured.err and "Traceback" not in captured.err


def test_a_record_with_a_nan_token_is_a_clear_error(tmp_path) -> None:
    from benchmark.results import ResultFileError, dump_result, load_result
    from leaderboard_helpers import make_record

    record = make_record("axf", "1", "bottle", "mvtec_ad")
    path = tmp_path / "bottle.json"
    path.write_text(dump_result(record).replace(f'"pixel_ap": {record.detectors[0].overall.pixel_ap}', '"pixel_ap": NaN'))
    with pytest.raises(ResultFileError, match=f"{path}: .*non-standard JSON token NaN"):
        load_result(path)
