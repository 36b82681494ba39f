"""All-or-nothing file writes: a submission either lands completely or leaves the folder as it was.

``submit`` checks everything it can before writing (see :mod:`leaderboard.submit`), but a write
can still fail (disk full, a file locked or made read-only meanwhile). :class:`FileTransaction`
writes each file atomically (temporary file beside it, then ``os.replace``) and remembers exactly
what it did: files it created, the previous bytes of files it replaced, folders it made. On
failure :meth:`rollback` undoes those steps in reverse order and nothing else, so a file the
submission did not write is never deleted or changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mvtec_caption.atomic import write_bytes


@dataclass
class FileTransaction:
    """Writes that can be undone; see the module docstring."""

    created_files: list[Path] = field(default_factory=list)
    replaced_files: list[tuple[Path, bytes]] = field(default_factory=list)  # path, bytes before this transaction
    created_dirs: list[Path] = field(default_factory=list)

    def _make_parents(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir()
            self.created_dirs.append(path)

    def write_text(self, path: Path, text: str) -> None:
        path = Path(path)
        self._make_parents(path.parent)
        previous = path.read_bytes() if path.is_file() else None
        write_bytes(path, text.encode("utf-8"))
        if previous is None:
            self.created_files.append(path)
        else:
            self.replaced_files.append((path, previous))

    @property
    def written(self) -> list[Path]:
        return self.created_files + [path for path, _ in self.replaced_files]

    def rollback(self) -> list[str]:
        """Undo every step (newest first); returns what could not be undone (empty when all was)."""
        failures = []
        for path, previous in reversed(self.replaced_files):
            try:
                write_bytes(path, previous)
            except OSError as err:
                failures.append(f"could not restore {path}: {err}")
        for path in reversed(self.created_files):
            try:
                path.unlink(missing_ok=True)
            except OSError as err:
                failures.append(f"could not remove {path}: {err}")
        for folder in reversed(self.created_dirs):
            try:
                folder.rmdir()  # only if empty: never removes what someone else put there
            except OSError:
                pass
        self.created_files, self.replaced_files, self.created_dirs = [], [], []
        return failures
