"""Generation throughput and memory of registered synthesizers on the CPU (not a test).

Each synthesizer runs in its own subprocess, so imports and memory high-water marks do not
leak between them. Per synthesizer:

* ``fit s``: fitting on the training split (timed on its own, excluded from throughput);
* ``first s``: the first sample, which pays lazy imports (torch, anomalib) and caches;
* ``synth img/s``: ``synthesize_batch`` on ``--n`` planned samples, in memory;
* ``set img/s``: ``generate_set`` end to end (PNG encoding, hashes, manifest) on the same plan;
* ``tracemalloc MiB``: peak Python/numpy allocations during ``synthesize_batch`` (torch's own
  allocator is not traced), measured in a separate pass so tracing does not slow the timing;
* ``RSS MiB`` / ``RSS +MiB``: the worker's peak resident set, and how much generation raised it
  above the level reached after data loading, fit and the first sample.

Data: the demo ``disc`` category upscaled to ``--image-size`` (default), or a real MVTec AD
category with ``--data-root`` (e.g. ``../shared/data/mvtec_ad --category bottle``)::

    python scripts/bench_synthesis_throughput.py --data-root ../shared/data/mvtec_ad \\
        --caption-source ../shared/data/mvtec_caption/captions.json --synth perlin --synth cutpaste --n 64
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

COLUMNS = [("synth", "{}"), ("fit s", "{:.2f}"), ("first s", "{:.2f}"), ("synth img/s", "{:.1f}"),
           ("set img/s", "{:.1f}"), ("tracemalloc MiB", "{:.1f}"), ("RSS MiB", "{:.0f}"), ("RSS +MiB", "{:.0f}")]


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _train_split(args: argparse.Namespace):  # noqa: ANN202
    from mvtec_caption.prepare import prepare_category
    from synthesis.cli import adhoc_protocol_id

    return prepare_category(args.category or ("disc" if not args.data_root else "bottle"),
                            protocol_id=adhoc_protocol_id(args.image_size), image_size=args.image_size,
                            subset="demo" if not args.data_root else "mvtec_ad", data_root=args.data_root,
                            caption_source=args.caption_source)


def _specs(train, n: int, seed: int):  # noqa: ANN001, ANN202
    """``n`` planned samples spread over the defect types (round robin)."""
    from synthesis.plan import Planner

    planner = Planner(train)
    types = train.defect_types
    per_type = {t: planner.plan(t, -(-n // len(types)), seed) for t in types}
    specs = [per_type[types[i % len(types)]][i // len(types)] for i in range(n)]
    return planner, specs


def run_one(args: argparse.Namespace) -> dict:
    """Benchmark one synthesizer in this process."""
    from synthesis import registry
    from synthesis.generated_set import generate_set

    prepared = _train_split(args)
    train = prepared.train
    synthesizer = registry.create(args.worker, config=json.loads(args.config_json))
    started = time.perf_counter()
    synthesizer.fit(train, progress=False)
    fit_s = time.perf_counter() - started

    planner, specs = _specs(train, args.n + 1, args.seed)
    first, specs = specs[0], specs[1:]
    started = time.perf_counter()
    synthesizer.synthesize_batch([first], [planner.normal_image(first.normal_id)])
    first_s = time.perf_counter() - started
    rss_before = _max_rss_mib()

    batch = max(1, synthesizer.batch_size)
    normals = [planner.normal_image(s.normal_id) for s in specs]
    started = time.perf_counter()
    for i in range(0, len(specs), batch):
        synthesizer.synthesize_batch(specs[i:i + batch], normals[i:i + batch])
    synth_s = time.perf_counter() - started
    rss_after = _max_rss_mib()

    tracemalloc.start()
    for i in range(0, len(specs), batch):
        synthesizer.synthesize_batch(specs[i:i + batch], normals[i:i + batch])
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    per_type = -(-args.n // len(train.defect_types))
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        info = generate_set(synthesizer, train, Path(folder) / "set", n_per_defect=per_type, seed=args.seed,
                            progress=False, forbidden_paths=prepared.forbidden_paths)
        set_s = time.perf_counter() - started
    return {
        "synth": args.worker, "fit s": fit_s, "first s": first_s, "synth img/s": len(specs) / synth_s,
        "set img/s": info.samples / set_s, "tracemalloc MiB": traced_peak / 2**20, "RSS MiB": _max_rss_mib(),
        "RSS +MiB": rss_after - rss_before, "n": len(specs), "image_size": train.image_size,
        "data": f"{train.dataset}/{train.category}" + (" (demo, upscaled)" if train.is_demo else ""),
        "threads": os.cpu_count(),
    }


def table(rows: list[dict]) -> str:
    header = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[name]) for name, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synth", action="append", help="registered synthesizer (repeatable; default: all)")
    parser.add_argument("--n", type=int, default=32, help="samples timed per synthesizer")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--data-root", help="MVTec AD root (default: the demo data, upscaled)")
    parser.add_argument("--category", help="default: disc (demo) or bottle")
    parser.add_argument("--caption-source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config-json", default="{}", help="config overrides (JSON) applied to every synthesizer")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_one(args)))
        return 0

    from synthesis import registry

    names = args.synth or registry.available()
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    rows = []
    for name in names:
        command = [sys.executable, str(Path(__file__).resolve()), *forwarded, "--worker", name]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if result.returncode != 0:
            print(f"{name}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(f"{name}: done", file=sys.stderr)
    if rows:
        first = rows[0]
        print(f"{first['data']} at {first['image_size']} px, {first['n']} samples each, CPU ({first['threads']} cores)")
        print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if len(rows) == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
