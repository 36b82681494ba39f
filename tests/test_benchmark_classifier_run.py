"""The harness's stages with the defect-type classifier and the extra fidelity metrics, on the demo data.

The stages are run directly (with only the new metrics) to keep this fast; ``benchmark plan``
checks how the CLI wires ``--metrics`` and ``--detectors classifier`` into the jobs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark import stages
from benchmark.cli import main
from benchmark.context import load_category
from benchmark.metrics import DIAGNOSTIC_METRICS
from benchmark.protocols import get_protocol
from benchmark.results import DetectorResult, MetricResult
from synthesis import registry
from synthesis.generated_set import generate_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NEW_METRICS = ["kid", "caption-attribute-faithfulness-v1"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 -> (CategoryContext, set folder)
    ctx = load_category(get_protocol("mvtec-caption-smoke/v1"), "demo", "disc", None, None)
    folder = tmp_path_factory.mktemp("croppaste") / "samples"
    synthesizer = registry.create("croppaste", {})
    synthesizer.fit(ctx.train, progress=False)
    generate_set(synthesizer, ctx.train, folder, n_per_defect=8, seed=0, progress=False)
    return ctx, folder


def test_detect_stage_runs_the_classifier(generated, tmp_path: Path) -> None:  # noqa: ANN001
    ctx, folder = generated
    output = stages.detect(ctx, "classifier", {"image_size": 64}, 0, folder, "cpu", tmp_path, False, True,
                           weights_dir=None, allow_download=False)
    result = DetectorResult.model_validate(output["result"])
    classification = result.classification
    assert classification is not None and classification.computed and classification.applicable
    assert classification.id == "defect-type-effnetlite0-substitute" and not classification.comparable
    assert classification.labels == sorted(classification.n_test_per_type)
    assert classification.n_train_per_type == {t: 8 for t in classification.labels}
    assert sum(map(sum, classification.confusion_matrix)) == result.n_test_anomalous
    assert result.overall.image_auroc is None and result.per_defect == {}  # a classifier, no anomaly scores
    assert (tmp_path / classification.plot).stat().st_size > 1000 and (tmp_path / "model" / "state.pt").is_file()


def test_fidelity_stage_computes_the_new_metrics(generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("MVTEC_BENCH_WEIGHTS_DIR", raising=False)
    ctx, folder = generated
    work = tmp_path / "cache" / "fidelity" / "job"
    work.mkdir(parents=True)
    output = stages.fidelity(ctx, folder, NEW_METRICS, None, False, "cpu", work, False)
    metrics = {m["id"]: MetricResult.model_validate(m) for m in output["metrics"]}
    assert set(metrics) == {*NEW_METRICS, "kid-effnetlite0-substitute", *DIAGNOSTIC_METRICS}  # diagnostics: every run
    assert not metrics["kid"].computed and metrics["kid-effnetlite0-substitute"].computed
    attributes = metrics["caption-attribute-faithfulness-v1"]
    assert attributes.computed and 0 <= attributes.value <= 1
    assert attributes.settings["generated_without_normal_image"] == 0  # the stage passes each sample's normal source


def test_plan_wires_extra_metrics_and_the_classifiers_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", "--synth", "croppaste", "--dataset", "demo", "--categories", "disc", "--out", str(tmp_path),
            "--detectors", "classifier", "unet", "--no-download"]
    assert main([*args, "--metrics", *NEW_METRICS]) == 0
    jobs = json.loads(capsys.readouterr().out)["jobs"]
    [fidelity] = [j for j in jobs if j["kind"] == "fidelity"]
    assert fidelity["params"]["metrics"] == get_protocol("mvtec-caption-smoke/v1").fidelity_metrics + NEW_METRICS
    detect = {j["params"]["detector"]: j["params"] for j in jobs if j["kind"] == "detect"}
    assert detect["classifier"]["allow_download"] is False and "weights_dir" in detect["classifier"]
    assert "allow_download" not in detect["unet"]  # other detectors' job keys are unchanged
    assert main([*args]) == 0
    without = json.loads(capsys.readouterr().out)["jobs"]
    assert [j for j in without if j["kind"] == "fidelity"][0]["params"]["metrics"] == \
        get_protocol("mvtec-caption-smoke/v1").fidelity_metrics
    assert main([*args, "--metrics", "nope"]) == 2
    assert "unknown metric(s) nope" in capsys.readouterr().err
