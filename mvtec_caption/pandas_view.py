"""A pandas view of a loaded MVTec Caption dataset: one row per image, no pixels.

For analysis and joins (per-category counts, caption attributes, file lists) without decoding
any image: the image and mask columns are replaced by the file they come from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _file_column(table: Any, name: str) -> list[str | None]:
    """Source file path of each row's image/mask (None where the pixels are in-memory bytes)."""
    import pyarrow.compute as pc

    return pc.struct_field(table.column(name), "path").to_pylist()


def _split_frame(dataset: Any, split: str | None) -> pd.DataFrame:
    table = dataset.with_format("arrow")[:]  # honours indices (after filter/select), decodes nothing
    frame = dataset.remove_columns([c for c in ("image", "mask") if c in dataset.column_names]).flatten().to_pandas()
    frame.insert(0, "split", split)
    if "image" in dataset.column_names:
        frame["image_file"] = _file_column(table, "image")
    if "mask" in dataset.column_names:
        frame["mask_file"] = _file_column(table, "mask")
    return frame


def to_pandas(data: Any) -> pd.DataFrame:
    """A DataFrame of a ``DatasetDict`` (or one ``Dataset``) with a ``split`` column.

    Attribute fields are flattened (``attributes.colors`` ...); ``image_file`` / ``mask_file``
    name the source files (``mask_file`` is None for generated masks: good images and LOCO unions).
    """
    import pandas as pd

    splits = data.items() if hasattr(data, "items") else [(data.split and str(data.split), data)]
    frames = [_split_frame(dataset, split) for split, dataset in splits]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
