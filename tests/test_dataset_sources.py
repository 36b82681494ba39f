"""Caption source resolution: verification, cache, download from a loopback server, order.

The pinned sha256 are those of the real upstream files, which CI does not have, so the
download path is tested by pinning a miniature file of the same format instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import MINI_CAPTIONS, MINI_UPSTREAM, sha256_text, serve_folder, unused_port

from mvtec_caption import sources, upstream
from mvtec_caption.sources import (
    ENV_BASE_URL,
    ENV_CACHE,
    ENV_SOURCE,
    CaptionSourceError,
    ChecksumMismatchError,
    load_path_source,
    resolve_caption_source,
)

AD_PATH = "tools/Construct_MVTEC-AD-Caption.py"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache for this test only (the session cache stays untouched)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(ENV_CACHE, str(folder))
    monkeypatch.delenv(ENV_SOURCE, raising=False)
    return folder


@pytest.fixture
def pinned_mini(monkeypatch: pytest.MonkeyPatch) -> str:
    """Pin the miniature script as if it were upstream's MVTec AD file; returns its sha256."""
    digest = sha256_text(MINI_UPSTREAM)
    pins = {"mvtec_ad": (AD_PATH, digest, 4), "mvtec_loco": upstream.UPSTREAM_FILES["mvtec_loco"]}
    monkeypatch.setattr(upstream, "UPSTREAM_FILES", pins)
    monkeypatch.setattr(sources, "UPSTREAM_FILES", pins)
    return digest


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A folder laid out like the upstream repository, holding the miniature script."""
    folder = tmp_path / "served"
    (folder / "tools").mkdir(parents=True)
    (folder / AD_PATH).write_text(MINI_UPSTREAM, encoding="utf-8")
    return folder


def cached_file(cache: Path) -> Path:
    return cache / "upstream" / upstream.UPSTREAM_COMMIT / Path(AD_PATH).name


def test_explicit_file_with_wrong_sha256_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "Construct_MVTEC-AD-Caption.py"
    script.write_text(MINI_UPSTREAM, encoding="utf-8")
    with pytest.raises(ChecksumMismatchError, match="does not match the pinned upstream"):
        load_path_source(script)
    unverified = load_path_source(script, verify=False)
    assert unverified.captions["mvtec_ad"] == MINI_CAPTIONS
    assert unverified.info.upstream_files["mvtec_ad"].sha256 == sha256_text(MINI_UPSTREAM)


def test_download_is_verified_and_cached(cache: Path, pinned_mini: str, served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_folder(served) as url:
        monkeypatch.setenv(ENV_BASE_URL, url)
        caption_set = resolve_caption_source(datasets=("mvtec_ad",))
    assert caption_set.captions == {"mvtec_ad": MINI_CAPTIONS}
    assert caption_set.info.kind == "upstream"
    assert caption_set.info.upstream_files["mvtec_ad"].sha256 == pinned_mini
    assert cached_file(cache).read_text(encoding="utf-8") == MINI_UPSTREAM


def test_served_file_with_wrong_content_is_not_cached(cache: Path, pinned_mini: str, served: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (served / AD_PATH).write_text(MINI_UPSTREAM.replace("dented", "bent"), encoding="utf-8")
    with serve_folder(served) as url:
        monkeypatch.setenv(ENV_BASE_URL, url)
        with pytest.raises(ChecksumMismatchError, match=url):
            resolve_caption_source(datasets=("mvtec_ad",))
    assert not cached_file(cache).exists()
    assert not any(p.is_file() for p in cache.rglob("*")), "a partial download was left in the cache"


def test_corrupt_cache_entry_is_replaced(cache: Path, pinned_mini: str, served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = cached_file(cache)
    target.parent.mkdir(parents=True)
    target.write_text(MINI_UPSTREAM.replace("widget", "wodget"), encoding="utf-8")
    with serve_folder(served) as url:
        monkeypatch.setenv(ENV_BASE_URL, url)
        caption_set = resolve_caption_source(datasets=("mvtec_ad",))
    assert caption_set.captions["mvtec_ad"] == MINI_CAPTIONS
    assert target.read_text(encoding="utf-8") == MINI_UPSTREAM


def test_corrupt_cache_without_download_fails_clearly(cache: Path, pinned_mini: str) -> None:
    target = cached_file(cache)
    target.parent.mkdir(parents=True)
    target.write_text("garbage", encoding="utf-8")
    with pytest.raises(CaptionSourceError, match="not cached and download=False"):
        resolve_caption_source(datasets=("mvtec_ad",), download=False)
    assert not target.exists(), "a corrupt cache entry must not be kept"


def test_offline_error_names_the_environment_variable(cache: Path, pinned_mini: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BASE_URL, f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(CaptionSourceError) as error:
        resolve_caption_source(datasets=("mvtec_ad",))
    assert ENV_SOURCE in str(error.value)
    assert "could not download" in str(error.value)
    assert not cached_file(cache).exists()


def _json_source(path: Path, caption: str) -> Path:
    path.write_text(json.dumps({"mvtec_ad": {"widget": {"scratch": [caption]}}}), encoding="utf-8")
    return path


def test_resolution_order(tmp_path: Path, cache: Path, pinned_mini: str, served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit argument > MVTEC_CAPTION_SOURCE > verified cache > download."""
    explicit = _json_source(tmp_path / "explicit.json", "From the argument.")
    from_env = _json_source(tmp_path / "env.json", "From the environment.")
    dead = f"http://127.0.0.1:{unused_port()}"

    # download: nothing cached, no env var
    with serve_folder(served) as url:
        monkeypatch.setenv(ENV_BASE_URL, url)
        assert resolve_caption_source(datasets=("mvtec_ad",)).captions["mvtec_ad"] == MINI_CAPTIONS
    # cache: now cached; the download host is gone, so it must not be asked
    monkeypatch.setenv(ENV_BASE_URL, dead)
    assert resolve_caption_source(datasets=("mvtec_ad",)).info.location == str(cached_file(cache).parent)
    # env var beats the cache
    monkeypatch.setenv(ENV_SOURCE, str(from_env))
    assert resolve_caption_source().captions["mvtec_ad"]["widget"]["scratch"] == ["From the environment."]
    # the argument beats the env var
    assert resolve_caption_source(explicit).captions["mvtec_ad"]["widget"]["scratch"] == ["From the argument."]


def test_upstream_folder_source_and_json_hash_agree(tmp_path: Path, pinned_mini: str) -> None:
    """Parsing the script and reading a JSON copy of it give the same captions hash."""
    folder = tmp_path / "checkout"
    (folder / "tools").mkdir(parents=True)
    (folder / AD_PATH).write_text(MINI_UPSTREAM, encoding="utf-8")
    from_script = load_path_source(folder)
    copy = tmp_path / "captions.json"
    copy.write_text(json.dumps(from_script.captions), encoding="utf-8")
    assert load_path_source(copy).info.captions_sha256 == from_script.info.captions_sha256


@pytest.mark.real_data
def test_shared_captions_json(shared_captions: Path) -> None:
    caption_set = load_path_source(shared_captions)
    assert caption_set.count("mvtec_ad") == 1258
    assert caption_set.count("mvtec_loco") == 993
    assert caption_set.count() == 2251
    assert caption_set.info.captions_sha256 == upstream.UPSTREAM_CAPTIONS_SHA256
