"""The opt-in grey-level demo category: deterministic, grey, with small and thin defects, asked for by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvtec_caption import demo_fibreboard as fibreboard
from mvtec_caption.demo import OPT_IN, demo_location, demo_root


def test_drawings_are_deterministic_grey_and_labelled() -> None:
    first = fibreboard.draw_defect(np.random.default_rng(3), "crack")
    again = fibreboard.draw_defect(np.random.default_rng(3), "crack")
    assert (first[1].image == again[1].image).all() and first[1].caption == again[1].caption
    rng = np.random.default_rng(0)
    for defect in fibreboard.DEFECTS:
        clean, drawn = fibreboard.draw_defect(rng, defect)
        assert drawn.image.shape == (fibreboard.SIZE, fibreboard.SIZE) and drawn.image.dtype == np.uint8
        word = {"hole": "hole", "crack": "crack", "broken_edge": "broken", "frayed_edge": "frayed", "uneven": "uneven"}[defect]
        assert drawn.mask.any() and word in drawn.caption
        changed = np.abs(drawn.image.astype(int) - clean.astype(int)) > 10
        assert (changed & drawn.mask).sum() > 0.3 * drawn.mask.sum(), f"{defect}: the defect is not visible in its mask"


def test_small_and_thin_defects_are_small_and_thin() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(1)
    holes = [fibreboard.draw_defect(rng, "hole")[1].mask for _ in range(5)]
    cracks = [fibreboard.draw_defect(rng, "crack")[1].mask for _ in range(5)]
    assert all(mask.sum() < 200 for mask in holes)  # a few pixels across at 256 px
    assert all(ndimage.distance_transform_edt(mask)[mask].mean() < 2.5 for mask in cracks)  # a few pixels wide, long
    assert all(mask.sum() > 100 for mask in cracks)


def test_opt_in_by_name_leaves_the_default_demo_alone(tmp_path: Path) -> None:
    root, captions = demo_location(["fibreboard"])
    assert "fibreboard" in OPT_IN and (root / "fibreboard" / "train" / "good" / "000.png").is_file()
    assert root != demo_root() and not (demo_root() / "fibreboard").exists()
    assert sorted(p.name for p in demo_root().iterdir() if p.is_dir()) == ["disc", "weave"]
    with Image.open(root / "fibreboard" / "test" / "crack" / "000.png") as image:
        assert image.mode == "L" and image.size == (256, 256)
    with pytest.raises(ValueError, match="ask for it alone"):
        demo_location(["fibreboard", "disc"])
    assert demo_location(["disc"])[0] == demo_root()


def test_benchmark_split_of_fibreboard_leaves_test_anomalies() -> None:
    from mvtec_caption.split import make_split
    from mvtec_caption import load_dataset

    data = load_dataset("mvtec_caption", subset="demo", categories=["fibreboard"], progress=False)
    split = make_split(data, "fibreboard", "test/128px", 128)
    per_type = {d: sum(1 for item in split.fewshot if item.defect_type == d) for d in fibreboard.DEFECTS}
    assert per_type == {d: fibreboard.N_PER_DEFECT // 3 for d in fibreboard.DEFECTS}
    assert len(split.test_anomalous) == len(fibreboard.DEFECTS) * (fibreboard.N_PER_DEFECT - fibreboard.N_PER_DEFECT // 3)
