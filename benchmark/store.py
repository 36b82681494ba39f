"""Content-addressed jobs and their on-disk outputs.

A benchmark run is a set of independent jobs (fit, generate, fidelity, detect). A job's key is
a hash of everything that determines its output: its parameters and the keys of the jobs it
reads. Outputs live in ``<out>/cache/<kind>/<key>/``; work in progress lives in
``<key>.partial/`` and is renamed into place when complete, so an interrupted run resumes
where it stopped and a finished job is never half-visible. Any executor that runs jobs in
dependency order with the same store (a local loop here; a distributed engine later) gives
the same results.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from synthesis.contract import canonical_hash

DONE = "output.json"
SPEC = "job.json"


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    label: str
    params: dict[str, Any]
    deps: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return canonical_hash({"kind": self.kind, "params": self.params, "deps": sorted(self.deps)})[:24]


class JobStore:
    def __init__(self, root: Path):
        self.root = Path(root) / "cache"

    def folder(self, job: Job) -> Path:
        return self.root / job.kind / job.key

    def work_folder(self, job: Job) -> Path:
        """Where a running job writes; kept across interruptions so the job can resume."""
        folder = self.root / job.kind / f"{job.key}.partial"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SPEC).write_text(job.model_dump_json(indent=2) + "\n")
        return folder

    def is_done(self, job: Job) -> bool:
        return (self.folder(job) / DONE).is_file()

    def output(self, job: Job) -> dict[str, Any]:
        return json.loads((self.folder(job) / DONE).read_text())

    def complete(self, job: Job, output: dict[str, Any]) -> Path:
        work = self.work_folder(job)
        (work / DONE).write_text(json.dumps(output, indent=2, sort_keys=True) + "\n")
        final = self.folder(job)
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
        return final

    def forget(self, job: Job) -> None:
        """Drop a job's output and partial work (``--overwrite``)."""
        for folder in (self.folder(job), self.root / job.kind / f"{job.key}.partial"):
            shutil.rmtree(folder, ignore_errors=True)
