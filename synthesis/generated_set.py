"""Generated sets on disk: PNG images and masks in an MVTec-like tree, a JSONL manifest, a hash.

Layout::

    <out>/generation.json          what made the set (synthesizer, config hash, fit, plan, set hash)
    <out>/manifest.jsonl           one GeneratedSample per line
    <out>/<defect>/<index>.png     the synthesized image
    <out>/<defect>/<index>_mask.png its binary mask (PNG, never JPEG)

Two checks run on every output before it is written, for every synthesizer:

* **colour**: the output is brought inside the category's colours (:func:`synthesis.colour.conform`;
  grey categories stay grey). Built-in synthesizers already keep to them; ``colour_guard`` in
  ``generation.json`` says how many images and pixels the guard had to change (0 for them);
* **label floor**: a synthesizer with a ``label_floor`` has each sample whose visible share
  (:mod:`synthesis.fidelity`) falls below it redone with a derived seed, up to ``max_attempts``
  tries; a sample still below it is left out of the set and listed under ``failed``, never kept
  silently (``redone`` counts the samples that needed more than one try).

Generation is resumable: samples already on disk whose file hashes match the manifest are
kept, the rest are (re)generated. The set hash covers every manifest row (including file
hashes) and nothing time-dependent, so the same request gives the same hash anywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from mvtec_caption.atomic import write_bytes
from synthesis.colour import ColourProfile, conform
from synthesis.contract import (
    FitReport,
    SampleSpec,
    SynthesisOutput,
    Synthesizer,
    SynthesizerMeta,
    TrainSplit,
    canonical_hash,
    train_colour,
)
from synthesis.fidelity import label_fidelity
from synthesis.guard import forbid_reading
from synthesis.plan import Planner, SamplePlan, planner_rules

SET_SCHEMA_VERSION = 1
#: Most images per defect type one request may ask for: ten times the paper's budget (1,000). The plan
#: holds every sample's mask in memory (10,000 x 256 x 256 bytes = 0.66 GB per defect type), so a larger
#: request would exhaust memory before the first image is written.
MAX_PER_DEFECT = 10_000
MANIFEST = "manifest.jsonl"
INFO = "generation.json"
PARTIAL = "generation.partial.json"


class GeneratedSample(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    defect_type: str
    index: int
    image_file: str
    mask_file: str
    caption: str
    caption_origin: Literal["train", "user", "external"]  # external: an imported set's (captionless) sample
    normal_id: str
    mask_origin: str
    seed: int
    image_sha256: str
    mask_sha256: str
    mask_pixels: int = Field(description="Anomalous pixels in the mask.")
    plan: SamplePlan | None = Field(None, description="What the caption asked of the mask, what was planned and how "
                                    "the caption was chosen (sets made before planner 2 have none).")


class GenerationRequest(BaseModel):
    """What was asked: part of the set's identity."""

    model_config = ConfigDict(frozen=True)

    defect_types: list[str]
    n_per_defect: int
    seed: int
    caption: str | None = None
    user_masks: list[str] = Field(default_factory=list, description="sha256 of user-given masks, if any.")


class ColourGuard(BaseModel):
    """What the colour check did to a set (see the module docstring)."""

    profile: ColourProfile
    images_changed: int = 0
    pixels_changed: int = 0


class FailedSample(BaseModel):
    name: str  # "<defect>/<index>"
    attempts: int
    visible_share: float = Field(description="Of the last attempt.")


class GeneratedSetInfo(BaseModel):
    schema_version: Literal[1] = SET_SCHEMA_VERSION
    synthesizer: SynthesizerMeta
    config: dict[str, Any]
    config_hash: str
    fit: FitReport
    dataset: str
    category: str
    is_demo: bool
    protocol_id: str
    split_id: str
    image_size: int
    request: GenerationRequest
    samples: int
    set_sha256: str
    seconds: float
    package_version: str
    colour_guard: ColourGuard | None = None
    label_floor: float | None = Field(None, description="The synthesizer's floor on the visible share, if any.")
    redone: int = Field(0, description="Samples that needed more than one try to reach the label floor.")
    failed: list[FailedSample] = Field(default_factory=list, description="Samples below the floor after every try: "
                                       "left out of the set.")
    planner: dict[str, Any] | None = Field(None, description="The planning rules (synthesis.plan.planner_rules); "
                                           "None in sets made before they were recorded.")


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()




#: Names :func:`generate_set` writes inside a defect folder (images, masks, and atomic-write temporaries).
_SAMPLE_FILE = re.compile(r"^\.?\d{4,}(_mask)?\.png(\..+)?$")
#: Names it writes at the top of the set folder.
_SET_FILE = re.compile(rf"^\.?({re.escape(MANIFEST)}|{re.escape(INFO)}|{re.escape(PARTIAL)})(\..+)?$")


def _remove_set(folder: Path) -> None:
    """Delete the files a generated set consists of, and nothing else.

    Only names :func:`generate_set` writes are removed (by pattern, never by trusting the
    manifest's paths), then defect folders left empty; anything a user put beside them stays.
    """
    for entry in folder.iterdir():
        if entry.is_file() and _SET_FILE.match(entry.name):
            entry.unlink()
        elif entry.is_dir() and not entry.is_symlink():
            for item in entry.iterdir():
                if item.is_file() and _SAMPLE_FILE.match(item.name):
                    item.unlink()
            if not any(entry.iterdir()):
                entry.rmdir()


def set_hash(samples: Sequence[GeneratedSample]) -> str:
    rows = sorted((s.model_dump(mode="json", exclude={"plan"} if s.plan is None else None) for s in samples),
                  key=lambda r: (r["defect_type"], r["index"]))
    return canonical_hash(rows)  # a sample without a plan hashes as before the field existed


def read_manifest(folder: Path) -> list[GeneratedSample]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return []
    samples = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                samples.append(GeneratedSample.model_validate_json(line))
            except ValueError:
                continue  # a line cut by an interruption: the sample is regenerated
    return samples


def read_info(folder: Path) -> GeneratedSetInfo:
    path = Path(folder) / INFO
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no complete generated set (no {INFO})")
    return GeneratedSetInfo.model_validate_json(path.read_text())


def verify_set(folder: Path) -> list[str]:
    """Problems with a generated set on disk (empty when files, manifest and hash agree)."""
    folder = Path(folder)
    problems = []
    info = read_info(folder)
    samples = read_manifest(folder)
    for sample in samples:
        for name, expected in ((sample.image_file, sample.image_sha256), (sample.mask_file, sample.mask_sha256)):
            path = folder / name
            if not path.is_file():
                problems.append(f"missing {name}")
            elif _sha(path.read_bytes()) != expected:
                problems.append(f"{name} changed since generation")
    if set_hash(samples) != info.set_sha256:
        problems.append("set hash does not match the manifest")
    return problems


def _read_partial(path: Path) -> Any:
    """The identity an interrupted generation recorded; None when unreadable (then it cannot be resumed)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class GeneratedSetError(ValueError):
    """A generated set on disk differs from what was generated; it must not be scored."""


def require_intact(folder: Path, expected_sha256: str | None = None) -> GeneratedSetInfo:
    """Check a set's files against its manifest and hash (and ``expected_sha256``, the hash recorded
    when it was made) before anyone scores it; a mismatch names the set and how to redo it."""
    folder = Path(folder)
    try:
        info = read_info(folder)
        problems = verify_set(folder)
    except (OSError, ValueError) as err:
        raise GeneratedSetError(f"generated set {folder} cannot be read ({err}); it is not scored. "
                                "Redo it with --overwrite") from err
    if expected_sha256 is not None and info.set_sha256 != expected_sha256:
        problems.append(f"its hash {info.set_sha256[:12]} is not the recorded {expected_sha256[:12]}")
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise GeneratedSetError(
            f"generated set {folder} ({info.synthesizer.name} on {info.dataset}/{info.category}, set "
            f"{(expected_sha256 or info.set_sha256)[:12]}) was changed after generation: {shown}. It is not scored; "
            "redo it with --overwrite")
    return info


def _valid_existing(folder: Path) -> dict[tuple[str, int], GeneratedSample]:
    kept = {}
    for sample in read_manifest(folder):
        image, mask = folder / sample.image_file, folder / sample.mask_file
        if image.is_file() and mask.is_file() and _sha(image.read_bytes()) == sample.image_sha256 \
                and _sha(mask.read_bytes()) == sample.mask_sha256:
            kept[(sample.defect_type, sample.index)] = sample
    return kept


def _check_output(spec: SampleSpec, output_image: np.ndarray, output_mask: np.ndarray, size: int, name: str) -> None:
    if output_image.shape != (size, size, 3) or output_image.dtype != np.uint8:
        raise ValueError(f"{name} returned image {output_image.shape} {output_image.dtype} for {spec.name}; "
                         f"expected ({size}, {size}, 3) uint8")
    if output_mask.shape != (size, size):
        raise ValueError(f"{name} returned mask {output_mask.shape} for {spec.name}; expected ({size}, {size})")


class _Checked:
    """Runs a synthesizer on a batch and applies the colour guard and the label floor to its outputs."""

    def __init__(self, synthesizer: Synthesizer, profile: ColourProfile, size: int):
        self.synthesizer = synthesizer
        self.size = size
        self.guard = ColourGuard(profile=profile)
        self.redone = 0
        self.failed: list[FailedSample] = []

    def _guarded(self, output: SynthesisOutput, normal: np.ndarray) -> SynthesisOutput:
        image = conform(output.image, normal, output.mask, self.guard.profile)
        changed = int((image != output.image).any(axis=-1).sum())
        if changed:
            self.guard.images_changed += 1
            self.guard.pixels_changed += changed
            output = SynthesisOutput(image=image, mask=output.mask, mask_origin=output.mask_origin)
        return output

    def run(self, specs: list[SampleSpec], normals: list[np.ndarray]) -> list[SynthesisOutput | None]:
        """One output per spec (None: failed the label floor on every try)."""
        floor = self.synthesizer.label_floor
        results: list[SynthesisOutput | None] = [None] * len(specs)
        pending = list(range(len(specs)))
        current = list(specs)
        attempts = max(1, self.synthesizer.max_attempts) if floor is not None else 1
        for attempt in range(attempts):
            outputs = self.synthesizer.synthesize_batch([current[i] for i in pending], [normals[i] for i in pending])
            still = []
            for i, output in zip(pending, outputs):
                _check_output(current[i], output.image, np.asarray(output.mask), self.size, self.synthesizer.name)
                output = self._guarded(output, normals[i])
                if floor is None:
                    results[i] = output
                    continue
                share = label_fidelity(output.image, normals[i], output.mask).visible_share
                if share >= floor:
                    results[i] = output
                    self.redone += attempt > 0
                elif attempt + 1 < attempts:
                    current[i] = specs[i].redo(attempt + 1)
                    still.append(i)
                else:
                    self.failed.append(FailedSample(name=specs[i].name, attempts=attempts, visible_share=round(share, 4)))
            pending = still
            if not pending:
                break
        return results


def generate_set(
    synthesizer: Synthesizer,
    train: TrainSplit,
    out: Path,
    *,
    n_per_defect: int,
    seed: int,
    defect_types: Sequence[str] | None = None,
    caption: str | None = None,
    user_masks: Sequence[tuple[str, np.ndarray]] | None = None,
    forbidden_paths: Sequence[Path] = (),
    overwrite: bool = False,
    progress: bool = True,
) -> GeneratedSetInfo:
    """Plan, synthesize and write a generated set (resuming a partial one in ``out``)."""
    from synthesis.checkpoint import package_version

    if not 1 <= n_per_defect <= MAX_PER_DEFECT:
        raise ValueError(f"n_per_defect={n_per_defect}: between 1 and {MAX_PER_DEFECT:,} images per defect type")
    if seed < 0:
        raise ValueError(f"seed={seed}: seeds are non-negative")
    if caption is not None and not caption.strip():
        raise ValueError("the caption is empty: give its text, or none to use the training captions")
    synthesizer.require_fit(train)
    out = Path(out)
    types = list(defect_types) if defect_types else train.defect_types
    request = GenerationRequest(
        defect_types=types, n_per_defect=n_per_defect, seed=seed, caption=caption,
        user_masks=[_sha(np.packbits(m).tobytes()) for _, m in (user_masks or [])],
    )
    identity = {"config_hash": synthesizer.config_hash, "split_id": train.split_id, "request": request.model_dump(mode="json"),
                "fit": synthesizer.fit_report.model_dump(mode="json"), "planner": planner_rules()}
    partial = out / PARTIAL
    if out.exists() and any(out.iterdir()):
        if (out / INFO).is_file():
            info = read_info(out)
            same = (info.config_hash, info.split_id, info.request, info.fit, info.planner) == (
                synthesizer.config_hash, train.split_id, request, synthesizer.fit_report, planner_rules())
            if same and not overwrite:
                return info  # already generated: nothing to do
            if not overwrite:
                raise FileExistsError(f"{out} holds a different generated set; use overwrite=True (--overwrite) or another folder")
            _remove_set(out)
        elif partial.is_file():
            if _read_partial(partial) != identity:
                if not overwrite:
                    raise FileExistsError(f"{out} holds a partial set made with other settings; use overwrite=True (--overwrite)")
                _remove_set(out)
            # else: same request interrupted earlier, resume below
        else:
            raise FileExistsError(f"{out} is not empty and holds no generated set; refusing to write into it "
                                  "(--overwrite replaces only a generated set)")
    out.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps(identity, sort_keys=True))

    kept = _valid_existing(out)
    planner = Planner(train, user_masks=user_masks, caption=caption)
    specs = [spec for defect in types for spec in planner.plan(defect, n_per_defect, seed)]
    todo = [s for s in specs if (s.defect_type, s.index) not in kept]
    started = time.perf_counter()
    samples = dict(kept)
    with open(out / MANIFEST, "w") as manifest:  # rewrite with the kept rows, then append as we go
        for sample in kept.values():
            manifest.write(sample.model_dump_json() + "\n")
        manifest.flush()
        bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc=f"generate {synthesizer.name}",
                   unit="img", disable=not progress)
        batch = max(1, synthesizer.batch_size)
        checked = _Checked(synthesizer, synthesizer.colour or train_colour(train), train.image_size)
        with forbid_reading(forbidden_paths):
            for start in range(0, len(todo), batch):
                chunk = todo[start:start + batch]
                outputs = checked.run(chunk, [planner.normal_image(s.normal_id) for s in chunk])
                for spec, output in zip(chunk, outputs):
                    if output is None:  # below the label floor on every try: recorded, not kept
                        bar.update(1)
                        continue
                    mask = np.asarray(output.mask, dtype=bool)
                    _check_output(spec, output.image, mask, train.image_size, synthesizer.name)
                    image_bytes, mask_bytes = _png(output.image), _png(mask.astype(np.uint8) * 255)
                    image_file = f"{spec.defect_type}/{spec.index:04d}.png"
                    mask_file = f"{spec.defect_type}/{spec.index:04d}_mask.png"
                    write_bytes(out / image_file, image_bytes)
                    write_bytes(out / mask_file, mask_bytes)
                    sample = GeneratedSample(
                        defect_type=spec.defect_type, index=spec.index, image_file=image_file, mask_file=mask_file,
                        caption=spec.caption, caption_origin=spec.caption_origin, normal_id=spec.normal_id,
                        mask_origin=output.mask_origin or spec.mask_origin, seed=spec.seed,
                        image_sha256=_sha(image_bytes), mask_sha256=_sha(mask_bytes), mask_pixels=int(mask.sum()),
                        plan=spec.plan if output.mask_origin is None else None,  # a synthesizer's own mask was not planned
                    )
                    samples[(spec.defect_type, spec.index)] = sample
                    manifest.write(sample.model_dump_json() + "\n")
                    manifest.flush()
                    bar.update(1)
        bar.close()
    ordered = [samples[(s.defect_type, s.index)] for s in specs if (s.defect_type, s.index) in samples]
    write_bytes(out / MANIFEST, "".join(s.model_dump_json() + "\n" for s in ordered).encode())
    info = GeneratedSetInfo(
        synthesizer=synthesizer.meta, config=synthesizer.config.model_dump(mode="json"), config_hash=synthesizer.config_hash,
        fit=synthesizer.fit_report, dataset=train.dataset, category=train.category, is_demo=train.is_demo,
        protocol_id=train.protocol_id, split_id=train.split_id, image_size=train.image_size, request=request,
        samples=len(ordered), set_sha256=set_hash(ordered), seconds=round(time.perf_counter() - started, 3),
        package_version=package_version(), colour_guard=checked.guard, label_floor=synthesizer.label_floor,
        redone=checked.redone, failed=checked.failed, planner=planner_rules(),
    )
    write_bytes(out / INFO, (info.model_dump_json(indent=2) + "\n").encode())
    partial.unlink(missing_ok=True)
    return info


def load_samples(folder: Path) -> list[tuple[GeneratedSample, np.ndarray, np.ndarray]]:
    """Images (HxWx3 uint8) and masks (HxW bool) of a complete generated set, in manifest order."""
    folder = Path(folder)
    read_info(folder)
    rows = []
    for sample in read_manifest(folder):
        with Image.open(folder / sample.image_file) as image, Image.open(folder / sample.mask_file) as mask:
            rows.append((sample, np.asarray(image.convert("RGB")), np.asarray(mask.convert("L")) > 127))
    return rows
