"""Which attribute kinds and words carry a generated set's caption-attribute score.

    .venv/bin/python scripts/attribute_breakdown.py runs/v2/cache/generate/<key>/samples [...] \\
        --dataset mvtec_loco --data-root ../shared/data/mvtec_loco --category juice_bottle \\
        --caption-source ../shared/data/mvtec_caption/captions.json

For every set: the share of satisfied checks per attribute kind and per word (the checks of
``caption-attribute-faithfulness-v1``, ``benchmark/metrics/attribute_checks.py``, on each sample's
caption, image, mask and normal source), the median number of mask components and the mean mask area.
Sizes are judged against the training split's masks only (the metric's reference also holds the test
masks, so size shares can differ slightly from the record's); everything else is the metric's rule.
Why: a score that rises with scattered multi-component masks (perlin on juice_bottle) is a property
of the check, and this shows which check carries it. Reads the training split and the sets, no test data.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from benchmark.context import load_category
    from benchmark.metrics.attribute_checks import SizeReference, check_caption
    from benchmark.protocols import get_protocol
    from synthesis.generated_set import load_samples, read_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", type=Path, nargs="+", help="generated-set folders (generation.json, manifest.jsonl)")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--category", required=True)
    parser.add_argument("--data-root")
    parser.add_argument("--caption-source")
    args = parser.parse_args(argv)
    try:
        infos = [read_info(folder) for folder in args.sets]
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ctx = load_category(get_protocol(infos[0].protocol_id), args.dataset, args.category, args.data_root, args.caption_source)
    normals = {normal.image_id: normal.image for normal in ctx.train.normals}
    reference = SizeReference.from_masks([anomaly.mask for anomaly in ctx.train.anomalies])
    for folder, info in zip(args.sets, infos):
        kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        words: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        components, areas = [], []
        rows = load_samples(folder)
        for sample, image, mask in rows:
            components.append(ndimage.label(mask, structure=np.ones((3, 3)))[1])
            areas.append(float(mask.mean()))
            for check in check_caption(sample.caption or "", image, mask, normals.get(sample.normal_id), reference):
                if check.satisfied is None:
                    continue
                for tally in (kinds[check.kind], words[f"{check.kind}:{check.word}"]):
                    tally[0] += int(check.satisfied)
                    tally[1] += 1
        print(f"{info.synthesizer.name} {info.synthesizer.version} ({folder}): {len(rows)} samples, mask components median {np.median(components):g}, "
              f"mean mask area {np.mean(areas):.3f} of the image")
        for label, tallies in (("kind", kinds), ("word", words)):
            print(f"  by {label}: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(tallies.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
