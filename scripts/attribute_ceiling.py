"""The ceiling of caption faithfulness by attribute: how often real anomalies satisfy their own captions.

Runs the attribute checks of ``caption-attribute-faithfulness-v1`` (``benchmark/metrics/attribute_checks.py``)
on every real annotated anomaly of a category - the few-shot training third and the test split, at
the protocol's resolution - with the image's own ground-truth mask and caption. A generated set
cannot be expected to score above this: it is what the rules reach on the real thing. It reads test
images and masks because it evaluates the checks; it is not a synthesizer and no synthesizer sees
its output.

The normal image a real anomaly is compared with (colour) and whose object gives the position
frame is the per-pixel median of the category's normal training images (a generated sample uses
its own normal source image instead); the size reference is, as in the metric, all real annotated
anomalies of the category.

    .venv/bin/python scripts/attribute_ceiling.py \\
        --item mvtec_ad ../shared/data/mvtec_ad bottle --item mvtec_loco ../shared/data/mvtec_loco juice_bottle \\
        --caption-source ../shared/data/mvtec_caption/captions.json --markdown
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ceiling(subset: str, data_root: str, category: str, caption_source: str | None, protocol_id: str,
            failures: bool) -> dict:
    """Checks of every real anomaly of one category: {kind: [AttributeCheck]}, per-word tallies, failures."""
    import numpy as np

    from benchmark.context import load_category
    from benchmark.metrics.attribute_checks import SizeReference, check_caption
    from benchmark.protocols import get_protocol

    ctx = load_category(get_protocol(protocol_id), subset, category, data_root, caption_source)
    real = [(a.image, a.mask, a.caption, a.defect_type) for a in ctx.train.anomalies]
    real += [(image, mask, caption or "", defect) for image, mask, defect, caption
             in zip(ctx.test.images, ctx.test.masks, ctx.test.defect_types, ctx.test.captions) if defect != "good"]
    normal = np.median(np.stack([n.image for n in ctx.train.normals]), axis=0).round().astype(np.uint8)
    sizes = SizeReference.from_masks([mask for _, mask, _, _ in real])
    by_kind: dict[str, list] = defaultdict(list)
    by_word: dict[tuple[str, str], list] = defaultdict(list)
    shown = []
    for image, mask, caption, defect in real:
        for check in check_caption(caption, image, mask, normal, sizes):
            by_kind[check.kind].append(check)
            by_word[(check.kind, check.word)].append(check)
            if failures and check.satisfied is False:
                shown.append(f"  {defect}: {caption!r} {check.kind} {check.word!r}: {check.detail}")
    return {"subset": subset, "category": category, "n_real": len(real), "with_attributes": sum(
        any(True for _ in check_caption(c, i, m, normal, sizes)) for i, m, c, _ in real),
        "by_kind": by_kind, "by_word": by_word, "failures": shown, "image_size": ctx.protocol.image_size,
        "size_medians": sizes.medians}


def _cell(checks: list) -> str:
    decided = [c.satisfied for c in checks if c.satisfied is not None]
    unchecked = sum(c.satisfied is None for c in checks)
    if not checks:
        return "–"
    text = f"{sum(decided) / len(decided):.3f} ({sum(decided)}/{len(decided)})" if decided else "n/a"
    return text + (f", {unchecked} not checkable" if unchecked else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--item", nargs=3, action="append", required=True, metavar=("DATASET", "DATA_ROOT", "CATEGORY"))
    parser.add_argument("--caption-source")
    parser.add_argument("--protocol", default="mvtec-caption-cpu/v1", help="its image size is used (default 128 px)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--failures", action="store_true", help="list every contradicted attribute")
    args = parser.parse_args(argv)
    from benchmark.metrics.attribute_checks import CHECK_RULES_VERSION, KINDS
    from mvtec_caption.attributes import VOCABULARY_VERSION

    results = [ceiling(d, root, c, args.caption_source, args.protocol, args.failures) for d, root, c in args.item]
    print(f"attribute checks v{CHECK_RULES_VERSION} on caption vocabulary v{VOCABULARY_VERSION}; protocol "
          f"{args.protocol} ({results[0]['image_size']} px); share of satisfied attributes (satisfied/checked)")
    header = ["dataset / category", "real anomalies", "with attributes", *KINDS]
    rows = [[f"{r['subset']} / {r['category']}", str(r["n_real"]), str(r["with_attributes"]),
             *(_cell(r["by_kind"].get(kind, [])) for kind in KINDS)] for r in results]
    if args.markdown:
        print("| " + " | ".join(header) + " |\n|" + "|".join("---" for _ in header) + "|")
        print("\n".join("| " + " | ".join(row) + " |" for row in rows))
    else:
        widths = [max(len(x) for x in column) for column in zip(header, *rows)]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    for r in results:
        print(f"\n{r['subset']} / {r['category']} by word (size medians over its real defects: "
              + ", ".join(f"{k} {v:.4f}" for k, v in r["size_medians"].items()) + "):")
        for (kind, word), checks in sorted(r["by_word"].items()):
            print(f"  {kind:<9} {word:<12} {_cell(checks)}")
        if r["failures"]:
            print("contradicted:")
            print("\n".join(r["failures"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
