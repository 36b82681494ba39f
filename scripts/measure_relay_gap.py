"""Measure what a re-layout costs a generated set downstream, one change at a time, and the detector's own noise.

    python scripts/measure_relay_gap.py runs/x/cache/generate/<key>/samples --seeds 0 1 2 \
        --variants native jpeg256 png256 jpeg64 nearest256-jpeg-box plus-minus-1

Trains a detector (default ``unet``; ``--detector probe-effnetlite0`` for the convex linear probe) on the set with each image replaced by a variant
(:data:`VARIANTS`: the JPEG relay as ``tests/test_external_sets.py`` writes and the importer reads it,
and its parts taken apart) and prints one JSON line per (variant, detector seed) with the pixel AP.
Masks, clean sources, sample order and detector seeds are the native set's in every variant, so a
difference between two lines with the same seed is caused by the images alone; the spread of
``native`` over seeds is the detector's own noise on this set. Why this exists: the 256 px JPEG
relay of a plan-2 ``croppaste`` demo set scored 0.217 pixel AP below the native set at seed 0, and
this separates resampling, JPEG and the detector's sensitivity to any change of its input.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RELAY_SIZE = 256  # AnomalyDiffusion's image size


def _store(image: np.ndarray, fmt: str) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 75} if fmt == "JPEG" else {}))
    buffer.seek(0)
    with Image.open(buffer) as stored:
        return np.asarray(stored.convert("RGB"))


def _relay(up: int, fmt: str, down: int) -> Callable[[np.ndarray], np.ndarray]:
    """Up to the relay size with ``up``, stored as ``fmt``, back to the set's size with ``down``."""
    def apply(image: np.ndarray) -> np.ndarray:
        size = image.shape[0]
        big = np.asarray(Image.fromarray(image).resize((RELAY_SIZE, RELAY_SIZE), up))
        return np.asarray(Image.fromarray(_store(big, fmt)).resize((size, size), down))
    return apply


def _plus_minus_one(image: np.ndarray) -> np.ndarray:
    """Every channel of every pixel moved by -1, 0 or +1 grey level (a change no one can see)."""
    rng = np.random.default_rng(int(image.sum()))
    return np.clip(image.astype(np.int16) + rng.integers(-1, 2, image.shape), 0, 255).astype(np.uint8)


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "native": lambda image: image,
    "jpeg256": _relay(Image.BICUBIC, "JPEG", Image.BICUBIC),  # the test's relay: export bicubic, import bicubic
    "png256": _relay(Image.BICUBIC, "PNG", Image.BICUBIC),  # its resampling alone
    "jpeg64": lambda image: _store(image, "JPEG"),  # its JPEG alone, at the set's size
    "nearest256-jpeg-box": _relay(Image.NEAREST, "JPEG", Image.BOX),  # JPEG at 256 with an exact resampling pair
    "plus-minus-1": _plus_minus_one,
}


def main(argv: list[str] | None = None) -> int:
    from benchmark.context import load_category
    from benchmark.detectors import create_detector
    from benchmark.evaluation import evaluate_detection
    from benchmark.protocols import get_protocol
    from benchmark.stages import detector_config, synthetic_set
    from synthesis.generated_set import read_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", type=Path, help="a generated-set folder (generation.json, manifest.jsonl)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--detector", default="unet")
    parser.add_argument("--data-root", help="dataset root (the demo set needs none)")
    args = parser.parse_args(argv)
    try:
        info = read_info(args.set)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)  # read_info names the folder
        return 2
    protocol = get_protocol(info.protocol_id)
    ctx = load_category(protocol, info.dataset, info.category, args.data_root, None)
    native = synthetic_set(ctx, args.set)
    train_normals = np.stack([normal.image for normal in ctx.train.normals])
    for seed in args.seeds:
        for name in args.variants:
            started = time.perf_counter()
            synthetic = dataclasses.replace(native, anomalous=np.stack([VARIANTS[name](image) for image in native.anomalous]))
            detector = create_detector(args.detector, detector_config(protocol, args.detector), seed=seed, device="cpu")
            detector.fit(train_normals, synthetic, progress=False)
            scores, maps = detector.predict(ctx.test.images)
            overall, per_defect, _ = evaluate_detection(scores, maps, ctx.test.labels, ctx.test.masks, ctx.test.defect_types)
            print(json.dumps({"variant": name, "seed": seed, "pixel_ap": round(float(overall.pixel_ap), 4),
                              "per_defect_pixel_ap": {d: round(float(s.pixel_ap), 4) for d, s in per_defect.items()},
                              "seconds": round(time.perf_counter() - started)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
