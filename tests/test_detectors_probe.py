"""The linear probe: which cells it learns from, that it learns, and that it moves smoothly with its input."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.detectors import create_detector
from benchmark.detectors.base import SyntheticSet
from benchmark.detectors.probe import cell_labels
from benchmark.detectors.toy import toy_task
from benchmark.evaluation import evaluate_detection

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cell_labels_on_hand_made_masks() -> None:
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 0:4, 0:4] = True  # fills cell (0, 0) of a 2 x 2 grid
    masks[0, 4, 4] = True  # 1/16 of cell (1, 1): partly covered, left out
    masks[1, 5, 1:4] = True  # a thin line: 3/16 of cell (1, 0), its image's most covered cell
    labels = cell_labels(masks, (2, 2), anomalous_share=0.5)
    assert labels[0].tolist() == [[1, 0], [0, -1]]
    assert labels[1].tolist() == [[0, 0], [1, 0]]  # the thin defect still gives one positive
    assert labels[2].tolist() == [[0, 0], [0, 0]]  # no mask: all negatives


def _probe_scores(task, synthetic: SyntheticSet, seed: int = 0, **config: object):  # noqa: ANN001, ANN202
    detector = create_detector("probe-effnetlite0", {"image_size": 32, **config}, seed=seed)
    detector.fit(task.normals, synthetic, progress=False)
    scores, maps = detector.predict(task.test_images)
    types = np.where(task.test_labels == 1, "square", "good")
    overall, _, _ = evaluate_detection(scores, maps, task.test_labels, task.test_masks, types)
    return scores, maps, overall


def test_probe_learns_the_toy_task_and_an_invisible_change_barely_moves_it() -> None:
    task = toy_task(size=32, n_normal=12, n_synthetic=12, n_test=12, seed=3)
    scores, maps, overall = _probe_scores(task, task.synthetic)
    assert overall.pixel_auroc > 0.9 and overall.image_auroc > 0.9
    rng = np.random.default_rng(0)
    nudged = np.clip(task.synthetic.anomalous.astype(np.int16) + rng.integers(-1, 2, task.synthetic.anomalous.shape),
                     0, 255).astype(np.uint8)
    s = task.synthetic
    _, nudged_maps, nudged_overall = _probe_scores(task, SyntheticSet(s.clean, nudged, s.masks, s.defect_types))
    # convex training: a +-1 grey-level change of the set moves the result by a small fraction, not a new draw
    assert abs(nudged_overall.pixel_ap - overall.pixel_ap) < 0.01
    assert np.abs(nudged_maps - maps).max() < 0.1 * np.ptp(maps)


def test_the_seed_only_draws_the_negatives() -> None:
    task = toy_task(size=32, n_normal=8, n_synthetic=8, n_test=6, seed=1)
    a, _, _ = _probe_scores(task, task.synthetic, seed=0)
    b, _, _ = _probe_scores(task, task.synthetic, seed=1)
    np.testing.assert_array_equal(a, b)  # every negative kept: nothing left to the seed
    c, _, _ = _probe_scores(task, task.synthetic, seed=0, max_negatives=200)
    d, _, _ = _probe_scores(task, task.synthetic, seed=1, max_negatives=200)
    assert not np.array_equal(c, d)
