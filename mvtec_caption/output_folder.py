"""Where a command may write: the one rule every CLI of this project follows for its outputs.

A command writes only into a folder that is

* new or empty, or
* recognisably its own: it holds the marker file :data:`MARKER` that the same tool wrote for
  the same kind of output (or, for folders written before markers existed, exactly the layout
  that tool writes),

and never inside, nor around, a data root in effect: the ``--data-root`` / ``--caption-source``
arguments, ``$MVTEC_AD_ROOT``, ``$MVTEC_LOCO_ROOT``, ``$MVTEC_CAPTION_SOURCE`` and the demo data
folder in the cache (symlinks resolved). A path below a regular file is refused at once, before
any long work. Commands never delete what they did not write; the marker is what lets them know.

Every refusal is an :class:`OutputFolderError` (a ``ValueError``), which the CLIs print as one
``error:`` line and exit 2. The module sits at the bottom of the stack (no heavy imports) so
that ``mvtec_caption``, ``synthesis``, ``benchmark`` and ``leaderboard`` can all use it.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mvtec_caption.atomic import write_text

MARKER = ".mvtec-caption-bench.json"
#: Environment variables that name data the commands read and must never write into.
DATA_ROOT_ENV = ("MVTEC_AD_ROOT", "MVTEC_LOCO_ROOT", "MVTEC_CAPTION_SOURCE")

PathLike = str | os.PathLike[str]


class OutputFolderError(ValueError):
    """An output path that a command refuses to write to; the message says why and what to do."""


@dataclass(frozen=True)
class OutputKind:
    """What a command writes: the marker names ``tool`` and ``kind``.

    ``layout`` lists the names (``fnmatch`` patterns) the tool writes at the top of the folder;
    an unmarked folder holding nothing else, and at least one of the files or folders
    ``requires`` names (relative paths, e.g. ``logs/benchmark.log``), is taken as an earlier
    output of the same tool (written before markers existed) and adopted. Empty ``layout``: only
    a marker makes a folder ours.
    """

    tool: str
    kind: str
    layout: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    what: str = ""  # how messages describe such a folder (default: the command's output)

    @property
    def description(self) -> str:
        return self.what or f"an output of `python -m {self.tool} {self.kind}`"


@dataclass(frozen=True)
class DataRoot:
    path: Path  # resolved
    origin: str  # where it came from, for the message ("--data-root", "$MVTEC_AD_ROOT", "demo data", ...)


def data_roots(given: Iterable[tuple[str, PathLike | None]] = ()) -> list[DataRoot]:
    """Every data location in effect: the given ``(origin, path)`` pairs, the environment, the demo folder."""
    from mvtec_caption.sources import cache_dir

    candidates: list[tuple[str, PathLike | None]] = list(given)
    candidates += [(f"${name}", os.environ.get(name) or None) for name in DATA_ROOT_ENV]
    demo = cache_dir() / "demo"
    if demo.is_dir():
        candidates.append(("the demo data", demo))
    roots, seen = [], set()
    for origin, path in candidates:
        if path is None or str(path) == "":
            continue
        resolved = Path(path).expanduser().resolve()
        if resolved not in seen:
            seen.add(resolved)
            roots.append(DataRoot(resolved, origin))
    return roots


def _resolve(path: PathLike, flag: str) -> Path:
    if str(path).strip() == "":
        raise OutputFolderError(f"{flag} is empty: give a folder")
    resolved = Path(path).expanduser().resolve()
    for ancestor in resolved.parents:
        if ancestor.exists() and not ancestor.is_dir():
            raise OutputFolderError(f"refusing {flag} {path}: {ancestor} is a file, not a folder; choose another path")
    return resolved


def _refuse_data_roots(resolved: Path, shown: PathLike, flag: str, roots: Sequence[DataRoot]) -> None:
    for root in roots:
        if resolved == root.path or root.path in resolved.parents:
            raise OutputFolderError(f"refusing {flag} {shown}: it is inside the data at {root.path} ({root.origin}), "
                                    "and nothing is ever written there; choose a path outside it")
        if resolved in root.path.parents:
            raise OutputFolderError(f"refusing {flag} {shown}: it contains the data at {root.path} ({root.origin}); "
                                    "choose a folder that holds no data")


def read_marker(folder: Path) -> dict | None:
    """The marker of ``folder`` as a dict, None when absent; an unreadable marker is an error naming it."""
    path = Path(folder) / MARKER
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise OutputFolderError(f"{path}: unreadable output marker ({err}); this folder cannot be recognised "
                                "as an output of this project: choose another folder") from err
    if not isinstance(data, dict):
        raise OutputFolderError(f"{path}: not an output marker of this project; choose another folder")
    return data


def _entries(folder: Path) -> list[str]:
    """Names in ``folder``, without a marker another process is writing at this moment (its temporary file)."""
    return [p.name for p in folder.iterdir() if not p.name.startswith((f"{MARKER}.", f".{MARKER}."))]


def _is_own_layout(folder: Path, kind: OutputKind) -> bool:
    names = _entries(folder)
    in_layout = all(any(fnmatch.fnmatchcase(n, pattern) for pattern in kind.layout) for n in names)
    return bool(kind.layout) and in_layout and (not kind.requires or any((folder / r).exists() for r in kind.requires))


def check_output_folder(path: PathLike, kind: OutputKind, roots: Sequence[DataRoot], *, flag: str = "--out",
                        reuse: bool = True) -> Path:
    """Refuse ``path`` unless ``kind``'s command may write there (see the module docstring); writes nothing.

    ``reuse=False``: only a new or empty folder (for outputs assembled elsewhere and moved into place).
    Returns the resolved path.
    """
    resolved = _resolve(path, flag)
    _refuse_data_roots(resolved, path, flag, roots)
    if not resolved.exists():
        return resolved
    if not resolved.is_dir():
        raise OutputFolderError(f"refusing {flag} {path}: it is a file, not a folder")
    if not _entries(resolved):
        return resolved
    if not reuse:
        raise OutputFolderError(f"refusing {flag} {path}: it already exists and is not empty; choose a new folder")
    marker = read_marker(resolved)
    if marker is None:
        if _is_own_layout(resolved, kind):
            return resolved
        raise OutputFolderError(f"refusing {flag} {path}: it is not empty and is not {kind.description}; "
                                "choose a new or empty folder")
    if (marker.get("tool"), marker.get("kind")) != (kind.tool, kind.kind):
        raise OutputFolderError(f"refusing {flag} {path}: it holds an output of `python -m {marker.get('tool')} "
                                f"{marker.get('kind')}`, not {kind.description}; choose another folder")
    return resolved


def write_marker(folder: Path, kind: OutputKind) -> Path:
    """Mark ``folder`` as ``kind``'s output (an existing marker is kept), atomically."""
    path = Path(folder) / MARKER
    if path.is_file():
        return path
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("mvtec-caption-bench")
    except PackageNotFoundError:
        package = "0+unknown"
    # nothing time-dependent: two runs of a command give byte-identical folders
    text = json.dumps({"tool": kind.tool, "kind": kind.kind, "package_version": package,
                       "note": "written by mvtec-caption-bench: this folder holds its output"}, indent=2) + "\n"
    write_text(path, text)
    return path


def claim_output_folder(path: PathLike, kind: OutputKind, roots: Sequence[DataRoot], *, flag: str = "--out") -> Path:
    """:func:`check_output_folder`, then create the folder and mark it as ``kind``'s: call before writing."""
    resolved = check_output_folder(path, kind, roots, flag=flag)
    resolved.mkdir(parents=True, exist_ok=True)
    write_marker(resolved, kind)
    return resolved


def check_output_file(path: PathLike, roots: Sequence[DataRoot], *, flag: str, is_own: Callable[[Path], bool] | None = None,
                      what: str = "file") -> Path:
    """A single output file: not in or around a data root, not below a regular file, not a folder, and
    when it exists, recognisably written by this command (``is_own(path)``), else refused."""
    resolved = _resolve(path, flag)
    _refuse_data_roots(resolved, path, flag, roots)
    if resolved.is_dir():
        raise OutputFolderError(f"refusing {flag} {path}: it is a folder; give the path of the {what} to write")
    if resolved.exists() and not (is_own is not None and is_own(resolved)):
        raise OutputFolderError(f"refusing {flag} {path}: it already exists and is not a {what} written by this "
                                "command, so it is not overwritten; choose another path")
    return resolved
