"""Benchmark AXF: training time to the default budget, images/s, peak memory, and the grid.

    python scripts/bench_axf.py --data-root ../shared/data/mvtec_ad \\
        --caption-source ../shared/data/mvtec_caption/captions.json --category bottle --out /tmp/axf-bench

Runs what ``python -m synthesis generate --synth axf`` runs (fit with the default budget, save the
checkpoint, generate ``--n`` images per defect type, write grid.png), timing each part, and
writes ``bench.json`` with the timings, the machine's load average before and after (other
processes on a shared machine inflate the timings), torch threads, and peak resident memory.
``--checkpoint`` skips the fit; ``--config key=value`` overrides settings as in the CLI.

Side by side (``--compare ddim:50 dpmsolver++:10``): on the same checkpoint and inputs (same seeds,
hence the same planned masks, captions and references), each sampling recipe ``SOLVER:STEPS[:PRECISION]``
(precision ``float32`` unless ``bfloat16`` is named) generates the set ``--rounds`` times, the recipes alternating so that a change in the machine's
load hits them alike; per recipe the median images/s (wall) and the images per CPU-second times
the threads (what the recipe would do on idle cores: the figure to trust on a shared machine).
Beside the timings: FLOPs per generated image (torch's flop counter over one more generation of
the same set: every torch op, encoders included, and the U-Net calls alone), the paper recipe's
FLOPs (Stable Diffusion 1.5's U-Net, 64x64 latents, 50 DDIM steps, 2 passes for classifier-free
guidance: the U-Net built from its config on the meta device, no weights) and their ratio, and
how much the outputs of each recipe differ from the first one's (mean absolute difference inside
the masks, outside them, visible share of the mask from ``synthesis/fidelity.py``).

    python scripts/bench_axf.py --subset demo --category disc --checkpoint ckpt --out /tmp/cmp \
        --compare ddim:50 dpmsolver++:10 dpmsolver++:10:bfloat16 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return round(peak / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synth", default="axf")
    parser.add_argument("--subset", default="mvtec_ad", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--data-root")
    parser.add_argument("--caption-source")
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--n", type=int, default=4, help="images per defect type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--caption", help="generate with this caption instead of the training captions")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--checkpoint", help="skip the fit: load this checkpoint")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--compare", nargs="+", metavar="SOLVER:STEPS[:PRECISION]",
                        help="side by side: generate with each sampling recipe (first = baseline), e.g. ddim:50 dpmsolver++:10")
    parser.add_argument("--rounds", type=int, default=2, help="with --compare: timed generations per recipe")
    args = parser.parse_args(argv)

    import synthesis.axf  # noqa: F401 - before torch: sets OMP_WAIT_POLICY (see synthesis/axf/__init__.py)
    import torch

    from synthesis import registry
    from synthesis.checkpoint import load_checkpoint, save_checkpoint
    from mvtec_caption.prepare import prepare_category
    from synthesis.cli import adhoc_protocol_id, parse_config
    from synthesis.generated_set import generate_set
    from synthesis.grid import write_grid
    from synthesis.guard import forbid_reading

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"argv": sys.argv[1:], "machine": platform.machine(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "load_before": os.getloadavg()}
    started = time.perf_counter()
    prepared = prepare_category(args.category, protocol_id=adhoc_protocol_id(args.image_size), image_size=args.image_size,
                                subset=args.subset, data_root=args.data_root, caption_source=args.caption_source)
    record["prepare_seconds"] = round(time.perf_counter() - started, 2)
    if args.checkpoint:
        synth = load_checkpoint(Path(args.checkpoint), expect_name=args.synth)
        record["fit_seconds"] = None
    else:
        synth = registry.create(args.synth, parse_config(args.config))
        t0 = time.perf_counter()
        with forbid_reading(prepared.forbidden_paths):
            synth.fit(prepared.train, progress=True)
        record["fit_seconds"] = round(time.perf_counter() - t0, 2)
        record["load_after_fit"] = os.getloadavg()
        save_checkpoint(synth, out / "checkpoint")
    record["config"] = synth.config.model_dump(mode="json")
    record["config_hash"] = synth.config_hash
    record["fit"] = synth.fit_report.model_dump(mode="json")
    if args.compare:
        record |= compare(synth, prepared, args, out)
        record["peak_rss_mib"] = _peak_rss_mib()
        record["load_after"] = os.getloadavg()
        (out / "bench.json").write_text(json.dumps(record, indent=1) + "\n")
        for name, r in record["recipes"].items():
            print(f"{name:>16}: {r['images']} images, {r['images_per_second']} img/s wall (median of {args.rounds}), "
                  f"{r['images_per_second_cpu']} img/s on {record['torch_threads']} idle threads (CPU time); "
                  f"{r['gflops_per_image']} GFLOPs/image ({r['unet_gflops_per_image']} in the U-Net); "
                  f"vs first: inside {r['mean_abs_diff_inside']}, outside {r['mean_abs_diff_outside']} grey levels; "
                  f"visible share {r['visible_share']}")
        print(f"paper recipe {record['paper']['tflops_per_image']} TFLOPs/image; speed-up "
              f"{record['speedup_wall']}x wall, {record['speedup_cpu']}x CPU; FLOPs ratio paper/ours "
              f"{record['paper_flops_ratio']}; load {record['load_before']} -> {record['load_after']}")
        return 0
    t0 = time.perf_counter()
    info = generate_set(synth, prepared.train, out / "samples", n_per_defect=args.n, seed=args.seed, caption=args.caption,
                        forbidden_paths=prepared.forbidden_paths, overwrite=True)
    seconds = time.perf_counter() - t0
    record["generate_seconds"] = round(seconds, 2)
    record["images"] = info.samples
    record["images_per_second"] = round(info.samples / seconds, 4)
    record["image_size"] = args.image_size
    record["set_sha256"] = info.set_sha256
    record["grid"] = str(write_grid(out / "samples", out / "grid.png", train=prepared.train, per_defect=args.n))
    record["total_seconds"] = round(time.perf_counter() - started, 2)
    record["peak_rss_mib"] = _peak_rss_mib()
    record["load_after"] = os.getloadavg()
    (out / "bench.json").write_text(json.dumps(record, indent=1) + "\n")
    fit = record["fit"]["details"]
    print(f"fit {record['fit_seconds']}s ({fit.get('train_steps')} steps, {fit.get('steps_per_second')} steps/s, "
          f"{fit.get('trainable_parameters')} trainable params); generate {info.samples} images at {args.image_size}px "
          f"in {seconds:.1f}s ({record['images_per_second']} img/s); peak RSS {record['peak_rss_mib']} MiB; "
          f"load {record['load_before']} -> {record['load_after']}; grid {record['grid']}")
    return 0


def _with_solver(synth, recipe: str):  # noqa: ANN001, ANN202 - an AXFSynthesizer, the same one re-set
    """The synthesizer sampling with ``SOLVER:STEPS[:PRECISION]`` (precision float32 unless named; its config
    says so, so the set's record does too)."""
    from synthesis.axf.sample import PRECISIONS, make_sample_scheduler

    solver, steps, *rest = recipe.split(":")
    precision = rest[0] if rest else "float32"
    if precision not in PRECISIONS or len(rest) > 1:
        raise SystemExit(f"error: recipe {recipe!r}: expected SOLVER:STEPS[:PRECISION], precision one of {', '.join(PRECISIONS)}")
    synth.config = synth.config.model_copy(update={"solver": solver, "sample_steps": int(steps),
                                                   "sample_precision": precision})
    synth.sample_scheduler = make_sample_scheduler(solver, synth.train_scheduler.config,
                                                   bool(synth.train_scheduler.config.clip_sample))
    synth.pipeline.scheduler = synth.sample_scheduler
    return synth


def paper_recipe_flops() -> dict:
    """FLOPs of the paper's recipe per image: SD 1.5's U-Net (config of stable-diffusion-v1-5/unet, built on
    the meta device: shapes only, no weights, no memory) at 64x64 latents with 77 CLIP tokens, one forward
    under the flop counter, times 50 DDIM steps times 2 (conditional + unconditional pass for guidance)."""
    import torch
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    config = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=768,
                  attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280),
                  down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, norm_num_groups=32)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
        x, text = torch.zeros(1, 4, 64, 64), torch.zeros(1, 77, 768)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            unet(x, torch.tensor([500]), encoder_hidden_states=text)
    per_call = counter.get_total_flops()
    return {"model": "stable-diffusion-v1-5 U-Net (config only, meta device)",
            "unet_parameters": sum(p.numel() for p in unet.parameters()), "latent": [4, 64, 64],
            "steps": 50, "passes_per_step": 2, "gflops_per_unet_call": round(per_call / 1e9, 2),
            "tflops_per_image": round(per_call * 100 / 1e12, 2), "flops_per_image": per_call * 100,
            "counts": "U-Net only (text encoder and VAE not counted: a lower bound)"}


def _set_flops(synth, train, folder: Path, args, forbidden) -> tuple[float, float, int]:  # noqa: ANN001
    """(all FLOPs, U-Net FLOPs, images) of generating the set once under torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    from synthesis.generated_set import generate_set

    with FlopCounterMode(display=False) as counter:
        info = generate_set(synth, train, folder, n_per_defect=args.n, seed=args.seed, caption=args.caption,
                            forbidden_paths=forbidden, overwrite=True, progress=False)
    by_module = counter.get_flop_counts()
    unet = sum(by_module.get("AXFNet.unet", by_module.get("unet", {})).values()) if by_module else 0
    return float(counter.get_total_flops()), float(unet), info.samples


def _differences(first: Path, other: Path, train) -> dict:  # noqa: ANN001
    """Mean |difference| inside / outside the masks between two sets of the same specs, and visible shares."""
    import numpy as np
    from PIL import Image

    from synthesis.fidelity import label_fidelity

    normals = {n.image_id: n.image for n in train.normals}
    inside, outside, shares = [], [], []
    for line in (other / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        a = np.asarray(Image.open(first / item["image_file"]).convert("RGB"), dtype=np.float32)
        b = np.asarray(Image.open(other / item["image_file"]).convert("RGB"), dtype=np.float32)
        mask = np.asarray(Image.open(other / item["mask_file"])) > 0
        if mask.ndim == 3:
            mask = mask[..., 0]
        diff = np.abs(a - b).mean(axis=-1)
        inside.append(float(diff[mask].mean()))
        outside.append(float(diff[~mask].mean()) if (~mask).any() else 0.0)
        shares.append(label_fidelity(b.astype(np.uint8), normals[item["normal_id"]], mask).visible_share)
    return {"mean_abs_diff_inside": round(float(np.mean(inside)), 3),
            "mean_abs_diff_outside": round(float(np.mean(outside)), 4),
            "visible_share": round(float(np.mean(shares)), 4)}


def compare(synth, prepared, args, out: Path) -> dict:  # noqa: ANN001
    """Side by side (see the module docstring): the recipes alternate, ``args.rounds`` timed runs each."""
    import statistics

    import torch

    from synthesis.generated_set import generate_set

    threads = torch.get_num_threads()
    runs: dict[str, list[dict]] = {r: [] for r in args.compare}
    forbidden = prepared.forbidden_paths
    _with_solver(synth, args.compare[-1])  # warm-up: frozen encoders loaded, caches filled, not timed
    generate_set(synth, prepared.train, out / "warm-up", n_per_defect=1, seed=args.seed + 1, caption=args.caption,
                 forbidden_paths=forbidden, overwrite=True, progress=False)
    for _ in range(args.rounds):
        for recipe in args.compare:
            _with_solver(synth, recipe)
            load, wall, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
            info = generate_set(synth, prepared.train, out / recipe.replace(":", "-"), n_per_defect=args.n,
                                seed=args.seed, caption=args.caption, forbidden_paths=forbidden, overwrite=True,
                                progress=False)
            runs[recipe].append({"seconds": round(time.perf_counter() - wall, 2),
                                 "cpu_seconds": round(time.process_time() - cpu, 2), "images": info.samples,
                                 "load_1min": round(load, 2), "set_sha256": info.set_sha256})
    recipes = {}
    for recipe, rounds in runs.items():
        _with_solver(synth, recipe)
        flops, unet, images = _set_flops(synth, prepared.train, out / "flops", args, forbidden)
        n = rounds[0]["images"]
        recipes[recipe] = {
            "rounds": rounds, "images": n, "config_hash": synth.config_hash,
            "same_bytes_every_round": len({r["set_sha256"] for r in rounds}) == 1,
            "images_per_second": round(statistics.median(n / r["seconds"] for r in rounds), 4),
            "images_per_second_cpu": round(statistics.median(n * threads / r["cpu_seconds"] for r in rounds), 4),
            "gflops_per_image": round(flops / images / 1e9, 3), "unet_gflops_per_image": round(unet / images / 1e9, 3),
            **_differences(out / args.compare[0].replace(":", "-"), out / recipe.replace(":", "-"), prepared.train),
        }
    paper = paper_recipe_flops()
    first, last = recipes[args.compare[0]], recipes[args.compare[-1]]
    return {"compare": args.compare, "rounds": args.rounds, "recipes": recipes, "paper": paper,
            "speedup_wall": round(last["images_per_second"] / first["images_per_second"], 2),
            "speedup_cpu": round(last["images_per_second_cpu"] / first["images_per_second_cpu"], 2),
            "paper_flops_ratio": round(paper["flops_per_image"] / (last["gflops_per_image"] * 1e9)),
            "paper_flops_ratio_first": round(paper["flops_per_image"] / (first["gflops_per_image"] * 1e9))}


if __name__ == "__main__":
    raise SystemExit(main())
