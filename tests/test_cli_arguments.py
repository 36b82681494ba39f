"""Arguments of the CLIs (issue 9, "silently wrong input", "tracebacks", "unclear messages").

Impossible counts and seeds, empty captions, masks that are no image, unknown categories, bad
caption sources and damaged checkpoint files: each is refused before any work, with one
``error:`` line (exit 2) that names the value or the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from synthesis.checkpoint import CheckpointError, load_checkpoint
from synthesis.generated_set import MAX_PER_DEFECT, generate_set
from synthesis.plan import Planner

DEMO = ["--subset", "demo", "--category", "disc", "--image-size", "64"]
BENCH = ["run", "--synth", "croppaste", "--dataset", "demo", "--detectors", "padim-effnetlite0", "--no-progress"]
LOADED = "few-shot anomalies for fitting"  # printed once a category's data is loaded


def _last_line(err: str) -> str:
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def _synthesis(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from synthesis.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's argument errors
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


def _benchmark(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from benchmark.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--n", "-1", "between 1 and 10,000"),  # finding: succeeded with 0 samples
    ("--n", "0", "between 1 and 10,000"),
    ("--n", "1000000000000", "between 1 and 10,000"),  # finding: memory error after minutes
    ("--n", "many", "'many' is not a whole number"),
    ("--seed", "-5", "between 0 and 4,294,967,295"),  # finding: rejected only after fitting
    ("--caption", "", "is empty"),  # finding: recorded an empty caption but used the training captions
    ("--caption", "   ", "is empty"),
    ("--image-size", "0", "between 16 and 2,048"),
])
def test_generate_refuses_impossible_arguments_before_any_work(option: str, value: str, expected: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    code, err = _synthesis(["generate", *DEMO, "--synth", "croppaste", option, value, "--out", tmp_path / "o"], capsys)
    assert code == 2
    assert f"argument {option}: " in _last_line(err) and expected in _last_line(err)
    assert not (tmp_path / "o").exists()


def test_the_library_refuses_them_too(demo_root: Path) -> None:
    from synth_helpers import create_fast, demo_split

    split = demo_split()
    synthesizer = create_fast("croppaste")
    synthesizer.fit(split.train, progress=False)
    for n in (0, -1, MAX_PER_DEFECT + 1):
        with pytest.raises(ValueError, match="between 1 and 10,000"):
            generate_set(synthesizer, split.train, Path("unused"), n_per_defect=n, seed=0, progress=False)
    with pytest.raises(ValueError, match="non-negative"):
        generate_set(synthesizer, split.train, Path("unused"), n_per_defect=1, seed=-5, progress=False)
    with pytest.raises(ValueError, match="caption is empty"):
        generate_set(synthesizer, split.train, Path("unused"), n_per_defect=1, seed=0, caption=" ", progress=False)
    with pytest.raises(ValueError, match="caption is empty"):
        Planner(split.train, caption="")
    spec = Planner(split.train, caption="A blue dot.").plan("crack", 1, 0)[0]
    assert (spec.caption, spec.caption_origin) == ("A blue dot.", "user")


def test_a_mask_that_is_no_image_is_named_before_the_fit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Finding: ``--mask`` that is not an image gave a traceback."""
    notes = tmp_path / "mask.png"
    notes.write_text("these are my notes, not a PNG")
    code, err = _synthesis(["generate", *DEMO, "--synth", "croppaste", "--mask", notes, "--out", tmp_path / "o"], capsys)
    assert code == 2 and f"error: --mask {notes} is not a readable image" in _last_line(err)
    assert LOADED not in err
    code, err = _synthesis(["generate", *DEMO, "--synth", "croppaste", "--mask", tmp_path / "gone.png",
                            "--out", tmp_path / "o"], capsys)
    assert code == 2 and f"--mask {tmp_path / 'gone.png'}: no such file" in _last_line(err)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "empty.png")
    code, err = _synthesis(["generate", *DEMO, "--synth", "croppaste", "--mask", tmp_path / "empty.png",
                            "--out", tmp_path / "o"], capsys)
    assert code == 2 and "the mask is empty" in _last_line(err)
    assert not (tmp_path / "o").exists()


def test_generate_out_below_a_regular_file_fails_before_the_fit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "plain").write_text("x")
    code, err = _synthesis(["generate", *DEMO, "--synth", "croppaste", "--out", tmp_path / "plain" / "o"], capsys)
    assert code == 2 and "plain is a file, not a folder" in _last_line(err) and LOADED not in err


@pytest.fixture
def checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    folder = tmp_path / "ckpt"
    assert _synthesis(["fit", *DEMO, "--synth", "croppaste", "--out", folder], capsys)[0] == 0
    return folder


def test_a_corrupt_checkpoint_json_is_named(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Finding: corrupt checkpoint JSON gave an unclear message (the JSON parser's, no file)."""
    info = checkpoint / "synthesizer.json"
    for damage, expected in (('{"contract_version": 1, "meta"', "is not a valid checkpoint JSON file"),
                             ("\xff\xfe garbage", "is not a valid checkpoint JSON file"),
                             ('{"contract_version": 1}', "is not a valid synthesizer checkpoint file")):
        info.write_text(damage, encoding="latin-1")
        code, err = _synthesis(["generate", *DEMO, "--synth", "croppaste", "--checkpoint", checkpoint,
                                "--out", tmp_path / "o"], capsys)
        assert code == 2 and f"error: {info} {expected}" in _last_line(err)
        assert LOADED not in err  # the checkpoint is read before the data


def test_random_bytes_as_npz_are_named_as_no_checkpoint_array_file(checkpoint: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """Finding: random bytes as a ``.npz`` said "contains pickled data"."""
    state = checkpoint / "state" / "crops.npz"
    state.write_bytes(os.urandom(4096))
    code, err = _synthesis(["generate", *DEMO, "--synth", "croppaste", "--checkpoint", checkpoint,
                            "--out", tmp_path / "o"], capsys)
    line = _last_line(err)
    assert code == 2 and f"error: {state} is not a valid checkpoint array file (not a NumPy .npz archive)" == line
    assert "pickled" not in err and LOADED not in err
    np.savez(state, something_else=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"crops.npz lacks the array\(s\) keys, rings"):
        load_checkpoint(checkpoint)
    state.unlink()
    with pytest.raises(CheckpointError, match="crops.npz: missing from the checkpoint"):
        load_checkpoint(checkpoint)


def test_perlin_state_is_read_the_same_way(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "perlin"
    assert _synthesis(["fit", *DEMO, "--synth", "perlin", "--config", "texture_pool=8", "--out", folder], capsys)[0] == 0
    (folder / "state" / "textures.npz").write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(CheckpointError, match=r"textures.npz is not a valid checkpoint array file"):
        load_checkpoint(folder)


def test_benchmark_refuses_unknown_categories_and_impossible_arguments(tmp_path: Path, demo_root: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """Findings: ``--categories nosuchcat`` gave a traceback; ``--seed -5`` was accepted."""
    code, err = _benchmark([*BENCH, "--categories", "nosuchcat", "--out", tmp_path / "o"], capsys)
    assert code == 2 and _last_line(err) == "error: unknown category 'nosuchcat' for demo; known: disc, weave"
    for option, value in (("--seed", "-5"), ("--threads", "0")):
        code, err = _benchmark([*BENCH, option, value, "--out", tmp_path / "o"], capsys)
        assert code == 2 and f"argument {option}: " in _last_line(err)
    code, err = _benchmark([*BENCH[:-1], "--dataset", "mvtec_ad", "--data-root", tmp_path / "nowhere",
                            "--out", tmp_path / "o"], capsys)
    assert code == 2 and f"--data-root {tmp_path / 'nowhere'}: no such folder" in _last_line(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("source", ["missing.json", "truncated.json", "wrong-shape.json"])
def test_a_bad_caption_source_is_one_line(source: str, tmp_path: Path, demo_root: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    """Finding: a bad ``--caption-source`` gave a traceback in ``benchmark``."""
    (tmp_path / "truncated.json").write_text('{"demo": {"disc": ')
    (tmp_path / "wrong-shape.json").write_text(json.dumps({"demo": ["not", "a", "mapping"]}))
    path = tmp_path / source
    code, err = _benchmark([*BENCH, "--categories", "disc", "--caption-source", path, "--out", tmp_path / "o"], capsys)
    assert code == 2 and _last_line(err).startswith("error: ") and str(path) in _last_line(err)
    code, err = _synthesis(["fit", *DEMO, "--synth", "croppaste", "--caption-source", path, "--out", tmp_path / "c"], capsys)
    assert code == 2 and _last_line(err).startswith("error: ") and str(path) in _last_line(err)
