"""Find, verify and cache the MVTec Caption captions.

Resolution order (first that applies wins):

1. an explicit ``source`` argument;
2. the ``MVTEC_CAPTION_SOURCE`` environment variable;
3. verified upstream files in the cache (``$MVTEC_CAPTION_CACHE`` or ``~/.cache/mvtec_caption``);
4. a download of the pinned upstream files (``MVTEC_CAPTION_BASE_URL`` overrides the host,
   e.g. for a mirror), verified by sha256 before anything is written to the cache.

A source is an upstream-format script, a folder holding the upstream scripts (directly or under
``tools/``), or a JSON file ``{dataset: {category: {defect_type: [caption, ...]}}}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mvtec_caption.atomic import write_bytes
from mvtec_caption.schema import CaptionSourceInfo, UpstreamFileInfo
from mvtec_caption.upstream import (
    RAW_URL_TEMPLATE,
    UPSTREAM_COMMIT,
    UPSTREAM_FILES,
    UPSTREAM_REPOSITORY,
    Captions,
    count_captions,
    decode_source,
    parse_upstream_source,
)

ENV_SOURCE = "MVTEC_CAPTION_SOURCE"
ENV_CACHE = "MVTEC_CAPTION_CACHE"
ENV_BASE_URL = "MVTEC_CAPTION_BASE_URL"
DOWNLOAD_TIMEOUT_S = 30.0


class CaptionSourceError(RuntimeError):
    """The captions could not be found, read or verified; the message says what to do."""


class ChecksumMismatchError(CaptionSourceError):
    pass


def cache_dir() -> Path:
    """The per-user cache (never the user's dataset folder)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mvtec_caption"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def captions_sha256(captions: Captions) -> str:
    """Hash of the parsed captions, independent of the file format they came from."""
    canonical = json.dumps(captions, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return sha256_bytes(canonical.encode("utf-8"))


@dataclass(frozen=True)
class CaptionSet:
    """Parsed captions of one or more datasets with the provenance that identifies them."""

    captions: dict[str, Captions]  # dataset -> category -> defect type -> captions
    info: CaptionSourceInfo

    def for_dataset(self, dataset: str) -> Captions:
        if dataset not in self.captions:
            raise CaptionSourceError(
                f"the caption source {self.info.location} has no captions for {dataset!r} "
                f"(it has: {', '.join(sorted(self.captions)) or 'none'})"
            )
        return self.captions[dataset]

    def count(self, dataset: str | None = None) -> int:
        names = [dataset] if dataset else list(self.captions)
        return sum(count_captions(self.captions[name]) for name in names)


def _fix_no_network_hint() -> str:
    return (
        f"Point {ENV_SOURCE} (or the `caption_source=` argument / `--caption-source` option) at a local "
        f"copy: the upstream scripts from https://github.com/{UPSTREAM_REPOSITORY}/tree/{UPSTREAM_COMMIT}/tools "
        "(the two .py files or a folder holding them), or a captions JSON file "
        "{dataset: {category: {defect_type: [caption, ...]}}}."
    )


def _verify(dataset: str, data: bytes, where: str) -> None:
    path, expected, _ = UPSTREAM_FILES[dataset]
    actual = sha256_bytes(data)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{where}: sha256 {actual} does not match the pinned upstream {path} at commit "
            f"{UPSTREAM_COMMIT} (expected {expected}). The file was modified or is another version; "
            "pass verify=False (--no-verify) only if you mean to use a different caption set."
        )


def _upstream_set(files: dict[str, tuple[bytes, str]], location: str, verify: bool) -> CaptionSet:
    """Build a caption set from upstream script bytes per dataset."""
    captions: dict[str, Captions] = {}
    infos: dict[str, UpstreamFileInfo] = {}
    for dataset, (data, where) in sorted(files.items()):
        if verify:
            _verify(dataset, data, where)
        parsed = parse_upstream_source(decode_source(data, where), where=where)
        captions[dataset] = parsed
        infos[dataset] = UpstreamFileInfo(
            path=UPSTREAM_FILES[dataset][0], sha256=sha256_bytes(data), captions=count_captions(parsed)
        )
    info = CaptionSourceInfo(
        kind="upstream",
        location=location,
        upstream_repository=UPSTREAM_REPOSITORY,
        upstream_commit=UPSTREAM_COMMIT,
        upstream_files=infos,
        captions_sha256={name: captions_sha256(c) for name, c in captions.items()},
    )
    return CaptionSet(captions=captions, info=info)


def _dataset_of_upstream_file(path: Path, data: bytes) -> str:
    digest = sha256_bytes(data)
    for dataset, (upstream_path, sha, _) in UPSTREAM_FILES.items():
        if digest == sha or path.name == Path(upstream_path).name:
            return dataset
    names = ", ".join(Path(p).name for p, _, _ in UPSTREAM_FILES.values())
    raise CaptionSourceError(f"{path}: not one of the upstream caption scripts ({names})")


def load_json_source(path: Path, kind: str = "json") -> CaptionSet:
    try:
        raw = json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CaptionSourceError(f"{path}: the captions JSON is not UTF-8 text ({err.reason} at byte {err.start}); "
                                 "save it as UTF-8") from err
    except (OSError, json.JSONDecodeError) as err:
        raise CaptionSourceError(f"{path}: cannot read captions JSON ({err})") from err
    ok = isinstance(raw, dict) and all(
        isinstance(cats, dict)
        and all(
            isinstance(defects, dict)
            and all(isinstance(items, list) and all(isinstance(c, str) for c in items) for items in defects.values())
            for defects in cats.values()
        )
        for cats in raw.values()
    )
    if not ok:
        raise CaptionSourceError(f"{path}: expected {{dataset: {{category: {{defect_type: [caption, ...]}}}}}}")
    info = CaptionSourceInfo(
        kind=kind,  # type: ignore[arg-type]
        location=str(path),
        captions_sha256={name: captions_sha256(c) for name, c in raw.items()},
    )
    return CaptionSet(captions=raw, info=info)


def load_path_source(path: Path, verify: bool = True) -> CaptionSet:
    """Read a caption source from a JSON file, an upstream script, or a folder of them."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CaptionSourceError(f"caption source {path} does not exist. {_fix_no_network_hint()}")
    if path.is_dir():
        files: dict[str, tuple[bytes, str]] = {}
        for dataset, (upstream_path, _, _) in UPSTREAM_FILES.items():
            name = Path(upstream_path).name
            for candidate in (path / name, path / upstream_path):
                if candidate.is_file():
                    files[dataset] = (candidate.read_bytes(), str(candidate))
                    break
        if not files:
            json_file = path / "captions.json"
            if json_file.is_file():
                return load_json_source(json_file)
            raise CaptionSourceError(f"{path}: holds neither the upstream caption scripts nor captions.json")
        return _upstream_set(files, str(path), verify)
    if path.suffix == ".json":
        return load_json_source(path)
    data = path.read_bytes()
    return _upstream_set({_dataset_of_upstream_file(path, data): (data, str(path))}, str(path), verify)


def upstream_url(dataset: str, base_url: str | None = None) -> str:
    upstream_path = UPSTREAM_FILES[dataset][0]
    base = base_url or os.environ.get(ENV_BASE_URL)
    if base:
        return f"{base.rstrip('/')}/{upstream_path}"
    return RAW_URL_TEMPLATE.format(repository=UPSTREAM_REPOSITORY, commit=UPSTREAM_COMMIT, path=upstream_path)


def download_upstream(dataset: str, destination: Path, base_url: str | None = None) -> Path:
    """Download one pinned upstream file, verify it, then move it into ``destination`` atomically."""
    url = upstream_url(dataset, base_url)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 (pinned URL)
            data = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise CaptionSourceError(
            f"could not download the MVTec Caption file for {dataset} from {url}: {err}. "
            f"No network? {_fix_no_network_hint()}"
        ) from err
    _verify(dataset, data, url)
    return write_bytes(destination, data)


def _cached_upstream_dir() -> Path:
    return cache_dir() / "upstream" / UPSTREAM_COMMIT


def resolve_caption_source(
    source: str | os.PathLike[str] | None = None,
    *,
    datasets: tuple[str, ...] = ("mvtec_ad", "mvtec_loco"),
    download: bool = True,
    verify: bool = True,
    base_url: str | None = None,
) -> CaptionSet:
    """Return the captions from the first source that applies (see the module docstring)."""
    if source is not None:
        return load_path_source(Path(source), verify=verify)
    if os.environ.get(ENV_SOURCE):
        return load_path_source(Path(os.environ[ENV_SOURCE]), verify=verify)

    folder = _cached_upstream_dir()
    files: dict[str, tuple[bytes, str]] = {}
    for dataset in datasets:
        target = folder / Path(UPSTREAM_FILES[dataset][0]).name
        if target.is_file():
            data = target.read_bytes()
            if sha256_bytes(data) != UPSTREAM_FILES[dataset][1]:
                target.unlink()  # a corrupt cache entry is replaced, never trusted
        if not target.is_file():
            if not download:
                raise CaptionSourceError(f"captions for {dataset} are not cached and download=False. {_fix_no_network_hint()}")
            download_upstream(dataset, target, base_url=base_url)
        files[dataset] = (target.read_bytes(), str(target))
    return _upstream_set(files, str(folder), verify=True)
