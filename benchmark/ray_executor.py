"""``--executor ray``: every job of a plan becomes a Ray task; the records are assembled as for any run.

Why Ray: a grid of 20 categories x 10 synthesizers x detectors x repetitions outgrows one machine,
and Ray gives what its jobs need without a home-made scheduler: per-task CPU/GPU/memory requests
(:data:`RESOURCES`), dependencies (a task receives the object references of the jobs it reads, so
``fit -> generate -> contamination / fidelity / detect`` runs in order), retries when a worker dies
(:data:`MAX_RETRIES`), one machine (a local instance sized to it) or many (``ray start``).

A task does only :func:`benchmark.jobs.run_job` on the shared ``--out`` folder, so everything the job
store guarantees holds on Ray too: one writer per job (its lock), partial outputs private until
renamed into place, a job whose worker was killed resumed from its partial folder by the retry. The
job store is a folder: on several machines ``--out`` must be on a shared file system (NFS or
similar) mounted at the same path on every node; :func:`check_shared_out` makes sure before any job
starts, with one probe task per node.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from tqdm.auto import tqdm

from mvtec_caption.output_folder import OutputFolderError

logger = logging.getLogger("benchmark.ray")

#: Retries of a task whose worker died (killed, out of memory, node lost); a job that raises is not retried:
#: its error is the run's error.
MAX_RETRIES = 3
MIB = 1024 * 1024


class JobResources(BaseModel):
    """What one task of a kind asks Ray for. ``memory_mib`` is a reservation Ray schedules by (not a limit)."""

    model_config = ConfigDict(frozen=True)

    num_cpus: float = 1
    num_gpus: float = 0
    memory_mib: int | None = None


#: (device kind, job kind) -> request. CPU memory figures are the measured peaks (README, "Synthesizing
#: anomalies" and "Real data": AXF fit + generate 2.18 GB, AXF generation 1.36 GB, perlin 1.10 GB, a whole
#: AXF category run incl. fidelity and the unet detector 2.1 GB, the CPU classifier 1.2 GB); kinds measured
#: only as part of a whole run get that run's peak. On a GPU, fit, generation, fidelity and detector training
#: run on the device (fidelity's feature extraction is light: half a GPU); no host-memory peak is measured there.
RESOURCES: dict[tuple[str, str], JobResources] = {
    ("cpu", "fit"): JobResources(memory_mib=2200),
    ("cpu", "generate"): JobResources(memory_mib=1400),
    ("cpu", "contamination"): JobResources(memory_mib=2100),
    ("cpu", "fidelity"): JobResources(memory_mib=2100),
    ("cpu", "detect"): JobResources(memory_mib=2100),
    ("cuda", "fit"): JobResources(num_gpus=1),
    ("cuda", "generate"): JobResources(num_gpus=1),
    ("cuda", "contamination"): JobResources(),
    ("cuda", "fidelity"): JobResources(num_gpus=0.5),
    ("cuda", "detect"): JobResources(num_gpus=1),
}


def resources_for(kind: str, device: str) -> JobResources:
    return RESOURCES["cuda" if device.startswith("cuda") else "cpu", kind]


# ---- what runs in a worker ------------------------------------------------------------------------------
_LOGGING_TO: set[str] = set()


def _worker_logging(out: str) -> None:
    """Append this worker's log lines to the run's log (one line per write: appends from several processes
    do not tear lines), once per process and folder."""
    if out in _LOGGING_TO:
        return
    handler = logging.FileHandler(Path(out) / "logs" / "benchmark.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    _LOGGING_TO.add(out)


def job_task(out: str, key: str, plan_id: str, threads: int, *dependencies: Any) -> dict[str, Any]:
    """One job in a Ray worker. ``dependencies`` are the outputs of the tasks it reads: Ray starts it only
    once they have finished (their values are not needed: the job reads their folders)."""
    from mvtec_caption.runtime import configure, set_threads

    configure()
    set_threads(threads)
    _worker_logging(out)
    from benchmark.jobs import run_job

    return {**run_job(Path(out), key, plan_id), "host": socket.gethostname(), "pid": os.getpid()}


def probe_out(out: str, token: str) -> str | None:
    """In a worker: read the driver's probe file below ``out`` and write one beside it. None when both work,
    else what failed."""
    path = Path(out) / "cache" / ".reach" / token
    where = f"{socket.gethostname()} (pid {os.getpid()})"
    try:
        if path.read_text(encoding="utf-8") != token:
            return f"{where} reads another {path} than the driver wrote (not the same file system)"
        mine = path.with_name(f"{token}.{socket.gethostname()}.{os.getpid()}")
        mine.write_text("ok", encoding="utf-8")
        mine.unlink()
    except OSError as err:
        return f"{where} cannot read and write {path.parent} ({err.strerror or err})"
    return None


# ---- the driver ------------------------------------------------------------------------------------------
def check_shared_out(out: Path, timeout_s: float = 300.0) -> None:
    """Fail (an :class:`OutputFolderError`) unless ``out`` is readable and writable at the same path from every
    alive Ray node: the job store, the plan and the records are files there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    folder = Path(out) / "cache" / ".reach"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / token).write_text(token, encoding="utf-8")
    try:
        probe = ray.remote(probe_out)
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        refs = [probe.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            node["NodeID"], soft=False)).remote(str(out), token) for node in nodes]
        answers = ray.get(refs, timeout=timeout_s)
    finally:
        (folder / token).unlink(missing_ok=True)
    problems = [f"node {node.get('NodeManagerAddress')}: {answer}" for node, answer in zip(nodes, answers) if answer]
    if problems:
        raise OutputFolderError(f"--out {out} is not shared with every Ray worker: {'; '.join(problems)}. On several "
                                "machines --out must be on a shared file system (NFS or similar) mounted at the same "
                                "path on every node")


class RayExecutor:
    """Submits every job of a plan file as a Ray task and follows them with a progress bar."""

    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address

    def _connect(self) -> bool:
        """Join the cluster at ``--ray-address`` or start a local instance sized to this machine; True when
        this call started Ray (and so shuts it down). A Ray already started in this process is used as it is."""
        import ray

        if ray.is_initialized():
            return False
        if self.address:
            ray.init(address=self.address, log_to_driver=False)
        else:
            from mvtec_caption.runtime import usable_cores

            ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False)
        return True

    def execute(self, plan_file: Any, out: Path, progress: bool) -> None:  # PlanFile
        import ray

        started_here = self._connect()
        try:
            out = Path(out).resolve()
            check_shared_out(out)
            self._run(plan_file, out, progress)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, plan_file: Any, out: Path, progress: bool) -> None:
        import ray

        device = plan_file.request.device
        task = ray.remote(job_task)
        from benchmark.jobs import plan_id

        this_plan = plan_id(plan_file)  # workers read this plan by id, not whatever plan.json holds by then
        refs: dict[str, Any] = {}
        for planned in plan_file.jobs:  # dependency order: every dependency has its reference already
            need = resources_for(planned.kind, device)
            options: dict[str, Any] = {"num_cpus": need.num_cpus, "num_gpus": need.num_gpus, "max_retries": MAX_RETRIES,
                                       "retry_exceptions": False, "name": planned.label}
            if need.memory_mib:
                options["memory"] = need.memory_mib * MIB
            refs[planned.key] = task.options(**options).remote(
                str(out), planned.key, this_plan, max(1, int(need.num_cpus)), *(refs[d] for d in planned.deps))
        by_ref = {ref: key for key, ref in refs.items()}
        labels = {job.key: job.label for job in plan_file.jobs}
        deps = {job.key: job.deps for job in plan_file.jobs}
        done: set[str] = set()
        with tqdm(total=len(refs), desc="jobs on ray", unit="job", disable=not progress, position=0) as bar:
            pending = list(refs.values())
            while pending:
                finished, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in finished:
                    key = by_ref[ref]
                    try:
                        result = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - every failure stops the run, named
                        for other in pending:
                            ray.cancel(other)
                        raise _job_error(err, labels[key], key) from None
                    logger.info("%s: %s (%s) on %s, pid %s", "cached" if result["cached"] else "done", labels[key], key,
                                result["host"], result["pid"])
                    done.add(key)
                    bar.update(1)
                ready = sum(1 for key in refs if key not in done and all(d in done for d in deps[key]))
                # "running" counts the jobs whose inputs are done: running now, or queued for a free slot
                bar.set_postfix(done=len(done), running=ready, waiting=len(refs) - len(done) - ready, refresh=False)


def _job_error(err: Exception, label: str, key: str) -> Exception:
    """The error of a failed task as the CLI reports it: a job's own error (which names its file) as it was
    raised in the worker; a worker lost more often than the retries allow, named with the job."""
    from ray.exceptions import RayTaskError

    if isinstance(err, RayTaskError) and isinstance(err.cause, Exception):
        return err.cause
    return RuntimeError(f"job {label} ({key}) failed on Ray after {MAX_RETRIES} retries: {err}")
