"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every writer of the project (result records, job outputs, markers, caches, plots, weights,
generated sets, leaderboard files) goes through this module, so the rule lives in one place:
the bytes go to a hidden temporary file in the target's own folder (same file system, so the
rename is atomic), which then replaces the target with ``os.replace``; on any error the
temporary file is removed and the target is left as it was. Runs that share an output folder
rely on this (see :mod:`benchmark.store`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``.

    >>> with atomic_write("out.json", "w", encoding="utf-8") as handle:  # doctest: +SKIP
    ...     handle.write("{}")
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    handle = tempfile.NamedTemporaryFile(mode, dir=target.parent, prefix=f".{target.name}.", suffix=".part",
                                         delete=False, encoding=encoding)
    try:
        with handle:
            yield handle
        os.replace(handle.name, target)
    finally:
        Path(handle.name).unlink(missing_ok=True)  # after a replace the name is gone; after an error it is removed


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see the module docstring)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def create_once(path: str | os.PathLike[str], data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists (then nothing is written and False is returned).

    The complete file appears at once through a hard link, which fails when the name is taken:
    of two processes creating the same file exactly one writes it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("wb", dir=target.parent, prefix=f".{target.name}.", suffix=".part",
                                         delete=False)
    try:
        with handle:
            handle.write(data)
        os.link(handle.name, target)
        return True
    except FileExistsError:
        return False
    finally:
        Path(handle.name).unlink(missing_ok=True)
