"""Time the downstream detectors at a protocol's sizes, to choose (and re-check) its CPU budgets.

For each detector (and extra width variants) it measures, each in a fresh child process so peak
memory is its own: seconds per training step (after one warm-up step; U-Net / DRAEM), the
projected fit time of the protocol's budget, PaDiM's fit time on ``--normals`` images, eval
throughput, parameters and peak RSS. Data are the toy task (random pixels): only the sizes
matter. The machine's load average is printed with every figure, because other jobs on a
shared machine change CPU timings a lot.

    .venv/bin/python scripts/bench_detectors.py                  # CPU protocol, 1 and 2 threads
    .venv/bin/python scripts/bench_detectors.py --threads 2 --steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (label, detector, config overrides on top of the protocol's pinned config)
VARIANTS = [
    ("unet", "unet", {}),
    ("unet-w8", "unet", {"base_width": 8}),
    ("unet-w24", "unet", {"base_width": 24}),
    ("unet-w32", "unet", {"base_width": 32}),
    ("draem-slim-32/16", "draem", {"reconstructive_width": 32, "discriminative_width": 16}),
    ("draem-paper-128/64", "draem", {}),
    ("padim-effnetlite0", "padim-effnetlite0", {}),
]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(detector_name: str, overrides: dict, protocol_id: str, steps: int, n_normals: int, n_test: int,
            threads: int) -> dict:
    """One detector in this process: training step time or PaDiM fit, eval throughput, memory."""
    import torch

    from benchmark.detectors import create_detector
    from benchmark.detectors.toy import toy_task
    from benchmark.protocols import get_protocol

    torch.set_num_threads(threads)
    protocol = get_protocol(protocol_id)
    config = {**protocol.detectors.get(detector_name, {}), **overrides}
    size = config.get("image_size", protocol.image_size)
    task = toy_task(size=size, n_normal=n_normals, n_synthetic=64, n_test=n_test, seed=0)
    detector = create_detector(detector_name, config, seed=0)
    out = {"detector": detector_name, "config": detector.config.model_dump(mode="json"), "threads": threads,
           "image_size": size, "load_before": _load()}
    model = getattr(detector, "model", None)
    if model is not None:
        out["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 3)
        plan = detector.plan(len(task.normals), len(task.synthetic))
        optimizer = torch.optim.Adam(model.parameters(), lr=detector.config.lr)
        model.train()
        times = []
        for step in (plan.epoch(0) * (steps + 1))[: steps + 1]:
            started = time.perf_counter()
            loss = detector._loss(detector.make_batch(task.normals, task.synthetic, step))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
        per_step = sum(times[1:]) / len(times[1:])
        c = detector.config
        total_steps = c.epochs * plan.steps_per_epoch
        out.update(seconds_per_step=round(per_step, 3), batch_size=c.batch_size, budget_steps=total_steps,
                   projected_fit_minutes=round(per_step * total_steps / 60, 2))
        model.eval()
        detector.fitted = True
    else:
        started = time.perf_counter()
        detector.fit(task.normals, None, progress=False)
        out.update(fit_seconds=round(time.perf_counter() - started, 2), n_normals=n_normals)
    detector.predict(task.test_images[:2])  # warm-up
    started = time.perf_counter()
    detector.predict(task.test_images)
    elapsed = time.perf_counter() - started
    out.update(eval_images_per_second=round(n_test / elapsed, 2), eval_seconds=round(elapsed, 2),
               peak_rss_mib=round(_rss_mib()), load_after=_load())
    return out


def measure_evaluation(size: int, n_good: int = 40, n_bad: int = 80, n_defects: int = 5) -> dict:
    """Time benchmark.evaluation on a test set of MVTec's size (all metrics, overall + per defect)."""
    import numpy as np

    from benchmark.evaluation import evaluate_detection

    rng = np.random.default_rng(0)
    n = n_good + n_bad
    labels = np.array([0] * n_good + [1] * n_bad)
    masks = np.zeros((n, size, size), bool)
    for i in range(n_good, n):
        y, x = rng.integers(0, size // 2, 2)
        masks[i, y:y + size // 4, x:x + size // 4] = True
    maps = rng.random((n, size, size), dtype=np.float32) + masks * 0.5
    kinds = ["good"] * n_good + [f"defect{i % n_defects}" for i in range(n_bad)]
    started = time.perf_counter()
    evaluate_detection(maps.max(axis=(1, 2)), maps, labels, masks, kinds)
    return {"label": "evaluation", "image_size": size, "n_images": n, "seconds": round(time.perf_counter() - started, 2),
            "peak_rss_mib": round(_rss_mib()), "load": _load()}


def _print(row: dict) -> None:
    if row.get("label") == "evaluation":
        print(f"evaluation           {row['image_size']}px: {row['n_images']} test images, overall + per defect, "
              f"{row['seconds']:.1f} s; peak RSS {row['peak_rss_mib']} MiB; load {row['load']}", flush=True)
        return
    label = row.get("label", row["detector"])
    if "seconds_per_step" in row:
        train = (f"{row['seconds_per_step']:.3f} s/step (batch {row['batch_size']}, {row['params_m']} M params); "
                 f"budget {row['budget_steps']} steps -> {row['projected_fit_minutes']:.1f} min")
    else:
        train = f"fit {row['fit_seconds']:.1f} s on {row['n_normals']} normals"
    print(f"{label:<20} {row['image_size']}px threads={row['threads']}: {train}; eval {row['eval_images_per_second']:.1f} "
          f"img/s; peak RSS {row['peak_rss_mib']} MiB; load {row['load_before']} -> {row['load_after']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="mvtec-caption-cpu/v1")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps (after one warm-up)")
    parser.add_argument("--normals", type=int, default=250, help="normal images for PaDiM's fit (MVTec: 200-400)")
    parser.add_argument("--test", type=int, default=64, help="test images for eval throughput")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", help="variant labels to run (default: all, then 'evaluation')")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # one measurement, printed as JSON for the parent
        spec = json.loads(args.child)
        if spec["detector"] == "evaluation":
            print("ROW " + json.dumps(measure_evaluation(spec["size"])))
            return 0
        row = measure(spec["detector"], spec["overrides"], args.protocol, args.steps, args.normals, args.test,
                      spec["threads"])
        print("ROW " + json.dumps(row))
        return 0

    print(f"protocol {args.protocol}; cpu cores {os.cpu_count()}; load {_load()}", flush=True)
    rows = []
    for label, detector, overrides in VARIANTS:
        if args.only and label not in args.only:
            continue
        for threads in args.threads:
            spec = json.dumps({"detector": detector, "overrides": overrides, "threads": threads})
            done = subprocess.run([sys.executable, __file__, "--protocol", args.protocol, "--steps", str(args.steps),
                                   "--normals", str(args.normals), "--test", str(args.test), "--child", spec],
                                  capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("ROW ")]
            if done.returncode or not lines:
                print(f"{label}: failed\n{done.stderr[-2000:]}", flush=True)
                continue
            row = {"label": label, **json.loads(lines[-1][4:])}
            rows.append(row)
            _print(row)
    if not args.only or "evaluation" in args.only:
        from benchmark.protocols import get_protocol

        spec = json.dumps({"detector": "evaluation", "size": get_protocol(args.protocol).image_size})
        done = subprocess.run([sys.executable, __file__, "--protocol", args.protocol, "--child", spec],
                              capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("ROW ")]
        if lines:
            rows.append(json.loads(lines[-1][4:]))
            _print(rows[-1])
        else:
            print(f"evaluation: failed\n{done.stderr[-2000:]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
