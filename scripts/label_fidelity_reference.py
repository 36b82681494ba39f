"""Reference values of label fidelity: Crop&Paste and real anomalies against an aligned normal image.

A synthesizer's label fidelity (:mod:`synthesis.fidelity`) says how much of each mask visibly
differs from the normal image the sample was made from. To read such a number one needs its
value where the answer is known to be "a real, visible defect":

* **Crop&Paste**: the few-shot training defects pasted, unchanged, into the planned masks (the
  start AXF harmonises), on the protocol's plan (same normals, masks and seeds as a run);
* **real anomalies**: a real anomalous image has no normal source, so one is made: every normal
  training image is aligned to it by masked phase correlation (translation only, the defect and
  a margin of ``MARGIN`` px excluded), and the one with the smallest mean absolute difference
  outside the mask is its stand-in source. Shown for the few-shot training third and for the test
  anomalies (evaluation only; no setting is chosen on them). Alignment is imperfect (the
  ``residual`` column: median absolute difference outside the mask, grey levels), which shows up
  as spill. For the generated ``fibreboard`` demo category the exact defect-free scene of every
  anomaly is known (:func:`mvtec_caption.demo_fibreboard.clean_sources`) and used instead.

Prints one table per category: per defect type the mean visible share, the share of images below
the floor, the mean spill share and the share of images with colour added inside the mask (the
``colour-added-share`` metric: on a grey category any is artificial; on a colour category real
defects add colour too, which is what this column shows).

    .venv/bin/python scripts/label_fidelity_reference.py --dataset mvtec_ad --data-root ../shared/data/mvtec_ad \
        --caption-source ../shared/data/mvtec_caption/captions.json --category bottle
    .venv/bin/python scripts/label_fidelity_reference.py --dataset demo --category fibreboard
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.metrics.label_fidelity import COLOUR_LEVELS, COLOUR_SHARE  # noqa: E402
from synthesis.colour import added_chroma  # noqa: E402
from synthesis.fidelity import VISIBLE_FLOOR, label_fidelity, luminance  # noqa: E402

Row = tuple[float, float, float]  # visible share, spill share, colour added (0/1)

MARGIN = 4  # px around the mask left out of the alignment
CANDIDATES = 8  # normals registered per anomaly (the closest ones before alignment)


def aligned_normal(image: np.ndarray, mask: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, float]:
    """The training normal image that best matches ``image`` outside ``mask`` after a translation, and its residual."""
    from skimage.registration import phase_cross_correlation

    outside = ~ndimage.binary_dilation(mask, iterations=MARGIN)
    target = luminance(image)
    lums = np.stack([luminance(n) for n in normals])
    raw = np.abs(lums - target)[:, outside].mean(axis=1)
    best: tuple[float, np.ndarray] | None = None
    for index in np.argsort(raw)[:CANDIDATES]:
        shift = phase_cross_correlation(target, lums[index], reference_mask=outside, moving_mask=np.ones_like(outside))
        shift = shift[0] if isinstance(shift, tuple) else shift
        moved = np.stack([ndimage.shift(normals[index][..., c].astype(np.float32), shift, order=1, mode="nearest")
                          for c in range(3)], axis=-1)
        moved = np.clip(np.rint(moved), 0, 255).astype(np.uint8)
        residual = float(np.median(np.abs(luminance(moved) - target)[outside]))
        if best is None or residual < best[0]:
            best = (residual, moved)
    assert best is not None
    return best[1], best[0]


def score(image: np.ndarray, source: np.ndarray, mask: np.ndarray) -> Row:
    fidelity = label_fidelity(image, source, mask)
    gained = added_chroma(image, source)[mask]
    return fidelity.visible_share, fidelity.spill_share, float((gained > COLOUR_LEVELS).mean() > COLOUR_SHARE)


def summarise(rows: Sequence[Row]) -> tuple[float, float, float, float]:
    array = np.array(rows)
    return (float(array[:, 0].mean()), float((array[:, 0] < VISIBLE_FLOOR).mean()), float(array[:, 1].mean()),
            float(array[:, 2].mean()))


def croppaste_rows(ctx, n: int, seed: int) -> dict[str, list[Row]]:  # noqa: ANN001
    from synthesis import registry
    from synthesis.plan import Planner

    synthesizer = registry.create("croppaste")
    synthesizer.fit(ctx.train, progress=False)
    planner = Planner(ctx.train)
    rows: dict[str, list[Row]] = {}
    for defect in ctx.train.defect_types:
        for spec in planner.plan(defect, n, seed):
            normal = planner.normal_image(spec.normal_id)
            output = synthesizer.synthesize(spec, normal, np.random.default_rng(spec.seed))
            rows.setdefault(defect, []).append(score(output.image, normal, output.mask))
    return rows


def exact_sources(dataset: str, category: str, size: int) -> dict[tuple[str, str], np.ndarray] | None:
    """The defect-free scenes of a generated category, at ``size`` (resized like the split's images), if known."""
    from PIL import Image

    from mvtec_caption import demo_fibreboard

    if dataset != "demo" or category != demo_fibreboard.CATEGORY:
        return None
    return {key: np.asarray(Image.fromarray(clean).convert("RGB").resize((size, size), Image.BICUBIC))
            for key, clean in demo_fibreboard.clean_sources().items()}


def real_rows(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], defects: Sequence[str], ids: Sequence[str],
              normals: np.ndarray, exact: dict[tuple[str, str], np.ndarray] | None
              ) -> tuple[dict[str, list[Row]], dict[str, list[float]]]:
    rows: dict[str, list[Row]] = {}
    residuals: dict[str, list[float]] = {}
    for image, mask, defect, image_id in zip(images, masks, defects, ids):
        if defect == "good" or not mask.any():
            continue
        if exact is not None:
            source = exact[defect, image_id]
            residual = float(np.median(np.abs(luminance(source) - luminance(image))[~mask]))
        else:
            source, residual = aligned_normal(image, mask, normals)
        rows.setdefault(defect, []).append(score(image, source, mask))
        residuals.setdefault(defect, []).append(residual)
    return rows, residuals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mvtec_ad", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--data-root")
    parser.add_argument("--caption-source")
    parser.add_argument("--category", required=True)
    parser.add_argument("--protocol", default="mvtec-caption-cpu/v2", help="image size and images per defect type")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from benchmark.context import load_category
    from benchmark.protocols import get_protocol

    protocol = get_protocol(args.protocol)
    ctx = load_category(protocol, args.dataset, args.category, args.data_root, args.caption_source)
    normals = np.stack([n.image for n in ctx.train.normals])
    columns = {"Crop&Paste": croppaste_rows(ctx, protocol.n_generated_per_defect, args.seed)}
    exact = exact_sources(args.dataset, args.category, protocol.image_size)
    anomalies = ctx.train.anomalies
    train_rows, train_residuals = real_rows([a.image for a in anomalies], [a.mask for a in anomalies],
                                            [a.defect_type for a in anomalies], [a.image_id for a in anomalies], normals, exact)
    test_items = ctx.split.test_good + ctx.split.test_anomalous  # the order of ctx.test's rows
    test_rows, test_residuals = real_rows(ctx.test.images, ctx.test.masks, ctx.test.defect_types,
                                          [item.image_id for item in test_items], normals, exact)
    columns["real (training third)"] = train_rows
    columns["real (test)"] = test_rows
    print(f"{args.dataset}/{args.category} at {protocol.image_size} px ({protocol.id}); floor {VISIBLE_FLOOR}; "
          "visible share / share below floor / spill share / colour added (n)")
    defects = sorted({d for rows in columns.values() for d in rows})
    header = f"| defect type | {' | '.join(columns)} | residual train / test |"
    print(header)
    print("|---" * (len(columns) + 2) + "|")
    for defect in [*defects, "mean over types"]:
        cells = []
        for rows in columns.values():
            if defect == "mean over types":
                values = [summarise(r) for r in rows.values()]
                mean = np.mean(values, axis=0) if values else None
                cells.append("–" if mean is None else " / ".join(f"{v:.2f}" for v in mean))
            elif defect in rows:
                cells.append(" / ".join(f"{v:.2f}" for v in summarise(rows[defect])) + f" ({len(rows[defect])})")
            else:
                cells.append("–")
        residual = "–" if defect == "mean over types" else " / ".join(
            f"{np.mean(r[defect]):.1f}" if defect in r else "–" for r in (train_residuals, test_residuals))
        print(f"| {defect} | {' | '.join(cells)} | {residual} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
