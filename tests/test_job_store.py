"""The job store under faults and concurrency (issue 9, "cache lost or silently wrong").

Unit tests drive :class:`benchmark.store.JobStore` directly, with real second processes holding
its locks; the end-to-end tests run ``python -m benchmark run`` on the demo data under the smoke
protocol with the cheap ``croppaste`` synthesizer and the ``padim-effnetlite0`` detector.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmark.store import DONE, FILES, Job, JobNotDoneError, JobStore

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _counting(output: dict, calls: list[Path], files: dict[str, bytes] | None = None):  # noqa: ANN202
    def work(folder: Path) -> dict:
        calls.append(folder)
        for name, data in (files or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return output
    return work


# ---------------------------------------------------------------------------------- unit: damaged outputs


def test_a_corrupt_output_json_is_named_and_the_job_redone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Finding: a corrupt ``output.json`` gave the same unclear error on every rerun."""
    store, job, calls = JobStore(tmp_path), Job(kind="generate", label="generate x", params={"n": 1}), []
    store.run(job, _counting({"n": 1}, calls, {"samples/0.png": b"png"}))
    done = store.folder(job) / DONE
    for damage in ("{not json", "[1, 2]", ""):
        done.write_text(damage)
        with caplog.at_level(logging.WARNING, logger="benchmark.store"):
            assert store.run(job, _counting({"n": 1}, calls, {"samples/0.png": b"png"})) == {"n": 1}
        assert any(str(done) in r.getMessage() and "unreadable job output" in r.getMessage() for r in caplog.records)
        caplog.clear()
    assert len(calls) == 4 and store.output(job) == {"n": 1}
    assert [e["key"] for e in store.journal()] == [job.key] * 4


def test_a_done_job_whose_files_are_gone_is_redone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Finding: a cache entry with ``output.json`` but no ``samples/`` made every later run fail."""
    store, job, calls = JobStore(tmp_path), Job(kind="generate", label="generate y", params={"n": 2}), []
    files = {"samples/a.png": b"a" * 10, "samples/b.png": b"b" * 20, "grid.png": b"g"}
    store.run(job, _counting({"samples": "samples"}, calls, files))
    listing = json.loads((store.folder(job) / FILES).read_text())["files"]
    assert listing == {"grid.png": 1, "job.json": listing["job.json"], "samples/a.png": 10, "samples/b.png": 20}
    shutil.rmtree(store.folder(job) / "samples")
    assert not store.is_done(job)
    with pytest.raises(JobNotDoneError, match="not done"):
        store.output(job)
    with caplog.at_level(logging.WARNING, logger="benchmark.store"):
        store.run(job, _counting({"samples": "samples"}, calls, files))
    assert f"{store.folder(job)}: generate y is recorded as done but samples/a.png, samples/b.png are missing" in caplog.text
    assert len(calls) == 2 and store.is_done(job)


def test_a_job_from_before_file_lists_still_counts_as_done(tmp_path: Path) -> None:
    store, job = JobStore(tmp_path), Job(kind="fit", label="fit", params={})
    store.folder(job).mkdir(parents=True)
    (store.folder(job) / DONE).write_text('{"checkpoint": "checkpoint"}')
    assert store.is_done(job) and store.output(job) == {"checkpoint": "checkpoint"}


# ---------------------------------------------------------------------------------- unit: two processes

HOLDER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from benchmark.store import Job, JobStore

    store = JobStore(Path(sys.argv[1]))
    job = Job(kind="fit", label="fit shared", params={"p": 1})
    with store.lock(job):
        (store.work_folder(job) / "half-done.txt").write_text("from the first worker")
        print("locked", flush=True)
        if sys.argv[2] == "finish":
            time.sleep(1.5)
            store.complete(job, {"by": "holder"})
        else:
            time.sleep(600)  # killed by the test
''')


def _holder(tmp_path: Path, mode: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), mode], cwd=REPO, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_process_waits_for_the_job_and_uses_its_output(tmp_path: Path) -> None:
    holder = _holder(tmp_path, "finish")
    store, job, calls = JobStore(tmp_path), Job(kind="fit", label="fit shared", params={"p": 1}), []
    started = time.monotonic()
    output = store.run(job, _counting({"by": "me"}, calls))
    assert holder.wait(timeout=60) == 0
    assert output == {"by": "holder"} and calls == []  # waited, then used the holder's output: not redone
    assert time.monotonic() - started > 0.5
    assert [e["pid"] for e in store.journal()] == [holder.pid]


def test_a_job_whose_worker_died_is_picked_up_again(tmp_path: Path) -> None:
    """A worker killed mid-job leaves its partial folder; the OS releases its lock; the next run resumes."""
    holder = _holder(tmp_path, "die")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    store, job, calls = JobStore(tmp_path), Job(kind="fit", label="fit shared", params={"p": 1}), []
    assert store.partial_folder(job).is_dir() and not store.is_done(job)

    def resume(folder: Path) -> dict:
        calls.append(folder)
        return {"resumed_from": (folder / "half-done.txt").read_text()}

    assert store.run(job, resume) == {"resumed_from": "from the first worker"}
    assert len(calls) == 1 and not store.partial_folder(job).exists()
    assert [e["pid"] for e in store.journal()] == [os.getpid()]


def test_forget_waits_for_a_running_job(tmp_path: Path) -> None:
    holder = _holder(tmp_path, "finish")
    store, job = JobStore(tmp_path), Job(kind="fit", label="fit shared", params={"p": 1})
    store.forget(job)  # blocks until the holder completed, then drops its output
    assert holder.wait(timeout=60) == 0
    assert not store.is_done(job) and not store.folder(job).exists()


# ---------------------------------------------------------------------------------- end to end

def _run_args(detector: str = "padim-effnetlite0") -> list[str]:
    return ["run", "--synth", "croppaste", "--dataset", "demo", "--categories", "disc", "--detectors", detector,
            "--no-progress", "--no-download", "--threads", "1"]


RUN = _run_args()


def _benchmark(argv: list[str | Path]) -> tuple[int, str]:
    """``python -m benchmark`` in this process, dropping the log handlers it adds to the root logger."""
    from benchmark.cli import main

    root = logging.getLogger()
    before = list(root.handlers)
    try:
        from contextlib import redirect_stderr, redirect_stdout
        from io import StringIO

        err = StringIO()
        with redirect_stdout(StringIO()), redirect_stderr(err):
            code = main([str(a) for a in argv])
        return code, err.getvalue()
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, demo_root: Path) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    code, err = _benchmark([*RUN, "--out", out])
    assert code == 0, err
    return out


def _copy(run: Path, tmp_path: Path) -> tuple[Path, JobStore]:
    target = tmp_path / "run"
    shutil.copytree(run, target, symlinks=True)
    return target, JobStore(target)


def _job_folder(store: JobStore, kind: str) -> Path:
    (folder,) = [p for p in (store.root / kind).iterdir() if p.is_dir() and not p.name.startswith(".")]
    return folder


def _records(run: Path) -> dict[str, str]:
    from benchmark.results import load_result

    return {p.relative_to(run).as_posix(): load_result(p).content_hash()
            for p in sorted((run / "results").rglob("*.json"))}


def test_two_runs_on_the_same_out_do_every_job_once(tmp_path: Path, demo_root: Path) -> None:
    """Finding: two ``benchmark run`` on one ``--out`` at once both failed and left a broken cache entry."""
    out = tmp_path / "shared-run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = [subprocess.Popen([sys.executable, "-m", "benchmark", *RUN, "--out", str(out)], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in processes]
    for process, (stdout, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr[-3000:]
    journal = JobStore(out).journal()
    log = (out / "logs" / "benchmark.log").read_text()
    kinds = sorted(entry["kind"] for entry in journal)
    # each job done exactly once, by one of the two
    assert kinds == ["contamination", "detect", "fidelity", "fit", "generate"], log
    assert len({entry["key"] for entry in journal}) == 5
    records = _records(out)
    assert sorted(records) == ["results/croppaste/3/mvtec-caption-smoke--v1/demo/disc.json",
                               "results/no-synthesis/0/mvtec-caption-smoke--v1/demo/disc.json"]
    for path in records:
        assert log.count(f"wrote {out / path}") == 1, log  # written once ...
        assert log.count(f"kept {out / path}") == 1, log  # ... the other process found the identical record
    pids = {str(p.pid) for p in processes}
    assert all(f" {pid} INFO benchmark" in log for pid in pids)  # both really ran side by side
    tables = [stdout.split("result:")[0] for stdout, _ in results]
    assert tables[0] == tables[1], tables  # the same numbers in both
    assert not list((out / "cache").rglob("*.partial")) and not list((out / "cache").rglob(".*retired*"))


def test_an_altered_generated_set_is_refused_before_scoring(finished_run: Path, tmp_path: Path) -> None:
    """Finding: images altered in the cache were scored while the record kept the old set hash."""
    from PIL import Image

    run, store = _copy(finished_run, tmp_path)
    samples = _job_folder(store, "generate") / "samples"
    image_path = sorted(samples.glob("*/0000.png"))[0]
    with Image.open(image_path) as image:
        altered = image.convert("RGB").point(lambda v: 255 - v)
    altered.save(image_path)  # same size on disk is not required: the set hash is what is checked
    before = _records(run)
    shutil.rmtree(_job_folder(store, "fidelity"))  # fidelity must score the set again ...
    code, err = _benchmark([*RUN, "--out", run])
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: generated set ") and str(samples) in line
    assert "croppaste on demo/disc" in line and "changed since generation" in line and "--overwrite" in line
    code, err = _benchmark([*_run_args("unet"), "--out", run])  # ... and a new detector may not train on it either
    assert code == 2 and "changed since generation" in err and "--overwrite" in err
    assert [e["kind"] for e in store.journal()] == ["fit", "generate", "contamination", "fidelity", "detect"]  # nothing scored
    assert _records(run) == before


def test_a_rerun_redoes_a_damaged_generate_job_and_gives_the_same_records(finished_run: Path, tmp_path: Path) -> None:
    run, store = _copy(finished_run, tmp_path)
    before = _records(run)
    generate = _job_folder(store, "generate")
    (generate / DONE).write_text('{"samples": "samp')  # cut off
    code, err = _benchmark([*RUN, "--out", run])
    assert code == 0, err
    assert f"{generate / DONE}: unreadable job output" in err  # the warning names the file
    shutil.rmtree(generate / "samples")
    code, err = _benchmark([*RUN, "--out", run])
    assert code == 0, err
    assert f"{generate}: generate croppaste disc seed 0 is recorded as done but samples/" in err and "are missing" in err
    kinds = [e["kind"] for e in store.journal()]
    assert kinds == ["fit", "generate", "contamination", "fidelity", "detect", "generate", "generate"]  # only the damaged job redone
    assert _records(run) == before  # byte-identical set: the cached scores stay valid
