"""``fibreboard``: an opt-in, grey-level demo category with small and thin defects.

AXF was tuned on bottle; a new user's category looks different: grey-level surface images with
defects that are small (holes a few pixels across), thin (cracks one or two pixels wide), at the
object's border (broken and frayed edges) or large and low in contrast (uneven areas). This
generator draws such a category procedurally (numpy/scipy only, deterministic from a seed, no
real data): a grey fibre board on a dark table, with mottled, fibrous texture and uneven lighting,
256 x 256 px, saved as 8-bit grey PNGs like MVTec's grey categories.

Five defect types, ``N_PER_DEFECT`` images each (the protocol's first third trains a
synthesizer, the rest is test data), with masks under ``ground_truth/`` and one caption per
anomalous image naming size, shape and position, like MVTec Caption does:

* ``hole``: a small round hole (radius 2.5-6 px) showing the dark table, with a lit rim;
* ``crack``: a thin dark crack (1-1.8 px), 35-90 px long, sometimes branched;
* ``broken_edge``: a piece broken off the board's border, with a lighter fracture line;
* ``frayed_edge``: a stretch of border with fibres sticking out and small notches;
* ``uneven``: a large raised or dented area (radius 22-45 px), lit from one side.

It is DEMO DATA: it is never part of ``make demo`` (that writes only ``disc`` and ``weave``,
byte for byte as before); ask for it by name (``--dataset demo --categories fibreboard``) and it
is generated into its own cache folder (:func:`mvtec_caption.demo.demo_location`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

CATEGORY = "fibreboard"
VERSION = 1
SEED = 20250611
SIZE = 256
N_TRAIN_GOOD = 60
N_TEST_GOOD = 20
N_PER_DEFECT = 18
DEFECTS = ("hole", "crack", "broken_edge", "frayed_edge", "uneven")
SIDES = ("top", "bottom", "left", "right")


@dataclass(frozen=True)
class Board:
    """Geometry of the board in one image: a slightly turned rectangle."""

    cy: float
    cx: float
    half_h: float
    half_w: float
    angle: float  # radians

    def frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel's coordinates along the board's axes (u across, v down), centred on it."""
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
        dy, dx = yy - self.cy, xx - self.cx
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        return cos * dx + sin * dy, -sin * dx + cos * dy

    def depth(self) -> np.ndarray:
        """Signed distance to the border, positive inside, in pixels."""
        u, v = self.frame()
        return np.minimum(self.half_w - np.abs(u), self.half_h - np.abs(v))

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        """(y, x) of the board point (u, v)."""
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        return self.cy + sin * u + cos * v, self.cx + cos * u - sin * v

    def edge_point(self, side: str, t: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """A point on ``side`` at fraction ``t`` along it, and the outward normal (dy, dx)."""
        if side in ("top", "bottom"):
            v = -self.half_h if side == "top" else self.half_h
            u = (2 * t - 1) * self.half_w
            normal_uv = (0.0, -1.0 if side == "top" else 1.0)
        else:
            u = -self.half_w if side == "left" else self.half_w
            v = (2 * t - 1) * self.half_h
            normal_uv = (-1.0 if side == "left" else 1.0, 0.0)
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        nu, nv = normal_uv
        return self.to_image(u, v), (sin * nu + cos * nv, cos * nu - sin * nv)


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # HxW float32 grey levels
    board: Board
    background: np.ndarray  # the table alone, HxW float32
    surface: np.ndarray  # the board's texture and lighting alone, HxW float32


@dataclass(frozen=True)
class Drawn:
    image: np.ndarray  # HxW uint8
    mask: np.ndarray  # HxW bool
    caption: str


def _smooth_noise(rng: np.random.Generator, sigma: float | tuple[float, float]) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=(SIZE, SIZE)).astype(np.float32), sigma, mode="wrap")
    return field / (field.std() + 1e-6)


def _scene(rng: np.random.Generator) -> Scene:
    """A defect-free board: fibre texture, mottling, lighting, a bevelled border, a dark table."""
    board = Board(cy=SIZE / 2 + rng.uniform(-5, 5), cx=SIZE / 2 + rng.uniform(-5, 5),
                  half_h=rng.uniform(98, 106), half_w=rng.uniform(98, 106), angle=np.radians(rng.uniform(-4, 4)))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    light = rng.uniform(0, 2 * np.pi)
    gradient = np.cos(light) * (xx - 0.5) + np.sin(light) * (yy - 0.5)
    vignette = (xx - 0.5) ** 2 + (yy - 0.5) ** 2
    fibres = ndimage.rotate(_smooth_noise(rng, (0.6, 5.0)), rng.uniform(0, 180), reshape=False, mode="wrap")
    fibres /= fibres.std() + 1e-6
    surface = (rng.uniform(138, 162) + 7 * _smooth_noise(rng, 12) + 4.5 * fibres + 2.5 * rng.normal(size=(SIZE, SIZE)))
    surface = surface * (1 + 0.16 * gradient - 0.25 * vignette)
    background = 36 + 14 * yy + 6 * _smooth_noise(rng, 20) + 2 * rng.normal(size=(SIZE, SIZE))
    depth = board.depth()
    bevel = np.exp(-((depth - 1.5) ** 2) / 2.0) * -18  # a slightly darker cut edge
    alpha = np.clip(depth + 0.5, 0, 1)
    image = alpha * (surface + bevel) + (1 - alpha) * background
    return Scene(image.astype(np.float32), board, background.astype(np.float32), surface.astype(np.float32))


def _where(board: Board, y: float, x: float) -> str:
    """Caption words for a position on the board (thirds of its extent)."""
    cos, sin = np.cos(board.angle), np.sin(board.angle)
    u = cos * (x - board.cx) + sin * (y - board.cy)
    v = -sin * (x - board.cx) + cos * (y - board.cy)
    row = "upper" if v < -board.half_h / 3 else "lower" if v > board.half_h / 3 else ""
    col = "left" if u < -board.half_w / 3 else "right" if u > board.half_w / 3 else ""
    if row and col:
        return f"{row} {col}"
    return f"{row or col} part" if row or col else "center"


def _inner_point(rng: np.random.Generator, board: Board, margin: float) -> tuple[float, float]:
    u = rng.uniform(-board.half_w + margin, board.half_w - margin)
    v = rng.uniform(-board.half_h + margin, board.half_h - margin)
    return board.to_image(u, v)


def _distance_to(points: np.ndarray) -> np.ndarray:
    """Distance of every pixel to a set of (y, x) points (rasterised, sub-pixel steps)."""
    seed = np.ones((SIZE, SIZE), dtype=bool)
    ys = np.clip(np.rint(points[:, 0]).astype(int), 0, SIZE - 1)
    xs = np.clip(np.rint(points[:, 1]).astype(int), 0, SIZE - 1)
    seed[ys, xs] = False
    return ndimage.distance_transform_edt(seed).astype(np.float32)


def _walk(rng: np.random.Generator, start: tuple[float, float], length: int, heading: float, jitter: float) -> np.ndarray:
    points, (y, x) = [], start
    for _ in range(length * 2):
        points.append((y, x))
        heading += rng.normal(0, jitter)
        y, x = y + 0.5 * np.sin(heading), x + 0.5 * np.cos(heading)
    return np.array(points)


def _hole(rng: np.random.Generator, scene: Scene) -> tuple[np.ndarray, np.ndarray, str]:
    cy, cx = _inner_point(rng, scene.board, 16)
    radius = rng.uniform(2.5, 6.0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    dist = np.hypot(yy - cy, xx - cx)
    inside = np.clip(radius + 0.5 - dist, 0, 1)
    lit = np.cos(np.arctan2(yy - cy, xx - cx) - rng.uniform(0, 2 * np.pi))
    rim = np.exp(-((dist - radius - 0.7) ** 2) / 0.8) * (14 + 12 * lit)
    image = scene.image + rim
    image = inside * (scene.background * 0.9 + 4) + (1 - inside) * image
    mask = dist < radius + 1.6
    size = "tiny" if radius < 3.5 else "small"
    return image, mask, f"There is a {size} round hole in the {_where(scene.board, cy, cx)} of the board."


def _crack(rng: np.random.Generator, scene: Scene) -> tuple[np.ndarray, np.ndarray, str]:
    start = _inner_point(rng, scene.board, 22)
    length = int(rng.integers(35, 91))
    heading = rng.uniform(0, 2 * np.pi)
    points = _walk(rng, start, length, heading, 0.12)
    branched = rng.random() < 0.4
    if branched:
        fork = points[len(points) // 2]
        points = np.concatenate([points, _walk(rng, (fork[0], fork[1]), length // 3, heading + rng.choice([-1, 1]) * 0.8, 0.15)])
    width = rng.uniform(1.0, 1.8)
    dist = _distance_to(points)
    depth = rng.uniform(0.45, 0.6)
    profile = np.exp(-(dist / (0.6 * width)) ** 2)
    image = scene.image * (1 - depth * profile) - 3 * np.exp(-((dist - width) ** 2))  # a dark seam, slightly shaded sides
    mask = (dist <= width + 1.5) & (scene.board.depth() > 0)
    middle = points[len(points) // 4 if branched else len(points) // 2]
    size = "long" if length > 65 else "short"
    shape = "branched " if branched else ""
    return image, mask, f"There is a thin {size} {shape}crack in the {_where(scene.board, middle[0], middle[1])} of the board."


def _blob(rng: np.random.Generator, cy: float, cx: float, radius: float, lobes: int = 5) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + sum(rng.uniform(0.05, 0.22) * np.sin(k * angle + rng.uniform(0, 2 * np.pi)) for k in range(2, 2 + lobes))
    return np.hypot(yy - cy, xx - cx) < radius * wobble


def _broken_edge(rng: np.random.Generator, scene: Scene) -> tuple[np.ndarray, np.ndarray, str]:
    side = str(rng.choice(SIDES))
    (ey, ex), _ = scene.board.edge_point(side, rng.uniform(0.15, 0.85))
    radius = rng.uniform(8, 20)
    depth = scene.board.depth()
    chunk = _blob(rng, ey, ex, radius) & (depth > -1)
    removed = chunk & (depth > -0.5)
    soft = np.clip(ndimage.gaussian_filter(removed.astype(np.float32), 0.6) * 1.6, 0, 1)
    broken = soft * scene.background + (1 - soft) * scene.image
    fracture = ndimage.binary_dilation(removed, iterations=2) & ~removed & (depth > 0)
    chips = fracture & (rng.random((SIZE, SIZE)) < 0.35)
    image = broken + 22 * ndimage.gaussian_filter(fracture.astype(np.float32), 0.7) - 30 * chips
    mask = ndimage.binary_dilation(removed, iterations=2) & (depth > -1.5)
    size = "large" if radius > 14 else "small"
    return image, mask, f"A {size} piece is broken off the {side} edge of the board."


def _frayed_edge(rng: np.random.Generator, scene: Scene) -> tuple[np.ndarray, np.ndarray, str]:
    side = str(rng.choice(SIDES))
    board = scene.board
    span = rng.uniform(0.15, 0.32)
    t0 = rng.uniform(0.1, 0.9 - span)
    image = scene.image.copy()
    changed = np.zeros((SIZE, SIZE), dtype=bool)
    depth = board.depth()
    level = float(np.median(scene.surface[depth > 5]))
    n_strands = int(span * 2 * board.half_w * 0.6)
    for t in np.linspace(t0, t0 + span, n_strands) + rng.uniform(-0.004, 0.004, n_strands):
        (ey, ex), (ny, nx) = board.edge_point(side, float(t))
        angle = np.arctan2(ny, nx) + rng.normal(0, 0.5)
        length = rng.uniform(2, 9)
        steps = np.linspace(-1.5, length, int(length * 3) + 6)
        ys, xs = ey + steps * np.sin(angle), ex + steps * np.cos(angle)
        ys = np.clip(np.rint(ys).astype(int), 0, SIZE - 1)
        xs = np.clip(np.rint(xs).astype(int), 0, SIZE - 1)
        image[ys, xs] = level * rng.uniform(0.7, 0.95) + rng.normal(0, 3, len(ys))
        changed[ys, xs] = True
    (ay, ax), _ = board.edge_point(side, t0)
    (by, bx), _ = board.edge_point(side, t0 + span)
    segment = np.linspace((ay, ax), (by, bx), 200)
    near = _distance_to(segment)
    notches = (near < 4) & (depth > 0) & (depth < 3.5) & (_smooth_noise(rng, 1.5) > 0.4)
    image = np.where(notches, scene.background, image)
    changed |= notches
    mask = ndimage.binary_dilation(changed, iterations=1) | ((near < 3) & (depth > -2))
    return image, mask, f"The {side} edge of the board is frayed, with loose fibres sticking out."


def _uneven(rng: np.random.Generator, scene: Scene) -> tuple[np.ndarray, np.ndarray, str]:
    radius = rng.uniform(22, 45)
    cy, cx = _inner_point(rng, scene.board, radius + 6)
    region = _blob(rng, cy, cx, radius, lobes=3)
    height = ndimage.gaussian_filter(region.astype(np.float32), radius / 4)
    height /= height.max() + 1e-6
    raised = rng.random() < 0.5
    light = rng.uniform(0, 2 * np.pi)
    gy, gx = np.gradient(height)
    shading = (np.cos(light) * gx + np.sin(light) * gy) * radius * (1 if raised else -1)
    smoothed = ndimage.gaussian_filter(scene.image, 1.2)
    image = scene.image + (smoothed - scene.image) * 0.5 * height  # a pressed, smoother surface
    image = image + rng.uniform(14, 24) * shading + (6 if raised else -8) * height
    mask = height > 0.3
    kind = "raised" if raised else "dented"
    return image, mask, f"There is a large uneven {kind} area in the {_where(scene.board, cy, cx)} of the board."


DRAWERS = {"hole": _hole, "crack": _crack, "broken_edge": _broken_edge, "frayed_edge": _frayed_edge, "uneven": _uneven}


def draw_good(rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.rint(_scene(rng).image), 0, 255).astype(np.uint8)


def draw_defect(rng: np.random.Generator, defect: str) -> tuple[np.ndarray, Drawn]:
    """The defect-free scene and the same scene with the defect (each HxW uint8), with mask and caption."""
    scene = _scene(rng)
    image, mask, caption = DRAWERS[defect](rng, scene)
    clean = np.clip(np.rint(scene.image), 0, 255).astype(np.uint8)
    return clean, Drawn(np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, caption)


def _drawings(seed: int) -> Iterator[tuple[str, str, int, np.ndarray | None, Drawn]]:
    """Every image in generation order: (split, defect type or "good", index, clean scene or None, drawing)."""
    rng = np.random.default_rng([seed, VERSION])
    for split, count in (("train", N_TRAIN_GOOD), ("test", N_TEST_GOOD)):
        for index in range(count):
            yield split, "good", index, None, Drawn(draw_good(rng), np.zeros((SIZE, SIZE), dtype=bool), "")
    for defect in DEFECTS:
        for index in range(N_PER_DEFECT):
            clean, drawn = draw_defect(rng, defect)
            yield "test", defect, index, clean, drawn


def clean_sources(seed: int = SEED) -> dict[tuple[str, str], np.ndarray]:
    """The defect-free scene of every anomalous image, by (defect type, image id): the exact normal source a
    real anomaly of this category was made from (label-fidelity references; never given to a synthesizer)."""
    return {(defect, f"{index:03d}"): clean for _, defect, index, clean, _ in _drawings(seed) if clean is not None}


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="L").save(path, format="PNG")


def generate(destination: Path, seed: int = SEED) -> dict[str, dict[str, list[str]]]:
    """Write ``<destination>/fibreboard/`` (MVTec AD layout); return its captions ``{category: {defect: [...]}}``."""
    base = Path(destination) / CATEGORY
    captions: dict[str, list[str]] = {defect: [] for defect in DEFECTS}
    for split, defect, index, _, drawn in _drawings(seed):
        _save(drawn.image, base / split / defect / f"{index:03d}.png")
        if defect != "good":
            _save(drawn.mask.astype(np.uint8) * 255, base / "ground_truth" / defect / f"{index:03d}_mask.png")
            captions[defect].append(drawn.caption)
    return {CATEGORY: captions}


def write_captions(destination: Path, captions: dict[str, dict[str, list[str]]]) -> Path:
    path = Path(destination) / "captions.json"
    path.write_text(json.dumps({"demo": captions}, indent=1, sort_keys=True))
    return path
