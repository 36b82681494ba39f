"""``python -m synthesis list | fit | generate | grid | export-folder``.

``fit`` and ``generate`` build the protocol split of one category (the synthesizer receives only
its training third and the good training images) and run the synthesizer with reading of the
category's test data forbidden.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from mvtec_caption.arguments import bounded_int, non_empty_text, seed
from mvtec_caption.output_folder import OutputKind

ADHOC_PROTOCOL = "adhoc"
#: What ``fit`` and ``generate`` write (see :mod:`mvtec_caption.output_folder`); the layouts let folders
#: written before output markers existed be recognised.
CHECKPOINT_OUTPUT = OutputKind("synthesis", "fit", layout=("synthesizer.json", "state", ".state-*"),
                               requires=("synthesizer.json",))
GENERATE_OUTPUT = OutputKind("synthesis", "generate", layout=("samples", "checkpoint", "grid.png"),
                             requires=("samples/manifest.jsonl", "checkpoint/synthesizer.json"))
EXPORT_FOLDER_OUTPUT = OutputKind("synthesis", "export-folder", layout=("abnormal", "mask", "export.json"),
                                  requires=("export.json",))


def parse_config(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse, else as strings."""
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--config expects key=value, got {pair!r}")
        try:
            config[key] = json.loads(value)
        except json.JSONDecodeError:
            config[key] = value
    return config


def _prepare(args: argparse.Namespace):  # noqa: ANN202 -> mvtec_caption.prepare.PreparedCategory
    """Prepare one category at ``--image-size`` under the ad-hoc protocol id (see :mod:`mvtec_caption.prepare`)."""
    from mvtec_caption.prepare import prepare_category

    prepared = prepare_category(args.category, protocol_id=adhoc_protocol_id(args.image_size), image_size=args.image_size,
                                subset=args.subset, data_root=args.data_root, caption_source=args.caption_source)
    print(prepared.describe(), file=sys.stderr)
    return prepared


def adhoc_protocol_id(image_size: int) -> str:
    """The protocol id of a split made outside the benchmark (recorded with fits and generated sets)."""
    return f"{ADHOC_PROTOCOL}/{image_size}px"


def _fit(synthesizer: Any, prepared: Any) -> float:
    from synthesis.guard import forbid_reading

    started = time.perf_counter()
    with forbid_reading(prepared.forbidden_paths):
        synthesizer.fit(prepared.train, progress=True)
    return time.perf_counter() - started


def cmd_list(args: argparse.Namespace) -> int:
    from synthesis import registry

    for name in registry.available():
        item = registry.entry(name)
        try:
            meta = registry.describe(name)
        except ValueError as err:  # a plugin that misses part of the contract is listed, not fatal
            print(f"{name:<22} NOT USABLE: {err}")
            continue
        flags = ", ".join(f for f, on in (("text", meta.uses_text), ("masks", meta.uses_masks),
                                          ("real anomalies", meta.uses_real_anomalies)) if on) or "none"
        ablation = f" [ablation of {item.ablation_of}]" if item.ablation_of else ""
        print(f"{name:<22} v{meta.version}  uses: {flags}{ablation}\n    {item.summary or meta.description}")
    return 0


def _roots(args: argparse.Namespace) -> list:
    """Data locations this command reads (arguments, environment, demo data): never written into."""
    from mvtec_caption.output_folder import data_roots

    return data_roots([("--data-root", args.data_root), ("--caption-source", args.caption_source)])


def cmd_fit(args: argparse.Namespace) -> int:
    from mvtec_caption.output_folder import check_output_folder, claim_output_folder
    from synthesis import registry
    from synthesis.checkpoint import save_checkpoint

    roots = _roots(args)
    check_output_folder(args.out, CHECKPOINT_OUTPUT, roots)  # before the fit, not after it
    synthesizer = registry.create(args.synth, parse_config(args.config), device=args.device)
    prepared = _prepare(args)
    seconds = _fit(synthesizer, prepared)
    out = claim_output_folder(args.out, CHECKPOINT_OUTPUT, roots)
    info = save_checkpoint(synthesizer, out)
    print(f"fitted {args.synth} in {seconds:.1f}s; checkpoint {args.out} (config {info.config_hash[:12]})")
    return 0


def _read_user_mask(path: str, size: int) -> tuple[str, Any]:
    """A user's mask, decoded now (before any fit), so a file that is no image is named at once."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as handle:
            mask = np.asarray(handle.convert("L").resize((size, size), Image.NEAREST)) > 127
    except FileNotFoundError:
        raise ValueError(f"--mask {path}: no such file") from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"--mask {path} is not a readable image ({type(err).__name__}: {err})") from None
    if not mask.any():
        raise ValueError(f"--mask {path}: the mask is empty (no pixel above 127)")
    return Path(path).name, mask


def cmd_generate(args: argparse.Namespace) -> int:
    from mvtec_caption.output_folder import check_output_folder, claim_output_folder
    from synthesis import registry
    from synthesis.checkpoint import load_checkpoint, save_checkpoint
    from synthesis.generated_set import generate_set
    from synthesis.grid import write_grid

    # every argument is checked before the data is loaded or anything is fitted
    roots = _roots(args)
    check_output_folder(args.out, GENERATE_OUTPUT, roots)
    user_masks = [_read_user_mask(p, args.image_size) for p in args.mask]
    if args.checkpoint:
        synthesizer = load_checkpoint(Path(args.checkpoint), device=args.device, expect_name=args.synth)
        print(f"loaded {args.checkpoint}", file=sys.stderr)
    else:
        synthesizer = registry.create(args.synth, parse_config(args.config), device=args.device)
    prepared = _prepare(args)
    if not args.checkpoint:
        seconds = _fit(synthesizer, prepared)
        print(f"fitted {args.synth} with its default budget in {seconds:.1f}s", file=sys.stderr)
    folder = claim_output_folder(args.out, GENERATE_OUTPUT, roots)
    if not args.checkpoint:
        save_checkpoint(synthesizer, folder / "checkpoint")
    if user_masks and not synthesizer.meta.uses_masks:
        print(f"warning: {args.synth} makes its own masks (uses_masks=False): --mask is recorded in the request "
              "but not used", file=sys.stderr)
    out = folder / "samples"
    info = generate_set(synthesizer, prepared.train, out, n_per_defect=args.n, seed=args.seed,
                        defect_types=args.defect_type or None, caption=args.caption, user_masks=user_masks,
                        forbidden_paths=prepared.forbidden_paths, overwrite=args.overwrite)
    print(f"wrote {info.samples} samples to {out} (set sha256 {info.set_sha256[:16]}, {info.seconds:.1f}s)")
    if not args.no_grid:
        grid = write_grid(out, folder / "grid.png", train=prepared.train)
        print(f"grid: {grid}")
    return 0


def _is_own_grid(path: Path) -> bool:
    """A grid PNG this package wrote (tagged), or the ``grid.png`` of a ``generate`` folder."""
    from mvtec_caption.output_folder import read_marker
    from synthesis.grid import is_grid_png

    if is_grid_png(path):
        return True
    marker = read_marker(path.parent) or {}
    legacy = path.name == "grid.png" and (path.parent / "samples").is_dir()
    return path.name == "grid.png" and ((marker.get("tool"), marker.get("kind")) == ("synthesis", "generate") or legacy)


def cmd_grid(args: argparse.Namespace) -> int:
    from mvtec_caption.output_folder import check_output_file
    from synthesis.generated_set import read_info
    from synthesis.grid import write_grid

    target = Path(args.out) if args.out else Path(args.set).parent / "grid.png"
    check_output_file(target, _roots(args), flag="--out", is_own=_is_own_grid, what="grid PNG")
    info = read_info(Path(args.set))
    train = None
    if args.data_root or args.subset == "demo":
        args.category, args.image_size = info.category, info.image_size
        train = _prepare(args).train
    out = write_grid(Path(args.set), target, train=train, per_defect=args.per_defect)
    print(f"grid: {out}")
    return 0


def cmd_export_folder(args: argparse.Namespace) -> int:
    from mvtec_caption.output_folder import claim_output_folder, data_roots
    from synthesis.export_folder import export_folder

    # the set is input here: an export never writes into or around it (nor into any data root)
    folder = claim_output_folder(args.out, EXPORT_FOLDER_OUTPUT, data_roots([("--set", args.set)]))
    export = export_folder(Path(args.set), folder)
    print(f"wrote {export.samples} images and masks of set {export.set_sha256[:16]} to {folder} "
          f"(anomalib Folder: abnormal_dir='abnormal', mask_dir='mask'; normal_dir: your "
          f"{export.category}/train/good)")
    return 0


def _data_options(parser: argparse.ArgumentParser, category: bool = True) -> None:
    parser.add_argument("--subset", default="mvtec_ad", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--data-root", help="folder holding the categories (default: $MVTEC_AD_ROOT / $MVTEC_LOCO_ROOT)")
    parser.add_argument("--caption-source", help="captions file/folder (default: $MVTEC_CAPTION_SOURCE, cache, download)")
    if category:
        parser.add_argument("--category", required=True)
    parser.add_argument("--image-size", type=bounded_int(16, 2048, "the image size"), default=256,
                        help="square resolution synthesizers work at (16-2048)")


def _synth_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--synth", required=True, help="registered synthesizer (see `list`)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--device", default="cpu")
    from mvtec_caption.runtime import THREADS_HELP

    parser.add_argument("--threads", type=int, help=THREADS_HELP)


COMMANDS = {"list": cmd_list, "fit": cmd_fit, "generate": cmd_generate, "grid": cmd_grid,
            "export-folder": cmd_export_folder}


def build_parser() -> argparse.ArgumentParser:
    from synthesis.generated_set import MAX_PER_DEFECT

    parser = argparse.ArgumentParser(prog="python -m synthesis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="registered synthesizers and their metadata")
    fit = commands.add_parser("fit", help="fit a synthesizer on a category's few-shot training split")
    _data_options(fit)
    _synth_options(fit)
    fit.add_argument("--out", required=True, help="checkpoint folder")
    gen = commands.add_parser("generate", help="generate anomalies (fits first without --checkpoint)")
    _data_options(gen)
    _synth_options(gen)
    gen.add_argument("--n", type=bounded_int(1, MAX_PER_DEFECT, "images per defect type"), default=4,
                     help=f"images per defect type (1-{MAX_PER_DEFECT:,}: the plan holds every mask in memory)")
    gen.add_argument("--seed", type=seed, default=0, help="generation seed (0 to 2**32-1)")
    gen.add_argument("--out", required=True, help="output folder (samples/, grid.png, checkpoint/)")
    gen.add_argument("--checkpoint", help="a folder written by `fit`")
    gen.add_argument("--defect-type", action="append", help="only these defect types (repeatable)")
    gen.add_argument("--caption", type=non_empty_text, help="ask for this caption instead of the training captions")
    gen.add_argument("--mask", action="append", default=[], help="mask image(s) to use instead of training masks "
                                                                  "(pixels above 127 are anomalous)")
    gen.add_argument("--overwrite", action="store_true")
    gen.add_argument("--no-grid", action="store_true")
    grid = commands.add_parser("grid", help="write the qualitative grid of a generated set")
    grid.add_argument("--set", required=True, help="a generated set folder (holding generation.json)")
    _data_options(grid, category=False)
    grid.add_argument("--out", help="grid PNG to write (default: grid.png beside the set)")
    grid.add_argument("--per-defect", type=bounded_int(1, 100, "rows per defect type"), default=3)
    export = commands.add_parser("export-folder", help="copy a generated set into anomalib's Folder layout "
                                                       "(abnormal/ + mask/)")
    export.add_argument("--set", required=True, help="a generated set folder (holding generation.json)")
    export.add_argument("--out", required=True, help="output folder (abnormal/, mask/, export.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        from mvtec_caption.runtime import set_threads

        set_threads(getattr(args, "threads", None))
        if getattr(args, "synth", None):
            from synthesis import registry

            args.synth = registry.resolve(args.synth)  # a plugin class or entry point, checked first
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
