"""Sweep AXF's guidance scales: how each (text, image) pair moves caption faithfulness and label fidelity.

AXF is fitted once per synthesizer on the training split (or loaded with ``--checkpoint``); then,
for every (text, image) scale pair of the grid, only ``guidance_text`` / ``guidance_image`` change
(sampling settings: no refit) and the caption-swap check of ``scripts/caption_swap_check.py`` runs
on the same normal images, masks and seeds (text mode: the mask stays, only the caption's word
changes, so only what is painted can follow it). Printed per pair, mean ± std over the seeds:

* ``follows asked`` / ``follows the other``: shares of pair directions whose output satisfies the
  asked attribute and not the other one, and the reverse (``caption-attribute-faithfulness-v1``'s
  checks, ``benchmark/metrics/attribute_checks.py``);
* ``visible``: label fidelity, the mean visible share of the mask (``synthesis/fidelity.py``), and
  ``< floor``: the share of samples below ``VISIBLE_FLOOR`` (the ones AXF would redo);
* ``Δ caption``: mean absolute difference inside the mask, in grey levels, between the two
  captions' outputs of a pair (how far the words move the pixels at all).

A synthesizer without a text branch (``axf-no-text``) is swept over the image scales only (its text
scale is a no-op, see ``synthesis/axf/guidance.py``); it is the baseline the text scales must beat
by more than the seed spread. Everything runs inside :func:`synthesis.guard.forbid_reading` on the
prepared training split: the scales are chosen without test data.

    .venv/bin/python scripts/axf_guidance_sweep.py --subset demo --category disc --image-size 64 --n 6 \\
        --seeds 0 1 2 --text-scales 0 1 3 6 --image-scales 1 2 --config all:train_steps=150
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


class Observer:
    """Label fidelity of every sample, and the in-mask difference between the two outputs of each pair."""

    def __init__(self) -> None:
        self.visible: list[float] = []
        self.deltas: list[float] = []
        self._previous: Any = None

    def __call__(self, request: Any, output: Any, normal: Any) -> None:
        import numpy as np

        from synthesis.fidelity import label_fidelity

        self.visible.append(label_fidelity(output.image, normal, output.mask).visible_share)
        if self._previous is None:
            self._previous = output
            return
        first, self._previous = self._previous, None  # judge() generates the two captions of a pair in turn
        inside = np.asarray(first.mask, dtype=bool) & np.asarray(output.mask, dtype=bool)
        if inside.any():
            diff = np.abs(first.image.astype(np.float32) - output.image.astype(np.float32)).max(axis=-1)
            self.deltas.append(float(diff[inside].mean()))


def sweep(synthesizer: Any, train: Any, text_scales: list[float], image_scales: list[float],
          args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per scale pair: caption-swap figures and fidelity on the same outputs."""
    import numpy as np

    from caption_swap_check import judge, summarise
    from synthesis.fidelity import VISIBLE_FLOOR

    rows = []
    base = synthesizer.config
    for image_scale in image_scales:
        for text_scale in text_scales if synthesizer.config.use_text else [1.0]:
            synthesizer.config = base.model_copy(update={"guidance_text": text_scale, "guidance_image": image_scale})
            observer = Observer()
            started = time.perf_counter()
            tallies = judge(synthesizer, train, args.seeds, args.n, args.kinds, ["text"], observe=observer)
            seconds = time.perf_counter() - started
            visible = np.asarray(observer.visible)
            for (mode, kind), per_seed in sorted(tallies.items()):
                rows.append({
                    "synth": synthesizer.name, "text": text_scale if synthesizer.config.use_text else None,
                    "image": image_scale, "mode": mode, "kind": kind, **summarise(per_seed),
                    "visible_mean": float(visible.mean()) if visible.size else None,
                    "below_floor": float((visible < VISIBLE_FLOOR).mean()) if visible.size else None,
                    "pair_delta": float(np.mean(observer.deltas)) if observer.deltas else None,
                    "seconds": round(seconds, 1),
                })
                print(f"# {json.dumps(rows[-1])}", file=sys.stderr, flush=True)  # partial results of a long sweep
    synthesizer.config = base
    return rows


def _fitted(name: str, args: argparse.Namespace, prepared: Any) -> Any:
    from caption_swap_check import _synthesizer

    from synthesis.guard import forbid_reading

    with forbid_reading(prepared.forbidden_paths):
        return _synthesizer(name, args, prepared.train)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from mvtec_caption.prepare import prepare_category
    from synthesis.cli import adhoc_protocol_id
    from synthesis.guard import forbid_reading

    prepared = prepare_category(args.category, protocol_id=adhoc_protocol_id(args.image_size), image_size=args.image_size,
                                subset=args.subset, data_root=args.data_root, caption_source=args.caption_source)
    rows: list[dict[str, Any]] = []
    for name in args.synth:
        synthesizer = _fitted(name, args, prepared)
        with forbid_reading(prepared.forbidden_paths):
            rows += sweep(synthesizer, prepared.train, args.text_scales, args.image_scales, args)
    return {"rows": rows, "dataset": prepared.train.dataset, "category": prepared.train.category,
            "image_size": prepared.train.image_size, "seeds": args.seeds, "n": args.n}


def _cell(mean: float | None, std: float | None = None, digits: int = 3) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    from caption_swap_check import SWAPS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", default="demo", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--data-root")
    parser.add_argument("--caption-source")
    parser.add_argument("--category", required=True)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--synth", action="append", help="default: axf and axf-no-text")
    parser.add_argument("--config", action="append", default=[], metavar="SYNTH:KEY=VALUE",
                        help="config override for one synthesizer (or all:KEY=VALUE)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="SYNTH=FOLDER")
    parser.add_argument("--tiny", action="store_true", help="start from AXF's tiny_config (smoke runs)")
    parser.add_argument("--text-scales", type=float, nargs="+", default=[0.0, 1.0, 3.0, 6.0])
    parser.add_argument("--image-scales", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--n", type=int, default=6, help="samples per defect type and repetition")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="generation seeds (repetitions)")
    parser.add_argument("--kinds", nargs="+", default=["colour"], choices=list(SWAPS),
                        help="attribute kinds to swap (text mode: only colour depends on what is painted)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.synth = args.synth or ["axf", "axf-no-text"]
    result = run(args)
    print(f"guidance sweep on {result['dataset']}/{result['category']} at {result['image_size']} px, caption-swap "
          f"text mode (mean ± std over {len(args.seeds)} seeds, {args.n} samples per defect type)")
    print("| synth | text | image | kind | directions | follows asked | follows the other | visible | < floor "
          "| Δ caption | s |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["rows"]:
        text = "-" if r["text"] is None else f"{r['text']:g}"
        print(f"| {r['synth']} | {text} | {r['image']:g} | {r['kind']} | {r['directions']} | "
              f"{_cell(r['follows_mean'], r['follows_std'])} | {_cell(r['against_mean'], r['against_std'])} | "
              f"{_cell(r['visible_mean'])} | {_cell(r['below_floor'])} | {_cell(r['pair_delta'], digits=2)} | "
              f"{r['seconds']:g} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
