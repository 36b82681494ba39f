"""Scoring the defect-type classifier: accuracies, macro F1, the confusion matrix and its plot.

The classifier (``benchmark.detectors.classifier``) is trained on a synthesizer's generated
anomalies and tested on the test split's real anomalies. Scores come from scikit-learn:

* ``mean_accuracy``: the unweighted mean of the per-type accuracies (recall of each true type;
  scikit-learn's ``balanced_accuracy_score``), the paper's "mean accuracy" over defect types;
* ``accuracy``: the share of all test anomalies classified correctly;
* ``macro_f1``: ``f1_score(average="macro")`` over the test split's types;
* ``confusion_matrix``: rows are the true types, columns the predicted ones, in ``labels`` order
  (the test split's types, then any type only the generated set has).

A category with a single defect type is *not applicable* (every prediction would be right by
construction), and a backbone whose weights are unavailable gives a result that says so; neither
is reported as a number. Test types the generated set lacks cannot be predicted: they count as
errors and the reason says which they are.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.detectors.base import SyntheticSet
from benchmark.detectors.classifier import DefectTypeClassifier
from benchmark.results import ClassificationResult

logger = logging.getLogger(__name__)
PLOT_FILE = "confusion_matrix.png"
GOOD = "good"


def result_id(classifier: DefectTypeClassifier) -> tuple[str, str]:
    """(id, name) of the classifier's result: the standard id only for the paper's setting with verified weights.

    Before training (e.g. weights unavailable) the paper's setting keeps its standard id; trained on
    weights that did not verify it becomes ``...-unverified-weights``; other settings are substitutes.
    """
    short, backbone = classifier.backbone.short, classifier.backbone.name
    if classifier.aims_at_paper and classifier.fitted and not classifier.standard:
        return (f"defect-type-{short}-unverified-weights",
                f"Defect-type accuracy ({backbone} with unverified weights; not the standard setting)")
    if classifier.aims_at_paper:
        return f"defect-type-{short}", f"Defect-type accuracy ({backbone} ImageNet, fine-tuned; the AXF paper's setting)"
    kind = "fine-tuned" if classifier.config.train_backbone else "frozen features + linear head"
    return f"defect-type-{short}-substitute", f"Defect-type accuracy ({backbone}, {kind}; substitute)"


def score_predictions(true: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, object]:
    """Accuracies, macro F1 and confusion matrix of predicted against true types (scikit-learn)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

    true, predicted, labels = list(true), list(predicted), list(labels)
    tested = [label for label in labels if label in set(true)]
    matrix = confusion_matrix(true, predicted, labels=labels)
    per_type = {label: float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None for i, label in enumerate(labels)}
    return {
        "mean_accuracy": float(balanced_accuracy_score(true, predicted)),
        "accuracy": float(accuracy_score(true, predicted)),
        "macro_f1": float(f1_score(true, predicted, labels=tested, average="macro", zero_division=0)),
        "per_type_accuracy": per_type,
        "confusion_matrix": matrix.astype(int).tolist(),
    }


def write_confusion_plot(result: ClassificationResult, path: Path, title: str) -> Path:
    """The confusion matrix as a PNG (counts, rows normalised for the colour)."""
    # a Figure on an Agg canvas of its own: no pyplot state, and the caller's backend (a notebook's) stays as it is
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(result.confusion_matrix, dtype=float)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    n = len(result.labels)
    figure = Figure(figsize=(1.2 * n + 2.6, 1.0 * n + 2.0))
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{int(count)}", ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), result.labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), result.labels, fontsize=8)
    ax.set_xlabel("predicted type")
    ax.set_ylabel("true type (real test anomalies)")
    ax.set_title(f"{title}\nmean accuracy {result.mean_accuracy:.3f}, macro F1 {result.macro_f1:.3f}", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90, metadata={"Software": None})
    return path


def evaluate_classifier(classifier: DefectTypeClassifier, normals: np.ndarray, synthetic: SyntheticSet,
                        test_images: np.ndarray,
                        test_types: Sequence[str], work: Path | None = None, progress: bool = True,
                        title: str = "") -> ClassificationResult:
    """Train on ``synthetic`` and score on the real anomalies among the test images (``test_types`` != good).

    Writes the confusion-matrix PNG into ``work`` when given. Never raises for missing weights or a
    single-type category: the result says why it has no numbers.
    """
    from benchmark.metrics.weights import WeightsUnavailable

    anomalous = [i for i, t in enumerate(test_types) if t != GOOD]
    true = [str(test_types[i]) for i in anomalous]
    generated = [str(t) for t in (synthetic.defect_types if synthetic.defect_types is not None else [])]
    test_counts, train_counts = dict(sorted(Counter(true).items())), dict(sorted(Counter(generated).items()))
    labels = sorted(test_counts) + sorted(set(train_counts) - set(test_counts))
    result_id_, name = result_id(classifier)
    base = {"id": result_id_, "name": name, "backbone": classifier.config.backbone, "labels": labels,
            "n_test_per_type": test_counts, "n_train_per_type": train_counts}
    if len(test_counts) < 2:
        only = ", ".join(test_counts) or "none"
        return ClassificationResult(**base, comparable=False, applicable=False, computed=False,
                                    reason=f"not applicable: the test split has one defect type ({only}); "
                                           "a classifier would be right by construction")
    try:
        classifier.fit(normals, synthetic, progress=progress)
    except WeightsUnavailable as err:
        logger.warning("classifier not computed: %s", err)
        return ClassificationResult(**base, comparable=False, applicable=True, computed=False,
                                    reason=f"not computed: backbone weights unavailable ({classifier.config.backbone}: "
                                           "not found or not verified)")
    result_id_, name = result_id(classifier)  # known only now: were the weights verified?
    predicted = classifier.predict_types(test_images[anomalous])
    scores = score_predictions(true, predicted, labels)
    notes = []
    if missing := sorted(set(test_counts) - set(train_counts)):
        notes.append(f"test types absent from the generated set count as errors: {', '.join(missing)}")
    if not classifier.standard:
        notes.append("not comparable with the paper's numbers: the paper's setting is ResNet-34 with verified ImageNet "
                     "weights, fine-tuned")
    result = ClassificationResult(**{**base, "id": result_id_, "name": name}, comparable=classifier.standard,
                                  applicable=True, computed=True, reason="; ".join(notes) or None, **scores)
    if work is not None:
        write_confusion_plot(result, Path(work) / PLOT_FILE, f"{title} ({result.id})" if title else result.id)
        result = result.model_copy(update={"plot": PLOT_FILE})
    return result
