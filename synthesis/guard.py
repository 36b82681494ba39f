"""Make reading test data fail while a synthesizer runs.

The :class:`~synthesis.contract.TrainSplit` already holds no path to test data; this guard is
the second line: inside :func:`forbid_reading`, any attempt in this process to open or list a
file under a forbidden folder (the dataset's ``test/`` and ``ground_truth/`` folders, the
caption source) raises :class:`TestDataAccessError`. It uses a Python audit hook (PEP 578),
installed once and active only inside the context.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mvtec_caption.split import test_data_paths  # noqa: F401 (which files are test data is the split's rule)

_WATCHED_EVENTS = {"open", "os.listdir", "os.scandir", "shutil.copyfile", "os.rename"}
_state = threading.local()
_forbidden: list[tuple[str, ...]] = []  # stack of active forbidden prefixes
_installed = False


class TestDataAccessError(PermissionError):
    """A synthesizer tried to read test images, masks or captions."""

    __test__ = False  # not a pytest test class


def _normalise(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def _hook(event: str, args: tuple) -> None:
    if event not in _WATCHED_EVENTS or not _forbidden or getattr(_state, "inside", False):
        return
    target = args[0] if args else None
    if target is None or isinstance(target, int):
        return
    if isinstance(target, bytes):
        target = target.decode(errors="replace")
    if not isinstance(target, (str, os.PathLike)):
        return
    _state.inside = True  # realpath itself triggers events; don't recurse
    try:
        resolved = _normalise(target)
        for prefixes in _forbidden:
            for prefix in prefixes:
                if resolved == prefix or resolved.startswith(prefix + os.sep):
                    raise TestDataAccessError(
                        f"synthesizers may not read test data: {event} {target!s} (forbidden: {prefix})"
                    )
    finally:
        _state.inside = False


@contextmanager
def forbid_reading(paths: Iterable[str | os.PathLike[str] | Path]) -> Iterator[None]:
    """Inside the block, opening or listing anything under ``paths`` raises."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    prefixes = tuple(_normalise(p) for p in paths)
    _forbidden.append(prefixes)
    try:
        yield
    finally:
        _forbidden.remove(prefixes)
