"""Do the plan's captions and masks agree with the normal images they are used on?

For every sample the plan (``synthesis.plan``) makes for a category, prints:

* **variant agreement** (with ``--variants``, e.g. ``banana orange cherry`` for LOCO juice_bottle):
  the share of samples whose caption names the variant the normal image shows, where it names one.
  The normal image's variant is found independently of the plan's nearest-neighbour choice: the
  per-pixel median of the training anomalies whose captions name each variant is a template, and
  the normal image takes the variant of the template nearest in mean CIEDE76 over its foreground;
* **place agreement**: the share of samples whose caption's place words the planned mask satisfies,
  judged by the benchmark's position check (``benchmark/metrics/attribute_checks.py``) in the
  normal image's object frame, and per plan mode (aligned, caption, free);
* **geometry**: how many masks were turned by a quarter turn.

It uses only the training split (as the plan does) and writes nothing.

    .venv/bin/python scripts/caption_agreement_check.py --subset mvtec_loco --data-root ../shared/data/mvtec_loco \\
        --caption-source ../shared/data/mvtec_caption/captions.json --category juice_bottle --image-size 128 \\
        --variants banana orange cherry --n 60
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def named_variants(caption: str, variants: list[str]) -> set[str]:
    words = set(re.findall(r"[a-z]+", caption.lower()))
    return {v for v in variants if v in words}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", default="demo", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--data-root")
    parser.add_argument("--caption-source")
    parser.add_argument("--category", required=True)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--variants", nargs="*", default=[], help="words naming the object's variants")
    parser.add_argument("--n", type=int, default=40, help="samples per defect type")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np

    from benchmark.metrics.attribute_checks import ObjectFrame, check_position, object_mask, stated_attributes
    from benchmark.split import make_split, train_view
    from mvtec_caption import load_dataset
    from mvtec_caption.loader import resolve_dataset
    from synthesis.caption_choice import lab
    from synthesis.masks import estimate_foreground
    from synthesis.plan import Planner

    resolved = resolve_dataset(args.subset, args.data_root, [args.category], caption_source=args.caption_source,
                               progress=False)
    data = load_dataset("mvtec_caption", subset=args.subset, data_root=resolved.root, categories=[args.category],
                        caption_source=args.caption_source, progress=False)
    train = train_view(data, make_split(data, args.category, f"adhoc/{args.image_size}px", args.image_size))
    templates = {}
    for variant in args.variants:
        images = [a.image for a in train.anomalies if named_variants(a.caption, args.variants) == {variant}]
        if images:
            templates[variant] = lab(np.median(np.stack(images), axis=0).astype(np.uint8))
    planner = Planner(train)
    variant_of: dict[str, str] = {}
    agree, named, place = Counter(), Counter(), defaultdict(Counter)
    turned = total = 0
    for defect in train.defect_types:
        for spec in planner.plan(defect, args.n, args.seed):
            total += 1
            turned += bool(re.search(r"\brot(90|270)\b", spec.mask_origin))
            normal = planner.normal_image(spec.normal_id)
            if templates and spec.normal_id not in variant_of:
                foreground, normal_lab = estimate_foreground(normal), lab(normal)
                variant_of[spec.normal_id] = min(templates, key=lambda v: float(
                    np.linalg.norm(normal_lab[foreground] - templates[v][foreground], axis=-1).mean()))
            says = named_variants(spec.caption, args.variants)
            if templates and says:
                named[defect] += 1
                agree[defect] += says == {variant_of[spec.normal_id]}
            words = stated_attributes(spec.caption)["position"]
            frame = ObjectFrame.of(object_mask(normal))
            results = [check_position(w, spec.mask, frame).satisfied for w in words]
            results = [r for r in results if r is not None]
            if results:
                mode = spec.plan.planned.mode if spec.plan else "?"
                place[mode]["samples"] += 1
                place[mode]["satisfied"] += all(results)
    print(f"{train.dataset}/{train.category} at {train.image_size} px, {total} planned samples (seed {args.seed})")
    if templates:
        print(f"normal images by variant template: {dict(Counter(variant_of.values()))}")
        for defect in sorted(named):
            print(f"variant agreement, {defect}: {agree[defect]}/{named[defect]} = {agree[defect] / named[defect]:.3f} "
                  "of the captions naming a variant name the one the normal image shows")
    for mode, tally in sorted(place.items()):
        print(f"place agreement ({mode} masks): {tally['satisfied']}/{tally['samples']} = "
              f"{tally['satisfied'] / tally['samples']:.3f} of the samples with checkable place words satisfy all of them")
    print(f"masks turned by a quarter turn: {turned}/{total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
