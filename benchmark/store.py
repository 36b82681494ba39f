"""Content-addressed jobs and their on-disk outputs, safe for several processes at once.

A benchmark run is a set of independent jobs (fit, generate, fidelity, detect). A job's key is
a hash of everything that determines its output: its parameters and the keys of the jobs it
reads. Outputs live in ``<out>/cache/<kind>/<key>/``. The rules that make the cache trustworthy
when runs are interrupted, repeated or run side by side (two shells, or a distributed executor's
workers on one file system):

* **one writer per job**: a job runs only while its process holds ``<key>.lock`` (an OS lock
  through ``filelock``: released by the kernel when the holder dies, so a dead worker never
  leaves a lock behind). A process that finds the job locked waits, then uses the output the
  holder wrote instead of doing the job again;
* **partial outputs are private**: work happens in ``<key>.partial/``, which only the lock holder
  touches, and is renamed into place when complete. A partial folder left by a dead worker is
  resumed by the next holder (fits resume from their snapshots, generation from its manifest);
* **done means complete**: a job is done when ``output.json`` parses as a JSON object and every
  file listed in ``files.json`` (written at completion, with sizes) is still there. Anything
  less (a corrupt ``output.json``, a deleted ``samples/``) is logged as a warning naming the file
  and the job is redone. Files that are there but *changed* are not silently replaced: the
  jobs that read them check them (a generated set against its recorded hash before it is
  scored, a checkpoint when it is loaded) and fail with an error naming the file;
* **an audit trail**: every completed job appends one line to ``cache/journal.jsonl`` (kind, key,
  label, process, seconds), so "each job was done exactly once" can be checked.

Any executor that runs jobs in dependency order through :meth:`JobStore.run` gives the same results:
the in-process loop, Ray tasks and ``job run`` processes all do (:mod:`benchmark.jobs`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict

from mvtec_caption.atomic import write_text
from synthesis.contract import canonical_hash

DONE = "output.json"
SPEC = "job.json"
FILES = "files.json"
JOURNAL = "journal.jsonl"
#: How often a process waiting for another one's job says so in the log.
WAIT_NOTICE_S = 30.0

logger = logging.getLogger("benchmark.store")


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    label: str
    params: dict[str, Any]
    deps: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return canonical_hash({"kind": self.kind, "params": self.params, "deps": sorted(self.deps)})[:24]


class JobNotDoneError(FileNotFoundError):
    """A job's output was asked for but the job is not (or no longer) done."""




def _listing(folder: Path) -> dict[str, int]:
    """Every file below ``folder`` (relative POSIX path -> size), except the completion files themselves."""
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and not (p.parent == folder and p.name in (DONE, FILES))}


class JobStore:
    def __init__(self, root: Path):
        self.root = Path(root) / "cache"

    # ---- where things are -------------------------------------------------------------------
    def folder(self, job: Job) -> Path:
        return self.root / job.kind / job.key

    def partial_folder(self, job: Job) -> Path:
        return self.root / job.kind / f"{job.key}.partial"

    def lock_file(self, job: Job) -> Path:
        return self.root / job.kind / f"{job.key}.lock"

    @contextmanager
    def lock(self, job: Job) -> Iterator[None]:
        """Hold ``job``'s lock (waiting for another holder, and saying so); reentrant within a thread."""
        path = self.lock_file(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, is_singleton=True)
        waited = 0.0
        while True:
            try:
                lock.acquire(timeout=WAIT_NOTICE_S)
                break
            except Timeout:
                waited += WAIT_NOTICE_S
                logger.info("waiting for %s (%s): another process holds %s (%.0fs so far)", job.label, job.key, path, waited)
        try:
            yield
        finally:
            lock.release()

    # ---- state ------------------------------------------------------------------------------
    def done_output(self, job: Job, *, warn: bool = True) -> dict[str, Any] | None:
        """The job's output when it is done and intact; None otherwise (with a warning when damaged)."""
        folder = self.folder(job)
        path = folder / DONE
        if not path.is_file():
            if folder.exists() and warn:
                logger.warning("%s: job folder without %s (incomplete); %s is redone", folder, DONE, job.label)
            return None
        try:
            output = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(output, dict):
                raise ValueError(f"a JSON {type(output).__name__}, not an object")
        except (OSError, ValueError) as err:
            if warn:
                logger.warning("%s: unreadable job output (%s); %s is redone", path, err, job.label)
            return None
        missing = self._missing_files(folder)
        if missing:
            if warn:
                logger.warning("%s: %s is recorded as done but %s; %s is redone", folder, job.label, missing, job.label)
            return None
        return output

    def _missing_files(self, folder: Path) -> str:
        listing_path = folder / FILES
        if not listing_path.is_file():
            return ""  # written before listings existed: output.json alone says done
        try:
            listing = json.loads(listing_path.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"its file list {listing_path} is unreadable ({err})"
        gone = [name for name in listing if not (folder / name).is_file()]
        if gone:
            more = f" and {len(gone) - 3} more" if len(gone) > 3 else ""
            return f"{', '.join(gone[:3])}{more} {'is' if len(gone) == 1 else 'are'} missing"
        return ""

    def is_done(self, job: Job) -> bool:
        return self.done_output(job, warn=False) is not None

    def output(self, job: Job) -> dict[str, Any]:
        output = self.done_output(job)
        if output is None:
            raise JobNotDoneError(f"{self.folder(job) / DONE}: {job.label} is not done (or its output is damaged); "
                                  "run the benchmark command again to redo it")
        return output

    # ---- doing jobs ----------------------------------------------------------------------------
    def run(self, job: Job, work: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """The job's output: from the store when done, else from ``work(partial folder)`` under the job's lock.

        A process that has to wait for another one's lock re-checks afterwards and uses that output.
        """
        output = self.done_output(job)
        if output is not None:
            logger.info("cached: %s (%s)", job.label, job.key)
            return output
        with self.lock(job):
            output = self.done_output(job, warn=False)  # another process may have finished it meanwhile
            if output is not None:
                logger.info("done by another process: %s (%s)", job.label, job.key)
                return output
            logger.info("running: %s (%s)", job.label, job.key)
            started = time.perf_counter()
            output = work(self.work_folder(job))
            self.complete(job, output, seconds=time.perf_counter() - started)
            return output

    def work_folder(self, job: Job) -> Path:
        """Where the job's lock holder writes; kept across interruptions so the job can resume."""
        folder = self.partial_folder(job)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / SPEC, job.model_dump_json(indent=2) + "\n")
        return folder

    def complete(self, job: Job, output: dict[str, Any], seconds: float | None = None) -> Path:
        """Move the job's partial folder into place with its output and file list (under the job's lock)."""
        with self.lock(job):
            work = self.work_folder(job)
            write_text(work / FILES, json.dumps({"files": _listing(work)}, indent=1, sort_keys=True) + "\n")
            write_text(work / DONE, json.dumps(output, indent=2, sort_keys=True) + "\n")
            final = self.folder(job)
            self._retire(final)
            work.rename(final)
            self._journal(job, seconds)
        return final

    def forget(self, job: Job) -> None:
        """Drop a job's output and partial work (``--overwrite``), waiting for a process still doing it."""
        with self.lock(job):
            self._retire(self.folder(job))
            self._retire(self.partial_folder(job))

    def _retire(self, folder: Path) -> None:
        """Remove a job folder of this store: renamed away first (atomic), so nobody sees it half-deleted."""
        if not folder.exists():
            return
        graveyard = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.retired-"))
        folder.rename(graveyard / folder.name)
        shutil.rmtree(graveyard)

    def _journal(self, job: Job, seconds: float | None) -> None:
        entry = {"event": "done", "kind": job.kind, "key": job.key, "label": job.label, "pid": os.getpid(),
                 "host": socket.gethostname(), "seconds": None if seconds is None else round(seconds, 3),
                 "utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / JOURNAL, "a", encoding="utf-8") as handle:  # one short line: an atomic append
            handle.write(json.dumps(entry, sort_keys=True) + "\n")

    def journal(self) -> list[dict[str, Any]]:
        path = self.root / JOURNAL
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
