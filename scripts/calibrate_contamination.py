"""Calibrate the contamination check on real near-duplicates and non-duplicates, and run it on generated sets.

Prints, for one category at a protocol's size:

* near-duplicates: every test image upscaled 1-4x, shifted by up to 2 px at the protocol size,
  JPEG re-encoded at quality 30-95 and resized back; the distance of each to its original, and
  whether the candidate step (:func:`benchmark.contamination.candidates`) kept the original;
* non-duplicates: every pair of different images of the category (test-test, train normal-test,
  few-shot anomaly-test);
* the same two groups under a 64-bit DCT pHash, to show why the check does not use one;
* with ``--set FOLDER`` (repeatable): the check on generated sets (matches and the closest pair).

    python scripts/calibrate_contamination.py --dataset mvtec_ad --data-root ../shared/data/mvtec_ad \\
        --category bottle --caption-source ../shared/data/mvtec_caption/captions.json --set runs/.../samples
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import dctn
from scipy.ndimage import shift as shift_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark import contamination  # noqa: E402

#: (upscale factor, shift in upscaled pixels (dy, dx), JPEG quality)
VARIANTS = [(1, (0, 0), 75), (1, (1, 0), 50), (2, (1, 1), 75), (2, (2, -3), 95), (2, (4, 4), 30),
            (4, (6, 2), 90), (4, (-3, 5), 60), (2, (0, 0), 30)]


def near_duplicate(image: np.ndarray, scale: int, offset: tuple[int, int], quality: int) -> np.ndarray:
    size = image.shape[0]
    big = np.asarray(Image.fromarray(image).resize((size * scale, size * scale), Image.BICUBIC))
    big = shift_image(big, (*offset, 0), order=0, mode="nearest")
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return np.asarray(decoded.convert("RGB").resize((size, size), Image.BICUBIC))


def phash(images: np.ndarray, bits: int = 8) -> np.ndarray:
    """The common DCT pHash: greyscale 32x32, 2-D DCT, the 8x8 lowest frequencies against their median."""
    rows = []
    for image in images:
        grey = np.asarray(Image.fromarray(image).convert("L").resize((4 * bits, 4 * bits), Image.LANCZOS), dtype=np.float64)
        low = dctn(grey, type=2, norm="ortho")[:bits, :bits].ravel()
        rows.append(low > np.median(low[1:]))
    return np.array(rows, dtype=np.int32)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ (1 - b).T + (1 - a) @ b.T


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mvtec_ad", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--data-root")
    parser.add_argument("--category", required=True)
    parser.add_argument("--caption-source")
    parser.add_argument("--protocol", default="mvtec-caption-cpu/v2")
    parser.add_argument("--set", action="append", default=[], help="a generated set folder to check (repeatable)")
    args = parser.parse_args()

    from benchmark.context import load_category, test_image_names
    from benchmark.protocols import get_protocol
    from synthesis.generated_set import load_samples

    started = time.perf_counter()
    ctx = load_category(get_protocol(args.protocol), args.dataset, args.category, args.data_root, args.caption_source)
    test = ctx.test.images
    others = np.concatenate([np.stack([n.image for n in ctx.train.normals]), np.stack([a.image for a in ctx.train.anomalies])])
    print(f"{args.dataset}/{args.category} at {test.shape[1]}px: {len(test)} test images, {len(ctx.train.normals)} train "
          f"normals, {len(ctx.train.anomalies)} few-shot anomalies (loaded in {time.perf_counter() - started:.0f}s)")

    fine_test = contamination.prepare(test)
    variants = np.stack([near_duplicate(image, *variant) for image in test for variant in VARIANTS])
    owner = np.repeat(np.arange(len(test)), len(VARIANTS))
    fine_variants = contamination.prepare(variants)
    kept = contamination.candidates(fine_variants, fine_test)
    recall = float(np.mean([owner[i] in kept[i] for i in range(len(variants))]))
    near = np.array([contamination.pair_distance(fine_test[owner[i]], fine_variants[i]) for i in range(len(variants))])
    fine_others = contamination.prepare(others)
    non = [contamination.pair_distance(fine_test[i], fine_test[j]) for i in range(len(test)) for j in range(len(test)) if i != j]
    non += [contamination.pair_distance(fine_test[i], other) for i in range(len(test)) for other in fine_others]
    non_arr = np.array(non)
    print(f"aligned NCC distance (1 - NCC): near-duplicates ({len(near)}) max {near.max():.6f}, 99th pct "
          f"{np.percentile(near, 99):.6f}; candidate step kept the original for {100 * recall:.1f} %")
    print(f"                                non-duplicates ({len(non_arr)}) min {non_arr.min():.6f}, 1st pct "
          f"{np.percentile(non_arr, 1):.6f}; threshold {contamination.THRESHOLD}")
    per_variant = near.reshape(len(test), len(VARIANTS)).max(0)
    print("  largest near-duplicate distance per variant (scale, shift, JPEG quality): "
          + ", ".join(f"{v}: {d:.6f}" for v, d in zip(VARIANTS, per_variant)))

    h_test, h_variants, h_others = phash(test), phash(variants), phash(others)
    h_near = np.array([hamming(h_test[owner[i]:owner[i] + 1], h_variants[i:i + 1])[0, 0] for i in range(len(variants))])
    h_tt = hamming(h_test, h_test)[~np.eye(len(test), dtype=bool)]
    h_non = np.concatenate([h_tt, hamming(h_others, h_test).ravel()])
    print(f"64-bit DCT pHash (Hamming bits): near-duplicates max {h_near.max()}, non-duplicates min {h_non.min()} "
          f"({'separable' if h_near.max() < h_non.min() else 'NOT separable'})")

    names = test_image_names(ctx)
    for folder in args.set:
        rows = load_samples(Path(folder))
        result = contamination.check(np.stack([image for _, image, _ in rows]), [s.image_file for s, _, _ in rows],
                                     test, names, others)
        closest = result.closest
        print(f"set {folder}: {result.n_generated} images, {len(result.matches)} match(es)"
              + "".join(f"\n  MATCH {m.generated} ~ {m.test} ({m.distance:.6f})" for m in result.matches)
              + (f"; closest pair {closest.generated} ~ {closest.test} at {closest.distance:.6f}" if closest else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
