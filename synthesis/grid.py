"""Qualitative grid of a generated set: normal source | synthesized | mask overlay | caption."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from synthesis.contract import TrainSplit
from synthesis.generated_set import load_samples, read_info


#: PNG ``Software`` text of every grid, so a later ``grid --out`` recognises a file it may replace.
GRID_SOFTWARE = "mvtec-caption-bench synthesis grid"


def is_grid_png(path: Path) -> bool:
    """Whether ``path`` is a grid PNG written by :func:`write_grid`."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == GRID_SOFTWARE
    except (OSError, ValueError):
        return False


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32).copy()
    out[mask] = 0.45 * out[mask] + 0.55 * np.array([255, 0, 0], dtype=np.float32)
    return out.astype(np.uint8)


def write_grid(set_folder: Path, out_png: Path, train: TrainSplit | None = None, per_defect: int = 3) -> Path:
    """Write the grid PNG; ``train`` supplies the normal source images when given."""
    # a Figure on an Agg canvas of its own: no pyplot state, and the caller's backend (a notebook's) stays as it is
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    info = read_info(set_folder)
    samples = load_samples(set_folder)
    chosen: list = []
    for defect in info.request.defect_types:
        chosen += [row for row in samples if row[0].defect_type == defect][:per_defect]
    normals = {n.image_id: n.image for n in train.normals} if train else {}
    rows = max(1, len(chosen))
    figure = Figure(figsize=(11, 2.6 * rows + 0.8))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 4, squeeze=False, gridspec_kw={"width_ratios": [1, 1, 1, 1.4]})
    for ax, title in zip(axes[0], ("normal source", f"{info.synthesizer.name}", "mask (red)", "caption")):
        ax.set_title(title, fontsize=10)
    for (sample, image, mask), row in zip(chosen, axes):
        normal = normals.get(sample.normal_id)
        panels = (normal if normal is not None else np.zeros_like(image), image, _overlay(image, mask))
        for ax, panel in zip(row[:3], panels):
            ax.imshow(panel)
        row[3].text(0.0, 0.5, f"{sample.defect_type} #{sample.index}\n" + textwrap.fill(sample.caption, 34),
                    fontsize=9, va="center")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[3].axis("off")
    demo = "DEMO DATA · " if info.is_demo else ""
    figure.text(0.01, 0.005,
                f"{demo}{info.dataset}/{info.category} · protocol {info.protocol_id} · {info.image_size}px · "
                f"{info.synthesizer.name} v{info.synthesizer.version} config {info.config_hash[:12]} · seed {info.request.seed} · "
                f"set {info.set_sha256[:12]} · mvtec-caption-bench {info.package_version}",
                fontsize=7, color="dimgray")
    figure.tight_layout(rect=(0, 0.02, 1, 1))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=90, metadata={"Software": GRID_SOFTWARE})
    return out_png
