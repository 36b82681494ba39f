"""Lay a generated set of this project out in another method's folder layout (export).

    python scripts/relayout_generated_set.py runs/x/cache/generate/<key>/samples out/ad --layout anomalydiffusion
    python scripts/relayout_generated_set.py SET OUT --layout anomalydiffusion --lossless   # PNG instead of JPEG
    python scripts/relayout_generated_set.py SET OUT --layout anomalydiffusion --with-sources --data-root ~/data/mvtec_ad
        # also writes each sample's normal source (AnomalyDiffusion's ori/), read from the training split

JPEG is written at PIL's default quality (75), as AnomalyDiffusion's ``save_image`` does; masks too.
Importing the result with ``benchmark run --synth folder:OUT --layout anomalydiffusion`` scores it
like the original (identically when ``--lossless``). The layouts are in :mod:`synthesis.layouts`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from synthesis.generated_set import read_info
    from synthesis.layouts import LAYOUTS, get_layout

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", help="a generated-set folder (generation.json, manifest.jsonl)")
    parser.add_argument("out", help="root folder of the re-laid set (<out>/<category>/... is written)")
    parser.add_argument("--layout", required=True, choices=sorted(name for name in LAYOUTS if name != "native"))
    parser.add_argument("--lossless", action="store_true", help="PNG files instead of the layout's JPEG")
    parser.add_argument("--size", type=int, help="write images and masks at this size (AnomalyDiffusion writes 256)")
    parser.add_argument("--with-sources", action="store_true",
                        help="also write each sample's normal source image, when the layout keeps one (loads the dataset)")
    parser.add_argument("--data-root", help="dataset root for --with-sources (default: $MVTEC_AD_ROOT / "
                                            "$MVTEC_LOCO_ROOT; the demo set needs none)")
    parser.add_argument("--caption-source", help="captions, to load the dataset for --with-sources")
    args = parser.parse_args(argv)
    try:
        info = read_info(Path(args.set))
        normals = None
        if args.with_sources:
            from benchmark.context import load_category
            from benchmark.protocols import get_protocol

            ctx = load_category(get_protocol(info.protocol_id), info.dataset, info.category, args.data_root,
                                args.caption_source)
            normals = {normal.image_id: normal.image for normal in ctx.train.normals}
        folder = get_layout(args.layout).export(Path(args.set), Path(args.out), lossless=args.lossless, normals=normals,
                                                  size=args.size)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{info.samples} samples of {info.synthesizer.name} ({info.dataset}/{info.category}) written to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
