"""Output folders (issue 9, "data lost / data modified"): every command of the four packages writes
only into a new, empty or own folder, never in or around a data root in effect (arguments and
environment), refuses before any long work, and never deletes what it did not write.

Each test reproduces a finding with crafted input and checks the refusal (exit 2, one ``error:``
line naming the path) and that the user's files are byte-for-byte unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import make_tree, run_cli, tree_fingerprint, write_captions

from mvtec_caption.output_folder import (
    MARKER,
    OutputFolderError,
    OutputKind,
    check_output_file,
    check_output_folder,
    claim_output_folder,
    data_roots,
)

CAPTIONS = {"widget": {"scratch": ["A red scratch.", "Two screws are missing."], "dent": ["The widget is dented."]}}
DEMO = ["--subset", "demo", "--category", "disc", "--image-size", "64"]
KIND = OutputKind("tool", "thing", layout=("made.txt", "logs"), requires=("made.txt",))
DATA_ENV = ("MVTEC_AD_ROOT", "MVTEC_LOCO_ROOT", "MVTEC_CAPTION_SOURCE")


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without the user's data variables; tests set the ones they need."""
    for name in DATA_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A user's dataset copy (tiny MVTec AD tree) with its captions file inside it."""
    root = make_tree(tmp_path / "mvtec_ad", CAPTIONS)
    write_captions(root / "captions.json", "mvtec_ad", CAPTIONS)
    return root


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err and lines, err
    assert lines[-1].startswith("error: "), err
    return lines[-1]


# ---------------------------------------------------------------------------------- the rule itself


def test_new_empty_and_own_folders_are_accepted_others_refused(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path / "new", KIND, []) == (tmp_path / "new").resolve()
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", KIND, [])
    own = claim_output_folder(tmp_path / "own", KIND, [])
    assert json.loads((own / MARKER).read_text())["kind"] == "thing"
    (own / "anything.bin").write_bytes(b"x")
    check_output_folder(own, KIND, [])  # marked: ours, whatever else is in it
    legacy = tmp_path / "legacy"
    (legacy / "logs").mkdir(parents=True)
    (legacy / "made.txt").write_text("written before markers existed")
    check_output_folder(legacy, KIND, [])  # exactly the tool's layout: adopted
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputFolderError, match="is not empty and is not an output of"):
        check_output_folder(foreign, KIND, [])
    with pytest.raises(OutputFolderError, match="already exists and is not empty"):
        check_output_folder(own, KIND, [], reuse=False)
    other = claim_output_folder(tmp_path / "other", OutputKind("tool", "else"), [])
    with pytest.raises(OutputFolderError, match="holds an output of `python -m tool else`"):
        check_output_folder(other, KIND, [])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MARKER).write_text("{not json")
    with pytest.raises(OutputFolderError, match="unreadable output marker"):
        check_output_folder(tmp_path / "broken", KIND, [])


def test_paths_in_or_around_data_and_below_files_are_refused(tmp_path: Path, data: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    roots = data_roots([("--data-root", data)])
    for inside in (data, data / "widget" / "test", data / "new" / "deeper"):
        with pytest.raises(OutputFolderError, match=r"inside the data at .*\(--data-root\)"):
            check_output_folder(inside, KIND, roots)
    with pytest.raises(OutputFolderError, match="contains the data"):
        check_output_folder(tmp_path, KIND, roots)
    link = tmp_path / "innocent-looking"
    link.symlink_to(data / "widget")
    with pytest.raises(OutputFolderError, match="inside the data"):  # symlinks are resolved
        check_output_folder(link / "out", KIND, roots)
    monkeypatch.setenv("MVTEC_LOCO_ROOT", str(tmp_path / "loco"))
    monkeypatch.setenv("MVTEC_CAPTION_SOURCE", str(tmp_path / "caps" / "captions.json"))
    roots = data_roots()
    assert {r.origin for r in roots} >= {"$MVTEC_LOCO_ROOT", "$MVTEC_CAPTION_SOURCE"}
    with pytest.raises(OutputFolderError, match=r"\$MVTEC_LOCO_ROOT"):
        check_output_folder(tmp_path / "loco" / "runs", KIND, roots)
    with pytest.raises(OutputFolderError, match=r"contains the data .*\$MVTEC_CAPTION_SOURCE"):
        check_output_folder(tmp_path / "caps", KIND, roots)
    regular = tmp_path / "notes.txt"
    regular.write_text("a file")
    with pytest.raises(OutputFolderError, match="notes.txt is a file, not a folder"):
        check_output_folder(regular / "out", KIND, [])
    with pytest.raises(OutputFolderError, match="it is a file, not a folder"):
        check_output_folder(regular, KIND, [])
    with pytest.raises(OutputFolderError, match="not overwritten"):
        check_output_file(regular, [], flag="--write-manifest", is_own=lambda p: False)


def test_the_demo_data_folder_counts_as_data(demo_root: Path) -> None:
    roots = data_roots()
    assert any(r.origin == "the demo data" for r in roots)
    with pytest.raises(OutputFolderError, match="the demo data"):
        check_output_folder(demo_root / "disc" / "out", KIND, roots)


# ---------------------------------------------------------------------------------- synthesis


def _synthesis(argv: list[str | Path], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from synthesis.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_fit_never_deletes_a_folder_it_did_not_write(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture) -> None:
    """Finding: ``fit --out X`` on a non-empty folder deleted it; pointed at the data root, the dataset copy."""
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "results.csv").write_text("precious")
    before = tree_fingerprint(keep)
    code, err = _synthesis(["fit", *DEMO, "--synth", "cutpaste", "--out", keep], capsys)
    assert code == 2 and "is not empty" in _one_line_error(err)
    assert "few-shot anomalies for fitting" not in err  # refused before the data was even loaded
    assert tree_fingerprint(keep) == before
    dataset = tree_fingerprint(data)
    code, err = _synthesis(["fit", "--subset", "mvtec_ad", "--data-root", data, "--category", "widget",
                            "--synth", "cutpaste", "--out", data], capsys)
    assert code == 2 and "inside the data" in _one_line_error(err)
    assert tree_fingerprint(data) == dataset


def test_fit_replaces_only_its_own_checkpoint_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ckpt"
    assert _synthesis(["fit", *DEMO, "--synth", "cutpaste", "--out", out], capsys)[0] == 0
    assert (out / MARKER).is_file() and (out / "synthesizer.json").is_file()
    (out / "NOTES.md").write_text("my notes about this checkpoint")
    assert _synthesis(["fit", *DEMO, "--synth", "cutpaste", "--config", "variant=scar", "--out", out], capsys)[0] == 0
    assert (out / "NOTES.md").read_text() == "my notes about this checkpoint"
    assert json.loads((out / "synthesizer.json").read_text())["config"]["variant"] == "scar"
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "NOTES.md", "state", "synthesizer.json"])


def test_fit_out_below_a_regular_file_fails_before_the_fit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Finding: ``--out`` below a regular file failed with a traceback after the whole fit."""
    (tmp_path / "report.pdf").write_bytes(b"%PDF")
    code, err = _synthesis(["fit", *DEMO, "--synth", "croppaste", "--out", tmp_path / "report.pdf" / "ckpt"], capsys)
    assert code == 2 and "report.pdf is a file, not a folder" in _one_line_error(err)
    assert "few-shot anomalies for fitting" not in err and "fitted" not in err


def test_generate_never_deletes_a_checkpoint_folder_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Finding: ``generate --out Y`` deleted anything in ``Y/checkpoint/``."""
    out = tmp_path / "Y"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "weights-I-trained-for-a-week.pt").write_bytes(b"\0" * 64)
    before = tree_fingerprint(out)
    code, err = _synthesis(["generate", *DEMO, "--synth", "cutpaste", "--n", "1", "--out", out, "--no-grid"], capsys)
    assert code == 2 and "is not empty" in _one_line_error(err)
    assert tree_fingerprint(out) == before
    # inside the command's own folder too, a foreign file in checkpoint/ is kept, never wiped
    own = tmp_path / "own"
    assert _synthesis(["generate", *DEMO, "--synth", "cutpaste", "--n", "1", "--out", own, "--no-grid"], capsys)[0] == 0
    (own / "checkpoint" / "README.txt").write_text("note")
    code, _ = _synthesis(["generate", *DEMO, "--synth", "cutpaste", "--config", "variant=scar", "--n", "1",
                          "--out", own, "--no-grid", "--overwrite"], capsys)
    assert code == 0 and (own / "checkpoint" / "README.txt").read_text() == "note"
    (own / "samples" / "crack" / "my-annotation.json").write_text("{}")
    code, _ = _synthesis(["generate", *DEMO, "--synth", "cutpaste", "--n", "1", "--out", own, "--no-grid", "--overwrite"],
                         capsys)
    assert code == 0 and (own / "samples" / "crack" / "my-annotation.json").is_file()  # --overwrite: only the set


def test_generate_into_the_dataset_from_the_environment_is_refused(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding: ``generate --out`` wrote into the dataset (root from ``$MVTEC_AD_ROOT``), e.g. into ``test/``."""
    monkeypatch.setenv("MVTEC_AD_ROOT", str(data))
    before = tree_fingerprint(data)
    for out in (data / "widget" / "test" / "generated", data / "widget"):
        code, err = _synthesis(["generate", "--subset", "mvtec_ad", "--category", "widget", "--caption-source",
                                data / "captions.json", "--synth", "cutpaste", "--out", out], capsys)
        assert code == 2 and "$MVTEC_AD_ROOT" in _one_line_error(err)
    # the demo subset is in effect too, and the environment's root is still protected
    code, err = _synthesis(["generate", *DEMO, "--synth", "cutpaste", "--out", data / "gen"], capsys)
    assert code == 2 and "inside the data" in _one_line_error(err)
    assert tree_fingerprint(data) == before


def test_grid_out_never_overwrites_a_foreign_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "gen"
    assert _synthesis(["generate", *DEMO, "--synth", "cutpaste", "--n", "1", "--out", out], capsys)[0] == 0
    photo = tmp_path / "holiday.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, err = _synthesis(["grid", "--set", out / "samples", "--out", photo], capsys)
    assert code == 2 and "not overwritten" in _one_line_error(err)
    assert photo.read_bytes() == b"\x89PNG\r\n\x1a\n not really"
    assert _synthesis(["grid", "--set", out / "samples"], capsys)[0] == 0  # its own grid.png: replaced
    assert _synthesis(["grid", "--set", out / "samples", "--out", tmp_path / "g.png"], capsys)[0] == 0
    assert _synthesis(["grid", "--set", out / "samples", "--out", tmp_path / "g.png"], capsys)[0] == 0  # tagged: ours


# ---------------------------------------------------------------------------------- mvtec_caption


def test_stats_and_manifest_never_write_into_the_dataset_from_the_environment(tmp_path: Path, data: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding: ``stats`` / ``info --write-manifest`` wrote into ``$MVTEC_AD_ROOT`` when no --data-root was given."""
    monkeypatch.setenv("MVTEC_AD_ROOT", str(data))
    monkeypatch.setenv("MVTEC_CAPTION_SOURCE", str(data / "captions.json"))
    before = tree_fingerprint(data)
    run = run_cli("stats", "--subset", "mvtec_ad", "--out", data / "stats")
    assert run.code == 2 and "$MVTEC_AD_ROOT" in _one_line_error(run.err)
    run = run_cli("info", "--subset", "mvtec_ad", "--write-manifest", data / "widget" / "manifest.json")
    assert run.code == 2 and "$MVTEC_AD_ROOT" in _one_line_error(run.err)
    run = run_cli("export", "--subset", "mvtec_ad", "--format", "parquet", "--out", data / "export", "--no-progress")
    assert run.code == 2 and "inside the data" in _one_line_error(run.err)
    assert tree_fingerprint(data) == before
    assert run_cli("stats", "--subset", "mvtec_ad", "--out", tmp_path / "stats").code == 0  # elsewhere: fine
    assert run_cli("stats", "--subset", "mvtec_ad", "--out", tmp_path / "stats").code == 0  # its own folder again
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}')
    run = run_cli("info", "--subset", "mvtec_ad", "--write-manifest", notes)
    assert run.code == 2 and "not overwritten" in run.err and notes.read_text() == '{"mine": true}'


def test_stats_and_export_schema_refuse_foreign_folders(tmp_path: Path, demo_root: Path) -> None:
    foreign = tmp_path / "paper"
    foreign.mkdir()
    (foreign / "summary.csv").write_text("my own table")
    (foreign / "draft.docx").write_bytes(b"PK")
    before = tree_fingerprint(foreign)
    run = run_cli("stats", "--subset", "demo", "--out", foreign)
    assert run.code == 2 and "is not empty" in _one_line_error(run.err)
    run = run_cli("export-schema", "--dir", foreign)
    assert run.code == 2 and "is not empty" in _one_line_error(run.err)
    assert tree_fingerprint(foreign) == before
    assert run_cli("export-schema", "--dir", tmp_path / "schemas").code == 0
    assert run_cli("export-schema", "--dir", tmp_path / "schemas").code == 0  # its own schema files again


# ---------------------------------------------------------------------------------- benchmark


def _benchmark(argv: list[str | Path], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from benchmark.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_benchmark_run_refuses_outputs_in_or_around_data(tmp_path: Path, data: Path, demo_root: Path,
                                                         capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding: ``benchmark run --out`` wrote into the user's dataset folder."""
    common = ["run", "--synth", "croppaste", "--detectors", "padim-effnetlite0", "--no-progress"]
    before = tree_fingerprint(data)
    code, err = _benchmark([*common, "--data-root", data, "--caption-source", data / "captions.json",
                            "--categories", "widget", "--out", data / "runs"], capsys)
    assert code == 2 and "(--data-root)" in _one_line_error(err)
    code, err = _benchmark([*common, "--dataset", "demo", "--out", demo_root / "runs"], capsys)
    assert code == 2 and "the demo data" in _one_line_error(err)
    monkeypatch.setenv("MVTEC_AD_ROOT", str(data))
    code, err = _benchmark([*common, "--dataset", "demo", "--out", data / "widget" / "runs"], capsys)
    assert code == 2 and "$MVTEC_AD_ROOT" in _one_line_error(err)
    code, err = _benchmark([*common, "--dataset", "demo", "--out", data.parent], capsys)
    assert code == 2 and "contains the data" in _one_line_error(err)
    (tmp_path / "file").write_text("x")
    code, err = _benchmark([*common, "--dataset", "demo", "--out", tmp_path / "file" / "runs"], capsys)
    assert code == 2 and "is a file, not a folder" in _one_line_error(err)
    monkeypatch.setenv("MVTEC_BENCH_OUT", str(data / "default-runs"))  # the default --out is checked too
    code, err = _benchmark([*common, "--dataset", "demo"], capsys)
    assert code == 2 and "inside the data" in _one_line_error(err)
    assert tree_fingerprint(data) == before


def test_benchmark_run_refuses_foreign_folders_and_adopts_old_runs(tmp_path: Path, demo_root: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    common = ["plan", "--synth", "croppaste", "--dataset", "demo", "--categories", "disc",
              "--detectors", "padim-effnetlite0"]
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / ".bashrc").write_text("alias x=y")
    code, err = _benchmark([*common, "--out", foreign], capsys)
    assert code == 2 and "is not empty" in _one_line_error(err)
    generated = tmp_path / "gen"
    claim_output_folder(generated, OutputKind("synthesis", "generate"), [])
    code, err = _benchmark([*common, "--out", generated], capsys)
    assert code == 2 and "holds an output of `python -m synthesis generate`" in _one_line_error(err)
    old_run = tmp_path / "old-run"  # a run folder from before output markers existed
    for name in ("cache", "results", "logs"):
        (old_run / name).mkdir(parents=True)
    (old_run / "logs" / "benchmark.log").write_text("2025-01-01 INFO benchmark: wrote ...\n")
    assert _benchmark([*common, "--out", old_run], capsys)[0] == 0


# ---------------------------------------------------------------------------------- leaderboard


def test_leaderboard_render_never_overwrites_a_folder_that_is_no_leaderboard(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    """Finding (output folders): ``render --root`` replaced the README.md of any folder it was pointed at."""
    from leaderboard.cli import main

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "README.md").write_text("# my project\n")
    before = tree_fingerprint(folder)
    assert main(["render", "--root", str(folder), "--no-manifest"]) == 2
    assert "not a leaderboard folder" in _one_line_error(capsys.readouterr().err)
    assert tree_fingerprint(folder) == before
    (folder / "results").mkdir()  # a (still empty) leaderboard: its own outputs may be written
    assert main(["render", "--root", str(folder), "--no-manifest"]) == 0
    assert (folder / "README.md").read_text().startswith("# MVTec Caption")
