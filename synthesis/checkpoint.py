"""Save and load fitted synthesizers: config, config hash, what the fit saw, and learned state."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel

from synthesis import registry
from synthesis.contract import CONTRACT_VERSION, FitReport, Synthesizer, SynthesizerMeta

CHECKPOINT_FILE = "synthesizer.json"
STATE_FOLDER = "state"


class CheckpointInfo(BaseModel):
    contract_version: int
    package_version: str
    meta: SynthesizerMeta
    config: dict
    config_hash: str
    fit: FitReport


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mvtec-caption-bench")
    except PackageNotFoundError:
        return "0+unknown"


def save_checkpoint(synthesizer: Synthesizer, folder: Path) -> CheckpointInfo:
    """Write the checkpoint atomically: a half-written folder never looks complete."""
    if synthesizer.fit_report is None:
        raise RuntimeError(f"{synthesizer.name}: nothing to save before fit()")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    info = CheckpointInfo(
        contract_version=CONTRACT_VERSION, package_version=package_version(), meta=synthesizer.meta,
        config=synthesizer.config.model_dump(mode="json"), config_hash=synthesizer.config_hash, fit=synthesizer.fit_report,
    )
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        (staging / STATE_FOLDER).mkdir()
        synthesizer.save_state(staging / STATE_FOLDER)
        (staging / CHECKPOINT_FILE).write_text(info.model_dump_json(indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def read_checkpoint_info(folder: Path) -> CheckpointInfo:
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a synthesizer checkpoint (no {CHECKPOINT_FILE})")
    return CheckpointInfo.model_validate(json.loads(path.read_text()))


def load_checkpoint(folder: Path, device: str = "cpu", expect_name: str | None = None) -> Synthesizer:
    info = read_checkpoint_info(folder)
    if expect_name is not None and info.meta.name != expect_name:
        raise ValueError(f"{folder} holds synthesizer {info.meta.name!r}, not {expect_name!r}")
    synthesizer = registry.create(info.meta.name, config=info.config, device=device)
    if synthesizer.config_hash != info.config_hash:
        raise ValueError(f"{folder}: config hash differs from the stored one (code version changed?)")
    synthesizer.load_state(Path(folder) / STATE_FOLDER)
    synthesizer.fit_report = info.fit
    return synthesizer
