"""The contribution files: CITATION.cff is valid Citation File Format 1.2.0, LICENSE is the licence pyproject
names, CONTRIBUTING.md describes the leaderboard workflow with commands that exist."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# Citation File Format 1.2.0 (https://citation-file-format.github.io/1.2.0/schema.json): the keys and
# values this check needs, transcribed from the schema.
CFF_REQUIRED = {"cff-version", "message", "title", "authors"}
CFF_KEYS = CFF_REQUIRED | {"abstract", "commit", "contact", "date-released", "doi", "identifiers", "keywords",
                           "license", "license-url", "preferred-citation", "references", "repository",
                           "repository-artifact", "repository-code", "type", "url", "version"}
CFF_PERSON = {"address", "affiliation", "alias", "city", "country", "email", "family-names", "fax", "given-names",
              "name-particle", "name-suffix", "orcid", "post-code", "region", "tel", "website"}
CFF_ENTITY = {"address", "alias", "city", "country", "date-end", "date-start", "email", "fax", "location", "name",
              "orcid", "post-code", "region", "tel", "website"}
CFF_REFERENCE_REQUIRED = {"authors", "title", "type"}
CFF_REFERENCE_KEYS = CFF_REFERENCE_REQUIRED | {
    "abbreviation", "abstract", "collection-doi", "collection-title", "collection-type", "commit", "conference",
    "contact", "copyright", "data-type", "database", "database-provider", "date-accessed", "date-downloaded",
    "date-published", "date-released", "department", "doi", "edition", "editors", "editors-series", "end", "entry",
    "filename", "format", "identifiers", "institution", "isbn", "issn", "issue", "issue-date", "issue-title", "journal",
    "keywords", "languages", "license", "license-url", "loc-end", "loc-start", "location", "medium", "month",
    "nihmsid", "notes", "number", "number-volumes", "pages", "patent-states", "pmcid", "publisher", "recipients",
    "repository", "repository-artifact", "repository-code", "scope", "section", "senders", "start", "status", "term",
    "thesis-type", "translators", "url", "version", "volume", "volume-title", "year", "year-original"}
CFF_REFERENCE_TYPES = {
    "art", "article", "audiovisual", "bill", "blog", "book", "catalogue", "conference-paper", "conference", "data",
    "database", "dictionary", "edited-work", "encyclopedia", "film-broadcast", "generic", "government-document",
    "grant", "hearing", "historical-work", "legal-case", "legal-rule", "magazine-article", "manual", "map",
    "multimedia", "music", "newspaper-article", "pamphlet", "patent", "personal-communication", "proceedings",
    "report", "serial", "slides", "software-code", "software-container", "software-executable",
    "software-virtual-machine", "software", "sound-recording", "standard", "statute", "thesis", "unpublished",
    "video", "website"}
CFF_IDENTIFIER_TYPES = {"doi", "url", "swh", "other"}


def _authors(authors: object, where: str) -> list[str]:
    problems = []
    if not isinstance(authors, list) or not authors:
        return [f"{where}: authors must be a non-empty list"]
    for i, author in enumerate(authors):
        if not isinstance(author, dict):
            problems.append(f"{where}.authors[{i}] is not a mapping")
        elif "name" in author:
            problems += [f"{where}.authors[{i}]: unknown entity key {k!r}" for k in set(author) - CFF_ENTITY]
        else:
            problems += [f"{where}.authors[{i}]: unknown person key {k!r}" for k in set(author) - CFF_PERSON]
            if not (author.get("family-names") or author.get("given-names")):
                problems.append(f"{where}.authors[{i}]: a person needs family-names or given-names")
    return problems


def cff_problems(data: dict) -> list[str]:
    problems = [f"missing required key {k!r}" for k in sorted(CFF_REQUIRED - set(data))]
    problems += [f"unknown key {k!r}" for k in sorted(set(data) - CFF_KEYS)]
    if data.get("cff-version") != "1.2.0":
        problems.append(f"cff-version must be '1.2.0', is {data.get('cff-version')!r}")
    if data.get("type", "software") not in ("software", "dataset"):
        problems.append(f"type must be software or dataset, is {data.get('type')!r}")
    if isinstance(data.get("date-released"), dt.date):
        problems.append("date-released must be a quoted string")
    problems += _authors(data.get("authors"), "authors")
    for i, reference in enumerate(data.get("references", [])):
        where = f"references[{i}]"
        problems += [f"{where}: missing required key {k!r}" for k in sorted(CFF_REFERENCE_REQUIRED - set(reference))]
        problems += [f"{where}: unknown key {k!r}" for k in sorted(set(reference) - CFF_REFERENCE_KEYS)]
        if reference.get("type") not in CFF_REFERENCE_TYPES:
            problems.append(f"{where}: type {reference.get('type')!r} is not a CFF reference type")
        problems += _authors(reference.get("authors"), where)
        for identifier in reference.get("identifiers", []):
            if identifier.get("type") not in CFF_IDENTIFIER_TYPES or not identifier.get("value"):
                problems.append(f"{where}: identifier {identifier} needs a type in {sorted(CFF_IDENTIFIER_TYPES)} and a value")
        if not isinstance(reference.get("year", 0), int):
            problems.append(f"{where}: year must be an integer")
    return problems


def test_citation_cff_is_valid_and_cites_axf_mvtec_caption_and_the_datasets() -> None:
    data = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff_problems(data) == []
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert data["version"] == pyproject["version"] and data["license"] == "Apache-2.0"
    titles = " | ".join(reference["title"] for reference in data["references"])
    for expected in ("AnomalyXFusion", "MVTec Caption", "MVTec AD", "Logical Constraints"):
        assert expected in titles
    assert cff_problems({**data, "colour": "blue"}) == ["unknown key 'colour'"]  # the check does catch mistakes
    assert cff_problems({**data, "references": [{"type": "paper", "title": "x", "authors": [{"nme": "y"}]}]})


def test_license_is_the_apache_2_text_pyproject_names() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text and len(re.findall(r"^\s+\d\. ", text, re.M)) >= 9
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]["text"].startswith("Apache-2.0")


def test_contributing_describes_the_leaderboard_workflow() -> None:
    text = (REPO / "CONTRIBUTING.md").read_text()
    for step in ("python -m benchmark run", "python -m leaderboard submit", "meta.json", "python -m leaderboard validate",
                 "python -m leaderboard render", "pull request", ".ci/run", "CC BY-NC-SA 4.0"):
        assert step in text, step
    from leaderboard.cli import main

    for command in ("submit", "validate", "render"):  # the commands it names exist
        try:
            main([command, "--help"])
        except SystemExit as done:
            assert done.code == 0
