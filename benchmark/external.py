"""Score a generated set made elsewhere: ``benchmark run --synth folder:PATH --layout LAYOUT``.

An external set takes the place of a synthesizer in the run. Its ``fit`` job only writes a
description (the name, the user's URL or citation, the layout and the content hash of the files:
the checkpoint a record reads its synthesizer from); its ``generate`` job imports the pairs into
this project's generated-set format at the protocol's size (:mod:`synthesis.importer`). Both jobs
are keyed by the content hash, not the path, and by no seed: the set is fixed, so every repetition
scores the same imported set and only the detectors' seeds vary. Contamination check, fidelity,
detectors, records and the leaderboard then work on it unchanged.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthesis.contract import SynthesizerMeta, canonical_hash
from synthesis.layouts import LayoutScan, get_layout

PREFIX = "folder:"
VERSION = "1"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class ExternalSetRequest(BaseModel):
    """One ``--synth folder:PATH`` of a run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    layout: str
    name: str = Field(description="The set's name in records and on the leaderboard.")
    source: str | None = Field(default=None, description="URL or citation of the set, as the user gave it.")


def is_external(spec: str) -> bool:
    return spec.startswith(PREFIX)


def default_name(path: Path) -> str:
    """The folder's name, lower-cased, with anything outside ``[a-z0-9._-]`` turned into ``-``."""
    return re.sub(r"[^a-z0-9._-]+", "-", path.resolve().name.lower()).strip("-.") or "external-set"


def parse_requests(specs: list[str], layout: str, name: str | None, source: str | None,
                   taken: set[str]) -> dict[str, ExternalSetRequest]:
    """The external sets among ``--synth`` values, keyed by their spec; every error names the folder."""
    get_layout(layout)  # unknown layouts fail first, listing the known ones
    folders = [spec for spec in specs if is_external(spec)]
    if name is not None and len(folders) != 1:
        raise ValueError(f"--set-name names one imported set; {len(folders)} --synth folder:PATH were given")
    if source is not None and len(folders) != 1:
        raise ValueError(f"--source describes one imported set; {len(folders)} --synth folder:PATH were given")
    requests: dict[str, ExternalSetRequest] = {}
    for spec in folders:
        path = Path(spec[len(PREFIX):]).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such folder (--synth {spec})")
        set_name = name or default_name(path)
        if not NAME.match(set_name):
            raise ValueError(f"set name {set_name!r} (of {path}): use lower-case letters, digits, '.', '_' and '-'")
        if set_name in taken:
            raise ValueError(f"set name {set_name!r} (of {path}) is a registered synthesizer's or another set's "
                             "name; choose another with --set-name")
        taken.add(set_name)
        requests[spec] = ExternalSetRequest(path=str(path.resolve()), layout=layout, name=set_name, source=source)
    return requests


def scan(request: ExternalSetRequest, category: str) -> LayoutScan:
    return get_layout(request.layout).scan(Path(request.path), category)


def meta(request: ExternalSetRequest) -> SynthesizerMeta:
    """What a record says about the synthesizer behind an imported set, which the benchmark does not know: no text
    or planned masks given to it by the benchmark, real anomalies assumed seen (the cautious reading for a
    comparison), nothing promised outside the mask."""
    return SynthesizerMeta(
        name=request.name, version=VERSION,
        description=f"generated set imported from a folder in the {request.layout} layout; its synthesizer was not "
                    "run by the benchmark",
        reference=request.source, uses_text=False, uses_masks=False, uses_real_anomalies=True, keeps_outside_mask=False,
    )


def config(request: ExternalSetRequest, content_sha256: str) -> dict[str, Any]:
    return {"imported": True, "layout": request.layout, "source": request.source, "content_sha256": content_sha256}


def config_hash(request: ExternalSetRequest, content_sha256: str) -> str:
    return canonical_hash({"name": request.name, "version": VERSION, "config": config(request, content_sha256)})


def describe(ctx: Any, request: ExternalSetRequest, content_sha256: str, work: Path) -> dict[str, Any]:
    """The ``fit`` job of an imported set: the checkpoint description a record reads (nothing is learned)."""
    from synthesis.checkpoint import CHECKPOINT_FILE, CONTRACT_VERSION, CheckpointInfo, package_version
    from synthesis.contract import FitReport

    train = ctx.train
    fit = FitReport(split_id=train.split_id, protocol_id=train.protocol_id, dataset=train.dataset, category=train.category,
                    image_size=train.image_size, normal_images_seen=0, real_anomalies_seen=0, seconds=0.0,
                    details={"imported": True, "synthesizer_run_by_benchmark": False})
    info = CheckpointInfo(contract_version=CONTRACT_VERSION, package_version=package_version(), meta=meta(request),
                          config=config(request, content_sha256), config_hash=config_hash(request, content_sha256), fit=fit)
    (work / "checkpoint").mkdir(parents=True, exist_ok=True)
    (work / "checkpoint" / CHECKPOINT_FILE).write_text(info.model_dump_json(indent=2) + "\n")
    return {"checkpoint": "checkpoint", "config_hash": info.config_hash, "seconds": 0.0}


def import_(ctx: Any, request: ExternalSetRequest, content_sha256: str, work: Path) -> dict[str, Any]:
    """The ``generate`` job of an imported set: the pairs in the native format, the grid, the import report."""
    from synthesis.grid import write_grid
    from synthesis.importer import import_set, summary_json

    started = time.perf_counter()
    found = scan(request, ctx.category)
    info, report = import_set(found, ctx.train, work / "samples", n_per_defect=ctx.protocol.n_generated_per_defect,
                              meta=meta(request), config=config(request, content_sha256),
                              config_hash=config_hash(request, content_sha256), source_sha256=content_sha256)
    if report.content_sha256 != content_sha256:  # pragma: no cover - the same hash passed through
        raise ValueError(f"{request.path}: content hash changed while importing")
    write_grid(work / "samples", work / "grid.png", train=ctx.train)
    return {"samples": "samples", "grid": "grid.png", "set_sha256": info.set_sha256, "n": info.samples,
            "seconds": time.perf_counter() - started, "import": summary_json(report)}


def external_ref(request: ExternalSetRequest, import_output: dict[str, Any]):  # noqa: ANN201 -> ExternalSetRef
    from benchmark.results import ExternalSetRef

    report = import_output["import"]
    return ExternalSetRef(
        name=request.name, source=request.source, layout=request.layout, content_sha256=report["content_sha256"],
        images_per_defect=report["found_per_defect"], used_per_defect=report["used_per_defect"],
        source_image_size=report["source_image_size"], problems=report["problems"], resize_rule=report["resize_rule"],
        clean_source=report["clean_rules"], clean_source_rules=report["clean_rule_descriptions"],
    )


def comparability_notes(ref: Any, defect_types: list[str], n_per_defect: int) -> list[str]:
    """Why an imported set's record is not comparable: defect types short of the protocol's count, or missing."""
    notes = []
    short = {d: ref.used_per_defect.get(d, 0) for d in defect_types if ref.used_per_defect.get(d, 0) < n_per_defect}
    if short:
        notes.append(f"imported set {ref.name} has fewer than the protocol's {n_per_defect} images per defect type: "
                     + ", ".join(f"{d} {n}" for d, n in short.items()))
    return notes
