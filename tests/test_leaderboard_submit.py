"""``python -m leaderboard submit RESULT_DIR``: all-or-nothing, never a silent overwrite, meta drafted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from leaderboard_helpers import fill_meta, make_board, make_record, populate, with_first_repetition, write_run

from benchmark.results import RESULT_SCHEMA_VERSION, dump_result, load_result
from leaderboard.cli import main
from leaderboard.meta import TODO, load_meta
from leaderboard.submit import submit
from leaderboard.validate import validate_tree

pytestmark = pytest.mark.usefixtures("pinned_clip")

RECORDS = [make_record("axf", "1", "bottle"), make_record("axf", "1", "cable"), make_record(None, "0", "bottle")]


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "results").rglob("*")) if p.is_file()}


def test_submit_copies_results_into_the_layout_and_drafts_meta(tmp_path: Path, capsys) -> None:
    root = make_board(tmp_path)
    run = write_run(tmp_path / "run", RECORDS)
    assert main(["submit", str(run), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "job.json (not a result record)" in out
    assert "drafted   leaderboard/results/axf/1/meta.json: fill the fields marked TODO" in out
    for record in RECORDS:
        stored = root / "results" / record.relative_path()
        assert stored.read_text() == dump_result(record)
        assert load_result(stored) == record
    meta = load_meta(root / "results" / "axf" / "1" / "meta.json")
    assert (meta.name, meta.version, meta.uses_text, meta.uses_real_anomalies) == ("axf", "1", True, True)
    assert meta.paper == "https://example.org/paper"  # from the synthesizer's reference
    assert set(meta.placeholders()) == {"authors", "code", "real_anomalies", "compute"}
    assert {p.rule for p in validate_tree(root).errors} == {"meta-complete"}  # the submitter must fill them
    fill_meta(root)
    assert validate_tree(root).ok


def test_resubmitting_identical_results_is_a_no_op(tmp_path: Path) -> None:
    root = populate(make_board(tmp_path), tmp_path, RECORDS)
    before = tree(root)
    report = submit(tmp_path / "run", root)
    assert report.ok and report.count("unchanged") == len(RECORDS) and not report.metas_created
    assert tree(root) == before  # meta.json kept as filled in


def test_the_same_scores_recomputed_later_keep_the_first_record(tmp_path: Path) -> None:
    """A rerun that only differs in when and where it ran (commit, date, timings) changes nothing."""
    root = populate(make_board(tmp_path), tmp_path, RECORDS)
    before = tree(root)
    environment = RECORDS[0].environment.model_copy(update={"git_commit": "f" * 40})
    rerun = RECORDS[0].model_copy(update={"created_utc": "2031-01-01T00:00:00+00:00", "environment": environment,
                                           "timings": {"fit": 1.0}})
    assert rerun.content_hash() == RECORDS[0].content_hash() and dump_result(rerun) != dump_result(RECORDS[0])
    report = submit(write_run(tmp_path / "rerun", [rerun]), root)
    assert report.ok and report.count("unchanged") == 1
    assert tree(root) == before


def test_a_different_result_is_not_overwritten_without_replace(tmp_path: Path, capsys) -> None:
    root = populate(make_board(tmp_path), tmp_path, RECORDS)
    before = tree(root)
    rerun = with_first_repetition(make_record("axf", "1", "bottle"), seeds={"generation": 1, "detector": 1})
    run = write_run(tmp_path / "rerun", [rerun, make_record("axf", "1", "hazelnut")])
    assert main(["submit", str(run), "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "[no-overwrite] refusing to overwrite" in err and "axf/1/mvtec-caption-cpu--v1/mvtec_ad/bottle.json" in err
    assert "pass --replace" in err and "nothing was written" in err
    assert tree(root) == before  # not even the new hazelnut result: all or nothing

    assert main(["submit", str(run), "--root", str(root), "--replace"]) == 0
    assert "replace   leaderboard/results/axf/1/mvtec-caption-cpu--v1/mvtec_ad/bottle.json" in capsys.readouterr().out
    assert load_result(root / "results" / rerun.relative_path()).seeds == [{"generation": 1, "detector": 1}]
    assert validate_tree(root).ok


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = make_board(tmp_path)
    report = submit(write_run(tmp_path / "run", RECORDS), root, dry_run=True)
    assert report.ok and report.count("add") == 3 and not report.written
    assert tree(root) == {"results/.gitkeep": b""}


@pytest.mark.parametrize(("record", "rule", "fragment"), [
    (with_first_repetition(make_record("axf", "1", "cable", dataset="mvtec_ad"), fidelity=[]).model_copy(
        update={"comparable": True}),
     "comparable-claims", "standard metric 'is' is missing"),
    (make_record("axf", "1", "cable", protocol_id="mvtec-caption-smoke/v1", comparable=False), "real-data", "demo_only"),
    (make_record("axf", "1", "../../../escape"), "safe-names", "not safe path components"),
    (make_record("axf", "1", "cable").model_copy(update={"dataset": make_record().dataset.model_copy(
        update={"captions_sha256": "e" * 64, "category": "cable"})}), "captions-hash", "other captions"),
])
def test_an_invalid_record_refuses_the_whole_submission(tmp_path: Path, record, rule: str, fragment: str) -> None:
    root = make_board(tmp_path)
    run = tmp_path / "run"
    write_run(run, [make_record("perlin", "1", "bottle")])
    (run / "bad.json").write_text(dump_result(record))
    report = submit(run, root)
    assert not report.ok and not report.written
    assert any(p.rule == rule and fragment in p.message and p.path.endswith("bad.json") for p in report.problems), \
        [str(p) for p in report.problems]
    assert tree(root) == {"results/.gitkeep": b""}
    assert not (tmp_path / "escape.json").exists()


def test_two_different_results_for_one_cell_in_a_run_are_refused(tmp_path: Path) -> None:
    root = make_board(tmp_path)
    run = write_run(tmp_path / "run", [make_record("axf", "1", "bottle")])
    (run / "other.json").write_text(dump_result(with_first_repetition(make_record("axf", "1", "bottle"),
                                                                      seeds={"generation": 5, "detector": 5})))
    report = submit(run, root)
    assert [p.rule for p in report.problems] == ["no-duplicates"]
    assert "with different content" in report.problems[0].message


def test_the_same_content_under_another_name_is_refused(tmp_path: Path) -> None:
    root = populate(make_board(tmp_path), tmp_path, RECORDS)
    moved = root / "results" / "axf/1/mvtec-caption-cpu--v1/mvtec_ad/bottle.json"
    moved.rename(moved.with_name("screw.json"))  # a hand edit put it under the wrong name
    report = submit(tmp_path / "run", root)
    assert any(p.rule == "no-duplicates" and "already in the leaderboard at" in p.message for p in report.problems)


def test_an_existing_meta_must_agree_with_new_results(tmp_path: Path) -> None:
    root = populate(make_board(tmp_path), tmp_path, RECORDS)
    meta_file = root / "results" / "axf" / "1" / "meta.json"
    meta_file.write_text(meta_file.read_text().replace('"uses_masks": true', '"uses_masks": false'))
    report = submit(write_run(tmp_path / "more", [make_record("axf", "1", "hazelnut")]), root)
    assert any(p.rule == "meta-consistent" and "uses_masks=False" in p.message for p in report.problems)


def test_a_v1_result_is_submitted_as_v2(tmp_path: Path) -> None:
    root = make_board(tmp_path)
    record = make_record("cutpaste", "2", "bottle")
    data = json.loads(dump_result(record))
    data.update(schema_version=1, fidelity={m.id: m.value for m in record.fidelity})
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "old.json").write_text(json.dumps(data))
    assert submit(tmp_path / "run", root).ok
    stored = json.loads((root / "results" / record.relative_path()).read_text())
    assert stored["schema_version"] == RESULT_SCHEMA_VERSION and stored["comparable"] is False


def test_an_empty_run_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    report = submit(tmp_path / "run", make_board(tmp_path))
    assert not report.ok and "no result records found" in report.problems[0].message


def test_the_reference_row_meta_is_drafted_too(tmp_path: Path) -> None:
    root = make_board(tmp_path)
    submit(write_run(tmp_path / "run", [make_record(None, "0", "bottle")]), root)
    meta = load_meta(root / "results" / "no-synthesis" / "0" / "meta.json")
    assert meta.name == "no-synthesis" and not meta.uses_text and meta.real_anomalies == "none"
    assert all(str(getattr(meta, f)).startswith(TODO) or f == "authors" for f in meta.placeholders())


# ---- forged or broken input, and destinations that cannot be written -------------------------------

def _with_pixel_ap(record, value: float):  # noqa: ANN001, ANN202
    detector = record.detectors[0]
    overall = detector.overall.model_copy(update={"pixel_ap": value})
    return with_first_repetition(record, detectors=[detector.model_copy(update={"overall": overall})])


@pytest.mark.parametrize(("token", "fragment"), [("NaN", "repetitions.0.detectors.0.overall.pixel_ap=nan"),
                                                 ("Infinity", "repetitions.0.detectors.0.overall.pixel_ap=inf"),
                                                 ("-Infinity", "repetitions.0.detectors.0.overall.pixel_ap=-inf"),
                                                 ("1e999", "repetitions.0.detectors.0.overall.pixel_ap=inf")])
def test_a_record_holding_a_non_finite_number_is_refused_naming_the_file(tmp_path: Path, token: str, fragment: str,
                                                                         capsys) -> None:
    root = make_board(tmp_path)
    run = write_run(tmp_path / "run", [make_record("perlin", "1", "bottle")])
    record = make_record("axf", "1", "cable")
    text = dump_result(record).replace(f'"pixel_ap": {record.detectors[0].overall.pixel_ap}', f'"pixel_ap": {token}', 1)
    assert token in text
    (run / "bad.json").write_text(text)
    assert main(["submit", str(run), "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "bad.json: [valid-json]" in err and fragment in err and "nothing was written" in err
    assert tree(root) == {"results/.gitkeep": b""}


def test_an_out_of_range_score_cannot_rank_first(tmp_path: Path) -> None:
    """7.5 as pixel AP (a forged or broken record) used to rank first; it is refused now."""
    root = make_board(tmp_path)
    run = write_run(tmp_path / "run", [_with_pixel_ap(make_record("axf", "1", "bottle"), 7.5)])
    report = submit(run, root)
    assert not report.ok and not report.written
    assert [p.rule for p in report.problems] == ["scores-in-range"]
    assert "overall.pixel_ap = 7.5 is outside [0, 1]" in report.problems[0].message
    assert tree(root) == {"results/.gitkeep": b""}


def test_writing_a_non_finite_record_is_an_error_not_a_nan_token(tmp_path: Path) -> None:
    from benchmark.strict_json import NonFiniteNumberError

    record = make_record("axf", "1", "bottle")
    detector = record.detectors[0]
    nan = detector.model_copy(update={"overall": detector.overall.model_copy(update={"pixel_ap": float("nan")})})
    repetition = record.repetitions[0].model_copy(update={"detectors": [nan]})  # the summary cannot even be made
    with pytest.raises(NonFiniteNumberError, match=r"repetitions\.0\.detectors\.0\.overall\.pixel_ap=nan"):
        dump_result(record.model_copy(update={"repetitions": [repetition, *record.repetitions[1:]]}))


@pytest.mark.parametrize(("blocker", "fragment"), [
    ("results/axf", "is in the way: it is a file, not a folder"),
    ("results/axf/1/meta.json/", "is in the way: not a regular file"),
    ("results/no-synthesis", "is a symbolic link"),
])
def test_every_destination_is_checked_before_the_first_write(tmp_path: Path, blocker: str, fragment: str) -> None:
    root = make_board(tmp_path)
    target = root / blocker.rstrip("/")
    if blocker.endswith("/"):
        target.mkdir(parents=True)
    elif blocker.endswith("no-synthesis"):  # a link that stays inside results/ (one leading outside fails earlier)
        (root / "results" / "elsewhere").mkdir()
        target.symlink_to(root / "results" / "elsewhere")
    else:
        target.write_text("not a folder")
    before = tree(root)
    report = submit(write_run(tmp_path / "run", RECORDS), root)
    assert not report.ok and not report.written
    assert any(p.rule == "destination" and fragment in p.message for p in report.problems), \
        [str(p) for p in report.problems]
    assert tree(root) == before
    assert not (root / "results" / "elsewhere").exists() or not any((root / "results" / "elsewhere").iterdir())


def test_a_write_that_fails_midway_rolls_back_only_what_the_submission_wrote(tmp_path: Path, monkeypatch,
                                                                            capsys) -> None:
    import leaderboard.transaction as transaction

    root = populate(make_board(tmp_path), tmp_path, RECORDS)
    (root / "results" / "unrelated.txt").write_text("someone else's file")  # not ours: must survive
    before = tree(root)
    rerun = make_record("axf", "1", "bottle", seeds={"generation": 1, "detector": 1})  # replaces a file
    run = write_run(tmp_path / "rerun", [rerun, make_record("axf", "1", "hazelnut"), make_record("perlin", "1", "bottle")])
    real_write, calls = transaction.write_bytes, []

    def fail_on_the_third(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(transaction, "write_bytes", fail_on_the_third)
    assert main(["submit", str(run), "--root", str(root), "--replace"]) == 1
    err = capsys.readouterr().err
    assert "[write] writing failed (No space left on device)" in err and "were rolled back" in err
    monkeypatch.setattr(transaction, "write_bytes", real_write)
    assert tree(root) == before  # the replaced bottle.json restored, the new hazelnut.json removed
    assert not (root / "results" / "perlin").exists()  # folders it created are gone too
    (root / "results" / "unrelated.txt").unlink()
    assert validate_tree(root).ok


@pytest.mark.parametrize("content", [b"", b'{"name": "axf",', b'{"name": "\xe9"}', b"[]"])
def test_a_corrupt_existing_meta_is_named_not_a_traceback(tmp_path: Path, content: bytes, capsys) -> None:
    root = populate(make_board(tmp_path), tmp_path, RECORDS)
    meta = root / "results" / "axf" / "1" / "meta.json"
    meta.write_bytes(content)
    before = tree(root)
    assert main(["submit", str(write_run(tmp_path / "more", [make_record("axf", "1", "hazelnut")])), "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"{meta}: [schema] existing meta.json is invalid" in err and "Traceback" not in err
    assert tree(root) == before
    assert main(["render", "--root", str(root)]) == 1
    assert "axf/1/meta.json: [valid-json]" in capsys.readouterr().err
