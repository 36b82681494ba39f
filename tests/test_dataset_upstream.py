"""The upstream-format parser reads the caption literals and never runs the script."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from data_helpers import MINI_CAPTIONS, MINI_UPSTREAM, SENTINEL

from mvtec_caption.upstream import UpstreamFormatError, count_captions, parse_upstream_file, parse_upstream_source


def test_parses_literals_without_executing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "Construct_MVTEC-AD-Caption.py"
    script.write_text(MINI_UPSTREAM, encoding="utf-8")

    captions = parse_upstream_file(script)

    assert captions == MINI_CAPTIONS
    assert count_captions(captions) == 4
    assert not (tmp_path / SENTINEL).exists(), "the file-writing code of the script ran"
    assert os.listdir(tmp_path) == [script.name]


def test_caption_order_is_kept() -> None:
    """Caption i belongs to image i: the list order must survive parsing."""
    captions = parse_upstream_source(MINI_UPSTREAM)
    assert captions["widget"]["scratch"][1] == "There is a red stain on the widget."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("widget = {'a': ['x.']}\ncategories = {", "not valid Python"),
        ("widget = {'a': ['x.']}\n", "no `categories"),
        ("widget = {'a': ['x.']}\ncategories = dict(widget=widget)\n", "must be a dict literal"),
        ("categories = {'widget': widget}\n", "undefined variable `widget`"),
        ("widget = {'a': [make()]}\ncategories = {'widget': widget}\n", "not a literal dict"),
        ("widget = {'a': 'x.'}\ncategories = {'widget': widget}\n", "lists of strings"),
        ("widget = {'a': [1, 2]}\ncategories = {'widget': widget}\n", "lists of strings"),
        ("widget = {'a': ['x.']}\ncategories = {'widget': 'widget'}\n", "\"name\": variable"),
        ("categories = {}\n", "`categories` is empty"),
    ],
)
def test_malformed_files_are_rejected(text: str, message: str) -> None:
    with pytest.raises(UpstreamFormatError, match="bad.py") as error:
        parse_upstream_source(text, where="bad.py")
    assert message in str(error.value)


def test_non_utf8_file_is_a_format_error(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_bytes(b"widget = {'a': ['\xff\xfe']}\n")
    with pytest.raises(UpstreamFormatError, match="not UTF-8"):
        parse_upstream_file(script)
