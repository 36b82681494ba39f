"""Import a generated set made elsewhere into this project's generated-set format.

An imported set is written exactly like one this project generated (PNG images and masks,
``manifest.jsonl``, ``generation.json`` with the set hash; :mod:`synthesis.generated_set`), so
fidelity metrics, detectors, records and the leaderboard treat it like any other set. What is
particular to it is kept beside it in ``import.json`` (:class:`ImportReport`): the layout, the
content hash of the files as found, the counts per defect type, every problem, and how each
sample's clean source was chosen.

Rules, fixed so that every imported set is treated alike:

* **Which pairs**: per defect type, the first ``n_per_defect`` pairs by number (the protocol's
  count); pairs of defect types the training split does not have are reported and left out.
* **Resize** (:data:`RESIZE_RULE`): the protocol's rule for images (RGB, bicubic, as the
  protocol split resizes MVTec images); masks nearest-neighbour, then ``> 127``.
* **Clean source** (the detectors' DRAEM target; :data:`CLEAN_RULES`): the training normal image
  the manifest names (native sets), else the training normal image nearest to the layout's record
  of the source image (AnomalyDiffusion's ``ori/``), else the training normal image nearest to the
  generated image outside its (dilated) mask. Nearest = smallest root-mean-square difference at
  :data:`MATCH_SIZE` px, recorded per sample. For a synthesizer that keeps the pixels outside the
  mask (as the built-in ones promise) the last rule recovers the real source exactly.
* **Seed**: imported samples carry seed ``-1`` (nothing was generated here).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field
from scipy.ndimage import binary_dilation

from mvtec_caption.atomic import write_bytes
from synthesis.contract import FitReport, SynthesizerMeta, TrainSplit
from synthesis.generated_set import (
    INFO,
    MANIFEST,
    GeneratedSample,
    GeneratedSetInfo,
    GenerationRequest,
    _png,
    _sha,
    set_hash,
)
from synthesis.layouts import ExternalPair, LayoutScan

IMPORT_VERSION = 1
IMPORT_FILE = "import.json"
NO_SEED = -1
MATCH_SIZE = 64
RESIZE_RULE = ("images: RGB, bicubic to the protocol's size (the protocol split's rule); masks: greyscale, "
               "nearest-neighbour to the protocol's size, then > 127 (half intensity, as AnomalyDiffusion's loader)")
CleanRule = Literal["manifest", "nearest-to-source-image", "nearest-outside-mask"]
CLEAN_RULES: dict[str, str] = {
    "manifest": "the training normal image the set's manifest names",
    "nearest-to-source-image": f"the training normal image nearest (RMS difference at {MATCH_SIZE}px) to the "
                               "source image the layout keeps (AnomalyDiffusion's ori/)",
    "nearest-outside-mask": f"the training normal image nearest (RMS difference at {MATCH_SIZE}px) to the generated "
                            "image outside its mask dilated by 1px (exact for synthesizers that keep those pixels)",
}


class ImportedSample(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    defect_type: str
    index: int
    files: list[str] = Field(description="The source files, relative to the imported folder.")
    clean_rule: CleanRule
    normal_id: str
    clean_distance: float | None = Field(description="RMS difference (0-255) to the chosen normal image; None "
                                         "when the manifest named it.")


class ImportReport(BaseModel):
    """What ``import.json`` holds: where the set came from and how it was read."""

    model_config = ConfigDict(extra="forbid")

    import_version: Literal[1] = IMPORT_VERSION
    layout: str
    category: str
    content_sha256: str = Field(description="Hash of the imported files as found (relative path and bytes).")
    found_per_defect: dict[str, int]
    used_per_defect: dict[str, int]
    n_per_defect: int = Field(description="The count asked for per defect type (the protocol's).")
    source_image_size: list[int] | None = Field(description="Width and height of the first image as found.")
    problems: list[str] = Field(default_factory=list)
    resize_rule: str = RESIZE_RULE
    clean_rules: dict[str, int] = Field(description="How many samples each clean-source rule chose.")
    clean_rule_descriptions: dict[str, str] = Field(default_factory=lambda: dict(CLEAN_RULES))
    samples: list[ImportedSample]


def content_hash(scan: LayoutScan) -> str:
    """Identity of the pairs as found: every file's path (relative to the category folder) and sha256."""
    digest = hashlib.sha256(f"{scan.layout}\n".encode())
    for pair in scan.pairs:
        for path in pair.files():
            digest.update(f"{scan.relative(path)} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def read_report(folder: Path) -> ImportReport:
    path = Path(folder) / IMPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no imported set ({IMPORT_FILE})")
    return ImportReport.model_validate_json(path.read_text())


# ---- decoding ----------------------------------------------------------------------------------------

def _decode(path: Path, mode: str, where: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"{where}: unreadable ({type(err).__name__}: {err})") from err


def load_image(path: Path, size: int, where: str) -> np.ndarray:
    image = _decode(path, "RGB", where)
    return np.asarray(image if image.size == (size, size) else image.resize((size, size), Image.BICUBIC))


def load_mask(path: Path, size: int, where: str) -> np.ndarray:
    mask = _decode(path, "L", where)
    return np.asarray(mask if mask.size == (size, size) else mask.resize((size, size), Image.NEAREST)) > 127


# ---- clean sources -----------------------------------------------------------------------------------

def _small(images: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(image).resize((MATCH_SIZE, MATCH_SIZE), Image.BOX), dtype=np.float32)
                     for image in images]).reshape(len(images), -1)


def nearest_normals(queries: np.ndarray, normals: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest normal image per query and the RMS difference, over the pixels outside ``masks``
    (dilated by one pixel at the matching size) when given, else over the whole image."""
    q, n = _small(queries), _small(normals)
    if masks is None:
        weights = np.ones_like(q)
    else:
        small = np.stack([np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((MATCH_SIZE, MATCH_SIZE), Image.BOX)) > 0
                          for m in masks])
        outside = ~np.stack([binary_dilation(m) for m in small])
        weights = np.repeat(outside[..., None], 3, axis=-1).reshape(len(q), -1).astype(np.float32)
    # sum_p w (q - n)^2 = sum w q^2 - 2 (w q) . n + w . n^2, for every (query, normal) at once
    squared = (weights * q * q).sum(1)[:, None] - 2 * (weights * q) @ n.T + weights @ (n * n).T
    counts = np.maximum(weights.sum(1), 1.0)[:, None]
    rms = np.sqrt(np.maximum(squared, 0.0) / counts)
    best = rms.argmin(1)
    return best, rms[np.arange(len(q)), best]


# ---- the import ---------------------------------------------------------------------------------------

def choose_pairs(scan: LayoutScan, defect_types: Sequence[str], n_per_defect: int) -> tuple[list[ExternalPair], list[str]]:
    """The first ``n_per_defect`` pairs of each known defect type; pairs of other types are reported."""
    chosen, problems = [], []
    known = set(defect_types)
    for defect, count in sorted(scan.per_defect().items()):
        if defect not in known:
            problems.append(f"{defect}/: {count} pair(s) of a defect type the category's training split does not "
                            f"have ({', '.join(defect_types)}), not imported")
    for defect in defect_types:
        chosen += [pair for pair in scan.pairs if pair.defect_type == defect][:n_per_defect]
    return chosen, problems


def import_set(scan: LayoutScan, train: TrainSplit, out: Path, *, n_per_defect: int, meta: SynthesizerMeta,
               config: dict[str, Any], config_hash: str, source_sha256: str) -> tuple[GeneratedSetInfo, ImportReport]:
    """Write the chosen pairs of ``scan`` as a generated set in ``out`` (emptied first) at the split's size."""
    from synthesis.checkpoint import package_version

    started = time.perf_counter()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)  # an interrupted import of this job: start again (it is quick)
    out.mkdir(parents=True)
    size = train.image_size
    chosen, problems = choose_pairs(scan, train.defect_types, n_per_defect)
    problems = list(scan.problems) + problems
    rows: list[tuple[ExternalPair, np.ndarray, np.ndarray, np.ndarray | None]] = []
    for pair in chosen:
        try:
            image = load_image(pair.image, size, scan.relative(pair.image))
            mask = load_mask(pair.mask, size, scan.relative(pair.mask))
            source = load_image(pair.source, size, scan.relative(pair.source)) if pair.source else None
        except ValueError as err:
            problems.append(f"{err}, not imported")
            continue
        rows.append((pair, image, mask, source))
    if not rows:
        raise ValueError(f"{scan.folder}: none of the {len(chosen)} chosen pairs could be read; first problem: "
                         f"{problems[0] if problems else 'none'}")

    normal_ids = [normal.image_id for normal in train.normals]
    normals = np.stack([normal.image for normal in train.normals])
    rules: list[CleanRule] = []
    for pair, _, _, source in rows:
        rules.append("manifest" if pair.normal_id in normal_ids else
                     "nearest-to-source-image" if source is not None else "nearest-outside-mask")
    chosen_normal: list[tuple[str, float | None]] = [(pair.normal_id or "", None) for pair, *_ in rows]
    for rule in ("nearest-to-source-image", "nearest-outside-mask"):
        where = [i for i, r in enumerate(rules) if r == rule]
        if not where:
            continue
        queries = np.stack([rows[i][3] if rule == "nearest-to-source-image" else rows[i][1] for i in where])
        masks = None if rule == "nearest-to-source-image" else np.stack([rows[i][2] for i in where])
        best, distance = nearest_normals(queries, normals, masks)
        for i, b, d in zip(where, best, distance):
            chosen_normal[i] = (normal_ids[int(b)], round(float(d), 4))

    samples, imported, counters = [], [], {}
    with open(out / MANIFEST, "w") as manifest:
        for (pair, image, mask, _), rule, (normal_id, distance) in zip(rows, rules, chosen_normal):
            index = counters.get(pair.defect_type, 0)
            counters[pair.defect_type] = index + 1
            image_bytes, mask_bytes = _png(image), _png(mask.astype(np.uint8) * 255)
            image_file, mask_file = f"{pair.defect_type}/{index:04d}.png", f"{pair.defect_type}/{index:04d}_mask.png"
            write_bytes(out / image_file, image_bytes)
            write_bytes(out / mask_file, mask_bytes)
            native = pair.caption is not None and pair.caption_origin is not None
            sample = GeneratedSample(
                defect_type=pair.defect_type, index=index, image_file=image_file, mask_file=mask_file,
                caption=pair.caption or "", caption_origin=pair.caption_origin if native else "external",
                normal_id=normal_id, mask_origin=pair.mask_origin or f"external:{scan.layout}:{scan.relative(pair.mask)}",
                seed=pair.seed if pair.seed is not None else NO_SEED,
                image_sha256=_sha(image_bytes), mask_sha256=_sha(mask_bytes), mask_pixels=int(mask.sum()),
                plan=pair.plan if native else None,
            )
            samples.append(sample)
            manifest.write(sample.model_dump_json() + "\n")
            imported.append(ImportedSample(defect_type=pair.defect_type, index=pair.index,
                                           files=[scan.relative(p) for p in pair.files()], clean_rule=rule,
                                           normal_id=normal_id, clean_distance=distance))
    first_size = _decode(rows[0][0].image, "RGB", scan.relative(rows[0][0].image)).size
    report = ImportReport(
        layout=scan.layout, category=scan.category, content_sha256=source_sha256, found_per_defect=scan.per_defect(),
        used_per_defect=dict(counters), n_per_defect=n_per_defect, source_image_size=list(first_size),
        problems=problems, clean_rules={rule: rules.count(rule) for rule in dict.fromkeys(rules)}, samples=imported,
    )
    fit = FitReport(split_id=train.split_id, protocol_id=train.protocol_id, dataset=train.dataset, category=train.category,
                    image_size=size, normal_images_seen=0, real_anomalies_seen=0, seconds=0.0,
                    details={"imported": True, "synthesizer_run_by_benchmark": False})
    info = GeneratedSetInfo(
        synthesizer=meta, config=config, config_hash=config_hash, fit=fit, dataset=train.dataset,
        category=train.category, is_demo=train.is_demo, protocol_id=train.protocol_id, split_id=train.split_id,
        image_size=size, request=GenerationRequest(defect_types=train.defect_types, n_per_defect=n_per_defect, seed=NO_SEED),
        samples=len(samples), set_sha256=set_hash(samples), seconds=round(time.perf_counter() - started, 3),
        package_version=package_version(),
    )
    write_bytes(out / IMPORT_FILE, (report.model_dump_json(indent=2) + "\n").encode())
    write_bytes(out / INFO, (info.model_dump_json(indent=2) + "\n").encode())
    return info, report


def summary_json(report: ImportReport) -> dict[str, Any]:
    """The report without its per-sample rows (for job outputs and records)."""
    return json.loads(report.model_dump_json(exclude={"samples"}))
