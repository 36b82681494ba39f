"""Executors (issue 13): the same plan run in-process, on Ray and by ``job run`` per key gives the same records;
a Ray worker killed in the middle of a job does not break the run.

Small on purpose: demo data, smoke protocol, the cheap ``cutpaste`` and ``croppaste`` synthesizers, the
``padim-effnetlite0`` reference detector (no training). One local Ray with 2 CPUs serves the module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmark.store import JobStore
from data_helpers import benchmark_cli

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMON = ["--dataset", "demo", "--categories", "disc", "weave", "--detectors", "padim-effnetlite0", "--no-progress",
          "--no-download", "--threads", "1"]
GRID = ["--synth", "cutpaste", "--synth", "croppaste", *COMMON]


def _records(run: Path) -> dict[str, str]:
    from benchmark.results import load_result

    return {p.relative_to(run / "results").as_posix(): load_result(p).content_hash()
            for p in sorted((run / "results").rglob("*.json"))}


def _each_job_once(run: Path) -> list[dict]:
    plan = json.loads((run / "plan.json").read_text())
    journal = JobStore(run).journal()
    assert sorted(e["key"] for e in journal) == sorted(j["key"] for j in plan["jobs"])  # every job, each once
    assert not list((run / "cache").rglob("*.partial")) and not list((run / "cache").rglob(".*retired*"))
    return journal


@pytest.fixture(scope="module")
def kill_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kill")


@pytest.fixture(scope="module")
def local_ray(kill_dir: Path, demo_root: Path):  # noqa: ANN201
    """A local Ray of 2 CPUs for the module; its workers find the test plugins and the kill folder."""
    ray = pytest.importorskip("ray")
    from executor_helpers import KILL_DIR_ENV

    path = os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, KILL_DIR_ENV: str(kill_dir)}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def three_ways(tmp_path_factory: pytest.TempPathFactory, local_ray) -> dict[str, Path]:  # noqa: ANN001
    """The demo grid done three ways: in this process, on the local Ray, and by ``job run`` per key in a shell loop
    followed by ``assemble``. The loop runs beside the other two (one process at a time, each paying its own
    start-up), so on two cores the three take about as long as the loop alone."""
    root = tmp_path_factory.mktemp("three-ways")
    local, on_ray, by_key = root / "local", root / "ray", root / "job-run"
    code, printed, err = benchmark_cli(["plan", *GRID, "--out", by_key])
    assert code == 0, err
    assert json.loads(printed)["counts"] == {"fit": 4, "generate": 4, "contamination": 4, "fidelity": 4, "detect": 2}

    python = sys.executable
    script = f"""set -e
        for key in $("{python}" -m benchmark job list --out "{by_key}" --keys); do
            "{python}" -m benchmark job run --out "{by_key}" --threads 1 "$key"
        done
        "{python}" -m benchmark assemble --out "{by_key}" > /dev/null"""
    shell = subprocess.Popen(["bash", "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        code, _, err = benchmark_cli(["run", *GRID, "--out", local])
        assert code == 0, err
        code, _, err = benchmark_cli(["run", *GRID, "--executor", "ray", "--out", on_ray])
        assert code == 0, err
        _, shell_err = shell.communicate(timeout=1800)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
    assert shell.returncode == 0, shell_err[-3000:]
    return {"local": local, "ray": on_ray, "job-run": by_key}


def test_in_process_on_ray_and_by_job_run_give_identical_records(three_ways: dict[str, Path]) -> None:
    records = _records(three_ways["local"])
    assert len(records) == 6  # 2 categories x (2 synthesizers + the reference row)
    assert _records(three_ways["ray"]) == records
    assert _records(three_ways["job-run"]) == records


def test_each_executor_did_every_job_once_in_its_own_processes(three_ways: dict[str, Path]) -> None:
    pids = {name: [e["pid"] for e in _each_job_once(run)] for name, run in three_ways.items()}
    assert set(pids["local"]) == {os.getpid()}
    assert os.getpid() not in pids["ray"]  # done by Ray workers ...
    assert len(set(pids["job-run"])) == 18  # ... and by one process per key


def test_job_run_and_assemble_refuse_until_the_inputs_are_done(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    code, printed, err = benchmark_cli(["plan", *GRID, "--out", out])
    assert code == 0, err
    generate = next(j for j in json.loads(printed)["jobs"] if j["kind"] == "generate")
    code, _, err = benchmark_cli(["job", "run", "--out", out, generate["key"]])  # its fit is not done yet
    assert code == 2 and err.startswith("error: ") and f"{generate['label']} needs fit " in err and "done first" in err
    code, _, err = benchmark_cli(["assemble", "--out", out])
    assert code == 2 and err.startswith("error: ") and "job(s) of disc not done" in err
    code, _, err = benchmark_cli(["job", "run", "--out", out, "0" * 24])
    assert code == 2 and f"{out / 'plan.json'}: no job with key" in err
    assert not (out / "results").exists()


def test_a_worker_killed_mid_job_is_retried_and_every_record_written_once(tmp_path: Path, kill_dir: Path,
                                                                         local_ray) -> None:  # noqa: ANN001
    out = tmp_path / "killed"
    killed: list[int] = []

    def kill_when_waiting() -> None:
        pid_file, deadline = kill_dir / "pid", time.monotonic() + 900
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        pid = int(pid_file.read_text())
        (kill_dir / "killed").write_text(str(pid))  # the retry runs to the end
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_when_waiting, daemon=True)
    killer.start()
    code, _, err = benchmark_cli(["run", "--synth", "executor_helpers:KilledOnceCutPaste", *COMMON[:2], "--categories",
                               "disc", *COMMON[5:], "--executor", "ray", "--out", out])
    killer.join(timeout=5)
    assert code == 0, err
    assert killed, "the job was never stopped for the kill"
    journal = _each_job_once(out)
    [generate] = [e for e in journal if e["kind"] == "generate"]
    assert generate["pid"] != killed[0]  # finished by the retry, in another worker
    log = (out / "logs" / "benchmark.log").read_text()
    started = [line for line in log.splitlines() if "running: generate killed-once-cut-paste" in line]
    assert len(started) == 2 and f" {killed[0]} INFO" in started[0], log  # begun by the killed worker, resumed
    records = sorted(_records(out))
    assert records == ["killed-once-cut-paste/1/mvtec-caption-smoke--v1/demo/disc.json",
                       "no-synthesis/0/mvtec-caption-smoke--v1/demo/disc.json"]
    for record in records:
        assert log.count(f"wrote {out / 'results' / record}") == 1
    assert sorted(p.name for p in (out / "cache" / "generate").iterdir() if not p.name.endswith(".lock")) == \
        [generate["key"]]


def test_out_must_be_readable_and_writable_from_the_workers(tmp_path: Path, local_ray) -> None:  # noqa: ANN001
    from benchmark.ray_executor import check_shared_out, probe_out

    check_shared_out(tmp_path)  # one node here: the same file system
    assert not list((tmp_path / "cache" / ".reach").iterdir())
    reach = tmp_path / "cache" / ".reach"
    problem = probe_out(str(tmp_path), "absent")
    assert problem and str(reach) in problem and "cannot read and write" in problem
    (reach / "other").write_text("something else")
    assert "reads another" in probe_out(str(tmp_path), "other")


def test_a_ray_address_needs_the_ray_executor(tmp_path: Path) -> None:
    code, _, err = benchmark_cli(["run", *GRID, "--ray-address", "auto", "--out", tmp_path / "x"])
    assert code == 2 and err.strip() == "error: --ray-address is for --executor ray"
    code, _, err = benchmark_cli(["run", *GRID, "--executor", "slurm", "--out", tmp_path / "y"])
    assert code == 2 and "unknown --executor 'slurm'; known: local, ray" in err
