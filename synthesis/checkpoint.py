"""Save and load fitted synthesizers: config, config hash, what the fit saw, and learned state."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path

from pydantic import BaseModel, ValidationError

from mvtec_caption.output_folder import MARKER
from synthesis import registry
from synthesis.contract import CONTRACT_VERSION, FitReport, Synthesizer, SynthesizerMeta
from synthesis.state_files import CheckpointError, read_json  # noqa: F401  (CheckpointError: re-exported)


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


def _replace_state(staging: Path, folder: Path) -> None:
    """Swap the staged ``state/`` and ``synthesizer.json`` into ``folder``, touching nothing else in it.

    ``synthesizer.json`` goes first and comes back last, so a folder caught half-way never looks
    like a complete checkpoint.
    """
    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
    old = folder / STATE_FOLDER
    if old.exists():
        retired = Path(tempfile.mkdtemp(dir=folder, prefix=".state-old-"))
        old.rename(retired / STATE_FOLDER)
        shutil.rmtree(retired)  # the previous checkpoint's state: written by save_checkpoint too
    (staging / STATE_FOLDER).rename(old)
    os.replace(staging / CHECKPOINT_FILE, folder / CHECKPOINT_FILE)


def save_checkpoint(synthesizer: Synthesizer, folder: Path) -> CheckpointInfo:
    """Write the checkpoint into ``folder`` (new, empty, or holding an earlier checkpoint).

    Only ``synthesizer.json`` and ``state/`` are written or replaced; anything else in the folder
    is left alone, and a non-empty folder that holds no checkpoint is refused: saving never
    deletes what it did not write. A half-written checkpoint never looks complete.
    """
    if synthesizer.fit_report is None:
        raise RuntimeError(f"{synthesizer.name}: nothing to save before fit()")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder} is a file, not a checkpoint folder")
    ours = {CHECKPOINT_FILE, STATE_FOLDER, MARKER}
    if folder.is_dir() and not (folder / CHECKPOINT_FILE).is_file() and \
            any(not p.name.startswith(".state-") and p.name not in ours for p in folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty and holds no synthesizer checkpoint; refusing to write into it")
    folder.mkdir(parents=True, exist_ok=True)
    info = CheckpointInfo(
        contract_version=CONTRACT_VERSION, package_version=package_version(), meta=synthesizer.meta,
        config=synthesizer.config.model_dump(mode="json"), config_hash=synthesizer.config_hash, fit=synthesizer.fit_report,
    )
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".state-new-"))
    try:
        (staging / STATE_FOLDER).mkdir()
        synthesizer.save_state(staging / STATE_FOLDER)
        (staging / CHECKPOINT_FILE).write_text(info.model_dump_json(indent=2) + "\n")
        _replace_state(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def read_checkpoint_info(folder: Path) -> CheckpointInfo:
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a synthesizer checkpoint (no {CHECKPOINT_FILE})")
    data = read_json(path)
    try:
        return CheckpointInfo.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}" for e in err.errors()[:3])
        raise CheckpointError(f"{path} is not a valid synthesizer checkpoint file ({problems})") from None


def load_checkpoint(folder: Path, device: str = "cpu", expect_name: str | None = None) -> Synthesizer:
    info = read_checkpoint_info(folder)
    if expect_name is not None and info.meta.name != expect_name:
        raise ValueError(f"{folder} holds synthesizer {info.meta.name!r}, not {expect_name!r}")
    synthesizer = registry.create(info.meta.name, config=info.config, device=device)
    if synthesizer.version != info.meta.version:
        raise ValueError(f"{Path(folder) / CHECKPOINT_FILE}: saved by {info.meta.name} version {info.meta.version}, "
                         f"this code is version {synthesizer.version}: fit again")
    if synthesizer.config_hash != info.config_hash:
        raise ValueError(f"{folder}: config hash differs from the stored one (code version changed?)")
    state = Path(folder) / STATE_FOLDER
    try:
        synthesizer.load_state(state)
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{state}: the saved state of {info.meta.name} cannot be loaded "
                              f"({type(err).__name__}: {err})") from err
    synthesizer.fit_report = info.fit
    return synthesizer
