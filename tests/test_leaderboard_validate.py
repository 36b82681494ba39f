"""``python -m leaderboard validate``: every rule accepts a valid folder and rejects its violation
with a message naming the file and the rule."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from leaderboard_helpers import fill_meta, make_board, make_record, populate, with_first_repetition, write_manifest

from benchmark.results import RESULT_SCHEMA_VERSION, ResultRecord, dump_result, load_result
from leaderboard.cli import main
from leaderboard.layout import MAX_FILE_BYTES, ResultKey
from leaderboard.validate import RULES, fix_tree, rules_markdown, validate_tree

pytestmark = pytest.mark.usefixtures("pinned_clip")

SMALL = [make_record("axf", "1", "bottle"), make_record(None, "0", "bottle"), make_record("cutpaste", "2", "bottle")]
AXF_BOTTLE = "axf/1/mvtec-caption-cpu--v1/mvtec_ad/bottle.json"


@pytest.fixture()
def board(tmp_path: Path) -> Path:
    return populate(make_board(tmp_path), tmp_path, SMALL)


def results(root: Path) -> Path:
    return root / "results"


def put(root: Path, record: ResultRecord, rel: str | None = None) -> Path:
    """Write a record at its own path (or at ``rel``) without any checks, as a hand edit would."""
    path = results(root) / (rel or record.relative_path().as_posix())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_result(record))
    return path


def v1_dict(record: ResultRecord) -> dict:
    """The record as schema v1 stored it: fidelity as {metric id: value}, no comparability notes."""
    data = json.loads(dump_result(record))
    repetition = data.pop("repetitions")[0]
    data.pop("summary"), data.pop("uncertainty")
    data["schema_version"] = 1
    data["fidelity"] = {metric.id: metric.value for metric in record.fidelity}
    data["detectors"], data["seeds"] = repetition["detectors"], repetition["seeds"]
    data.pop("comparable_notes")
    return data


def errors(root: Path) -> list[str]:
    return [str(p) for p in validate_tree(root).errors]


# ---- valid ---------------------------------------------------------------------------------------

def test_a_valid_leaderboard_passes(board: Path) -> None:
    report = validate_tree(board)
    assert report.ok, report.errors
    assert len(report.records()) == 3 and len(report.metas()) == 3
    assert main(["validate", "--root", str(board)]) == 0


def test_an_empty_leaderboard_passes(tmp_path: Path) -> None:
    root = make_board(tmp_path)
    assert validate_tree(root).ok
    (results(root) / ".gitkeep").unlink()
    results(root).rmdir()
    assert validate_tree(root).ok  # no results/ folder at all: nothing to check


# ---- one invalid case per rule ---------------------------------------------------------------------

def _wrong_category(root: Path) -> None:
    (results(root) / AXF_BOTTLE).rename(results(root) / AXF_BOTTLE.replace("bottle.json", "screw.json"))


def _wrong_synthesizer_folder(root: Path) -> None:
    put(root, make_record("perlin", "1", "cable"), "axf/1/mvtec-caption-cpu--v1/mvtec_ad/cable.json")


def _unknown_protocol(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    put(root, record.model_copy(update={"protocol": record.protocol.model_copy(update={"id": "mystery/v1"})}))


def _changed_protocol(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    put(root, record.model_copy(update={"protocol": record.protocol.model_copy(update={"config_hash": "0" * 64})}))


def _hash_mismatch(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    put(root, record.model_copy(update={"dataset": record.dataset.model_copy(update={"captions_sha256": "f" * 64})}))


def _demo_flag(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    put(root, record.model_copy(update={"dataset": record.dataset.model_copy(update={"is_demo": True})}))


def _demo_dataset(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    put(root, record.model_copy(update={"dataset": record.dataset.model_copy(update={"name": "demo"})}))


def _demo_protocol(root: Path) -> None:
    put(root, make_record("axf", "1", "cable", protocol_id="mvtec-caption-smoke/v1", comparable=False))


def _claims_comparable_without_computing(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    metric = record.fidelity[0].model_copy(update={"computed": False, "value": None, "reason": "no weights"})
    put(root, with_first_repetition(record, fidelity=[metric, *record.fidelity[1:]]))


def _claims_comparable_with_a_substitute(root: Path) -> None:
    record = make_record("axf", "1", "cable", comparable=False)  # "is" replaced by a substitute network
    put(root, record.model_copy(update={"comparable": True, "comparable_notes": []}))


def _metric_comparable_without_weights(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    metric = record.fidelity[1].model_copy(update={"weights": []})
    put(root, with_first_repetition(record, fidelity=[record.fidelity[0], metric, *record.fidelity[2:]]))


def _with_weights(record: ResultRecord, metric_index: int, **update: object) -> ResultRecord:
    metric = record.fidelity[metric_index]
    weights = [metric.weights[0].model_copy(update=update), *metric.weights[1:]]
    fidelity = list(record.fidelity)
    fidelity[metric_index] = metric.model_copy(update={"weights": weights})
    return with_first_repetition(record, fidelity=fidelity)


def _comparable_with_unpinned_weights(root: Path) -> None:
    put(root, _with_weights(make_record("axf", "1", "cable"), 0, sha256="1" * 64))


def _comparable_with_a_prefix_only(root: Path) -> None:
    put(root, _with_weights(make_record("axf", "1", "cable"), 0, sha256="6726825d"))


def _comparable_unverified_id(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    fidelity = [record.fidelity[0].model_copy(update={"id": "is-unverified-weights"}), *record.fidelity[1:]]
    put(root, with_first_repetition(record, fidelity=fidelity))


def _replace_in_file(root: Path, record: ResultRecord, old: str, new: str) -> None:
    path = put(root, record)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _pixel_ap_text(record: ResultRecord) -> str:
    return f'"pixel_ap": {record.detectors[0].overall.pixel_ap}'


def _nan_token(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    _replace_in_file(root, record, _pixel_ap_text(record), '"pixel_ap": NaN')


def _infinity_token(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    _replace_in_file(root, record, _pixel_ap_text(record), '"pixel_ap": Infinity')


def _overflowing_number(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    _replace_in_file(root, record, _pixel_ap_text(record), '"pixel_ap": 1e999')


def _with_scores(record: ResultRecord, where: str, **scores: float) -> ResultRecord:
    detector = record.detectors[0]
    if where == "overall":
        detector = detector.model_copy(update={"overall": detector.overall.model_copy(update=scores)})
    else:
        per_defect = dict(detector.per_defect)
        per_defect[where] = per_defect[where].model_copy(update=scores)
        detector = detector.model_copy(update={"per_defect": per_defect})
    return with_first_repetition(record, detectors=[detector, *record.detectors[1:]])


def _score_above_one(root: Path) -> None:
    put(root, _with_scores(make_record("axf", "1", "cable"), "overall", pixel_ap=7.5))


def _negative_score(root: Path) -> None:
    put(root, _with_scores(make_record("axf", "1", "cable"), "broken", image_auroc=-0.2))


def _with_metric(record: ResultRecord, index: int, **update: object) -> ResultRecord:
    fidelity = list(record.fidelity)
    fidelity[index] = fidelity[index].model_copy(update=update)
    return with_first_repetition(record, fidelity=fidelity)


def _is_below_one(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    assert record.fidelity[0].id == "is"
    put(root, _with_metric(record, 0, value=0.5))


def _negative_ic_lpips(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    assert record.fidelity[1].id == "ic-lpips-ad"
    put(root, _with_metric(record, 1, per_defect={**record.fidelity[1].per_defect, "broken": -0.1}))


def _unknown_metric(root: Path) -> None:
    record = make_record("axf", "1", "cable", comparable=False)
    put(root, _with_metric(record, 0, id="fid"))


def _unknown_detector(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    put(root, with_first_repetition(record, detectors=[record.detectors[0].model_copy(update={"name": "unet\n"})]))


def _category_with_newline(root: Path) -> None:
    """A trailing newline passed a ``$``-anchored pattern and rendered a duplicate column."""
    record = make_record("axf", "1", "bottle")
    put(root, record.model_copy(update={"dataset": record.dataset.model_copy(update={"category": "bottle\n"})}))


def _duplicate_content(root: Path) -> None:
    target = results(root) / AXF_BOTTLE.replace("bottle.json", "cable.json")
    target.write_bytes((results(root) / AXF_BOTTLE).read_bytes())


def _symlinked_file(root: Path) -> None:
    os.symlink(results(root) / AXF_BOTTLE, results(root) / AXF_BOTTLE.replace("bottle.json", "cable.json"))


def _symlinked_folder_outside(root: Path) -> None:
    outside = root.parent / "outside"
    (outside / "1").mkdir(parents=True)
    (outside / "1" / "meta.json").write_text("{}")
    os.symlink(outside, results(root) / "evil")


def _oversized(root: Path) -> None:
    record = make_record("axf", "1", "cable")
    put(root, record.model_copy(update={"comparable_notes": ["x" * (MAX_FILE_BYTES + 1)]}))


def _not_json_extension(root: Path) -> None:
    (results(root) / "axf" / "1" / "notes.txt").write_text("hello")


def _image(root: Path) -> None:
    (results(root) / AXF_BOTTLE.replace(".json", ".grid.png")).write_bytes(b"\x89PNG\r\n\x1a\n")


def _broken_json(root: Path) -> None:
    (results(root) / AXF_BOTTLE.replace("bottle.json", "cable.json")).write_text('{"schema_version": 2,')


def _json_array(root: Path) -> None:
    (results(root) / AXF_BOTTLE.replace("bottle.json", "cable.json")).write_text("[1, 2]")


def _latin1_result(root: Path) -> None:
    text = dump_result(make_record("axf", "1", "cable")).replace("test cpu", "caf\u00e9 cpu")
    (results(root) / AXF_BOTTLE.replace("bottle.json", "cable.json")).write_bytes(text.encode("latin-1"))


def _broken_meta(root: Path) -> None:
    path = results(root) / "axf" / "1" / "meta.json"
    path.write_text(path.read_text()[:40])


def _empty_meta(root: Path) -> None:
    (results(root) / "axf" / "1" / "meta.json").write_bytes(b"")


def _hidden_file(root: Path) -> None:
    (results(root) / "axf" / "1" / "mvtec-caption-cpu--v1" / "mvtec_ad" / ".cable.json").write_text("{}")


def _misplaced_json(root: Path) -> None:
    (results(root) / "axf" / "1" / "mvtec-caption-cpu--v1" / "summary.json").write_text("{}")


def _schema_violation(root: Path) -> None:
    path = results(root) / AXF_BOTTLE
    data = json.loads(path.read_text())
    del data["repetitions"]
    path.write_text(json.dumps(data))


V2 = "mvtec-caption-cpu/v2"


def _summary_edited(root: Path) -> None:
    record = make_record("axf", "1", "cable", protocol_id=V2)
    summary = record.summary.model_copy(deep=True)
    unet = summary.detectors["unet"]
    unet.overall["pixel_ap"] = unet.overall["pixel_ap"].model_copy(update={"mean": 0.999})
    put(root, record.model_copy(update={"summary": summary}))


def _seeds_off_rule(root: Path) -> None:
    record = make_record("axf", "1", "cable", protocol_id=V2)
    repetitions = [record.repetitions[0], record.repetitions[1].model_copy(update={"seeds": {"generation": 7, "detector": 7}}),
                   record.repetitions[2]]
    put(root, record.model_copy(update={"repetitions": repetitions}))


def _too_few_repetitions(root: Path) -> None:
    put(root, make_record("axf", "1", "cable", protocol_id=V2, repetitions=2))


def _newer_schema(root: Path) -> None:
    path = results(root) / AXF_BOTTLE
    data = json.loads(path.read_text())
    data["schema_version"] = RESULT_SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))


def _missing_meta(root: Path) -> None:
    (results(root) / "axf" / "1" / "meta.json").unlink()


def _meta_with_todo(root: Path) -> None:
    path = results(root) / "axf" / "1" / "meta.json"
    data = json.loads(path.read_text())
    data["compute"] = "TODO: hardware and time"
    path.write_text(json.dumps(data))


def _meta_wrong_name(root: Path) -> None:
    path = results(root) / "axf" / "1" / "meta.json"
    path.write_text(path.read_text().replace('"version": "1"', '"version": "2"'))


def _meta_contradicts_records(root: Path) -> None:
    path = results(root) / "axf" / "1" / "meta.json"
    path.write_text(path.read_text().replace('"uses_text": true', '"uses_text": false'))


def _meta_without_links(root: Path) -> None:
    path = results(root) / "axf" / "1" / "meta.json"
    data = json.loads(path.read_text())
    data.update(paper=None, code=None)
    path.write_text(json.dumps(data))


INVALID: dict[str, tuple[Callable[[Path], None], str, str, str]] = {
    # case: (mutation, rule, file named in the message, message fragment)
    "wrong category in path": (_wrong_category, "names-match", "screw.json", "path says category 'screw' but the record says 'bottle'"),
    "wrong synthesizer folder": (_wrong_synthesizer_folder, "names-match", "axf/1/", "synthesizer 'axf' but the record says 'perlin'"),
    "unknown protocol": (_unknown_protocol, "protocol-known", "mystery--v1", "unknown protocol 'mystery/v1'"),
    "changed protocol settings": (_changed_protocol, "protocol-config", "cable.json", "differs from the registered"),
    "caption hash mismatch": (_hash_mismatch, "captions-hash", "cable.json", "the run used other captions"),
    "demo data flag": (_demo_flag, "real-data", "cable.json", "demo data"),
    "demo dataset": (_demo_dataset, "real-data", "demo/cable.json", "not a real dataset"),
    "demo-only protocol": (_demo_protocol, "real-data", "mvtec-caption-smoke--v1", "demo_only"),
    "comparable without computing": (_claims_comparable_without_computing, "comparable-claims", "cable.json",
                                     "claims comparable=true but was not computed"),
    "comparable with a substitute": (_claims_comparable_with_a_substitute, "comparable-claims", "cable.json",
                                     "standard metric 'is' is missing"),
    "comparable without weights": (_metric_comparable_without_weights, "comparable-claims", "cable.json",
                                   "reference weights vgg16-imagenet are not listed"),
    "comparable with unpinned weights": (_comparable_with_unpinned_weights, "comparable-claims", "cable.json",
                                         "inception-v3-2015-12-05 has sha256 " + "1" * 64 + ", not the pinned"),
    "comparable with a short hash": (_comparable_with_a_prefix_only, "comparable-claims", "cable.json",
                                     "has sha256 6726825d, not the pinned"),
    "comparable with unverified weights": (_comparable_unverified_id, "comparable-claims", "cable.json",
                                           "not a standard metric computed on verified weights"),
    "NaN token": (_nan_token, "valid-json", "cable.json", "non-standard JSON token NaN"),
    "Infinity token": (_infinity_token, "valid-json", "cable.json", "non-standard JSON token Infinity"),
    "overflowing number": (_overflowing_number, "valid-json", "cable.json", "detectors.0.overall.pixel_ap=inf"),
    "score above 1": (_score_above_one, "scores-in-range", "cable.json",
                      "detector unet overall.pixel_ap = 7.5 is outside [0, 1]"),
    "negative score": (_negative_score, "scores-in-range", "cable.json",
                       "detector unet per_defect.broken.image_auroc = -0.2 is outside [0, 1]"),
    "IS below 1": (_is_below_one, "scores-in-range", "cable.json", "metric is value = 0.5 is outside [1, 1008]"),
    "negative IC-LPIPS": (_negative_ic_lpips, "scores-in-range", "cable.json",
                          "metric ic-lpips-ad per_defect.broken = -0.1 is outside [0, inf]"),
    "unknown metric": (_unknown_metric, "scores-in-range", "cable.json", "'fid' is not a registered metric"),
    "unknown detector": (_unknown_detector, "detectors-known", "cable.json",
                         "detector 'unet\\n' is not a detector of protocol mvtec-caption-cpu/v1"),
    "category with a newline": (_category_with_newline, "safe-names", "bottle\n.json", "unsafe path component(s)"),
    "duplicate content": (_duplicate_content, "no-duplicates", "cable.json", "the same content as leaderboard/results/axf/1"),
    "symlinked file": (_symlinked_file, "no-symlinks", "cable.json", "is a symbolic link"),
    "symlinked folder outside": (_symlinked_folder_outside, "no-symlinks", "results/evil", "is a symbolic link"),
    "oversized file": (_oversized, "max-size", "cable.json", f"over the limit of {MAX_FILE_BYTES}"),
    "text file": (_not_json_extension, "json-only", "notes.txt", "is not a JSON file"),
    "image file": (_image, "json-only", "bottle.grid.png", "is not a JSON file"),
    "broken JSON": (_broken_json, "valid-json", "cable.json", "is not valid JSON"),
    "JSON array": (_json_array, "valid-json", "cable.json", "expected an object"),
    "non-UTF-8 result": (_latin1_result, "valid-json", "cable.json", "is not UTF-8 text (invalid continuation byte"),
    "broken meta.json": (_broken_meta, "valid-json", "axf/1/meta.json", "is not valid JSON"),
    "empty meta.json": (_empty_meta, "valid-json", "axf/1/meta.json", "is not valid JSON"),
    "hidden file": (_hidden_file, "safe-names", ".cable.json", "unsafe path component(s) ['.cable']"),
    "misplaced JSON": (_misplaced_json, "layout", "summary.json", "is not where the layout puts a file"),
    "schema violation": (_schema_violation, "schema", "bottle.json", "repetitions: Field required"),
    "summary edited by hand": (_summary_edited, "repetitions", "v2/mvtec_ad/cable.json", "recomputed"),
    "seeds off the seed rule": (_seeds_off_rule, "repetitions", "v2/mvtec_ad/cable.json", "the seed rule gives"),
    "comparable with too few repetitions": (_too_few_repetitions, "repetitions", "v2/mvtec_ad/cable.json",
                                            "of the 3 repetitions"),
    "newer schema": (_newer_schema, "schema", "bottle.json", "newer than this code understands"),
    "missing meta": (_missing_meta, "meta-present", "bottle.json", "has no axf/1/meta.json"),
    "meta with TODO": (_meta_with_todo, "meta-complete", "axf/1/meta.json", "fields still marked TODO: compute"),
    "meta in the wrong folder": (_meta_wrong_name, "meta-names", "axf/1/meta.json", "version '2' differs from the folder '1'"),
    "meta contradicts records": (_meta_contradicts_records, "meta-consistent", "bottle.json",
                                 "meta.json has uses_text=False but the record says True"),
    "meta without paper or code": (_meta_without_links, "schema", "axf/1/meta.json", "give a paper or a code link"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_each_invalid_submission_is_rejected_naming_file_and_rule(board: Path, case: str, capsys) -> None:
    mutate, rule_id, file_part, message_part = INVALID[case]
    assert validate_tree(board).ok
    mutate(board)
    found = [p for p in validate_tree(board).errors if p.rule == rule_id]
    assert found, f"{case}: no [{rule_id}] error in {errors(board)}"
    assert any(file_part in p.path and message_part in p.message for p in found), [str(p) for p in found]
    line = str(found[0])
    assert line.startswith("ERROR leaderboard/results/") and f"[{rule_id}]" in line
    assert main(["validate", "--root", str(board)]) == 1
    assert f"[{rule_id}]" in capsys.readouterr().err


def test_every_rule_is_exercised_and_documented() -> None:
    exercised = {rule_id for _, rule_id, _, _ in INVALID.values()}
    assert {r.id for r in RULES} - exercised == {"schema-current"}  # a note, tested below
    for r in RULES:
        assert f"`{r.id}`" in rules_markdown() and r.summary


def test_symlinked_folders_are_not_entered(board: Path) -> None:
    _symlinked_folder_outside(board)
    report = validate_tree(board)
    assert [p.rule for p in report.errors] == ["no-symlinks"]  # the meta.json outside was never read


def test_caption_hashes_are_skipped_without_a_manifest_and_checked_against_one(board: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "annotations" / "manifest.json"
    manifest.unlink()
    _hash_mismatch(board)
    report = validate_tree(board)
    assert report.ok and any(p.rule == "captions-hash" and p.level == "note" for p in report.problems)
    write_manifest(manifest, {"mvtec_ad": "f" * 64})
    messages = errors(board)
    assert any("[captions-hash]" in m and "bottle.json" in m for m in messages)  # the others now mismatch
    write_manifest(manifest, {"mvtec_loco": "0" * 64})
    assert any("has no captions_sha256 for dataset 'mvtec_ad'" in m for m in errors(board))


def test_a_reference_row_needs_no_fidelity_to_be_comparable(board: Path) -> None:
    record = load_result(results(board) / "no-synthesis/0/mvtec-caption-cpu--v1/mvtec_ad/bottle.json")
    assert record.comparable and record.fidelity == [] and record.synthesizer is None


# ---- older schema versions -------------------------------------------------------------------------

def test_a_v1_result_validates_after_upgrade_and_fix_rewrites_it_as_v2(board: Path, capsys) -> None:
    path = results(board) / "axf/1/mvtec-caption-cpu--v1/mvtec_ad/cable.json"
    path.write_text(json.dumps(v1_dict(make_record("axf", "1", "cable")), indent=2))
    report = validate_tree(board)
    assert report.ok, report.errors
    notes = [p for p in report.problems if p.rule == "schema-current"]
    assert len(notes) == 1 and notes[0].level == "note" and "stored as schema v1" in notes[0].message
    upgraded = next(record for entry, record in report.records() if entry.path == path)
    assert not upgraded.comparable  # v1 recorded no per-metric weights, so it never claims comparability

    assert main(["validate", "--root", str(board), "--fix"]) == 0
    assert "FIXED leaderboard/results/axf/1/mvtec-caption-cpu--v1/mvtec_ad/cable.json" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["schema_version"] == RESULT_SCHEMA_VERSION and isinstance(data["repetitions"][0]["fidelity"], list)
    assert "upgraded from result schema v1" in data["comparable_notes"]
    assert not [p for p in validate_tree(board).problems if p.rule == "schema-current"]
    assert fix_tree(board) == []  # nothing left to fix


def test_result_key_round_trips_the_record_path() -> None:
    record = make_record("axf", "1", "cable", "mvtec_ad", "mvtec-caption/v1")
    key = ResultKey.of(record)
    assert key.relative().as_posix() == record.relative_path().as_posix()
    assert ResultKey.from_relative(key.relative()) == key


def test_filled_meta_helper_leaves_no_placeholder(board: Path) -> None:
    assert fill_meta(board) and not any(p.rule == "meta-complete" for p in validate_tree(board).problems)
