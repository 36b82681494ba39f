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
RAW_URL_TEMPLATE = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"


class UpstreamFormatError(ValueError):
    """The file does not follow the upstream caption-script layout."""


def _literal_captions(node: ast.AST, name: str, where: str) -> dict[str, list[str]]:
    try:
        value = ast.literal_eval(node)
    except ValueError as err:
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
    return parse_upstream_source(Path(path).read_text(encoding="utf-8"), where=str(path))


def count_captions(captions: Captions) -> int:
    return sum(len(items) for defects in captions.values() for items in defects.values())
