"""Reading a checkpoint's files so that a damaged or foreign file is named, never half-explained.

A checkpoint folder holds what a synthesizer saved (``.npz`` arrays, JSON, torch tensors). Any
file in it may have been truncated, replaced or hand-edited; these readers turn every way such
a file can fail into one :class:`CheckpointError` that names the file and says what it should be.
Arrays are read with ``allow_pickle=False`` (a checkpoint never executes code) and eagerly, so a
missing array surfaces here rather than later as a bare ``KeyError``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file."""


def read_arrays(path: Path, required: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path`` (refusing pickled objects)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the checkpoint (expected a NumPy .npz array file)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise CheckpointError(f"{path} is not a valid checkpoint array file: a single .npy array, "
                                      "not the expected .npz archive")
            arrays = {name: archive[name] for name in archive.files}
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        reason = "not a NumPy .npz archive" if "pickle" in str(err) else f"{type(err).__name__}: {err}"
        raise CheckpointError(f"{path} is not a valid checkpoint array file ({reason})") from err
    require_arrays(path, arrays, required)
    return arrays


def require_arrays(path: Path, arrays: dict[str, np.ndarray], names: Iterable[str]) -> None:
    """Refuse an array file that lacks some of ``names`` (it belongs to another synthesizer or version)."""
    missing = [name for name in names if name not in arrays]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointError(f"{path} lacks the array(s) {shown}: not a checkpoint of this synthesizer")


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; unreadable or invalid JSON names the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: missing from the checkpoint") from err
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a valid checkpoint JSON file ({type(err).__name__}: {err})") from err
