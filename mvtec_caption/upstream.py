"""Read the upstream MVTec Caption scripts without executing them.

Upstream ships the captions as Python scripts (``tools/Construct_MVTEC-*-Caption.py``) whose
module body assigns one dict literal per category and then a ``categories`` dict mapping
category names to those variables, followed by code that writes files. Running them would
touch the file system, so we parse the module with :mod:`ast` and evaluate only literals.
"""

from __future__ import annotations

import ast
from pathlib import Path

Captions = dict[str, dict[str, list[str]]]  # category -> defect type -> captions

#: The pinned upstream: repository, commit and the per-dataset files with their sha256.
UPSTREAM_REPOSITORY = "hujiecpp/MVTec-Caption"
UPSTREAM_COMMIT = "2350d89c028fc34e92bb5779f7244c3dbe202b5e"
UPSTREAM_FILES: dict[str, tuple[str, str, int]] = {
    # dataset: (path in the repository, sha256, number of captions)
    "mvtec_ad": (
        "tools/Construct_MVTEC-AD-Caption.py",
        "e3993006908461d7d42c06a8c206772b0a13421e34f328ae29bd9508e58ef2de",
        1258,
    ),
    "mvtec_loco": (
        "tools/Construct_MVTEC-LOCO-Caption.py",
        "f05813823cc5b215b1c5de3e994cf4ec49cf7d2a5f9f67853b5c16f86a6cf376",
        993,
    ),
}
#: sha256 of the *parsed* captions per dataset (``sources.captions_sha256``), computed once from
#: the pinned upstream files above. A JSON copy with these hashes holds exactly the upstream
#: captions, so it can be attributed to the pinned files without having them.
UPSTREAM_CAPTIONS_SHA256: dict[str, str] = {
    "mvtec_ad": "665a43fc8d835de5c0ffa905550b1a7ba4945b6e094ba51db4c2ffcf24f9583b",
    "mvtec_loco": "5d1a009cf7215ef02ebb8359e5b50f7ada4f2e8bb30f1478e14b26245c525aa8",
}
RAW_URL_TEMPLATE = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"
TREE_URL_TEMPLATE = "https://github.com/{repository}/tree/{commit}/tools"


class UpstreamFormatError(ValueError):
    """The file does not follow the upstream caption-script layout."""


def _literal_captions(node: ast.AST, name: str, where: str) -> dict[str, list[str]]:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError) as err:
        raise UpstreamFormatError(f"{where}: `{name}` is not a literal dict of caption lists ({err})") from err
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(c, str) for c in v) for k, v in value.items()
    ):
        raise UpstreamFormatError(f"{where}: `{name}` must map defect types to lists of strings")
    return value


def parse_upstream_source(text: str, where: str = "<upstream>") -> Captions:
    """Return ``{category: {defect_type: [caption, ...]}}`` from the script's text."""
    try:
        module = ast.parse(text, filename=where)
    except SyntaxError as err:
        raise UpstreamFormatError(f"{where}: not valid Python ({err.msg}, line {err.lineno})") from err

    variables: dict[str, ast.AST] = {}
    mapping: ast.Dict | None = None
    for statement in module.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
            continue
        target = statement.targets[0]
        if not isinstance(target, ast.Name):
            continue
        if target.id == "categories":
            if not isinstance(statement.value, ast.Dict):
                raise UpstreamFormatError(f"{where}: `categories` must be a dict literal")
            mapping = statement.value
            break  # everything after `categories` is the file-writing code
        if isinstance(statement.value, ast.Dict):
            variables[target.id] = statement.value

    if mapping is None:
        raise UpstreamFormatError(f"{where}: no `categories = {{...}}` mapping found")

    captions: Captions = {}
    for key, value in zip(mapping.keys, mapping.values):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(value, ast.Name)):
            raise UpstreamFormatError(f"{where}: `categories` entries must be \"name\": variable")
        if value.id not in variables:
            raise UpstreamFormatError(f"{where}: category {key.value!r} names undefined variable `{value.id}`")
        captions[key.value] = _literal_captions(variables[value.id], value.id, where)
    if not captions:
        raise UpstreamFormatError(f"{where}: `categories` is empty")
    return captions


def parse_upstream_file(path: Path) -> Captions:
    return parse_upstream_source(decode_source(Path(path).read_bytes(), str(path)), where=str(path))


def decode_source(data: bytes, where: str) -> str:
    """UTF-8 text of a script, or a format error naming the file (never a UnicodeDecodeError)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UpstreamFormatError(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})") from err


def count_captions(captions: Captions) -> int:
    return sum(len(items) for defects in captions.values() for items in defects.values())
