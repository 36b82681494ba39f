"""The pipeline end to end, through its own API (no CLI): plan a tiny protocol on the demo data, run it, check the
records against the plan and the job store, then run again and check that every job is served from the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.context import load_category
from benchmark.pipeline import RunRequest, plan_category, run_benchmark
from benchmark.protocols import Protocol, register_protocol
from benchmark.results import NO_SYNTHESIS, load_result
from benchmark.store import JobStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = register_protocol(Protocol(
    id="test-pipeline/v1", title="tiny pipeline protocol (tests)", hardware="cpu", description="tests only",
    image_size=32, n_generated_per_defect=3,
    detectors={"unet": {"image_size": 32, "base_width": 4, "epochs": 1, "samples_per_epoch": 8, "batch_size": 4,
                        "lr": 5e-4},
               "padim-effnetlite0": {"image_size": 32}},
    default_detectors=["unet", "padim-effnetlite0"], fidelity_metrics=["is"], demo_only=True,
))
SYNTHESIZERS = ["perlin", "croppaste"]


def _request(out: Path) -> RunRequest:
    return RunRequest(protocol_id=TINY.id, subset="demo", data_root=None, caption_source=None, categories=["disc"],
                      synthesizers=SYNTHESIZERS, detectors=["unet", "padim-effnetlite0"], generation_seed=0,
                      detector_seed=0, repetitions=1, out=str(out), allow_download=False, progress=False)


@pytest.mark.slow
def test_a_planned_run_writes_its_records_and_a_second_run_computes_nothing(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    request = _request(out)
    plan = plan_category(request, load_category(request.protocol, "demo", "disc"))
    jobs = plan.jobs()
    keys = [job.key for job in jobs]
    assert len(set(keys)) == len(keys)
    position = {key: i for i, key in enumerate(keys)}
    assert all(position[dep] < position[job.key] for job in jobs for dep in job.deps)  # dependency order
    kinds = sorted(job.kind for job in jobs)
    # per synthesizer: fit, generate, contamination, fidelity, detect unet; once: the reference row's padim
    assert kinds == sorted(["fit", "generate", "contamination", "fidelity", "detect"] * len(SYNTHESIZERS) + ["detect"])

    written, _plots = run_benchmark(request)
    store = JobStore(out)
    assert all(store.is_done(job) for job in jobs)
    computed = [entry["key"] for entry in store.journal()]
    assert sorted(computed) == sorted(keys)  # each planned job computed exactly once, nothing else

    records = {record.synthesizer_name: (record, path) for record, path in written}
    assert sorted(records) == sorted([*SYNTHESIZERS, NO_SYNTHESIS])
    for name, (record, path) in records.items():
        assert load_result(path).content_hash() == record.content_hash()  # what was written validates and reloads
        assert path == out / "results" / record.relative_path()
        assert (record.protocol.id, record.dataset.name, record.dataset.category) == (TINY.id, "demo", "disc")
        assert not record.comparable and any("demo data" in note for note in record.comparable_notes)
        assert len(record.repetitions) == 1
        repetition = record.repetitions[0]
        detectors = [d.name for d in repetition.detectors]
        if name == NO_SYNTHESIS:
            assert record.synthesizer is None and detectors == ["padim-effnetlite0"] and not repetition.fidelity
            continue
        assert detectors == ["unet"]
        generated = store.output(plan.generates[0, name])
        assert record.synthesizer.generated_set_sha256 == repetition.generated_set_sha256 == generated["set_sha256"]
        assert repetition.n_generated == 3 * len(plan.context.train.defect_types)
        assert record.synthesizer.config_hash == store.output(plan.fits[0, name])["config_hash"]
        fidelity = {metric.id: metric for metric in repetition.fidelity}
        assert not fidelity["is"].computed and fidelity["is"].value is None  # no Inception weights offline: said so
        assert repetition.contamination is not None and repetition.contamination.matches == []
        assert (path.with_suffix(".grid.png")).is_file()

    def must_not_run(self, job, output, seconds=None):  # noqa: ANN001, ANN202
        raise AssertionError(f"{job.label} was computed again")

    monkeypatch.setattr(JobStore, "complete", must_not_run)
    again, _plots = run_benchmark(request)
    assert len(store.journal()) == len(computed)  # no new job in the journal either
    assert [(r.content_hash(), p) for r, p in again] == [(r.content_hash(), p) for r, p in written]
