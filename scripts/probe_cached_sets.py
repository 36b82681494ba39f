"""Score a run's cached generated sets with the linear probe, and compare synthesizers pair by pair.

    .venv/bin/python scripts/probe_cached_sets.py runs/v2 --dataset mvtec_ad --data-root ../shared/data/mvtec_ad \\
        --category bottle --caption-source ../shared/data/mvtec_caption/captions.json \\
        --synth axf croppaste cutpaste perlin --seeds 0 1 2

Why: at the CPU budget the protocol's U-Net spreads so widely over repetitions that most pairs of
synthesizers tie. ``probe-effnetlite0`` (``benchmark/detectors/probe.py``) has a convex fit, so what
is left of the spread over repetitions is the generated sets' own. This trains it on every cached
set the run made (the ``generate`` job of each synthesizer and seed, found by its parameters, so
nothing is generated again), with the repetition's detector seed, and prints pixel AP and AU-PRO per
set, their mean ± 95 % t-interval, and the paired verdicts of every pair (same seeds and test images,
``benchmark.statistics.compare_paired``). The probe is a diagnostic that no protocol pins: these
figures are not leaderboard results. Reads the training split, the test split (to score) and the sets.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def find_sets(out: Path, protocol: str, dataset: str, category: str, synth: str) -> dict[int, Path]:
    """Seed -> samples folder of the run's finished ``generate`` jobs for (synth, category)."""
    found = {}
    for job in sorted((out / "cache" / "generate").glob("*/job.json")):
        params = json.loads(job.read_text()).get("params", {})
        if (params.get("protocol"), params.get("dataset"), params.get("category"), params.get("synth")) == \
                (protocol, dataset, category, synth) and (job.parent / "samples" / "manifest.jsonl").is_file():
            found[int(params["seed"])] = job.parent / "samples"
    return found


def main(argv: list[str] | None = None) -> int:
    from benchmark.context import load_category
    from benchmark.detectors import create_detector
    from benchmark.evaluation import evaluate_detection
    from benchmark.protocols import get_protocol
    from benchmark.stages import synthetic_set
    from benchmark.statistics import compare_paired, format_summary, summarize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="a benchmark run's --out folder (its cache/generate holds the sets)")
    parser.add_argument("--protocol", default="mvtec-caption-cpu/v2")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--category", required=True)
    parser.add_argument("--data-root")
    parser.add_argument("--caption-source")
    parser.add_argument("--synth", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="generation seeds = detector seeds")
    parser.add_argument("--image-size", type=int, help="the probe's input size (default: the protocol's)")
    args = parser.parse_args(argv)

    protocol = get_protocol(args.protocol)
    ctx = load_category(protocol, args.dataset, args.category, args.data_root, args.caption_source)
    normals = np.stack([normal.image for normal in ctx.train.normals])
    scores: dict[str, dict[str, list[float]]] = {}
    for synth in args.synth:
        sets = find_sets(args.out, protocol.id, args.dataset, args.category, synth)
        missing = [seed for seed in args.seeds if seed not in sets]
        if missing:
            print(f"error: {args.out}: no finished generate job for {synth} {args.category} seed(s) {missing}",
                  file=sys.stderr)
            return 2
        scores[synth] = {"pixel_ap": [], "aupro": []}
        for seed in args.seeds:
            synthetic = synthetic_set(ctx, sets[seed])  # the harness's own reading, files verified
            probe = create_detector("probe-effnetlite0", {"image_size": args.image_size or protocol.image_size}, seed=seed)
            probe.fit(normals, synthetic, progress=False)
            s, maps = probe.predict(ctx.test.images)
            overall, _, _ = evaluate_detection(s, maps, ctx.test.labels, ctx.test.masks, ctx.test.defect_types)
            scores[synth]["pixel_ap"].append(float(overall.pixel_ap))
            scores[synth]["aupro"].append(float(overall.aupro))
            print(json.dumps({"synth": synth, "seed": seed, "set": str(sets[seed].parent.name),
                              "pixel_ap": round(float(overall.pixel_ap), 4), "aupro": round(float(overall.aupro), 4)}),
                  flush=True)
    print(f"\nprobe-effnetlite0 on {args.dataset}/{args.category}, {protocol.id}, seeds {args.seeds} "
          "(mean ± half-width of the 95 % t-interval)")
    for synth, values in scores.items():
        print(f"  {synth:>14}: pixel AP {format_summary(summarize(values['pixel_ap']))}, "
              f"AU-PRO {format_summary(summarize(values['aupro']))}")
    for a, b in itertools.combinations(args.synth, 2):
        for metric in ("pixel_ap", "aupro"):
            c = compare_paired(scores[a][metric], scores[b][metric])
            d = c.difference
            interval = "" if d.ci_low is None else f" [{d.ci_low:+.3f}, {d.ci_high:+.3f}]"
            print(f"  {a} − {b} {metric}: {d.mean:+.3f}{interval} -> {c.verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
