"""Do "missing" captions remove content? Checked over every sample of a generated set that says "missing".

For each sample whose caption names a missing part (:func:`synthesis.missing_content.missing_part`),
the part's region in the sample's normal image is found by aligning the training anomalies whose
captions name the same part (their masks mark where the part was; the region is where at least half
of the moved masks agree), leaving out the anomaly that lent the sample its caption and mask when
others exist. Prints the shares of:

* **mask on the part**: the planned mask overlaps that region with IoU >= ``--iou`` (0.5);
* **content removed**: inside the region, the generated image is nearer the removed look (the same
  references aligned with the normal image, the lending anomaly left out) than the normal image,
  by the score and threshold of :mod:`synthesis.missing_content`;
* **caption fruit agrees** (with ``--variants``): the caption names the variant the normal image
  shows, judged by the training anomaly (naming one variant) nearest over the whole image (CIEDE76).

``--calibrate`` first checks the removal threshold on the training split alone: every training
anomaly of a part (against the nearest other normal image, references: the other anomalies of that
part) should score as removed, and every training normal image (against the nearest other normal
image, references: all anomalies of that part) as not removed.

Uses only the training split (as the plan does) and the generated set; writes nothing.

    .venv/bin/python scripts/missing_content_check.py --samples gen/croppaste/samples --subset mvtec_loco \\
        --data-root ../shared/data/mvtec_loco --caption-source ../shared/data/mvtec_caption/captions.json \\
        --variants banana orange cherry --calibrate
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _share(hits: int, total: int) -> str:
    return f"{hits}/{total} = {hits / total:.3f}" if total else "0/0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", required=True, help="a generated set (the samples/ folder of synthesis generate)")
    parser.add_argument("--subset", default="demo", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--data-root")
    parser.add_argument("--caption-source")
    parser.add_argument("--variants", nargs="*", default=[], help="words naming the object's variants")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU of mask and part region that counts as on the part")
    parser.add_argument("--calibrate", action="store_true", help="check the removal threshold on the training split")
    parser.add_argument("--verbose", action="store_true", help="one line per sample")
    args = parser.parse_args(argv)

    import numpy as np

    from benchmark.split import make_split, train_view
    from mvtec_caption import load_dataset
    from mvtec_caption.loader import resolve_dataset
    from scripts.caption_agreement_check import named_variants
    from synthesis import missing_content as mc
    from synthesis.caption_choice import lab
    from synthesis.generated_set import load_samples, read_info
    from synthesis.masks import estimate_foreground

    samples_dir = Path(args.samples)
    info = read_info(samples_dir)
    category = info.category
    resolved = resolve_dataset(args.subset, args.data_root, [category], caption_source=args.caption_source,
                               progress=False)
    data = load_dataset("mvtec_caption", subset=args.subset, data_root=resolved.root, categories=[category],
                        caption_source=args.caption_source, progress=False)
    train = train_view(data, make_split(data, category, f"adhoc/{info.image_size}px", info.image_size))
    references: dict[str, list[mc.Reference]] = defaultdict(list)
    for anomaly in train.anomalies:
        part = mc.missing_part(anomaly.caption)
        if part is not None and anomaly.mask.any():
            references[part].append(mc.Reference(f"{anomaly.defect_type}/{anomaly.image_id}", anomaly.image, anomaly.mask))
    print(f"{info.dataset}/{category} at {info.image_size} px; training references per missing part: "
          f"{ {p: len(r) for p, r in sorted(references.items())} }")
    normals = {n.image_id: n.image for n in train.normals}
    normal_looks: dict[str, np.ndarray] = {}

    def normal_look(image_id: str) -> np.ndarray:
        if image_id not in normal_looks:
            normal_looks[image_id] = mc.look(normals[image_id])
        return normal_looks[image_id]

    def without(refs: list[mc.Reference], key: str) -> list[mc.Reference]:
        others = [r for r in refs if r.key != key]
        return others or refs

    if args.calibrate:
        calibrate(train, references, normals, normal_look, without, mc)

    # the variant a normal image shows: that of the training anomaly (naming one variant) nearest over the
    # whole image (mean CIEDE76 per pixel, 1-NN); independent of the plan's choice (which compares outside
    # the defect after alignment). A median foreground colour failed: dark cherry juice merges with the
    # black background, and the labels alone looked like a banana bottle's.
    labelled = [(lab(a.image), next(iter(named))) for a in train.anomalies
                if len(named := named_variants(a.caption, args.variants)) == 1]
    variant_of: dict[str, str] = {}
    tally: dict[str, Counter] = defaultdict(Counter)
    for sample, image, mask in load_samples(samples_dir):
        part = mc.missing_part(sample.caption)
        if part is None:
            continue
        if part not in references:
            tally[part]["no references"] += 1
            continue
        source = sample.plan.caption_choice.source if sample.plan and sample.plan.caption_choice else ""
        refs = without(references[part], source)
        normal = normals[sample.normal_id]
        aligned = mc.align(refs, normal)
        region = mc.part_region(aligned)
        overlap = mc.iou(mask, region)
        removal = mc.removal_score(image, normal_look(sample.normal_id), aligned, region)
        foreground = estimate_foreground(normal)
        nearest = mc.nearest_reference(normal_look(sample.normal_id), aligned, foreground, region)
        whole = mc.part_pixels(region, normal, nearest.image, foreground)
        left = mc.residue(image, normal_look(sample.normal_id), nearest.look, whole)
        row = tally[part]
        row["samples"] += 1
        row["on part"] += overlap >= args.iou
        row["removed"] += removal.removed
        row["fully removed"] += left <= mc.RESIDUE_MAX
        row["both"] += (overlap >= args.iou) and removal.removed and left <= mc.RESIDUE_MAX
        row["residue x1000"] += round(1000 * left)
        variant = says = ""
        if labelled:
            if sample.normal_id not in variant_of:
                normal_lab = lab(normal)
                variant_of[sample.normal_id] = min(labelled, key=lambda c: float(
                    np.linalg.norm(c[0] - normal_lab, axis=-1).mean()))[1]
            variant, says = variant_of[sample.normal_id], named_variants(sample.caption, args.variants)
            if says:
                row["names a variant"] += 1
                row["variant agrees"] += says == {variant_of[sample.normal_id]}
        if args.verbose:
            print(f"  {sample.defect_type}/{sample.index:04d} {part!r:26} normal {sample.normal_id} iou {overlap:.2f} "
                  f"score {removal.score:.3f} (d_normal {removal.d_normal:.1f}, d_removed {removal.d_removed:.1f}) "
                  f"residue {left:.3f} shows {variant or '?'} says {'/'.join(sorted(says)) or '-'} {sample.caption}")
    total = Counter()
    for part, row in sorted(tally.items()):
        total.update(row)
        describe(part, row, args.iou)
    describe("all", total, args.iou)
    return 0


def describe(part: str, row: Counter, iou: float) -> None:
    from synthesis.missing_content import RESIDUE_MAX

    if not row["samples"]:
        print(f"{part}: {row['no references']} samples without training references")
        return
    line = (f"{part}: {row['samples']} samples; mask on the part (IoU >= {iou}): {_share(row['on part'], row['samples'])}; "
            f"content removed (region score): {_share(row['removed'], row['samples'])}; "
            f"fully removed (residue <= {RESIDUE_MAX}): {_share(row['fully removed'], row['samples'])} "
            f"(mean residue {row['residue x1000'] / 1000 / row['samples']:.3f}); all three: {_share(row['both'], row['samples'])}")
    if row["names a variant"]:
        line += f"; caption fruit agrees: {_share(row['variant agrees'], row['names a variant'])}"
    print(line)


def calibrate(train, references, normals, normal_look, without, mc) -> None:  # noqa: ANN001
    """Scores of training anomalies (part removed) and training normals (part present), per part."""
    import numpy as np

    from synthesis.caption_choice import shifted
    from synthesis.geometry import alignment_shift
    from synthesis.masks import estimate_foreground

    ids = sorted(normals)
    cache: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

    def nearest_other_normal(image: np.ndarray, exclude: str) -> tuple[np.ndarray, np.ndarray]:
        """The look and pixels of the training normal image (not ``exclude``) nearest to ``image`` after alignment."""
        if (id(image), exclude) in cache:
            return cache[id(image), exclude]
        target = mc.look(image)
        best = None
        for other in ids:
            if other == exclude:
                continue
            shift = alignment_shift(normals[other], image)
            moved = shifted(normal_look(other), shift)
            distance = float(np.linalg.norm(target - moved, axis=-1).mean())
            if best is None or distance < best[0]:
                best = (distance, moved, shift, other)
        cache[id(image), exclude] = best[1], shifted(normals[best[3]], best[2])
        return cache[id(image), exclude]

    for part, refs in sorted(references.items()):
        removed_scores, present_scores, removed_residues, present_residues = [], [], [], []
        for ref in refs:
            others = without(refs, ref.key)
            if others is refs:  # a single reference has nothing to compare with
                continue
            aligned = mc.align(others, ref.image)
            region = mc.part_region(aligned)
            other, other_image = nearest_other_normal(ref.image, "")
            removed_scores.append(mc.removal_score(ref.image, other, aligned, region).score)
            fg = estimate_foreground(ref.image)
            near = mc.nearest_reference(other, aligned, fg, region)
            removed_residues.append(mc.residue(ref.image, other, near.look,
                                               mc.part_pixels(region, other_image, near.image, fg)))
        for normal_id in ids:
            image = normals[normal_id]
            aligned = mc.align(refs, image)
            region = mc.part_region(aligned)
            other, other_image = nearest_other_normal(image, normal_id)
            present_scores.append(mc.removal_score(image, other, aligned, region).score)
            fg = estimate_foreground(image)
            near = mc.nearest_reference(other, aligned, fg, region)
            present_residues.append(mc.residue(image, other, near.look,
                                               mc.part_pixels(region, other_image, near.image, fg)))
        removed_ok = sum(s < mc.REMOVED_BELOW for s in removed_scores)
        present_ok = sum(s >= mc.REMOVED_BELOW for s in present_scores)
        fmt = lambda xs: f"[{min(xs):.3f}, {max(xs):.3f}]" if xs else "[]"  # noqa: E731
        print(f"calibration {part!r}: training anomalies scored removed {_share(removed_ok, len(removed_scores))} "
              f"(scores {fmt(removed_scores)}); training normals scored not removed "
              f"{_share(present_ok, len(present_scores))} (scores {fmt(present_scores)}); threshold {mc.REMOVED_BELOW}; "
              f"residue of anomalies {fmt(removed_residues)} (<= {mc.RESIDUE_MAX}: "
              f"{sum(r <= mc.RESIDUE_MAX for r in removed_residues)}/{len(removed_residues)}), of normals {fmt(present_residues)} "
              f"(> {mc.RESIDUE_MAX}: {sum(r > mc.RESIDUE_MAX for r in present_residues)}/{len(present_residues)})")


if __name__ == "__main__":
    raise SystemExit(main())
