"""Caption-swap check: does a synthesizer follow the attribute a caption asks for, rather than another one?

The same normal images, seeds and (in ``text`` mode) masks are generated under two captions that
differ in one attribute - the training caption and a copy with one word swapped ("red" -> "blue",
"upper" -> "lower", "small" -> "large", "two" -> "three") - and each output is judged with the
attribute checks of ``caption-attribute-faithfulness-v1`` (``benchmark/metrics/attribute_checks.py``)
on the asked word and on the other one. A pair direction *follows* when the asked word is satisfied
and the other is not, goes *against* in the opposite case, and is *undecided* otherwise (both,
neither, or not checkable).

Two modes:

* ``text``: the mask is the one planned for the training caption and only the caption text changes,
  so only what the synthesizer paints can follow the words (colour; place, size and count are
  decided by the mask, which stays fixed, so they follow exactly half of the directions);
* ``planned``: the mask is planned from each caption (``synthesis.plan``), so place, size and count
  words are followed by the plan, the same for every synthesizer that uses planned masks.

Figures are the share of pair directions that follow / go against, per kind and synthesizer, as the
mean and standard deviation over repetitions (generation seeds). It fits each synthesizer on the
training split (or loads ``--checkpoint NAME=FOLDER``) and reads no test data.

    .venv/bin/python scripts/caption_swap_check.py --subset demo --category disc --synth axf --synth axf-no-text \\
        --image-size 64 --n 6 --seeds 0 1 2 --config axf:train_steps=150
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: One-word swaps per attribute kind; a caption is swapped at the first word of the kind that has one.
SWAPS: dict[str, dict[str, str]] = {
    "colour": {"red": "blue", "blue": "red", "green": "red", "yellow": "blue", "brown": "white", "white": "black",
               "black": "white", "orange": "blue", "grey": "red", "gray": "red", "pink": "green", "purple": "yellow"},
    "position": {"upper": "lower", "lower": "upper", "top": "bottom", "bottom": "top", "left": "right", "right": "left"},
    "size": {"small": "large", "large": "small", "long": "short", "short": "long", "thin": "thick", "thick": "thin",
             "tiny": "large", "big": "small"},
    "count": {"one": "three", "two": "three", "three": "two", "four": "two", "single": "three"},
}
#: The word the checks use for a swapped word (the caption vocabulary's folding).
CHECK_WORD = {"tiny": "small", "big": "large", "gray": "grey", "one": "1", "single": "1", "two": "2", "three": "3",
              "four": "4"}


def swap(caption: str, kind: str) -> tuple[str, str, str] | None:
    """(swapped caption, original word, new word) at the first swappable word of ``kind``; None if none."""
    for match in re.finditer(r"[A-Za-z]+", caption):
        word = match.group(0)
        new = SWAPS[kind].get(word.lower())
        if new is not None and not (kind == "colour" and caption[match.end():].lstrip().lower().startswith("juice")):
            new = new.capitalize() if word[0].isupper() else new
            return caption[:match.start()] + new + caption[match.end():], word.lower(), new.lower()
    return None


def satisfied(kind: str, word: str, image: Any, mask: Any, normal: Any, sizes: Any) -> bool | None:
    from benchmark.metrics import attribute_checks as checks

    word = CHECK_WORD.get(word, word)
    if kind == "colour":
        return checks.check_colours([word], image, mask, normal)[0].satisfied
    if kind == "position":
        return checks.check_position(word, mask, checks.ObjectFrame.of(checks.object_mask(normal))).satisfied
    if kind == "size":
        return checks.check_size(word, mask, sizes).satisfied
    return checks.check_count(word, mask).satisfied


def _train(args: argparse.Namespace) -> Any:
    from benchmark.split import make_split, train_view
    from mvtec_caption import load_dataset
    from mvtec_caption.loader import resolve_dataset

    resolved = resolve_dataset(args.subset, args.data_root, [args.category], caption_source=args.caption_source,
                               progress=False)
    data = load_dataset("mvtec_caption", subset=args.subset, data_root=resolved.root, categories=[args.category],
                        caption_source=args.caption_source, progress=False)
    return train_view(data, make_split(data, args.category, f"adhoc/{args.image_size}px", args.image_size))


def _synthesizer(name: str, args: argparse.Namespace, train: Any) -> Any:
    from synthesis import registry
    from synthesis.checkpoint import load_checkpoint

    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    if name in checkpoints:
        return load_checkpoint(Path(checkpoints[name]), expect_name=name)
    overrides: dict[str, Any] = {}
    for item in args.config:
        target, _, setting = item.partition(":")
        if target in (name, "all"):
            key, _, value = setting.partition("=")
            try:
                overrides[key] = json.loads(value)
            except json.JSONDecodeError:
                overrides[key] = value
    if args.tiny:
        overrides = {**registry.entry(name).load_class().tiny_config(), **overrides}
    synthesizer = registry.create(name, config=overrides)
    started = time.perf_counter()
    synthesizer.fit(train, progress=False)
    print(f"# fitted {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return synthesizer


Tally = dict[tuple[str, str], dict[int, list[int]]]  # [(mode, kind)][seed] = [follows, against, undecided]


def judge(synthesizer: Any, train: Any, seeds: list[int], n: int, kinds: list[str], modes: list[str],
          examples: list[str] | None = None, limit: int = 0, observe: Any = None) -> Tally:
    """Generate the swapped pairs with one synthesizer and count the verdicts per (mode, kind) and seed.

    ``observe(request, output, normal)``, when given, sees every generated sample (for other figures
    on the same outputs, e.g. label fidelity in ``scripts/axf_guidance_sweep.py``).
    """
    from benchmark.metrics.attribute_checks import SizeReference
    from synthesis.plan import Planner

    sizes = SizeReference.from_masks([a.mask for a in train.anomalies])
    planner = Planner(train)
    tallies: Tally = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for seed in seeds:
        for defect in train.defect_types:
            for spec in planner.plan(defect, n, seed):
                normal = planner.normal_image(spec.normal_id)
                for kind in kinds:
                    swapped = swap(spec.caption, kind)
                    if swapped is None:
                        continue
                    other_caption, word, other = swapped
                    for mode in modes:
                        if mode == "planned" and kind == "colour":
                            continue  # the plan reads no colour words: same as text mode
                        if mode == "text":
                            asked = [(spec, word, other), (dataclasses.replace(spec, caption=other_caption), other, word)]
                        else:
                            replanned = Planner(train, caption=other_caption).plan(defect, 1, seed, start=spec.index)[0]
                            asked = [(spec, word, other), (replanned, other, word)]
                        outputs = synthesizer.synthesize_batch([s for s, _, _ in asked], [normal] * len(asked))
                        for (request, want, not_want), output in zip(asked, outputs):
                            if observe is not None:
                                observe(request, output, normal)
                            yes = satisfied(kind, want, output.image, output.mask, normal, sizes)
                            no = satisfied(kind, not_want, output.image, output.mask, normal, sizes)
                            cell = tallies[(mode, kind)][seed]
                            cell[0 if yes and no is False else 1 if no and yes is False else 2] += 1
                            if examples is not None and len(examples) < limit:
                                examples.append(f"{synthesizer.name} {mode} {kind}: {request.caption!r} asked {want!r}: "
                                                f"{yes}, other {not_want!r}: {no}")
    return tallies


def summarise(per_seed: dict[int, list[int]]) -> dict[str, Any]:
    """Shares of pair directions that follow / go against: mean and standard deviation over seeds."""
    import numpy as np

    follows = [c[0] / max(1, sum(c)) for c in per_seed.values()]
    against = [c[1] / max(1, sum(c)) for c in per_seed.values()]
    return {"directions": int(sum(sum(c) for c in per_seed.values())),
            "follows_mean": float(np.mean(follows)), "follows_std": float(np.std(follows)),
            "against_mean": float(np.mean(against)), "against_std": float(np.std(against)),
            "repetitions": len(per_seed)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    train = _train(args)
    rows: list[dict[str, Any]] = []
    examples: list[str] = []
    for name in args.synth:
        synthesizer = _synthesizer(name, args, train)
        tallies = judge(synthesizer, train, args.seeds, args.n, args.kinds, args.modes, examples, args.examples)
        rows += [{"synth": name, "mode": mode, "kind": kind, **summarise(per_seed)}
                 for (mode, kind), per_seed in sorted(tallies.items())]
    return {"rows": rows, "examples": examples, "dataset": train.dataset, "category": train.category,
            "image_size": train.image_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", default="demo", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--data-root")
    parser.add_argument("--caption-source")
    parser.add_argument("--category", required=True)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--synth", action="append", required=True)
    parser.add_argument("--config", action="append", default=[], metavar="SYNTH:KEY=VALUE",
                        help="config override for one synthesizer (or all:KEY=VALUE)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="SYNTH=FOLDER")
    parser.add_argument("--tiny", action="store_true", help="start from each synthesizer's tiny_config (smoke runs)")
    parser.add_argument("--n", type=int, default=6, help="samples per defect type and repetition")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="generation seeds (repetitions)")
    parser.add_argument("--kinds", nargs="+", default=list(SWAPS), choices=list(SWAPS))
    parser.add_argument("--modes", nargs="+", default=["text", "planned"], choices=["text", "planned"])
    parser.add_argument("--examples", type=int, default=0, help="print this many single judgements")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(args)
    print(f"caption-swap check on {result['dataset']}/{result['category']} at {result['image_size']} px "
          f"(shares of pair directions; mean ± std over {len(args.seeds)} seeds)")
    print("| synth | mode | kind | directions | follows asked | follows the other |")
    print("|---|---|---|---:|---:|---:|")
    for r in result["rows"]:
        print(f"| {r['synth']} | {r['mode']} | {r['kind']} | {r['directions']} | {r['follows_mean']:.3f} ± "
              f"{r['follows_std']:.3f} | {r['against_mean']:.3f} ± {r['against_std']:.3f} |")
    for line in result["examples"]:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
