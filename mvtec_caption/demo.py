"""The embedded default: a deterministic miniature MVTec-format dataset with captions.

It lets every command run on a fresh machine with no download. It is DEMO DATA: records carry
``is_demo=True``, the subset is called ``demo``, and results made on it are never shown beside
real results. Two 128x128 categories, drawn with numpy from a fixed seed:

* ``disc`` (an object): defects ``crack`` and ``stain``;
* ``weave`` (a texture): defects ``hole`` and ``thread``.

Each has 24 good training images, 6 good test images and 9 images per defect type, with
binary masks under ``ground_truth/`` and one caption per anomalous image that names the
defect's colour, size and position, like the real captions do.

Opt-in categories (:data:`OPT_IN`) are generated only when asked for by name, into their own
folders, so the two above stay byte for byte the same: ``fibreboard`` (grey-level, 256 px, small
and thin defects; :mod:`mvtec_caption.demo_fibreboard`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mvtec_caption.sources import cache_dir

DEMO_VERSION = 1
DEMO_SEED = 20240430
IMAGE_SIZE = 128
N_TRAIN_GOOD = 24
N_TEST_GOOD = 6
N_PER_DEFECT = 9
MARKER = "DEMO_DATA.txt"

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 35), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (220, 200, 40), "brown": (110, 70, 30),
}
POSITIONS: dict[str, tuple[float, float]] = {
    "upper left": (0.3, 0.3), "upper right": (0.3, 0.7), "lower left": (0.7, 0.3), "lower right": (0.7, 0.7), "center": (0.5, 0.5),
}


@dataclass(frozen=True)
class Drawn:
    image: np.ndarray  # HxWx3 uint8
    mask: np.ndarray  # HxW bool
    caption: str


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:size, 0:size].astype(np.float32)


def _disc(rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float]]:
    yy, xx = _grid(IMAGE_SIZE)
    cy, cx = IMAGE_SIZE / 2 + rng.uniform(-3, 3, size=2)
    radius = rng.uniform(40, 44)
    dist = np.hypot(yy - cy, xx - cx)
    background = 30 + 20 * (yy / IMAGE_SIZE)
    body = 150 + 60 * (1 - dist / radius) + 15 * np.cos(dist / 3.0)
    inside = dist < radius
    grey = np.where(inside, body, background) + rng.normal(0, 3, size=dist.shape)
    tint = np.stack([grey * 0.95, grey, grey * 1.08], axis=-1)
    return np.clip(tint, 0, 255).astype(np.uint8), (cy, cx, radius)


def _weave(rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(IMAGE_SIZE)
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin((xx + yy) * (2 * np.pi / 8) + phase) * np.sin((xx - yy) * (2 * np.pi / 11))
    base = 165 + 25 * stripes + rng.normal(0, 4, size=stripes.shape)
    rgb = np.stack([base, base * 0.92, base * 0.75], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _place(rng: np.random.Generator, where: str) -> tuple[float, float]:
    fy, fx = POSITIONS[where]
    return fy * IMAGE_SIZE + rng.uniform(-6, 6), fx * IMAGE_SIZE + rng.uniform(-6, 6)


def _blob(rng: np.random.Generator, cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = _grid(IMAGE_SIZE)
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.25 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.1 * np.sin(5 * angle + rng.uniform(0, 6))
    return np.hypot(yy - cy, xx - cx) < radius * wobble


def _stroke(rng: np.random.Generator, cy: float, cx: float, length: int, width: float, jagged: float) -> np.ndarray:
    yy, xx = _grid(IMAGE_SIZE)
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    y, x, heading = cy, cx, rng.uniform(0, 2 * np.pi)
    for _ in range(length):
        mask |= np.hypot(yy - y, xx - x) < width
        heading += rng.normal(0, jagged)
        y, x = y + np.sin(heading) * 1.5, x + np.cos(heading) * 1.5
    return mask


def _draw_disc_defect(rng: np.random.Generator, defect: str) -> Drawn:
    image, _ = _disc(rng)
    where = str(rng.choice([p for p in POSITIONS if p != "center"]))
    cy, cx = _place(rng, where)
    cy, cx = IMAGE_SIZE / 2 + (cy - IMAGE_SIZE / 2) * 0.75, IMAGE_SIZE / 2 + (cx - IMAGE_SIZE / 2) * 0.75  # stay on the disc
    out = image.astype(np.float32)
    if defect == "crack":
        size = str(rng.choice(["small", "long"]))
        mask = _stroke(rng, cy, cx, 10 if size == "small" else 22, 1.3, 0.6)
        out[mask] = out[mask] * 0.25
        caption = f"The disc has a {size} crack on the {where}."
    else:
        color = str(rng.choice(list(COLORS)))
        mask = _blob(rng, cy, cx, rng.uniform(6, 10))
        out[mask] = 0.35 * out[mask] + 0.65 * np.array(COLORS[color], dtype=np.float32)
        caption = f"There is a {color} stain on the {where} of the disc."
    return Drawn(np.clip(out, 0, 255).astype(np.uint8), mask, caption)


def _draw_weave_defect(rng: np.random.Generator, defect: str) -> Drawn:
    image = _weave(rng)
    where = str(rng.choice(list(POSITIONS)))
    cy, cx = _place(rng, where)
    out = image.astype(np.float32)
    if defect == "hole":
        size = str(rng.choice(["small", "large"]))
        mask = _blob(rng, cy, cx, 5 if size == "small" else 10)
        out[mask] = 20
        caption = f"The fabric has a {size} hole in the {where}."
    else:
        color = str(rng.choice(list(COLORS)))
        mask = _stroke(rng, cy, cx, 30, 1.1, 0.25)
        out[mask] = np.array(COLORS[color], dtype=np.float32)
        caption = f"There is a loose {color} thread on the {where} of the fabric."
    return Drawn(np.clip(out, 0, 255).astype(np.uint8), mask, caption)


CATEGORIES = {
    "disc": (lambda rng: _disc(rng)[0], _draw_disc_defect, ("crack", "stain")),
    "weave": (_weave, _draw_weave_defect, ("hole", "thread")),
}


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def generate_demo(destination: Path, seed: int = DEMO_SEED) -> dict[str, dict[str, list[str]]]:
    """Write the demo dataset under ``destination``; return its captions."""
    captions: dict[str, dict[str, list[str]]] = {}
    for offset, (category, (draw_good, draw_defect, defects)) in enumerate(CATEGORIES.items()):
        rng = np.random.default_rng([seed, offset])
        base = destination / category
        for split, count in (("train", N_TRAIN_GOOD), ("test", N_TEST_GOOD)):
            for index in range(count):
                _save(draw_good(rng), base / split / "good" / f"{index:03d}.png")
        captions[category] = {}
        for defect in defects:
            captions[category][defect] = []
            for index in range(N_PER_DEFECT):
                drawn = draw_defect(rng, defect)
                _save(drawn.image, base / "test" / defect / f"{index:03d}.png")
                _save(drawn.mask.astype(np.uint8) * 255, base / "ground_truth" / defect / f"{index:03d}_mask.png")
                captions[category][defect].append(drawn.caption)
    (destination / "captions.json").write_text(json.dumps({"demo": captions}, indent=1, sort_keys=True))
    (destination / MARKER).write_text(
        "DEMO DATA generated by mvtec_caption.demo (not MVTec AD). Never report results on it as real results.\n"
        f"version={DEMO_VERSION} seed={seed}\n"
    )
    return captions


def _materialise(target: Path, write) -> Path:  # noqa: ANN001 - write(folder) fills a staging folder
    """Generate into ``target`` once, atomically (a half-written folder never looks complete)."""
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    try:
        write(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def demo_root(seed: int = DEMO_SEED) -> Path:
    """The demo dataset folder, generated into the cache on first use (atomically)."""
    return _materialise(cache_dir() / "demo" / f"v{DEMO_VERSION}-seed{seed}", lambda folder: generate_demo(folder, seed))


def demo_caption_source(seed: int = DEMO_SEED) -> Path:
    return demo_root(seed) / "captions.json"


# ---- opt-in categories -------------------------------------------------------------------------
#: Demo categories generated only when asked for by name, each into its own folder, so the default
#: demo (``disc``, ``weave``: what ``make demo`` runs on) stays byte for byte as it was.
OPT_IN = ("fibreboard",)


def write_opt_in(category: str, destination: Path) -> Path:
    """Write an opt-in category with its captions.json and marker under ``destination``; return it."""
    from mvtec_caption import demo_fibreboard

    generators = {"fibreboard": demo_fibreboard}
    if category not in generators:
        raise ValueError(f"unknown opt-in demo category {category!r}; choose one of: {', '.join(OPT_IN)}")
    module = generators[category]
    destination = Path(destination)
    module.write_captions(destination, module.generate(destination))
    (destination / MARKER).write_text(
        f"DEMO DATA generated by {module.__name__} (not MVTec AD). Never report results on it as real results.\n"
        f"version={module.VERSION} seed={module.SEED}\n"
    )
    return destination


def opt_in_root(category: str) -> Path:
    """The folder of one opt-in category (holding ``<category>/`` and ``captions.json``), generated on first use."""
    from mvtec_caption import demo_fibreboard

    versions = {"fibreboard": (demo_fibreboard.VERSION, demo_fibreboard.SEED)}
    if category not in versions:
        raise ValueError(f"unknown opt-in demo category {category!r}; choose one of: {', '.join(OPT_IN)}")
    version, seed = versions[category]
    return _materialise(cache_dir() / "demo" / f"{category}-v{version}-seed{seed}",
                        lambda folder: write_opt_in(category, folder))


def demo_location(categories: list[str] | None, data_root: Path | None = None) -> tuple[Path, Path]:
    """Root and caption file of the demo subset for a request.

    A given root is used with its own ``captions.json`` when it has one (a folder written by
    :func:`write_opt_in`), else with the default demo captions. Without one, opt-in categories
    asked by name come from their own cache folder (one at a time: they live in separate folders),
    everything else from the default demo.
    """
    if data_root is not None:
        own = Path(data_root) / "captions.json"
        return Path(data_root), own if own.is_file() else demo_caption_source()
    wanted = list(categories or [])
    opt_in = [c for c in wanted if c in OPT_IN]
    if not opt_in:
        return demo_root(), demo_caption_source()
    if len(set(wanted)) > 1:
        raise ValueError(f"the opt-in demo category {opt_in[0]} lives in its own folder: ask for it alone "
                         f"(asked for {', '.join(wanted)})")
    root = opt_in_root(opt_in[0])
    return root, root / "captions.json"
