"""The repository's own leaderboard/ folder: it validates and its rendered files are current.

This is the check CI runs on every change: a submission that breaks a rule, or results committed
without re-rendering README.md / index.html / plots, fail here with the rule or the stale file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from leaderboard.layout import DEFAULT_ROOT, README
from leaderboard.render import render_outputs, stale_outputs
from leaderboard.validate import validate_tree

REPO = Path(__file__).resolve().parents[1]


def test_the_package_folder_is_the_repository_leaderboard() -> None:
    assert DEFAULT_ROOT == REPO / "leaderboard"
    assert (DEFAULT_ROOT / "results").is_dir()


def test_the_repository_leaderboard_validates() -> None:
    report = validate_tree(DEFAULT_ROOT)
    assert report.ok, "leaderboard/ does not validate:\n" + "\n".join(map(str, report.errors))


def test_the_rendered_files_are_current() -> None:
    outputs = render_outputs(validate_tree(DEFAULT_ROOT))
    stale = stale_outputs(DEFAULT_ROOT, outputs)
    assert not stale, f"stale: {stale}; run `python -m leaderboard render` and commit the result"
    assert (DEFAULT_ROOT / README).read_bytes() == outputs[README]


def test_the_cli_ci_runs_passes() -> None:
    """Exactly what .ci/run can call: validate, then render --check."""
    for command in (["validate"], ["render", "--check"]):
        done = subprocess.run([sys.executable, "-m", "leaderboard", *command], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"python -m leaderboard {' '.join(command)}:\n{done.stdout}\n{done.stderr}"
