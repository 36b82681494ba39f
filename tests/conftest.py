"""Shared fixtures: an isolated cache, the demo data, and the real data in ../shared/data.

Real-data tests use the ``shared_data`` fixture: in CI (``CI=true``) a missing ../shared/data
is a failure; elsewhere such tests are skipped with the reason stated.
"""

from __future__ import annotations

import os
from pathlib import Path

# Hugging Face libraries read these once, at import: set them before any test module imports them,
# so a hub lookup fails at once instead of waiting for a network timeout.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MVTEC_CAPTION_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep tests out of the user's caches (ours and torch hub's, where the weights resolver also looks); every test
    session starts from empty ones."""
    cache = tmp_path_factory.mktemp("mvtec_caption_cache")
    previous = {name: os.environ.get(name) for name in ("MVTEC_CAPTION_CACHE", "MVTEC_CAPTION_SOURCE", "HF_DATASETS_OFFLINE",
                                                        "HF_HUB_OFFLINE", "TORCH_HOME")}
    os.environ["MVTEC_CAPTION_CACHE"] = str(cache)
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch_home"))
    os.environ.pop("MVTEC_CAPTION_SOURCE", None)
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield cache
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _require_shared() -> Path:
    if (SHARED_DATA / "mvtec_caption" / "captions.json").is_file():
        return SHARED_DATA
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the real data is missing at {SHARED_DATA}: real-data tests must run in CI")
    pytest.skip(f"real data not found at {SHARED_DATA} (these tests run in CI, where ../shared/data is present)")


@pytest.fixture(scope="module")
def one_torch_thread():  # noqa: ANN201
    """One torch thread per test module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``).

    On a shared 2-core machine two torch threads spin against other jobs and run 10x slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def axf_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """AXF training snapshots in the test's own folder, and no hub lookups."""
    monkeypatch.setenv("AXF_WORK_DIR", str(tmp_path / "axf-work"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data (mvtec_caption/, mvtec_ad/bottle, mvtec_loco/juice_bottle)."""
    return _require_shared()


@pytest.fixture(scope="session")
def shared_captions(shared_data: Path) -> Path:
    return shared_data / "mvtec_caption" / "captions.json"


@pytest.fixture(scope="session")
def demo_root(isolated_cache: Path) -> Path:
    from mvtec_caption.demo import demo_root as make_demo

    return make_demo()


@pytest.fixture(scope="module")
def pinned_clip():  # noqa: ANN201
    """CLIP pinned to a test hash for a module (``pytestmark = pytest.mark.usefixtures("pinned_clip")``).

    The weights registry pins no sha256 for CLIP yet, so the leaderboard accepts no comparable
    synthesizer result; tests that build comparable rows need a pin (see leaderboard_helpers).
    """
    from leaderboard_helpers import clip_pinned_for_tests

    with clip_pinned_for_tests():
        yield
