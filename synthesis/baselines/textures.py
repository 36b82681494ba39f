"""Texture sources for the Perlin baseline and DRAEM's texture augmentations.

DRAEM fills its Perlin masks with DTD textures. No texture dataset ships offline, so the
default source is the category's own normal training images: a fixed, evenly spaced pool kept
at fit time. Per sample one is drawn, zoomed into a random region, turned, and recoloured with
three of DRAEM's photometric operations, so the filled region differs in structure scale,
orientation and colour from the surface it lands on. A folder of real textures (DTD's
``images/``) can be given instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from synthesis.baselines._imaging import jitter_colour, resize, to_uint8
from synthesis.contract import TrainSplit

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def evenly_spaced(count: int, keep: int) -> list[int]:
    """``keep`` indices spread over ``range(count)``: a deterministic pool without an rng."""
    if count <= keep:
        return list(range(count))
    return [int(i) for i in np.linspace(0, count - 1, keep).round()]


def pool_from_normals(train: TrainSplit, keep: int) -> tuple[np.ndarray, list[str]]:
    picks = evenly_spaced(len(train.normals), keep)
    images = np.stack([train.normals[i].image for i in picks])
    return images, [f"normal:{train.normals[i].image_id}" for i in picks]


def _square(image: Image.Image, size: int) -> np.ndarray:
    """Centre-crop to a square and resize: textures keep their aspect."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return np.asarray(image.convert("RGB").crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC))


def pool_from_folder(folder: Path, size: int, keep: int) -> tuple[np.ndarray, list[str]]:
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"texture_dir {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    picks = evenly_spaced(len(files), keep)
    images = []
    for i in picks:
        with Image.open(files[i]) as handle:
            images.append(_square(handle, size))
    return np.stack(images), [f"file:{files[i].relative_to(folder).as_posix()}" for i in picks]


# ---- DRAEM's photometric augmentations (three drawn per texture) ---------------------------------
def _gamma(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gamma = rng.uniform(0.5, 2.0, size=3)  # per channel, as DRAEM's GammaContrast(per_channel=True)
    return to_uint8(255.0 * (img / 255.0) ** gamma)


def _brightness(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return to_uint8(img * rng.uniform(0.8, 1.2) + rng.uniform(-30, 30))


def _sharpen(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(ImageEnhance.Sharpness(Image.fromarray(img)).enhance(rng.uniform(0.0, 2.0)))


def _hue_saturation(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return to_uint8(jitter_colour(img, rng, brightness=0, contrast=0, saturation=0.5, hue=50 / 360))


def _solarize(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(ImageOps.solarize(Image.fromarray(img), threshold=int(rng.integers(32, 129))))


def _posterize(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(ImageOps.posterize(Image.fromarray(img), bits=int(rng.integers(1, 5))))


def _invert(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 255 - img


def _autocontrast(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(ImageOps.autocontrast(Image.fromarray(img)))


def _equalize(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(ImageOps.equalize(Image.fromarray(img)))


def _rotate(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate by up to 45 degrees and keep the centre, so no fill colour enters the texture."""
    size = img.shape[0]
    rotated = Image.fromarray(img).rotate(float(rng.uniform(-45, 45)), resample=Image.BILINEAR)
    inner = int(size / np.sqrt(2))
    offset = (size - inner) // 2
    return np.asarray(rotated.crop((offset, offset, offset + inner, offset + inner)).resize((size, size), Image.BICUBIC))


def _shuffle_channels(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(img[..., rng.permutation(3)])


AUGMENTATIONS = {
    "gamma": _gamma, "brightness": _brightness, "sharpen": _sharpen, "hue_saturation": _hue_saturation,
    "solarize": _solarize, "posterize": _posterize, "invert": _invert, "autocontrast": _autocontrast,
    "equalize": _equalize, "rotate": _rotate, "shuffle_channels": _shuffle_channels,
}


def augment_texture(texture: np.ndarray, size: int, rng: np.random.Generator, zoom: tuple[float, float],
                    n_ops: int) -> tuple[np.ndarray, str]:
    """Zoom into a random square of ``texture``, turn it, apply ``n_ops`` augmentations; describe what was done."""
    side = texture.shape[0]
    crop = max(4, int(round(side * rng.uniform(*zoom))))
    top, left = (int(rng.integers(0, side - crop + 1)) for _ in range(2))
    out = resize(np.ascontiguousarray(texture[top:top + crop, left:left + crop]), size, size)
    out = np.rot90(out, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = np.ascontiguousarray(out)
    names = list(AUGMENTATIONS)
    chosen = [names[i] for i in rng.choice(len(names), size=min(n_ops, len(names)), replace=False)]
    for name in chosen:
        out = AUGMENTATIONS[name](out, rng)
    return out, f"zoom{crop / side:.2f} " + "+".join(chosen)
