"""Benchmark AXF: training time to the default budget, images/s, peak memory, and the grid.

    python scripts/bench_axf.py --data-root ../shared/data/mvtec_ad \\
        --caption-source ../shared/data/mvtec_caption/captions.json --category bottle --out /tmp/axf-bench

Runs what ``python -m synthesis generate --synth axf`` runs (fit with the default budget, save the
checkpoint, generate ``--n`` images per defect type, write grid.png), timing each part, and
writes ``bench.json`` with the timings, the machine's load average before and after (other
processes on a shared machine inflate the timings), torch threads, and peak resident memory.
``--checkpoint`` skips the fit; ``--config key=value`` overrides settings as in the CLI.
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


if __name__ == "__main__":
    raise SystemExit(main())
